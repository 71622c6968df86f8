/**
 * The worker loop: take the next test, borrow a worktree prepared for its commit,
 * run one attempt under its timeout, classify it (SPEC §3), then either schedule a
 * retry or finish the test. A defect ends that attempt as ERROR, never the session;
 * a stop (max-fail, signal) ends the running attempt as CANCELLED after its process
 * tree is gone.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Duration from "effect/Duration"
import * as Crypto from "node:crypto"
import * as Path from "node:path"
import type { GroveConfig } from "./Config.js"
import { Attempt, Events as Event, isRetryable, type SessionEvent, TestResult, type TestStatus, type Worktree } from "./Domain.js"
import type { Harness } from "./Harness.js"
import { slug } from "./Plan.js"
import type { SessionInfo } from "./Session.js"
import { secretValues } from "./Store.js"
import type { Job, TestQueue } from "./TestQueue.js"
import type { WorktreePool } from "./WorktreePool.js"

/**
 * What a runner needs from its session. The Orchestrator wires it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Context {
  readonly session: SessionInfo
  readonly config: GroveConfig
  readonly queue: TestQueue["Type"]
  readonly pool: WorktreePool["Type"]
  readonly harness: Harness["Type"]
  /** writes the event through to the store, then tells subscribers */
  readonly publish: (event: SessionEvent) => Effect.Effect<void>
  /** a test has its final result */
  readonly finish: (result: TestResult) => Effect.Effect<void>
  /** waits the backoff without holding a worker or a slot, then requeues (or cancels on stop) */
  readonly retryLater: (job: Job, delay: Duration.Duration) => Effect.Effect<void>
  /** completes when the session stops taking tests */
  readonly stopped: Deferred.Deferred<void>
  /** completes when the grace period between SIGTERM and SIGKILL is to be skipped */
  readonly hurry: Effect.Effect<void>
}

/**
 * `<dataDir>/logs/<safe-id>-<hash8>.<attempt>.log` (SPEC §4).
 *
 * @since 0.1.0
 * @category constructors
 */
export const logPath = (session: SessionInfo, testId: string, n: number): string =>
  Path.join(
    session.dataDir,
    "logs",
    `${slug(testId)}-${Crypto.createHash("sha256").update(testId).digest("hex").slice(0, 8)}.${n}.log`
  )

/**
 * Final status of a test from its attempts: PASSED, FLAKY when it passed after an
 * attempt that did not, else its last attempt's status.
 *
 * @since 0.1.0
 * @category constructors
 */
export const finalStatus = (attempts: ReadonlyArray<Attempt>, priorAttempts = 0): TestStatus => {
  const last = attempts[attempts.length - 1]
  if (last === undefined) return "CANCELLED"
  if (last.status === "PASSED") return attempts.length > 1 || priorAttempts > 0 ? "FLAKY" : "PASSED"
  return last.status
}

/**
 * The result of a test that ends now with the attempts it has.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resultOf = (
  job: Job,
  attempts: ReadonlyArray<Attempt>,
  keptWorktree?: string,
  status?: TestStatus
): TestResult =>
  new TestResult({
    id: job.request.id,
    name: job.request.name,
    source: job.request.source,
    ref: job.refName,
    status: status ?? finalStatus(attempts, job.priorAttempts),
    durationMs: attempts.reduce((sum, a) => sum + a.durationMs, 0),
    attempts,
    ...(keptWorktree === undefined ? {} : { keptWorktree })
  }, trusted)

/**
 * The retry delays of SPEC §4: exponential from `retryBase`, ×2, jittered ±20%,
 * capped at `retryCap`. Jitter draws from Effect's Random (seed it for tests).
 *
 * @since 0.1.0
 * @category constructors
 */
export const retrySchedule = (config: GroveConfig): Schedule.Schedule<Duration.Duration> =>
  Schedule.exponential(config.retryBase, 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, delay) => Duration.min(delay, config.retryCap))
  )

/**
 * The delay before retry number `retry` (1 = the first retry).
 *
 * @since 0.1.0
 * @category constructors
 */
export const retryDelay = (config: GroveConfig, retry: number, key = ""): Effect.Effect<Duration.Duration> => {
  const delay = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Schedule.run(Schedule.delays(retrySchedule(config)), now, globalThis.Array.from({ length: retry }, () => undefined))
  ).pipe(Effect.map((delays) =>
    Duration.millis(Math.round(Duration.toMillis(Chunk.last(delays).pipe(Option.getOrElse(() => config.retryBase)))))
  ))
  // a seeded jitter depends only on the test and the retry, not on the order fibers ran in
  return config.seed === undefined ? delay : Effect.withRandom(delay, Random.make(`${config.seed}/${key}/${retry}`))
}

