import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Attempt, type Report as ReportModel, TestResult } from "../src/Domain.js"
import * as Report from "../src/Report.js"
import * as Html from "../src/report/Html.js"
import * as Fixture from "./golden/fixture.js"
import * as Realistic from "./golden/htmlFixture.js"

const golden = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "golden")

/** an escaper of our own, so the test does not trust the renderer's */
const esc = (s: string): string =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll("\"", "&quot;")
    .replaceAll("'", "&#39;")

const count = (text: string, needle: string): number => text.split(needle).length - 1

/** every start tag: user text has its `<` escaped, so each raw `<x` is markup we wrote */
const tags = (html: string): ReadonlyArray<{ readonly name: string; readonly attrs: ReadonlyMap<string, string> }> =>
  Array.from(html.matchAll(/<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>]+(?:="[^"]*")?)*)\s*\/?>/g), (m) => ({
    name: m[1]!.toLowerCase(),
    attrs: new Map(
      Array.from(m[2]!.matchAll(/\s+([^\s=>]+)(?:="([^"]*)")?/g), (a) => [a[1]!.toLowerCase(), a[2] ?? ""] as const)
    )
  }))

const withAttr = (html: string, name: string, value: string) =>
  tags(html).filter((t) => t.attrs.get(name) === value)

const attemptsOf = (report: ReportModel) =>
  report.tests.flatMap((t) => t.attempts.map((a) => ({ test: t, attempt: a })))

const scriptBody = (html: string): string => {
  const m = /<script>([\s\S]*?)<\/script>/.exec(html)
  assert.isNotNull(m)
  return m![1]!
}

