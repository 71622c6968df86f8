/**
 * Every renderer against the hostile corpus (test/support/hostile.ts), put in
 * every field a test supplies, and against random text weighted toward it
 * (fast-check). Each renderer keeps its own property:
 * - JUnit: validates against the Surefire XSD, and reads back (through a
 *   strict XML parser) as the input with only the documented replacements;
 * - HTML: parses (parse5) to the same elements and attributes as a benign
 *   report of the same shape, the hostile text only as text;
 * - JSON: decodes to a report equal to the input;
 * - Markdown: no HTML node, fences and tables hold, same structure as a
 *   benign report of the same shape.
 */
import { assert, describe, it } from "@effect/vitest"
import { DOMParser } from "@xmldom/xmldom"
import * as Effect from "effect/Effect"
import * as fc from "effect/FastCheck"
import type { Nodes, Root } from "mdast"
import { fromMarkdown } from "mdast-util-from-markdown"
import { gfmTableFromMarkdown } from "mdast-util-gfm-table"
import { gfmTable } from "micromark-extension-gfm-table"
import * as Parse5 from "parse5"
import type { Attempt, Report as ReportModel } from "../src/Domain.js"
import * as Text from "../src/internal/text.js"
import * as Html from "../src/report/Html.js"
import * as Json from "../src/report/Json.js"
import * as Junit from "../src/report/Junit.js"
import * as Markdown from "../src/report/Markdown.js"
import * as Conformance from "./support/conformance.js"
import { benignTexts, corpus, everything, hostileTexts, sameText, shapedReport, type Texts } from "./support/hostile.js"

/**
 * The XSD check of every JUnit below, when the Surefire XSD is found (test/support/
 * conformance.ts); without it, the conformance test at the end says it was skipped and why.
 */
const validate = Conformance.decision._tag === "Validate" ? Conformance.validator(Conformance.decision.path) : undefined

const sorted = (test: ReportModel["tests"][number]): ReadonlyArray<Attempt> => [...test.attempts].sort((a, b) => a.n - b.n)

// ---------------------------------------------------------------- JUnit

interface XmlElement {
  readonly nodeType: number
  readonly tagName: string
  readonly textContent: string | null
  readonly childNodes: ArrayLike<XmlElement>
  getAttribute(name: string): string | null
}

/** strict: an undefined entity, a bad tag or any warning throws */
const parseXml = (xml: string): XmlElement =>
  new DOMParser({
    onError: (level, message) => {
      // a warning is advice ("Unicode replacement character detected"), not a fault of the document
      if (level !== "warning") throw new Error(`the JUnit XML does not parse (${level}): ${message}`)
    }
  }).parseFromString(xml, "text/xml").documentElement as unknown as XmlElement

const elements = (el: XmlElement, name?: string): ReadonlyArray<XmlElement> =>
  Array.from(el.childNodes).filter((n) => n.nodeType === 1 && (name === undefined || n.tagName === name))

const xmlForbidden = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff\ufffe\uffff]/u

const checkJunit = (report: ReportModel) =>
  Effect.gen(function*() {
    const xml = Junit.render(report)
    assert.notMatch(xml, xmlForbidden)
    if (validate !== undefined) {
      const outcome = yield* validate(xml)
      assert.isTrue(outcome.valid, `not valid: ${outcome.errors.join("\n")}`)
    }
    const suite = parseXml(xml)
    const testcases = elements(suite, "testcase")
    assert.strictEqual(testcases.length, report.tests.length)
    report.tests.forEach((test, i) => {
      const el = testcases[i]!
      // the documented replacements, and nothing else: ANSI stripped, forbidden characters spelled \uXXXX
      assert.strictEqual(el.getAttribute("name"), Text.oneLine(test.id))
      assert.strictEqual(el.getAttribute("classname"), Text.oneLine(test.source))
      const attempts = sorted(test)
      const out = elements(el, "system-out")[0]?.textContent ?? ""
      for (const a of attempts) assert.include(out, ` - log: ${Text.cleanOutput(a.logPath)}`)
      const reruns = ["rerunFailure", "rerunError", "flakyFailure", "flakyError"].flatMap((name) => elements(el, name))
      for (const rerun of reruns) {
        const a = attempts.find((a) => rerun.getAttribute("message")?.startsWith(`attempt ${a.n}:`) === true) ??
          attempts.find((a) => a.message !== undefined && rerun.getAttribute("message") === Text.oneLine(a.message))
        assert.isDefined(a, `no attempt for ${rerun.tagName} ${rerun.getAttribute("message")}`)
        const trace = elements(rerun, "stackTrace")[0]!.textContent!
        assert.include(trace, `log: ${Text.cleanOutput(a!.logPath)}`)
        assert.include(trace, `worktree: ${Text.cleanOutput(a!.worktree)}`)
        if (a!.message !== undefined) assert.include(trace, `message: ${Text.cleanOutput(a!.message)}`)
        const tail = Text.cleanOutput(a!.tail)
        assert.strictEqual(elements(rerun, "system-out")[0]?.textContent ?? "", tail)
      }
      const final = [...elements(el, "failure"), ...elements(el, "error")]
      for (const f of final) {
        const last = attempts[attempts.length - 1]!
        if (last.message !== undefined) assert.include(f.getAttribute("message"), Text.oneLine(last.message))
        assert.include(f.textContent, `log: ${Text.cleanOutput(last.logPath)}`)
        assert.include(f.textContent, Text.cleanOutput(last.tail))
      }
    })
  })

