import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { DOMParser } from "@xmldom/xmldom"
import type { TestStatus } from "../src/Domain.js"
import * as Report from "../src/Report.js"
import * as Junit from "../src/report/Junit.js"
import { attempt, info, report, result } from "./golden/fixture.js"
import * as Conformance from "./support/conformance.js"

const assertValid = (validate: Conformance.Validate, xml: string) =>
  Effect.gen(function*() {
    const outcome = yield* validate(xml)
    assert.isTrue(outcome.valid, `JUnit report is not valid: ${outcome.errors.join("\n")}`)
  })

/** the DOM of xmldom's parser, as much of it as the tests read */
interface XmlElement {
  readonly nodeType: number
  readonly tagName: string
  readonly textContent: string | null
  readonly childNodes: ArrayLike<XmlElement>
  readonly attributes: ArrayLike<{ readonly name: string }>
  getAttribute(name: string): string | null
}

/**
 * Parses strictly: any error or warning (an undefined entity, a bad tag) throws.
 * Not xmlbuilder2's parser: it decodes `&amp;#65;` twice, to `A`.
 */
const parse = (xml: string): XmlElement => {
  const parser = new DOMParser({
    onError: (level, message) => {
      throw new Error(`the JUnit XML does not parse (${level}): ${message}`)
    }
  })
  return parser.parseFromString(xml, "text/xml").documentElement as unknown as XmlElement
}
const children = (el: XmlElement, name?: string): ReadonlyArray<XmlElement> =>
  Array.from(el.childNodes).filter((n) => n.nodeType === 1 && (name === undefined || n.tagName === name))
const testcase = (suite: XmlElement, name: string): XmlElement => {
  const found = children(suite, "testcase").find((t) => t.getAttribute("name") === name)
  assert.isDefined(found, `no testcase ${name}`)
  return found!
}
const childNames = (el: XmlElement) => children(el).map((c) => c.tagName)

// characters XML 1.0 forbids, and ANSI escapes' introducer
const forbidden = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff\ufffe\uffff]/u

