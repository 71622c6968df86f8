import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as Config from "../src/Config.js"
import { Step, TestRequest } from "../src/Domain.js"
import * as Git from "../src/Git.js"
import * as Harness from "../src/Harness.js"
import * as OrchestratorModule from "../src/Orchestrator.js"
import { Orchestrator } from "../src/Orchestrator.js"
import * as Store from "../src/Store.js"
import * as Testing from "../src/Testing.js"
import { ForkCounter } from "./support/forks.js"

const req = (id: string, fields: Partial<ConstructorParameters<typeof TestRequest>[0]> = {}) =>
  new TestRequest({
    id: id as TestRequest["id"],
    name: id,
    source: "test",
    steps: [new Step({ shell: "sh", script: `run ${id}` })],
    ...fields
  })

const runs = Effect.flatMap(Harness.HarnessMemory, (h) => h.runs)

/** start of each run by test id, in start order */
const starts = Effect.map(runs, (rs) => rs.map((r) => ({ id: r.spec.testId, n: r.spec.attempt, at: r.startedAt, end: r.endedAt ?? Infinity })))

/** the in-memory store, except that recording the first event of `tag` dies */
const dyingOnce = (tag: string): Layer.Layer<Store.Store> =>
  Layer.effect(
    Store.Store,
    Effect.map(Store.makeMemory, (store) => {
      let died = false
      return {
        ...store,
        record: (sessionId, event, options) => {
          if (event._tag !== tag || died) return store.record(sessionId, event, options)
          died = true
          return Effect.dieMessage("the store died")
        }
      }
    })
  )

/** the in-memory Git, except that the first state check of a worktree dies */
const gitDyingOnce: Layer.Layer<Git.Git> = Layer.effect(
  Git.Git,
  Effect.map(Git.makeMemory({ repos: [Testing.defaultRepo] }), ({ git }) => {
    let died = false
    return {
      ...git,
      state: (...args) => {
        if (died) return git.state(...args)
        died = true
        return Effect.dieMessage("git died")
      }
    }
  })
)


