/**
 * What `grove run` prints off a TTY (and the parts the live view shares): the
 * session line, one line per finished test, and the summary with failures first.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { TestResult, TestStatus, Totals } from "../Domain.js"
import { formatDuration, lastLines, stripAnsi } from "../internal/text.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Style {
  readonly color: boolean
}

const codes: Record<string, string> = {
  red: "\x1b[31m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  magenta: "\x1b[35m",
  dim: "\x1b[2m",
  bold: "\x1b[1m"
}

/**
 * @since 0.1.0
 * @category utils
 */
export const paint = (style: Style, color: keyof typeof codes, text: string): string =>
  style.color ? `${codes[color]}${text}\x1b[0m` : text

const statusColor: Record<TestStatus, keyof typeof codes> = {
  QUEUED: "dim",
  RUNNING: "dim",
  PASSED: "green",
  FLAKY: "yellow",
  FAILED: "red",
  TIMED_OUT: "red",
  ERROR: "magenta",
  CANCELLED: "dim"
}

/**
 * A status padded to a column, coloured when the style allows.
 *
 * @since 0.1.0
 * @category utils
 */
export const status = (style: Style, s: TestStatus): string => paint(style, statusColor[s], s.padEnd(9))

/**
 * A string that came from a test or a plan, safe to print: control characters and
 * escape codes removed.
 *
 * @since 0.1.0
 * @category utils
 */
export const safe = (text: string): string =>
  // eslint-disable-next-line no-control-regex
  stripAnsi(text).replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "")

/**
 * One line per finished test: status, id, duration, attempts.
 *
 * @since 0.1.0
 * @category constructors
 */
export const testLine = (style: Style, result: TestResult): string => {
  const n = result.attempts.length
  const attempts = n > 1 ? paint(style, "dim", `  (${n} attempts)`) : ""
  return `${status(style, result.status)} ${safe(result.id)}  ${paint(style, "dim", formatDuration(result.durationMs))}${attempts}`
}

/**
 * The first line grove prints.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sessionLine = (
  style: Style,
  info: {
    readonly id: string
    readonly tests: number
    readonly workers: number
    readonly baseRef: string
    readonly baseSha: string
    /** the branch a base ref of HEAD was on; undefined when detached */
    readonly baseBranch?: string | undefined
  }
): string =>
  `grove session ${paint(style, "bold", info.id)}  ${info.tests} test${info.tests === 1 ? "" : "s"} on ${info.workers} worker${info.workers === 1 ? "" : "s"}  ${paint(style, "dim", base(info))}`

/** `main at b765dfa678` on a branch; `HEAD b765dfa678` when detached */
const base = (info: { readonly baseRef: string; readonly baseSha: string; readonly baseBranch?: string | undefined }) =>
  info.baseBranch !== undefined
    ? `${info.baseBranch} at ${info.baseSha.slice(0, 10)}`
    : `${info.baseRef} ${info.baseSha.slice(0, 10)}`

/**
 * The summary's lines of one test that did not pass: each failing attempt with its
 * log path, the last lines of its last attempt's output, the kept worktree.
 *
 * @since 0.2.0
 * @category constructors
 */
export const failureLines = (style: Style, t: TestResult, options: { readonly tailLines?: number } = {}): Array<string> => {
  const out = ["", `${status(style, t.status)} ${safe(t.id)}  ${paint(style, "dim", safe(t.source))}`]
  for (const a of t.attempts) {
    if (a.status === "PASSED") continue
    const what = a.message !== undefined ? safe(a.message) : a.exitCode !== null ? `exit ${a.exitCode}` : a.signal ?? ""
    out.push(`  attempt ${a.n}: ${a.status} ${what}`)
    if (a.logPath !== "") out.push(`    log: ${a.logPath}`)
  }
  const last = t.attempts[t.attempts.length - 1]
  if (last !== undefined && last.tail !== "") {
    for (const line of lastLines(last.tail, options.tailLines ?? 10)) out.push(paint(style, "dim", `    | ${safe(line)}`))
  }
  if (t.keptWorktree !== undefined) out.push(`    worktree kept: ${t.keptWorktree}`)
  return out
}

/**
 * The summary's lines of a FLAKY test: its attempts' statuses and the logs of those
 * that did not pass.
 *
 * @since 0.2.0
 * @category constructors
 */
