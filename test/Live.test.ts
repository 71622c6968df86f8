import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import * as Cause from "effect/Cause"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { Events as Event, Logged, type SessionEvent, Step, type TestId, TestRequest, type TestStatus } from "../src/Domain.js"
import * as SessionState from "../src/SessionState.js"
import * as Live from "../src/view/Live.js"
import { attempt, result } from "./golden/fixture.js"

const t0 = 1_000_000

const request = (id: string) =>
  new TestRequest({ id: id as TestId, name: id, source: `plans/${id}.md`, steps: [new Step({ shell: "bash", script: "true" })] })

const queued = (id: string, expectedMs?: number): SessionEvent =>
  Event.TestQueued({ test: request(id), sha: "abc", refName: "main", expectedMs })

const started = (id: string, worker: number, at: number, n = 1): SessionEvent =>
  Event.AttemptStarted({ testId: id as TestId, n, worker, worktree: `/wt/w${worker}`, startedAt: at, logPath: `/logs/${id}.${n}.log` })

const attemptEnded = (id: string, worker: number, n: number, status: TestStatus): SessionEvent =>
  Event.AttemptFinished({ testId: id as TestId, attempt: attempt(id, n, status, { worker }) })

const finished = (id: string, ...statuses: ReadonlyArray<TestStatus>): SessionEvent => {
  const last = statuses[statuses.length - 1]!
  const status: TestStatus = last === "PASSED" && statuses.length > 1 ? "FLAKY" : last
  return Event.TestFinished({ result: result(id, status, statuses.map((s, i) => attempt(id, i + 1, s))) })
}

/** numbers events as a log does, from 1 or from `after` + 1 */
let numbered = 0
const log = (events: ReadonlyArray<SessionEvent>): Array<Logged> => events.map((event) => new Logged({ seq: ++numbered, event }))

const fold = (workers: number, events: ReadonlyArray<SessionEvent>) =>
  log(events).reduce(SessionState.update, Live.initial({ workers }))

const update = (state: SessionState.SessionState, event: SessionEvent) => SessionState.update(state, log([event])[0]!)

const plain = { color: false, width: 80 }

const known = (millis: number) => ({ millis, estimate: false })

describe("SessionState: the waiting and the running", () => {
  /** the nodes of a HashMap's trie, empty ones included (Effect's internals: `_root`, `children`) */
  const trieNodes = (map: HashMap.HashMap<string, unknown>): number => {
    const walk = (node: unknown): number =>
      typeof node !== "object" || node === null
        ? 0
        : 1 + ("children" in node && Array.isArray(node.children) ? node.children.reduce((n: number, c) => n + walk(c), 0) : 0)
    return walk((map as unknown as { readonly _root: unknown })._root)
  }

  it("tests passing through leave nothing behind in either map, however many there were", () => {
    // 50 waiting at a time, 4 running: each test is queued, started and finished, and the
    // fold removes it from the map it is not in too (TestQueued from the running ones,
    // TestFinished from the waiting ones)
    let state = fold(4, Array.from({ length: 50 }, (_, i) => queued(`t${i}`)))
    for (let i = 0; i < 1000; i++) {
      state = [queued(`t${i + 50}`), started(`t${i}`, 1 + (i % 4), t0 + i), finished(`t${i}`, "PASSED")].reduce(SessionState.applyEvent, state)
    }
    for (let i = 1000; i < 1050; i++) {
      state = [started(`t${i}`, 1, t0 + i), finished(`t${i}`, "PASSED")].reduce(SessionState.applyEvent, state)
    }
    assert.strictEqual(state.counts.passed, 1050)
    assert.strictEqual(HashMap.size(state.waiting) + HashMap.size(state.running), 0)
    // an empty map is its root alone: no node left of the 1,050 keys that went through
    assert.deepStrictEqual([trieNodes(state.waiting), trieNodes(state.running)], [1, 1])
  })
})