// ---------------------------------------------------------------- HTML

type Html5Node = {
  readonly nodeName: string
  readonly tagName?: string
  readonly value?: string
  readonly attrs?: ReadonlyArray<{ readonly name: string; readonly value: string }>
  readonly childNodes?: ReadonlyArray<Html5Node>
  readonly content?: Html5Node
}

const parseHtml = (html: string): { readonly document: Html5Node; readonly errors: ReadonlyArray<string> } => {
  const errors: Array<string> = []
  const document = Parse5.parse(html, { onParseError: (e) => errors.push(`${e.code} at ${e.startLine}:${e.startCol}`) })
  return { document: document as unknown as Html5Node, errors }
}

const walk = (node: Html5Node): ReadonlyArray<Html5Node> => [
  node,
  ...(node.childNodes ?? []).flatMap(walk),
  ...(node.content === undefined ? [] : walk(node.content))
]

const textOf = (node: Html5Node): string =>
  node.nodeName === "#text" ? node.value ?? "" : (node.childNodes ?? []).map(textOf).join("")

const attrOf = (node: Html5Node, name: string): string | undefined => node.attrs?.find((a) => a.name === name)?.value

/** the elements in document order, each with its attribute names */
const shape = (document: Html5Node): ReadonlyArray<string> =>
  walk(document).filter((n) => n.tagName !== undefined).map((n) =>
    `${n.tagName}[${(n.attrs ?? []).map((a) => a.name).sort().join(" ")}]`
  )

/** HTML's input stream turns CR and CRLF into LF */
const crlf = (text: string): string => text.replace(/\r\n?/g, "\n")

const checkHtml = (report: ReportModel, benign: ReportModel) => {
  const hostile = parseHtml(Html.render(report))
  const plain = parseHtml(Html.render(benign))
  assert.deepStrictEqual(hostile.errors, [], "the page parses without errors")
  assert.deepStrictEqual(shape(hostile.document), shape(plain.document), "same elements and attributes as a benign report")
  const scripts = walk(hostile.document).filter((n) => n.tagName === "script")
  assert.strictEqual(scripts.length, 1)
  assert.strictEqual(textOf(scripts[0]!), textOf(walk(plain.document).find((n) => n.tagName === "script")!))
  const nodes = walk(hostile.document)
  const title = nodes.find((n) => n.tagName === "title")!
  assert.strictEqual(textOf(title), `grove ${Text.oneLine(report.session.id)} · ${report.session.status.replaceAll("_", " ")}`)
  const bodies = nodes.filter((n) => n.tagName === "tbody" && attrOf(n, "data-test") !== undefined)
  assert.strictEqual(bodies.length, report.tests.length)
  report.tests.forEach((test, i) => {
    const body = bodies[i]!
    assert.strictEqual(attrOf(body, "data-test"), crlf(Text.cleanOutput(test.id)))
    const inside = walk(body)
    const field = (name: string) => textOf(inside.find((n) => attrOf(n, "data-field") === name)!)
    assert.strictEqual(field("id"), Text.oneLine(test.id))
    assert.strictEqual(field("name"), Text.oneLine(test.name))
    const logs = inside.filter((n) => attrOf(n, "data-log") !== undefined).map(textOf)
    assert.deepStrictEqual(logs, sorted(test).map((a) => Text.oneLine(a.logPath)))
    for (const pre of inside.filter((n) => n.tagName === "pre")) {
      const a = sorted(test).find((a) => String(a.n) === attrOf(pre, "data-tail"))!
      assert.strictEqual(textOf(pre), crlf(Text.lastLines(Text.cleanOutput(a.tail), 40).join("\n")))
    }
  })
}

