/**
 * `grove serve`'s HTTP server (SPEC §9): the handlers of `Api.GroveApi` over the
 * `Store`, the security in front of every request, and the server layer on
 * `NodeHttpServer`.
 *
 * What a request goes through, in order (`gate`):
 *
 * 1. **Host** (DNS rebinding): the `Host` header must be a name grove serves — the
 *    bound `--host`, the loopback names `127.0.0.1`, `localhost`, `[::1]`, and each
 *    `--allowed-host`, with the port — else 421. A page on `evil.example` whose name
 *    the attacker re-points at 127.0.0.1 sends `Host: evil.example:PORT`.
 * 2. **Origin** (CSRF): a request that is not GET/HEAD, or is a WebSocket upgrade, and carries an `Origin` that is
 *    not one of those names is refused with 403. No CORS header is ever sent, so
 *    another origin can neither read a response nor make a preflighted request.
 * 3. **Token**: every request but `GET /api/v1/health` and `GET /login` carries the
 *    token, as `Authorization: Bearer <token>` (the prefix checked, the scheme name
 *    case-insensitive) or as the cookie `/login?token=…` set; else 401. Tokens are
 *    compared in constant time (SHA-256 of both, then `timingSafeEqual`).
 *    The API's own `Authorization` middleware checks again for the endpoints that
 *    declare it (and documents the scheme in the OpenAPI document).
 *
 * Live events (`…/events`, `…/ws`): the frames come from `server/Live.ts` (read from
 * the store, shared by the clients of a session), their HTTP and WebSocket side from
 * `server/LiveHttp.ts`. A WebSocket upgrade is a GET: its `Origin` is checked in
 * point 2 as well.
 *
 * Logs: an attempt's log is read only when the path stored for that attempt
 * resolves (symlinks followed) inside that session's log folder,
 * `<git-common-dir>/grove/sessions/<id>/logs` of the repository the session ran in.
 *
 * Shutdown: the live streams end first (a layer built after the server completes
 * `Live.close`, which wakes every waiting follower and waits up to a second for the
 * senders, so a WebSocket gets its 1001). Node's `server.close` waits for every open
 * connection. When the layer's
 * scope closes, idle keep-alive connections are closed at once and the others get
 * `drain` (default 1 s) to finish before they are cut, so a client that hangs (or a
 * stream that never ends) cannot hold the process.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Path from "@effect/platform/Path"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import * as Os from "node:os"
import * as NodePath from "node:path"
import * as Api from "./Api.js"
import { type TestId, TestResult } from "./Domain.js"
import * as Git from "./Git.js"
import type { GitError, StoreError } from "./GroveError.js"
import { inPieces } from "./internal/text.js"
import * as Resume from "./Resume.js"
import * as ReportModule from "./Report.js"
import * as Actions from "./server/actions.js"
import * as Dashboard from "./server/dashboard.js"
import * as Live from "./server/Live.js"
import * as LiveHttp from "./server/LiveHttp.js"
import * as Session from "./Session.js"
import { stateOf, Store, testStream } from "./Store.js"

// -----------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** the address to bind; 127.0.0.1 unless the user names another */
  readonly host: string
  /** 0 picks a free port */
  readonly port: number
  readonly token: Redacted.Redacted<string>
  /** more names the `Host` header may carry (with or without the port) */
  readonly allowedHosts: ReadonlyArray<string>
  /** the repository served: its worktrees, and the log folder of its sessions */
  readonly repo: Option.Option<Git.RepoInfo>
  /** grove's version, for health */
  readonly version: string
  /** how long open requests get to finish when the server closes (default 1 s) */
  readonly drain?: Duration.DurationInput
  /** live events: heartbeat, page size, poll intervals (`server/Live.ts`) */
  readonly live?: Live.Options
}

/**
 * A fresh token: 32 random bytes, base64url.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeToken = (): Redacted.Redacted<string> => Redacted.make(Crypto.randomBytes(32).toString("base64url"))

const digest = (text: string) => Crypto.createHash("sha256").update(text, "utf8").digest()

/**
 * Whether `presented` is the token, in time that does not depend on where they differ.
 *
 * @since 0.1.0
 * @category utils
 */
export const tokenMatches = (token: Redacted.Redacted<string>, presented: string): boolean =>
  Crypto.timingSafeEqual(digest(Redacted.value(token)), digest(presented)) && presented.length > 0

