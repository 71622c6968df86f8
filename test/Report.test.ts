import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { TestResult, TestStatus } from "../src/Domain.js"
import * as Report from "../src/Report.js"
import * as SessionState from "../src/SessionState.js"
import * as Json from "../src/report/Json.js"
import * as Junit from "../src/report/Junit.js"
import * as Html from "../src/report/Html.js"
import * as Markdown from "../src/report/Markdown.js"
import * as Fixture from "./golden/fixture.js"
import { attempt, info, result } from "./golden/fixture.js"

/** a test whose attempts end with the given statuses; the last one is the test's */
const ended = (id: string, ...statuses: ReadonlyArray<TestStatus>): TestResult => {
  const last = statuses[statuses.length - 1]!
  const status: TestStatus = last === "PASSED" && statuses.length > 1 ? "FLAKY" : last
  return result(id, status, statuses.map((s, i) => attempt(id, i + 1, s)))
}

describe("Report.totals", () => {
  it("counts every final status, and 'failed' in the seed's sense", () => {
    const t = Report.totals([
      ended("a", "PASSED"),
      ended("b", "PASSED"),
      ended("c", "FAILED", "PASSED"),
      ended("d", "FAILED", "FAILED", "FAILED"),
      ended("e", "FAILED", "TIMED_OUT"),
      ended("f", "ERROR"),
      ended("g", "ERROR"),
      ended("h", "CANCELLED")
    ])
    assert.deepStrictEqual(
      { ...t },
      { total: 8, passed: 2, flaky: 1, failed: 1, timedOut: 1, error: 2, cancelled: 1, successRate: 37.5 }
    )
    assert.strictEqual(Report.failedInSeedSense(t), 4)
  })

  it("rounds the success rate to 2 decimals and gives 0 without tests", () => {
    assert.strictEqual(Report.totals([ended("a", "PASSED"), ended("b", "FAILED"), ended("c", "FAILED")]).successRate, 33.33)
    assert.strictEqual(Report.totals([ended("a", "PASSED"), ended("b", "FAILED", "PASSED"), ended("c", "ERROR")]).successRate, 66.67)
    assert.strictEqual(Report.totals([]).successRate, 0)
    assert.strictEqual(Report.totals([]).total, 0)
  })

  it("counts tests that have not finished in the total only", () => {
    const t = Report.totals([result("q", "QUEUED", []), result("r", "RUNNING", []), ended("p", "PASSED")])
    assert.deepStrictEqual(
      { ...t },
      { total: 3, passed: 1, flaky: 0, failed: 0, timedOut: 0, error: 0, cancelled: 0, successRate: 33.33 }
    )
  })
})

describe("Report.make", () => {
  const run = (results: ReadonlyArray<TestResult>, interrupted = false) =>
    Report.make({ ...info, interrupted }, results)

  it("all pass (flaky included): COMPLETE, 100%, exit 0", () => {
    const report = run([ended("a", "PASSED"), ended("b", "TIMED_OUT", "PASSED")])
    assert.strictEqual(report.session.status, "COMPLETE")
    assert.strictEqual(report.totals.successRate, 100)
    assert.strictEqual(report.totals.flaky, 1)
    assert.strictEqual(Report.exitCode(report), 0)
  })

  it("some fail: PARTIAL_SUCCESS, exit 1", () => {
    const report = run([ended("a", "PASSED"), ended("b", "FAILED", "FAILED", "FAILED"), ended("c", "ERROR")])
    assert.strictEqual(report.session.status, "PARTIAL_SUCCESS")
    assert.strictEqual(report.totals.failed, 1)
    assert.strictEqual(report.totals.error, 1)
    assert.strictEqual(report.totals.successRate, 33.33)
    assert.strictEqual(Report.exitCode(report), 1)
  })

  it("all fail (cancelled ones too): FAILED, 0%, exit 1", () => {
    const report = run([ended("a", "FAILED"), ended("b", "TIMED_OUT"), ended("c", "CANCELLED")])
    assert.strictEqual(report.session.status, "FAILED")
    assert.strictEqual(report.totals.successRate, 0)
    assert.strictEqual(Report.failedInSeedSense(report.totals), 2)
    assert.strictEqual(Report.exitCode(report), 1)
  })

  it("no tests: NO_TESTS, 0%, exit 0", () => {
    const report = run([])
    assert.strictEqual(report.session.status, "NO_TESTS")
    assert.strictEqual(report.totals.total, 0)
    assert.strictEqual(report.totals.successRate, 0)
    assert.strictEqual(Report.exitCode(report), 0)
  })

  it("interrupted: INTERRUPTED whatever the results, exit 1", () => {
    assert.strictEqual(run([ended("a", "PASSED")], true).session.status, "INTERRUPTED")
    assert.strictEqual(run([], true).session.status, "INTERRUPTED")
    assert.strictEqual(Report.exitCode(run([ended("a", "PASSED")], true)), 1)
  })

  it("keeps the given order, and a later result for an id replaces the earlier one in place", () => {
    const report = run([ended("z", "FAILED"), ended("a", "PASSED"), ended("m", "ERROR"), ended("z", "FAILED", "PASSED")])
    assert.deepStrictEqual(report.tests.map((t) => [t.id, t.status]), [["z", "FLAKY"], ["a", "PASSED"], ["m", "ERROR"]])
    assert.strictEqual(report.totals.total, 3)
    assert.strictEqual(report.totals.flaky, 1)
  })

  it("holds the session facts, with durationMs = completedAt − startedAt", () => {
    const report = run([ended("a", "PASSED")])
    assert.strictEqual(report.version, 1)
    assert.strictEqual(report.session.id, info.id)
    assert.strictEqual(DateTime.toEpochMillis(report.session.startedAt), info.startedAt)
    assert.strictEqual(report.session.completedAt && DateTime.toEpochMillis(report.session.completedAt), info.completedAt)
    assert.strictEqual(report.session.durationMs, 184_000)
    assert.strictEqual(report.session.baseSha, info.baseSha)
    assert.strictEqual(report.session.workers, 3)
  })

  it("a session that has not ended has no completedAt, duration 0, and may say RUNNING", () => {
    const report = Report.make({ ...info, completedAt: null, status: "RUNNING" }, [result("q", "QUEUED", [])])
    assert.strictEqual(report.session.completedAt, null)
    assert.strictEqual(report.session.durationMs, 0)
    assert.strictEqual(report.session.status, "RUNNING")
    assert.strictEqual(Report.exitCode(report), 1)
  })
})

