/**
 * The session's report (SPEC §3, §7): the folded state of its events
 * (`SessionState`) with its tests from the store, the exit code, and the dispatch
 * to the renderers in `report/`.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import {
  Events,
  Logged,
  Report,
  type SessionEvent,
  SessionInfo,
  type SessionStatus,
  type TestResult,
  type Totals
} from "./Domain.js"
import { ReportError } from "./GroveError.js"
import * as Html from "./report/Html.js"
import * as Json from "./report/Json.js"
import * as Junit from "./report/Junit.js"
import * as Markdown from "./report/Markdown.js"
import * as SessionState from "./SessionState.js"

/**
 * The facts of the session a report is made for, when it is made from results
 * rather than from a session's events (a report merged from shards, a fixture).
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
 * The report of a session from its folded state and its tests (in queue order, as
 * the store lists them). The session's status, times and counts are the fold's. A
 * session that has not finished is reported as RUNNING, unless `end` says it is
 * being reported at its end: then its status is the one it ends with, and its end
 * is `end.at`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromState = (
  state: SessionState.SessionState,
  tests: ReadonlyArray<TestResult>,
  end?: { readonly at: number; readonly interrupted: boolean }
): Report => {
  const ending = end !== undefined && state.status === "RUNNING"
  const completedAt = ending ? end.at : state.completedAt
  const startedAt = state.startedAt ?? completedAt ?? 0
  return new Report({
    version: 1,
    session: new SessionInfo({
      id: state.sessionId,
      status: ending ? SessionState.endStatus(state.counts, { interrupted: end.interrupted }) : state.status,
      startedAt: DateTime.unsafeMake(startedAt),
      completedAt: completedAt === null ? null : DateTime.unsafeMake(completedAt),
      durationMs: ending ? Math.max(0, end.at - startedAt) : SessionState.durationMs(state),
      baseRef: state.baseRef,
      baseSha: state.baseSha,
      workers: state.workers
    }, true),
    totals: SessionState.totals(state.counts),
    tests
  }, true)
}

/**
 * The events that say a session had these results: it started, each test finished
 * (a later result for an id replaces the earlier one in its place), and — when
 * `completedAt` is known — it ended.
 *
 * @since 0.2.0
 * @category constructors
 */
export const eventsOf = (info: Info, results: Iterable<TestResult>): Array<Logged> => {
  const byId = new Map<string, TestResult>()
  for (const result of results) byId.set(result.id, result)
  const events: Array<SessionEvent> = [Events.SessionStarted({
    sessionId: info.id,
    baseRef: info.baseRef,
    baseSha: info.baseSha,
    workers: info.workers,
    startedAt: info.startedAt
  })]
  for (const result of byId.values()) events.push(Events.TestFinished({ result }))
  if (info.completedAt !== null) {
    const { counts } = events.reduce(SessionState.applyEvent, SessionState.initial(info.id))
    events.push(Events.SessionFinished({
      status: info.status ?? SessionState.endStatus(counts, info),
      completedAt: info.completedAt,
      counts
    }))
  }
  return events.map((event, i) => new Logged({ seq: i + 1, event }, true))
}

/**
 * Makes the report of results in the given order by folding the events that say
 * so (`eventsOf`): the fold is the only place that counts. `durationMs` =
 * completedAt − startedAt, 0 while the session has not ended (its status is then
 * the one its results give, unless `info.status` says another).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (info: Info, results: Iterable<TestResult>): Report => {
  const events = eventsOf(info, results)
  const state = events.reduce(SessionState.update, SessionState.initial(info.id))
  const report = fromState(state, events.flatMap((l) => l.event._tag === "TestFinished" ? [l.event.result] : []))
  if (info.completedAt !== null) return report
  const status = info.status ?? SessionState.endStatus(state.counts, info)
  return new Report({ ...report, session: new SessionInfo({ ...report.session, status, durationMs: 0 }, true) }, true)
}

/**
 * Counts of SPEC §3 of some results (the fold's, see `make`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const totals = (results: ReadonlyArray<TestResult>): Totals =>
  make({ id: "", startedAt: 0, completedAt: null, baseRef: "", baseSha: "", workers: 0, interrupted: false }, results)
    .totals

/**
 * "Failed" in the seed's sense (SPEC §3): failed + timedOut + error.
 *
 * @since 0.1.0
 */
export const failedInSeedSense = (t: Totals): number => t.failed + t.timedOut + t.error

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
 * The text of a report of `kind` whose tests come as a stream, in pieces, for the
 * kinds written test by test (JSON, JUnit); none for the kinds that need the whole
 * report (Markdown, HTML).
 *
 * @since 0.2.0
 */
export const renderStream = <E, R>(
  kind: ReportKind,
  head: { readonly session: SessionInfo; readonly totals: Totals },
  tests: Stream.Stream<TestResult, E, R>
): Option.Option<Stream.Stream<string, E, R>> =>
  kind === "json"
    ? Option.some(Json.renderStream(head, tests))
    : kind === "junit"
    ? Option.some(Junit.renderStream(head, tests))
    : Option.none()

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
