/**
 * The JUnit XML report in Maven Surefire's 3.0 format (SPEC §7), valid against
 * `surefire-test-report-3.0.xsd` for any output: ANSI codes are stripped and
 * characters XML 1.0 forbids are spelled `\uXXXX`.
 *
 * Shape: one `<testsuite>` root (no `<testsuites>`, no `timestamp`), session
 * facts as `<properties>` (the XSD has no `flakes` attribute, so the flaky count
 * is the `grove.flaky` property), one `<testcase>` per test whose children
 * follow the XSD's sequence: failure, rerunFailure*, flakyFailure*, skipped,
 * error, rerunError*, flakyError*, system-out.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import { create } from "xmlbuilder2"
import type { Attempt, Report, TestResult, TestStatus } from "../Domain.js"
import { cleanOutput, formatDuration, oneLine } from "../internal/text.js"

type XMLBuilder = ReturnType<typeof create>

/**
 * Milliseconds as Surefire's `time`: seconds with 3 decimals, never negative.
 *
 * @since 0.1.0
 */
export const seconds = (millis: number): string =>
  (Number.isFinite(millis) && millis > 0 ? millis / 1000 : 0).toFixed(3)

const isRetryable = (status: TestStatus): boolean => status === "FAILED" || status === "TIMED_OUT" || status === "ERROR"

const outcome = (a: Attempt): string =>
  a.status +
  (a.exitCode === null ? "" : `, exit code ${a.exitCode}`) +
  (a.signal === null ? "" : `, signal ${a.signal}`)

const attemptLine = (a: Attempt, of?: number): string =>
  `attempt ${a.n}${of === undefined ? "" : ` of ${of}`}: ${outcome(a)}, ${
    formatDuration(a.durationMs)
  } on worker ${a.worker}`

/** where to look: the attempt's log file, worktree and grove's message */
const attemptFacts = (a: Attempt, of?: number): string =>
  [
    attemptLine(a, of),
    `log: ${a.logPath}`,
    `worktree: ${a.worktree}`,
    ...(a.message === undefined ? [] : [`message: ${a.message}`])
  ].join("\n")

const withTail = (head: string, tail: string): string =>
  tail.length === 0 ? head + "\n" : `${head}\n\n${tail}${tail.endsWith("\n") ? "" : "\n"}`

const rerunElement = (parent: XMLBuilder, name: string, a: Attempt): void => {
  const el = parent.ele(name, { message: oneLine(a.message ?? attemptLine(a)), type: a.status })
  el.ele("stackTrace").txt(cleanOutput(attemptFacts(a)))
  const tail = cleanOutput(a.tail)
  if (tail.length > 0) el.ele("system-out").txt(tail)
}

const finalMessage = (test: TestResult, last: Attempt | undefined): string => {
  if (last === undefined) return `${test.status} before any attempt ran`
  const head = `${test.status} after ${test.attempts.length} attempt${test.attempts.length === 1 ? "" : "s"}`
  const detail = last.message ?? (last.exitCode === null && last.signal === null ? undefined : outcome(last))
  return detail === undefined ? head : `${head}: ${detail}`
}

const finalText = (test: TestResult, last: Attempt | undefined): string => {
  const kept = test.keptWorktree === undefined ? "" : `\nkept worktree: ${test.keptWorktree}`
  return cleanOutput(
    last === undefined
      ? `${test.status}: no attempt ran${kept}\n`
      : withTail(attemptFacts(last, test.attempts.length) + kept, cleanOutput(last.tail))
  )
}

const testcase = (suite: XMLBuilder, test: TestResult): void => {
  const el = suite.ele("testcase", {
    name: oneLine(test.id),
    classname: oneLine(test.source),
    time: seconds(test.durationMs)
  })
  const attempts = [...test.attempts].sort((a, b) => a.n - b.n)
  const last = attempts[attempts.length - 1]
  const ended = test.status === "FAILED" || test.status === "TIMED_OUT" || test.status === "ERROR"
  const succeeded = test.status === "PASSED" || test.status === "FLAKY"
  // attempts before the one that decided the test, which did not pass
  const earlier = (ended ? attempts.slice(0, -1) : attempts).filter((a) => isRetryable(a.status))
  const failedEarlier = earlier.filter((a) => a.status === "FAILED")
  const erroredEarlier = earlier.filter((a) => a.status !== "FAILED")

  if (test.status === "FAILED") {
    el.ele("failure", { message: oneLine(finalMessage(test, last)), type: test.status }).txt(finalText(test, last))
  }
  if (!succeeded) for (const a of failedEarlier) rerunElement(el, "rerunFailure", a)
  if (succeeded) for (const a of failedEarlier) rerunElement(el, "flakyFailure", a)
  if (test.status === "CANCELLED" || test.status === "QUEUED" || test.status === "RUNNING") {
    el.ele("skipped", {
      message: test.status === "CANCELLED"
        ? "CANCELLED: the session stopped before this test finished"
        : `${test.status}: the session has not finished this test`
    })
  }
  if (test.status === "TIMED_OUT" || test.status === "ERROR") {
    el.ele("error", { message: oneLine(finalMessage(test, last)), type: test.status }).txt(finalText(test, last))
  }
  if (!succeeded) for (const a of erroredEarlier) rerunElement(el, "rerunError", a)
  if (succeeded) for (const a of erroredEarlier) rerunElement(el, "flakyError", a)
  if (attempts.length > 0) {
    el.ele("system-out").txt(
      cleanOutput(attempts.map((a) => `${attemptLine(a)} - log: ${a.logPath}`).join("\n") + "\n")
    )
  }
}

/**
 * The JUnit XML text of a report. `failures` counts FAILED tests, `errors`
 * TIMED_OUT and ERROR, `skipped` CANCELLED (and tests a live session has not
 * finished); FLAKY counts as passed.
 *
 * @since 0.1.0
 */
export const render = (report: Report): string => {
  const count = (...statuses: ReadonlyArray<TestStatus>) =>
    String(report.tests.filter((t) => statuses.includes(t.status)).length)
  const doc = create({ version: "1.0", encoding: "UTF-8" })
  const suite = doc.ele("testsuite", {
    name: oneLine(`grove ${report.session.id}`),
    tests: String(report.tests.length),
    failures: count("FAILED"),
    errors: count("TIMED_OUT", "ERROR"),
    skipped: count("CANCELLED", "QUEUED", "RUNNING"),
    time: seconds(report.session.durationMs)
  })
  const properties = suite.ele("properties")
  const property = (name: string, value: string) => properties.ele("property", { name, value: oneLine(value) })
  property("grove.session", report.session.id)
  property("grove.status", report.session.status)
  property("grove.startedAt", DateTime.formatIso(report.session.startedAt))
  property("grove.baseRef", report.session.baseRef)
  property("grove.baseSha", report.session.baseSha)
  property("grove.workers", String(report.session.workers))
  property("grove.flaky", String(report.totals.flaky))
  property("grove.successRate", String(report.totals.successRate))
  for (const test of report.tests) testcase(suite, test)
  return doc.end({ prettyPrint: true }) + "\n"
}
