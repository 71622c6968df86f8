/**
 * The dashboard of `grove serve` (SPEC §9 "Dashboard") in a real headless Chromium
 * (Debian's `chromium`, driven by playwright-core): the built `grove serve` on a real
 * repository, a real `grove run` in another process of tests that pass, one that
 * fails with output, one flaky, one with a 200 KB log and one slow enough to watch.
 *
 * The page follows the live session: a bar appears in a worker lane and grows; the
 * failure appears with its tail; the counts end equal to the store's (the API's
 * session detail); the full log comes in byte ranges (the last 64 KB, then "load
 * earlier"); a flaky test's attempts are side by side with its duration history;
 * the filters narrow the table; Cancel on a session another grove runs shows the
 * API's 409 message; when grove serve restarts the page reconnects with `?after=`;
 * "Re-run failed" starts a session and the page follows it; the sessions list is
 * newest first and filters by status; an unknown session shows the API's 404
 * message. Throughout: every request goes to 127.0.0.1, no console error but those
 * the test provokes, the CSP header is there. Saves
 * `test-artifacts/dashboard-live.png` (while it runs) and `test-artifacts/dashboard.png`
 * (the end, a flaky test open).
 *
 * Run `npm run build` first (`npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import type { ConsoleMessage, Page, Request } from "playwright-core"
import * as Dashboard from "../src/server/dashboard.js"
import { pw } from "./support/browser.js"
import * as Browser from "./support/browser.js"
import * as Cli from "./support/cli.js"
import { makeEmptyRepo } from "./support/repo.js"

const artifacts = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "..", "test-artifacts")
const token = "dashboard-test-token-0123456789"

/** the page's globals as the in-page functions below use them (the tests compile without DOM types) */
interface PageElement {
  readonly textContent: string | null
  hasAttribute(name: string): boolean
  getBoundingClientRect(): { readonly width: number }
}
declare const document: {
  querySelector(selector: string): PageElement | null
  querySelectorAll(selector: string): { readonly length: number }
}
declare const location: { readonly hash: string }

const plan = (name: string, front: string, script: string) => `---\nid: ${name}\n${front}---\n# ${name}\n\n\`\`\`sh\n${script}\n\`\`\`\n`

const launch = Browser.launch("the dashboard's browser test")

/**
 * Waits in the page for `fn(arg)` to hold, with what it waited for in the error. A
 * function, not a string: the page's CSP forbids eval, and a string would be eval'd.
 */
const until = <A>(page: Page, what: string, fn: (arg: A) => boolean, arg: A, timeout = 30_000) =>
  pw(`waiting for ${what}`, () => page.waitForFunction(fn as (arg: unknown) => boolean, arg as unknown, { timeout, polling: 50 })).pipe(Effect.asVoid)

/** waits for an element to be in the page */
const present = (page: Page, what: string, selector: string, timeout = 30_000) =>
  pw(`waiting for ${what}`, () => page.locator(selector).first().waitFor({ state: "attached", timeout }))

const text = (page: Page, selector: string) => pw(`text of ${selector}`, () => page.locator(selector).first().innerText())

interface Totals {
  readonly total: number
  readonly passed: number
  readonly flaky: number
  readonly failed: number
  readonly timedOut: number
  readonly error: number
  readonly cancelled: number
}

const apiGet = (port: number, path: string) =>
  pw(`GET ${path}`, async () => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } })
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

