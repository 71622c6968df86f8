/**
 * Counting forks: a Supervisor that counts the fibers started under it (the tests
 * that hold the engine to a number of fibers per attempt).
 */
import * as Effect from "effect/Effect"
import * as Supervisor from "effect/Supervisor"

/** counts the fibers started under it */
export class ForkCounter extends Supervisor.AbstractSupervisor<number> {
  forks = 0
  get value() {
    return Effect.sync(() => this.forks)
  }
  override onStart() {
    this.forks++
  }
}
