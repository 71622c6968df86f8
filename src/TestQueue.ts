/**
 * The waiting room of a session: a bounded set of waiting tests ordered by the
 * Scheduler, with resource locks. `offer` suspends while `maxQueueSize` tests wait
 * (backpressure); a retry re-enters without needing a slot; `take` suspends until a
 * test whose resources are free is waiting, and holds those resources until
 * `release`.
 *
 * @since 0.1.0
 */
import * as Array from "effect/Array"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RedBlackTree from "effect/RedBlackTree"
import type * as Schedule from "effect/Schedule"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import { GroveConfigTag } from "./Config.js"
import type { Attempt, TestRequest } from "./Domain.js"
import * as Scheduler from "./Scheduler.js"

/**
 * A test waiting to run, or to run again.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job extends Scheduler.Entry {
  readonly request: TestRequest
  readonly sha: string
  /** the ref as the user named it */
  readonly refName: string
  /** per-attempt timeout, resolved from the request, --timeout N% and the Config */
  readonly timeout: Duration.Duration
  /** attempts made so far in this session, oldest first */
  readonly attempts: ReadonlyArray<Attempt>
  /** attempts made before this session resumed it; numbering continues after them */
  readonly priorAttempts: number
  /**
   * the test's retry Schedule (the Config's `retryPolicy`) and its state after the
   * attempts so far; made at the first attempt that did not pass (most tests never need one)
   */
  readonly retrySchedule?: { readonly schedule: Schedule.Schedule<unknown, Attempt>; readonly state: unknown } | undefined
}

/**
 * @since 0.1.0
 * @category tags
 */
export class TestQueue extends Context.Tag("grove/TestQueue")<TestQueue, {
  /** adds a new test, suspending while the queue is full; false (nothing added) once it is closed */
  readonly offer: (entry: Job) => Effect.Effect<boolean>
  /** sorts the batch by the Scheduler's order, then offers it in that order */
  readonly offerAll: (entries: Iterable<Job>) => Effect.Effect<void>
  /** puts a retry back; it never waits for a slot; false (nothing added) once the queue is closed */
  readonly requeue: (entry: Job) => Effect.Effect<boolean>
  /** the best waiting test whose resources are free, suspending until there is one; none once the queue is closed */
  readonly take: Effect.Effect<Option.Option<Job>>
  /** frees the resources a taken test held */
  readonly release: (entry: Job) => Effect.Effect<void>
  /**
   * closes the queue (the session stops): suspended and later offers give false, takes
   * none; the tests waiting stay until `drain`
   */
  readonly close: Effect.Effect<void>
  /** removes and returns every waiting test (used when the session stops) */
  readonly drain: Effect.Effect<ReadonlyArray<Job>>
  /** waiting tests (retries included) */
  readonly size: Effect.Effect<number>
}>() {}

/**
 * Waiting tests, best first (the Scheduler's order), in an immutable red-black tree: a
 * new test or a retry goes in at its place and the best free one is found from the
 * front, both in O(log n), where a sorted array copied on every change was O(n) and
 * made a large `maxQueueSize` quadratic (issue 6, B1). Jobs are unique in it (a test is
 * waiting, running or done), so the order never sees two equal keys.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (capacity: number): Effect.Effect<TestQueue["Type"], never, Scheduler.Scheduler> =>
  Effect.gen(function*() {
    const scheduler = yield* Scheduler.Scheduler
    const empty = RedBlackTree.empty<Job, true>(scheduler.order)
    const waiting = yield* TRef.make(empty)
    /** new tests waiting; retries are not counted against the capacity */
    const fresh = yield* TRef.make(0)
    const busy = yield* TRef.make<ReadonlySet<string>>(new Set())
    const closed = yield* TRef.make(false)

    const add = (entry: Job) => TRef.update(waiting, RedBlackTree.insert(entry, true as const))

    // one generator function for every offer (the entry is its `this`): V8 gives a
    // generator function made per call a prototype and maps of its own (Runner.ts)
    const offering = function*(this: Job) {
      if (yield* TRef.get(closed)) return false
      if ((yield* TRef.get(fresh)) >= capacity) return yield* STM.retry
      yield* TRef.update(fresh, (n) => n + 1)
      yield* add(this)
      return true
    }
    const offer = (entry: Job) => STM.commit(STM.gen(entry, offering))

    const requeue = (entry: Job) =>
      STM.gen(function*() {
        if (yield* TRef.get(closed)) return false
        yield* add(entry)
        return true
      }).pipe(STM.commit)

    /** the best entry whose resources are all free (the first one, unless resources are held) */
    const pick = (tree: RedBlackTree.RedBlackTree<Job, true>, held: ReadonlySet<string>): Job | undefined => {
      for (const [entry] of tree) if (!entry.resources.some((r) => held.has(r))) return entry
      return undefined
    }

    const take = STM.gen(function*() {
      if (yield* TRef.get(closed)) return Option.none<Job>()
      const tree = yield* TRef.get(waiting)
      const held = yield* TRef.get(busy)
      const entry = pick(tree, held)
      if (entry === undefined) return yield* STM.retry
      yield* TRef.set(waiting, RedBlackTree.removeFirst(tree, entry))
      if (!entry.retry) yield* TRef.update(fresh, (n) => n - 1)
      if (entry.resources.length > 0) yield* TRef.set(busy, new Set([...held, ...entry.resources]))
      return Option.some(entry)
    }).pipe(STM.commit)

    const release = (entry: Job) =>
      entry.resources.length === 0 ? Effect.void : TRef.update(busy, (held) => {
        const next = new Set(held)
        for (const r of entry.resources) next.delete(r)
        return next
      }).pipe(STM.commit)

    const drain = STM.gen(function*() {
      const tree = yield* TRef.getAndSet(waiting, empty)
      yield* TRef.set(fresh, 0)
      return globalThis.Array.from(RedBlackTree.keys(tree))
    }).pipe(STM.commit)

    return {
      offer,
      offerAll: (entries) => Effect.forEach(Array.sort(entries, scheduler.order), offer, { discard: true }),
      requeue,
      take,
      release,
      close: STM.commit(TRef.set(closed, true)),
      drain,
      size: STM.commit(STM.map(TRef.get(waiting), RedBlackTree.size))
    }
  })

/**
 * A queue sized by `maxQueueSize` of the Config.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<TestQueue, never, Scheduler.Scheduler | GroveConfigTag> = Layer.effect(
  TestQueue,
  Effect.flatMap(GroveConfigTag, (config) => make(config.maxQueueSize))
)