/** `host:port` as a `Host` header carries it (IPv6 in brackets) */
const hostWithPort = (host: string, port: number) =>
  host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`

/**
 * The `Host` header values grove answers to on `port` (lower case).
 *
 * @since 0.1.0
 * @category utils
 */
export const servedHosts = (options: Pick<Options, "host" | "allowedHosts">, port: number): ReadonlySet<string> => {
  const names = new Set<string>()
  const add = (name: string) => {
    const lower = name.trim().toLowerCase()
    if (lower === "") return
    // a name given with its port stands as it is; without one, it is served on ours
    if (/^\[.*\]:\d+$/.test(lower) || /^[^:\]]+:\d+$/.test(lower)) names.add(lower)
    else names.add(hostWithPort(lower, port))
  }
  for (const loopback of ["127.0.0.1", "localhost", "::1"]) add(loopback)
  if (options.host !== "0.0.0.0" && options.host !== "::") add(options.host)
  options.allowedHosts.forEach(add)
  return names
}

// -----------------------------------------------------------------------------
// the gate: Host, Origin, token
// -----------------------------------------------------------------------------

const unsafeMethod = (method: string) => method !== "GET" && method !== "HEAD"

const pathOf = (url: string) => {
  const q = url.indexOf("?")
  return q === -1 ? url : url.slice(0, q)
}

/** the token a request presents: its bearer header, else its cookie */
const presentedToken = (request: HttpServerRequest.HttpServerRequest, port: number): Option.Option<string> => {
  const header = request.headers["authorization"]
  const bearer = header !== undefined && /^Bearer [^\s]/i.test(header) ? Option.some(header.slice(7).trim()) : Option.none()
  if (Option.isSome(bearer)) return bearer
  const cookie = request.cookies[Api.cookieName(port)]
  return cookie === undefined || cookie === "" ? Option.none() : Option.some(cookie)
}

const authorized = (request: HttpServerRequest.HttpServerRequest, token: Redacted.Redacted<string>, port: number) =>
  Option.match(presentedToken(request, port), { onNone: () => false, onSome: (t) => tokenMatches(token, t) })

const unauthorized = (request: HttpServerRequest.HttpServerRequest) =>
  new Api.Unauthorized({
    message: request.headers["authorization"] !== undefined && !/^Bearer /i.test(request.headers["authorization"])
      ? "grove serve takes its token as `Authorization: Bearer <token>`, not another scheme"
      : "this request needs grove serve's token: send `Authorization: Bearer <token>`, or log in once with /login?token=<token> (the URL grove serve printed)"
  })

/** an error of the gate's (or a raw response's) as its JSON body, as the API encodes its own */
const errorResponse = (
  error: Api.Unauthorized | Api.Forbidden | Api.NotFound | Api.MisdirectedRequest | Api.RangeNotSatisfiable,
  status: number,
  headers: Record<string, string> = {}
) =>
  HttpServerResponse.unsafeJson(Schema.encodeSync(Schema.Union(
    Api.Unauthorized,
    Api.Forbidden,
    Api.NotFound,
    Api.MisdirectedRequest,
    Api.RangeNotSatisfiable
  ))(error), { status, headers })

/** headers on every response: nothing to sniff, no referrer (a login URL holds the token), no caching */
const hardened = (response: HttpServerResponse.HttpServerResponse, path: string) => {
  let headers = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store"
  } as Record<string, string>
  if (path === "/docs") {
    // the explorer's page inlines swagger-ui and the OpenAPI document: nothing else may load
    headers = {
      ...headers,
      "content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
        "img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    }
  } else if (response.headers["content-security-policy"] === undefined) {
    headers = { ...headers, "content-security-policy": "default-src 'none'; frame-ancestors 'none'" }
  }
  return HttpServerResponse.setHeaders(response, headers)
}

/**
 * The middleware in front of every request (module notes, points 1–3), `/login`, the
 * dashboard (`server/dashboard.ts`), and 404 JSON for unknown routes.
 */
const gate = (options: Options) => {
  // the port is known once the server is bound: the names are made on the first request
  let names: { readonly port: number; readonly served: ReadonlySet<string> } | undefined
  const namesOf = (server: HttpServer.HttpServer) => {
    if (names === undefined) {
      const port = server.address._tag === "TcpAddress" ? server.address.port : options.port
      names = { port, served: servedHosts(options, port) }
    }
    return names
  }
  return (app: HttpApp.Default) => gateWith(options, namesOf, app)
}

const gateWith = (
  options: Options,
  namesOf: (server: HttpServer.HttpServer) => { readonly port: number; readonly served: ReadonlySet<string> },
  app: HttpApp.Default
) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const { port, served } = namesOf(yield* HttpServer.HttpServer)
    const path = pathOf(request.url)
    const host = (request.headers["host"] ?? "").toLowerCase()
    if (!served.has(host)) {
      return errorResponse(
        new Api.MisdirectedRequest({
          host,
          message: `grove serve does not answer to the name ${JSON.stringify(host)}: ` +
            `use http://127.0.0.1:${port}/, or start it with --allowed-host ${host.replace(/:\d+$/, "") || "NAME"}`
        }),
        421
      )
    }
    const origin = request.headers["origin"]
    // a WebSocket upgrade is a GET that CORS does not cover: its Origin is checked as well
    const upgrade = (request.headers["upgrade"] ?? "") !== ""
    if ((unsafeMethod(request.method) || upgrade) && origin !== undefined && !served.has(originHost(origin))) {
      return errorResponse(
        new Api.Forbidden({
          reason: "CrossOrigin",
          message: `a ${upgrade ? "WebSocket" : request.method} from the page of ${JSON.stringify(origin)} is refused: grove serve takes ` +
            `${upgrade ? "WebSockets" : "requests that change things"} only from its own pages or from clients that send no Origin`
        }),
        403
      )
    }
    if (path === "/login" && request.method === "GET") return yield* login(request, options.token, port)
    if (path !== "/api/v1/health" && !authorized(request, options.token, port)) {
      return Dashboard.wantsLoginPage(request, path) ? Dashboard.loginPage : errorResponse(unauthorized(request), 401)
    }
    if (request.method === "GET" && Dashboard.serves(path)) return yield* Dashboard.respond(path)
    // browsers ask for it on every page: nothing, rather than a 404 in their console
    if (path === "/favicon.ico") return HttpServerResponse.empty({ status: 204 })
    return yield* app
  }).pipe(
    // a response of the gate's own is written after it returns; the app writes its own
    // before that, so the headers go on those through a pre-response handler
    Effect.flatMap((response) => Effect.map(HttpServerRequest.HttpServerRequest, (r) => hardened(response, pathOf(r.url)))),
    (handled) =>
      Effect.zipRight(
        HttpApp.appendPreResponseHandler((request, response) => Effect.succeed(hardened(response, pathOf(request.url)))),
        handled
      )
  )

