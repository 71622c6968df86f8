/**
 * Starting, cancelling and re-running sessions through `grove serve` (SPEC §9), end
 * to end: the real binary on a real git repository and its SQLite store, real HTTP
 * on 127.0.0.1, real test processes.
 *
 * What is checked: a session started from plans runs in the server and ends with the
 * right counts (202, Location); a plan with a typo gives 400 with its file:line and
 * creates nothing (no session, no worktree), as does a malformed body (400 naming the
 * field) and a cross-origin POST (403); cancel, graceful (the running test's TERM
 * handler gets the grace period) and immediate (it does not), ends the session
 * INTERRUPTED with its tests CANCELLED, no process and no worktree left; 404 and 409
 * (ended; run by another live `grove run`); a re-run runs only the tests that did not
 * pass, names its origin, takes a secret from the plan again (never `***`), and 409
 * when everything passed; SIGINT to `grove serve` while an API session runs stops it
 * as `grove run` stops (INTERRUPTED, no worktree, no process) and the server exits.
 *
 * Run `npm run build` first (`npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as NodePath from "node:path"
import * as Cli from "./support/cli.js"
import { type EmptyRepo, git, makeEmptyRepo } from "./support/repo.js"

// -----------------------------------------------------------------------------
// HTTP
// -----------------------------------------------------------------------------

interface Reply {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
}

const json = (reply: Reply): any => {
  assert.match(String(reply.headers["content-type"]), /application\/json/, `not JSON (${reply.status}): ${reply.text}`)
  return JSON.parse(reply.text)
}

const show = (reply: Reply) => `${reply.status}\n${reply.text.slice(0, 3000)}`

const request = (
  port: number,
  path: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    readonly body?: unknown
    /** a body sent as it is */
    readonly raw?: string
  } = {}
): Effect.Effect<Reply, Error> =>
  Effect.async<Reply, Error>((resume) => {
    const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
    const req = Http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? "GET",
        headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
        agent: false
      },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") })))
        res.on("error", (e) => resume(Effect.fail(e)))
      }
    )
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end(body)
  })

// -----------------------------------------------------------------------------
// the fixture: a repository with plans, a running `grove serve`
// -----------------------------------------------------------------------------

const secret = "s3cr3t-value-123"

/**
 * The plans of the test repository. `slow`'s TERM handler needs 2 s before it writes
 * its mark to `<dir>/marks/<session>` (outside the worktree, which grove removes): the
 * mark is there only when the attempt was given the grace period. It waits with a
 * builtin on a fifo, not a new process (grove sends every new process its own SIGTERM),
 * and writes a file rather than output (the log ends when the attempt is stopped).
 */
const plans = (dir: string): Record<string, string> => ({
  "plans/ok.md": Cli.plan({ title: "ok", steps: ["echo ok"] }),
  "plans/bad.md": Cli.plan({ title: "bad", steps: ["echo bad; exit 3"] }),
  // line 2 holds the typo
  "plans/typo.md": Cli.plan({ front: "timout: 5m", title: "typo", steps: ["echo typo"] }),
  "plans/slow.md": Cli.plan({
    title: "slow",
    steps: [
      `mkfifo .hold; exec 3<>.hold; trap 'read -t 2 -u 3 || true; echo graced > "${dir}/marks/$GROVE_SESSION"; exit 7' TERM; ` +
      "echo started; sleep 300 & wait"
    ]
  }),
  // exits 4 only with the real secret in its script and its environment; *** (or no value) gives 1
  "plans/secret.md": Cli.plan({
    front: `env: { API_TOKEN: ${secret} }\nsecretEnv: [API_TOKEN]`,
    title: "secret",
    steps: [`[ "$API_TOKEN" = "${secret}" ] && exit 4; exit 1`]
  })
})

/** whether the slow test of a session was given its grace period (see `plans`) */
const graced = (repo: EmptyRepo, id: string) => Effect.sync(() => Fs.existsSync(NodePath.join(repo.dir, "marks", id)))

type Served = Cli.Served

const token = "a-token-for-the-actions-tests"