/**
 * Attempts and results are built here from values that already have their types (ids
 * from decoded requests, integers from the clock, the slot and the process), so their
 * Schema constructors skip validation: checking every field of every attempt again was
 * the largest cost of a test (issue 6, B1).
 */
const trusted = { disableValidation: true } as const

/**
 * Borrows a worktree for `sha`; a worktree that cannot be prepared is replaced by the
 * pool, so a failure other than Setup is tried again, up to `retries` more times.
 * (`Effect.retry` did the same but built a schedule driver for every borrow.)
 */
const borrow = (ctx: Context, sha: string, retries: number): ReturnType<WorktreePool["Type"]["borrow"]> =>
  ctx.pool.borrow(sha).pipe(
    Effect.catchIf((e) => retries > 0 && e.reason !== "Setup", () => borrow(ctx, sha, retries - 1))
  )

/** the attempt a worker is running, for its stop watcher */
interface Current {
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
}

/**
 * Runs `run` in a fiber of its own that the worker's stop watcher interrupts when the
 * session stops: none when the stop ended it, else its exit. This is a race between
 * the attempt and the stop, with one fiber per attempt instead of the three of
 * `Effect.raceFirst` (issue 6, B1). Interrupting the worker interrupts the attempt and
 * waits for it (its process tree is gone when this returns).
 */
const stoppable = <A, E>(ctx: Context, current: Current, run: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(run)
    current.fiber = fiber
    // a stop whose watcher ran before the fiber was registered
    if (yield* Deferred.isDone(ctx.stopped)) yield* Fiber.interrupt(fiber)
    const exit = yield* Fiber.await(fiber).pipe(
      Effect.onInterrupt(() => Fiber.interrupt(fiber)),
      Effect.ensuring(Effect.sync(() => {
        current.fiber = undefined
      }))
    )
    return Exit.isInterrupted(exit) && (yield* Deferred.isDone(ctx.stopped)) ? Option.none() : Option.some(exit)
  })

const describe = (cause: Cause.Cause<unknown>): string => Cause.pretty(cause).split("\n")[0] ?? "unknown defect"

/**
 * Runs one attempt of `job` on worker `slot`, whatever happens, as an Attempt.
 */
