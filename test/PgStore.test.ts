/**
 * The PostgreSQL store against a real server (`GROVE_TEST_PG_URL`, see
 * test/support/postgres.ts): the same contract suite as the SQLite and memory stores,
 * then what only a shared server has — two stores writing at once, migrations racing
 * under the advisory lock, a newer schema, bad URLs, refused and silent servers.
 * Every test runs in a database of its own. The CLI tests run the built binary
 * (`npm run build` first; `npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodePath from "node:path"
import { Events, TestId } from "../src/Domain.js"
import * as PgStore from "../src/PgStore.js"
import * as Store from "../src/Store.js"
import * as StoreSuite from "./StoreSuite.js"
import { finishedSession, recordAll, request, scenario, SECRET, T0 } from "./StoreSuite.js"
import * as Cli from "./support/cli.js"
import * as Pg from "./support/postgres.js"
import { makeEmptyRepo } from "./support/repo.js"

/** a store over a fresh database of the test server */
const tempPg = (url: string) => (environment: Store.Environment) =>
  Layer.unwrapScoped(Effect.map(Pg.freshDatabase(url), (db) => PgStore.layer({ url: db, environment })))

const open = (url: string, options: Partial<Parameters<typeof PgStore.layer>[0]> = {}) =>
  Effect.map(Layer.build(PgStore.layer({ url, ...options })), Context.get(Store.Store))

const tables = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ readonly name: string }>`SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = current_schema() ORDER BY table_name`,
    (rows) => rows.map((r) => r.name)
  )

/** a TCP server that accepts connections and never says a word */
const silentServer = Effect.acquireRelease(
  Effect.async<{ readonly server: Net.Server; readonly sockets: Set<Net.Socket>; readonly port: number }>((resume) => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => void sockets.add(socket))
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({ server, sockets, port: (server.address() as Net.AddressInfo).port })))
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      // close waits for open connections: end them first
      sockets.forEach((s) => s.destroy())
      server.close(() => resume(Effect.void))
    })
)

/** a port nothing listens on (taken, then given back) */
const closedPort = Effect.map(silentServer, ({ port }) => port).pipe(Effect.scoped)