/** the `host:port` of an Origin (`http://127.0.0.1:4000` → `127.0.0.1:4000`); `null` matches nothing */
const originHost = (origin: string): string => {
  try {
    const url = new URL(origin)
    return url.protocol === "http:" || url.protocol === "https:" ? url.host.toLowerCase() : ""
  } catch {
    return ""
  }
}

/** `GET /login?token=…`: the cookie, then `/` */
const login = (request: HttpServerRequest.HttpServerRequest, token: Redacted.Redacted<string>, port: number) =>
  Effect.gen(function*() {
    const params = new URLSearchParams(request.url.slice(request.url.indexOf("?") + 1))
    const given = request.url.includes("?") ? params.get("token") ?? "" : ""
    if (!tokenMatches(token, given)) {
      return errorResponse(
        new Api.Unauthorized({
          message: "that is not grove serve's token: use the login URL it printed when it started (or its --token / GROVE_TOKEN)"
        }),
        401
      )
    }
    return yield* HttpServerResponse.redirect("/", { status: 303 }).pipe(
      HttpServerResponse.setCookie(Api.cookieName(port), given, { httpOnly: true, sameSite: "strict", path: "/" }),
      Effect.orDie
    )
  })

// -----------------------------------------------------------------------------
// handlers
// -----------------------------------------------------------------------------

const serverError = (e: StoreError | GitError) => new Api.ServerError({ message: e.message })

const sessionNotFound = (id: string) =>
  new Api.NotFound({ what: "session", subject: id, message: `there is no session ${JSON.stringify(id)} in this store` })

const storeFailure = (id: string) => (e: StoreError): Effect.Effect<never, Api.NotFound | Api.ServerError> =>
  e.reason === "UnknownSession" ? Effect.fail(sessionNotFound(id)) : Effect.fail(serverError(e))

