/**
 * The hostile corpus: text a test (or a plan) can put into a report that a
 * renderer could take for markup, an entity, a delimiter or a byte it must not
 * write. One place, so every renderer's test reads the same list; and a report
 * builder that puts one text into every field a test supplies (id, name,
 * source, attempt tail, message, log path, worktree, signal, kept worktree),
 * beside a benign report of the same shape.
 */
import * as DateTime from "effect/DateTime"
import * as fc from "effect/FastCheck"
import { Attempt, type Report as ReportModel, type TestStatus, TestResult } from "../../src/Domain.js"
import { makeTail } from "../../src/internal/tail.js"
import * as Report from "../../src/Report.js"

/** bytes as grove's output tail decodes them (src/internal/tail.ts): UTF-8, invalid sequences as U+FFFD */
const decoded = (bytes: ReadonlyArray<number>, capacity = 64): string => {
  const tail = makeTail(capacity)
  tail.push(Uint8Array.from(bytes))
  return tail.text()
}

const range = (from: number, to: number): string =>
  Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i)).join("")

/** each entry: what it attacks, and the text */
export const corpus: ReadonlyArray<readonly [string, string]> = [
  ["entity-shaped text", "a&nbsp;b &copy; &amp; &#x41; &#65; &lt;script&gt; &quot; &apos; &#0; &#xD800; &bogus &;"],
  ["CDATA terminators", "]]> ]]]]> <![CDATA[x]]> ]]&gt;"],
  ["every C0 control and DEL", range(0x00, 0x1f) + "\u007f"],
  ["C1 controls", range(0x80, 0x9f)],
  ["lone and reversed surrogates", "\ud800 \udfff \udbff\udbff \udc00\ud800 x\ud83d"],
  ["a valid pair beside them", "\ud83d\ude00"],
  ["noncharacters", "\ufffe \uffff \ufdd0"],
  ["invalid UTF-8, decoded as the tail decodes it", decoded([0xff, 0xfe, 0xc3])],
  ["a tail that starts inside a character", decoded([0xe2, 0x82, 0xac, 0x61, 0xe2, 0x82, 0xac, 0x62], 6)],
  ["overlong and surrogate encodings", decoded([0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80])],
  [
    "ANSI escapes",
    "\u001b[1;31mred\u001b[0m \u001b]0;title\u0007 \u001b]8;;http://x\u001b\\link\u001b]8;;\u001b\\ \u009b32m \u001b(B \u001b lone"
  ],
  ["script and markup", "<script>alert(1)</script> </script> <!-- --> <img src=x onerror=alert(1)> </pre></textarea>"],
  ["attribute breakers", "\" onmouseover=\"alert(1) ' onclick='x' > a=\"b\""],
  ["backtick fences", "```\n````\n`` ` ``\n```js\nnot code\n```"],
  ["table pipes", "| a | b |\n|---|\n\\| \\\\| a\\"],
  ["markdown markup", "# heading\n* item\n[link](http://x) ![img](x) *em* _em_ **b** ~~s~~ <b>b</b> \\ \n- - -\n==="],
  ["line breaks", "one\ntwo\r\nthree\rfour\u2028five\u2029six"],
  ["whitespace only", " \t "]
]

/** every corpus entry in one text, each on its own line */
export const everything: string = corpus.map(([, text]) => text).join("\n")

/** the fields of a test that come from a plan or from its output */
export interface Texts {
  readonly id: string
  readonly name: string
  readonly source: string
  readonly tail: string
  readonly message: string
  readonly logPath: string
}

export const sameText = (text: string): Texts => ({
  id: text,
  name: text,
  source: text,
  tail: text,
  message: text,
  logPath: text
})

export const benignTexts: Texts = {
  id: "plain",
  name: "Plain name",
  source: "docs/plans/plain.md",
  tail: "ok\nline two\n",
  message: "setup failed",
  logPath: "/logs/plain.log"
}

const startedAt = Date.UTC(2026, 10, 24, 9, 12, 0)

/**
 * A report with every final status, and attempts that fill every JUnit element
 * (failure, rerunFailure, rerunError, flakyFailure, flakyError, error, skipped),
 * each field of each test holding `texts`. Ids are prefixed with the test's
 * number (before and after: a test id is trimmed), so they stay distinct, and
 * names get a suffix so they differ from ids.
 */
export const shapedReport = (texts: Texts, info: Partial<{ id: string; baseRef: string }> = {}): ReportModel => {
  let worker = 0
  const attempt = (n: number, status: TestStatus, withMessage = false): Attempt =>
    new Attempt({
      n,
      status,
      exitCode: status === "PASSED" ? 0 : status === "FAILED" ? 1 : null,
      signal: status === "TIMED_OUT" ? texts.message : null,
      worker: (worker++ % 3) + 1,
      worktree: `/wt/${texts.logPath}`,
      startedAt: DateTime.unsafeMake(startedAt + worker * 10_000),
      durationMs: 1000 + n,
      logPath: `${texts.logPath}.${n}`,
      tail: texts.tail,
      ...(withMessage ? { message: texts.message } : {})
    })
  const test = (
    i: number,
    status: TestStatus,
    attempts: ReadonlyArray<Attempt>,
    keptWorktree?: string
  ): TestResult =>
    new TestResult({
      id: `${i}:${texts.id}:${i}` as TestResult["id"],
      name: `${texts.name} (${i})`,
      source: texts.source,
      ref: "main",
      status,
      durationMs: attempts.reduce((sum, a) => sum + a.durationMs, 0),
      attempts,
      ...(keptWorktree === undefined ? {} : { keptWorktree })
    })
  const tests = [
    test(0, "PASSED", [attempt(1, "PASSED")]),
    test(1, "FAILED", [attempt(1, "TIMED_OUT"), attempt(2, "FAILED", true), attempt(3, "FAILED")], `/kept/${texts.logPath}`),
    test(2, "FLAKY", [attempt(1, "FAILED"), attempt(2, "ERROR", true), attempt(3, "PASSED")]),
    test(3, "TIMED_OUT", [attempt(1, "FAILED"), attempt(2, "TIMED_OUT")]),
    test(4, "ERROR", [attempt(1, "ERROR", true)]),
    test(5, "CANCELLED", [attempt(1, "FAILED"), attempt(2, "CANCELLED")]),
    test(6, "CANCELLED", [])
  ]
  return Report.make({
    id: info.id ?? "20261124-0912-k3f9",
    startedAt,
    completedAt: startedAt + 184_000,
    baseRef: info.baseRef ?? "main",
    baseSha: "0123456789abcdef0123456789abcdef01234567",
    workers: 3,
    interrupted: false
  }, tests)
}

const fragments = corpus.flatMap(([, text]) => [text, ...Array.from(text)])

/**
 * Any text, weighted toward what breaks renderers: corpus entries and their
 * single characters, any UTF-16 code unit (lone surrogates included), and the
 * delimiters of XML, HTML and Markdown.
 */
export const hostileText: fc.Arbitrary<string> = fc.string({
  unit: fc.oneof(
    fc.constantFrom(...fragments),
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom("&", "<", ">", ";", "#", "`", "``", "```", "|", "\\", "\n", "\r", "\"", "'", "]]>", "&amp;", "x")
  ),
  maxLength: 40
})

export const hostileTexts: fc.Arbitrary<Texts> = fc.record({
  id: hostileText,
  name: hostileText,
  source: hostileText,
  tail: hostileText,
  message: hostileText,
  logPath: hostileText
})