Pg.describePg("PgStore", (url) => {
  StoreSuite.suite("PostgreSQL", tempPg(url))

  it.scoped("two stores on one database write at once, each sees the other's sessions, history reads while they write", () =>
    Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      // both open (and would migrate) the new database at the same time
      const [one, two] = yield* Effect.all([open(db), open(db)], { concurrency: 2 })
      // history of earlier sessions, read over and over while the two write
      yield* Effect.provideService(finishedSession("20261124-0900-hist", T0 - 10, [["h1", "PASSED", 40], ["h2", "FLAKY", 60]]), Store.Store, one)
      const reads = yield* Effect.forEach(Array.from({ length: 20 }), () => two.history([TestId.make("h1"), TestId.make("h2")])).pipe(Effect.fork)
      const tests = Array.from({ length: 100 }, (_, i) => [`w${i}`, "PASSED", i] as const)
      yield* Effect.all([
        Effect.provideService(finishedSession("20261124-0912-one0", T0, tests), Store.Store, one),
        Effect.provideService(finishedSession("20261124-0912-two0", T0 + 1, tests), Store.Store, two)
      ], { concurrency: 2 })
      for (const history of yield* Fiber.join(reads)) {
        assert.strictEqual(history.get(TestId.make("h1"))?.expectedMs, 40)
        assert.strictEqual(history.get(TestId.make("h2"))?.flakiness, 1)
      }
      for (const store of [one, two]) {
        const list = yield* store.sessions(10)
        assert.deepStrictEqual(list.map((x) => [x.id, x.total]), [
          ["20261124-0912-two0", 100],
          ["20261124-0912-one0", 100],
          ["20261124-0900-hist", 2]
        ])
        // queue positions and event numbers have no gaps and no duplicates
        const tests = yield* store.tests("20261124-0912-one0", { after: 0, limit: 1000 })
        assert.deepStrictEqual(tests.map((t) => t.seq), tests.map((_, i) => i + 1))
        const logged = yield* store.events("20261124-0912-two0", { after: 0, limit: 1000 })
        assert.deepStrictEqual(logged.map((e) => e.seq), logged.map((_, i) => i + 1))
      }
    }), { timeout: 60_000 })

  it.scoped("two stores writing the same session: the log's numbers and queue positions stay unique (the session's advisory lock)", () =>
    Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      const [one, two] = yield* Effect.all([open(db), open(db)])
      const sid = "20261124-0912-same"
      yield* one.record(sid, Events.SessionStarted({ sessionId: sid, baseRef: "main", baseSha: "c", workers: 2, startedAt: T0 }))
      const queue = (store: typeof one, prefix: string) =>
        Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) =>
          store.record(sid, Events.TestQueued({ test: request(`${prefix}${i}`), sha: "c", refName: "main", expectedMs: undefined })), { discard: true })
      yield* Effect.all([queue(one, "a"), queue(two, "b")], { concurrency: 2 })
      const tests = yield* two.tests(sid, { after: 0, limit: 1000 })
      assert.strictEqual(tests.length, 80)
      assert.deepStrictEqual(tests.map((t) => t.seq), tests.map((_, i) => i + 1))
      const logged = yield* one.events(sid, { after: 0, limit: 1000 })
      assert.deepStrictEqual(logged.map((e) => e.seq), logged.map((_, i) => i + 1))
    }), { timeout: 60_000 })

  it.live("a process migrating the database while this one waits for the lock: migrations run once", () =>
    Effect.scoped(Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      const other = yield* Pg.client(db)
      // another grove, a step ahead: it holds the migration lock while it "migrates"
      const locked = yield* Deferred.make<void>()
      const commit = yield* Deferred.make<void>()
      const migrator = yield* other.withTransaction(Effect.gen(function*() {
        yield* other`SELECT pg_advisory_xact_lock(${0x67726f76}, 0)`
        yield* other`CREATE TABLE grove_schema (version INTEGER NOT NULL)`
        yield* other`CREATE TABLE sessions (id TEXT PRIMARY KEY)`
        yield* other`INSERT INTO grove_schema (version) VALUES (${PgStore.schemaVersion})`
        yield* Deferred.succeed(locked, undefined)
        yield* Deferred.await(commit)
      })).pipe(Effect.fork)
      yield* Deferred.await(locked)
      // this one reads version 0, waits for the lock, reads the version again and finds
      // nothing to do (migrating again would fail: "relation sessions already exists")
      const opening = yield* open(db).pipe(Effect.fork)
      const admin = yield* Pg.client(db)
      yield* admin<{ readonly n: number }>`SELECT COUNT(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`.pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (rows) => rows[0]!.n > 0 })
      )
      yield* Deferred.succeed(commit, undefined)
      yield* Fiber.join(migrator)
      yield* Fiber.join(opening)
      assert.deepStrictEqual(yield* tables(admin), ["grove_schema", "sessions"])
    })), { timeout: 30_000 })

  it.scoped("a database with a newer schema is refused: SchemaTooNew, nothing written", () =>
    Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      const sql = yield* Pg.client(db)
      yield* sql`CREATE TABLE grove_schema (version INTEGER NOT NULL)`
      yield* sql`INSERT INTO grove_schema (version) VALUES (${PgStore.schemaVersion + 6})`
      const error = yield* Effect.flip(open(db))
      assert.strictEqual(error.reason, "SchemaTooNew")
      assert.include(error.message, `version ${PgStore.schemaVersion + 6}`)
      assert.include(error.message, "Upgrade grove")
      assert.deepStrictEqual(yield* tables(sql), ["grove_schema"])
      const rows = yield* sql<{ readonly version: number }>`SELECT version FROM grove_schema`
      assert.deepStrictEqual(rows.map((r) => r.version), [PgStore.schemaVersion + 6])
    }))

  it.scoped("a migration that fails leaves nothing half-created (one transaction)", () =>
    Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      const sql = yield* Pg.client(db)
      // someone else's table where grove's third one goes
      yield* sql`CREATE TABLE attempts (whatever TEXT)`
      const error = yield* Effect.flip(open(db))
      assert.strictEqual(error.reason, "Query")
      assert.include(error.message, "prepare the database")
      assert.include(error.message, "attempts")
      assert.deepStrictEqual(yield* tables(sql), ["attempts"])
    }))

  it.scoped("no secret value reaches any row of any table", () =>
    Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      const store = yield* open(db, { environment: StoreSuite.environment })
      const s = scenario("20261124-0912-scrt")
      yield* Effect.provideService(recordAll("20261124-0912-scrt", [...s.inFlight, ...s.rest], s.meta), Store.Store, store)
      const sql = yield* Pg.client(db)
      let text = ""
      for (const table of yield* tables(sql)) text += JSON.stringify(yield* sql.unsafe(`SELECT * FROM ${table}`))
      assert.include(text, "NODE_ENV") // the request is there…
      assert.notInclude(text, SECRET) // …without the secret's value
    }))

  it.scoped("a new database is migrated to the current version once; reopened, it keeps the data", () =>
    Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      const s = scenario("20261124-0912-keep")
      yield* Effect.scoped(Effect.flatMap(open(db), (store) => Effect.provideService(recordAll("20261124-0912-keep", s.inFlight, s.meta), Store.Store, store)))
      const store = yield* open(db)
      yield* Effect.provideService(recordAll("20261124-0912-keep", s.rest), Store.Store, store)
      const report = Option.getOrThrow(yield* store.report("20261124-0912-keep"))
      assert.strictEqual(report.session.status, "PARTIAL_SUCCESS")
      const sql = yield* Pg.client(db)
      assert.deepStrictEqual(yield* tables(sql), ["attempts", "events", "executions", "grove_schema", "sessions"])
      const versions = yield* sql<{ readonly version: number }>`SELECT version FROM grove_schema`
      assert.deepStrictEqual(versions.map((v) => v.version), [PgStore.schemaVersion])
      // epoch millis need 64 bits
      const started = yield* sql<{ readonly started_at: string }>`SELECT started_at::text FROM sessions`
      assert.deepStrictEqual(started.map((r) => r.started_at), [String(T0)])
    }))
})

