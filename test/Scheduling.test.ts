/**
 * Scheduling by history (SPEC §4 Order and Timeout): the whole system in memory
 * (`Testing.layer`) with one in-memory store shared by successive sessions, on TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import type * as Config from "../src/Config.js"
import { type Report, Step, TestRequest } from "../src/Domain.js"
import * as Harness from "../src/Harness.js"
import { Orchestrator } from "../src/Orchestrator.js"
import * as Scheduler from "../src/Scheduler.js"
import * as Store from "../src/Store.js"
import * as Testing from "../src/Testing.js"

const req = (id: string, fields: Partial<ConstructorParameters<typeof TestRequest>[0]> = {}) =>
  new TestRequest({
    id: id as TestRequest["id"],
    name: id,
    source: "test",
    steps: [new Step({ shell: "sh", script: `run ${id}` })],
    ...fields
  })

/** what one session saw: its report and every harness run */
interface Seen {
  readonly report: Report
  readonly runs: ReadonlyArray<Harness.RecordedRun>
}

/** one session on the shared store, run to its end on TestClock */
const session = (
  store: Store.Store["Type"],
  tests: ReadonlyArray<TestRequest>,
  options: { readonly script: Harness.Script; readonly config?: Partial<Config.GroveConfig> }
): Effect.Effect<Seen> =>
  Effect.gen(function*() {
    const orch = yield* Orchestrator
    const fiber = yield* Effect.fork(orch.runTests(tests))
    yield* TestClock.adjust("10 minutes")
    const report = yield* Fiber.join(fiber)
    const runs = yield* Effect.flatMap(Harness.HarnessMemory, (h) => h.runs)
    return { report, runs }
  }).pipe(
    Effect.scoped,
    Effect.provide(Testing.layer({
      script: options.script,
      config: { workers: 2, retries: 0, ...options.config },
      store: Layer.succeed(Store.Store, store)
    })),
    Effect.orDie
  )

/** wall time of a session: first start to last end of its attempts */
const makespan = (runs: ReadonlyArray<Harness.RecordedRun>) =>
  Math.max(...runs.map((r) => r.endedAt ?? Infinity)) - Math.min(...runs.map((r) => r.startedAt))

const byDuration = (durations: Readonly<Record<string, number>>): Harness.Script => (spec) =>
  Effect.succeed({ exitCode: 0, durationMs: durations[spec.testId] ?? 1_000 })

