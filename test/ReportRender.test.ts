import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { Nodes, Root } from "mdast"
import { fromMarkdown } from "mdast-util-from-markdown"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Text from "../src/internal/text.js"
import * as Report from "../src/Report.js"
import * as Json from "../src/report/Json.js"
import * as Markdown from "../src/report/Markdown.js"
import { attempt, info, nastyTail, report, result } from "./golden/fixture.js"

const golden = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "golden")

describe("Json", () => {
  it.effect("encode → decode round trip gives the same report", () =>
    Effect.gen(function*() {
      const text = Json.render(report)
      const decoded = yield* Json.decode(text)
      assert.deepStrictEqual(decoded, report)
      assert.strictEqual(Json.render(decoded), text)
    }))

  it("is the Schema's encoding: ISO 8601 times, milliseconds, 2-space indent", () => {
    const text = Json.render(report)
    const json = JSON.parse(text)
    assert.strictEqual(json.version, 1)
    assert.strictEqual(json.session.startedAt, "2026-11-24T09:12:00.000Z")
    assert.strictEqual(json.session.completedAt, "2026-11-24T09:15:04.000Z")
    assert.strictEqual(json.session.durationMs, 184_000)
    assert.deepStrictEqual(json.totals, {
      total: 7,
      passed: 1,
      flaky: 1,
      failed: 1,
      timedOut: 1,
      error: 1,
      cancelled: 2,
      successRate: 28.57
    })
    assert.strictEqual(json.tests[1].attempts[0].startedAt, "2026-11-24T09:12:10.000Z")
    assert.strictEqual(json.tests[1].attempts[2].tail, report.tests[1]!.attempts[2]!.tail)
    assert.isTrue(text.startsWith("{\n  \"version\": 1,\n  \"session\": {\n    \"id\""))
  })

  it.effect("decoding garbage fails with a ParseError", () =>
    Effect.gen(function*() {
      for (
        const garbage of [
          "not json at all",
          "",
          "{}",
          JSON.stringify({ ...JSON.parse(Json.render(report)), version: 2 }),
          Json.render(report).replace("\"2026-11-24T09:12:00.000Z\"", "\"yesterday\"")
        ]
      ) {
        const error = yield* Effect.flip(Json.decode(garbage))
        assert.strictEqual(error._tag, "ParseError", garbage)
      }
    }))
})

const parseMd = (text: string): Root => fromMarkdown(text)
const all = (node: Nodes): ReadonlyArray<Nodes> =>
  "children" in node ? [node, ...node.children.flatMap((c) => all(c as Nodes))] : [node]
const plain = (node: Nodes): string =>
  "value" in node ? node.value : "children" in node ? node.children.map((c) => plain(c as Nodes)).join("") : ""