describe("Html", () => {
  const html = Html.render(Realistic.report)
  const fixtureHtml = Html.render(Fixture.report)

  it.effect("Report.render dispatches html to Html.render", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Report.render("html", Realistic.report), html)
      assert.strictEqual(Html.render(Realistic.report), html, "rendering is deterministic")
    }))

  it.effect("matches the golden file", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const file = Path.join(golden, "report.html")
      if (process.env.UPDATE_GOLDEN === "1") yield* fs.writeFileString(file, html)
      const expected = yield* fs.readFileString(file)
      assert.strictEqual(html, expected, "run with UPDATE_GOLDEN=1 to accept a deliberate change")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it("references nothing on the network: no src, no external href, no url(), no @import", () => {
    // the realistic report has no URL in its data, so any http in the page would be ours
    assert.notMatch(html, /https?:/i)
    for (const page of [html, fixtureHtml]) {
      assert.notMatch(page, /@import|url\(/i)
      for (const tag of tags(page)) {
        for (const attr of ["src", "srcset", "poster", "action", "formaction", "background", "data", "ping"]) {
          assert.isFalse(tag.attrs.has(attr), `<${tag.name} ${attr}=…>`)
        }
        const href = tag.attrs.get("href")
        if (href !== undefined) assert.match(href, /^(data:|#)/, `<${tag.name} href="${href}">`)
        assert.notInclude(["iframe", "frame", "object", "embed", "img", "video", "audio", "base", "form"], tag.name)
        if (tag.name === "meta") assert.notStrictEqual(tag.attrs.get("http-equiv"), "refresh")
        if (tag.name === "link") assert.strictEqual(tag.attrs.get("rel"), "icon")
        if (tag.name === "script") assert.isFalse(tag.attrs.has("src"))
      }
    }
    // the fixture's name holds a markdown link to http://x: it is text, never a link
    assert.include(fixtureHtml, "[link](http://x)")
    assert.strictEqual(tags(fixtureHtml).filter((t) => t.name === "a").length, 0)
  })

  it("a Content-Security-Policy forbids every fetch and allows exactly the page's script", () => {
    const csp = tags(html).find((t) => t.name === "meta" && t.attrs.get("http-equiv") === "Content-Security-Policy")
    assert.isDefined(csp)
    const policy = csp!.attrs.get("content")!
    assert.include(policy, "default-src 'none'")
    const hash = Crypto.createHash("sha256").update(scriptBody(html), "utf8").digest("base64")
    assert.include(policy, `script-src 'sha256-${hash}'`)
    assert.notInclude(policy, "unsafe-eval")
    assert.notMatch(policy, /script-src[^;]*unsafe-inline/)
  })

  it("escapes every test id, name and source", () => {
    for (const [report, page] of [[Realistic.report, html], [Fixture.report, fixtureHtml]] as const) {
      for (const test of report.tests) {
        assert.strictEqual(withAttr(page, "data-test", esc(test.id)).filter((t) => t.name === "tbody").length, 1, test.id)
        assert.include(page, `<code data-field="id">${esc(test.id)}</code>`)
      }
    }
    assert.notInclude(html, Realistic.evilId)
    assert.include(html, esc(Realistic.evilId))
    assert.include(html, "docs/plans/&lt;evil&gt;.md")
    // the fixture's name spans two lines and holds markup: one line, escaped
    assert.include(fixtureHtml, "Checkout | &lt;b&gt;flow&lt;/b&gt; *now* second line # [link](http://x)")
  })

  it("a hostile name and output appear only escaped: no <img>, one <script>, no control characters", () => {
    assert.notInclude(html, "<img")
    assert.notInclude(html, "<script>alert")
    assert.notInclude(html, "onerror=alert(1)>")
    assert.strictEqual(count(html, "<script"), 1)
    assert.strictEqual(count(html, "</script"), 1)
    assert.include(html, esc(Realistic.evilName))
    assert.include(html, "&lt;script&gt;alert(2)&lt;/script&gt;")
    assert.include(html, "&lt;/script&gt;&lt;script&gt;alert(3)&lt;/script&gt;")
    assert.deepStrictEqual(tags(html).filter((t) => t.name === "script").length, 1)
    for (const page of [html, fixtureHtml]) {
      assert.notMatch(page, /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ud800-\udfff\ufffe\uffff]/u)
    }
    // ANSI codes are gone, the text around them stays; NUL and BEL are spelled out
    assert.include(fixtureHtml, "Error: expected 1 got 2\\u0000\\u0007 bell")
    assert.include(html, "red &amp; done")
  })

  it("one lane per worker, in order, idle ones included", () => {
    const lanes = tags(html).filter((t) => t.attrs.has("data-lane"))
    assert.deepStrictEqual(lanes.map((t) => t.attrs.get("data-lane")), ["1", "2", "3", "4", "5"])
    assert.strictEqual(lanes[4]!.attrs.get("class"), "lane idle")
    assert.deepStrictEqual(
      tags(fixtureHtml).filter((t) => t.attrs.has("data-lane")).map((t) => t.attrs.get("data-lane")),
      ["1", "2", "3"]
    )
  })

  it("one bar per attempt, with its status, outcome and position on the time axis", () => {
    for (const [report, page] of [[Realistic.report, html], [Fixture.report, fixtureHtml]] as const) {
      const bars = tags(page).filter((t) => t.attrs.has("data-attempt"))
      const attempts = attemptsOf(report)
      assert.strictEqual(bars.length, attempts.length)
      for (const { attempt, test } of attempts) {
        const matching = bars.filter((b) => b.attrs.get("data-attempt") === esc(`${test.id}#${attempt.n}`))
        assert.strictEqual(matching.length, 1, `${test.id}#${attempt.n}`)
        assert.strictEqual(matching[0]!.attrs.get("data-status"), attempt.status)
      }
    }
    assert.strictEqual(tags(html).filter((t) => t.attrs.has("data-attempt")).length, Realistic.attemptCount)
    const bar = (id: string) => tags(html).find((t) => t.attrs.get("data-attempt") === id)!
    // checkout#2 starts 62 s into a 164 s session and takes 14.5 s
    const style = /left:([\d.]+)%;width:([\d.]+)%/.exec(bar("checkout#2").attrs.get("style")!)!
    assert.closeTo(Number(style[1]), (62 / 164) * 100, 0.001)
    assert.closeTo(Number(style[2]), (14.5 / 164) * 100, 0.001)
    // the passing attempt of a flaky test is coloured apart from a plain pass
    assert.strictEqual(bar("login#2").attrs.get("data-outcome"), "FLAKY")
    assert.strictEqual(bar("login#2").attrs.get("data-status"), "PASSED")
    assert.strictEqual(bar("unit#1").attrs.get("data-outcome"), "PASSED")
    assert.include(bar("login#2").attrs.get("title")!, "attempt 2 of 2")
  })

  it("an attempt on a slot outside 1..workers gets a lane of its own instead of vanishing", () => {
    const odd = TestResult.make({
      ...Realistic.results[0]!,
      attempts: [Attempt.make({ ...Realistic.results[0]!.attempts[0]!, worker: 4 })]
    })
    const page = Html.render(Report.make({ ...Realistic.info, workers: 2 }, [odd]))
    assert.deepStrictEqual(tags(page).filter((t) => t.attrs.has("data-lane")).map((t) => t.attrs.get("data-lane")), [
      "1",
      "2",
      "4"
    ])
  })

  it("attempts that overlap on one worker go on rows of their own; none hides another", () => {
    assert.notMatch(html, /style="[^"]*--rows\?:/, "the realistic session has no overlap")
    // the shared fixture starts every first attempt on worker 1 at +10 s
    const bars = tags(fixtureHtml).filter((t) => t.attrs.has("data-attempt")).map((t) => {
      const m = /left:([\d.]+)%;width:([\d.]+)%(?:;--row:(\d+))?/.exec(t.attrs.get("style")!)!
      const { attempt } = attemptsOf(Fixture.report).find(({ attempt, test }) =>
        esc(`${test.id}#${attempt.n}`) === t.attrs.get("data-attempt")
      )!
      return { worker: attempt.worker, left: Number(m[1]), right: Number(m[1]) + Number(m[2]), row: Number(m[3] ?? 0) }
    })
    const lanes = tags(fixtureHtml).filter((t) => t.attrs.has("data-lane"))
    assert.strictEqual(lanes[0]!.attrs.get("style"), "--rows:6")
    for (const [i, a] of bars.entries()) {
      for (const [j, b] of bars.entries()) {
        if (i < j && a.worker === b.worker && a.row === b.row) {
          assert.isTrue(a.right <= b.left + 1e-9 || b.right <= a.left + 1e-9, `bars ${i} and ${j} overlap`)
        }
      }
    }
  })

  it("shows the last lines of each attempt's output, as a terminal would, and the log path", () => {
    // checkout#3 printed 60 numbered lines and 5 more: the last 40 are lines 26..60 and the 5
    assert.include(html, "line 26\nline 27")
    assert.notInclude(html, "line 25\n")
    assert.include(html, "progress 100%")
    assert.notInclude(html, "progress 50%")
    const short = Html.render(Realistic.report, { tailLines: 3 })
    assert.notInclude(short, "line 60")
    assert.include(short, "progress 100%")
    for (const { attempt } of attemptsOf(Realistic.report)) assert.include(html, esc(attempt.logPath))
    assert.include(html, "could not prepare worktree: git reset --hard failed")
  })

  it("the filters offer the statuses present, with counts", () => {
    const filters = tags(html).filter((t) => t.name === "button" && t.attrs.has("data-filter"))
    assert.deepStrictEqual(filters.map((t) => t.attrs.get("data-filter")), [
      "ALL",
      "PASSED",
      "FLAKY",
      "FAILED",
      "TIMED_OUT",
      "ERROR",
      "CANCELLED"
    ])
    assert.include(html, "FAILED <b>2</b>")
  })

  it("a session without tests and one still running render too", () => {
    const empty = Html.render(Report.make({ ...Realistic.info, workers: 2 }, []))
    assert.strictEqual(count(empty, "data-lane=\""), 2)
    assert.strictEqual(count(empty, "data-attempt=\""), 0)
    assert.include(empty, "This session has no tests.")
    assert.include(empty, "NO TESTS")

    const running = new Attempt({
      ...Realistic.results[0]!.attempts[0]!,
      status: "RUNNING",
      exitCode: null,
      startedAt: DateTime.unsafeMake(Realistic.info.startedAt + 5000),
      durationMs: 5000
    })
    const live = Html.render(Report.make({ ...Realistic.info, completedAt: null, status: "RUNNING" }, [
      TestResult.make({ ...Realistic.results[0]!, status: "RUNNING", attempts: [running] })
    ]))
    assert.include(live, "not finished")
    // the axis runs to the end of the last attempt: 5 s + 5 s
    const style = /data-attempt="unit#1"[^>]*style="left:([\d.]+)%;width:([\d.]+)%/.exec(live)!
    assert.deepStrictEqual([Number(style[1]), Number(style[2])], [50, 50])
  })
})