describe("Junit.render", () => {
  const xml = Junit.render(report)

  Conformance.test(
    it.effect,
    "validates against the Surefire 3.0 XSD for passed, failed, flaky, timed-out, error and cancelled tests",
    (validate) => assertValid(validate, xml)
  )

  Conformance.test(it.effect, "the validator does reject what the XSD forbids (this suite can fail)", (validate) =>
    Effect.gen(function*() {
      const stamped = xml.replace("<testsuite ", "<testsuite timestamp=\"2026-11-24T09:12:00\" ")
      assert.isFalse((yield* validate(stamped)).valid)
      const wrapped = xml.replace(/^(<\?xml[^>]*\?>\n)/, "$1<testsuites>") + "</testsuites>"
      assert.isFalse((yield* validate(wrapped)).valid)
      // an rerunFailure after <error> breaks the sequence order
      const reordered = xml.replace(
        /(<rerunFailure[\s\S]*?<\/rerunFailure>)(\s*)(<error[\s\S]*?<\/error>)/,
        "$3$2$1"
      )
      assert.notStrictEqual(reordered, xml)
      assert.isFalse((yield* validate(reordered)).valid)
    }))

  it("root is one testsuite with the counts and no timestamp", () => {
    const suite = parse(xml)
    assert.strictEqual(suite.tagName, "testsuite")
    const attributes = Array.from(suite.attributes).map((a) => a.name).sort()
    assert.deepStrictEqual(attributes, ["errors", "failures", "name", "skipped", "tests", "time"])
    assert.strictEqual(suite.getAttribute("tests"), "7")
    assert.strictEqual(suite.getAttribute("failures"), "1") // FAILED
    assert.strictEqual(suite.getAttribute("errors"), "2") // TIMED_OUT + ERROR
    assert.strictEqual(suite.getAttribute("skipped"), "2") // CANCELLED
    assert.strictEqual(suite.getAttribute("time"), "184.000")
    assert.strictEqual(children(suite, "testcase").length, 7)
    const properties = children(children(suite, "properties")[0]!, "property")
    const flaky = properties.find((p) => p.getAttribute("name") === "grove.flaky")
    assert.strictEqual(flaky?.getAttribute("value"), "1")
  })

  it("children of each testcase follow the XSD sequence", () => {
    const suite = parse(xml)
    assert.deepStrictEqual(childNames(testcase(suite, "unit")), ["system-out"])
    // attempts TIMED_OUT, FAILED, FAILED
    assert.deepStrictEqual(childNames(testcase(suite, "checkout")), ["failure", "rerunFailure", "rerunError", "system-out"])
    // attempts FAILED, ERROR, PASSED
    assert.deepStrictEqual(childNames(testcase(suite, "login")), ["flakyFailure", "flakyError", "system-out"])
    // attempts FAILED, TIMED_OUT
    assert.deepStrictEqual(childNames(testcase(suite, "slow")), ["rerunFailure", "error", "system-out"])
    assert.deepStrictEqual(childNames(testcase(suite, "api`pipe|x")), ["error", "system-out"])
    // attempts FAILED, CANCELLED
    assert.deepStrictEqual(childNames(testcase(suite, "deploy")), ["rerunFailure", "skipped", "system-out"])
    assert.deepStrictEqual(childNames(testcase(suite, "later")), ["skipped"])
    const rerun = children(testcase(suite, "checkout"), "rerunFailure")[0]!
    assert.deepStrictEqual(childNames(rerun), ["stackTrace", "system-out"])
    assert.strictEqual(testcase(suite, "slow").getAttribute("classname"), "docs/plans/slow.md")
    assert.strictEqual(testcase(suite, "slow").getAttribute("time"), "301.234")
    assert.strictEqual(children(testcase(suite, "slow"), "error")[0]!.getAttribute("type"), "TIMED_OUT")
  })

  it("failures carry the tail and the log path of each attempt; ANSI codes and forbidden characters are gone", () => {
    assert.notMatch(xml, forbidden)
    assert.notInclude(xml, "\u001b")
    assert.notInclude(xml, "[31m")
    assert.notInclude(xml, "]0;window title")
    assert.include(xml, "\\u0000\\u0007 bell")
    assert.include(xml, "lone \\ud800 high, lone \\udc00 low, pair \ud83d\ude00, \\ufffe\\uffff")
    const suite = parse(xml)
    const checkout = testcase(suite, "checkout")
    const failure = children(checkout, "failure")[0]!
    assert.strictEqual(failure.getAttribute("type"), "FAILED")
    assert.include(failure.textContent, "checkout-0badc0de.3.log")
    assert.include(failure.textContent, "Error: expected 1 got 2")
    assert.include(failure.textContent, "]]> <tag attr=\"x\"> & done")
    assert.include(failure.textContent, "kept worktree: /repo.grove/20261124-0912-k3f9/w3")
    const [rerunFailure] = children(checkout, "rerunFailure")
    assert.include(children(rerunFailure!, "stackTrace")[0]!.textContent, "checkout-0badc0de.2.log")
    assert.include(children(rerunFailure!, "system-out")[0]!.textContent, "first failure")
    const [rerunError] = children(checkout, "rerunError")
    assert.strictEqual(rerunError!.getAttribute("type"), "TIMED_OUT")
    assert.include(children(rerunError!, "stackTrace")[0]!.textContent, "checkout-0badc0de.1.log")
    const flakyError = children(testcase(suite, "login"), "flakyError")[0]!
    assert.strictEqual(flakyError.getAttribute("message"), "setup failed: npm ci exited 1")
    assert.include(children(flakyError, "system-out")[0]!.textContent, "npm ERR!")
    const errorMessage = children(testcase(suite, "api`pipe|x"), "error")[0]!.getAttribute("message")
    assert.strictEqual(errorMessage, "ERROR after 1 attempt: could not prepare worktree reset failed")
  })

  const empty = Junit.render(Report.make(info, []))
  it("a report with no tests has one testsuite with no testcase", () => {
    const suite = parse(empty)
    assert.strictEqual(suite.getAttribute("tests"), "0")
    assert.strictEqual(children(suite, "testcase").length, 0)
  })
  Conformance.test(it.effect, "a report with no tests validates", (validate) => assertValid(validate, empty))

  const looksEscaped = "a&nbsp;b &copy; &amp; &#x41; &#65; &lt;script&gt; ]]> <b>x</b> \"q\" 'a' \r\n"
  const entityId = `id &nbsp; &amp; &#65; <i>`
  const entityLike = Junit.render(Report.make(info, [
    result(entityId, "FAILED", [attempt(entityId, 1, "FAILED", { tail: looksEscaped, message: looksEscaped })], {
      source: "src &lt; &gt;"
    })
  ]))
  Conformance.test(it.effect, "output that looks like an entity or markup validates", (validate) => assertValid(validate, entityLike))
  it.effect("output that looks like an entity or markup is text: it reads back as written", () =>
    Effect.gen(function*() {
      const id = entityId
      const suite = parse(entityLike)
      const [testcase] = children(suite, "testcase")
      assert.strictEqual(testcase!.getAttribute("name"), id)
      assert.strictEqual(testcase!.getAttribute("classname"), "src &lt; &gt;")
      const failure = children(testcase!, "failure")[0]!
      assert.strictEqual(failure.getAttribute("message"), `FAILED after 1 attempt: ${looksEscaped.trim()}`)
      assert.isTrue(failure.textContent!.endsWith(`\n\n${looksEscaped}`), failure.textContent!)
    }))

  it("testcase is one test's <testcase> element, as render writes it", () => {
    for (const test of report.tests) assert.include(xml, `\n${Junit.testcase(test)}\n`)
    assert.isTrue(Junit.testcase(report.tests[0]!).startsWith("  <testcase name=\"unit\" "))
    assert.isTrue(Junit.testcase(report.tests[0]!).endsWith("\n  </testcase>"))
  })

  /** every code unit below U+0100, lone surrogates, U+FFFE/FFFF, in tails and names */
  const anyOutput = (() => {
    const everything = Array.from({ length: 0x100 }, (_, i) => String.fromCharCode(i)).join("") +
      "\ud800\udbff\udc00\udfff\ufffe\uffff\ud800x\udc00"
    const statuses: ReadonlyArray<TestStatus> = ["FAILED", "TIMED_OUT", "ERROR", "PASSED"]
    const tests = statuses.map((status, i) => {
      const id = `t${i}`
      const n = status === "PASSED" ? 2 : 1
      const attempts = [
        ...(n === 2 ? [attempt(id, 1, "ERROR", { tail: everything, message: everything })] : []),
        attempt(id, n, status, { tail: everything, message: everything, signal: everything })
      ]
      return result(id, status === "PASSED" ? "FLAKY" : status, attempts, { name: everything, source: everything })
    })
    return Junit.render(Report.make({ ...info, id: everything, baseRef: everything }, tests))
  })()
  it("any output leaves no byte XML forbids: every code unit below U+0100, lone surrogates, U+FFFE/FFFF, in tails and names", () => {
    assert.notMatch(anyOutput, forbidden)
  })
  Conformance.test(it.effect, "any output validates: every code unit below U+0100, lone surrogates, U+FFFE/FFFF, in tails and names", (validate) =>
    assertValid(validate, anyOutput))
})

describe("Junit.seconds", () => {
  it("is seconds with exactly 3 decimals, never negative", () => {
    assert.strictEqual(Junit.seconds(1234.5678), "1.235")
    assert.strictEqual(Junit.seconds(184_000), "184.000")
    assert.strictEqual(Junit.seconds(0.4), "0.000")
    assert.strictEqual(Junit.seconds(-5), "0.000")
    assert.strictEqual(Junit.seconds(Number.NaN), "0.000")
  })
})
