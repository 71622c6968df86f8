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
}

/**
 * @since 0.1.0
 * @category tags
 */
export class TestQueue extends Context.Tag("grove/TestQueue")<TestQueue, {
  /** adds a new test; suspends while the queue is full */
  readonly offer: (entry: Job) => Effect.Effect<void>
  /** adds a new test when there is room now; false (and nothing added) when the queue is full */
  readonly tryOffer: (entry: Job) => Effect.Effect<boolean>
  /** sorts the batch by the Scheduler's order, then offers it in that order */
  readonly offerAll: (entries: Iterable<Job>) => Effect.Effect<void>
  /** puts a retry back; it never waits for a slot */
  readonly requeue: (entry: Job) => Effect.Effect<void>
  /** the best waiting test whose resources are free; suspends until there is one */
  readonly take: Effect.Effect<Job>
  /** what `take` would take now, without suspending: none when no waiting test is free to run */
  readonly poll: Effect.Effect<Option.Option<Job>>
  /** frees the resources a taken test held */
  readonly release: (entry: Job) => Effect.Effect<void>
  /** removes and returns every waiting test (used when the session stops) */
  readonly drain: Effect.Effect<ReadonlyArray<Job>>
  /** waiting tests (retries included) */
  readonly size: Effect.Effect<number>
}>() {}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (capacity: number): Effect.Effect<TestQueue["Type"], never, Scheduler.Scheduler> =>
  Effect.gen(function*() {
    const scheduler = yield* Scheduler.Scheduler
    const waiting = yield* TRef.make<ReadonlyArray<Job>>([])
    /** new tests waiting; retries are not counted against the capacity */
    const fresh = yield* TRef.make(0)
    const busy = yield* TRef.make<ReadonlySet<string>>(new Set())

    const offerSTM = (entry: Job) =>
      STM.gen(function*() {
        if ((yield* TRef.get(fresh)) >= capacity) return false
        yield* TRef.update(fresh, (n) => n + 1)
        yield* TRef.update(waiting, Array.append<Job>(entry))
        return true
      })
    const offer = (entry: Job) => STM.commit(STM.flatMap(offerSTM(entry), (added) => added ? STM.void : STM.retry))
    const tryOffer = (entry: Job) => STM.commit(offerSTM(entry))

    const requeue = (entry: Job) =>
      TRef.update(waiting, Array.append<Job>(entry)).pipe(STM.commit)

    const takeSTM = STM.gen(function*() {
      const list = yield* TRef.get(waiting)
      const held = yield* TRef.get(busy)
      const i = scheduler.pick(list, held)
      if (i === -1) return Option.none<Job>()
      const entry = list[i]!
      yield* TRef.set(waiting, Array.remove(list, i))
      if (!entry.retry) yield* TRef.update(fresh, (n) => n - 1)
      if (entry.resources.length > 0) yield* TRef.set(busy, new Set([...held, ...entry.resources]))
      return Option.some(entry)
    })
    const take = STM.commit(STM.flatMap(takeSTM, Option.match({ onNone: () => STM.retry, onSome: STM.succeed })))
    const poll = STM.commit(takeSTM)

    const release = (entry: Job) =>
      entry.resources.length === 0 ? Effect.void : TRef.update(busy, (held) => {
        const next = new Set(held)
        for (const r of entry.resources) next.delete(r)
        return next
      }).pipe(STM.commit)

    const drain = STM.gen(function*() {
      const list = yield* TRef.getAndSet(waiting, [])
      yield* TRef.set(fresh, 0)
      return list
    }).pipe(STM.commit)

    return {
      offer,
      tryOffer,
      offerAll: (entries) => Effect.forEach(Array.sort(entries, scheduler.order), offer, { discard: true }),
      requeue,
      take,
      poll,
      release,
      drain,
      size: STM.commit(STM.map(TRef.get(waiting), (l) => l.length))
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