// ---------------------------------------------------------------- JSON

const checkJson = (report: ReportModel) =>
  Effect.gen(function*() {
    const text = Json.render(report)
    // the file is written as UTF-8: lone surrogates must be \u escapes, not code units that cannot be encoded
    assert.strictEqual(Buffer.from(text, "utf8").toString("utf8"), text)
    const decoded = yield* Json.decode(text)
    assert.deepStrictEqual(decoded, report)
  })

// ---------------------------------------------------------------- Markdown

const parseMd = (text: string): Root =>
  fromMarkdown(text, { extensions: [gfmTable()], mdastExtensions: [gfmTableFromMarkdown()] })

const mdNodes = (node: Nodes): ReadonlyArray<Nodes> =>
  "children" in node ? [node, ...node.children.flatMap((c) => mdNodes(c as Nodes))] : [node]

const plain = (node: Nodes): string =>
  "value" in node ? node.value : "children" in node ? node.children.map((c) => plain(c as Nodes)).join("") : ""

/** the document's structure: every node but text, by type and depth */
const mdShape = (tree: Root): ReadonlyArray<string> => {
  const out: Array<string> = []
  const visit = (node: Nodes, depth: number) => {
    if (node.type !== "text") out.push(`${depth}:${node.type}`)
    if ("children" in node) for (const c of node.children) visit(c as Nodes, depth + 1)
  }
  visit(tree, 0)
  return out
}

const checkMarkdown = (report: ReportModel, benign: ReportModel) => {
  const text = Markdown.render(report)
  const tree = parseMd(text)
  const nodes = mdNodes(tree)
  assert.isEmpty(nodes.filter((n) => n.type === "html"), "no raw HTML")
  assert.deepStrictEqual(mdShape(tree), mdShape(parseMd(Markdown.render(benign))), "same structure as a benign report")
  for (const table of nodes.filter((n) => n.type === "table")) {
    const [head, ...rows] = table.children
    for (const row of rows) assert.strictEqual(row.children.length, head!.children.length, "cells per row")
  }
  // the flaky table: the first cell holds the whole id (GFM cannot keep an odd run of backslashes before a pipe
  // in a cell: it reads back one shorter, on GitHub and in micromark alike)
  const inCell = (id: string) =>
    Text.oneLine(id).replace(/(\\*)\|/g, (run, backslashes: string) => backslashes.length % 2 === 1 ? run.slice(1) : run)
  const flaky = report.tests.filter((t) => t.status === "FLAKY")
  const table = nodes.find((n) => n.type === "table" && plain(n.children[0]!.children[0]!) === "test")
  assert.isDefined(table)
  if (table?.type === "table") {
    assert.deepStrictEqual(
      table.children.slice(1).map((row) => plain(row.children[0]!)),
      flaky.map((t) => inCell(t.id))
    )
  }
  // each failure's output is one fence holding exactly its last lines
  const codes = nodes.filter((n) => n.type === "code").map((n) => (n.type === "code" ? n.value : ""))
  const failing = report.tests.filter((t) => t.status === "FAILED" || t.status === "TIMED_OUT" || t.status === "ERROR")
  const expected = failing.flatMap((t) => {
    const last = sorted(t)[t.attempts.length - 1]!
    const lines = Text.lastLines(Text.cleanOutput(last.tail), 20)
    return lines.length === 0 ? [] : [lines.join("\n")]
  })
  assert.deepStrictEqual(codes, expected)
  // ids are inline code, whole
  const inline = new Set(nodes.filter((n) => n.type === "inlineCode").map(plain))
  for (const t of [...failing, ...report.tests.filter((t) => t.status === "CANCELLED")]) {
    assert.isTrue(inline.has(Text.oneLine(t.id)), `the id ${JSON.stringify(Text.oneLine(t.id))} is one code span`)
  }
}

// ---------------------------------------------------------------- the runs

const checkAll = (texts: Texts, info: Partial<{ id: string; baseRef: string }> = {}) =>
  Effect.gen(function*() {
    const report = shapedReport(texts, info)
    const benign = shapedReport(benignTexts)
    yield* checkJunit(report)
    checkHtml(report, benign)
    yield* checkJson(report)
    checkMarkdown(report, benign)
  })