describe("Live.render", () => {
  it("one line per worker slot (test, attempt, elapsed) and the bar with counts and ETA", () => {
    const state = fold(3, [queued("api/checkout", 10_000), queued("login", 20_000), queued("search", 30_000),
      started("api/checkout", 1, t0), started("login", 2, t0 + 1000)])
    assert.deepStrictEqual(Live.render(state, { ...plain, now: t0 + 5000 }), [
      "w1  api/checkout  attempt 1  5.0s",
      "w2  login  attempt 1  4.0s",
      "w3  idle",
      "[░░░░░░░░░░░░░░░░░░░░░░░] 0/3  0 passed  0 failed  2 running  1 waiting  ETA 30s"
    ])
  })

  it("counts passed, flaky, failed, cancelled, running and waiting through retries", () => {
    const state = fold(2, [
      queued("a", 1000), queued("b", 1000), queued("c", 1000), queued("d", 1000), queued("e", 1000),
      started("a", 1, t0), started("b", 2, t0),
      attemptEnded("a", 1, 1, "PASSED"), finished("a", "PASSED"),
      attemptEnded("b", 2, 1, "FAILED"),
      Event.RetryScheduled({ testId: "b" as TestId, nextAttempt: 2, delayMs: 1000 }),
      started("c", 1, t0 + 1000), started("b", 2, t0 + 2000, 2),
      attemptEnded("c", 1, 1, "FAILED"), finished("c", "FAILED"),
      attemptEnded("b", 2, 2, "PASSED"), finished("b", "FAILED", "PASSED"),
      started("d", 1, t0 + 3000),
      finished("e", "CANCELLED")
    ])
    assert.deepStrictEqual(
      {
        total: state.counts.total,
        passed: state.counts.passed,
        flaky: state.counts.flaky,
        failed: state.counts.failed,
        cancelled: state.counts.cancelled,
        running: HashMap.size(state.running),
        waiting: HashMap.size(state.waiting)
      },
      { total: 5, passed: 1, flaky: 1, failed: 1, cancelled: 1, running: 1, waiting: 0 }
    )
    assert.deepStrictEqual(Live.render(state, { color: false, width: 100, now: t0 + 3500 }), [
      "w1  d  attempt 1  500ms",
      "w2  idle",
      "[█████████████████░░░░] 4/5  1 passed  1 flaky  1 failed  1 cancelled  1 running  0 waiting  ETA <1s"
    ])
  })

  it("shows a retry's attempt number and the waiting test between attempts", () => {
    const state = fold(1, [queued("b"), started("b", 1, t0), attemptEnded("b", 1, 1, "FAILED"),
      Event.RetryScheduled({ testId: "b" as TestId, nextAttempt: 2, delayMs: 1000 })])
    assert.deepStrictEqual(Live.render(state, { ...plain, now: t0 + 2000 }), [
      "w1  idle",
      "[░░░░░░░░░░░░░░░░░░░] 0/1  0 passed  0 failed  0 running  1 waiting  ETA unknown"
    ])
    const again = update(state, started("b", 1, t0 + 2000, 2))
    assert.strictEqual(Live.render(again, { ...plain, now: t0 + 2100 })[0], "w1  b  attempt 2  100ms")
  })

  it("ETA: unknown without history; remaining ÷ workers, never below the longest test", () => {
    const none = fold(2, [queued("a"), queued("b"), started("a", 1, t0)])
    assert.isUndefined(Live.eta(none, t0))
    assert.match(Live.render(none, { ...plain, now: t0 }).at(-1)!, /ETA unknown$/)

    // 4 waiting tests of 60s on 2 workers: 2 minutes
    const even = fold(2, [queued("a", 60_000), queued("b", 60_000), queued("c", 60_000), queued("d", 60_000)])
    assert.deepStrictEqual(Live.eta(even, t0), known(120_000))
    assert.match(Live.render(even, { ...plain, now: t0 }).at(-1)!, /ETA 2m00s$/)

    // one long test dominates: 1h30m ÷ 3 workers would be 30m, but it takes 1h30m alone
    const long = fold(3, [queued("a", 5_400_000), queued("b", 1000)])
    assert.deepStrictEqual(Live.eta(long, t0), known(5_400_000))
    assert.match(Live.render(long, { ...plain, now: t0 }).at(-1)!, /ETA 1h30m$/)

    // a running test has what is left of its expected duration
    const running = fold(1, [queued("a", 10_000), started("a", 1, t0)])
    assert.deepStrictEqual(Live.eta(running, t0 + 4000), known(6000))
    assert.deepStrictEqual(Live.eta(running, t0 + 60_000), known(0))

    // a test without history counts as the mean of those with one
    const mixed = fold(1, [queued("a", 10_000), queued("b", 30_000), queued("c")])
    assert.deepStrictEqual(Live.eta(mixed, t0), known(60_000))

    // nothing left: no ETA on the bar
    const done = fold(1, [queued("a", 1000), started("a", 1, t0), finished("a", "PASSED")])
    assert.deepStrictEqual(Live.eta(done, t0), known(0))
    assert.notMatch(Live.render(done, { ...plain, now: t0 }).at(-1)!, /ETA/)
  })

  it("ETA without history: estimated from the tests finished so far once 3 have, and marked so", () => {
    const two = fold(2, [queued("a"), queued("b"), queued("c"), queued("d"), queued("e"), queued("f"),
      finished("a", "PASSED"), finished("b", "FAILED")])
    assert.isUndefined(Live.eta(two, t0))
    assert.match(Live.render(two, { ...plain, now: t0 }).at(-1)!, /ETA unknown$/)
    // three finished of 1234 ms each (a retried one counts its attempts): three left on two workers
    const three = update(two, finished("c", "PASSED"))
    assert.deepStrictEqual(Live.eta(three, t0), { millis: 3 * 1234 / 2, estimate: true })
    assert.match(Live.render(three, { ...plain, now: t0 }).at(-1)!, /ETA ~2s$/)
    // CANCELLED and ERROR tests did not run to an end: they say nothing of durations
    const cancelled = fold(1, [queued("x"), queued("y"), queued("z"), queued("w"), finished("x", "CANCELLED"),
      finished("y", "ERROR"), finished("z", "PASSED")])
    assert.isUndefined(Live.eta(cancelled, t0))
    // with history, history decides, as before
    const known2 = fold(1, [queued("a", 10_000), queued("b"), finished("c", "PASSED"), finished("d", "PASSED"), finished("e", "PASSED")])
    assert.deepStrictEqual(Live.eta(known2, t0), { millis: 20_000, estimate: false })
  })

  it("fits every line in width 40, shortening ids from the start and dropping the bar before the counts", () => {
    const long = "docs/plans/a-very-long-directory-name/checkout-flow-with-payment"
    const state = fold(12, [queued(long, 5000), queued("b", 5000), queued("c", 5000), started(long, 1, t0), started("b", 12, t0)])
    const lines = Live.render(state, { color: false, width: 40, now: t0 + 1500 })
    assert.deepStrictEqual(lines, [
      "w1   …flow-with-payment  attempt 1  1.5s",
      "w2   idle",
      "w3   idle",
      "w4   idle",
      "w5   idle",
      "w6   idle",
      "w7   idle",
      "w8   idle",
      "w9   idle",
      "w10  idle",
      "w11  idle",
      "w12  b  attempt 1  1.5s",
      "0/3  0 passed  0 failed  2 running  1 w…"
    ])
    const colored = Live.render(state, { color: true, width: 40, now: t0 + 1500 })
    for (const line of [...lines, ...colored]) assert.isAtMost(Live.visibleWidth(line), 40, JSON.stringify(line))
    // a line cut with colours on ends with a reset: nothing bleeds into the next line
    assert.isTrue(colored.at(-1)!.endsWith("…\x1b[0m"))
    // the slot line keeps its fixed parts and shortens the id
    assert.isTrue(lines[0]!.endsWith("attempt 1  1.5s"))
  })

  it("never wider than a tiny width", () => {
    const state = fold(2, [queued("checkout", 5000), started("checkout", 1, t0)])
    for (const width of [1, 5, 9, 12, 20]) {
      for (const line of Live.render(state, { color: true, width, now: t0 })) assert.isAtMost(Live.visibleWidth(line), width)
    }
  })

  it("counts columns, not code units or escape codes", () => {
    assert.strictEqual(Live.visibleWidth("\x1b[31mred\x1b[0m"), 3)
    assert.strictEqual(Live.visibleWidth("日本語"), 6)
    assert.strictEqual(Live.visibleWidth("e\u0301"), 1)
    assert.strictEqual(Live.visibleWidth("😀x"), 3)
    assert.strictEqual(Live.truncate("日本語テスト", 7), "日本語…")
    assert.strictEqual(Live.truncate("\x1b[32mgreen text\x1b[0m", 6), "\x1b[32mgreen…\x1b[0m")
    assert.strictEqual(Live.truncate("short", 10), "short")
  })

  it("no escape code with colour off, even from a test id full of them", () => {
    const evil = "\x1b[2J\x1b]0;title\x07evil\x1b[31mid"
    const state = fold(2, [queued(evil, 1000), queued("b"), started(evil, 1, t0), started("b", 2, t0),
      attemptEnded("b", 2, 1, "FAILED"), finished("b", "FAILED")])
    const lines = Live.render(state, { color: false, width: 80, now: t0 + 100 })
    for (const line of lines) assert.notInclude(line, "\x1b")
    assert.strictEqual(lines[0], "w1  evilid  attempt 1  100ms")
    const colored = Live.render(state, { color: true, width: 80, now: t0 + 100 })
    assert.include(colored.join("\n"), "\x1b[")
    assert.notInclude(colored.join("\n"), "\x1b[2J")
  })

  it("keeps the block within the height: busy workers first, then how many are hidden", () => {
    const state = fold(8, [queued("a"), queued("b"), started("a", 3, t0), started("b", 7, t0)])
    assert.deepStrictEqual(Live.render(state, { ...plain, now: t0, height: 4 }).slice(0, 3), [
      "w3  a  attempt 1  0ms",
      "w7  b  attempt 1  0ms",
      "… 6 more workers (0 busy)"
    ])
    assert.strictEqual(Live.render(state, { ...plain, now: t0, height: 4 }).length, 4)
  })
})

