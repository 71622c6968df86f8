/**
 * The JUnit XML report in Maven Surefire's 3.0 format (SPEC §7), valid against
 * `surefire-test-report-3.0.xsd` for any output: ANSI codes are stripped,
 * characters XML 1.0 forbids are spelled `\uXXXX`, and every `&`, `<` and `>`
 * is escaped, so output that looks like an entity (`&nbsp;`, `&amp;`) or
 * markup reads back as the text it was. The XML is written here rather than by
 * xmlbuilder2, whose serializer leaves `&name;` and `&#NN;` unescaped, taking
 * them for entities already escaped.
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
import * as Stream from "effect/Stream"
import type { Attempt, Report, SessionInfo, TestResult, TestStatus, Totals } from "../Domain.js"
import { cleanOutput, escapeXmlAttribute, escapeXmlText, formatDuration, inPieces, oneLine } from "../internal/text.js"

/**
 * An XML element as this report writes it: attributes in order, and either
 * text or child elements. Attribute values and text are already cleaned of
 * what XML forbids; {@link serialize} escapes them.
 */
interface Element {
  readonly name: string
  readonly attributes: ReadonlyArray<readonly [string, string]>
  readonly content: string | ReadonlyArray<Element>
}

const element = (
  name: string,
  attributes: Record<string, string>,
  content: string | ReadonlyArray<Element> = []
): Element => ({ name, attributes: Object.entries(attributes), content })

const startTag = (el: Element): string =>
  `<${el.name}${el.attributes.map(([name, value]) => ` ${name}="${escapeXmlAttribute(value)}"`).join("")}`

/**
 * An element as indented XML at `depth`: text stays on the start tag's line
 * (indenting it would change it), children go one per line, two spaces deeper.
 * Every `&` and `<` of a value is escaped here and nowhere else: no text is
 * taken for markup or for an entity already escaped.
 */
const serialize = (el: Element, depth: number): string => {
  const indent = "  ".repeat(depth)
  if (typeof el.content === "string") {
    return `${indent}${startTag(el)}>${escapeXmlText(el.content)}</${el.name}>`
  }
  if (el.content.length === 0) return `${indent}${startTag(el)}/>`
  return `${indent}${startTag(el)}>\n${el.content.map((c) => serialize(c, depth + 1)).join("\n")}\n${indent}</${el.name}>`
}

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
  (a.signal === null ? "" : `, signal ${cleanOutput(a.signal)}`)

const attemptLine = (a: Attempt, of?: number): string =>
  `attempt ${a.n}${of === undefined ? "" : ` of ${of}`}: ${outcome(a)}, ${
    formatDuration(a.durationMs)
  } on worker ${a.worker}`

/**
 * Where to look: the attempt's log file, worktree and grove's message. Like
 * every text here, it is made of fields cleaned one by one: an escape sequence
 * begun in one field cannot swallow the next.
 */
const attemptFacts = (a: Attempt, of?: number): string =>
  [
    attemptLine(a, of),
    `log: ${cleanOutput(a.logPath)}`,
    `worktree: ${cleanOutput(a.worktree)}`,
    ...(a.message === undefined ? [] : [`message: ${cleanOutput(a.message)}`])
  ].join("\n")

const withTail = (head: string, tail: string): string =>
  tail.length === 0 ? head + "\n" : `${head}\n\n${tail}${tail.endsWith("\n") ? "" : "\n"}`

const rerunElement = (name: string, a: Attempt): Element => {
  const tail = cleanOutput(a.tail)
  return element(name, { message: oneLine(a.message ?? attemptLine(a)), type: a.status }, [
    element("stackTrace", {}, attemptFacts(a)),
    ...(tail.length > 0 ? [element("system-out", {}, tail)] : [])
  ])
}

const finalMessage = (test: TestResult, last: Attempt | undefined): string => {
  if (last === undefined) return `${test.status} before any attempt ran`
  const head = `${test.status} after ${test.attempts.length} attempt${test.attempts.length === 1 ? "" : "s"}`
  const detail = last.message !== undefined ? cleanOutput(last.message) : (last.exitCode === null && last.signal === null ? undefined : outcome(last))
  return detail === undefined ? head : `${head}: ${detail}`
}

const finalText = (test: TestResult, last: Attempt | undefined): string => {
  const kept = test.keptWorktree === undefined ? "" : `\nkept worktree: ${cleanOutput(test.keptWorktree)}`
  return last === undefined
    ? `${test.status}: no attempt ran${kept}\n`
    : withTail(attemptFacts(last, test.attempts.length) + kept, cleanOutput(last.tail))
}