const show = (o: Cli.Outcome) => `exit ${o.code}\nstdout:\n${o.stdout}\nstderr:\n${o.stderr}`

/** what a run with bad input must not leave: the repository's store folder, worktrees */
const assertNothingCreated = (repo: { readonly dir: string; readonly commonDir: string }) => {
  assert.isFalse(Fs.existsSync(NodePath.join(repo.commonDir, "grove")), "no store or log folder in the repository")
  assert.isFalse(Fs.existsSync(NodePath.join(repo.dir, "repo.grove")), "no worktree folder")
}

Pg.describePg("grove with --db postgres://", (url) => {
  const live = <A, E>(name: string, body: Effect.Effect<A, E, Scope.Scope | NodeContext.NodeContext>) =>
    it.scopedLive(name, () => body.pipe(Effect.provide(NodeContext.layer)), 120_000)

  live("grove run records a plan's session there; show, sessions, report, a dry run's history, serve and gc read it back", Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-pgcli-")
    const db = yield* Pg.freshDatabase(url)
    Fs.mkdirSync(NodePath.join(repo.root, "plans"))
    Fs.writeFileSync(NodePath.join(repo.root, "plans", "ok.md"), "# ok\n```sh\necho fine\n```\n")
    Fs.writeFileSync(NodePath.join(repo.root, "plans", "bad.md"), "---\nretries: 0\n---\n# bad\n```sh\nexit 3\n```\n")
    const grove = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => Cli.run(args, { cwd: repo.root, env })

    const first = yield* grove(["run", "plans/ok.md", "plans/bad.md", "--db", db])
    assert.strictEqual(first.code, 1, show(first))
    const id = Cli.sessionId(first.stdout)!
    // GROVE_DB names the store too
    const second = yield* grove(["run", "plans/ok.md"], { GROVE_DB: db })
    assert.strictEqual(second.code, 0, show(second))
    const secondId = Cli.sessionId(second.stdout)!
    // nothing went to the repository's SQLite store
    assert.isFalse(Fs.existsSync(NodePath.join(repo.commonDir, "grove", "grove.db")), "an SQLite store was made")

    const sessions = yield* grove(["sessions", "--json", "--db", db])
    assert.strictEqual(sessions.code, 0, show(sessions))
    assert.deepStrictEqual(
      (JSON.parse(sessions.stdout) as Array<{ id: string; total: number; passed: number }>).map((x) => [x.id, x.total, x.passed]),
      [[secondId, 1, 1], [id, 2, 1]]
    )
    const shown = yield* grove(["show", id, "--json", "--db", db])
    assert.strictEqual(shown.code, 0, show(shown))
    const report = JSON.parse(shown.stdout) as { session: { status: string }; tests: Array<{ id: string; status: string }> }
    assert.strictEqual(report.session.status, "PARTIAL_SUCCESS")
    assert.deepStrictEqual(report.tests.map((t) => [t.id, t.status]).sort(), [["plans/bad", "FAILED"], ["plans/ok", "PASSED"]])
    const text = yield* grove(["show", id], { GROVE_DB: db })
    assert.strictEqual(text.code, 0, show(text))
    assert.include(text.stdout, "exited with 3")
    const junit = yield* grove(["report", id, "--format", "junit", "--db", db])
    assert.strictEqual(junit.code, 0, show(junit))
    assert.include(junit.stdout, "<testsuite")
    // the history of plans/ok (two PASSED runs) gives the dry run its expected duration
    const dry = yield* grove(["run", "plans/ok.md", "--dry-run", "--db", db])
    assert.strictEqual(dry.code, 0, show(dry))
    assert.match(dry.stdout, /plans\/ok\s+expected \d/)
    // grove serve serves it: the sessions, and a session's tests
    const served = yield* Cli.spawn(["serve", "--port", "0", "--token", "pg-cli-test-token-0123456789", "--db", db], { cwd: repo.root })
    yield* Cli.waitFor("grove serve's first line", Effect.sync(() => served.stdout().includes("\n")), {
      within: "30 seconds",
      context: () => `stdout:\n${served.stdout()}\nstderr:\n${served.stderr()}`
    })
    const base = /^grove serve (http:\/\/127\.0\.0\.1:\d+)\//.exec(served.stdout())![1]!
    const get = (path: string) =>
      Effect.promise(() =>
        fetch(`${base}/api/v1${path}`, { headers: { authorization: "Bearer pg-cli-test-token-0123456789" } })
          .then(async (r) => ({ status: r.status, body: await r.json() as unknown }))
      )
    const listed = yield* get("/sessions")
    assert.strictEqual(listed.status, 200)
    assert.deepStrictEqual((listed.body as Array<{ id: string }>).map((x) => x.id), [secondId, id])
    const servedTests = yield* get(`/sessions/${id}/tests`)
    assert.strictEqual(servedTests.status, 200, JSON.stringify(servedTests.body))
    assert.include(JSON.stringify(servedTests.body), "exited with 3")
    assert.include(served.stdout() + served.stderr(), "postgres://grove:***@")
    yield* served.kill("SIGTERM")
    assert.strictEqual((yield* served.exit).code, 143)

    const gc = yield* grove(["gc", "--keep", "1", "--db", db])
    assert.strictEqual(gc.code, 0, show(gc))
    const after = yield* grove(["sessions", "--json", "--db", db])
    assert.deepStrictEqual((JSON.parse(after.stdout) as Array<{ id: string }>).map((x) => x.id), [secondId])
  }))

  live("a refused connection, a malformed URL: exit 2 with the message, the password not shown, nothing created", Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-pgcli-")
    const port = yield* closedPort
    const refusedUrl = `postgres://grove:hunter2@127.0.0.1:${port}/grove`
    const grove = (...args: Array<string>) => Cli.run(args, { cwd: repo.root })
    for (const args of [["run", "--each", "true", "a"], ["show", "20261124-0912-k3f9"], ["sessions"]]) {
      const o = yield* grove(...args, "--db", refusedUrl)
      assert.strictEqual(o.code, 2, show(o))
      assert.include(o.stderr, `could not connect to the store postgres://grove:***@127.0.0.1:${port}/grove`, show(o))
      assert.include(o.stderr, "ECONNREFUSED", show(o))
      assert.notInclude(o.stdout + o.stderr, "hunter2")
      assertNothingCreated(repo)
    }
    const bad = yield* grove("run", "--each", "true", "a", "--db", "postgres://grove:hunter2@127.0.0.1:port/grove")
    assert.strictEqual(bad.code, 2, show(bad))
    assert.include(bad.stderr, "--db: postgres://grove:***@127.0.0.1:port/grove is not a PostgreSQL URL", show(bad))
    assert.include(bad.stderr, "port is not a number")
    assert.notInclude(bad.stdout + bad.stderr, "hunter2")
    assertNothingCreated(repo)
  }))
})