/** whether the owner of a session lives (`Resume.sessionOwner`) */
const ownerOf = (id: string) => Effect.catchTag(Resume.sessionOwner(id), "StoreError", storeFailure(id))

const encodeTestResult = Schema.encodeSync(TestResult)

/**
 * Tests as one JSON array, written as they are read from the store (a page at a time,
 * sent 16 tests per write as the JSON report is): grove serve holds a page of a
 * session's tests, not all of them. A store failure after
 * the first bytes ends the response early (its JSON unterminated) and is logged.
 */
const testsStreamed = (tests: Stream.Stream<TestResult, StoreError>) =>
  HttpServerResponse.stream(
    Stream.make("[").pipe(
      Stream.concat(inPieces(Stream.map(
        Stream.zipWithIndex(tests),
        ([test, i]) => (i === 0 ? "" : ",") + JSON.stringify(encodeTestResult(test))
      ))),
      Stream.concat(Stream.make("]")),
      Stream.tapErrorCause((cause) => Effect.logWarning(`grove serve: reading a session's tests: ${Cause.pretty(cause)}`)),
      Stream.encodeText
    ),
    { contentType: "application/json" }
  )

const requireSession = (id: string) =>
  Effect.flatMap(Store, (store) => store.requireSession(id)).pipe(Effect.catchTag("StoreError", storeFailure(id)))

/** the folded state of a session the store holds (its stored events), not its tests */
const requireState = (id: string) =>
  Effect.gen(function*() {
    const summary = yield* requireSession(id)
    const state = yield* Effect.flatMap(Store, (store) => stateOf(store, id)).pipe(Effect.catchTag("StoreError", storeFailure(id)))
    if (Option.isNone(state)) return yield* Effect.fail(sessionNotFound(id))
    return { summary, state: state.value }
  })

/** one test of a session, read alone */
const requireTest = (id: string, testId: string) =>
  Effect.gen(function*() {
    const summary = yield* requireSession(id)
    const found = yield* Effect.flatMap(Store, (store) => store.tests(id, { after: 0, limit: 1, ids: [testId] })).pipe(
      Effect.catchTag("StoreError", storeFailure(id))
    )
    if (found[0] === undefined) {
      return yield* Effect.fail(
        new Api.NotFound({ what: "test", subject: testId, message: `session ${id} has no test ${JSON.stringify(testId)}` })
      )
    }
    return { summary, test: found[0].result }
  })

/**
 * The log folder of a session: `<git-common-dir>/grove/sessions/<id>/logs` of the
 * repository it ran in (the served one, or the one its row names).
 */
const logFolder = (options: Options, session: { readonly id: string; readonly repoRoot: string }) =>
  Effect.map(Session.storedDataDir(session, options.repo), Option.map((dir) => NodePath.join(dir, "logs")))

/** what a `Range` header asks of a file of `size` bytes (one range; RFC 9110 §14.1.2) */
type RangeAsk =
  | { readonly _tag: "Whole" }
  | { readonly _tag: "Slice"; readonly start: number; readonly end: number }
  | { readonly _tag: "Unsatisfiable" }
  | { readonly _tag: "Malformed"; readonly reason: string }

