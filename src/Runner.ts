/**
 * The worker loop as a service (SPEC §8): take the next test, borrow a worktree
 * prepared for its commit, run one attempt under its timeout, classify it (SPEC §3),
 * then let the test's retry Schedule decide whether it runs again, or finish it. A stop
 * (max-fail, signal) ends the running attempt as CANCELLED after its process tree is
 * gone. A worker that dies of a defect is replaced: the attempt it held ends ERROR with
 * the defect's message, retried like any ERROR, and the session goes on.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Crypto from "node:crypto"
import * as Path from "node:path"
import { type GroveConfig, GroveConfigTag, type RetryPolicy } from "./Config.js"
import {
  Attempt,
  Events as Event,
  isRetryable,
  type SessionEvent,
  TestResult,
  type TestStatus,
  type Worktree
} from "./Domain.js"
import type { HarnessError } from "./GroveError.js"
import * as Harness from "./Harness.js"
import { slug } from "./Plan.js"
import { Session, type SessionInfo } from "./Session.js"
import { secretValues } from "./Store.js"
import { type Job, TestQueue } from "./TestQueue.js"
import { WorktreePool } from "./WorktreePool.js"

/**
 * What a worker reports to, and takes its orders from: the session's side of the
 * work (the Orchestrator provides it).
 *
 * @since 0.1.0
 * @category tags
 */
export class Coordinator extends Context.Tag("grove/Coordinator")<Coordinator, {
  /** writes the event through to the store, folds it, then tells subscribers */
  readonly publish: (event: SessionEvent) => Effect.Effect<void>
  /** a test has its final result */
  readonly finish: (result: TestResult) => Effect.Effect<void>
  /** waits `delay` without holding a worker or a slot, then requeues the job (or cancels it on stop) */
  readonly retryLater: (job: Job, delay: Duration.Duration) => Effect.Effect<void>
  /**
   * gives up on a test whose end could not be recorded (grove's own defect, twice): the
   * session stops waiting for it
   */
  readonly abandon: (job: Job) => Effect.Effect<void>
  /** completes when the session stops taking tests */
  readonly stopped: Deferred.Deferred<void>
  /** completes when the grace period between SIGTERM and SIGKILL is to be skipped */
  readonly hurry: Effect.Effect<void>
}>() {}

/**
 * @since 0.1.0
 * @category tags
 */
export class Runner extends Context.Tag("grove/Runner")<Runner, {
  /** worker `slot` (1-based): takes tests until the session stops; never dies of a defect */
  readonly run: (slot: number) => Effect.Effect<void>
}>() {}

/**
 * SPEC §4's policy: exponential from `retryBase`, ×2, jittered ±20%, capped at
 * `retryCap`, at most `retries` times. Jitter draws from Effect's Random.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultRetryPolicy: RetryPolicy = ({ config, retries }) =>
  Schedule.exponential(config.retryBase, 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, delay) => Duration.min(delay, config.retryCap)),
    Schedule.intersect(Schedule.recurs(Math.max(0, retries)))
  )

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

/** the test's retry Schedule in its initial state: what the test and the Config allow, less an earlier run's attempts */
const start = (config: GroveConfig, job: Job) => {
  const retries = Math.max(0, (job.request.retries ?? config.retries) - job.priorAttempts)
  const schedule = (config.retryPolicy ?? defaultRetryPolicy)({ request: job.request, retries, config })
  return { schedule, state: schedule.initial }
}

/**
 * Steps the job's retry Schedule with the attempt that did not pass: the delay before
 * the next attempt, or none when the Schedule is done. With a seed, the jitter depends
 * only on the test and the retry, not on the order fibers ran in.
 */
const nextRetry = (config: GroveConfig, job: Job, attempt: Attempt) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const { schedule, state: before } = job.retrySchedule ?? start(config, job)
    const [state, , decision] = yield* schedule.step(now, attempt, before)
    if (ScheduleDecision.isDone(decision)) return Option.none()
    const delay = Duration.millis(Math.max(0, Math.round(ScheduleIntervals.start(decision.intervals) - now)))
    return Option.some({ delay, retrySchedule: { schedule, state } })
  }).pipe((step) =>
    config.seed === undefined
      ? step
      : Effect.withRandom(step, Random.make(`${config.seed}/${job.request.id}/${job.attempts.length + 1}`))
  )

/**
 * Attempts and results are built here from values that already have their types (ids
 * from decoded requests, integers from the clock, the slot and the process), so their
 * Schema constructors skip validation: checking every field of every attempt again was
 * the largest cost of a test (issue 6, B1).
 */
const trusted = { disableValidation: true } as const

/** the services a worker uses, resolved once by `make` */
interface Deps {
  readonly session: SessionInfo
  readonly config: GroveConfig
  readonly queue: TestQueue["Type"]
  readonly pool: WorktreePool["Type"]
  readonly harness: Harness.Harness["Type"]
  readonly coordinator: Coordinator["Type"]
}