describe("SessionState: the one fold", () => {
  const results = [ended("b", "PASSED"), ended("a", "FAILED", "FAILED"), ended("c", "ERROR", "PASSED")]
  const logged = Report.eventsOf(info, results)

  it.effect("a stream of events folds into the state Report.make reports", () =>
    Effect.gen(function*() {
      const state = yield* SessionState.fromStream(Stream.fromIterable(logged))
      const folded = Report.fromState(state, results, { at: info.completedAt!, interrupted: false })
      assert.deepStrictEqual(Json.render(folded), Json.render(Report.make(info, results)))
      assert.deepStrictEqual(folded.tests.map((t) => t.id), ["b", "a", "c"])
      assert.strictEqual(folded.session.status, "PARTIAL_SUCCESS")
      assert.strictEqual(folded.totals.flaky, 1)
      assert.strictEqual(state.seq, logged.length)
    }))

  it.effect("the fold works on a chunked, asynchronous stream and an empty one", () =>
    Effect.gen(function*() {
      const chunked = Stream.fromIterable(logged).pipe(Stream.rechunk(2), Stream.tap(() => Effect.yieldNow()))
      const state = yield* SessionState.fromStream(chunked)
      assert.strictEqual(state.counts.total, 3)
      const empty = yield* SessionState.fromStream(Stream.empty)
      assert.strictEqual(SessionState.endStatus(empty.counts, { interrupted: false }), "NO_TESTS")
    }))

  it.effect("a failing stream fails the fold with its error", () =>
    Effect.gen(function*() {
      const error = yield* SessionState.fromStream(Stream.concat(Stream.fromIterable(logged), Stream.fail("boom" as const)))
        .pipe(Effect.flip)
      assert.strictEqual(error, "boom")
    }))

  it("an event the state already covers changes nothing (a subscriber starting from a snapshot)", () => {
    const state = logged.reduce(SessionState.update, SessionState.initial())
    assert.deepStrictEqual(logged.reduce(SessionState.update, state), state)
  })
})

describe("Report.render", () => {
  const report = Report.make(info, [ended("a", "PASSED"), ended("b", "FAILED")])

  it.effect("JSON and JUnit stream, test by test, the same text they render of the whole report", () =>
    Effect.gen(function*() {
      const live = Report.make({ ...info, completedAt: null, status: "RUNNING" }, [result("q", "QUEUED", []), ended("p", "PASSED")])
      const many = Report.make(info, Array.from({ length: 40 }, (_, i) => ended(`t${i}`, i % 3 === 0 ? "FAILED" : "PASSED")))
      for (const r of [report, Report.make(info, []), Fixture.report, live, many]) {
        for (const size of [1, 7, 500]) {
          const tests = Stream.fromIterable(r.tests).pipe(Stream.rechunk(size))
          const json = yield* Stream.runCollect(Json.renderStream(r, tests))
          assert.strictEqual(Chunk.join(json, ""), Json.render(r))
          const junit = yield* Stream.runCollect(Junit.renderStream(r, tests))
          assert.strictEqual(Chunk.join(junit, ""), Junit.render(r))
          // the head, a text per 16 tests however the store's pages come, the end
          const pieces = 2 + Math.ceil(r.tests.length / 16)
          assert.strictEqual(Chunk.size(json), pieces, `JSON of ${r.tests.length} tests in chunks of ${size}`)
          assert.strictEqual(Chunk.size(junit), pieces, `JUnit of ${r.tests.length} tests in chunks of ${size}`)
        }
      }
    }))

  it.effect("dispatches json, junit and markdown to their renderers", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Report.render("json", report), Json.render(report))
      assert.strictEqual(yield* Report.render("junit", report), Junit.render(report))
      assert.strictEqual(yield* Report.render("markdown", report), Markdown.render(report))
      assert.strictEqual(yield* Report.render("html", report), Html.render(report))
    }))

})
