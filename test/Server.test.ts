/**
 * `grove serve` end to end (SPEC §9): the real binary serving a real SQLite store
 * that real `grove run`s wrote (a passing, a failing and a flaky test; a second
 * session with a test id holding a `/`), over real HTTP on 127.0.0.1.
 *
 * What is checked: health without a token; 401 (JSON) without a token, with a wrong
 * one, with another scheme; the bearer token; `/login` and its cookie; 421 for a
 * foreign `Host`; 403 for a cross-origin DELETE/POST; no CORS header on any
 * response; sessions (list, filters, show, delete, 409 while its grove lives, 404
 * after), tests, one test, an attempt's log by byte range (206 = the file's slice,
 * 416, 200) and the refusal of a log path outside the session's log folder (another
 * session's, `..`, a symlink); 400 naming the field; worktrees (list, prune);
 * history; the OpenAPI document; `/docs` (same-origin only, and in Chromium: no
 * request off the server); SIGTERM/SIGINT with open connections: exit within 3 s
 * with 143/130.
 *
 * Run `npm run build` first (`npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as NodePath from "node:path"
import * as Browser from "./support/browser.js"
import * as Cli from "./support/cli.js"
import { type EmptyRepo, makeEmptyRepo } from "./support/repo.js"

// -----------------------------------------------------------------------------
// HTTP, as a browser or a script would send it
// -----------------------------------------------------------------------------

interface Reply {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
  readonly text: string
}

const json = (reply: Reply): any => {
  assert.match(String(reply.headers["content-type"]), /application\/json/, `not JSON (${reply.status}): ${reply.text}`)
  return JSON.parse(reply.text)
}

/** one request on its own connection; every reply is checked for CORS headers (there must be none) */
const request = (
  port: number,
  path: string,
  options: { readonly method?: string; readonly headers?: Record<string, string> } = {}
): Effect.Effect<Reply, Error> =>
  Effect.async<Reply, Error>((resume) => {
    const req = Http.request(
      { host: "127.0.0.1", port, path, method: options.method ?? "GET", headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => {
          const body = Buffer.concat(chunks)
          resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString("utf8") }))
        })
        res.on("error", (e) => resume(Effect.fail(e)))
      }
    )
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end()
  }).pipe(
    Effect.tap((reply) => {
      const cors = Object.keys(reply.headers).filter((h) => h.startsWith("access-control-"))
      assert.deepStrictEqual(cors, [], `${options.method ?? "GET"} ${path} answered with CORS headers`)
    })
  )

const show = (reply: Reply) => `${reply.status} ${JSON.stringify(reply.headers)}\n${reply.text.slice(0, 2000)}`

// -----------------------------------------------------------------------------
// the fixture: a repository, two stored sessions, a running `grove serve`
// -----------------------------------------------------------------------------

type Served = Cli.Served

/** starts `grove serve --port 0 …` and reads its port (and token) from its first line */
const startServe = (repo: EmptyRepo, args: ReadonlyArray<string> = [], env: Record<string, string> = {}) =>
  Cli.startServe(repo.root, args, env)

class Fixture extends Context.Tag("test/Server/Fixture")<Fixture, {
  readonly repo: EmptyRepo
  readonly dbFile: string
  /** good, bad (fails twice), flaky (passes on attempt 2); its failed worktree kept */
  readonly first: string
  /** one test, `dir/again` */
  readonly second: string
  readonly serve: Served
}>() {}

const grove = (repo: EmptyRepo, ...args: Array<string>) => Cli.run(args, { cwd: repo.root })

const sessionOf = (o: Cli.Outcome) => {
  const id = Cli.sessionId(o.stdout)
  assert.isDefined(id, `no session id:\n${o.stdout}\n${o.stderr}`)
  return id!
}

const FixtureLive = Layer.scoped(
  Fixture,
  Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-serve-")
    const first = sessionOf(
      yield* grove(
        repo,
        "run",
        "--workers",
        "2",
        "--retries",
        "1",
        "--keep-failed",
        "--each",
        "case {} in bad) echo bad; exit 3;; flaky) echo try $GROVE_ATTEMPT; [ \"$GROVE_ATTEMPT\" = 2 ];; *) seq 1 2000;; esac",
        "good",
        "bad",
        "flaky"
      )
    )
    const second = sessionOf(yield* grove(repo, "run", "--each", "echo again", "dir/again"))
    const serve = yield* startServe(repo)
    return { repo, dbFile: NodePath.join(repo.commonDir, "grove", "grove.db"), first, second, serve }
  })
).pipe(Layer.provide(NodeContext.layer))

