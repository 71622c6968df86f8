/**
 * The Markdown report (SPEC §7): a summary fit for a pull-request comment or
 * `$GITHUB_STEP_SUMMARY` — a headline with the session status, the counts, the
 * failures with their last output lines and log paths, the flaky tests with
 * their attempts, and the cancelled tests.
 *
 * Text that comes from plans (names, ids, sources, refs) is escaped: it cannot
 * open links, HTML, emphasis or table cells, and output tails sit in fences
 * longer than any backtick run they contain.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import type { Attempt, Report, SessionStatus, TestResult, TestStatus } from "../Domain.js"
import { cleanOutput, formatDuration, lastLines, oneLine } from "../internal/text.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** lines of output shown for each failure; default 20 */
  readonly tailLines?: number
  /**
   * approximate budget of characters (GitHub comments hold 65,536); failures,
   * flaky and cancelled tests that do not fit are listed by count. Default 60,000.
   */
  readonly maxLength?: number
}

const maxLineLength = 500

/**
 * Plan-provided text as inline Markdown: one line, with every character that
 * could start markup (emphasis, links, HTML, entities, table cells, heading
 * closers) backslash-escaped.
 *
 * @since 0.1.0
 */
export const escapeText = (text: string): string => oneLine(text).replace(/[\\`*_{}[\]()<>#!|~&]/g, "\\$&")

const longestRun = (text: string, char: string): number => {
  let longest = 0
  let run = 0
  for (const c of text) {
    run = c === char ? run + 1 : 0
    if (run > longest) longest = run
  }
  return longest
}

/**
 * Plan-provided text as an inline code span on one line, delimited by more
 * backticks than it contains.
 *
 * @since 0.1.0
 */
export const code = (text: string): string => {
  const content = oneLine(text)
  const ticks = "`".repeat(longestRun(content, "`") + 1)
  const pad = content.startsWith("`") || content.endsWith("`") ? " " : ""
  return `${ticks}${pad}${content}${pad}${ticks}`
}

/**
 * A code span inside a table cell. GFM splits cells on `|` even inside code,
 * unless a backslash precedes it; but GitHub keeps the pipe in its cell after
 * any run of backslashes, micromark only after an odd one (it reads `\\` as
 * an escaped backslash, cmark-gfm#277). So a pipe gets a backslash where an
 * even run (none included) precedes it, and the cell holds in both; a pipe
 * after an odd run then reads back with one backslash fewer, in both. The same
 * rule as mdast-util-gfm-table's serializer.
 */
const codeCell = (text: string): string =>
  code(text).replace(/(\\*)\|/g, (run: string, backslashes: string) =>
    backslashes.length % 2 === 0 ? `${backslashes}\\|` : run
  )

/**
 * A fenced block holding `body` verbatim: the fence is longer than any run of
 * backticks in it, so no line of the body can close it.
 *
 * @since 0.1.0
 */
export const fenced = (body: string, info = "text"): string => {
  const fence = "`".repeat(Math.max(3, longestRun(body, "`") + 1))
  return `${fence}${info}\n${body}${body.length === 0 || body.endsWith("\n") ? "" : "\n"}${fence}`
}

const sessionIcon: Record<SessionStatus, string> = {
  RUNNING: "⏳",
  COMPLETE: "✅",
  PARTIAL_SUCCESS: "⚠️",
  FAILED: "❌",
  NO_TESTS: "⚪",
  INTERRUPTED: "🛑"
}

const testIcon: Record<TestStatus, string> = {
  QUEUED: "⏳",
  RUNNING: "⏳",
  PASSED: "✅",
  FLAKY: "🔁",
  FAILED: "❌",
  TIMED_OUT: "⏱️",
  ERROR: "💥",
  CANCELLED: "⛔"
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`

const headline = (report: Report): string => {
  const { session, totals } = report
  const summary = totals.total === 0
    ? "no tests ran"
    : `${totals.passed + totals.flaky} of ${plural(totals.total, "test")} succeeded (${totals.successRate}%)`
  return `## ${sessionIcon[session.status]} grove ${session.status}: ${summary}`
}

const sessionLine = (report: Report): string => {
  const { session } = report
  const duration = session.completedAt === null ? "not finished" : formatDuration(session.durationMs)
  return [
    `Session ${code(session.id)}`,
    `base ${code(session.baseRef)} at ${code(session.baseSha.slice(0, 12))}`,
    plural(session.workers, "worker"),
    duration,
    `started ${DateTime.formatIso(session.startedAt)}`
  ].join(" · ")
}

const countsTable = (report: Report): string => {
  const t = report.totals
  return [
    "| passed | flaky | failed | timed out | error | cancelled | total |",
    "|---:|---:|---:|---:|---:|---:|---:|",
    `| ${t.passed} | ${t.flaky} | ${t.failed} | ${t.timedOut} | ${t.error} | ${t.cancelled} | ${t.total} |`
  ].join("\n")
}

const sorted = (test: TestResult): ReadonlyArray<Attempt> => [...test.attempts].sort((a, b) => a.n - b.n)

const attemptSummary = (a: Attempt): string =>
  [
    a.status,
    ...(a.exitCode === null ? [] : [`exit ${a.exitCode}`]),
    ...(a.signal === null ? [] : [`signal ${escapeText(a.signal)}`]),
    formatDuration(a.durationMs),
    `worker ${a.worker}`,
    `log ${code(a.logPath)}`
  ].join(" · ") + (a.message === undefined ? "" : ` — ${escapeText(a.message)}`)

const truncateLine = (line: string): string =>
  line.length <= maxLineLength ? line : `${line.slice(0, maxLineLength)}… [${line.length - maxLineLength} more characters]`

const failureBlock = (test: TestResult, tailLines: number): string => {
  const attempts = sorted(test)
  const last = attempts[attempts.length - 1]
  const lines = [
    `#### ${testIcon[test.status]} ${code(test.id)} ${test.status} after ${plural(attempts.length, "attempt")}`,
    ""
  ]
  if (test.name !== test.id && oneLine(test.name).length > 0) lines.push(`- name: ${escapeText(test.name)}`)
  lines.push(`- source: ${code(test.source)} at ref ${code(test.ref)} · ${formatDuration(test.durationMs)}`)
  if (test.keptWorktree !== undefined) lines.push(`- kept worktree: ${code(test.keptWorktree)}`)
  if (attempts.length === 0) lines.push("- no attempt ran")
  else {
    lines.push("- attempts:")
    attempts.forEach((a, i) => lines.push(`  ${i + 1}. ${attemptSummary(a)}`))
  }
  if (last !== undefined) {
    const tail = lastLines(cleanOutput(last.tail), tailLines).map(truncateLine)
    lines.push("")
    if (tail.length === 0) lines.push(`Attempt ${last.n} printed nothing.`)
    else {
      lines.push(`Last ${plural(tail.length, "line")} of attempt ${last.n}:`, "")
      // each line ends with its line feed: a last line that is empty stays a line of the block
      lines.push(fenced(tail.map((line) => `${line}\n`).join("")))
    }
  }
  return lines.join("\n")
}

const flakyRow = (test: TestResult): string => {
  const history = test.flakiness === undefined ? "—" : `${Math.round(test.flakiness * 100)}%`
  const attempts = sorted(test).map((a) => a.status).join(" → ")
  return `| ${codeCell(test.id)} | ${attempts} | ${formatDuration(test.durationMs)} | ${history} |`
}

const otherLine = (test: TestResult): string =>
  `- ${testIcon[test.status]} ${code(test.id)}` +
  (test.name !== test.id && oneLine(test.name).length > 0 ? ` — ${escapeText(test.name)}` : "")

/** Appends items while they fit the budget; the rest are counted. */
const fit = (
  used: number,
  budget: number,
  items: ReadonlyArray<string>,
  separator: string,
  more: (n: number) => string
): { readonly text: string; readonly length: number } => {
  const kept: Array<string> = []
  let length = used
  for (const [i, item] of items.entries()) {
    const reserve = i === items.length - 1 ? 0 : 200
    if (length + item.length + separator.length + reserve > budget) {
      kept.push(more(items.length - i))
      break
    }
    kept.push(item)
    length += item.length + separator.length
  }
  const text = kept.join(separator)
  return { text, length: used + text.length }
}

/**
 * The Markdown text of a report.
 *
 * @since 0.1.0
 */
export const render = (report: Report, options: Options = {}): string => {
  const tailLines = options.tailLines ?? 20
  const budget = options.maxLength ?? 60_000
  const failures = report.tests.filter((t) =>
    t.status === "FAILED" || t.status === "TIMED_OUT" || t.status === "ERROR"
  )
  const flaky = report.tests.filter((t) => t.status === "FLAKY")
  const cancelled = report.tests.filter((t) => t.status === "CANCELLED")
  const unfinished = report.tests.filter((t) => t.status === "QUEUED" || t.status === "RUNNING")

  const parts: Array<string> = [headline(report), sessionLine(report)]
  if (report.session.status === "INTERRUPTED") {
    parts.push("The session was interrupted: tests that had not finished are cancelled.")
  }
  if (report.totals.total > 0) parts.push(countsTable(report))
  let used = parts.join("\n\n").length
  const section = (
    title: string,
    tests: ReadonlyArray<TestResult>,
    head: string | undefined,
    item: (t: TestResult) => string,
    separator: string
  ) => {
    if (tests.length === 0) return
    const heading = `### ${title} (${tests.length})`
    const start = used + 2 + heading.length + 2 + (head === undefined ? 0 : head.length + 1)
    const fitted = fit(start, budget, tests.map(item), separator, (n) =>
      // a blank line ends a list or a table before the note
      `${separator === "\n" ? "\n" : ""}…and ${plural(n, "more test")} not shown: see the JSON or JUnit report.`)
    parts.push(`${heading}\n\n${head === undefined ? "" : head + "\n"}${fitted.text}`)
    used = fitted.length
  }
  section("Failures", failures, undefined, (t) => failureBlock(t, tailLines), "\n\n")
  section("Flaky", flaky, "| test | attempts | duration | flaky recently |\n|---|---|---:|---:|", flakyRow, "\n")
  section("Cancelled", cancelled, undefined, otherLine, "\n")
  section("Not finished", unfinished, undefined, otherLine, "\n")
  return parts.join("\n\n") + "\n"
}
