/**
 * One Orchestrator scope is one session (SPEC §8): acquiring it fixes the session;
 * the first accepted submission makes the worktree pool and starts the runners;
 * closing the scope stops what still runs (INTERRUPTED), records the end and removes
 * the worktrees.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import * as HashMap from "effect/HashMap"
import * as TRef from "effect/TRef"
import * as Config from "./Config.js"
import { GroveConfigTag } from "./Config.js"
import {
  type Attempt,
  Events as Event,
  isRetryable,
  isSuccess,
  isTerminal,
  Logged,
  type Report,
  type SessionEvent,
  TestRequest,
  TestResult,
  type Totals
} from "./Domain.js"
import { Git } from "./Git.js"
import { GitError, InvalidInput, Issue, type WorktreeError } from "./GroveError.js"
import * as Harness from "./Harness.js"
import * as Heartbeat from "./Heartbeat.js"
import * as ReportModule from "./Report.js"
import * as SessionState from "./SessionState.js"
import * as Runner from "./Runner.js"
import * as Scheduler from "./Scheduler.js"
import * as SessionModule from "./Session.js"
import { Session } from "./Session.js"
import { flakinessWith, type PendingTest, stateOf, Store, type TestHistory, testStream } from "./Store.js"
import * as TestQueue from "./TestQueue.js"
import * as WorktreePool from "./WorktreePool.js"

/**
 * A running attempt, as `status` shows it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningAttempt {
  readonly testId: string
  readonly worker: number
  readonly attempt: number
  readonly startedAt: number
}

/**
 * The live state of a session, read off the fold (`SessionState`): counts, what
 * runs and how much waits — never the finished tests (`awaitCompletion` reads those
 * from the store).
 *
 * @since 0.1.0
 * @category models
 */
export interface Status {
  readonly sessionId: string
  readonly submitted: number
  /** tests queued or waiting for their retry */
  readonly waiting: number
  readonly running: ReadonlyArray<RunningAttempt>
  readonly totals: Totals
  readonly stopping: boolean
}

/**
 * What `submit` takes: a TestRequest, or its encoded form (checked).
 *
 * @since 0.1.0
 * @category models
 */
export type TestInput = TestRequest | typeof TestRequest.Encoded

/**
 * @since 0.1.0
 * @category models
 */
export type SubmitError = InvalidInput | GitError | WorktreeError

/**
 * @since 0.1.0
 * @category tags
 */
export class Orchestrator extends Context.Tag("grove/Orchestrator")<Orchestrator, {
  readonly session: Session["Type"]
  /** queues one test; suspends while the queue is full */
  readonly submit: (test: TestInput) => Effect.Effect<void, SubmitError>
  /** checks the whole batch, sorts it by the Scheduler's order, then queues it */
  readonly submitBatch: (tests: Iterable<TestInput>) => Effect.Effect<void, SubmitError>
  /** queues tests of a stored session that have no terminal status (--resume) */
  readonly submitPending: (tests: ReadonlyArray<PendingTest>) => Effect.Effect<void, SubmitError>
  /** submitBatch, then awaitCompletion */
  readonly runTests: (tests: Iterable<TestInput>) => Effect.Effect<Report, SubmitError>
  /**
   * waits for everything submitted so far, retries included, and returns the report:
   * the fold's session and counts with the tests read from the store
   */
  readonly awaitCompletion: Effect.Effect<Report>
  /** waits as `awaitCompletion` does, and returns the fold's state, not the tests */
  readonly awaitIdle: Effect.Effect<SessionState.SessionState>
  readonly status: Effect.Effect<Status>
  /** the session's folded state, updated as each event is logged */
  readonly state: Effect.Effect<SessionState.SessionState>
  /** session events, numbered as the store logged them, from the moment the stream runs */
  readonly events: Stream.Stream<Logged>
  /** a subscription that starts now: nothing published after this call is missed */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Logged>, never, Scope.Scope>
  /**
   * Stops taking tests: running attempts are terminated and, with waiting ones,
   * become CANCELLED. `interrupted` marks the session INTERRUPTED (a signal);
   * `immediate` skips the grace period between SIGTERM and SIGKILL (a second signal).
   */
  readonly stop: (options: { readonly interrupted: boolean; readonly immediate?: boolean }) => Effect.Effect<void>
}>() {}