/** `v ` keeps every field non-empty once cleaned, so the shape does not depend on it */
const entry = (text: string): Texts => sameText(`v ${text}`)

/**
 * A letter before the fields whose emptiness changes the report's shape (an
 * empty tail prints no block, an empty path no code span), for the properties
 * that compare the shape with a benign report's.
 */
const nonEmpty = (texts: Texts): Texts => ({
  ...texts,
  source: `s${texts.source}`,
  tail: `t${texts.tail}`,
  message: `m${texts.message}`,
  logPath: `l${texts.logPath}`
})

describe("the hostile corpus", () => {
  it("cleaning leaves entity-shaped text, markup and delimiters as they are: only ANSI and forbidden characters change", () => {
    for (const [label, text] of corpus) {
      const printable = Text.stripAnsi(text).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ud800-\udfff\ufffe\uffff]/gu, "")
      if (printable === text) assert.strictEqual(Text.cleanOutput(text), text, label)
    }
    assert.strictEqual(Text.cleanOutput("a&nbsp;b &amp; &#x41; &#65; &lt;script&gt;"), "a&nbsp;b &amp; &#x41; &#65; &lt;script&gt;")
  })

  it("reaches grove the way the tail decodes it: invalid UTF-8 is U+FFFD", () => {
    const invalid = corpus.find(([label]) => label.startsWith("invalid UTF-8"))![1]
    assert.strictEqual(invalid, "\ufffd\ufffd\ufffd")
  })

  for (const [label, text] of corpus) {
    it.effect(`every renderer keeps its property with ${label} in every field`, () => checkAll(entry(text)))
  }

  it.effect("every renderer keeps its property with the whole corpus in every field, session id and base ref", () =>
    checkAll(sameText(everything), { id: everything, baseRef: everything }))

  Conformance.test(it.effect, "JUnit with the whole corpus in every field validates against the Surefire XSD", (check) =>
    Effect.gen(function*() {
      const outcome = yield* check(Junit.render(shapedReport(sameText(everything), { id: everything, baseRef: everything })))
      assert.isTrue(outcome.valid, `not valid: ${outcome.errors.join("\n")}`)
    }))

  it.effect("JUnit: '&nbsp;' and '&amp;' in the output read back as written", () =>
    Effect.gen(function*() {
      const report = shapedReport(sameText("a&nbsp;b &amp; &#65; &#x41;"))
      const xml = Junit.render(report)
      assert.include(xml, "a&amp;nbsp;b &amp;amp; &amp;#65; &amp;#x41;")
      const failing = elements(parseXml(xml), "testcase")[1]!
      assert.strictEqual(failing.getAttribute("name"), "1:a&nbsp;b &amp; &#65; &#x41;:1")
      assert.include(elements(failing, "failure")[0]!.textContent, "\n\na&nbsp;b &amp; &#65; &#x41;\n")
    }))

  it("HTML: a tail that begins with an empty line keeps it (a parser drops a line feed right after <pre>)", () => {
    const report = shapedReport({ ...benignTexts, tail: "\n\nafter two empty lines\n" })
    const pres = walk(parseHtml(Html.render(report)).document).filter((n) => n.tagName === "pre")
    assert.isNotEmpty(pres)
    for (const pre of pres) assert.strictEqual(textOf(pre), "\n\nafter two empty lines")
  })
})

describe("random hostile text (fast-check)", () => {
  it.effect("every renderer keeps its property for any text in every field", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(hostileTexts, (texts) => Effect.runPromise(checkAll(nonEmpty(texts)))),
        { numRuns: 25 }
      )
    ))

  it.effect("JUnit and JSON keep theirs for any text, empty fields included", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(hostileTexts, (texts) =>
          Effect.runPromise(Effect.gen(function*() {
            const report = shapedReport(texts, { id: texts.id, baseRef: texts.source })
            yield* checkJunit(report)
            yield* checkJson(report)
          }))),
        { numRuns: 25 }
      )
    ))

  it("Markdown and HTML keep theirs for many more texts", () => {
    const benign = shapedReport(benignTexts)
    fc.assert(
      fc.property(hostileTexts, (texts) => {
        const report = shapedReport(nonEmpty(texts))
        checkMarkdown(report, benign)
        checkHtml(report, benign)
      }),
      { numRuns: 150 }
    )
  })
})