const startServe = (repo: EmptyRepo) =>
  Effect.map(Cli.startServe(repo.root, [], { GROVE_TOKEN: token }), (served): Served => ({ ...served, token }))

const makePlanRepo = (prefix: string) =>
  Effect.gen(function*() {
    const repo = yield* makeEmptyRepo(prefix)
    yield* Cli.writeFiles(repo.root, plans(repo.dir))
    Fs.mkdirSync(NodePath.join(repo.dir, "marks"))
    yield* git(repo.root, "add", ".")
    yield* git(repo.root, "commit", "--quiet", "-m", "plans")
    return repo
  })

class Fixture extends Context.Tag("test/ServerActions/Fixture")<Fixture, {
  readonly repo: EmptyRepo
  readonly serve: Served
}>() {}

const FixtureLive = Layer.scoped(
  Fixture,
  Effect.gen(function*() {
    const repo = yield* makePlanRepo("grove-actions-")
    return { repo, serve: yield* startServe(repo) }
  })
).pipe(Layer.provide(NodeContext.layer))

type Fx = Context.Tag.Service<Fixture>

const auth = (fx: { readonly serve: Served }) => ({ authorization: `Bearer ${fx.serve.token}` })
const get = (fx: { readonly serve: Served }, path: string) => request(fx.serve.port, path, { headers: auth(fx) })
const post = (fx: { readonly serve: Served }, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  request(fx.serve.port, path, { method: "POST", headers: { ...auth(fx), ...headers }, body })

const sessionIds = (fx: { readonly serve: Served }) =>
  Effect.map(get(fx, "/api/v1/sessions?limit=10000"), (r) => (json(r) as Array<{ id: string }>).map((s) => s.id))

/** POST /sessions that must be accepted: its id (and the Location header says where it is) */
const start = (fx: { readonly serve: Served }, body: unknown) =>
  Effect.gen(function*() {
    const reply = yield* post(fx, "/api/v1/sessions", body)
    assert.strictEqual(reply.status, 202, show(reply))
    const accepted = json(reply)
    assert.strictEqual(reply.headers.location, `/api/v1/sessions/${accepted.id}`)
    assert.strictEqual(accepted.location, reply.headers.location)
    return accepted as { id: string; tests: number; rerunOf?: string }
  })

const detail = (fx: { readonly serve: Served }, id: string) =>
  Effect.map(get(fx, `/api/v1/sessions/${id}`), (r) => {
    assert.strictEqual(r.status, 200, show(r))
    return json(r)
  })

/** waits for the session to end; its detail */
const ended = (fx: { readonly serve: Served }, id: string) =>
  Effect.gen(function*() {
    let last: any
    yield* Cli.waitFor(
      `session ${id} to end`,
      Effect.map(detail(fx, id), (d) => {
        last = d
        return d.session.status !== "RUNNING"
      }),
      { within: "60 seconds", context: () => JSON.stringify(last) }
    )
    return last
  })

const tests = (fx: { readonly serve: Served }, id: string) =>
  Effect.map(get(fx, `/api/v1/sessions/${id}/tests`), (r) => {
    assert.strictEqual(r.status, 200, show(r))
    return json(r) as Array<{ id: string; status: string; attempts: Array<{ n: number; status: string; exitCode: number | null }> }>
  })

const log = (fx: { readonly serve: Served }, id: string, testId: string, n: number) =>
  Effect.map(get(fx, `/api/v1/sessions/${id}/tests/${encodeURIComponent(testId)}/attempts/${n}/log`), (r) => {
    assert.strictEqual(r.status, 200, show(r))
    return r.text
  })

/** waits until a process of the session runs `what` (its test has really started) */
const running = (id: string, what: string) =>
  Cli.waitFor(
    `a process of session ${id} running ${what}`,
    Effect.map(Cli.processesWithEnv(`GROVE_SESSION=${id}`), (ps) => ps.some((p) => p.cmdline.includes(what))),
    { within: "60 seconds" }
  )

/**
 * no process of the session is left, and the repository has no worktree but its own. The
 * session is recorded as ended before its worktrees are removed (SPEC §4: it is marked,
 * then cleaned up), so this waits for the cleanup, on a busy machine a second or more
 */
const nothingLeft = (repo: EmptyRepo, id: string) =>
  Effect.gen(function*() {
    yield* Cli.waitFor(
      `session ${id} to leave no process and no worktree`,
      Effect.zipWith(
        Cli.processesWithEnv(`GROVE_SESSION=${id}`),
        Cli.worktreePaths(repo.root),
        (ps, paths) => ps.length === 0 && paths.length === 1
      ),
      { within: "30 seconds" }
    ).pipe(Effect.catchAllDefect(() => Effect.void))
    assert.deepStrictEqual(yield* Cli.processesWithEnv(`GROVE_SESSION=${id}`), [], `processes of ${id} left`)
    assert.deepStrictEqual(yield* Cli.worktreePaths(repo.root), [repo.root], "worktrees left")
  })

/** the repository has no worktree but its own, and grove made no worktree folder */
const noWorktrees = (repo: EmptyRepo) =>
  Effect.gen(function*() {
    assert.deepStrictEqual(yield* Cli.worktreePaths(repo.root), [repo.root])
    const groveDir = NodePath.join(repo.dir, "repo.grove")
    assert.isFalse(Fs.existsSync(groveDir) && Fs.readdirSync(groveDir).length > 0, `${groveDir} holds ${Fs.existsSync(groveDir) ? Fs.readdirSync(groveDir).join(", ") : ""}`)
  })

// -----------------------------------------------------------------------------
// tests
// -----------------------------------------------------------------------------

layer(FixtureLive, { timeout: "180 seconds", excludeTestServices: true })("grove serve: start, cancel, re-run", (it) => {
  const withFixture = <A, E>(f: (fx: Fx) => Effect.Effect<A, E, Scope.Scope | NodeContext.NodeContext>) =>
    Effect.scoped(Effect.flatMap(Fixture, f)).pipe(Effect.provide(NodeContext.layer))

  it.effect("starts a session from plans: 202 with its id and Location; it runs in the server and ends with the right counts", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const accepted = yield* start(fx, { plans: ["plans/ok.md", "plans/bad.md"], retries: 0, workers: 2 })
        assert.strictEqual(accepted.tests, 2)
        const done = yield* ended(fx, accepted.id)
        assert.strictEqual(done.session.status, "PARTIAL_SUCCESS")
        assert.strictEqual(done.session.workers, 2)
        assert.include(done.totals, { total: 2, passed: 1, failed: 1, cancelled: 0 })
        const byId = Object.fromEntries((yield* tests(fx, accepted.id)).map((t) => [t.id, t]))
        assert.strictEqual(byId["plans/ok"]?.status, "PASSED")
        assert.strictEqual(byId["plans/bad"]?.status, "FAILED")
        assert.deepStrictEqual(byId["plans/bad"]?.attempts.map((a) => a.exitCode), [3])
        // the server's session is in the store like any other: grove sessions lists it
        const listed = yield* Cli.run(["sessions", "--json"], { cwd: fx.repo.root })
        assert.include(listed.stdout, accepted.id)
        yield* nothingLeft(fx.repo, accepted.id)
      })
    ))

  it.effect("starts --each tests: one per arg, {} replaced", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const accepted = yield* start(fx, { each: { command: "test {} = a", args: ["a", "b"] }, retries: 0 })
        const done = yield* ended(fx, accepted.id)
        assert.include(done.totals, { total: 2, passed: 1, failed: 1 })
        const statuses = Object.fromEntries((yield* tests(fx, accepted.id)).map((t) => [t.id, t.status]))
        assert.deepStrictEqual(statuses, { a: "PASSED", b: "FAILED" })
        yield* nothingLeft(fx.repo, accepted.id)
      })
    ))

  it.effect("a plan with a typo: 400 with its file:line as grove run prints it, and nothing is created", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const before = yield* sessionIds(fx)
        const reply = yield* post(fx, "/api/v1/sessions", { plans: ["plans/ok.md", "plans/typo.md", "plans/missing.md"], workers: 0 + 2 })
        assert.strictEqual(reply.status, 400, show(reply))
        const body = json(reply)
        assert.strictEqual(body._tag, "InvalidInput")
        const typo = body.issues.find((i: any) => i.file === "plans/typo.md")
        assert.deepInclude(typo, { where: "plans/typo.md:2", file: "plans/typo.md", line: 2 })
        assert.include(typo.message, "timout")
        assert.isTrue(body.issues.some((i: any) => String(i.where).startsWith("plans/missing.md")), show(reply))
        // the CLI says the same of the same plan
        const cli = yield* Cli.run(["run", "plans/typo.md"], { cwd: fx.repo.root })
        assert.strictEqual(cli.code, 2)
        assert.include(cli.stderr, `plans/typo.md:2: ${typo.message}`)
        assert.deepStrictEqual(yield* sessionIds(fx), before)
        yield* noWorktrees(fx.repo)
      })
    ))

  it.effect("bad options and plan paths outside the repository: 400 naming the field, nothing created", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const before = yield* sessionIds(fx)
        const cases: Array<[unknown, string, string]> = [
          [{ plans: ["plans/ok.md"], wrokers: 2 }, "BadRequest", "wrokers"],
          [{ plans: "plans/ok.md" }, "BadRequest", "plans"],
          [{ plans: ["plans/ok.md"], workers: 0 }, "BadRequest", "workers"],
          [{ each: { command: "echo {}", args: ["a"], extra: 1 } }, "BadRequest", "each.extra"],
          [{ plans: ["plans/ok.md"], timeout: "soon" }, "InvalidInput", "timeout"],
          [{ plans: ["plans/ok.md"], ref: "no-such-branch" }, "InvalidInput", "ref no-such-branch"],
          [{ plans: ["plans/ok.md"], failFast: true, maxFail: 2 }, "InvalidInput", "failFast"],
          [{ plans: ["../outside.md"] }, "InvalidInput", "plans[0]"],
          [{ plans: ["plans/ok.md"], each: { command: "echo", args: ["a"] } }, "InvalidInput", "each"],
          [{}, "InvalidInput", "plans"]
        ]
        const notJson = yield* request(fx.serve.port, "/api/v1/sessions", {
          method: "POST",
          headers: { ...auth(fx), "content-type": "application/json" },
          raw: "{\"plans\": ["
        })
        assert.strictEqual(notJson.status, 400, show(notJson))
        assert.deepInclude(json(notJson), { _tag: "BadRequest" })
        assert.strictEqual(json(notJson).issues[0].where, "body")
        for (const [body, tag, where] of cases) {
          const reply = yield* post(fx, "/api/v1/sessions", body)
          assert.strictEqual(reply.status, 400, `${JSON.stringify(body)}: ${show(reply)}`)
          const error = json(reply)
          assert.strictEqual(error._tag, tag, show(reply))
          assert.isTrue(error.issues.some((i: any) => i.where === where), `${JSON.stringify(body)}: expected an issue at ${where}: ${show(reply)}`)
        }
        assert.deepStrictEqual(yield* sessionIds(fx), before)
        yield* noWorktrees(fx.repo)
      })
    ))

  it.effect("a start from another Origin is refused with 403 and creates nothing", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const before = yield* sessionIds(fx)
        const reply = yield* post(fx, "/api/v1/sessions", { plans: ["plans/ok.md"] }, { origin: "http://evil.example" })
        assert.strictEqual(reply.status, 403, show(reply))
        assert.deepInclude(json(reply), { _tag: "Forbidden", reason: "CrossOrigin" })
        assert.deepStrictEqual(yield* sessionIds(fx), before)
        yield* noWorktrees(fx.repo)
      })
    ))

  it.effect("cancel, graceful: the running test gets the grace period, waiting ones are CANCELLED, the session ends INTERRUPTED", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const accepted = yield* start(fx, { plans: ["plans/slow.md", "plans/ok.md"], workers: 1, retries: 0 })
        yield* running(accepted.id, "sleep 300")
        // running here: it cannot be deleted, and the answer says to cancel it
        const del = yield* request(fx.serve.port, `/api/v1/sessions/${accepted.id}`, { method: "DELETE", headers: auth(fx) })
        assert.strictEqual(del.status, 409, show(del))
        assert.include(json(del).message, `POST /api/v1/sessions/${accepted.id}/cancel`)
        assert.isTrue((yield* detail(fx, accepted.id)).owner.alive)
        const reply = yield* post(fx, `/api/v1/sessions/${accepted.id}/cancel`)
        assert.strictEqual(reply.status, 202, show(reply))
        assert.deepStrictEqual(json(reply), { id: accepted.id, immediate: false })
        const done = yield* ended(fx, accepted.id)
        assert.strictEqual(done.session.status, "INTERRUPTED")
        assert.include(done.totals, { total: 2, cancelled: 2, passed: 0 })
        const slow = (yield* tests(fx, accepted.id)).find((t) => t.id === "plans/slow")!
        assert.strictEqual(slow.status, "CANCELLED")
        assert.include(yield* log(fx, accepted.id, "plans/slow", 1), "started")
        assert.isTrue(yield* graced(fx.repo, accepted.id), "a graceful cancel gives the TERM handler its grace period")
        yield* nothingLeft(fx.repo, accepted.id)
        // ended: a second cancel is refused
        const again = yield* post(fx, `/api/v1/sessions/${accepted.id}/cancel`, { immediate: true })
        assert.strictEqual(again.status, 409, show(again))
        assert.deepInclude(json(again), { _tag: "SessionFinished", sessionId: accepted.id, status: "INTERRUPTED" })
      })
    ))

  it.effect("cancel, immediate: the running test is killed without the grace period", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const accepted = yield* start(fx, { plans: ["plans/slow.md"], retries: 0 })
        yield* running(accepted.id, "sleep 300")
        const reply = yield* post(fx, `/api/v1/sessions/${accepted.id}/cancel`, { immediate: true })
        assert.strictEqual(reply.status, 202, show(reply))
        assert.deepStrictEqual(json(reply), { id: accepted.id, immediate: true })
        const done = yield* ended(fx, accepted.id)
        assert.strictEqual(done.session.status, "INTERRUPTED")
        assert.include(yield* log(fx, accepted.id, "plans/slow", 1), "started")
        assert.isFalse(yield* graced(fx.repo, accepted.id), "an immediate cancel does not wait for the TERM handler")
        yield* nothingLeft(fx.repo, accepted.id)
      })
    ))

  it.effect("the OpenAPI document lists the three endpoints with their statuses, behind the token", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const spec = json(yield* get(fx, "/api/v1/openapi.json"))
        const endpoints: Array<[string, ReadonlyArray<string>]> = [
          ["/api/v1/sessions", ["202", "400", "401", "403", "404"]],
          ["/api/v1/sessions/{id}/cancel", ["202", "400", "404", "409"]],
          ["/api/v1/sessions/{id}/rerun", ["202", "400", "404", "409"]]
        ]
        for (const [path, statuses] of endpoints) {
          const post = spec.paths[path]?.post
          assert.isDefined(post, `no POST ${path}`)
          for (const status of statuses) assert.property(post.responses, status, `POST ${path}`)
          assert.deepStrictEqual(post.security, [{ bearer: [] }], `POST ${path}`)
        }
      })
    ))

  it.effect("cancel and rerun of an unknown session: 404; a malformed cancel body: 400", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        for (const action of ["cancel", "rerun"]) {
          const reply = yield* post(fx, `/api/v1/sessions/no-such-session/${action}`)
          assert.strictEqual(reply.status, 404, show(reply))
          assert.deepInclude(json(reply), { _tag: "NotFound", what: "session", subject: "no-such-session" })
        }
        const bad = yield* post(fx, "/api/v1/sessions/no-such-session/cancel", { immediate: "yes" })
        assert.strictEqual(bad.status, 400, show(bad))
        assert.isTrue(json(bad).issues.some((i: any) => i.where === "immediate"), show(bad))
      })
    ))

  it.effect("cancel of a session another live grove runs: 409 naming its pid and host; it runs on", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const other = yield* Cli.spawn(["run", "plans/slow.md", "--retries", "0"], { cwd: fx.repo.root })
        yield* Cli.waitFor("grove run's session line", Effect.sync(() => Cli.sessionId(other.stdout()) !== undefined), {
          within: "60 seconds",
          context: () => other.stderr()
        })
        const id = Cli.sessionId(other.stdout())!
        yield* running(id, "sleep 300")
        for (const body of [undefined, { immediate: true }]) {
          const reply = yield* post(fx, `/api/v1/sessions/${id}/cancel`, body)
          assert.strictEqual(reply.status, 409, show(reply))
          const error = json(reply)
          assert.deepInclude(error, { _tag: "SessionOwnedElsewhere", sessionId: id, pid: other.pid })
          assert.isString(error.host)
          assert.include(error.message, `kill -INT ${other.pid}`)
        }
        const rerun = yield* post(fx, `/api/v1/sessions/${id}/rerun`)
        assert.strictEqual(rerun.status, 409, show(rerun))
        assert.deepInclude(json(rerun), { _tag: "SessionStillRunning", pid: other.pid })
        // still running: nothing stopped it
        assert.strictEqual((yield* detail(fx, id)).session.status, "RUNNING")
        yield* other.kill("SIGINT")
        const outcome = yield* other.exit
        assert.strictEqual(outcome.code, 130, outcome.stderr)
        assert.strictEqual((yield* detail(fx, id)).session.status, "INTERRUPTED")
        yield* nothingLeft(fx.repo, id)
      })
    ))

  it.effect("rerun: a new session of only the tests that did not pass, with the original's options, naming its origin", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const first = yield* start(fx, { plans: ["plans/ok.md", "plans/bad.md"], retries: 1, workers: 2 })
        yield* ended(fx, first.id)
        const reply = yield* post(fx, `/api/v1/sessions/${first.id}/rerun`)
        assert.strictEqual(reply.status, 202, show(reply))
        const rerun = json(reply)
        assert.strictEqual(reply.headers.location, `/api/v1/sessions/${rerun.id}`)
        assert.notStrictEqual(rerun.id, first.id)
        assert.strictEqual(rerun.rerunOf, first.id)
        assert.strictEqual(rerun.tests, 1)
        const done = yield* ended(fx, rerun.id)
        assert.strictEqual(done.rerunOf, first.id)
        assert.strictEqual(done.session.status, "FAILED")
        assert.strictEqual(done.session.workers, 2, "the original's --workers")
        const ran = yield* tests(fx, rerun.id)
        assert.deepStrictEqual(ran.map((t) => t.id), ["plans/bad"])
        // the original's --retries 1: two attempts
        assert.deepStrictEqual(ran[0]!.attempts.map((a) => a.exitCode), [3, 3])
        // the original names no origin
        assert.isUndefined((yield* detail(fx, first.id)).rerunOf)
        yield* nothingLeft(fx.repo, rerun.id)
      })
    ))

  it.effect("rerun of a session whose tests all passed: 409", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const first = yield* start(fx, { plans: ["plans/ok.md"] })
        assert.strictEqual((yield* ended(fx, first.id)).session.status, "COMPLETE")
        const before = yield* sessionIds(fx)
        const reply = yield* post(fx, `/api/v1/sessions/${first.id}/rerun`)
        assert.strictEqual(reply.status, 409, show(reply))
        const error = json(reply)
        assert.deepInclude(error, { _tag: "NothingToRerun", sessionId: first.id, status: "COMPLETE" })
        assert.include(error.message, "nothing to re-run")
        assert.deepStrictEqual(yield* sessionIds(fx), before)
      })
    ))

  it.effect("rerun takes a secret from the plan again: the script runs with its value, never with ***, and no response shows it", () =>
    withFixture((fx) =>
      Effect.gen(function*() {
        const replies: Array<string> = []
        const first = yield* start(fx, { plans: ["plans/secret.md"], retries: 0 })
        yield* ended(fx, first.id)
        const firstTests = yield* tests(fx, first.id)
        assert.deepStrictEqual(firstTests[0]!.attempts.map((a) => a.exitCode), [4])
        const reply = yield* post(fx, `/api/v1/sessions/${first.id}/rerun`)
        replies.push(reply.text)
        assert.strictEqual(reply.status, 202, show(reply))
        const rerun = json(reply)
        replies.push(JSON.stringify(yield* ended(fx, rerun.id)))
        const ran = yield* tests(fx, rerun.id)
        replies.push(JSON.stringify(ran))
        // 4: the script compared the real value with the real environment; *** would exit 1
        assert.deepStrictEqual(ran.map((t) => [t.id, t.attempts.map((a) => a.exitCode)]), [["plans/secret", [4]]])
        replies.push(yield* log(fx, rerun.id, "plans/secret", 1))
        for (const text of replies) assert.notInclude(text, secret)
      })
    ))
})

