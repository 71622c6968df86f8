/**
 * The HTML report in a real headless Chromium (Debian's `chromium` package,
 * driven by playwright-core): lanes and bars, filters, search, hostile text
 * shown as text, no dialog, no console error, no request but the file itself.
 * Without Chromium every test here fails, with the command that installs it.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { assert, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import type { ConsoleMessage, Dialog, Page, Request } from "playwright-core"
import * as Html from "../src/report/Html.js"
import * as Realistic from "./golden/htmlFixture.js"
import * as Browser from "./support/browser.js"
import { pw } from "./support/browser.js"

const artifacts = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "test-artifacts")


/**
 * One Chromium, one page for the whole file: each test loads the report afresh
 * into it. Launching is done once, and its outcome (a page, or why there is
 * none) is what every test starts from, so a missing Chromium fails each test
 * with the fix rather than skipping them.
 */
class Tab extends Context.Tag("test/HtmlBrowser/Tab")<Tab, Exit.Exit<Page, Error>>() {}

const TabLive = Layer.scoped(
  Tab,
  Effect.gen(function*() {
    return yield* Effect.exit(Effect.gen(function*() {
      const browser = yield* Browser.launch("the HTML report's browser test")
      const context = yield* pw("new context", () => browser.newContext({ viewport: { width: 1280, height: 900 } }))
      return yield* pw("new page", () => context.newPage())
    }))
  })
).pipe(Layer.provide(NodeFileSystem.layer))

interface Opened {
  readonly page: Page
  readonly url: string
  readonly requests: Array<string>
  readonly dialogs: Array<string>
  readonly errors: Array<string>
}

/** the report written to a temp file and opened from `file://`, watched until the test's scope closes */
const open = (html: string) =>
  Effect.gen(function*() {
    const page = yield* (yield* Tab)
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "grove-html-" })
    const file = Path.join(dir, "report.html")
    yield* fs.writeFileString(file, html)
    const opened: Opened = { page, url: pathToFileURL(file).href, requests: [], dialogs: [], errors: [] }
    const onRequest = (r: Request) => opened.requests.push(r.url())
    const onDialog = (d: Dialog) => {
      opened.dialogs.push(d.message())
      void d.dismiss()
    }
    const onConsole = (m: ConsoleMessage) => {
      if (m.type() === "error" || m.type() === "warning") opened.errors.push(`${m.type()}: ${m.text()}`)
    }
    const onPageError = (e: Error) => opened.errors.push(`pageerror: ${e.message}`)
    yield* Effect.acquireRelease(
      Effect.sync(() => page.on("request", onRequest).on("dialog", onDialog).on("console", onConsole).on("pageerror", onPageError)),
      () =>
        Effect.sync(() =>
          page.off("request", onRequest).off("dialog", onDialog).off("console", onConsole).off("pageerror", onPageError)
        )
    )
    yield* pw("goto", () => page.goto(opened.url, { waitUntil: "load" }))
    return opened
  })

/** what every test ends with: no dialog, no console error, no request but the file */
const clean = (o: Opened) => {
  assert.include(o.requests, o.url, "the request listener saw the page load")
  assert.deepStrictEqual(o.dialogs, [], "no dialog may open")
  assert.deepStrictEqual(o.errors, [], "no console error or warning")
  assert.deepStrictEqual(
    o.requests.filter((u) => u !== o.url && u !== "about:blank"),
    [],
    "no request but the report file"
  )
}

const visibleRows = (page: Page) =>
  pw("rows", () =>
    page.$$eval("tbody[data-test]:not([hidden])", (rows) => rows.map((r) => r.getAttribute("data-status") ?? "")))

const html = Html.render(Realistic.report)