describe("Orchestrator (in memory, TestClock)", () => {
  it.scoped("a timeout fires exactly at its duration", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("slow", { timeout: Duration.seconds(10), retries: 0 })]))
      yield* TestClock.adjust("9999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "not before its timeout")
      yield* TestClock.adjust("1 millis")
      const report = yield* Fiber.join(fiber)
      const test = report.tests[0]!
      assert.strictEqual(test.status, "TIMED_OUT")
      assert.strictEqual(test.attempts[0]!.durationMs, 10_000)
      assert.strictEqual(report.session.status, "FAILED")
    }).pipe(Effect.provide(Testing.layer({ script: Harness.scriptTable({ slow: [{ exitCode: 0, durationMs: 60_000 }] }) }))))

  it.scoped("retries happen at the scheduled delays, jittered ±20%, then FLAKY", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("t", { retries: 3 })]))
      yield* TestClock.adjust("0 millis")
      assert.deepStrictEqual((yield* starts).map((s) => s.at), [0])
      yield* TestClock.adjust("799 millis")
      assert.strictEqual((yield* starts).length, 1, "no retry before 0.8 × 1s")
      yield* TestClock.adjust("401 millis")
      const afterFirst = yield* starts
      assert.strictEqual(afterFirst.length, 2, "first retry within 1s ± 20%")
      const second = afterFirst[1]!.at
      assert.isTrue(second >= 800 && second <= 1200)
      yield* TestClock.adjust(Duration.millis(second + 1599 - 1200))
      assert.strictEqual((yield* starts).length, 2, "no second retry before 0.8 × 2s after the first")
      yield* TestClock.adjust("1000 millis")
      const all = yield* starts
      assert.strictEqual(all.length, 3)
      const gap = all[2]!.at - all[1]!.at
      assert.isTrue(gap >= 1600 && gap <= 2400, `second delay ${gap}`)
      const report = yield* Fiber.join(fiber)
      assert.strictEqual(report.tests[0]!.status, "FLAKY")
      assert.deepStrictEqual(report.tests[0]!.attempts.map((a) => a.status), ["FAILED", "FAILED", "PASSED"])
    }).pipe(Effect.provide(Testing.layer({
      script: Harness.scriptTable({ t: [{ exitCode: 1 }, { exitCode: 1 }, { exitCode: 0 }] })
    }))))

  it.scoped("seeded jitter gives the same retry times twice", () =>
    Effect.gen(function*() {
      const once = Effect.gen(function*() {
        const orch = yield* Orchestrator
        const fiber = yield* Effect.fork(orch.runTests([req("a", { retries: 2 }), req("b", { retries: 2 })]))
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.join(fiber)
        const all = yield* starts
        const origin = Math.min(...all.map((s) => s.at))
        return all.map((s) => `${s.id}#${s.n}@${s.at - origin}`)
      }).pipe(Effect.provide(Testing.layer({ script: Harness.scriptTable({}, { exitCode: 1 }), config: { seed: "s1" } })))
      const first = yield* once
      const second = yield* once
      assert.strictEqual(first.length, 6)
      assert.deepStrictEqual(first.slice().sort(), second.slice().sort())
    }))

  it.scoped("fail then pass ends FLAKY with two attempts; never passing ends with its last status", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("flaky"), req("broken", { timeout: Duration.seconds(5) })]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      const byId = new Map(report.tests.map((t) => [t.id, t]))
      assert.strictEqual(byId.get("flaky" as never)!.status, "FLAKY")
      assert.strictEqual(byId.get("flaky" as never)!.attempts.length, 2)
      assert.strictEqual(byId.get("broken" as never)!.status, "TIMED_OUT")
      assert.deepStrictEqual(byId.get("broken" as never)!.attempts.map((a) => a.status), ["FAILED", "ERROR", "TIMED_OUT"])
      assert.strictEqual(report.session.status, "PARTIAL_SUCCESS")
      assert.strictEqual(report.totals.flaky, 1)
      assert.strictEqual(report.totals.timedOut, 1)
    }).pipe(Effect.provide(Testing.layer({
      config: { retries: 2 },
      script: (spec) =>
        spec.testId === "flaky"
          ? Effect.succeed({ exitCode: spec.attempt === 1 ? 1 : 0 })
          : spec.attempt === 1
          ? Effect.succeed({ exitCode: 1 })
          : spec.attempt === 2
          ? Effect.die("harness blew up")
          : Effect.succeed({ exitCode: 0, durationMs: 10_000 })
    }))))

  it.scoped("orders by priority, then longest expected duration, ties in submission order", () =>
    Effect.gen(function*() {
      const durations: Record<string, number> = { short: 1_000, long: 9_000, mid: 5_000, other: 5_000 }
      const tests = ["short", "mid", "long", "other", "fresh", "urgent"].map((id) =>
        req(id, id === "urgent" ? { priority: 5 } : {})
      )
      const session = (script: Harness.Script) =>
        Effect.gen(function*() {
          const orch = yield* Orchestrator
          const fiber = yield* Effect.fork(orch.runTests(tests))
          yield* TestClock.adjust("1 minute")
          yield* Fiber.join(fiber)
          return (yield* starts).map((s) => s.id)
        }).pipe(Effect.provide(Testing.layer({ config: { workers: 1 }, script, store: Layer.succeed(Store.Store, store) })))
      const store = yield* Store.makeMemory
      const script: Harness.Script = (spec) => Effect.succeed({ exitCode: 0, durationMs: durations[spec.testId] ?? 2_000 })
      const first = yield* session(script)
      assert.deepStrictEqual(first, ["urgent", "short", "mid", "long", "other", "fresh"], "no history: FIFO after priority")
      const second = yield* session(script)
      assert.deepStrictEqual(second, ["urgent", "long", "mid", "other", "fresh", "short"], "history: longest first, ties FIFO")
    }))

  it.scoped("a batch larger than the queue keeps its order", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const tests = Array.from({ length: 12 }, (_, i) => req(`t${String(i).padStart(2, "0")}`, { priority: i % 3 }))
      const fiber = yield* Effect.fork(orch.runTests(tests))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      const expected = [...tests].sort((a, b) => b.priority - a.priority).map((t) => t.id as string)
      assert.deepStrictEqual((yield* starts).map((s) => s.id), expected)
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 1, maxQueueSize: 2 },
      script: () => Effect.succeed({ exitCode: 0, durationMs: 1000 })
    }))))

  it.scoped("two tests sharing a resource never overlap while other tests still run", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([
        req("db1", { resources: ["db"] }),
        req("db2", { resources: ["db"] }),
        req("free1")
      ]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      assert.strictEqual(report.session.status, "COMPLETE")
      const s = new Map((yield* starts).map((r) => [r.id, r]))
      const [a, b] = [s.get("db1")!, s.get("db2")!]
      assert.isTrue(a.end <= b.at || b.end <= a.at, "db tests overlap")
      assert.strictEqual(s.get("free1")!.at, 0, "the second worker skipped db2 for free1 instead of idling")
      assert.strictEqual(s.get("db2")!.at, 10_000, "db2 starts when db1 ends")
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 2 },
      script: () => Effect.succeed({ exitCode: 0, durationMs: 10_000 })
    }))))

  it.scoped("submit suspends while the queue is full", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      yield* orch.submit(req("a"))
      yield* TestClock.adjust("1 millis")
      yield* orch.submit(req("b"))
      const third = yield* Effect.fork(orch.submit(req("c")))
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(third)), "the queue holds b; c waits")
      // both wait: b in the queue, c queued in the log while its submit waits for room
      assert.strictEqual((yield* orch.status).waiting, 2)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(third)
      yield* TestClock.adjust("1 minute")
      const report = yield* orch.awaitCompletion
      assert.strictEqual(report.totals.passed, 3)
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 1, maxQueueSize: 1 },
      script: () => Effect.succeed({ exitCode: 0, durationMs: 10_000 })
    }))))

  it.scoped("--max-fail cancels the rest: running attempts and waiting tests become CANCELLED", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("bad"), req("long"), req("w1"), req("w2")]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      const status = Object.fromEntries(report.tests.map((t) => [t.id, t.status]))
      assert.deepStrictEqual(status, { bad: "FAILED", long: "CANCELLED", w1: "CANCELLED", w2: "CANCELLED" })
      assert.strictEqual(report.totals.cancelled, 3)
      assert.strictEqual(report.session.status, "FAILED")
      const rs = yield* runs
      assert.strictEqual(rs.length, 2, "waiting tests never started")
      assert.isTrue(rs.find((r) => r.spec.testId === "long")!.interrupted, "the running attempt was terminated")
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 2, retries: 0, maxFail: 1 },
      script: (spec) => Effect.succeed(spec.testId === "bad" ? { exitCode: 1, durationMs: 1000 } : { exitCode: 0, durationMs: 30_000 })
    }))))

  it.scoped("--max-fail also cancels tests still waiting for room in a full queue", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("bad", { priority: 1 }), req("a"), req("b"), req("c")]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      assert.deepStrictEqual(report.tests.map((t) => [t.id, t.status]), [
        ["bad", "FAILED"],
        ["a", "CANCELLED"],
        ["b", "CANCELLED"],
        ["c", "CANCELLED"]
      ])
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 1, retries: 0, maxFail: 1, maxQueueSize: 1 },
      script: () => Effect.succeed({ exitCode: 1, durationMs: 1000 })
    }))))

  it.scoped("a defect in a runner ends that attempt as ERROR and the session goes on", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("boom"), req("fine")]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      const boom = report.tests.find((t) => t.id === "boom")!
      assert.strictEqual(boom.status, "ERROR")
      assert.include(boom.attempts[0]!.message ?? "", "kaboom")
      assert.strictEqual(report.tests.find((t) => t.id === "fine")!.status, "PASSED")
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 1, retries: 0 },
      script: (spec) => spec.testId === "boom" ? Effect.dieMessage("kaboom") : Effect.succeed({ exitCode: 0 })
    }))))

  it.scoped("the Runner's deadline stops a scripted attempt that never ends: TIMED_OUT at the timeout", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([
        req("never", { timeout: Duration.seconds(5), retries: 0 }),
        req("talks", {
          timeout: Duration.seconds(5),
          retries: 0,
          steps: [new Step({ shell: "sh", script: "one" }), new Step({ shell: "sh", script: "two" }), new Step({ shell: "sh", script: "three" })]
        })
      ]))
      yield* TestClock.adjust("4999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "not before its timeout")
      yield* TestClock.adjust("1 millis")
      const report = yield* Fiber.join(fiber)
      const never = report.tests.find((t) => t.id === "never")!
      assert.strictEqual(never.status, "TIMED_OUT")
      assert.strictEqual(never.attempts[0]!.durationMs, 5_000)
      const talks = report.tests.find((t) => t.id === "talks")!
      assert.strictEqual(talks.status, "TIMED_OUT")
      assert.strictEqual(talks.attempts[0]!.tail, "compiling\nwaiting for the server\n", "what it printed before the deadline")
      assert.strictEqual(talks.attempts[0]!.message, "timed out after 5s in step 2 of 3")
      const recorded = yield* runs
      assert.isTrue(recorded.every((r) => r.stopped && !r.interrupted), "stopped by the Runner, not interrupted")
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 2 },
      script: (spec) =>
        spec.testId === "never"
          ? Effect.never
          : Effect.succeed({ exitCode: 0, durationMs: 60_000, failedStep: 1, output: "compiling\nwaiting for the server\n" })
    }))))

  it.scoped("deadlines of different lengths share the session's timer: a shorter one set after a longer one fires at its own time", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([
        req("long", { timeout: Duration.seconds(60), retries: 0 }),
        req("short", { timeout: Duration.seconds(5), retries: 0 }),
        req("next", { timeout: Duration.seconds(10), retries: 0 })
      ]))
      yield* TestClock.adjust("4999 millis")
      assert.deepStrictEqual((yield* orch.status).running.map((r) => r.testId).sort(), ["long", "short"])
      yield* TestClock.adjust("1 millis")
      // short timed out at 5 s; next took its worker and has its own 10 s
      assert.deepStrictEqual((yield* orch.status).running.map((r) => r.testId).sort(), ["long", "next"])
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual((yield* orch.status).running.length, 2, "next: not before its 10 s")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual((yield* orch.status).running.map((r) => r.testId), ["long"])
      yield* TestClock.adjust("45 seconds")
      const report = yield* Fiber.join(fiber)
      const took = Object.fromEntries(report.tests.map((t) => [t.id, [t.status, t.attempts[0]!.durationMs]]))
      assert.deepStrictEqual(took, { long: ["TIMED_OUT", 60_000], short: ["TIMED_OUT", 5_000], next: ["TIMED_OUT", 10_000] })
    }).pipe(Effect.provide(Testing.layer({ config: { workers: 2 }, script: () => Effect.never }))))

  // on the live clock: TestClock forks a fiber of its own for a first sleep (a warning)
  it.live("an attempt costs the session two fibers (the race with a stop, its steps' wait): its deadline forks none", () =>
    Effect.gen(function*() {
      const instant = Layer.succeed(Harness.Harness, {
        spawn: () => {
          const outcome: Harness.AttemptOutcome = { _tag: "Exited", exitCode: 0, signal: null, failedStep: undefined, tail: "", bytes: 0 }
          return Effect.succeed({ exited: Effect.succeed(outcome), stop: Effect.succeed(outcome) })
        }
      })
      const forks = (tests: number) =>
        Effect.gen(function*() {
          const counter = new ForkCounter()
          const report = yield* Effect.scoped(Effect.flatMap(Orchestrator, (o) => o.runTests(Array.from({ length: tests }, (_, i) => req(`t${i}`))))).pipe(
            Effect.provide(OrchestratorModule.layerSession({ repo: Testing.defaultRepo.root, baseRef: "main" }).pipe(
              Layer.provide(Layer.mergeAll(
                Config.layer({ workers: 1 }),
                Git.layerMemory({ repos: [Testing.defaultRepo] }),
                instant,
                Store.layerMemory
              ))
            )),
            Effect.supervised(counter)
          )
          assert.strictEqual(report.totals.passed, tests)
          return counter.forks
        })
      const few = yield* forks(10)
      const many = yield* forks(110)
      // with Effect.timeoutOption as the deadline it was three per attempt
      assert.strictEqual(many - few, 200, `forks: ${few} for 10 tests, ${many} for 110`)
    }))

  it.scoped("setup runs under setupTimeout, not the tests' timeout: a setup that never ends stops at it", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("t", { retries: 0 })]))
      yield* TestClock.adjust("7 seconds")
      const report = yield* Fiber.join(fiber)
      const t = report.tests[0]!
      assert.strictEqual(t.status, "ERROR")
      assert.include(t.attempts[0]!.message ?? "", "setup timed out after 7s (setupTimeout")
      const setups = (yield* runs).filter((r) => r.spec.testId.startsWith("setup-"))
      assert.isTrue(setups.length > 0 && setups.every((r) => r.stopped), "each setup was stopped at its deadline")
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 1, setup: ["npm ci"], setupTimeout: Duration.seconds(7), timeout: Duration.seconds(1) },
      script: (spec) => spec.testId.startsWith("setup-") ? Effect.never : Effect.succeed({ exitCode: 0 })
    }))))

  it.scoped("the retry Schedule alone decides: recurs(0) with retries: 2 gives no retry", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("fails", { retries: 2 })]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      assert.strictEqual(report.tests[0]!.status, "FAILED")
      assert.strictEqual(report.tests[0]!.attempts.length, 1)
    }).pipe(Effect.provide(Testing.layer({
      config: { retryPolicy: () => Schedule.recurs(0) },
      script: () => Effect.succeed({ exitCode: 1 })
    }))))

  it.scoped("a custom retry Schedule sets when each retry runs, and RetryScheduled records its delay first", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const events = yield* orch.subscribe
      const fiber = yield* Effect.fork(orch.runTests([req("flaky", { retries: 0 })]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      assert.strictEqual(report.tests[0]!.status, "FLAKY")
      assert.deepStrictEqual((yield* starts).map((s) => s.at), [0, 7_000, 14_000])
      const delays = Chunk.toReadonlyArray(yield* Queue.takeAll(events)).flatMap((l) =>
        l.event._tag === "RetryScheduled" ? [l.event.delayMs] : []
      )
      assert.deepStrictEqual(delays, [7_000, 7_000])
    }).pipe(Effect.provide(Testing.layer({
      // it ignores retries: 0 (the default policy's recurs), and only TIMED_OUT would stop it
      config: {
        retryPolicy: () => Schedule.spaced("7 seconds").pipe(Schedule.whileInput((a) => a.status !== "TIMED_OUT"))
      },
      script: Harness.scriptTable({ flaky: [{ exitCode: 1 }, { exitCode: 2 }, { exitCode: 0 }] })
    }))))

  it.scoped("a store that dies on TestFinished: the worker is replaced, the test ends through a retry, the report is whole", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("a", { retries: 1 }), req("b", { retries: 1 }), req("c", { retries: 1 })]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      assert.deepStrictEqual(report.tests.map((t) => [t.id, t.status]), [["a", "FLAKY"], ["b", "PASSED"], ["c", "PASSED"]])
      const a = report.tests[0]!
      assert.deepStrictEqual(a.attempts.map((x) => [x.n, x.status]), [[1, "PASSED"], [2, "ERROR"], [3, "PASSED"]])
      assert.include(a.attempts[1]!.message ?? "", "grove defect: the store died")
      assert.strictEqual(report.session.status, "COMPLETE")
    }).pipe(Effect.provide(Testing.layer({ config: { workers: 1 }, store: dyingOnce("TestFinished") }))))

  it.scoped("a defect in a worker's own loop (the worktree's state check): replaced, no hang, every test ends", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const fiber = yield* Effect.fork(orch.runTests([req("a"), req("b")]))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      assert.deepStrictEqual(report.tests.map((t) => t.status), ["FLAKY", "PASSED"])
      assert.include(report.tests[0]!.attempts[0]!.message ?? "", "grove defect: git died")
      assert.strictEqual(report.tests[0]!.attempts[1]!.status, "PASSED")
    }).pipe(Effect.provide(
      OrchestratorModule.layerSession({ repo: Testing.defaultRepo.root, baseRef: "main" }).pipe(
        Layer.provideMerge(Layer.mergeAll(
          Config.layer({ seed: "grove", workers: 1 }),
          gitDyingOnce,
          Harness.layerMemory(Harness.scriptTable({})),
          Store.layerMemory
        ))
      )
    )))

  it.scoped("no tests: NO_TESTS; all pass: COMPLETE; all fail: FAILED", () =>
    Effect.gen(function*() {
      const none = yield* Effect.flatMap(Orchestrator, (o) => o.runTests([])).pipe(Effect.provide(Testing.layer()))
      assert.strictEqual(none.session.status, "NO_TESTS")
      assert.strictEqual(none.totals.successRate, 0)
      const pass = yield* Effect.flatMap(Orchestrator, (o) => o.runTests([req("a"), req("b")])).pipe(Effect.provide(Testing.layer()))
      assert.strictEqual(pass.session.status, "COMPLETE")
      assert.strictEqual(pass.totals.successRate, 100)
      const fail = yield* Effect.flatMap(Orchestrator, (o) => o.runTests([req("a"), req("b")])).pipe(
        Effect.provide(Testing.layer({ config: { retries: 0 }, script: Harness.scriptTable({}, { exitCode: 3 }) }))
      )
      assert.strictEqual(fail.session.status, "FAILED")
      assert.strictEqual(fail.totals.failed, 2)
      assert.strictEqual(fail.tests[0]!.attempts[0]!.exitCode, 3)
    }))

  it.scoped("bad input fails with a typed error before any worktree exists", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const git = yield* Git.GitMemory
      const invalid = yield* Effect.exit(orch.submit({ id: "x", name: "x", source: "s", steps: [] } as never))
      assert.isTrue(Exit.isFailure(invalid))
      const e1 = yield* Effect.flip(orch.submit({ id: "x", name: "x", source: "s", steps: [] } as never))
      assert.strictEqual(e1._tag, "InvalidInput")
      const e2 = yield* Effect.flip(orch.submitBatch([req("ok"), req("elsewhere", { ref: "nope" })]))
      assert.strictEqual(e2._tag, "InvalidInput")
      assert.include(e2.message, "nope")
      const e3 = yield* Effect.flip(orch.submitBatch([req("dup"), req("dup")]))
      assert.include(e3.message, "duplicate id")
      assert.deepStrictEqual(yield* git.worktrees, [])
      const workers = yield* Effect.flip(Layer.build(Testing.layer({ config: { workers: 0 } })))
      assert.strictEqual(workers._tag, "InvalidInput")
      assert.include(workers.message, "workers")
    }).pipe(Effect.provide(Testing.layer())))

  it.scoped("an id submitted before is refused while it waits, runs or has ended; of two submissions at once, one gets it", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const refused = (tests: ReadonlyArray<TestRequest>) =>
        Effect.map(Effect.flip(orch.submitBatch(tests)), (e) => e.message)
      yield* orch.submitBatch([req("slow"), req("done")])
      yield* TestClock.adjust(Duration.seconds(1))
      // "slow" runs, "done" has ended, "new" is fresh: nothing of the batch is queued
      const message = yield* refused([req("new"), req("slow"), req("done")])
      assert.include(message, "test slow: duplicate id")
      assert.include(message, "test done: duplicate id")
      assert.notInclude(message, "test new")
      const both = yield* Effect.all([Effect.either(orch.submit(req("twice"))), Effect.either(orch.submit(req("twice")))], {
        concurrency: 2
      })
      assert.deepStrictEqual(both.map((e) => e._tag).sort(), ["Left", "Right"])
      yield* TestClock.adjust(Duration.minutes(2))
      const report = yield* orch.awaitCompletion
      assert.deepStrictEqual(report.tests.map((t) => t.id).sort(), ["done", "slow", "twice"])
      assert.strictEqual((yield* orch.status).submitted, 3)
    }).pipe(Effect.provide(Testing.layer({
      config: { workers: 2 },
      script: Harness.scriptTable({ slow: [{ exitCode: 0, durationMs: 60_000 }] })
    }))))

  it.scoped("a test at another ref runs at that ref's commit", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const report = yield* orch.runTests([req("here"), req("there", { ref: "feature" })])
      assert.deepStrictEqual(report.tests.map((t) => t.ref), ["main", "feature"])
      const rs = yield* runs
      assert.strictEqual(rs.length, 2)
      const git = yield* Git.GitMemory
      const heads = new Set((yield* git.worktrees).map((w) => w.head))
      assert.isTrue(heads.has("c0ffee2"), "a worktree moved to feature's commit")
    }).pipe(Effect.provide(Testing.layer({ config: { workers: 1 } }))))

  it.scoped("a worktree that cannot be prepared is replaced and the test still runs on one worker", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const git = yield* Git.GitMemory
      yield* orch.submit(req("first"))
      yield* TestClock.adjust("1 second")
      const [wt] = yield* git.worktrees
      yield* git.breakWorktree(wt!.path)
      const report = yield* orch.runTests([req("second")])
      assert.deepStrictEqual(report.tests.map((t) => t.status), ["PASSED", "PASSED"])
      assert.strictEqual(report.tests[1]!.attempts.length, 1, "the broken worktree cost no attempt")
      const paths = (yield* git.worktrees).map((w) => w.path)
      assert.isFalse(paths.includes(wt!.path), "the broken one was removed")
      assert.isTrue(paths.some((p) => p.endsWith("w1-1")), "its replacement is w1-1")
    }).pipe(Effect.provide(Testing.layer({ config: { workers: 1 } }))))

  it.scoped("events: a subscriber sees every attempt and result in order", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator
      const sub = yield* orch.subscribe
      yield* orch.runTests([req("a")])
      const tags = Chunk.toReadonlyArray(yield* Queue.takeAll(sub)).map((e) => e.event._tag)
      assert.deepStrictEqual([...tags], ["TestQueued", "AttemptStarted", "AttemptSpawned", "AttemptFinished", "TestFinished"])
    }).pipe(Effect.provide(Testing.layer())))

  // the in-memory store is written by each caller in turn (groupCommit: false); the same
  // store claiming group commit goes through the queue and the writer fiber
  for (const groupCommit of [false, true]) {
    it.scoped(`the log is numbered in call order and the store holds what subscribers see (groupCommit: ${groupCommit})`, () =>
      Effect.gen(function*() {
        const orch = yield* Orchestrator
        const store = yield* Store.Store
        assert.strictEqual(store.groupCommit ?? true, groupCommit)
        const sub = yield* orch.subscribe
        const ids = Array.from({ length: 12 }, (_, i) => `t${i}`)
        const run = yield* Effect.fork(orch.runTests(ids.map((id) => req(id))))
        yield* TestClock.adjust(Duration.seconds(30))
        const report = yield* Fiber.join(run)
        assert.strictEqual(report.totals.passed + report.totals.flaky, 12)
        const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(sub))
        // contiguous from the first event after the subscription (SessionStarted came before it)
        const from = seen[0]!.seq
        assert.deepStrictEqual(seen.map((e) => e.seq), seen.map((_, i) => from + i))
        const stored = yield* store.events(report.session.id, { after: from - 1, limit: 10_000 })
        assert.deepStrictEqual(stored.map((e) => [e.seq, e.event._tag]), seen.map((e) => [e.seq, e.event._tag]))
        // each test's own events keep their order; t0, t5 and t10 fail once, then pass
        const idOf = (e: (typeof seen)[number]["event"]) =>
          e._tag === "TestFinished" ? e.result.id : e._tag === "TestQueued" ? e.test.id : "testId" in e ? e.testId : undefined
        const once = ["AttemptStarted", "AttemptSpawned", "AttemptFinished"]
        for (const id of ids) {
          const own = seen.filter((e) => idOf(e.event) === id).map((e) => e.event._tag)
          const retried = Number(id.slice(1)) % 5 === 0
          assert.deepStrictEqual(own, ["TestQueued", ...once, ...(retried ? ["RetryScheduled", ...once] : []), "TestFinished"])
        }
      }).pipe(Effect.provide(Testing.layer({
        config: { workers: 4 },
        script: (spec) => Effect.succeed({ exitCode: Number(spec.testId.slice(1)) % 5 === 0 && spec.attempt === 1 ? 1 : 0, durationMs: 100 + Number(spec.testId.slice(1)) * 37 % 500 }),
        store: Layer.effect(Store.Store, Effect.map(Store.makeMemory, (s) => ({ ...s, groupCommit })))
      }))))
  }

  it.scoped("closing the scope mid-run interrupts the session: CANCELLED, INTERRUPTED, worktrees gone", () =>
    Effect.gen(function*() {
      const store = yield* Store.makeMemory
      const gate = yield* Deferred.make<void>()
      const layer = Testing.layer({
        config: { workers: 2 },
        store: Layer.succeed(Store.Store, store),
        script: () => Effect.as(Deferred.await(gate), { exitCode: 0 })
      })
      const [sessionId, git] = yield* Effect.scoped(Effect.gen(function*() {
        const orch = yield* Orchestrator
        const git = yield* Git.GitMemory
        yield* orch.submitBatch([req("a"), req("b"), req("c")])
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* orch.status).running.length, 2)
        assert.strictEqual((yield* git.worktrees).length, 2)
        return [orch.session.id, git] as const
      }).pipe(Effect.provide(layer)))
      const report = Option.getOrThrow(yield* store.report(sessionId))
      assert.strictEqual(report.session.status, "INTERRUPTED")
      assert.deepStrictEqual(report.tests.map((t) => t.status), ["CANCELLED", "CANCELLED", "CANCELLED"])
      assert.deepStrictEqual(yield* git.worktrees, [], "every worktree removed")
    }))
})