/**
 * Borrows a worktree for `sha`; a worktree that cannot be prepared is replaced by the
 * pool, so a failure other than Setup is tried again, up to `retries` more times.
 * (`Effect.retry` did the same but built a schedule driver for every borrow.)
 */
const borrow = (deps: Deps, sha: string, retries: number): ReturnType<WorktreePool["Type"]["borrow"]> =>
  deps.pool.borrow(sha).pipe(
    Effect.catchIf((e) => retries > 0 && e.reason !== "Setup", () => borrow(deps, sha, retries - 1))
  )

/**
 * What a worker holds, for its stop watcher and its supervisor: the attempt's fiber
 * while it runs, and the test it took with the attempts settled so far.
 */
interface Held {
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  /** with the attempts recorded so far (AttemptFinished): a defect's attempt takes the next number */
  job: Job | undefined
}

/**
 * Runs the attempt under its deadline (`Harness.runStoppable`), with the fiber that
 * waits for its steps held for the worker's stop watcher, which interrupts it when the
 * session stops: none when the stop ended it, else its exit. One fiber per attempt
 * for the steps, the deadline on the session's shared `Deadlines`, the stop through
 * that fiber: no race forked on top. Interrupting the worker interrupts the attempt
 * and waits for it (its process tree is gone when this returns).
 */
const stoppable = (deps: Deps, held: Held, spec: Harness.AttemptSpec, timeout: Duration.Duration) =>
  Harness.runStoppable(deps.harness, spec, timeout, (steps) =>
    Effect.suspend(() => {
      held.fiber = steps
      // a stop whose watcher ran before the fiber was registered
      return Deferred.isDone(deps.coordinator.stopped).pipe(
        Effect.flatMap((stopped) => stopped ? Fiber.interrupt(steps) : Effect.void),
        Effect.asVoid
      )
    })).pipe(
      Effect.ensuring(Effect.sync(() => {
        held.fiber = undefined
      })),
      Effect.exit,
      Effect.map((exit): Option.Option<Exit.Exit<Harness.AttemptOutcome, HarnessError>> =>
        Exit.isSuccess(exit) ? Option.map(exit.value, Exit.succeed) : Option.some(Exit.failCause(exit.cause))
      )
    )

/** a defect's own message (its first line), not the trace */
const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error && error.message !== "" ? error.message : Cause.pretty(cause)
  return text.split("\n")[0] ?? "unknown defect"
}

/** an attempt that ended before it ran (no worktree, a defect) */
const emptyAttempt = (deps: Deps, job: Job, slot: number, n: number, status: TestStatus, message: string) =>
  Effect.map(Clock.currentTimeMillis, (now) =>
    new Attempt({
      n,
      status,
      exitCode: null,
      signal: null,
      worker: slot,
      worktree: "",
      startedAt: DateTime.unsafeMake(now),
      durationMs: 0,
      logPath: logPath(deps.session, job.request.id, n),
      tail: "",
      message
    }, trusted))

/**
 * Runs one attempt of `job` on worker `slot` under the job's timeout, as an Attempt,
 * then settles it.
 */
const attemptOnce = (deps: Deps, held: Held, slot: number, job: Job) =>
  Effect.gen(function*() {
    const { config, coordinator, session } = deps
    const n = job.priorAttempts + job.attempts.length + 1
    const log = logPath(session, job.request.id, n)
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
      const borrowed = yield* borrow(deps, job.sha, 2).pipe(Effect.either)
      if (Either.isLeft(borrowed)) {
        return { attempt: yield* attempt("ERROR", { message: borrowed.left.message }), worktree: undefined }
      }
      const wt: Worktree = borrowed.right
      yield* coordinator.publish(Event.AttemptStarted({
        testId: job.request.id,
        n,
        worker: slot,
        worktree: wt.path,
        startedAt,
        logPath: log
      }))
      const request = job.request
      const spec: Harness.AttemptSpec = {
        testId: request.id,
        attempt: n,
        attemptKey: `${session.id}.${slot}.${Crypto.randomUUID()}`,
        steps: request.steps,
        cwd: Path.join(wt.path, request.cwd ?? ""),
        env: {
          ...request.env,
          GROVE_SESSION: session.id,
          GROVE_TEST_ID: request.id,
          GROVE_ATTEMPT: String(n),
          GROVE_WORKER: String(slot),
          GROVE_WORKTREE: wt.path,
          GROVE_PORT_BASE: String(config.portBase + slot * config.portsPerWorker)
        },
        // the values the store masks too: the plan's env, else grove's
        secrets: secretValues(request, process.env),
        logPath: log,
        logCap: config.logCap,
        tailBytes: config.tailBytes,
        killGrace: config.killGrace,
        hurry: coordinator.hurry,
        onSpawn: (info) =>
          coordinator.publish(Event.AttemptSpawned({ testId: request.id, n, pgid: info.pgid, processStartTime: info.startTime }))
      }
      // the Runner owns the deadline; a stop wins only while the attempt runs, and its
      // process tree is gone when this returns
      const outcome = yield* stoppable(deps, held, spec, job.timeout)
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
                ? {
                  message: `timed out after ${Duration.format(job.timeout)}${
                    o.failedStep === undefined ? "" : ` in step ${o.failedStep + 1} of ${request.steps.length}`
                  }`
                }
                : o.failedStep !== undefined && o.exitCode !== 0
                ? { message: `step ${o.failedStep + 1} of ${request.steps.length} exited with ${o.signal ?? o.exitCode}` }
                : {})
            })
        })
      }
    }).pipe(
      // keep-failed needs the decision while the worktree is still borrowed: settle inside the scope
      Effect.flatMap(({ attempt: a, worktree }) => settle(deps, held, job, a, worktree))
    ))
  })