describe("scheduling by history", () => {
  it.scoped("a skewed set: the first session misses the lower bound, the second (stored durations) reaches it", () =>
    Effect.gen(function*() {
      const store = yield* Store.makeMemory
      // eight short tests and one long one, submitted last
      const durations: Record<string, number> = { long: 10_000 }
      const ids = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "long"]
      for (const id of ids) durations[id] ??= 1_000
      const tests = ids.map((id) => req(id))
      const bound = Scheduler.lowerBound(ids.map((id) => durations[id]!), 2)
      assert.strictEqual(bound, 10_000)

      const first = yield* session(store, tests, { script: byDuration(durations) })
      assert.strictEqual(first.report.session.status, "COMPLETE")
      // no history: submission order, so the long test starts once the short ones are done
      assert.strictEqual(makespan(first.runs), 14_000)
      assert.isAbove(makespan(first.runs), bound)
      assert.strictEqual(first.runs.find((r) => r.spec.testId === "long")!.startedAt - first.runs[0]!.startedAt, 4_000)

      const second = yield* session(store, tests, { script: byDuration(durations) })
      assert.strictEqual(second.report.session.status, "COMPLETE")
      // stored medians: the long test starts first and the short ones fill the other worker
      assert.strictEqual(second.runs[0]!.spec.testId, "long")
      assert.strictEqual(makespan(second.runs), bound)
      assert.strictEqual(second.report.session.durationMs, bound)
    }))

  it.scoped("--timeout 300%: each test gets 3 × its median; no history → the configured timeout", () =>
    Effect.gen(function*() {
      const tests = [req("a"), req("b"), req("fresh"), req("own", { timeout: Duration.seconds(7) })]
      // three sessions of history: a took 2s, 4s, 3s (median 3s); b 1s each time; own 1s
      const withHistory = Effect.gen(function*() {
        const store = yield* Store.makeMemory
        for (const aMs of [2_000, 4_000, 3_000]) {
          const seen = yield* session(store, tests.filter((t) => t.id !== "fresh"), {
            script: byDuration({ a: aMs, b: 1_000, own: 1_000 })
          })
          assert.strictEqual(seen.report.session.status, "COMPLETE")
        }
        const history = yield* store.history(tests.map((t) => t.id))
        assert.strictEqual(history.get(tests[0]!.id)?.expectedMs, 3_000)
        return store
      })
      const store = yield* withHistory

      // now a hangs for 10s: past 3 × 3s it times out, at exactly 9s
      const seen = yield* session(store, tests, {
        script: byDuration({ a: 10_000, b: 1_000, fresh: 1_000, own: 1_000 }),
        config: { timeoutPercent: 300, timeout: Duration.seconds(45) }
      })
      const a = seen.report.tests.find((t) => t.id === "a")!
      assert.strictEqual(a.status, "TIMED_OUT")
      assert.strictEqual(a.attempts[0]!.durationMs, 9_000)
      assert.strictEqual(seen.report.tests.find((t) => t.id === "b")!.status, "PASSED")

      // the deadline each test got: every one hangs, and is stopped at its timeout
      // (each on a store of its own with the same history: a session adds to it)
      const hung = (config: Partial<Config.GroveConfig>) =>
        Effect.flatMap(withHistory, (store) => session(store, tests, { script: () => Effect.never, config })).pipe(Effect.map(({ report, runs }) => {
          for (const t of report.tests) assert.strictEqual(t.status, "TIMED_OUT", t.id)
          assert.isTrue(runs.every((r) => r.stopped), "the Runner's deadline stopped each attempt")
          return (id: string) => {
            const r = runs.find((r) => r.spec.testId === id)!
            return r.endedAt! - r.startedAt
          }
        }))
      const timeoutOf = yield* hung({ timeoutPercent: 300, timeout: Duration.seconds(45) })
      assert.strictEqual(timeoutOf("a"), 9_000)
      assert.strictEqual(timeoutOf("b"), 3_000)
      assert.strictEqual(timeoutOf("fresh"), 45_000, "no history: the configured timeout")
      assert.strictEqual(timeoutOf("own"), 7_000, "a test's own timeout wins")

      // without the percentage, the same history changes nothing about timeouts
      const plain = yield* hung({ timeout: Duration.seconds(45) })
      for (const t of tests) assert.strictEqual(plain(t.id), t.id === "own" ? 7_000 : 45_000, t.id)
    }))

  it.scoped("flakiness: each result carries the share of FLAKY among its recent finished sessions, this one included", () =>
    Effect.gen(function*() {
      const store = yield* Store.makeMemory
      const flakyOnce: Harness.Script = (spec) => Effect.succeed({ exitCode: spec.attempt === 1 ? 1 : 0 })
      const passing = byDuration({})
      const tests = [req("t")]
      const config = { retries: 1, retryBase: Duration.millis(10), retryCap: Duration.millis(10) }
      const first = yield* session(store, tests, { script: flakyOnce, config })
      assert.strictEqual(first.report.tests[0]!.status, "FLAKY")
      assert.strictEqual(first.report.tests[0]!.flakiness, 1)
      const second = yield* session(store, tests, { script: passing, config })
      assert.strictEqual(second.report.tests[0]!.flakiness, 1 / 2)
      const third = yield* session(store, tests, { script: passing, config })
      assert.strictEqual(third.report.tests[0]!.flakiness, 1 / 3)
      // the store keeps the figure with the execution, and history agrees
      const stored = Option.getOrThrow(yield* store.report(third.report.session.id))
      assert.strictEqual(stored.tests[0]!.flakiness, 1 / 3)
      assert.strictEqual((yield* store.history(tests.map((t) => t.id))).get(tests[0]!.id)?.flakiness, 1 / 3)
    }))
})