describe("Markdown", () => {
  it.effect("matches the golden file", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const file = Path.join(golden, "report.md")
      const rendered = Markdown.render(report)
      if (process.env.UPDATE_GOLDEN === "1") yield* fs.writeFileString(file, rendered)
      const expected = yield* fs.readFileString(file)
      assert.strictEqual(rendered, expected, "run with UPDATE_GOLDEN=1 to accept a deliberate change")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it("a tail containing ``` stays inside its block, and plan text makes no markup", () => {
    const tree = parseMd(Markdown.render(report))
    const nodes = all(tree)
    const codes = nodes.filter((n) => n.type === "code")
    const slow = codes.find((c) => c.value.includes("a fence inside the tail"))
    assert.isDefined(slow)
    assert.strictEqual(slow!.value, "a fence inside the tail:\n```\nnot code\n````\n# not a heading")
    const headings = nodes.filter((n) => n.type === "heading").map(plain)
    assert.notInclude(headings, "not a heading")
    assert.deepStrictEqual(
      headings.filter((h) => h.startsWith("❌") || h.startsWith("⏱") || h.startsWith("💥")),
      ["❌ checkout FAILED after 3 attempts", "⏱️ slow TIMED_OUT after 2 attempts", "💥 api`pipe|x ERROR after 1 attempt"]
    )
    // the plan's name "<b>flow</b> *now* … [link](http://x)" is text, not HTML, emphasis or a link
    assert.isEmpty(nodes.filter((n) => n.type === "html" || n.type === "emphasis" || n.type === "link"))
    assert.isTrue(
      nodes.some((n) =>
        n.type === "paragraph" && plain(n) === "name: Checkout | <b>flow</b> *now* second line # [link](http://x)"
      )
    )
  })

  it("shows the last 20 lines of each failure, cleaned, and every attempt's log path", () => {
    const text = Markdown.render(report)
    const checkout = parseMd(text).children.flatMap(all).find((n) =>
      n.type === "code" && n.value.includes("line 30")
    )
    assert.isDefined(checkout)
    const lines = (checkout as { value: string }).value.split("\n")
    assert.strictEqual(lines.length, 20)
    assert.strictEqual(lines[0], "line 16")
    assert.strictEqual(lines[19], "]]> <tag attr=\"x\"> & done")
    assert.include(lines, "progress 100%")
    assert.notInclude(text, "\u001b")
    assert.notInclude(text, "\u0000")
    for (const n of [1, 2, 3]) assert.include(text, `checkout-0badc0de.${n}.log`)
  })

  it("a tail of backticks and an id with backticks cannot escape their spans", () => {
    const ticks = "`".repeat(12)
    const r = Report.make(info, [
      result("x`y", "FAILED", [attempt("x`y", 1, "FAILED", { tail: `${ticks}\n## evil\n${ticks}` })], { name: "a|b\nc" })
    ])
    const tree = parseMd(Markdown.render(r))
    const code = all(tree).find((n) => n.type === "code")
    assert.strictEqual(code && code.type === "code" ? code.value : undefined, `${ticks}\n## evil\n${ticks}`)
    assert.isFalse(all(tree).some((n) => n.type === "heading" && plain(n) === "evil"))
    const inline = all(tree).filter((n) => n.type === "inlineCode").map(plain)
    assert.include(inline, "x`y")
  })

  it("flaky tests are listed with their attempts, cancelled ones by id; pipes are escaped in table cells", () => {
    const text = Markdown.render(Report.make(info, [
      ...report.tests,
      result("a|b", "FLAKY", [attempt("a|b", 1, "TIMED_OUT"), attempt("a|b", 2, "PASSED")])
    ]))
    assert.include(text, "### Flaky (2)")
    assert.include(text, "| `login` | FAILED → ERROR → PASSED | 3.7s | 25% |")
    assert.include(text, "| `a\\|b` | TIMED_OUT → PASSED | 2.5s | — |")
    assert.include(text, "### Cancelled (2)\n\n- ⛔ `deploy`\n- ⛔ `later`")
  })

  it("a backslash before a pipe in an id does not split its table cell (GitHub and micromark read \\\\| differently)", () => {
    const ids = ["a\\|b", "a\\\\|b", "a\\\\\\|b"]
    const text = Markdown.render(Report.make(info, ids.map((id) =>
      result(id, "FLAKY", [attempt(id, 1, "FAILED"), attempt(id, 2, "PASSED")])
    )))
    // an even run of backslashes (none included) gets one more; an odd run already escapes the pipe,
    // so two and three backslashes both come out as three (GFM cannot tell them apart in a cell)
    const rows = text.split("\n").filter((line) => line.startsWith("| `a"))
    assert.deepStrictEqual(rows.map((row) => row.split(" | ")[0]), ["| `a\\|b`", "| `a\\\\\\|b`", "| `a\\\\\\|b`"])
  })

  it("a tail whose last line is empty keeps it inside the block", () => {
    const r = Report.make(info, [result("t", "FAILED", [attempt("t", 1, "FAILED", { tail: "a\n\r" })])])
    const code = all(parseMd(Markdown.render(r))).find((n) => n.type === "code")
    assert.strictEqual(code && code.type === "code" ? code.value : undefined, "a\n")
  })

  it("no tests, and interrupted sessions, say so in the headline", () => {
    const none = Markdown.render(Report.make(info, []))
    assert.isTrue(none.startsWith("## ⚪ grove NO_TESTS: no tests ran\n"))
    assert.notInclude(none, "###")
    const stopped = Markdown.render(Report.make({ ...info, interrupted: true }, report.tests))
    assert.isTrue(stopped.startsWith("## 🛑 grove INTERRUPTED: 2 of 7 tests succeeded (28.57%)\n"))
    assert.include(stopped, "The session was interrupted")
  })

  it("any bytes in plan text and tails come out without control characters or ANSI codes", () => {
    const everything = Array.from({ length: 0x100 }, (_, i) => String.fromCharCode(i)).join("") + "\ud800\udc00x\udfff"
    const text = Markdown.render(Report.make({ ...info, baseRef: everything }, [
      result("weird", "ERROR", [attempt("weird", 1, "ERROR", { tail: everything, message: everything, signal: everything })], {
        name: everything,
        source: everything
      }),
      result("weird2", "FLAKY", [attempt("weird2", 1, "FAILED"), attempt("weird2", 2, "PASSED")], { name: everything }),
      result("weird3", "CANCELLED", [], { name: everything })
    ]))
    assert.notMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ud800-\udfff]/u)
    assert.isEmpty(all(parseMd(text)).filter((n) => n.type === "html" || n.type === "link"))
  })

  it("stays within its length budget, counting the failures it leaves out", () => {
    const many = Array.from({ length: 200 }, (_, i) =>
      result(`t${i}`, "FAILED", [
        attempt(`t${i}`, 1, "FAILED", { tail: Array.from({ length: 40 }, () => "x".repeat(120) + nastyTail).join("\n") })
      ]))
    const text = Markdown.render(Report.make(info, many), { maxLength: 20_000 })
    assert.isAtMost(text.length, 20_000)
    const shown = (text.match(/^#### /gm) ?? []).length
    assert.isAbove(shown, 0)
    assert.include(text, `…and ${200 - shown} more tests not shown`)
    const unlimited = Markdown.render(Report.make(info, many), { maxLength: Number.POSITIVE_INFINITY })
    assert.strictEqual((unlimited.match(/^#### /gm) ?? []).length, 200)
  })
})

describe("text helpers", () => {
  it("formatDuration", () => {
    assert.strictEqual(Text.formatDuration(0), "0ms")
    assert.strictEqual(Text.formatDuration(850), "850ms")
    assert.strictEqual(Text.formatDuration(999.6), "1.0s")
    assert.strictEqual(Text.formatDuration(1234), "1.2s")
    assert.strictEqual(Text.formatDuration(59_960), "1m00s")
    assert.strictEqual(Text.formatDuration(184_000), "3m04s")
    assert.strictEqual(Text.formatDuration(3_723_000), "1h02m03s")
    assert.strictEqual(Text.formatDuration(-1), "0ms")
    assert.strictEqual(Text.formatDuration(Number.NaN), "0ms")
  })

  it("stripAnsi removes colours, cursor moves, titles and hyperlinks, and keeps the text", () => {
    assert.strictEqual(Text.stripAnsi("\u001b[1;31mred\u001b[0m \u001b[2K\u001b[10Gx"), "red x")
    assert.strictEqual(Text.stripAnsi("\u001b]0;title\u0007a\u001b]8;;http://x\u001b\\link\u001b]8;;\u001b\\"), "alink")
    assert.strictEqual(Text.stripAnsi("\u001b(B\u001b=ok\u009b32m!"), "ok!")
  })

  it("replaceXmlForbidden spells forbidden characters and keeps the allowed ones", () => {
    assert.strictEqual(Text.replaceXmlForbidden("a\u0000b\u0007\t\n\r\u001b"), "a\\u0000b\\u0007\t\n\r\\u001b")
    assert.strictEqual(Text.replaceXmlForbidden("\ud83d\ude00 \ud83d \ude00 \ufffe\uffff\ufffd"), "\ud83d\ude00 \\ud83d \\ude00 \\ufffe\\uffff\ufffd")
  })

  it("escapeXmlText and escapeXmlAttribute escape every & and <, whatever follows, and keep line ends as they were", () => {
    assert.strictEqual(Text.escapeXmlText("&nbsp; &amp; &#65; <a> ]]> \"'"), "&amp;nbsp; &amp;amp; &amp;#65; &lt;a&gt; ]]&gt; \"'")
    assert.strictEqual(Text.escapeXmlText("a\r\nb\tc\u2028d"), "a&#13;\nb\tc&#8232;d")
    assert.strictEqual(Text.escapeXmlAttribute("&lt; \"x\" 'y' <"), "&amp;lt; &quot;x&quot; 'y' &lt;")
    assert.strictEqual(Text.escapeXmlAttribute("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d")
  })

  it("cleanOutput spells DEL, C1 controls and noncharacters, and keeps other characters outside the BMP", () => {
    assert.strictEqual(Text.cleanOutput("\u007f\u0085\ufdd0\ufdef\ufdf0"), "\\u007f\\u0085\\ufdd0\\ufdef\ufdf0")
    assert.strictEqual(Text.cleanOutput("\u{1fffe}\u{10ffff}\u{1f600}\u{2fffd}"), "\\u{1fffe}\\u{10ffff}\u{1f600}\u{2fffd}")
    assert.strictEqual(Text.cleanOutput("a&nbsp;b &amp; <i>"), "a&nbsp;b &amp; <i>")
  })

  it("lastLines takes the last lines as a terminal shows them", () => {
    assert.deepStrictEqual(Text.lastLines("a\nb\r\nc\n", 2), ["b", "c"])
    assert.deepStrictEqual(Text.lastLines("10%\r50%\r100%\ndone", 5), ["100%", "done"])
    assert.deepStrictEqual(Text.lastLines("", 5), [])
    assert.deepStrictEqual(Text.lastLines("a\nb", 0), [])
  })
})
