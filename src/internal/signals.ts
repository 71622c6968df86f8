/**
 * SIGINT/SIGTERM as a scoped stream of events. While the scope is open, the
 * signals do not kill Node: grove decides (SPEC §4, Signals).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category models
 */
export type Signal = "SIGINT" | "SIGTERM"

/**
 * Exit code of a run stopped by a signal.
 *
 * @since 0.1.0
 * @category utils
 */
export const exitCodeOf = (signal: Signal): number => (signal === "SIGINT" ? 130 : 143)

/**
 * Listens to SIGINT and SIGTERM until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen: Effect.Effect<Queue.Dequeue<Signal>, never, Scope.Scope> = Effect.gen(function*() {
  const queue = yield* Queue.unbounded<Signal>()
  const onInt = () => Queue.unsafeOffer(queue, "SIGINT")
  const onTerm = () => Queue.unsafeOffer(queue, "SIGTERM")
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      process.on("SIGINT", onInt)
      process.on("SIGTERM", onTerm)
    }),
    () =>
      Effect.sync(() => {
        process.off("SIGINT", onInt)
        process.off("SIGTERM", onTerm)
      })
  )
  return queue
})
