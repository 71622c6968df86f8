/**
 * The dashboard's routes (SPEC §9 "Dashboard"): `/` is a page that loads
 * `/dashboard/app.js` and `/dashboard/app.css`, the browser code of `src/dashboard/`
 * that `scripts/bundle.mjs` bundled. Nothing else is loaded, from anywhere: the CSP
 * allows the page's own script and style and requests to its own origin only.
 *
 * Where the assets come from: the `grove` executable carries them (esbuild's
 * `define` puts them in `__GROVE_DASHBOARD__`); the library, compiled by tsc, reads
 * them once from `../dashboard/` beside this module (where the bundle step wrote them).
 * Run from the sources without a build, `/` says to run `npm run build`.
 *
 * The gate (`Server.ts`) checks the token first, as for every route; without it,
 * `/` answers 401 — to a browser (`Accept: text/html`) with a short page that says
 * to open the login URL grove serve printed (a person reads a page, not JSON), to
 * any other client with the API's 401 JSON, as the assets always do.
 *
 * @since 0.2.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"

declare const __GROVE_DASHBOARD__: string | undefined

interface Assets {
  readonly js: string
  readonly css: string
}

/**
 * The dashboard's CSP: its own script and style, requests to its own origin.
 *
 * @since 0.2.0
 * @category utils
 */
export const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

const headers = { "content-security-policy": contentSecurityPolicy, "x-content-type-options": "nosniff" }

let loaded: Assets | undefined

const besideThisModule = Effect.try(() => ({
  js: Fs.readFileSync(new URL("../dashboard/app.js", import.meta.url), "utf8"),
  css: Fs.readFileSync(new URL("../dashboard/app.css", import.meta.url), "utf8")
}))

/** the bundled assets: embedded in the executable, else beside the compiled library (kept once found) */
const assets: Effect.Effect<Assets | undefined> = Effect.suspend(() => {
  if (loaded !== undefined) return Effect.succeed(loaded)
  const found = typeof __GROVE_DASHBOARD__ === "string"
    ? Effect.succeed(JSON.parse(__GROVE_DASHBOARD__) as Assets)
    : besideThisModule
  return found.pipe(
    Effect.tap((a) => Effect.sync(() => (loaded = a))),
    Effect.orElseSucceed(() => undefined)
  )
})

const html = (text: string, status: number) =>
  HttpServerResponse.text(text, { status, contentType: "text/html; charset=utf-8", headers })

const page = (body: string) =>
  html(
    `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>grove serve</title><link rel="stylesheet" href="/dashboard/app.css"></head>
<body>${body}</body></html>`,
    200
  )

const shell = page(`<div id="app"><p class="boot">Loading the dashboard…</p></div>
<script src="/dashboard/app.js" defer></script>
<noscript>The dashboard needs JavaScript. The API is under <a href="/api/v1/sessions">/api/v1</a>.</noscript>`)

const notBuilt = HttpServerResponse.text(
  "the dashboard is not built: run `npm run build` (it bundles src/dashboard into dist/src/dashboard)\n",
  { status: 503, headers }
)

/**
 * The paths the dashboard answers (GET).
 *
 * @since 0.2.0
 * @category utils
 */
export const serves = (path: string): boolean => path === "/" || path === "/dashboard/app.js" || path === "/dashboard/app.css"

/**
 * `GET /`, `/dashboard/app.js`, `/dashboard/app.css`, once the gate let the request through.
 *
 * @since 0.2.0
 * @category handlers
 */
export const respond = (path: string) =>
  Effect.map(assets, (found) => {
    if (found === undefined) return notBuilt
    if (path === "/dashboard/app.js") return HttpServerResponse.text(found.js, { contentType: "text/javascript; charset=utf-8", headers })
    if (path === "/dashboard/app.css") return HttpServerResponse.text(found.css, { contentType: "text/css; charset=utf-8", headers })
    return shell
  })

/**
 * Whether a request without the token gets `loginPage`: `GET /` from a browser.
 *
 * @since 0.2.0
 * @category utils
 */
export const wantsLoginPage = (request: HttpServerRequest.HttpServerRequest, path: string): boolean =>
  request.method === "GET" && path === "/" && (request.headers["accept"] ?? "").includes("text/html")

/**
 * `GET /` without the token: a page for a person, with what to do (401).
 *
 * @since 0.2.0
 * @category handlers
 */
export const loginPage = html(
  `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>grove serve: log in</title></head>
<body><h1>grove serve</h1>
<p>This dashboard needs grove serve's token. Open the login URL <code>grove serve</code> printed when it started
(<code>http://HOST:PORT/login?token=…</code>) in this browser once; it sets a cookie and brings you here.</p>
<p>Started with <code>--token</code> or <code>GROVE_TOKEN</code>? The URL is <code>/login?token=</code> followed by that token.</p>
</body></html>`,
  401
)
