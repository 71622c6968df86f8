/**
 * The pure policy that picks the next test (SPEC §4): higher priority first; a retry
 * before waiting tests of equal priority; then the longest expected duration (unknown
 * counts as longest); ties in submission order. Tests sharing a resource never run at
 * once: the queue skips to the best test whose resources are all free (TestQueue).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Order from "effect/Order"

/**
 * What the policy looks at.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  /** submission order, unique in a session */
  readonly seq: number
  readonly priority: number
  /** median of past durations; undefined when unknown (counts as longest) */
  readonly expectedMs: number | undefined
  readonly retry: boolean
  readonly resources: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Scheduler extends Context.Tag("grove/Scheduler")<Scheduler, {
  /** best first; the TestQueue takes the first waiting test in this order whose resources are all free */
  readonly order: Order.Order<Entry>
}>() {}

const expected = (e: Entry): number => e.expectedMs ?? Number.POSITIVE_INFINITY

/**
 * Priority, retries first, longest expected first, then FIFO.
 *
 * @since 0.1.0
 * @category constructors
 */
export const longestFirstOrder: Order.Order<Entry> = Order.combineAll([
  Order.reverse(Order.mapInput(Order.number, (e: Entry) => e.priority)),
  Order.reverse(Order.mapInput(Order.boolean, (e: Entry) => e.retry)),
  Order.reverse(Order.mapInput(Order.number, expected)),
  Order.mapInput(Order.number, (e: Entry) => e.seq)
])

/**
 * A scheduler from an order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (order: Order.Order<Entry>): Scheduler["Type"] => ({ order })

/**
 * The default policy of SPEC §4.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Scheduler> = Layer.succeed(Scheduler, make(longestFirstOrder))

/**
 * Lower bound of a session's makespan (SPEC §4): max(total / workers, longest).
 *
 * @since 0.1.0
 * @category constructors
 */
export const lowerBound = (durationsMs: ReadonlyArray<number>, workers: number): number =>
  durationsMs.length === 0 ? 0 : Math.max(durationsMs.reduce((a, b) => a + b, 0) / workers, Math.max(...durationsMs))