/** runs SQL on the served store (to tamper with it as a corrupt or hostile store would be) */
const sql = (dbFile: string, statement: string, params: ReadonlyArray<unknown> = []) =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(SqliteClient.layer({ filename: dbFile }))
    const client = Context.get(context, SqlClient.SqlClient)
    return yield* client.unsafe<Record<string, unknown>>(statement, params as Array<unknown>)
  })).pipe(Effect.orDie)

// -----------------------------------------------------------------------------
// tests
// -----------------------------------------------------------------------------

layer(FixtureLive, { timeout: "120 seconds", excludeTestServices: true })("grove serve", (it) => {
  const withFixture = <A, E>(f: (fx: Context.Tag.Service<Fixture>) => Effect.Effect<A, E, Scope.Scope>) =>
    Effect.scoped(Effect.flatMap(Fixture, f))

  const bearer = (fx: Context.Tag.Service<Fixture>) => ({ authorization: `Bearer ${fx.serve.token}` })
  const get = (fx: Context.Tag.Service<Fixture>, path: string, headers: Record<string, string> = {}) =>
    request(fx.serve.port, path, { headers: { ...bearer(fx), ...headers } })

  it.effect("binds 127.0.0.1, prints a login URL with a fresh token, and answers health without a token", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        assert.match(fx.serve.token, /^[A-Za-z0-9_-]{40,}$/)
        const health = yield* request(fx.serve.port, "/api/v1/health")
        assert.strictEqual(health.status, 200, show(health))
        assert.deepStrictEqual(json(health), { status: "ok", version: "0.1.0" })
        assert.strictEqual(health.headers["x-content-type-options"], "nosniff")
        assert.strictEqual(health.headers["referrer-policy"], "no-referrer")
        // nothing answers on another address of the machine: the socket is 127.0.0.1's
        const address = yield* Effect.async<string, never>((resume) => {
          const socket = Net.connect({ host: "127.0.0.1", port: fx.serve.port }, () => {
            resume(Effect.succeed(socket.remoteAddress ?? ""))
            socket.destroy()
          })
          socket.on("error", () => resume(Effect.succeed("")))
        })
        assert.strictEqual(address, "127.0.0.1")
      })
    ))

  it.effect("refuses every other request without the token with 401 JSON: none, a wrong one, another scheme", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const attempts: Array<[string, Record<string, string>]> = [
          ["/api/v1/sessions", {}],
          ["/api/v1/sessions", { authorization: "Bearer wrong-token" }],
          ["/api/v1/sessions", { authorization: `Basic ${Buffer.from(`grove:${fx.serve.token}`).toString("base64")}` }],
          ["/api/v1/sessions", { authorization: fx.serve.token }],
          ["/api/v1/sessions", { authorization: `Bearer${fx.serve.token}` }],
          ["/api/v1/sessions", { authorization: "Bearer " }],
          ["/api/v1/sessions", { cookie: `grove_token_${fx.serve.port}=wrong` }],
          ["/api/v1/openapi.json", {}],
          ["/docs", {}],
          ["/", {}],
          ["/api/v1/no-such-route", {}]
        ]
        for (const [path, headers] of attempts) {
          const reply = yield* request(fx.serve.port, path, { headers })
          assert.strictEqual(reply.status, 401, `${path} ${JSON.stringify(headers)}: ${show(reply)}`)
          const body = json(reply)
          assert.strictEqual(body._tag, "Unauthorized")
          assert.isString(body.message)
          assert.notInclude(reply.text, fx.serve.token)
        }
        const basic = json(yield* request(fx.serve.port, "/api/v1/sessions", { headers: { authorization: "Basic eDp5" } }))
        assert.include(basic.message, "Bearer")
      })
    ))

  it.effect("takes the token as a bearer header (scheme case-insensitive)", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const ok = yield* get(fx, "/api/v1/sessions")
        assert.strictEqual(ok.status, 200, show(ok))
        const lower = yield* request(fx.serve.port, "/api/v1/sessions", { headers: { authorization: `bearer ${fx.serve.token}` } })
        assert.strictEqual(lower.status, 200, show(lower))
      })
    ))

  it.effect("/login sets an HttpOnly, SameSite=Strict cookie and redirects to /; the cookie works; a wrong token gets 401", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const wrong = yield* request(fx.serve.port, "/login?token=nope")
        assert.strictEqual(wrong.status, 401, show(wrong))
        assert.strictEqual(json(wrong)._tag, "Unauthorized")
        assert.isUndefined(wrong.headers["set-cookie"])

        const login = yield* request(fx.serve.port, `/login?token=${encodeURIComponent(fx.serve.token)}`)
        assert.strictEqual(login.status, 303, show(login))
        assert.strictEqual(login.headers.location, "/")
        assert.strictEqual(login.headers["referrer-policy"], "no-referrer")
        const setCookie = login.headers["set-cookie"] ?? []
        assert.strictEqual(setCookie.length, 1, show(login))
        const cookie = setCookie[0]!
        assert.match(cookie, new RegExp(`^grove_token_${fx.serve.port}=`))
        assert.match(cookie, /;\s*HttpOnly/i)
        assert.match(cookie, /;\s*SameSite=Strict/i)
        assert.match(cookie, /;\s*Path=\//i)
        const pair = cookie.split(";")[0]!

        const withCookie = yield* request(fx.serve.port, "/api/v1/sessions", { headers: { cookie: pair } })
        assert.strictEqual(withCookie.status, 200, show(withCookie))
        const home = yield* request(fx.serve.port, "/", { headers: { cookie: pair } })
        assert.strictEqual(home.status, 200, show(home))
        assert.match(String(home.headers["content-type"]), /text\/html/)
        // the cookie of another port's grove serve is not ours
        const otherPort = yield* request(fx.serve.port, "/api/v1/sessions", {
          headers: { cookie: pair.replace(`grove_token_${fx.serve.port}`, "grove_token_1") }
        })
        assert.strictEqual(otherPort.status, 401)
      })
    ))

  it.effect("answers 421 to a Host it does not serve (DNS rebinding), before the token is looked at", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        for (const host of ["evil.example", `evil.example:${fx.serve.port}`, `127.0.0.1:${fx.serve.port + 1}`, "127.0.0.1"]) {
          for (const path of ["/api/v1/health", "/api/v1/sessions"]) {
            const reply = yield* get(fx, path, { host })
            assert.strictEqual(reply.status, 421, `${host} ${path}: ${show(reply)}`)
            const body = json(reply)
            assert.strictEqual(body._tag, "MisdirectedRequest")
            assert.isString(body.message)
          }
        }
        for (const host of [`localhost:${fx.serve.port}`, `[::1]:${fx.serve.port}`, `LOCALHOST:${fx.serve.port}`]) {
          const reply = yield* get(fx, "/api/v1/sessions", { host })
          assert.strictEqual(reply.status, 200, `${host}: ${show(reply)}`)
        }
      })
    ))

  it.effect("refuses a DELETE or POST from another Origin with 403, even with the token; answers no preflight", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        for (const origin of ["http://evil.example", `http://localhost:${fx.serve.port + 1}`, "null"]) {
          const del = yield* request(fx.serve.port, `/api/v1/sessions/${fx.second}`, {
            method: "DELETE",
            headers: { ...bearer(fx), origin }
          })
          assert.strictEqual(del.status, 403, `${origin}: ${show(del)}`)
          const body = json(del)
          assert.strictEqual(body._tag, "Forbidden")
          assert.strictEqual(body.reason, "CrossOrigin")
          const prune = yield* request(fx.serve.port, "/api/v1/worktrees/prune", { method: "POST", headers: { ...bearer(fx), origin } })
          assert.strictEqual(prune.status, 403, show(prune))
        }
        // still there
        assert.strictEqual((yield* get(fx, `/api/v1/sessions/${fx.second}`)).status, 200)
        // a preflight gets no CORS header (request() asserts it on every reply), so no browser goes further
        const preflight = yield* request(fx.serve.port, `/api/v1/sessions/${fx.second}`, {
          method: "OPTIONS",
          headers: { origin: "http://evil.example", "access-control-request-method": "DELETE" }
        })
        assert.notStrictEqual(preflight.status, 204)
        assert.notStrictEqual(preflight.status, 200)
      })
    ))

  it.effect("lists sessions newest first, with status and limit filters; a bad value is 400 naming the field", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const list = json(yield* get(fx, "/api/v1/sessions"))
        assert.deepStrictEqual(list.map((s: any) => [s.id, s.status, s.total, s.passed, s.notPassed]), [
          [fx.second, "COMPLETE", 1, 1, 0],
          [fx.first, "PARTIAL_SUCCESS", 3, 2, 1]
        ])
        assert.strictEqual(list[1].repoRoot, fx.repo.root)
        assert.isNumber(list[1].startedAt)
        assert.isNumber(list[1].completedAt)
        assert.isNumber(list[1].pid)
        const partial = json(yield* get(fx, "/api/v1/sessions?status=PARTIAL_SUCCESS"))
        assert.deepStrictEqual(partial.map((s: any) => s.id), [fx.first])
        const one = json(yield* get(fx, "/api/v1/sessions?limit=1"))
        assert.deepStrictEqual(one.map((s: any) => s.id), [fx.second])

        for (const [query, field] of [["limit=abc", "limit"], ["limit=0", "limit"], ["limit=2.5", "limit"], ["status=DONE", "status"]]) {
          const bad = yield* get(fx, `/api/v1/sessions?${query}`)
          assert.strictEqual(bad.status, 400, `${query}: ${show(bad)}`)
          const body = json(bad)
          assert.strictEqual(body._tag, "BadRequest")
          assert.deepStrictEqual(body.issues.map((i: any) => i.where), [field])
          assert.include(body.message, field)
        }
        const badStatus = json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests?status=GREEN`))
        assert.strictEqual(badStatus._tag, "BadRequest")
        assert.include(badStatus.message, "FLAKY")
      })
    ))

  it.effect("shows a session with its totals and no tests list; 404 JSON for an unknown session and test", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const detail = json(yield* get(fx, `/api/v1/sessions/${fx.first}`))
        assert.strictEqual(detail.session.id, fx.first)
        assert.strictEqual(detail.session.status, "PARTIAL_SUCCESS")
        assert.strictEqual(detail.session.workers, 2)
        assert.match(detail.session.startedAt, /^\d{4}-\d\d-\d\dT/)
        assert.deepInclude(detail.totals, { total: 3, passed: 1, flaky: 1, failed: 1, timedOut: 0, error: 0, cancelled: 0 })
        assert.isUndefined(detail.tests)
        assert.strictEqual(detail.repoRoot, fx.repo.root)
        assert.deepStrictEqual(Object.keys(detail.owner).sort(), ["alive", "pid"])
        assert.isFalse(detail.owner.alive)
        assert.isFalse(detail.resumable)

        for (const path of ["/api/v1/sessions/20990101-0000-nope", "/api/v1/sessions/20990101-0000-nope/tests"]) {
          const missing = yield* get(fx, path)
          assert.strictEqual(missing.status, 404, show(missing))
          assert.deepInclude(json(missing), { _tag: "NotFound", what: "session", subject: "20990101-0000-nope" })
        }
        const noTest = yield* get(fx, `/api/v1/sessions/${fx.first}/tests/nope`)
        assert.strictEqual(noTest.status, 404, show(noTest))
        assert.deepInclude(json(noTest), { _tag: "NotFound", what: "test", subject: "nope" })
        assert.isString(json(noTest).message)
        const noRoute = yield* get(fx, "/api/v1/nothing-here")
        assert.strictEqual(noRoute.status, 404)
        assert.deepInclude(json(noRoute), { _tag: "NotFound", what: "route" })
      })
    ))

  it.effect("lists a session's tests (status filter) and shows one test with its attempts; ids with / URL-encoded", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const tests = json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests`))
        assert.deepStrictEqual(tests.map((t: any) => [t.id, t.status, t.attempts.length]).sort(), [
          ["bad", "FAILED", 2],
          ["flaky", "FLAKY", 2],
          ["good", "PASSED", 1]
        ])
        const failed = json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests?status=FAILED`))
        assert.deepStrictEqual(failed.map((t: any) => t.id), ["bad"])
        assert.deepStrictEqual(json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests?status=TIMED_OUT`)), [])

        // pages: each full one names the next in `Link`; together they are the whole list, in its order
        const whole = tests.map((t: any) => t.id)
        const paged: Array<string> = []
        let next: string | undefined = `/api/v1/sessions/${fx.first}/tests?limit=2`
        const links: Array<string | undefined> = []
        while (next !== undefined) {
          const page = yield* get(fx, next)
          assert.strictEqual(page.status, 200, show(page))
          paged.push(...json(page).map((t: any) => t.id))
          const link = page.headers["link"] as string | undefined
          links.push(link)
          next = link === undefined ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)![1]
        }
        assert.deepStrictEqual(paged, whole)
        assert.strictEqual(links.length, 2, `a full page of 2, then the last of 1: ${links}`)
        assert.match(links[0]!, new RegExp(`^</api/v1/sessions/${fx.first}/tests\\?after=\\d+&limit=2>; rel="next"$`))
        assert.isUndefined(links[1])
        const after = /after=(\d+)/.exec(links[0]!)![1]
        // `after` without `limit`: the rest, streamed; with a status, the next page keeps it
        assert.deepStrictEqual(json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests?after=${after}`)).map((t: any) => t.id), whole.slice(2))
        const onlyFailed = yield* get(fx, `/api/v1/sessions/${fx.first}/tests?status=FAILED&limit=1`)
        assert.deepStrictEqual(json(onlyFailed).map((t: any) => t.id), ["bad"])
        assert.match(String(onlyFailed.headers["link"]), /\?status=FAILED&after=\d+&limit=1>/)
        for (const [query, field] of [["limit=0", "limit"], ["limit=10001", "limit"], ["after=-1", "after"], ["after=x", "after"]]) {
          const bad = yield* get(fx, `/api/v1/sessions/${fx.first}/tests?${query}`)
          assert.strictEqual(bad.status, 400, `${query}: ${show(bad)}`)
          assert.deepStrictEqual(json(bad).issues.map((i: any) => i.where), [field])
        }
        const flaky = json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests/flaky`))
        assert.deepStrictEqual(flaky.attempts.map((a: any) => [a.n, a.status]), [[1, "FAILED"], [2, "PASSED"]])
        assert.strictEqual(flaky.attempts[0].tail, "try 1\n")
        assert.strictEqual(flaky.flakiness, 1)
        const slashed = yield* get(fx, `/api/v1/sessions/${fx.second}/tests/${encodeURIComponent("dir/again")}`)
        assert.strictEqual(slashed.status, 200, show(slashed))
        assert.strictEqual(json(slashed).id, "dir/again")
      })
    ))

  it.effect("serves an attempt's log: 200 whole, 206 a byte range equal to the file's slice, 416 past the end", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const good = json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests/good`))
        const logPath: string = good.attempts[0].logPath
        assert.include(logPath, NodePath.join(fx.repo.commonDir, "grove", "sessions", fx.first, "logs"))
        const file = Fs.readFileSync(logPath)
        assert.isAbove(file.length, 5000)
        const url = `/api/v1/sessions/${fx.first}/tests/good/attempts/1/log`

        const whole = yield* get(fx, url)
        assert.strictEqual(whole.status, 200, show(whole))
        assert.isTrue(whole.body.equals(file))
        assert.strictEqual(whole.headers["accept-ranges"], "bytes")
        assert.strictEqual(whole.headers["content-length"], String(file.length))
        assert.match(String(whole.headers["content-type"]), /^text\/plain/)

        const ranges: Array<[string, number, number]> = [
          ["bytes=0-9", 0, 9],
          ["bytes=100-1099", 100, 1099],
          ["bytes=4000-", 4000, file.length - 1],
          ["bytes=-7", file.length - 7, file.length - 1],
          [`bytes=10-${file.length + 500}`, 10, file.length - 1],
          [`bytes=${file.length - 1}-${file.length - 1}`, file.length - 1, file.length - 1]
        ]
        for (const [range, start, end] of ranges) {
          const part = yield* get(fx, url, { range })
          assert.strictEqual(part.status, 206, `${range}: ${show(part)}`)
          assert.strictEqual(part.headers["content-range"], `bytes ${start}-${end}/${file.length}`, range)
          assert.strictEqual(part.headers["content-length"], String(end - start + 1), range)
          assert.isTrue(part.body.equals(file.subarray(start, end + 1)), `${range}: body is not the file's slice`)
        }

        for (const range of [`bytes=${file.length}-`, `bytes=${file.length + 10}-${file.length + 20}`, "bytes=-0"]) {
          const past = yield* get(fx, url, { range })
          assert.strictEqual(past.status, 416, `${range}: ${show(past)}`)
          assert.strictEqual(past.headers["content-range"], `bytes */${file.length}`)
          assert.deepInclude(json(past), { _tag: "RangeNotSatisfiable", size: file.length })
        }
        for (const range of ["bytes=9-3", "lines=1-2", "bytes=0-1,5-6", "bytes=-"]) {
          const malformed = yield* get(fx, url, { range })
          assert.strictEqual(malformed.status, 400, `${range}: ${show(malformed)}`)
          assert.deepStrictEqual(json(malformed).issues.map((i: any) => i.where), ["Range"])
        }

        const noAttempt = yield* get(fx, `/api/v1/sessions/${fx.first}/tests/good/attempts/2/log`)
        assert.strictEqual(noAttempt.status, 404, show(noAttempt))
        assert.deepInclude(json(noAttempt), { _tag: "NotFound", what: "attempt" })
        const badN = yield* get(fx, `/api/v1/sessions/${fx.first}/tests/good/attempts/first/log`)
        assert.strictEqual(badN.status, 400, show(badN))
        assert.deepStrictEqual(json(badN).issues.map((i: any) => i.where), ["n"])
        const slashed = yield* get(fx, `/api/v1/sessions/${fx.second}/tests/${encodeURIComponent("dir/again")}/attempts/1/log`)
        assert.strictEqual(slashed.status, 200, show(slashed))
        assert.strictEqual(slashed.text, "again dir/again\n")
      })
    ))

  it.effect("reads only files of the session's own log folder: another session's, `..`, a symlink out are refused", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const good = json(yield* get(fx, `/api/v1/sessions/${fx.first}/tests/good`))
        const othersLog: string = good.attempts[0].logPath
        const mine = json(yield* get(fx, `/api/v1/sessions/${fx.second}/tests/${encodeURIComponent("dir/again")}`))
        const ownLog: string = mine.attempts[0].logPath
        const ownFolder = NodePath.dirname(ownLog)
        const outside = NodePath.join(fx.repo.dir, "secret.txt")
        Fs.writeFileSync(outside, "not a log\n")
        const link = NodePath.join(ownFolder, "escape.1.log")
        Fs.symlinkSync(outside, link)
        const url = `/api/v1/sessions/${fx.second}/tests/${encodeURIComponent("dir/again")}/attempts/1/log`
        const tampered = [
          othersLog,
          NodePath.join(ownFolder, "..", "..", fx.first, "logs", NodePath.basename(othersLog)),
          link,
          outside,
          "relative/escape.log"
        ]
        for (const path of tampered) {
          yield* sql(fx.dbFile, "UPDATE attempts SET log_path = ? WHERE session_id = ?", [path, fx.second])
          const reply = yield* get(fx, url)
          assert.strictEqual(reply.status, 403, `${path}: ${show(reply)}`)
          assert.deepInclude(json(reply), { _tag: "Forbidden", reason: "LogOutsideSession" })
          assert.notInclude(reply.text, "not a log")
          assert.notInclude(reply.text, "2000")
        }
        yield* sql(fx.dbFile, "UPDATE attempts SET log_path = ? WHERE session_id = ?", [ownLog, fx.second])
        Fs.unlinkSync(link)
        assert.strictEqual((yield* get(fx, url)).text, "again dir/again\n")
      })
    ))

  it.effect("lists the worktrees grove owns and prunes the stale and kept ones", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const listed = json(yield* get(fx, "/api/v1/worktrees"))
        // --keep-failed kept the worktree of `bad`'s last attempt
        assert.strictEqual(listed.length, 1, JSON.stringify(listed))
        assert.deepInclude(listed[0], { session: fx.first, kept: true, alive: false, sessionStatus: "PARTIAL_SUCCESS" })
        assert.isTrue(Fs.existsSync(listed[0].path))
        const pruned = yield* request(fx.serve.port, "/api/v1/worktrees/prune", {
          method: "POST",
          headers: { ...bearer(fx), origin: fx.serve.base }
        })
        assert.strictEqual(pruned.status, 200, show(pruned))
        assert.deepStrictEqual(json(pruned), { removed: [listed[0].path], failed: [] })
        assert.isFalse(Fs.existsSync(listed[0].path))
        assert.deepStrictEqual(json(yield* get(fx, "/api/v1/worktrees")), [])
      })
    ))

  it.effect("gives a test's history: expected duration, flakiness, recent statuses", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const flaky = json(yield* get(fx, "/api/v1/tests/flaky/history"))
        assert.strictEqual(flaky.testId, "flaky")
        assert.strictEqual(flaky.history.flakiness, 1)
        assert.deepStrictEqual(flaky.history.recent, ["FLAKY"])
        assert.isNumber(flaky.history.expectedMs)
        const bad = json(yield* get(fx, "/api/v1/tests/bad/history"))
        assert.deepStrictEqual(bad.history, { flakiness: 0, recent: ["FAILED"] })
        const unknown = json(yield* get(fx, "/api/v1/tests/never-ran/history"))
        assert.deepStrictEqual(unknown, { testId: "never-ran", history: {} })
      })
    ))

  it.effect("deletes a finished session (rows and logs), then 404; refuses one whose grove lives with 409 naming it", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const doomed = sessionOf(yield* grove(fx.repo, "run", "--each", "true", "doomed"))
        const logs = NodePath.join(fx.repo.commonDir, "grove", "sessions", doomed)
        assert.isTrue(Fs.existsSync(logs))
        // a session that a live grove runs: this test's own process stands in for it
        yield* sql(fx.dbFile, "UPDATE sessions SET status = 'RUNNING', pid = ? WHERE id = ?", [process.pid, doomed])
        const running = yield* request(fx.serve.port, `/api/v1/sessions/${doomed}`, { method: "DELETE", headers: bearer(fx) })
        assert.strictEqual(running.status, 409, show(running))
        const conflict = json(running)
        assert.deepInclude(conflict, { _tag: "SessionRunning", sessionId: doomed, pid: process.pid })
        assert.isString(conflict.host)
        assert.include(conflict.message, String(process.pid))
        const shown = json(yield* get(fx, `/api/v1/sessions/${doomed}`))
        assert.deepStrictEqual(shown.owner, { pid: process.pid, alive: true })
        yield* sql(fx.dbFile, "UPDATE sessions SET status = 'COMPLETE' WHERE id = ?", [doomed])

        const deleted = yield* request(fx.serve.port, `/api/v1/sessions/${doomed}`, {
          method: "DELETE",
          headers: { ...bearer(fx), origin: fx.serve.base }
        })
        assert.strictEqual(deleted.status, 204, show(deleted))
        assert.isFalse(Fs.existsSync(logs))
        const gone = yield* get(fx, `/api/v1/sessions/${doomed}`)
        assert.strictEqual(gone.status, 404, show(gone))
        assert.deepInclude(json(gone), { _tag: "NotFound", what: "session" })
        const again = yield* request(fx.serve.port, `/api/v1/sessions/${doomed}`, { method: "DELETE", headers: bearer(fx) })
        assert.strictEqual(again.status, 404, show(again))
        assert.deepStrictEqual(json(yield* get(fx, "/api/v1/sessions")).map((s: any) => s.id), [fx.second, fx.first])
      })
    ))

  it.effect("serves its OpenAPI document, listing every path with its errors", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const reply = yield* get(fx, "/api/v1/openapi.json")
        assert.strictEqual(reply.status, 200, show(reply))
        const spec = json(reply)
        assert.match(spec.openapi, /^3\./)
        assert.deepStrictEqual(Object.keys(spec.paths).sort(), [
          "/api/v1/health",
          "/api/v1/sessions",
          "/api/v1/sessions/{id}",
          "/api/v1/sessions/{id}/cancel",
          "/api/v1/sessions/{id}/events",
          "/api/v1/sessions/{id}/rerun",
          "/api/v1/sessions/{id}/tests",
          "/api/v1/sessions/{id}/tests/{testId}",
          "/api/v1/sessions/{id}/tests/{testId}/attempts/{n}/log",
          "/api/v1/sessions/{id}/ws",
          "/api/v1/tests/{testId}/history",
          "/api/v1/worktrees",
          "/api/v1/worktrees/prune"
        ])
        const log = spec.paths["/api/v1/sessions/{id}/tests/{testId}/attempts/{n}/log"].get
        for (const status of ["200", "206", "400", "401", "403", "404", "416"]) assert.property(log.responses, status)
        assert.property(spec.paths["/api/v1/sessions/{id}"].delete.responses, "409")
        const events = spec.paths["/api/v1/sessions/{id}/events"].get
        assert.property(events.responses["200"].content, "text/event-stream")
        assert.deepStrictEqual(events.parameters.map((p: any) => [p.in, p.name]).sort(), [["header", "last-event-id"], ["path", "id"], ["query", "after"]])
        assert.deepStrictEqual(log.security, [{ bearer: [] }])
        assert.deepStrictEqual(spec.paths["/api/v1/health"].get.security ?? [], [])
      })
    ))

  it.effect("serves the API explorer at /docs with every script and style from itself", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const reply = yield* get(fx, "/docs")
        assert.strictEqual(reply.status, 200, show(reply))
        assert.match(String(reply.headers["content-type"]), /text\/html/)
        const html = reply.text
        assert.include(html, "SwaggerUIBundle")
        const external = [...html.matchAll(/<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?([^"' >]+)/gi)]
          .map((m) => m[3]!)
          .filter((url) => /^(https?:)?\/\//i.test(url))
        assert.deepStrictEqual(external, [])
        const csp = String(reply.headers["content-security-policy"])
        assert.include(csp, "default-src 'none'")
        assert.include(csp, "connect-src 'self'")
        assert.notMatch(csp, /https?:/)
      })
    ))

  it.effect("/docs in Chromium: renders, and makes no request but to grove serve", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const browser = yield* Browser.launch("the /docs browser test").pipe(Effect.provide(NodeContext.layer))
        const page = yield* Effect.tryPromise(() => browser.newPage())
        const requests: Array<string> = []
        const errors: Array<string> = []
        page.on("request", (r) => void requests.push(r.url()))
        page.on("response", (r) => void (r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`)))
        page.on("console", (m) => void (m.type() === "error" && errors.push(m.text())))
        page.on("pageerror", (e) => void errors.push(e.message))
        yield* Effect.tryPromise(() => page.goto(`${fx.serve.base}/login?token=${encodeURIComponent(fx.serve.token)}`))
        yield* Effect.tryPromise(() => page.goto(`${fx.serve.base}/docs`))
        yield* Effect.tryPromise(() => page.waitForSelector(".opblock", { timeout: 20_000 }))
        const operations = yield* Effect.tryPromise(() => page.locator(".opblock").count())
        assert.isAtLeast(operations, 9)
        const off = requests.filter((url) => !url.startsWith(`${fx.serve.base}/`))
        assert.deepStrictEqual(off, [], `requests off the server: ${off.join(", ")}`)
        assert.deepStrictEqual(errors, [])
      })
    ), 60_000)
})

// -----------------------------------------------------------------------------
// the command: help, options, shutdown
// -----------------------------------------------------------------------------

const live = <A, E>(name: string, body: Effect.Effect<A, E, Scope.Scope | NodeContext.NodeContext>) =>
  it.scopedLive(name, () => body.pipe(Effect.provide(NodeContext.layer)), 60_000)

/** a socket that sends half a request and then nothing */
const hangingClient = (port: number) =>
  Effect.acquireRelease(
    Effect.async<Net.Socket, Error>((resume) => {
      const socket = Net.connect({ host: "127.0.0.1", port }, () => {
        socket.write(`GET /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`)
        resume(Effect.succeed(socket))
      })
      socket.on("error", () => undefined)
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** a keep-alive connection left open after a complete request */
const idleClient = (port: number, token: string) =>
  Effect.acquireRelease(
    Effect.async<Http.Agent, Error>((resume) => {
      const agent = new Http.Agent({ keepAlive: true, keepAliveMsecs: 60_000 })
      const req = Http.request({ host: "127.0.0.1", port, path: "/api/v1/sessions", agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume()
        res.on("end", () => resume(Effect.succeed(agent)))
      })
      req.on("error", (e) => resume(Effect.fail(e)))
      req.end()
    }),
    (agent) => Effect.sync(() => agent.destroy())
  )

const stopsWithin3s = (signal: NodeJS.Signals, code: number) =>
  live(`exits ${code} within 3 s of ${signal} with a hanging and an idle connection open`, Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-serve-stop-")
    const served = yield* startServe(repo, [], { GROVE_TOKEN: "a-token-from-the-environment" })
    yield* hangingClient(served.port)
    yield* idleClient(served.port, "a-token-from-the-environment")
    const started = Date.now()
    yield* served.process.kill(signal)
    const outcome = yield* served.process.exit.pipe(
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`grove serve still runs 5 s after ${signal}`) })
    )
    const took = Date.now() - started
    assert.strictEqual(outcome.code, code, `${outcome.stdout}\n${outcome.stderr}`)
    assert.isBelow(took, 3000, `took ${took} ms`)
  }))

describe("grove serve (the command)", () => {
  live("--help names every option with its value, default and purpose", Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-serve-help-")
    const help = yield* grove(repo, "serve", "--help")
    assert.strictEqual(help.code, 0, help.stderr)
    for (const fragment of ["--host H", "--port P", "--token T", "--allowed-host H", "--repo", "--db", "127.0.0.1", "7707", "GROVE_TOKEN"]) {
      assert.include(help.stdout, fragment)
    }
  }))

  live("takes the token from GROVE_TOKEN (not printed) and serves names given with --allowed-host", Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-serve-env-")
    const served = yield* startServe(repo, ["--allowed-host", "grove.test"], { GROVE_TOKEN: "a-token-from-the-environment" })
    assert.notInclude(served.process.stdout(), "a-token-from-the-environment")
    const ok = yield* request(served.port, "/api/v1/sessions", {
      headers: { authorization: "Bearer a-token-from-the-environment", host: `grove.test:${served.port}` }
    })
    assert.strictEqual(ok.status, 200, show(ok))
    assert.deepStrictEqual(json(ok), [])
    const other = yield* request(served.port, "/api/v1/sessions", {
      headers: { authorization: "Bearer a-token-from-the-environment", host: `other.test:${served.port}` }
    })
    assert.strictEqual(other.status, 421)
  }))

  live("refuses a bad --port or --allowed-host with exit 2", Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-serve-bad-")
    const port = yield* grove(repo, "serve", "--port", "70000")
    assert.strictEqual(port.code, 2, port.stderr)
    assert.include(port.stderr, "--port")
    const host = yield* grove(repo, "serve", "--port", "0", "--allowed-host", "a b")
    assert.strictEqual(host.code, 2, host.stderr)
    assert.include(host.stderr, "--allowed-host")
  }))

  stopsWithin3s("SIGTERM", 143)
  stopsWithin3s("SIGINT", 130)
})