const testcaseElement = (test: TestResult): Element => {
  const attempts = [...test.attempts].sort((a, b) => a.n - b.n)
  const last = attempts[attempts.length - 1]
  const ended = test.status === "FAILED" || test.status === "TIMED_OUT" || test.status === "ERROR"
  const succeeded = test.status === "PASSED" || test.status === "FLAKY"
  // attempts before the one that decided the test, which did not pass
  const earlier = (ended ? attempts.slice(0, -1) : attempts).filter((a) => isRetryable(a.status))
  const failedEarlier = earlier.filter((a) => a.status === "FAILED")
  const erroredEarlier = earlier.filter((a) => a.status !== "FAILED")
  const children: Array<Element> = []

  if (test.status === "FAILED") {
    children.push(
      element("failure", { message: oneLine(finalMessage(test, last)), type: test.status }, finalText(test, last))
    )
  }
  for (const a of failedEarlier) children.push(rerunElement(succeeded ? "flakyFailure" : "rerunFailure", a))
  if (test.status === "CANCELLED" || test.status === "QUEUED" || test.status === "RUNNING") {
    children.push(element("skipped", {
      message: test.status === "CANCELLED"
        ? "CANCELLED: the session stopped before this test finished"
        : `${test.status}: the session has not finished this test`
    }))
  }
  if (test.status === "TIMED_OUT" || test.status === "ERROR") {
    children.push(
      element("error", { message: oneLine(finalMessage(test, last)), type: test.status }, finalText(test, last))
    )
  }
  for (const a of erroredEarlier) children.push(rerunElement(succeeded ? "flakyError" : "rerunError", a))
  if (attempts.length > 0) {
    children.push(element(
      "system-out",
      {},
      attempts.map((a) => `${attemptLine(a)} - log: ${cleanOutput(a.logPath)}`).join("\n") + "\n"
    ))
  }
  return element("testcase", {
    name: oneLine(test.id),
    classname: oneLine(test.source),
    time: seconds(test.durationMs)
  }, children)
}

/**
 * The `<testcase>` element of one test, indented for its place inside
 * `<testsuite>`, without a final line break: a function of the test alone, so
 * a writer can put tests out one at a time.
 *
 * @since 0.1.0
 */
export const testcase = (test: TestResult): string => serialize(testcaseElement(test), 1)

/**
 * What comes before the tests: the XML declaration, the `<testsuite>` start tag with
 * the counts, and the session's properties. `failures` counts FAILED tests, `errors`
 * TIMED_OUT and ERROR, `skipped` CANCELLED (and tests a live session has not
 * finished); FLAKY counts as passed.
 */
const head = (session: SessionInfo, totals: Totals): string => {
  const property = (name: string, value: string) => element("property", { name, value: oneLine(value) })
  const properties = element("properties", {}, [
    property("grove.session", session.id),
    property("grove.status", session.status),
    property("grove.startedAt", DateTime.formatIso(session.startedAt)),
    property("grove.baseRef", session.baseRef),
    property("grove.baseSha", session.baseSha),
    property("grove.workers", String(session.workers)),
    property("grove.flaky", String(totals.flaky)),
    property("grove.successRate", String(totals.successRate))
  ])
  const ended = totals.passed + totals.flaky + totals.failed + totals.timedOut + totals.error + totals.cancelled
  const suite = element("testsuite", {
    name: oneLine(`grove ${session.id}`),
    tests: String(totals.total),
    failures: String(totals.failed),
    errors: String(totals.timedOut + totals.error),
    skipped: String(totals.cancelled + Math.max(0, totals.total - ended)),
    time: seconds(session.durationMs)
  })
  return ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>", `${startTag(suite)}>`, serialize(properties, 1)].join("\n")
}

/**
 * The JUnit XML text of a report whose tests come as a stream, in pieces: the same
 * text `render` makes of the whole report, without holding its tests.
 *
 * @since 0.2.0
 */
export const renderStream = <E, R>(
  report: { readonly session: SessionInfo; readonly totals: Totals },
  tests: Stream.Stream<TestResult, E, R>
): Stream.Stream<string, E, R> =>
  Stream.make(head(report.session, report.totals)).pipe(
    Stream.concat(inPieces(Stream.map(tests, (test) => "\n" + testcase(test)))),
    Stream.concat(Stream.make("\n</testsuite>\n"))
  )

/**
 * The JUnit XML text of a report (its counts are its totals).
 *
 * @since 0.1.0
 */
export const render = (report: Report): string =>
  [head(report.session, report.totals), ...report.tests.map(testcase), "</testsuite>"].join("\n") + "\n"