export const flakyLines = (style: Style, t: TestResult): Array<string> => {
  const out = [`  ${safe(t.id)}: ${t.attempts.map((a) => a.status).join(" → ")}`]
  for (const a of t.attempts) {
    if (a.status !== "PASSED" && a.logPath !== "") out.push(paint(style, "dim", `    attempt ${a.n} log: ${a.logPath}`))
  }
  return out
}

/**
 * The heading of a part of the summary.
 *
 * @since 0.2.0
 * @category constructors
 */
export const heading = (style: Style, kind: "failures" | "flaky", count: number): Array<string> =>
  ["", paint(style, "bold", `${kind === "failures" ? "Failures" : "Flaky"} (${count})`)]

/** how many cancelled ids the summary names */
const cancelledShown = 50

/**
 * The summary's line of cancelled tests (the first 50 ids, then how many more).
 *
 * @since 0.2.0
 * @category constructors
 */
export const cancelledLines = (style: Style, ids: ReadonlyArray<string>, count: number): Array<string> =>
  count === 0 ? [] : [
    "",
    paint(
      style,
      "dim",
      `Cancelled (${count}): ${ids.slice(0, cancelledShown).map(safe).join(", ")}` +
        (count > cancelledShown ? `, and ${count - cancelledShown} more` : "")
    )
  ]

/**
 * The summary's last line: the session's status, the counts, the duration.
 *
 * @since 0.2.0
 * @category constructors
 */
export const countsLine = (
  style: Style,
  session: { readonly id: string; readonly status: string; readonly durationMs: number },
  c: Totals
): Array<string> => {
  const parts = [
    paint(style, "green", `${c.passed} passed`),
    c.flaky > 0 ? paint(style, "yellow", `${c.flaky} flaky`) : undefined,
    c.failed > 0 ? paint(style, "red", `${c.failed} failed`) : undefined,
    c.timedOut > 0 ? paint(style, "red", `${c.timedOut} timed out`) : undefined,
    c.error > 0 ? paint(style, "magenta", `${c.error} error`) : undefined,
    c.cancelled > 0 ? `${c.cancelled} cancelled` : undefined
  ].filter((p): p is string => p !== undefined)
  return [
    "",
    `${paint(style, "bold", session.status)}  ${parts.join(", ")}  of ${c.total} in ${formatDuration(session.durationMs)}  ${paint(style, "dim", `session ${session.id}`)}`
  ]
}

/**
 * The summary, a block of lines at a time: failures first, each failing attempt with
 * its log path and the last lines of its output; then the flaky tests; then the
 * cancelled ones; then the counts. The tests come from `testsWith` (the store's, by
 * status), so the summary of any session is printed without holding its tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const summary = <E, R>(
  style: Style,
  report: { readonly session: { readonly id: string; readonly status: string; readonly durationMs: number }; readonly totals: Totals },
  testsWith: (statuses: ReadonlyArray<TestStatus>) => Stream.Stream<TestResult, E, R>,
  options: { readonly tailLines?: number } = {}
): Stream.Stream<string, E, R> => {
  const t = report.totals
  const failed = t.failed + t.timedOut + t.error
  const block = (lines: ReadonlyArray<string>) => lines.join("\n")
  return Stream.concatAll(Chunk.make(
    failed === 0 ? Stream.empty : Stream.concat(
      Stream.make(block(heading(style, "failures", failed))),
      Stream.map(testsWith(["FAILED", "TIMED_OUT", "ERROR"]), (test) => block(failureLines(style, test, options)))
    ),
    t.flaky === 0 ? Stream.empty : Stream.concat(
      Stream.make(block(heading(style, "flaky", t.flaky))),
      Stream.map(testsWith(["FLAKY"]), (test) => block(flakyLines(style, test)))
    ),
    t.cancelled === 0 ? Stream.empty : Stream.fromEffect(
      Effect.map(
        Stream.runCollect(Stream.take(testsWith(["CANCELLED"]), cancelledShown)),
        (tests) => block(cancelledLines(style, Chunk.toReadonlyArray(Chunk.map(tests, (test) => test.id)), t.cancelled))
      )
    ),
    Stream.make(block(countsLine(style, report.session, t)))
  ))
}