// -----------------------------------------------------------------------------
// shutdown
// -----------------------------------------------------------------------------

describe("grove serve: shutdown with an API session running", () => {
  it.scopedLive("SIGINT stops the session as grove run stops (INTERRUPTED, no worktree, no process) and the server exits", () =>
    Effect.gen(function*() {
      const repo = yield* makePlanRepo("grove-actions-stop-")
      const served = yield* startServe(repo)
      const fx = { serve: served }
      const accepted = yield* start(fx, { plans: ["plans/slow.md", "plans/ok.md"], workers: 1 })
      yield* running(accepted.id, "sleep 300")
      yield* served.process.kill("SIGINT")
      // a generous bound against a hang, not a speed figure (SPEC: grace 5 s + 3 s)
      const outcome = yield* served.process.exit.pipe(
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("grove serve still runs 60 s after SIGINT") })
      )
      assert.strictEqual(outcome.code, 130, `${outcome.stdout}\n${outcome.stderr}`)
      assert.include(outcome.stderr, `stopping 1 session started through the API (${accepted.id})`)
      const shown = yield* Cli.run(["show", accepted.id, "--json"], { cwd: repo.root })
      assert.strictEqual(shown.code, 0, shown.stderr)
      const report = JSON.parse(shown.stdout)
      assert.strictEqual(report.session.status, "INTERRUPTED")
      assert.deepStrictEqual(
        report.tests.map((t: any) => [t.id, t.status]).sort(),
        [["plans/ok", "CANCELLED"], ["plans/slow", "CANCELLED"]]
      )
      yield* nothingLeft(repo, accepted.id)
    }).pipe(Effect.provide(NodeContext.layer)), 120_000)

  it.scopedLive("a second SIGINT skips the grace period, and the session is still cleaned up", () =>
    Effect.gen(function*() {
      const repo = yield* makePlanRepo("grove-actions-stop2-")
      const served = yield* startServe(repo)
      const accepted = yield* start({ serve: served }, { plans: ["plans/slow.md"] })
      yield* running(accepted.id, "sleep 300")
      yield* served.process.kill("SIGINT")
      yield* Cli.waitFor("grove serve to say it stops the session", Effect.sync(() => served.process.stderr().includes("stopping 1 session")), {
        within: "30 seconds",
        context: () => served.process.stderr()
      })
      yield* served.process.kill("SIGINT")
      const outcome = yield* served.process.exit.pipe(
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("grove serve still runs 60 s after two SIGINTs") })
      )
      assert.strictEqual(outcome.code, 130, `${outcome.stdout}\n${outcome.stderr}`)
      assert.include(outcome.stderr, "SIGINT again")
      assert.isFalse(yield* graced(repo, accepted.id), "the second signal does not wait for the TERM handler")
      const shown = yield* Cli.run(["show", accepted.id, "--json"], { cwd: repo.root })
      assert.strictEqual(JSON.parse(shown.stdout).session.status, "INTERRUPTED", shown.stderr)
      yield* nothingLeft(repo, accepted.id)
    }).pipe(Effect.provide(NodeContext.layer)), 120_000)
})