/**
 * Records the attempt, then lets the test's retry Schedule decide: run it again after
 * the delay it gives (recorded first), or finish it.
 */
const settle = (deps: Deps, held: Held, job: Job, attempt: Attempt, worktree: Worktree | undefined) =>
  Effect.gen(function*() {
    const { config, coordinator } = deps
    yield* coordinator.publish(Event.AttemptFinished({ testId: job.request.id, attempt }))
    const attempts = [...job.attempts, attempt]
    held.job = { ...job, attempts }
    const retry = isRetryable(attempt.status) && !(yield* Deferred.isDone(coordinator.stopped))
      ? yield* nextRetry(config, job, attempt)
      : Option.none()
    if (Option.isSome(retry)) {
      const { delay, retrySchedule } = retry.value
      yield* coordinator.publish(
        Event.RetryScheduled({ testId: job.request.id, nextAttempt: attempt.n + 1, delayMs: Duration.toMillis(delay) })
      )
      yield* coordinator.retryLater({ ...job, attempts, retry: true, retrySchedule }, delay)
      held.job = undefined // handed over: the retry is the Coordinator's now
      return
    }
    const failed = attempt.status !== "PASSED" && attempt.status !== "CANCELLED"
    const keep = failed && config.keepFailed && worktree !== undefined
    if (keep) yield* deps.pool.keep(worktree)
    yield* coordinator.finish(resultOf(job, attempts, keep ? worktree.path : undefined))
    held.job = undefined
  })

/** takes tests until the session stops (the queue closes) */
const work = (deps: Deps, held: Held, slot: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    // the worker's stop watcher: interrupts the running attempt, if any, when the session
    // stops (a child of this fiber: it ends with the worker)
    yield* Effect.fork(Effect.zipRight(
      Deferred.await(deps.coordinator.stopped),
      Effect.suspend(() => held.fiber === undefined ? Effect.void : Fiber.interrupt(held.fiber))
    ))
    while (true) {
      const next = yield* deps.queue.take
      if (Option.isNone(next)) return
      held.job = next.value
      yield* attemptOnce(deps, held, slot, next.value).pipe(Effect.ensuring(deps.queue.release(next.value)))
    }
  })

/**
 * A worker under supervision: when it dies of a defect, the test it held gets an ERROR
 * attempt with the defect's message — retried like any ERROR — and a new worker takes
 * its slot. A defect while recording that ERROR gives the test up (logged), so the
 * session still ends.
 */
const supervised = (deps: Deps, slot: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    while (true) {
      const held: Held = { fiber: undefined, job: undefined }
      const exit = yield* Effect.exit(work(deps, held, slot))
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return
      const message = `grove defect: ${describe(exit.cause)}`
      yield* Effect.logError(`grove: worker ${slot} died and was replaced (${message})`, exit.cause)
      const job = held.job
      if (job === undefined) continue
      yield* Effect.gen(function*() {
        const n = job.priorAttempts + job.attempts.length + 1
        const attempt = yield* emptyAttempt(deps, job, slot, n, "ERROR", message)
        yield* settle(deps, { fiber: undefined, job: undefined }, job, attempt, undefined)
      }).pipe(
        Effect.catchAllCause((again) =>
          Effect.zipRight(
            Effect.logError(`grove: the end of test ${job.request.id} could not be recorded; it is given up`, again),
            deps.coordinator.abandon(job)
          )
        )
      )
    }
  })

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  Runner["Type"],
  never,
  Session | GroveConfigTag | TestQueue | WorktreePool | Harness.Harness | Coordinator
> = Effect.gen(function*() {
  const deps: Deps = {
    session: yield* Session,
    config: yield* GroveConfigTag,
    queue: yield* TestQueue,
    pool: yield* WorktreePool,
    harness: yield* Harness.Harness,
    coordinator: yield* Coordinator
  }
  return Runner.of({ run: (slot) => supervised(deps, slot) })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  Runner,
  never,
  Session | GroveConfigTag | TestQueue | WorktreePool | Harness.Harness | Coordinator
> = Layer.effect(Runner, make)
