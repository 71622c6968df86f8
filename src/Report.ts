/**
 * The session's report, folded from the stream of test results (SPEC §3, §7):
 * counts, success rate, session status, exit code, and the dispatch to the
 * renderers in `report/`.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { Report, SessionInfo, type SessionStatus, type TestResult, Totals } from "./Domain.js"
import { ReportError } from "./GroveError.js"
import * as Html from "./report/Html.js"
import * as Json from "./report/Json.js"
import * as Junit from "./report/Junit.js"
import * as Markdown from "./report/Markdown.js"

/**
 * Counts of SPEC §3. Tests still QUEUED or RUNNING (a live or crashed session)
 * count in `total` only. `successRate` = (passed + flaky) / total × 100,
 * rounded to 2 decimals, and 0 when there are no tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const totals = (results: ReadonlyArray<TestResult>): Totals => {
  let passed = 0
  let flaky = 0
  let failed = 0
  let timedOut = 0
  let error = 0
  let cancelled = 0
  for (const result of results) {
    switch (result.status) {
      case "PASSED":
        passed++
        break
      case "FLAKY":
        flaky++
        break
      case "FAILED":
        failed++
        break
      case "TIMED_OUT":
        timedOut++
        break
      case "ERROR":
        error++
        break
      case "CANCELLED":
        cancelled++
        break
      case "QUEUED":
      case "RUNNING":
        break
    }
  }
  const total = results.length
  const successRate = total === 0 ? 0 : Math.round(((passed + flaky) / total) * 100 * 100) / 100
  return new Totals({ total, passed, flaky, failed, timedOut, error, cancelled, successRate })
}

/**
 * "Failed" in the seed's sense (SPEC §3): failed + timedOut + error.
 *
 * @since 0.1.0
 */
export const failedInSeedSense = (t: Totals): number => t.failed + t.timedOut + t.error

/**
 * The session status of SPEC §3: INTERRUPTED when interrupted, NO_TESTS when
 * there are none, COMPLETE when every test PASSED or FLAKY, FAILED when none
 * did, PARTIAL_SUCCESS otherwise.
 *
 * @since 0.1.0
 */
export const sessionStatus = (
  results: ReadonlyArray<TestResult>,
  options: { readonly interrupted: boolean }
): SessionStatus => {
  if (options.interrupted) return "INTERRUPTED"
  if (results.length === 0) return "NO_TESTS"
  const succeeded = results.filter((r) => r.status === "PASSED" || r.status === "FLAKY").length
  if (succeeded === results.length) return "COMPLETE"
  if (succeeded === 0) return "FAILED"
  return "PARTIAL_SUCCESS"
}

/**
 * The facts of the session a report is folded for.
 *
 * @since 0.1.0
 * @category models
 */
export interface Info {
  readonly id: string
  /** epoch millis */
  readonly startedAt: number
  /** epoch millis; null while the session has not ended */
  readonly completedAt: number | null
  readonly baseRef: string
  readonly baseSha: string
  readonly workers: number
  readonly interrupted: boolean
  /**
   * Overrides the status derived from the results, e.g. RUNNING for the report
   * of a session that is still going.
   */
  readonly status?: SessionStatus
}

/**
 * Builds the report from results in the given order (completion or submission
 * order: the caller decides). A later result for an id already seen replaces
 * the earlier one in its place. `durationMs` = completedAt − startedAt, 0 while
 * the session has not ended.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (info: Info, results: Iterable<TestResult>): Report => {
  const byId = new Map<string, TestResult>()
  for (const result of results) byId.set(result.id, result)
  const tests = Array.from(byId.values())
  return new Report({
    version: 1,
    session: new SessionInfo({
      id: info.id,
      status: info.status ?? sessionStatus(tests, { interrupted: info.interrupted }),
      startedAt: DateTime.unsafeMake(info.startedAt),
      completedAt: info.completedAt === null ? null : DateTime.unsafeMake(info.completedAt),
      durationMs: info.completedAt === null ? 0 : Math.max(0, info.completedAt - info.startedAt),
      baseRef: info.baseRef,
      baseSha: info.baseSha,
      workers: info.workers
    }),
    totals: totals(tests),
    tests
  })
}

/**
 * A Sink that folds test results into the report of the session.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fold = (info: Info): Sink.Sink<Report, TestResult> =>
  Sink.map(Sink.collectAll<TestResult>(), (results) => make(info, Chunk.toReadonlyArray(results)))

/**
 * Runs a stream of results to its end and folds it into the report.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStream = <E, R>(info: Info, results: Stream.Stream<TestResult, E, R>): Effect.Effect<Report, E, R> =>
  Stream.run(results, fold(info))

/**
 * The process exit code for a report (SPEC §6): 0 for COMPLETE and NO_TESTS, 1
 * otherwise. The CLI maps INTERRUPTED to 130/143 itself.
 *
 * @since 0.1.0
 */
export const exitCode = (report: Report): 0 | 1 =>
  report.session.status === "COMPLETE" || report.session.status === "NO_TESTS" ? 0 : 1

/**
 * The kinds of report (`--report KIND:FILE`, `grove report --format KIND`).
 *
 * @since 0.1.0
 * @category models
 */
export const ReportKind = Schema.Literal("json", "junit", "markdown", "html")
/**
 * @since 0.1.0
 * @category models
 */
export type ReportKind = typeof ReportKind.Type

/**
 * Turns a report into the text of one kind of report file.
 *
 * @since 0.1.0
 * @category models
 */
export type Renderer = (report: Report) => string

/**
 * The renderer of each kind.
 *
 * @since 0.1.0
 */
export const renderers: { readonly [K in ReportKind]?: Renderer } = {
  html: Html.render,
  json: Json.render,
  junit: Junit.render,
  markdown: Markdown.render
}

/**
 * Renders a report of the given kind.
 *
 * @since 0.1.0
 */
export const render = (kind: ReportKind, report: Report): Effect.Effect<string, ReportError> => {
  const renderer = renderers[kind]
  return renderer === undefined
    ? Effect.fail(
      new ReportError({
        path: `(${kind} report)`,
        detail: `this version of grove has no ${kind} renderer; use one of ${
          Object.keys(renderers).join(", ")
        }`
      })
    )
    : Effect.sync(() => renderer(report))
}