// no server needed: the URL is checked before connecting, and a refused or silent one is an error
it.effect("a malformed URL is refused before connecting, saying what is wrong and how to write it", () =>
  Effect.gen(function*() {
    for (const [url, why] of [
      ["postgres://", "names no host"],
      ["postgres://grove:pw@db.example:port/grove", "port is not a number"],
      ["postgresql://db.example/a/b", "is not one database name"]
    ] as const) {
      const error = yield* Effect.flip(open(url))
      assert.strictEqual(error.reason, "Open")
      assert.include(error.message, why)
      assert.include(error.message, "postgres://USER:PASSWORD@HOST:5432/DATABASE")
      assert.notInclude(error.message, ":pw@")
    }
  }).pipe(Effect.scoped))

it.live("a refused connection is a StoreError that names the store without its password", () =>
  Effect.gen(function*() {
    const port = yield* closedPort
    const error = yield* Effect.flip(open(`postgres://grove:hunter2@127.0.0.1:${port}/grove`))
    assert.strictEqual(error.reason, "Open")
    assert.include(error.message, `could not connect to the store postgres://grove:***@127.0.0.1:${port}/grove`)
    assert.include(error.message, "ECONNREFUSED")
    assert.notInclude(error.message, "hunter2")
  }).pipe(Effect.scoped))

it.live("a server that never answers: the wait is bounded by connectTimeout, then a StoreError", () =>
  Effect.gen(function*() {
    const { port } = yield* silentServer
    const error = yield* Effect.flip(open(`postgres://grove@127.0.0.1:${port}/grove`, { connectTimeout: "300 millis" }))
    assert.strictEqual(error.reason, "Open")
    assert.include(error.message, `127.0.0.1:${port}`)
    assert.include(error.message, "no answer within 300ms")
  }).pipe(Effect.scoped), { timeout: 20_000 })

it("redact hides the password of a URL, also one that does not parse", () => {
  assert.strictEqual(PgStore.redact("postgres://u:secret@h:5432/d"), "postgres://u:***@h:5432/d")
  assert.strictEqual(PgStore.redact("postgres://u@h/d"), "postgres://u@h/d")
  assert.strictEqual(PgStore.redact("postgres://u:sec ret@h:bad/d"), "postgres://u:***@h:bad/d")
  assert.isTrue(PgStore.isUrl("postgresql://h/d"))
  assert.isTrue(PgStore.isUrl("POSTGRES://h/d"))
  assert.isFalse(PgStore.isUrl("/tmp/postgres.db"))
  assert.isFalse(PgStore.isUrl("postgres.db"))
})
