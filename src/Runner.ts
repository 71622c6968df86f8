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
import * as Scope from "effect/Scope"
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
  type TestStatus
} from "./Domain.js"
import type { HarnessError } from "./GroveError.js"
import * as Harness from "./Harness.js"
import { slug } from "./Plan.js"
import { Session, type SessionInfo } from "./Session.js"
import { secretValues } from "./Store.js"
import { type Job, TestQueue } from "./TestQueue.js"
import { type Lease, WorktreePool } from "./WorktreePool.js"

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
 * Schema constructors skip validation. Effect 3 validates a class through a new AST,
 * and so a newly compiled parser, on every call when a field transforms (an Attempt's
 * `startedAt` is a DateTimeUtc): that was the largest cost of a test.
 */
const trusted = { disableValidation: true } as const

/**
 * One attempt as the Runner hands it to an Executor: the test, its attempt number, the
 * worker slot and where its log goes.
 *
 * @since 0.3.0
 * @category models
 */
export interface AttemptInput {
  readonly job: Job
  readonly n: number
  readonly slot: number
  readonly logPath: string
  /** completes when the grace between SIGTERM and SIGKILL is to be skipped */
  readonly hurry: Effect.Effect<void>
  /** the attempt's process group exists (here): recorded for reaping after a crash */
  readonly onSpawn: (info: { readonly pgid: number; readonly startTime: string }) => Effect.Effect<void>
}

/**
 * What an attempt did, as its Harness saw it, and — on a cluster — whether it ended on
 * another runner than the one it started on (that runner died; SPEC §10).
 *
 * @since 0.3.0
 * @category models
 */
export interface Ran extends Harness.AttemptOutcome {
  /** where it ran, when the Executor knows better than `Prepared.worktree` (a cluster runner's path) */
  readonly worktree?: string | undefined
  readonly relocated?: { readonly from: string; readonly to: string } | undefined
}

/**
 * A worktree ready for one attempt, wherever it is.
 *
 * @since 0.3.0
 * @category models
 */
export interface Prepared {
  /** where the attempt runs: a path on this machine, `runner:path` on a cluster runner */
  readonly worktree: string
  /** runs the attempt under its timeout; interrupting it ends its process tree */
  readonly run: (input: AttemptInput) => Effect.Effect<Ran, HarnessError>
  /** `--keep-failed`: leave the worktree on disk; undefined where it cannot be kept */
  readonly keep: Effect.Effect<void> | undefined
}

/**
 * Where attempts run: the session's worktree pool and Harness on this machine
 * (`layerLocal`), or a cluster's runners (`Cluster.executor`). A worktree that cannot
 * be prepared fails `prepare`; the attempt then ends ERROR with its message.
 *
 * @since 0.3.0
 * @category tags
 */
export class Executor extends Context.Tag("grove/Executor")<Executor, {
  readonly prepare: (job: Job, slot: number) => Effect.Effect<Prepared, { readonly message: string }>
}>() {}

/**
 * An Executor given from outside the session (a cluster's, `Cluster.layerExecutor`),
 * built over the session's facts and Config; none: the session's own worktree pool
 * and Harness (`layerLocal`).
 *
 * @since 0.3.0
 * @category tags
 */
export class RemoteExecutor extends Context.Reference<RemoteExecutor>()("grove/RemoteExecutor", {
  defaultValue: () => Option.none<Layer.Layer<Executor, never, Session | GroveConfigTag>>()
}) {}

/**
 * The process environment of an attempt: the test's own, then grove's variables
 * (SPEC §4). `worktree` is the folder it runs in; `slot` picks its ports.
 *
 * @since 0.3.0
 * @category constructors
 */
export const attemptEnv = (
  config: Pick<GroveConfig, "portBase" | "portsPerWorker">,
  sessionId: string,
  input: { readonly testId: string; readonly n: number; readonly slot: number; readonly env: Readonly<Record<string, string>> },
  worktree: string
): Record<string, string> => ({
  ...input.env,
  GROVE_SESSION: sessionId,
  GROVE_TEST_ID: input.testId,
  GROVE_ATTEMPT: String(input.n),
  GROVE_WORKER: String(input.slot),
  GROVE_WORKTREE: worktree,
  GROVE_PORT_BASE: String(config.portBase + input.slot * config.portsPerWorker)
})

/**
 * Readies the worker's worktree for `sha`; one that cannot be prepared is replaced by
 * the pool, so a failure other than Setup is tried again, up to `retries` more times.
 * (`Effect.retry` did the same but built a schedule driver for every attempt.)
 */