const decodeRequest = Schema.decodeUnknownEither(TestRequest)

/**
 * A call's events for the session's log, the number of the first, and (with group
 * commit) the resume of the caller waiting for their write. A class, not an object
 * literal: V8 allocates a literal that a burst once kept alive straight in old space
 * from then on (allocation-site pretenuring), and a batch there would keep its young
 * events and its caller's fiber through every scavenge until the next full collection.
 */
class Batch {
  constructor(
    readonly events: ReadonlyArray<SessionEvent>,
    readonly first: number,
    readonly done: ((exit: Exit.Exit<void>) => void) | undefined
  ) {}
}

/**
 * TestQueued events written to the store per transaction. Small enough that a
 * transaction's own objects (payloads, statements, the folded state) die young: one of
 * 500 outlived two scavenges, and V8 promoted them all at once — a burst of old space
 * filling right before a full collection, which V8 then sized old space at four times
 * what lived (B1's CLI path, docs/design.md). One per test was most of a large
 * submission's time.
 */
const queuedChunk = 50

const duplicateId = "duplicate id: ids are unique in a session"

/**
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  Orchestrator["Type"],
  never,
  Scope.Scope | Git | Harness.Harness | Store | GroveConfigTag | Scheduler.Scheduler | Session
> = Effect.gen(function*() {
  const config = yield* GroveConfigTag
  const session = yield* Session
  const git = yield* Git
  const store = yield* Store
  const context = yield* Effect.context<Git | Harness.Harness | GroveConfigTag | Scheduler.Scheduler | Session>()
  const scheduler = yield* Scheduler.Scheduler

  // the pool and the runners live in their own scope, which the session's finalizer
  // closes itself once it has stopped them and recorded the end: the order of a
  // parent scope's finalizers (sequential or parallel) then does not matter
  const workScope = yield* Scope.make(ExecutionStrategy.sequential)

  const pubsub = yield* PubSub.unbounded<Logged>()
  const queue = yield* TestQueue.make(config.maxQueueSize)
  const stopped = yield* Deferred.make<void>()
  const hurry = yield* Deferred.make<void>()
  const interrupted = yield* Ref.make(false)
  const outstanding = yield* TRef.make(0)
  /** tests of the session, counted (a second test with an id the session holds is refused by asking the store) */
  let submitted = 0
  /** submissions one at a time, from the check of their ids to their TestQueued in the store */
  const submitting = yield* Effect.makeSemaphore(1)
  const failures = yield* Ref.make(0)
  const shas = new Map<string, string>()
  /** what the store said of each waiting or running test's history (expected duration, flakiness) */
  const histories = new Map<string, TestHistory>()
  /** queue order of the tests this run submits */
  let jobSeq = 0
  /** attempts an earlier run of a resumed session made of tests it did not finish */
  const earlierAttempts = new Map<string, ReadonlyArray<Attempt>>()

  // A resumed session (an id the store already holds, see Resume.ts) goes on from its
  // stored events: its fold, its numbering, the tests it finished (which cannot be
  // submitted again) and the attempts of those it did not.
  const prior = yield* stateOf(store, session.id).pipe(
    Effect.catchAll((e) => Effect.as(Effect.logWarning(`grove store: ${e.message}`), Option.none()))
  )
  if (Option.isSome(prior)) {
    yield* testStream(store, session.id).pipe(
      Stream.runForEach((test) =>
        Effect.sync(() => {
          submitted++
          if (!isTerminal(test.status) && test.attempts.length > 0) earlierAttempts.set(test.id, test.attempts)
        })
      ),
      Effect.catchAll((e) => Effect.logWarning(`grove store: ${e.message}`))
    )
  }
  // a plain Ref: only `publishAll` writes it, under the log's semaphore, and subscribers
  // follow the events; a SubscriptionRef would take a second lock and publish a second
  // stream for every event
  const state = yield* Ref.make(Option.getOrElse(prior, () => SessionState.initial(session.id)))
  /** the last sequence number of the session's log */
  let seq = Option.match(prior, { onNone: () => 0, onSome: (p) => p.seq })

  /**
   * A resumed test's result with the attempts of the earlier run in front. Its status
   * is FLAKY only when one of them, or of this run's, did not pass for a reason of its
   * own: an attempt cut short by grove's death (CANCELLED) does not make a test flaky.
   */
  const withEarlier = (ended: TestResult): TestResult => {
    const earlier = earlierAttempts.get(ended.id)
    if (earlier === undefined) return ended
    earlierAttempts.delete(ended.id)
    const attempts = [...earlier.filter((a) => !ended.attempts.some((b) => b.n === a.n)), ...ended.attempts]
    const status = isSuccess(ended.status)
      ? attempts.slice(0, -1).some((a) => isRetryable(a.status)) ? "FLAKY" : "PASSED"
      : ended.status
    return new TestResult({ ...ended, status, attempts, durationMs: attempts.reduce((sum, a) => sum + a.durationMs, 0) })
  }

  const meta = {
    repoRoot: session.repo.root,
    pid: process.pid,
    config: Config.snapshot(config),
    ...(yield* Heartbeat.ownerFacts)
  }

  /**
   * The session's log, with group commit. A call numbers its events (the next numbers,
   * in call order) and queues them; one writer takes every batch waiting, writes them
   * to the store in one transaction (with the rows they project), folds them into
   * `state` and only then publishes them and lets their callers go on. So an event is
   * in the store before anyone sees it, and concurrent workers share a transaction
   * instead of queueing for one each. A store that fails is warned about; the session
   * goes on. A defect of the write reaches the callers of that batch (their worker's
   * supervisor handles it); the writer goes on with the next one. A store with nothing
   * to share (`groupCommit: false`, the in-memory one) is written the same way by each
   * caller in turn, under a lock instead of through a queue and a writer fiber.
   */
  // (Effect.fnUntraced for what runs per test: one generator function, not a new one
  // per call, which V8 would give a prototype and maps of its own: Runner.ts)
  const writeBatches = Effect.fnUntraced(function*(batches: ReadonlyArray<Batch>) {
    const events = batches.flatMap((b) => b.events)
    const first = batches[0]!.first
    const head = events[0]!
    // SessionStarted carries the process's facts (pid, config snapshot) for its row
    const write = head._tag === "SessionStarted"
      ? Effect.zipRight(
        store.record(session.id, head, { seq: first, meta }),
        events.length === 1 ? Effect.void : store.recordAll(session.id, events.slice(1), { firstSeq: first + 1 })
      )
      : events.length === 1
      ? store.record(session.id, head, { seq: first })
      : store.recordAll(session.id, events, { firstSeq: first })
    yield* write.pipe(Effect.catchAll((e) => Effect.logWarning(`grove store: ${e.message}`)))
    const logged = events.map((event, i) => new Logged({ seq: first + i, event }, { disableValidation: true }))
    yield* Ref.update(state, (s) => logged.reduce(SessionState.update, s))
    yield* PubSub.publishAll(pubsub, logged)
  })
  /** batches of one transaction, at most (each holds at most `queuedChunk` events) */
  const groupLimit = 64
  /** the log of a store with group commit: callers queue, one writer takes what waits */
  const groupCommitted = Effect.gen(function*() {
    // each caller waits on its own resume callback (Effect.async), not a Deferred: one
    // object less per call, and what a caller holds while it waits is what V8 promotes.
    // The waiting batches are an array the writer splices from, not an Effect Queue: no
    // node and no Chunk per batch, and no object literal per wait that V8 could learn to
    // allocate in old space (see Batch). The latch is open while a batch waits.
    const pending: Array<Batch> = []
    const arrived = Effect.unsafeMakeLatch()
    // forked before the session's finalizer is added, so it is interrupted after it: the
    // finalizer's SessionFinished still gets written
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      if (pending.length === 0) {
        arrived.unsafeClose()
        yield* arrived.await
      }
      const batches = pending.splice(0, groupLimit)
      const exit = yield* Effect.exit(writeBatches(batches))
      for (const b of batches) b.done?.(exit)
    })))
    return (events: ReadonlyArray<SessionEvent>): Effect.Effect<void> =>
      events.length === 0 ? Effect.void : Effect.async<void>((resume) => {
        // numbered and queued in one step
        pending.push(numbered(events, resume))
        arrived.unsafeOpen()
      })
  })
  /** numbers a call's events: the log's order is the order of the calls */
  const numbered = (events: ReadonlyArray<SessionEvent>, done?: (exit: Exit.Exit<void>) => void): Batch => {
    const first = seq + 1
    seq += events.length
    return new Batch(events, first, done)
  }
  const publishAll: (events: ReadonlyArray<SessionEvent>) => Effect.Effect<void> = store.groupCommit === false
    ? yield* Effect.map(Effect.makeSemaphore(1), (lock) => (events: ReadonlyArray<SessionEvent>) =>
      // each caller writes its own events, one at a time: a write that yields halfway
      // must not let a later number be folded or published before it
      events.length === 0 ? Effect.void : lock.withPermits(1)(Effect.suspend(() => writeBatches([numbered(events)]))))
    : yield* groupCommitted
  const publish = (event: SessionEvent): Effect.Effect<void> => publishAll([event])

  /**
   * The result with its flakiness. Its fields are named, not spread from `ended`: V8 gave
   * each spread copy of a TestResult a map of its own, in old space (docs/design.md).
   * `ended` is a valid TestResult and flakiness a share: no need to validate it all again.
   * (`satisfies`: a field added to TestResult fails to compile until it is named here.)
   */
  const withFlakiness = (ended: TestResult, flakiness: number): TestResult =>
    new TestResult(
      {
        id: ended.id,
        name: ended.name,
        source: ended.source,
        ref: ended.ref,
        status: ended.status,
        durationMs: ended.durationMs,
        attempts: ended.attempts,
        ...(ended.keptWorktree === undefined ? {} : { keptWorktree: ended.keptWorktree }),
        flakiness
      } satisfies Record<Exclude<keyof typeof TestResult.fields, "keptWorktree">, unknown>,
      { disableValidation: true }
    )

  const finish: (ran: TestResult) => Effect.Effect<void> = Effect.fnUntraced(function*(ran: TestResult) {
    const ended = withEarlier(ran)
    const flakiness = flakinessWith(histories.get(ended.id), ended.status)
    histories.delete(ended.id)
    const result = flakiness === undefined ? ended : withFlakiness(ended, flakiness)
    yield* publish(Event.TestFinished({ result }))
    yield* STM.commit(TRef.update(outstanding, (n) => n - 1))
    if (!isSuccess(result.status) && result.status !== "CANCELLED") {
      const n = yield* Ref.updateAndGet(failures, (x) => x + 1)
      if (config.maxFail !== undefined && n >= config.maxFail) yield* stop({ interrupted: false })
    }
  })

  const cancel = (job: TestQueue.Job) =>
    finish(Runner.resultOf(job, job.attempts, undefined, "CANCELLED"))

  const cancelWaiting = Effect.flatMap(queue.drain, (jobs) => Effect.forEach(jobs, cancel, { discard: true }))

  const stop = (options: { readonly interrupted: boolean; readonly immediate?: boolean }) =>
    Effect.gen(function*() {
      if (options.interrupted) yield* Ref.set(interrupted, true)
      if (options.immediate === true) yield* Deferred.succeed(hurry, undefined)
      // closed first: an offer that has not happened yet gives false (its test is cancelled
      // by whoever offered it), one that has is drained below
      yield* queue.close
      yield* Deferred.succeed(stopped, undefined)
      yield* cancelWaiting
    })

  const background = yield* FiberSet.make<void, never>().pipe(Scope.extend(workScope))

  const retryLater = (job: TestQueue.Job, delay: Duration.Duration) =>
    FiberSet.run(
      background,
      Effect.raceFirst(
        Effect.sleep(delay).pipe(Effect.as(true)),
        Deferred.await(stopped).pipe(Effect.as(false))
      ).pipe(
        Effect.flatMap((due) => due ? enqueue(job, queue.requeue) : cancel(job))
      )
    ).pipe(Effect.asVoid)

  /** queues the job (`put` suspends while the queue is full); once the queue is closed the job is cancelled */
  const enqueue = (job: TestQueue.Job, put: (job: TestQueue.Job) => Effect.Effect<boolean>): Effect.Effect<void> =>
    Effect.flatMap(put(job), (queued) => queued ? Effect.void : cancel(job))

  /** what the workers report to and take their orders from */
  const coordinator = Runner.Coordinator.of({
    publish,
    finish,
    retryLater,
    abandon: () => STM.commit(TRef.update(outstanding, (n) => n - 1)),
    stopped,
    hurry: Deferred.await(hurry)
  })

  /**
   * The workers' layer: the Runner service over this session's queue, its coordinator
   * and the worktree pool (which makes no worktree before a test is taken).
   */
  const remote = Context.get(context, Runner.RemoteExecutor)
  const work = Runner.layer.pipe(
    Layer.provide(
      Option.isSome(remote)
        ? remote.value
        : Runner.layerLocal.pipe(Layer.provide(WorktreePool.layer))
    ),
    Layer.provide(Layer.succeedContext(
      Context.make(Runner.Coordinator, coordinator).pipe(Context.add(TestQueue.TestQueue, queue))
    ))
  )

  // the pool and the runners start with the first accepted submission: bad input creates nothing
  const start = yield* Effect.cached(
    Effect.gen(function*() {
      // the pool's finalizers belong to the work scope, not to the caller of the first submit
      const runner = Context.get(
        yield* Layer.buildWithScope(work, workScope).pipe(Effect.provide(context)),
        Runner.Runner
      )
      // one sleeping fiber for every attempt's deadline, not one per attempt
      const deadlines = yield* Harness.makeDeadlines.pipe(Scope.extend(workScope))
      for (let slot = 1; slot <= config.workers; slot++) {
        yield* FiberSet.run(background, Effect.provideService(runner.run(slot), Harness.Deadlines, deadlines))
      }
    })
  )

  /** the report: the fold's session and counts, the tests from the store */
  const report = Effect.gen(function*() {
    const tests = yield* Stream.runCollect(testStream(store, session.id)).pipe(
      Effect.catchAll((e) => Effect.as(Effect.logWarning(`grove store: ${e.message}`), Chunk.empty<TestResult>()))
    )
    return ReportModule.fromState(yield* Ref.get(state), Chunk.toReadonlyArray(tests), {
      at: yield* Clock.currentTimeMillis,
      interrupted: yield* Ref.get(interrupted)
    })
  })

  const completed = STM.commit(STM.flatMap(TRef.get(outstanding), (n) => n > 0 ? STM.retry : STM.void))
  const awaitCompletion = Effect.zipRight(completed, report)

  const resolve = (refName: string) =>
    Effect.suspend(() => {
      const known = shas.get(refName)
      return known !== undefined
        ? Effect.succeed(known)
        : Effect.tap(git.resolveRef(session.repo, refName), (sha) => Effect.sync(() => shas.set(refName, sha)))
    })

  /** checks every test of a batch, listing all problems at once */
  const accept = (inputs: ReadonlyArray<TestInput>) =>
    Effect.gen(function*() {
      const issues: Array<Issue> = []
      const requests: Array<TestRequest> = []
      const seen = new Set<string>()
      inputs.forEach((input, i) => {
        const decoded = input instanceof TestRequest ? { _tag: "Right" as const, right: input } : decodeRequest(input)
        if (decoded._tag === "Left") {
          const where = typeof (input as { id?: unknown }).id === "string" ? `test ${(input as { id: string }).id}` : `test #${i + 1}`
          issues.push(new Issue({ where, message: ParseResult.TreeFormatter.formatErrorSync(decoded.left) }))
          return
        }
        const r = decoded.right
        if (seen.has(r.id)) {
          issues.push(new Issue({ where: `test ${r.id}`, message: duplicateId }))
          return
        }
        seen.add(r.id)
        requests.push(r)
      })
      // ids of earlier submissions: the store holds them (a store that cannot say is warned about)
      const known = yield* store.queued(session.id, requests.map((r) => r.id)).pipe(
        Effect.catchAll((e) => Effect.as(Effect.logWarning(`grove store: ${e.message}`), new Set<string>()))
      )
      for (const r of requests) if (known.has(r.id)) issues.push(new Issue({ where: `test ${r.id}`, message: duplicateId }))
      const resolved: Array<{ readonly request: TestRequest; readonly sha: string; readonly refName: string }> = []
      for (const request of requests) {
        const refName = request.ref ?? session.baseRef
        const sha = request.ref === undefined
          ? session.baseSha
          : yield* resolve(refName).pipe(
            Effect.catchTag("GitError", (e) => {
              if (e.reason !== "UnknownRef") return Effect.fail(e)
              issues.push(new Issue({ where: `test ${request.id}`, message: e.message }))
              return Effect.succeed("")
            })
          )
        resolved.push({ request, sha, refName })
      }
      if (issues.length > 0) return yield* Effect.fail(new InvalidInput({ issues: issues as [Issue, ...Array<Issue>] }))
      // a resumed session's own tests are counted from the store (above), not again when they re-enter
      submitted += resolved.length
      return resolved
    })

  const toJobs = (
    tests: ReadonlyArray<{ readonly request: TestRequest; readonly sha: string; readonly refName: string; readonly priorAttempts?: number }>
  ) =>
    Effect.gen(function*() {
      const history = yield* store.history(tests.map((t) => t.request.id)).pipe(
        Effect.catchAll((e) => Effect.as(Effect.logWarning(`grove store: ${e.message}`), new Map()))
      )
      return tests.map(({ priorAttempts, refName, request, sha }): TestQueue.Job => {
        const known = history.get(request.id)
        if (known !== undefined) histories.set(request.id, known)
        const expectedMs = known?.expectedMs
        const timeout = request.timeout ??
          (config.timeoutPercent !== undefined && expectedMs !== undefined
            ? Duration.millis(Math.max(1, Math.ceil(expectedMs * config.timeoutPercent / 100)))
            : config.timeout)
        return {
          seq: jobSeq++,
          priority: request.priority,
          expectedMs,
          retry: false,
          resources: request.resources,
          request,
          sha,
          refName,
          timeout,
          attempts: [],
          priorAttempts: priorAttempts ?? 0
        }
      })
    })

  /** the jobs' TestQueued events, in queue order; returns them in that order */
  const recordQueued = (jobs: ReadonlyArray<TestQueue.Job>) =>
    Effect.gen(function*() {
      if (jobs.length === 0) return jobs
      yield* start
      yield* STM.commit(TRef.update(outstanding, (n) => n + jobs.length))
      const sorted = [...jobs].sort(scheduler.order)
      // written in chunks, a transaction each (one per test was most of a large submission's time)
      for (let i = 0; i < sorted.length; i += queuedChunk) {
        yield* publishAll(sorted.slice(i, i + queuedChunk).map((job) =>
          Event.TestQueued({ test: job.request, sha: job.sha, refName: job.refName, expectedMs: job.expectedMs })
        ))
      }
      return sorted
    })
  /** into the waiting room, waiting for room there (backpressure) */
  const enqueueAll = (sorted: ReadonlyArray<TestQueue.Job>) => Effect.forEach(sorted, (job) => enqueue(job, queue.offer), { discard: true })

  // one submission at a time until its tests are in the store, where the next one's check
  // finds them; the wait for room in the queue is outside the lock
  const submitBatch = (tests: Iterable<TestInput>) =>
    submitting.withPermits(1)(accept([...tests]).pipe(Effect.flatMap(toJobs), Effect.flatMap(recordQueued))).pipe(
      Effect.flatMap(enqueueAll)
    )

  yield* publish(Event.SessionStarted({
    sessionId: session.id,
    baseRef: session.baseRef,
    baseSha: session.baseSha,
    workers: config.workers,
    startedAt: session.startedAt,
    ...(session.rerunOf === undefined ? {} : { rerunOf: session.rerunOf })
  }))
  // the owner's heartbeat while the session runs (Heartbeat.ts), until its scope closes
  yield* Effect.forkScoped(Heartbeat.run(session.id))

  yield* Effect.addFinalizer((exit) =>
    Effect.gen(function*() {
      const left = yield* STM.commit(TRef.get(outstanding))
      if (left > 0 || Exit.isInterrupted(exit)) yield* stop({ interrupted: left > 0 || Exit.isInterrupted(exit) })
      // idle workers wait in take: closing the queue ends them
      yield* queue.close
      yield* Deferred.succeed(stopped, undefined)
      yield* completed
      const counts = (yield* Ref.get(state)).counts
      yield* publish(Event.SessionFinished({
        status: SessionState.endStatus(counts, { interrupted: yield* Ref.get(interrupted) }),
        completedAt: yield* Clock.currentTimeMillis,
        counts
      }))
      yield* PubSub.shutdown(pubsub)
      yield* Scope.close(workScope, exit)
    })
  )

  return {
    session,
    submit: (test) => submitBatch([test]),
    submitBatch,
    submitPending: (tests) =>
      submitting.withPermits(1)(
        toJobs(tests.map((t) => ({ request: t.request, sha: t.sha, refName: t.refName, priorAttempts: t.attempts }))).pipe(
          Effect.flatMap(recordQueued)
        )
      ).pipe(Effect.flatMap(enqueueAll)),
    runTests: (tests) => Effect.zipRight(submitBatch(tests), awaitCompletion),
    awaitCompletion,
    awaitIdle: Effect.zipRight(completed, Ref.get(state)),
    status: Effect.gen(function*() {
      const now = yield* Ref.get(state)
      return {
        sessionId: session.id,
        submitted,
        waiting: HashMap.size(now.waiting),
        running: SessionState.slots(now).flatMap((r) =>
          r === undefined ? [] : [{ testId: r.testId, worker: r.worker, attempt: r.n, startedAt: r.startedAt }]
        ),
        totals: SessionState.totals(now.counts),
        stopping: yield* Deferred.isDone(stopped)
      }
    }),
    state: Ref.get(state),
    events: Stream.fromPubSub(pubsub),
    subscribe: PubSub.subscribe(pubsub),
    stop
  }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  Orchestrator,
  never,
  Git | Harness.Harness | Store | GroveConfigTag | Scheduler.Scheduler | Session
> = Layer.scoped(Orchestrator, make)

/**
 * The Orchestrator with its session and the default queue policy: give it Config,
 * Git, Harness and Store layers.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSession = (
  options: SessionModule.Options
): Layer.Layer<Orchestrator | Session, GitError, Git | Harness.Harness | Store | GroveConfigTag> =>
  layer.pipe(
    Layer.provideMerge(SessionModule.layer(options)),
    Layer.provide(Scheduler.layer)
  )