/**
 * Reads a `Range` header against a file of `size` bytes: `bytes=a-b` (b clamped to the
 * end), `bytes=a-`, `bytes=-n` (the last n bytes). One range only.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseRange = (header: string | undefined, size: number): RangeAsk => {
  if (header === undefined || header.trim() === "") return { _tag: "Whole" }
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (match === null) {
    return {
      _tag: "Malformed",
      reason: header.includes(",")
        ? "one range only, e.g. bytes=0-65535"
        : "expected bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX, e.g. bytes=0-65535"
    }
  }
  const [, first, last] = match
  if (first === "" && last === "") return { _tag: "Malformed", reason: "expected bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX" }
  if (first === "") {
    const suffix = Number(last)
    if (suffix === 0 || size === 0) return { _tag: "Unsatisfiable" }
    return { _tag: "Slice", start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(first)
  const end = last === "" ? undefined : Number(last)
  if (!Number.isSafeInteger(start) || (end !== undefined && !Number.isSafeInteger(end))) {
    return { _tag: "Malformed", reason: "offsets too large" }
  }
  if (end !== undefined && end < start) return { _tag: "Malformed", reason: `the last byte (${end}) is before the first (${start})` }
  if (start >= size) return { _tag: "Unsatisfiable" }
  return { _tag: "Slice", start, end: Math.min(end ?? size - 1, size - 1) }
}

const logContentType = "text/plain; charset=utf-8"

/** `GET …/attempts/:n/log` */
const attemptLog = (
  options: Options,
  params: { readonly id: string; readonly testId: string; readonly n: number },
  rangeHeader: string | undefined
) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const { summary, test } = yield* requireTest(params.id, params.testId)
    const attempt = test.attempts.find((a) => a.n === params.n)
    const subject = `${params.id} ${params.testId} attempt ${params.n}`
    if (attempt === undefined) {
      return yield* Effect.fail(
        new Api.NotFound({
          what: "attempt",
          subject,
          message: `test ${JSON.stringify(params.testId)} of session ${params.id} has no attempt ${params.n} ` +
            `(it made ${test.attempts.length})`
        })
      )
    }
    const noLog = (why: string) => new Api.NotFound({ what: "log", subject, message: `attempt ${params.n} of ${params.testId} has no log: ${why}` })
    if (attempt.logPath === "") return yield* Effect.fail(noLog("grove recorded none (it could not start the attempt)"))
    const folder = yield* logFolder(options, summary)
    if (Option.isNone(folder)) {
      return yield* Effect.fail(noLog(`the repository of session ${params.id} (${summary.repoRoot}) is not reachable from here`))
    }
    const outside = new Api.Forbidden({
      reason: "LogOutsideSession",
      message: `the log recorded for attempt ${params.n} of ${params.testId} is not a file of session ${params.id}'s log folder ` +
        `(${folder.value}): grove serve reads only those`
    })
    // the stored path, and where it really leads (symlinks followed), must both be inside the folder
    const lexical = path.resolve(attempt.logPath)
    if (!path.isAbsolute(attempt.logPath) || !isInside(path, folder.value, lexical)) return yield* Effect.fail(outside)
    const realFolder = yield* fs.realPath(folder.value).pipe(Effect.option)
    const realFile = yield* fs.realPath(lexical).pipe(Effect.option)
    if (Option.isNone(realFolder) || Option.isNone(realFile)) return yield* Effect.fail(noLog("the file is gone"))
    if (!isInside(path, realFolder.value, realFile.value)) return yield* Effect.fail(outside)
    const info = yield* fs.stat(realFile.value).pipe(Effect.option)
    if (Option.isNone(info) || info.value.type !== "File") return yield* Effect.fail(noLog("it is not a file"))
    const size = Number(info.value.size)
    const ask = parseRange(rangeHeader, size)
    switch (ask._tag) {
      case "Malformed":
        return yield* Effect.fail(
          new Api.BadRequest({
            message: `Range ${JSON.stringify(rangeHeader)}: ${ask.reason}`,
            issues: [new Api.RequestIssue({ where: "Range", message: ask.reason })]
          })
        )
      case "Unsatisfiable":
        return errorResponse(
          new Api.RangeNotSatisfiable({
            range: rangeHeader ?? "",
            size,
            message: `the log has ${size} bytes: ${rangeHeader} asks for none of them`
          }),
          416,
          { "content-range": `bytes */${size}` }
        )
      case "Whole":
        return sliceResponse(fs, realFile.value, 0, size, 200, { "accept-ranges": "bytes" })
      case "Slice":
        return sliceResponse(fs, realFile.value, ask.start, ask.end - ask.start + 1, 206, {
          "accept-ranges": "bytes",
          "content-range": `bytes ${ask.start}-${ask.end}/${size}`
        })
    }
  })

const isInside = (path: Path.Path, folder: string, file: string) => {
  const relative = path.relative(folder, file)
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative)
}

/**
 * `length` bytes from `offset`, streamed. Not `HttpServerResponse.file` with
 * `bytesToRead`: platform-node hands `start + bytesToRead` to `createReadStream` as its
 * inclusive `end` and so writes one byte more than its Content-Length (seen with
 * 0.108.2: Node's client then fails with "Parse Error: Expected HTTP/").
 */
const sliceResponse = (
  fs: FileSystem.FileSystem,
  file: string,
  offset: number,
  length: number,
  status: number,
  headers: Record<string, string>
) =>
  HttpServerResponse.stream(
    length === 0 ? fs.stream(file, { bytesToRead: 0 }) : fs.stream(file, { offset, bytesToRead: length }),
    { status, headers, contentType: logContentType, contentLength: length }
  )