const prepareLeased = (lease: Lease, sha: string, retries: number): ReturnType<Lease["prepare"]> =>
  lease.prepare(sha).pipe(
    Effect.catchIf((e) => retries > 0 && e.reason !== "Setup", () => prepareLeased(lease, sha, retries - 1))
  )

/**
 * The Executor of a session on this machine: each worker slot holds a worktree of the
 * session's pool from test to test (`WorktreePool.Lease`), readied for each attempt,
 * and the attempt runs through the Harness under the test's timeout
 * (`Harness.runWithin`). The leases go back to the pool when the layer's scope closes.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerLocal: Layer.Layer<Executor, never, Session | GroveConfigTag | WorktreePool | Harness.Harness> =
  Layer.scoped(
    Executor,
    Effect.gen(function*() {
      const session = yield* Session
      const config = yield* GroveConfigTag
      const pool = yield* WorktreePool
      const harness = yield* Harness.Harness
      const scope = yield* Effect.scope
      const leases = new Map<number, Lease>()
      const leaseOf = (slot: number) =>
        Effect.suspend(() => {
          const known = leases.get(slot)
          return known !== undefined
            ? Effect.succeed(known)
            : Effect.tap(Scope.extend(pool.lease, scope), (lease) => Effect.sync(() => leases.set(slot, lease)))
        })
      return Executor.of({
        prepare: (job, slot) =>
          Effect.flatMap(leaseOf(slot), (lease) => Effect.map(prepareLeased(lease, job.sha, 2), (wt): Prepared => ({
            worktree: wt.path,
            keep: lease.keep,
            run: (input) => {
              const request = input.job.request
              return Harness.runWithin(harness, {
                testId: request.id,
                attempt: input.n,
                attemptKey: `${session.id}.${input.slot}.${Crypto.randomUUID()}`,
                steps: request.steps,
                cwd: Path.join(wt.path, request.cwd ?? ""),
                env: attemptEnv(config, session.id, { testId: request.id, n: input.n, slot: input.slot, env: request.env }, wt.path),
                // the values the store masks too: the plan's env, else grove's
                secrets: secretValues(request, process.env),
                logPath: input.logPath,
                logCap: config.logCap,
                tailBytes: config.tailBytes,
                killGrace: config.killGrace,
                hurry: input.hurry,
                onSpawn: input.onSpawn
              }, input.job.timeout)
            }
          })))
      })
    })
  )

/** the services a worker uses, resolved once by `make` */
interface Deps {
  readonly session: SessionInfo
  readonly config: GroveConfig
  readonly queue: TestQueue["Type"]
  readonly executor: Executor["Type"]
  readonly coordinator: Coordinator["Type"]
}

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
 * Runs `run` in a fiber of its own that the worker's stop watcher interrupts when the
 * session stops: none when the stop ended it, else its exit. This is a race between
 * the attempt and the stop, with one fiber per attempt instead of the three of
 * `Effect.raceFirst`. Interrupting the worker interrupts the attempt and waits for it
 * (its process tree is gone when this returns).
 */
const stoppable = Effect.fnUntraced(function*(deps: Deps, held: Held, run: Effect.Effect<Ran, HarnessError>) {
  const stopped = deps.coordinator.stopped
  const fiber = yield* Effect.fork(run)
  held.fiber = fiber
  // a stop whose watcher ran before the fiber was registered
  if (yield* Deferred.isDone(stopped)) yield* Fiber.interrupt(fiber)
  const exit = yield* Fiber.await(fiber).pipe(
    Effect.onInterrupt(() => Fiber.interrupt(fiber)),
    Effect.ensuring(Effect.sync(() => {
      held.fiber = undefined
    }))
  )
  return Exit.isInterrupted(exit) && (yield* Deferred.isDone(stopped)) ? Option.none() : Option.some(exit)
})

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
 *
 * What runs per test is written with Effect.fnUntraced, whose generator function is
 * made once, not as an `Effect.gen` made per call: V8 gives every new generator function,
 * on its first call, a prototype object and two maps of its own, in old space.
 */
const attemptOnce = Effect.fnUntraced(function*(deps: Deps, held: Held, slot: number, job: Job) {
  const { session } = deps
  const n = job.priorAttempts + job.attempts.length + 1
  const log = logPath(session, job.request.id, n)
  const startedAt = yield* Clock.currentTimeMillis
  const attempt = (status: TestStatus, fields: AttemptFields) =>
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
  const { attempt: a, keep } = yield* attemptRun(deps, held, slot, job, { n, log, startedAt, attempt })
  // keep-failed decides while the worker still holds the worktree
  return yield* settle(deps, held, job, a, keep)
})