layer(Layer.merge(TabLive, NodeFileSystem.layer), { timeout: 30_000 })("HtmlBrowser", (it) => {
  it.scoped("one lane per worker, one bar per attempt, placed on the time axis", () =>
    Effect.gen(function*() {
      const o = yield* open(html)
      const lanes = yield* pw("lanes", () => o.page.$$eval("[data-lane]", (els) => els.map((e) => e.getAttribute("data-lane"))))
      assert.deepStrictEqual(lanes, ["1", "2", "3", "4", "5"])
      const bars = yield* pw("bars", () => o.page.locator("[data-attempt]").count())
      assert.strictEqual(bars, Realistic.attemptCount)
      for (let worker = 1; worker <= 5; worker++) {
        const expected = Realistic.results.flatMap((t) => t.attempts).filter((a) => a.worker === worker).length
        const actual = yield* pw("lane bars", () => o.page.locator(`[data-lane="${worker}"] [data-attempt]`).count())
        assert.strictEqual(actual, expected, `worker ${worker}`)
      }
      // the idle lane is drawn, as tall as the others
      const idle = yield* pw("idle lane", () => o.page.locator("[data-lane=\"5\"]").boundingBox())
      assert.isAbove(idle!.height, 20)
      // checkout#2 runs from 62 s to 76.5 s of 164 s: its box says so
      const track = yield* pw("track", () => o.page.locator("[data-lane=\"2\"] .lane-track").boundingBox())
      const bar = yield* pw("bar", () => o.page.locator("[data-attempt=\"checkout#2\"]").boundingBox())
      assert.closeTo((bar!.x - track!.x) / track!.width, 62 / 164, 0.005)
      assert.closeTo(bar!.width / track!.width, 14.5 / 164, 0.005)
      const title = yield* pw("title", () => o.page.locator("[data-attempt=\"checkout#2\"]").getAttribute("title"))
      assert.include(title!, "checkout — attempt 2 of 3")
      assert.include(title!, "FAILED")
      clean(o)
    }))

  it.scoped("the FAILED filter shows only FAILED rows; clearing it shows all", () =>
    Effect.gen(function*() {
      const o = yield* open(html)
      const all = Realistic.results.length
      assert.strictEqual((yield* visibleRows(o.page)).length, all)
      yield* pw("click FAILED", () => o.page.click("[data-filter=\"FAILED\"]"))
      const failed = yield* visibleRows(o.page)
      assert.deepStrictEqual(failed, ["FAILED", "FAILED"])
      assert.strictEqual(yield* pw("pressed", () => o.page.getAttribute("[data-filter=\"FAILED\"]", "aria-pressed")), "true")
      assert.strictEqual(yield* pw("shown", () => o.page.textContent("[data-shown]")), `2 of ${all} tests`)
      // a second status adds to the first
      yield* pw("click TIMED_OUT", () => o.page.click("[data-filter=\"TIMED_OUT\"]"))
      assert.deepStrictEqual((yield* visibleRows(o.page)).sort(), ["FAILED", "FAILED", "TIMED_OUT"])
      yield* pw("unclick TIMED_OUT", () => o.page.click("[data-filter=\"TIMED_OUT\"]"))
      // clicking FAILED again clears it
      yield* pw("unclick FAILED", () => o.page.click("[data-filter=\"FAILED\"]"))
      assert.strictEqual((yield* visibleRows(o.page)).length, all)
      // and so does "All"
      yield* pw("click FLAKY", () => o.page.click("[data-filter=\"FLAKY\"]"))
      assert.deepStrictEqual(yield* visibleRows(o.page), ["FLAKY"])
      yield* pw("click ALL", () => o.page.click("[data-filter=\"ALL\"]"))
      assert.strictEqual((yield* visibleRows(o.page)).length, all)
      assert.strictEqual(yield* pw("shown", () => o.page.textContent("[data-shown]")), `${all} tests`)
      clean(o)
    }))

  it.scoped("the search box filters by id or name, with the status filter", () =>
    Effect.gen(function*() {
      const o = yield* open(html)
      const ids = () =>
        pw("ids", () =>
          o.page.$$eval("tbody[data-test]:not([hidden])", (rows) => rows.map((r) => r.getAttribute("data-test"))))
      yield* pw("fill", () => o.page.fill("[data-search]", "login"))
      assert.deepStrictEqual(yield* ids(), ["login"])
      yield* pw("fill", () => o.page.fill("[data-search]", "sso")) // the name "Login with SSO", any case
      assert.deepStrictEqual(yield* ids(), ["login"])
      yield* pw("fill", () => o.page.fill("[data-search]", "OUT"))
      yield* pw("click FAILED", () => o.page.click("[data-filter=\"FAILED\"]"))
      assert.deepStrictEqual(yield* ids(), ["checkout"])
      yield* pw("fill", () => o.page.fill("[data-search]", "no such test"))
      assert.deepStrictEqual(yield* ids(), [])
      assert.isTrue(yield* pw("empty", () => o.page.isVisible("tbody[data-empty]")))
      yield* pw("fill", () => o.page.fill("[data-search]", ""))
      yield* pw("click ALL", () => o.page.click("[data-filter=\"ALL\"]"))
      assert.strictEqual((yield* ids()).length, Realistic.results.length)
      assert.isFalse(yield* pw("empty", () => o.page.isVisible("tbody[data-empty]")))
      clean(o)
    }))

  it.scoped("a hostile name and output show as text: no element, no dialog, no request", () =>
    Effect.gen(function*() {
      const o = yield* open(html)
      const row = o.page.locator("tbody[data-test]").filter({ has: o.page.locator(`code[data-field="id"]`, { hasText: Realistic.evilId }) })
      assert.strictEqual(yield* pw("row", () => row.count()), 1)
      assert.strictEqual(yield* pw("name", () => row.locator("[data-field=\"name\"]").textContent()), Realistic.evilName)
      assert.strictEqual(yield* pw("id", () => row.locator("[data-field=\"id\"]").textContent()), Realistic.evilId)
      yield* pw("expand", () => row.locator("button.expand").click())
      assert.isTrue(yield* pw("detail", () => row.locator("tr.detail").isVisible()))
      const tail = yield* pw("tail", () => row.locator("pre[data-tail=\"2\"]").textContent())
      assert.include(tail!, "<script>alert(2)</script>")
      assert.include(tail!, "</script><script>alert(3)</script>")
      assert.include(tail!, "red & done")
      assert.notInclude(tail!, "\u001b")
      // the only script and no image: nothing in the data became markup
      assert.strictEqual(yield* pw("scripts", () => o.page.locator("script").count()), 1)
      assert.strictEqual(yield* pw("imgs", () => o.page.locator("img").count()), 0)
      const bar = o.page.locator(`[data-attempt="${Realistic.evilId.replaceAll("\"", "\\\"")}#1"]`)
      assert.strictEqual(yield* pw("bar text", () => bar.textContent()), Realistic.evilId)
      yield* pw("hover", () => bar.hover())
      clean(o)
    }))

  it.scoped("clicking a bar opens its test, clearing filters that hid it; screenshot", () =>
    Effect.gen(function*() {
      const o = yield* open(html)
      yield* pw("click FAILED", () => o.page.click("[data-filter=\"FAILED\"]"))
      yield* pw("click bar", () => o.page.click("[data-attempt=\"login#2\"]"))
      const login = o.page.locator("tbody[data-test=\"login\"]")
      assert.isTrue(yield* pw("login visible", () => login.isVisible()))
      assert.strictEqual(yield* pw("expanded", () => login.locator("button.expand").getAttribute("aria-expanded")), "true")
      assert.strictEqual((yield* visibleRows(o.page)).length, Realistic.results.length)
      // collapse it again by clicking its row
      yield* pw("collapse", () => login.locator("tr.test-row").click())
      assert.isFalse(yield* pw("detail", () => login.locator("tr.detail").isVisible()))

      // the picture: checkout's failure opened
      yield* pw("open checkout", () => o.page.locator("tbody[data-test=\"checkout\"] button.expand").click())
      // its 40-line tail opens scrolled to the end, where the error is
      const scroll = yield* pw("tail scroll", () =>
        o.page.locator("tbody[data-test=\"checkout\"] pre[data-tail=\"3\"]").evaluate((pre) => [
          pre.scrollTop,
          pre.clientHeight,
          pre.scrollHeight
        ]))
      assert.isAbove(scroll[0]!, 0)
      assert.closeTo(scroll[0]! + scroll[1]!, scroll[2]!, 1)
      const fs = yield* FileSystem.FileSystem
      yield* fs.makeDirectory(artifacts, { recursive: true })
      yield* pw("screenshot", () =>
        o.page.screenshot({ path: Path.join(artifacts, "html-report.png"), fullPage: true, animations: "disabled" }))
      assert.isTrue(yield* fs.exists(Path.join(artifacts, "html-report.png")))
      clean(o)
    }))
})