// -----------------------------------------------------------------------------
// groups
// -----------------------------------------------------------------------------

const everySession = 1_000_000_000

const sessionsGroup = (options: Options) =>
  HttpApiBuilder.group(Api.GroveApi, "sessions", (handlers) =>
    handlers
      .handle("list", ({ urlParams }) =>
        Effect.gen(function*() {
          const store = yield* Store
          const limit = urlParams.limit ?? 20
          const list = yield* store.sessions(urlParams.status === undefined ? limit : everySession).pipe(
            Effect.mapError(serverError)
          )
          return (urlParams.status === undefined ? list : list.filter((s) => s.status === urlParams.status)).slice(0, limit)
        }))
      .handle("show", ({ path }) =>
        Effect.gen(function*() {
          const { state, summary } = yield* requireState(path.id)
          const report = ReportModule.fromState(state, [])
          const alive = summary.status === "RUNNING" && (yield* ownerOf(summary.id)).alive
          const origin = state.rerunOf
          return new Api.SessionDetail({
            ...(origin === undefined ? {} : { rerunOf: origin }),
            session: report.session,
            totals: report.totals,
            repoRoot: summary.repoRoot,
            owner: new Api.SessionOwner({ pid: summary.pid, alive }),
            resumable: summary.status === "RUNNING" && !alive
          })
        }))
      .handle("delete", ({ path }) =>
        Effect.gen(function*() {
          const store = yield* Store
          const fs = yield* FileSystem.FileSystem
          const summary = yield* requireSession(path.id)
          // its owner: its pid on this host, its heartbeat on another (Resume.sessionOwner)
          const owner = yield* ownerOf(summary.id)
          if (owner.alive) {
            return yield* Effect.fail(
              new Api.SessionRunning({
                sessionId: summary.id,
                pid: summary.pid,
                host: owner.host ?? Os.hostname(),
                message: owner.local && summary.pid === process.pid
                  ? `session ${summary.id} is running in this grove serve: cancel it first (POST /api/v1/sessions/${summary.id}/cancel), or wait for it to end`
                  : `session ${summary.id} is running in ${Resume.describeOwner(owner)}: ` +
                    `${Resume.howToStop(owner)} first, or wait for it to end${Resume.whenGone(owner)}`
              })
            )
          }
          const dataDir = yield* Session.storedDataDir(summary, options.repo)
          yield* store.deleteSession(summary.id).pipe(Effect.catchTag("StoreError", storeFailure(summary.id)))
          if (Option.isSome(dataDir)) {
            const sessionDir = dataDir.value
            yield* fs.remove(sessionDir, { recursive: true }).pipe(
              Effect.catchAll((e) =>
                e._tag === "SystemError" && e.reason === "NotFound"
                  ? Effect.void
                  : Effect.logWarning(`grove serve: could not remove ${sessionDir}: ${e.message}`)
              )
            )
          }
        }))
      .handle("tests", ({ path, urlParams }) =>
        Effect.gen(function*() {
          yield* requireSession(path.id)
          const store = yield* Store
          const statuses = urlParams.status === undefined ? undefined : [urlParams.status]
          const after = urlParams.after ?? 0
          if (urlParams.limit === undefined) return testsStreamed(testStream(store, path.id, statuses, after))
          const rows = yield* store.tests(path.id, { after, limit: urlParams.limit, ...(statuses === undefined ? {} : { statuses }) })
            .pipe(Effect.catchTag("StoreError", storeFailure(path.id)))
          const last = rows[rows.length - 1]
          const next = rows.length < urlParams.limit || last === undefined ? undefined : new URLSearchParams({
            ...(urlParams.status === undefined ? {} : { status: urlParams.status }),
            after: String(last.seq),
            limit: String(urlParams.limit)
          })
          return HttpServerResponse.unsafeJson(rows.map((r) => encodeTestResult(r.result)), {
            headers: next === undefined ? {} : { link: `</api/v1/sessions/${encodeURIComponent(path.id)}/tests?${next}>; rel="next"` }
          })
        }))
      .handle("test", ({ path }) => Effect.map(requireTest(path.id, path.testId), ({ test }) => test))
      .handle("log", ({ headers, path }) => attemptLog(options, path, headers.range))
      .handle("events", ({ headers, path, urlParams }) => LiveHttp.events(path.id, headers["last-event-id"], urlParams.after))
      .handle("ws", ({ path, urlParams }) => LiveHttp.ws(path.id, urlParams.after))
  )