describe("Live.finishedLines", () => {
  it("a failure gets the log of its last failing attempt; a pass only its line", () => {
    const failed = Live.finishedLines({ color: false }, result("c", "FAILED", [attempt("c", 1, "FAILED"), attempt("c", 2, "TIMED_OUT")]))
    assert.strictEqual(failed.length, 2)
    assert.match(failed[0]!, /^FAILED +c {2}/)
    assert.strictEqual(failed[1], `  log: ${attempt("c", 2, "TIMED_OUT").logPath}`)
    assert.deepStrictEqual(Live.finishedLines({ color: false }, result("p", "PASSED", [attempt("p", 1, "PASSED")])).length, 1)
    assert.deepStrictEqual(Live.finishedLines({ color: false }, result("x", "CANCELLED", [])).length, 1)
  })
})

describe("Live.start", () => {
  const harness = (size = { columns: 81, rows: 24 }) =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const events = yield* Queue.unbounded<Logged>()
      const scope = yield* Scope.make()
      yield* Live.start(events, {
        info: { workers: 2 },
        color: false,
        write: (text) => void writes.push(text),
        size: () => size
      }).pipe(Scope.extend(scope))
      return { writes, events, scope }
    })

  it.effect("hides the cursor, redraws in place at most every 100ms, prints finished tests above, erases and restores at the end", () =>
    Effect.gen(function*() {
      const { events, scope, writes } = yield* harness()
      yield* TestClock.adjust(0)
      assert.strictEqual(writes[0], Live.HIDE_CURSOR)
      assert.strictEqual(writes.length, 2) // the first frame: 2 slots and the bar
      assert.strictEqual(writes[1], "w1  idle\nw2  idle\n[░░░░░░░░░░░░░░░░░░░░░░░░] 0/0  0 passed  0 failed  0 running  0 waiting\n")

      // a burst of events between two frames is one write
      yield* Queue.offerAll(events, log([queued("a", 1000), queued("b", 1000), started("a", 1, 0), started("b", 2, 0),
        attemptEnded("a", 1, 1, "FAILED"), finished("a", "FAILED")]))
      yield* TestClock.adjust(99)
      assert.strictEqual(writes.length, 2)
      yield* TestClock.adjust(1)
      assert.strictEqual(writes.length, 3)
      const frame = writes[2]!
      assert.isTrue(frame.startsWith("\r\x1b[3A\x1b[J"), JSON.stringify(frame))
      const rest = frame.slice("\r\x1b[3A\x1b[J".length).split("\n")
      assert.match(rest[0]!, /^FAILED +a {2}1\.2s$/)
      assert.strictEqual(rest[1], `  log: ${attempt("a", 1, "FAILED").logPath}`)
      assert.deepStrictEqual(rest.slice(2), [
        "w1  idle",
        "w2  b  attempt 1  100ms",
        "[████████████░░░░░░░░░░░] 1/2  0 passed  1 failed  1 running  0 waiting  ETA <1s",
        ""
      ])

      // the elapsed time moves on without events
      yield* TestClock.adjust(1000)
      assert.include(writes.at(-1)!, "w2  b  attempt 1  1.1s")

      // what came after the last frame is printed when the scope closes; the block is erased
      yield* Queue.offerAll(events, log([attemptEnded("b", 2, 1, "PASSED"), finished("b", "PASSED")]))
      const before = writes.length
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(writes.length, before + 1)
      const last = writes.at(-1)!
      assert.isTrue(last.startsWith("\r\x1b[3A\x1b[J"))
      assert.match(last, /PASSED +b /)
      assert.isTrue(last.endsWith(`  1.2s\n${Live.SHOW_CURSOR}`), JSON.stringify(last))
      assert.notInclude(last, "idle")

      // nothing is drawn after the end
      yield* TestClock.adjust(1000)
      assert.strictEqual(writes.length, before + 1)
    }))

  it.effect("prints messages above the block at once, and plainly once the view has ended", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const events = yield* Queue.unbounded<Logged>()
      const scope = yield* Scope.make()
      const view = yield* Live.start(events, { info: { workers: 1 }, color: false, write: (t) => void writes.push(t), size: () => ({}) }).pipe(
        Scope.extend(scope)
      )
      yield* TestClock.adjust(0)
      assert.strictEqual(writes.length, 2)
      yield* view.print("\ngrove: SIGINT: stopping\n")
      assert.strictEqual(writes.length, 3)
      assert.strictEqual(writes[2], "\r\x1b[2A\x1b[J\ngrove: SIGINT: stopping\nw1  idle\n" + writes[1]!.split("\n")[1] + "\n")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(writes[3], "\r\x1b[2A\x1b[J" + Live.SHOW_CURSOR)
      yield* view.print("after")
      assert.strictEqual(writes[4], "after\n")
    }))

  it.effect("shows the cursor again when the fiber that shows the view is interrupted", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const events = yield* Queue.unbounded<Logged>()
      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(
        Live.start(events, { info: { workers: 1 }, color: false, write: (t) => void writes.push(t), size: () => ({}) }),
        Effect.never
      )))
      yield* TestClock.adjust(250)
      assert.strictEqual(writes[0], Live.HIDE_CURSOR)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(writes.at(-1)!.endsWith(Live.SHOW_CURSOR))
      assert.isTrue(writes.at(-1)!.startsWith("\r\x1b[2A\x1b[J"))
    }))

  it.effect("re-reads the terminal size every frame", () =>
    Effect.gen(function*() {
      const size = { columns: 81, rows: 24 }
      const { events, scope, writes } = yield* harness(size)
      yield* Queue.offerAll(events, log([queued("a-rather-long-test-identifier"), started("a-rather-long-test-identifier", 1, 0)]))
      yield* TestClock.adjust(0)
      assert.include(writes.at(-1)!, "w1  a-rather-long-test-identifier  attempt 1  0ms")
      size.columns = 31
      yield* TestClock.adjust(100)
      const lines = writes.at(-1)!.replace(/^\r\x1b\[\d+A\x1b\[J/, "").split("\n").filter((l) => l !== "")
      for (const line of lines) assert.isAtMost(Live.visibleWidth(line), 30)
      assert.strictEqual(lines[0], "w1  …ntifier  attempt 1  100ms")
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("erases the rows the block takes at the width now: a narrower terminal wrapped its lines", () =>
    Effect.gen(function*() {
      const size = { columns: 81, rows: 24 }
      const { events, scope, writes } = yield* harness(size)
      const id = "a-rather-long-test-identifier-that-fills-the-line"
      yield* Queue.offerAll(events, log([queued(id), queued("b"), started(id, 1, 0)]))
      yield* TestClock.adjust(0)
      const drawn = writes.at(-1)!.split("\n").filter((l) => l !== "")
      assert.strictEqual(drawn.length, 3)
      assert.isAbove(Live.visibleWidth(drawn[0]!), 60)
      // the terminal is now 31 columns wide: each line of 80 columns or less wraps onto ceil(width / 31) rows
      size.columns = 31
      const rows = drawn.reduce((n, l) => n + Math.max(1, Math.ceil(Live.visibleWidth(l) / 31)), 0)
      assert.isAbove(rows, 3)
      yield* TestClock.adjust(100)
      const narrowed = writes.at(-1)!
      assert.isTrue(narrowed.startsWith(`\r\x1b[${rows}A\x1b[J`), JSON.stringify(narrowed))
      // drawn at 31 columns, the block takes a row a line: at 31 columns and wider again
      yield* TestClock.adjust(1000)
      assert.isTrue(writes.at(-1)!.startsWith("\r\x1b[3A\x1b[J"), JSON.stringify(writes.at(-1)))
      size.columns = 120
      yield* TestClock.adjust(1000)
      assert.isTrue(writes.at(-1)!.startsWith("\r\x1b[3A\x1b[J"), JSON.stringify(writes.at(-1)))
      // narrower again before the end: the last erase covers the wrapped rows too
      const wide = writes.at(-1)!.replace(/^\r\x1b\[\d+A\x1b\[J/, "").split("\n").filter((l) => l !== "")
      size.columns = 20
      yield* Scope.close(scope, Exit.void)
      const rowsAt20 = wide.reduce((n, l) => n + Math.max(1, Math.ceil(Live.visibleWidth(l) / 20)), 0)
      assert.isTrue(writes.at(-1)!.startsWith(`\r\x1b[${rowsAt20}A\x1b[J`), JSON.stringify(writes.at(-1)))
    }))

  it.effect("what is logged while the view is up goes above the block; once it has ended, to the fallback; none is lost", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const fallback: Array<string> = []
      const events = yield* Queue.unbounded<Logged>()
      const scope = yield* Scope.make()
      const view = yield* Live.start(events, {
        info: { workers: 1 },
        color: false,
        write: (t) => void writes.push(t),
        size: () => ({ columns: 81, rows: 24 }),
        fallback: (t) => void fallback.push(t)
      }).pipe(Scope.extend(scope))
      // the logger grove installs for a run, as the Orchestrator logs a store warning
      const logging = Effect.provide(Logger.add(Live.logger(() => view.log)))
      yield* TestClock.adjust(0)
      assert.strictEqual(writes.length, 2)
      const block = writes[1]!
      yield* Effect.logWarning("grove store: database is locked").pipe(logging)
      assert.strictEqual(writes.length, 2, "written outside a frame, it would be overdrawn")
      yield* TestClock.adjust(100)
      assert.strictEqual(writes.length, 3)
      assert.strictEqual(writes[2], "\r\x1b[2A\x1b[J" + "grove store: database is locked\n" + block)

      // logged after the last frame: printed above the block when it is erased
      yield* Effect.logWarning("grove: could not remove worktree /wt/w1:", "busy", Cause.fail("EBUSY")).pipe(logging)
      yield* Scope.close(scope, Exit.void)
      const last = writes.at(-1)!
      assert.isTrue(last.startsWith("\r\x1b[2A\x1b[Jgrove: could not remove worktree /wt/w1: busy\nError: EBUSY\n"), JSON.stringify(last))
      assert.isTrue(last.endsWith(Live.SHOW_CURSOR))
      assert.deepStrictEqual(fallback, [])

      // after the end: to the fallback at once, control characters removed
      const count = writes.length
      yield* Effect.logWarning("grove store: \x1b[2Kgone").pipe(logging)
      assert.deepStrictEqual(fallback, ["grove store: gone"])
      assert.strictEqual(writes.length, count)
    }))
})
