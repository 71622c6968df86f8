/**
 * SIGINT/SIGTERM/SIGHUP as a scoped stream of events. While the scope is open,
 * the signals do not kill Node: grove decides (SPEC §4, Signals).
 *
 * SIGHUP is what a run gets when its terminal goes away (an SSH drop, a closed
 * tab, `tmux kill-session`): without a handler Node dies at once and leaves its
 * locked worktrees, its process groups and a session stuck RUNNING.
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
export type Signal = "SIGINT" | "SIGTERM" | "SIGHUP"

/**
 * The signals grove stops on, first to last.
 *
 * @since 0.1.0
 * @category models
 */
export const signals: ReadonlyArray<Signal> = ["SIGINT", "SIGTERM", "SIGHUP"]

/**
 * Exit code of a run stopped by a signal: 128 + the signal's number (SPEC §6).
 *
 * @since 0.1.0
 * @category utils
 */
export const exitCodeOf = (signal: Signal): number => (signal === "SIGINT" ? 130 : signal === "SIGHUP" ? 129 : 143)

/**
 * Listens to SIGINT, SIGTERM and SIGHUP until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen: Effect.Effect<Queue.Dequeue<Signal>, never, Scope.Scope> = Effect.gen(function*() {
  const queue = yield* Queue.unbounded<Signal>()
  const handlers = signals.map((signal) => [signal, () => Queue.unsafeOffer(queue, signal)] as const)
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      for (const [signal, handler] of handlers) process.on(signal, handler)
    }),
    () =>
      Effect.sync(() => {
        for (const [signal, handler] of handlers) process.off(signal, handler)
      })
  )
  return queue
})