const worktreesGroup = (options: Options) => {
  const requireRepo = Option.match(options.repo, {
    onNone: () =>
      Effect.fail(
        new Api.NotFound({
          what: "repository",
          subject: "",
          message: "grove serve was started without a repository (--db only): it has no worktrees to list; start it with --repo DIR"
        })
      ),
    onSome: Effect.succeed
  })
  return HttpApiBuilder.group(Api.GroveApi, "worktrees", (handlers) =>
    handlers
      .handle("list", () =>
        Effect.gen(function*() {
          const store = yield* Store
          const repo = yield* requireRepo
          const listed = yield* Resume.worktrees(repo).pipe(Effect.mapError(serverError))
          const statuses = new Map<string, string>()
          for (const id of new Set(listed.map((w) => w.session))) {
            const status = yield* store.requireSession(id).pipe(
              Effect.map((s) => s.status),
              Effect.catchTag("StoreError", (e) => e.reason === "UnknownSession" ? Effect.succeed("unknown") : Effect.fail(serverError(e)))
            )
            statuses.set(id, status)
          }
          return listed.map((w) => new Api.WorktreeEntry({ ...w, sessionStatus: statuses.get(w.session) ?? "unknown" }))
        }))
      .handle("prune", () =>
        Effect.gen(function*() {
          const repo = yield* requireRepo
          const reclaimed = yield* Resume.reclaim(repo, { kept: true }).pipe(Effect.mapError(serverError))
          return new Api.PruneResult({
            removed: reclaimed.removed.map((w) => w.path),
            failed: reclaimed.failed.map((f) => ({ path: f.worktree.path, error: f.error.message }))
          })
        }))
  )
}

const testsGroup = HttpApiBuilder.group(Api.GroveApi, "tests", (handlers) =>
  handlers.handle("history", ({ path }) =>
    Effect.gen(function*() {
      const store = yield* Store
      const history = yield* store.history([path.testId as TestId]).pipe(Effect.mapError(serverError))
      return new Api.TestHistoryResponse({
        testId: path.testId,
        history: history.get(path.testId) ?? { expectedMs: undefined, flakiness: undefined }
      })
    }))
)

const healthGroup = (options: Options) =>
  HttpApiBuilder.group(Api.GroveApi, "health", (handlers) =>
    handlers.handle("health", () => Effect.succeed(new Api.Health({ status: "ok", version: options.version }))))

/** the API's own check of the token (the gate checked it first), with the bound port */
const authorization = (options: Options) =>
  Layer.effect(
    Api.Authorization,
    Effect.map(HttpServer.HttpServer, (server) => {
      const port = server.address._tag === "TcpAddress" ? server.address.port : options.port
      return Api.Authorization.of({
        bearer: () =>
          Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
            authorized(request, options.token, port) ? Effect.void : Effect.fail(unauthorized(request)))
      })
    })
  )

/** the issues of a parse error, one per field (the first message of each) */
const issuesOf = (e: HttpApiError.HttpApiDecodeError): ReadonlyArray<Api.RequestIssue> => {
  const byField = new Map<string, string>()
  for (const issue of e.issues) {
    const where = issue.path.length === 0 ? "request" : issue.path.map(String).join(".")
    if (!byField.has(where)) byField.set(where, issue.message)
  }
  return [...byField].map(([where, message]) => new Api.RequestIssue({ where, message }))
}

/**
 * Errors the router and the decoder raise, as grove's JSON errors: a parse error of a
 * path parameter, query or header becomes `BadRequest` with an issue per field
 * (`limit`, `status`, `n` …); an unknown route `NotFound` (the router's own answers
 * with an empty body).
 */