describe("grove serve's dashboard in Chromium", () => {
  it.scopedLive("follows a live grove run: lanes, failures, logs in ranges, flaky attempts, history, filters, counts, buttons", () =>
    Effect.gen(function*() {
      const repo = yield* makeEmptyRepo("grove-dashboard-")
      const plans = NodePath.join(repo.root, "plans")
      Fs.mkdirSync(plans)
      for (let i = 1; i <= 4; i++) Fs.writeFileSync(NodePath.join(plans, `pass${i}.md`), plan(`pass${i}`, "tags: [fast]\n", `sleep 0.${i + 2}; echo pass ${i}`))
      Fs.writeFileSync(NodePath.join(plans, "slow.md"), plan("slow", "tags: [slow]\n", "sleep 6; echo slow done"))
      Fs.writeFileSync(NodePath.join(plans, "fails.md"), plan("fails", "retries: 0\n", "sleep 0.5; echo 'boom: expected 2, got 3'; exit 3"))
      Fs.writeFileSync(NodePath.join(plans, "flaky.md"), plan("flaky", "retries: 1\n", "echo \"attempt $GROVE_ATTEMPT\"; [ \"$GROVE_ATTEMPT\" = 2 ]"))
      // a log of about 200 KB whose last line says where it ends
      Fs.writeFileSync(
        NodePath.join(plans, "biglog.md"),
        plan("biglog", "retries: 0\n", "i=0; while [ $i -lt 3000 ]; do echo \"line $i $(printf '%060d' $i)\"; i=$((i+1)); done; echo 'THE END'; exit 1")
      )

      // grove serve, the built binary
      const startServe = (port: number) =>
        Effect.gen(function*() {
          const serve = yield* Cli.spawn(["serve", "--port", String(port)], { cwd: repo.root, env: { GROVE_TOKEN: token } })
          yield* Cli.waitFor("grove serve's first line", Effect.sync(() => serve.stdout().includes("\n")), {
            within: "30 seconds",
            context: () => `stdout:\n${serve.stdout()}\nstderr:\n${serve.stderr()}`
          })
          const match = /^grove serve http:\/\/127\.0\.0\.1:(\d+)\//.exec(serve.stdout())
          assert.isNotNull(match, serve.stdout())
          return { serve, port: Number(match![1]) }
        })
      const { port, serve } = yield* startServe(0)
      const origin = `http://127.0.0.1:${port}`

      // without the token: a page that says what to do, 401; the assets answer the API's JSON
      const anonymous = yield* pw("GET / without token", () =>
        fetch(`${origin}/`, { headers: { accept: "text/html,*/*" } }).then(async (r) => ({ status: r.status, body: await r.text() })))
      assert.strictEqual(anonymous.status, 401)
      assert.include(anonymous.body, "login URL")
      const anonymousJson = yield* pw("GET / without token, not a browser", () => fetch(`${origin}/`).then((r) => r.json() as Promise<{ readonly _tag?: string }>))
      assert.strictEqual(anonymousJson._tag, "Unauthorized")
      const anonymousJs = yield* pw("GET app.js without token", () => fetch(`${origin}/dashboard/app.js`).then(async (r) => ({ status: r.status, body: await r.text() })))
      assert.strictEqual(anonymousJs.status, 401)
      assert.strictEqual(JSON.parse(anonymousJs.body)._tag, "Unauthorized")

      const browser = yield* launch
      const context = yield* pw("new context", () => browser.newContext({ viewport: { width: 1280, height: 1000 } }))
      const page = yield* pw("new page", () => context.newPage())
      const requests: Array<Request> = []
      const consoleErrors: Array<ConsoleMessage> = []
      const pageErrors: Array<string> = []
      page.on("request", (r) => requests.push(r))
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") consoleErrors.push(m)
      })
      page.on("pageerror", (e) => pageErrors.push(String(e)))

      // log in as a person does: the URL grove serve printed
      const login = yield* pw("login", () => page.goto(`${origin}/login?token=${token}`))
      assert.strictEqual(login?.status(), 200)
      assert.strictEqual(login?.headers()["content-security-policy"], Dashboard.contentSecurityPolicy)
      assert.strictEqual(login?.headers()["x-content-type-options"], "nosniff")
      yield* present(page, "the sessions list", "table.sessions")

      // a grove run in another process
      const run = yield* Cli.spawn(["run", "--workers", "2", ...Fs.readdirSync(plans).sort().map((p) => `plans/${p}`)], { cwd: repo.root })
      yield* Cli.waitFor("grove run's session id", Effect.sync(() => Cli.sessionId(run.stdout()) !== undefined), { within: "30 seconds" })
      const sessionId = Cli.sessionId(run.stdout())!
      yield* present(page, "the session in the list", `[data-session="${sessionId}"] a`, 10_000)
      yield* pw("open the session", () => page.click(`[data-session="${sessionId}"] a`))
      assert.strictEqual(new URL(page.url()).hash, `#/sessions/${sessionId}`)

      // a bar appears in a lane and grows while its attempt runs
      yield* present(page, "a running bar", "#lanes .bar.s-RUNNING")
      yield* present(page, "the slow test's running bar", '#lanes .bar.s-RUNNING[data-test="slow"]')
      const slowBar = '#lanes .bar.s-RUNNING[data-test="slow"]'
      const first = yield* pw("bar width", () => page.evaluate((sel) => document.querySelector(sel)?.getBoundingClientRect().width ?? -1, slowBar))
      assert.isAtLeast(first, 0)
      yield* until(page, "the slow test's bar to grow", ([sel, w]) => (document.querySelector(sel)?.getBoundingClientRect().width ?? -1) > w + 2, [slowBar, first] as const)
      assert.isAtLeast(Number(yield* pw("lanes", () => page.locator("#lanes [data-lane]").count())), 2)
      yield* pw("screenshot while it runs", async () => {
        Fs.mkdirSync(artifacts, { recursive: true })
        await page.screenshot({ path: NodePath.join(artifacts, "dashboard-live.png") })
      })
      const eta = yield* text(page, '[data-fact="eta"] dd')
      assert.notStrictEqual(eta, "")

      // Cancel: this session is another process's, the API refuses with 409 and the page says why
      yield* pw("click Cancel", () => page.click("#cancel"))
      yield* until(page, "the API's refusal", () => document.querySelector("#message")?.hasAttribute("hidden") === false, null)
      const refusal = yield* text(page, "#message")
      assert.include(refusal, `grove process ${run.pid}`)

      // grove serve restarts (same port, same token): the page reconnects after the last event it folded
      const restartedAt = requests.length
      yield* serve.kill("SIGTERM")
      const stopped = yield* serve.exit
      assert.strictEqual(stopped.code, 143, stopped.stderr)
      yield* startServe(port)
      /** what the page says and asked for since the restart, when a wait below fails */
      const sinceRestart = Effect.tapError(() =>
        Effect.flatMap(text(page, "#live"), (live) =>
          Effect.logError(`the page says ${JSON.stringify(live)}; its requests since the restart: ${requests.slice(restartedAt).map((r) => r.url()).join(" ")}`))
      )

      // the failure appears with its tail
      yield* until(page, "the failure of 'fails' with its tail", (sel) => (document.querySelector(sel)?.textContent ?? "").includes("boom: expected 2, got 3"), '[data-failure="fails"] pre.tail')

      // the session ends; the counts are the store's
      const outcome = yield* run.exit
      assert.strictEqual(outcome.code, 1, `grove run: ${outcome.stdout}\n${outcome.stderr}`)
      yield* until(page, "the end of the session", () => document.querySelector("#rerun")?.hasAttribute("hidden") === false, null).pipe(sinceRestart)
      const detail = yield* apiGet(port, `/api/v1/sessions/${sessionId}`)
      const totals = JSON.parse(detail.body).totals as Totals
      assert.deepInclude(totals, { total: 8, passed: 5, flaky: 1, failed: 2 })
      // the slow test ended while grove serve was restarting or after: only the reconnected stream brings it
      yield* until(page, "the last TestFinished folded", (want) => document.querySelector('[data-count="done"]')?.textContent === want, `${totals.total} / ${totals.total}`).pipe(sinceRestart)
      const resumed = requests.slice(restartedAt).map((r) => r.url()).filter((u) => u.includes(`/sessions/${sessionId}/events`))
      assert.isNotEmpty(resumed)
      assert.match(resumed[resumed.length - 1]!, /\/events\?after=\d+$/)

      for (const key of ["passed", "flaky", "failed", "timedOut", "error", "cancelled"] as const) {
        assert.strictEqual(yield* text(page, `[data-count="${key}"] b`), String(totals[key]), key)
      }
      // every attempt has its bar, coloured by how it ended
      assert.strictEqual(Number(yield* pw("bars", () => page.locator("#lanes .bar").count())), 9)
      assert.strictEqual(Number(yield* pw("running bars", () => page.locator("#lanes .bar.s-RUNNING").count())), 0)
      assert.strictEqual(Number(yield* pw("failed bars", () => page.locator("#lanes .bar.s-FAILED").count())), 3)

      // filters: failed, flaky, tag, text
      const rows = () => pw("rows", () => page.locator("[data-test-row]").evaluateAll((els) => els.map((e) => e.getAttribute("data-test-row")).sort()))
      assert.strictEqual((yield* rows()).length, 8)
      yield* pw("Failed", () => page.click('[data-filter="failed"]'))
      assert.deepStrictEqual(yield* rows(), ["biglog", "fails"])
      yield* pw("Flaky", () => page.click('[data-filter="flaky"]'))
      assert.deepStrictEqual(yield* rows(), ["flaky"])
      yield* pw("All", () => page.click('[data-filter="all"]'))
      yield* pw("tag fast", () => page.selectOption("#tag-filter", "fast"))
      assert.deepStrictEqual(yield* rows(), ["pass1", "pass2", "pass3", "pass4"])
      yield* pw("every tag", () => page.selectOption("#tag-filter", ""))
      yield* pw("text", () => page.fill("#search", "slo"))
      assert.deepStrictEqual(yield* rows(), ["slow"])
      yield* pw("clear text", () => page.fill("#search", ""))

      // the flaky test: its attempts side by side, its duration history
      yield* pw("open flaky", () => page.click('[data-test-row="flaky"] a'))
      yield* until(page, "flaky's attempts", () => document.querySelectorAll("#detail [data-attempt-n]").length === 2, null)
      assert.include(yield* text(page, '#detail [data-attempt-n="1"]'), "attempt 1")
      assert.include(yield* text(page, '#detail [data-attempt-n="2"]'), "attempt 2")
      yield* present(page, "flaky's history chart", "#history svg rect")

      // the big log: the last 64 KB first, then earlier bytes on demand, by Range
      yield* pw("open biglog", () => page.goto(`${origin}/#/sessions/${sessionId}/tests/biglog`))
      yield* present(page, "biglog's attempt", '#detail [data-log="1"]')
      yield* pw("Full log", () => page.click('#detail [data-log="1"]'))
      yield* until(page, "the log's last range", () => (document.querySelector(".log-view pre")?.textContent ?? "").includes("THE END"), null)
      const logPre = (yield* pw("log text", () => page.locator(".log-view pre").innerText())).length
      assert.isBelow(logPre, 64 * 1024 + 1)
      assert.notInclude(yield* pw("log text", () => page.locator(".log-view pre").innerText()), "line 0 ")
      yield* pw("Load earlier", () => page.click("#load-earlier"))
      yield* until(page, "an earlier range", (n) => (document.querySelector(".log-view pre")?.textContent ?? "").length > n, logPre + 60_000)
      const ranges = requests.filter((r) => r.url().endsWith("/attempts/1/log")).map((r) => r.headers()["range"])
      assert.strictEqual(ranges[0], "bytes=-65536")
      assert.match(ranges[1] ?? "", /^bytes=\d+-\d+$/)

      yield* pw("screenshot", async () => {
        await page.goto(`${origin}/#/sessions/${sessionId}/tests/flaky`)
        await page.locator("#history svg rect").first().waitFor({ state: "attached", timeout: 10_000 })
        Fs.mkdirSync(artifacts, { recursive: true })
        await page.screenshot({ path: NodePath.join(artifacts, "dashboard.png"), fullPage: true })
      })

      // Re-run failed: a session of grove serve's own, which the page follows
      yield* pw("Re-run failed", () => page.click("#rerun"))
      yield* until(page, "the re-run's view", (id) => location.hash.startsWith("#/sessions/") && !location.hash.startsWith(`#/sessions/${id}`), sessionId)
      const rerunId = decodeURIComponent(new URL(page.url()).hash.slice("#/sessions/".length))
      assert.notStrictEqual(rerunId, sessionId)
      yield* until(page, "the re-run's end", () => document.querySelector("#rerun")?.hasAttribute("hidden") === false && document.querySelector('[data-count="done"]')?.textContent === "2 / 2", null)
      assert.include(yield* text(page, ".meta a"), sessionId)

      // the sessions list: newest first, filtered by status
      yield* pw("the list", () => page.goto(`${origin}/#/`))
      yield* present(page, "both sessions", `[data-session="${sessionId}"]`)
      const listed = yield* pw("listed", () => page.locator("[data-session]").evaluateAll((els) => els.map((e) => e.getAttribute("data-session"))))
      assert.deepStrictEqual(listed, [rerunId, sessionId])
      yield* pw("status COMPLETE", () => page.selectOption("#status-filter", "COMPLETE"))
      yield* until(page, "no COMPLETE session", () => document.querySelectorAll("[data-session]").length === 0, null)
      yield* pw("status PARTIAL_SUCCESS", () => page.selectOption("#status-filter", "PARTIAL_SUCCESS"))
      yield* present(page, "the PARTIAL_SUCCESS session", `[data-session="${sessionId}"]`)

      // a session the store does not hold: the API's message, and no waiting for it
      const unknown = "20990101-0000-none"
      yield* pw("unknown session", () => page.goto(`${origin}/#/sessions/${unknown}`))
      yield* until(page, "the unknown session's message", () => document.querySelector("#live")?.textContent === "no such session", null)
      assert.include(yield* text(page, "#message"), `there is no session "${unknown}"`)

      // throughout: only 127.0.0.1, no error in the console or the page, the CSP on the assets
      const elsewhere = requests.map((r) => r.url()).filter((u) => !u.startsWith(`${origin}/`))
      assert.deepStrictEqual(elsewhere, [])
      assert.deepStrictEqual(pageErrors, [])
      // the errors the console may hold are those the test caused: the refusal of Cancel, and
      // the event stream's reconnections while grove serve was down
      const unexpected = consoleErrors.filter((m) =>
        !(m.text().includes("409") && m.location().url.endsWith(`/sessions/${sessionId}/cancel`)) &&
        !(m.text().includes("ERR_CONNECTION_REFUSED") && m.location().url.includes(`/sessions/${sessionId}/events?after=`)) &&
        !(m.text().includes("404") && m.location().url.includes(`/sessions/${unknown}`))
      )
      assert.deepStrictEqual(unexpected.map((m) => `${m.type()}: ${m.text()} (${m.location().url})`), [])
      const js = yield* apiGet(port, "/dashboard/app.js")
      assert.strictEqual(js.status, 200)
      assert.strictEqual(js.headers.get("content-security-policy"), Dashboard.contentSecurityPolicy)
      assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/)
      // the executable carries the same bundle the library reads from dist/src/dashboard
      assert.strictEqual(js.body, Fs.readFileSync(NodePath.join(Cli.projectRoot, "dist", "src", "dashboard", "app.js"), "utf8"))
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 90_000 })
})