/** what an attempt's end says of it, besides its status (`end`: when it ended, default now) */
type AttemptFields = Partial<Omit<Attempt, "n" | "status" | "message">> & {
  readonly end?: number
  readonly message?: string | undefined
}

/** what attemptOnce's attempt needs to know of it: its number, log, start, how it is built */
interface AttemptContext {
  readonly n: number
  readonly log: string
  readonly startedAt: number
  readonly attempt: (
    status: TestStatus,
    fields: AttemptFields
  ) => Effect.Effect<Attempt>
}

/** the attempt of attemptOnce, and whether its worktree may be kept */
const attemptRun = Effect.fnUntraced(function*(deps: Deps, held: Held, slot: number, job: Job, context: AttemptContext) {
  const { coordinator } = deps
  const { attempt, log, n, startedAt } = context
  const prepared = yield* deps.executor.prepare(job, slot).pipe(Effect.either)
  if (Either.isLeft(prepared)) {
    return { attempt: yield* attempt("ERROR", { message: prepared.left.message }), keep: undefined }
  }
  const { worktree } = prepared.right
  yield* coordinator.publish(Event.AttemptStarted({
    testId: job.request.id,
    n,
    worker: slot,
    worktree,
    startedAt,
    logPath: log
  }))
  const request = job.request
  const input: AttemptInput = {
    job,
    n,
    slot,
    logPath: log,
    hurry: coordinator.hurry,
    onSpawn: (info) =>
      coordinator.publish(Event.AttemptSpawned({ testId: request.id, n, pgid: info.pgid, processStartTime: info.startTime }))
  }
  // the Executor applies the deadline; a stop wins only while the attempt runs, and
  // its process tree is gone when this returns
  const outcome = yield* stoppable(deps, held, prepared.right.run(input))
  const end = yield* Clock.currentTimeMillis
  const keep = prepared.right.keep
  if (Option.isNone(outcome)) {
    return {
      attempt: yield* attempt("CANCELLED", { worktree, end, message: "the session stopped during this attempt" }),
      keep
    }
  }
  // a cluster runner that died mid-attempt: the attempt ran again, with its number, elsewhere
  const ran = Exit.isSuccess(outcome.value) ? outcome.value.value : undefined
  if (ran?.relocated !== undefined) {
    yield* coordinator.publish(Event.Relocated({ testId: request.id, n, from: ran.relocated.from, to: ran.relocated.to }))
  }
  const at = ran?.worktree ?? worktree
  // the fields as one literal of one shape, not spread from a shared `base`: V8 gave each
  // spread copy here maps of its own (four per test, in old space: docs/design.md)
  return {
    keep,
    attempt: yield* Exit.match(outcome.value, {
      onFailure: (cause) =>
        attempt("ERROR", {
          worktree: at,
          end,
          message: Cause.failureOption(cause).pipe(Option.map((e) => e.message), Option.getOrElse(() => describe(cause)))
        }),
      onSuccess: (o) =>
        attempt(o._tag === "TimedOut" ? "TIMED_OUT" : o.exitCode === 0 ? "PASSED" : "FAILED", {
          worktree: at,
          end,
          exitCode: o.exitCode,
          signal: o.signal,
          tail: o.tail,
          message: o._tag === "TimedOut"
            ? `timed out after ${Duration.format(job.timeout)}${
              o.failedStep === undefined ? "" : ` in step ${o.failedStep + 1} of ${request.steps.length}`
            }`
            : o.failedStep !== undefined && o.exitCode !== 0
            ? `step ${o.failedStep + 1} of ${request.steps.length} exited with ${o.signal ?? o.exitCode}`
            : undefined
        })
    })
  }
})

/**
 * Records the attempt, then lets the test's retry Schedule decide: run it again after
 * the delay it gives (recorded first), or finish it.
 */
const settle = Effect.fnUntraced(function*(
  deps: Deps,
  held: Held,
  job: Job,
  attempt: Attempt,
  keepable: Effect.Effect<void> | undefined
) {
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
  const keep = failed && config.keepFailed && keepable !== undefined
  if (keep) yield* keepable
  yield* coordinator.finish(resultOf(job, attempts, keep ? attempt.worktree : undefined))
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
  Session | GroveConfigTag | TestQueue | Executor | Coordinator
> = Effect.gen(function*() {
  const deps: Deps = {
    session: yield* Session,
    config: yield* GroveConfigTag,
    queue: yield* TestQueue,
    executor: yield* Executor,
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
  Session | GroveConfigTag | TestQueue | Executor | Coordinator
> = Layer.effect(Runner, make)