const attemptOnce = (ctx: Context, current: Current, slot: number, job: Job) =>
  Effect.gen(function*() {
    const n = job.priorAttempts + job.attempts.length + 1
    const log = logPath(ctx.session, job.request.id, n)
    const startedAt = yield* Clock.currentTimeMillis
    const attempt = (status: TestStatus, fields: Partial<Omit<Attempt, "n" | "status">> & { readonly end?: number }) =>
      Effect.map(Clock.currentTimeMillis, (now) =>
        new Attempt({
          n,
          status,
          exitCode: fields.exitCode ?? null,
          signal: fields.signal ?? null,
          worker: slot,
          worktree: fields.worktree ?? "",
          startedAt: DateTime.unsafeMake(startedAt),
          durationMs: Math.max(0, (fields.end ?? now) - startedAt),
          logPath: fields.logPath ?? log,
          tail: fields.tail ?? "",
          ...(fields.message === undefined ? {} : { message: fields.message })
        }, trusted))

    return yield* Effect.scoped(Effect.gen(function*() {
      // a worktree that cannot be prepared is replaced by the pool: try the replacement
      const borrowed = yield* borrow(ctx, job.sha, 2).pipe(Effect.either)
      if (Either.isLeft(borrowed)) {
        return { attempt: yield* attempt("ERROR", { message: borrowed.left.message }), worktree: undefined }
      }
      const wt: Worktree = borrowed.right
      yield* ctx.publish(Event.AttemptStarted({
        testId: job.request.id,
        n,
        worker: slot,
        worktree: wt.path,
        startedAt,
        logPath: log
      }))
      const request = job.request
      // the values the store masks too: the plan's env, else grove's
      const secrets = secretValues(request, process.env)
      const run = ctx.harness.run({
        testId: request.id,
        attempt: n,
        attemptKey: `${ctx.session.id}.${slot}.${Crypto.randomUUID()}`,
        steps: request.steps,
        cwd: Path.join(wt.path, request.cwd ?? ""),
        env: {
          ...request.env,
          GROVE_SESSION: ctx.session.id,
          GROVE_TEST_ID: request.id,
          GROVE_ATTEMPT: String(n),
          GROVE_WORKER: String(slot),
          GROVE_WORKTREE: wt.path,
          GROVE_PORT_BASE: String(ctx.config.portBase + slot * ctx.config.portsPerWorker)
        },
        secrets,
        logPath: log,
        logCap: ctx.config.logCap,
        tailBytes: ctx.config.tailBytes,
        timeout: job.timeout,
        killGrace: ctx.config.killGrace,
        hurry: ctx.hurry,
        onSpawn: (info) =>
          ctx.publish(Event.AttemptSpawned({ testId: request.id, n, pgid: info.pgid, processStartTime: info.startTime }))
      })
      // a stop wins only while the attempt runs; its process tree is gone when this returns
      const outcome = yield* stoppable(ctx, current, run)
      const end = yield* Clock.currentTimeMillis
      const base = { worktree: wt.path, end }
      if (Option.isNone(outcome)) {
        return { attempt: yield* attempt("CANCELLED", { ...base, message: "the session stopped during this attempt" }), worktree: wt }
      }
      return {
        worktree: wt,
        attempt: yield* Exit.match(outcome.value, {
          onFailure: (cause) =>
            attempt("ERROR", {
              ...base,
              message: Cause.failureOption(cause).pipe(Option.map((e) => e.message), Option.getOrElse(() => describe(cause)))
            }),
          onSuccess: (o) =>
            attempt(o._tag === "TimedOut" ? "TIMED_OUT" : o.exitCode === 0 ? "PASSED" : "FAILED", {
              ...base,
              exitCode: o.exitCode,
              signal: o.signal,
              tail: o.tail,
              ...(o._tag === "TimedOut"
                ? { message: `timed out after ${Duration.format(job.timeout)}` }
                : o.failedStep !== undefined && o.exitCode !== 0
                ? { message: `step ${o.failedStep + 1} of ${request.steps.length} exited with ${o.signal ?? o.exitCode}` }
                : {})
            })
        })
      }
    }).pipe(
      // keep-failed needs the decision while the worktree is still borrowed: settle inside the scope
      Effect.flatMap(({ attempt: a, worktree }) => settle(ctx, job, a, worktree))
    ))
  }).pipe(
    Effect.catchAllDefect((defect) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const n = job.priorAttempts + job.attempts.length + 1
        const a = new Attempt({
          n,
          status: "ERROR",
          exitCode: null,
          signal: null,
          worker: slot,
          worktree: "",
          startedAt: DateTime.unsafeMake(now),
          durationMs: 0,
          logPath: logPath(ctx.session, job.request.id, n),
          tail: "",
          message: `grove defect: ${describe(Cause.die(defect))}`
        }, trusted)
        yield* settle(ctx, job, a, undefined)
      })
    )
  )

/**
 * Records the attempt, then retries the test or finishes it.
 */
const settle = (ctx: Context, job: Job, attempt: Attempt, worktree: Worktree | undefined) =>
  Effect.gen(function*() {
    yield* ctx.publish(Event.AttemptFinished({ testId: job.request.id, attempt }))
    const attempts = [...job.attempts, attempt]
    const allowed = Math.max(1, 1 + (job.request.retries ?? ctx.config.retries) - job.priorAttempts)
    const stopped = yield* Deferred.isDone(ctx.stopped)
    if (isRetryable(attempt.status) && attempts.length < allowed && !stopped) {
      const delay = yield* retryDelay(ctx.config, attempts.length, job.request.id)
      yield* ctx.publish(
        Event.RetryScheduled({ testId: job.request.id, nextAttempt: attempt.n + 1, delayMs: Duration.toMillis(delay) })
      )
      return yield* ctx.retryLater({ ...job, attempts, retry: true }, delay)
    }
    const failed = attempt.status !== "PASSED" && attempt.status !== "CANCELLED"
    const keep = failed && ctx.config.keepFailed && worktree !== undefined
    if (keep) yield* ctx.pool.keep(worktree)
    yield* ctx.finish(resultOf(job, attempts, keep ? worktree.path : undefined))
  })

/**
 * One worker: takes tests until the session stops.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (ctx: Context, slot: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    const current: Current = { fiber: undefined }
    // the worker's stop watcher: interrupts the running attempt, if any, when the session
    // stops (a child of this fiber: it ends with the worker)
    yield* Effect.fork(Effect.zipRight(
      Deferred.await(ctx.stopped),
      Effect.suspend(() => current.fiber === undefined ? Effect.void : Fiber.interrupt(current.fiber))
    ))
    while (true) {
      // none once the session stopped (it closes the queue)
      const next = yield* ctx.queue.take
      if (Option.isNone(next)) return
      yield* attemptOnce(ctx, current, slot, next.value).pipe(Effect.ensuring(ctx.queue.release(next.value)))
    }
  })