const jsonErrors = HttpApiBuilder.middleware(Api.GroveApi, (app) =>
  app.pipe(
    Effect.catchAllCause((cause) =>
      Option.match(Cause.failureOption(cause as Cause.Cause<unknown>), {
        // a body that is not JSON (the POST endpoints): HttpApiBuilder dies of it, which answers 400 with no body
        onNone: (): Effect.Effect<never, Api.BadRequest> =>
          Option.match(Cause.dieOption(cause as Cause.Cause<unknown>), {
            onNone: () => Effect.failCause(cause),
            onSome: (defect) => {
              if (!(HttpServerError.isServerError(defect) && defect._tag === "RequestError" && defect.reason === "Decode")) {
                return Effect.failCause(cause)
              }
              const message = "the body is not valid JSON: send a JSON object with Content-Type: application/json"
              return Effect.fail(new Api.BadRequest({ message, issues: [new Api.RequestIssue({ where: "body", message })] }))
            }
          }),
        onSome: (e): Effect.Effect<never, Api.BadRequest | Api.NotFound> => {
          if (e instanceof HttpApiError.HttpApiDecodeError) {
            const issues = issuesOf(e)
            return Effect.fail(
              new Api.BadRequest({ message: issues.map((i) => `${i.where}: ${i.message}`).join("; ") || e.message, issues })
            )
          }
          if (HttpServerError.isServerError(e) && e._tag === "RouteNotFound") {
            const { method, url } = e.request
            const path = pathOf(url)
            return Effect.fail(
              new Api.NotFound({
                what: "route",
                subject: `${method} ${path}`,
                message: `grove serve has no ${method} ${path}: the API is under /api/v1 (see /api/v1/openapi.json)`
              })
            )
          }
          return Effect.failCause(cause)
        }
      })
    )
  ))

/**
 * The API's handlers with their middleware, before any server.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApi = (options: Options, live: Layer.Layer<Live.Live, never, Store> = Live.layer(options.live)) =>
  HttpApiBuilder.api(Api.GroveApi).pipe(
    Layer.provide([healthGroup(options), sessionsGroup(options), worktreesGroup(options), testsGroup, Actions.group(options)]),
    Layer.provide(authorization(options)),
    Layer.provide(live)
  )

/**
 * swagger-ui at `/docs`: its module inlines 2 MB of JavaScript, loaded only when a
 * server is built (not when grove, or this module, is imported)
 */
const explorer = Layer.unwrapEffect(
  Effect.map(Effect.promise(() => import("@effect/platform/HttpApiSwagger")), (swagger) => swagger.layer({ path: "/docs" }))
)

/** closes idle connections at once and cuts the rest after `drain`, before Node's close waits for them */
const drainOnClose = (server: Http.Server, drain: Duration.DurationInput) =>
  Layer.scopedDiscard(Effect.addFinalizer(() =>
    Effect.sync(() => {
      server.closeIdleConnections()
      setTimeout(() => server.closeAllConnections(), Duration.toMillis(drain)).unref()
    })
  ))

/**
 * The whole server: the API, its OpenAPI document at `/api/v1/openapi.json`, the
 * explorer at `/docs` (swagger-ui, inlined: no network), `/login`, and the gate in
 * front; listening on `options.host:options.port` until the scope closes. Provides
 * the `HttpServer` (its `address` says the port when `options.port` is 0).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options) => {
  const node = Http.createServer()
  const listen = NodeHttpServer.layer(() => node, { host: options.host, port: options.port })
  // one Live for the handlers and for `endLive` (a layer is built once per build)
  const live = Live.layer(options.live)
  // built after the server, so released before it: live streams end first, then requests drain
  const endLive = Layer.scopedDiscard(Effect.flatMap(Live.Live, (l) => Effect.addFinalizer(() => l.close))).pipe(
    Layer.provide(live)
  )
  return endLive.pipe(
    Layer.provideMerge(
      HttpApiBuilder.serve(gate(options)).pipe(
        Layer.provide(explorer),
        Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/v1/openapi.json" })),
        Layer.provide(jsonErrors),
        Layer.provide(layerApi(options, live)),
        Layer.provideMerge(drainOnClose(node, options.drain ?? Duration.seconds(1))),
        Layer.provideMerge(listen)
      )
    )
  )
}

/**
 * The URL a browser logs in with.
 *
 * @since 0.1.0
 * @category utils
 */
export const loginUrl = (address: HttpServer.Address, token: Redacted.Redacted<string>): string =>
  `${baseUrl(address)}/login?token=${encodeURIComponent(Redacted.value(token))}`

/**
 * `http://host:port` of a bound address (a wildcard address as 127.0.0.1).
 *
 * @since 0.1.0
 * @category utils
 */
export const baseUrl = (address: HttpServer.Address): string => {
  if (address._tag === "UnixAddress") return `http+unix://${encodeURIComponent(address.path)}`
  const host = address.hostname === "0.0.0.0" || address.hostname === "::" ? "127.0.0.1" : address.hostname
  return `http://${hostWithPort(host, address.port)}`
}
