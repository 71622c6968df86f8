import * as Command from "@effect/platform/Command"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as NodeFs from "node:fs"
import { fileURLToPath } from "node:url"
import * as Schema from "effect/Schema"
import { Attempt, Events, Report, type SessionEvent, Step, TestId, TestResult } from "../src/Domain.js"
import * as SqlStore from "../src/SqlStore.js"
import * as Store from "../src/Store.js"
import { ENV_SECRET, finishedSession, recordAll, request, scenario, SECRET, T0 } from "./StoreSuite.js"
import * as StoreSuite from "./StoreSuite.js"

const packageRoot = fileURLToPath(new URL("..", import.meta.url))

/** a fresh database file in a folder that does not exist yet */
const tempSqlite = (environment: Store.Environment) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "grove-store-" })
      return SqlStore.layer({ filename: `${dir}/git/grove/grove.db`, environment })
    })
  ).pipe(Layer.provide(NodeContext.layer))

StoreSuite.suite("memory", (environment) => Store.layerMemoryWith({ environment }))
StoreSuite.suite("SQLite", tempSqlite)

const bytesOf = (file: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFile(file))
const exists = (file: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(file))

/** a raw connection for looking at the file behind the store's back */
const raw = <A, E>(filename: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>, options: { readonly disableWAL?: boolean } = {}) =>
  Effect.scoped(
    Effect.flatMap(Layer.build(SqliteClient.layer({ filename, ...options })), (ctx) => f(Context.get(ctx, SqlClient.SqlClient)))
  )

const userVersion = (filename: string) =>
  raw(filename, (sql) => Effect.map(sql<{ user_version: number }>`PRAGMA user_version`, (r) => r[0]!.user_version))

const withStore = <A, E>(filename: string, effect: Effect.Effect<A, E, Store.Store>) =>
  Effect.provide(effect, SqlStore.layer({ filename }))

const openError = (filename: string) => Effect.flip(withStore(filename, Effect.void))

describe("SqlStore (SQLite only)", () => {
  it.scoped("a file that is not SQLite is refused: NotADatabase, bytes unchanged, no -wal/-shm", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      for (const [name, content] of [["notes.db", "these are my notes, not a database\n".repeat(20)], ["short.db", "tiny"]] as const) {
        const file = `${dir}/${name}`
        yield* fs.writeFileString(file, content)
        const before = yield* bytesOf(file)
        const error = yield* openError(file)
        assert.strictEqual(error.reason, "NotADatabase")
        assert.include(error.message, file)
        assert.include(error.message, "--db")
        assert.deepStrictEqual(yield* bytesOf(file), before)
        assert.isFalse(yield* exists(`${file}-wal`))
        assert.isFalse(yield* exists(`${file}-shm`))
      }
      // a folder where the file should be
      yield* fs.makeDirectory(`${dir}/folder.db`)
      assert.strictEqual((yield* openError(`${dir}/folder.db`)).reason, "NotADatabase")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a file with a newer schema is refused: SchemaTooNew, bytes unchanged, no -wal/-shm", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      yield* raw(file, (sql) =>
        Effect.all([
          sql`CREATE TABLE future (x INTEGER)`,
          sql.unsafe(`PRAGMA user_version = ${SqlStore.schemaVersion + 6}`)
        ]), { disableWAL: true })
      assert.isFalse(yield* exists(`${file}-wal`))
      const before = yield* bytesOf(file)
      const error = yield* openError(file)
      assert.strictEqual(error.reason, "SchemaTooNew")
      assert.include(error.message, `version ${SqlStore.schemaVersion + 6}`)
      assert.include(error.message, "Upgrade grove")
      assert.deepStrictEqual(yield* bytesOf(file), before)
      assert.isFalse(yield* exists(`${file}-wal`))
      assert.isFalse(yield* exists(`${file}-shm`))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("creates its folder, migrates once, and a reopened file keeps the data", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/a/b/grove.db`
      const s = scenario("20261124-0912-keep")
      yield* withStore(file, recordAll("20261124-0912-keep", s.inFlight, s.meta))
      assert.strictEqual(yield* userVersion(file), SqlStore.schemaVersion)
      // a second open finds the current version and runs no migration (a second CREATE TABLE would fail)
      const [report, pending] = yield* withStore(
        file,
        Effect.flatMap(Store.Store, (store) => Effect.all([store.report("20261124-0912-keep"), store.pending("20261124-0912-keep")]))
      )
      assert.deepStrictEqual(Option.getOrThrow(report).tests.map((t) => t.status), ["QUEUED", "FAILED", "RUNNING"])
      assert.deepStrictEqual(pending.map((p) => p.request.id), ["a", "c"])
      yield* withStore(file, recordAll("20261124-0912-keep", s.rest))
      assert.strictEqual(yield* userVersion(file), SqlStore.schemaVersion)
      const final = yield* withStore(file, Effect.flatMap(Store.Store, (store) => store.report("20261124-0912-keep")))
      assert.strictEqual(Option.getOrThrow(final).session.status, "PARTIAL_SUCCESS")
      const tables = yield* raw(file, (sql) => sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
      assert.deepStrictEqual(tables.map((t) => t.name), ["attempts", "events", "executions", "sessions"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a version-1 file is migrated to the current version in place: data kept, seq index added, events backfilled from its rows", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      // a file as grove 0.1.0 (schema 1) left it: its tables, a session, user_version 1
      const s = scenario("20261124-0912-old1")
      yield* withStore(file, recordAll("20261124-0912-old1", s.inFlight, s.meta))
      yield* raw(file, (sql) =>
        Effect.all([
          sql`DROP INDEX executions_by_seq`,
          sql`DROP TABLE events`,
          sql`ALTER TABLE sessions DROP COLUMN host`,
          sql`ALTER TABLE sessions DROP COLUMN heartbeat_at`,
          sql.unsafe("PRAGMA user_version = 1")
        ], { discard: true }))
      assert.strictEqual(yield* userVersion(file), 1)

      yield* withStore(file, recordAll("20261124-0912-old1", s.rest))
      assert.strictEqual(yield* userVersion(file), SqlStore.schemaVersion)
      const indexes = yield* raw(file, (sql) =>
        sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions' AND sql IS NOT NULL ORDER BY name`)
      assert.deepStrictEqual(indexes.map((i) => i.name), ["executions_by_seq", "executions_by_test"])
      const plan = yield* raw(file, (sql) =>
        sql<{ detail: string }>`EXPLAIN QUERY PLAN SELECT seq FROM executions WHERE session_id = 'x' ORDER BY seq DESC LIMIT 1`)
      assert.include(plan.map((p) => p.detail).join(" "), "executions_by_seq")
      const final = yield* withStore(file, Effect.flatMap(Store.Store, (store) => store.report("20261124-0912-old1")))
      assert.deepStrictEqual(Option.getOrThrow(final).tests.map((t) => t.status), ["FLAKY", "FAILED", "CANCELLED"])
      // the rows the old file held became events, and the events written after continue them
      const report = Option.getOrThrow(final)
      assert.deepStrictEqual(Schema.encodeSync(Report)(report), Schema.encodeSync(Report)(s.report))
      const seqs = yield* raw(file, (sql) => sql<{ seq: number }>`SELECT seq FROM events WHERE session_id = '20261124-0912-old1' ORDER BY seq`)
      assert.deepStrictEqual(seqs.map((r) => r.seq), seqs.map((_, i) => i + 1))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("no secret value reaches the file; deleting a session deletes its rows", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      const s = scenario("20261124-0912-file")
      yield* withStore(file, recordAll("20261124-0912-file", [...s.inFlight, ...s.rest], s.meta))
      const text = new TextDecoder("latin1").decode(yield* bytesOf(file))
      assert.include(text, "NODE_ENV") // the request is there…
      assert.notInclude(text, SECRET) // …without the secret's value
      const requestJson = yield* raw(file, (sql) => sql<{ request: string }>`SELECT request FROM executions WHERE test_id = 'a'`)
      assert.deepStrictEqual(JSON.parse(requestJson[0]!.request).env, { NODE_ENV: "test" })

      yield* withStore(file, Effect.flatMap(Store.Store, (store) => store.deleteSession("20261124-0912-file")))
      const counts = yield* raw(file, (sql) =>
        sql<{ s: number; e: number; a: number }>`SELECT (SELECT COUNT(*) FROM sessions) AS s,
          (SELECT COUNT(*) FROM executions) AS e, (SELECT COUNT(*) FROM attempts) AS a`)
      assert.deepStrictEqual(counts[0], { s: 0, e: 0, a: 0 })
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a secret from grove's environment in a script, a tail and a message reaches no byte of the file", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      const sid = "20261124-0912-envf"
      const d = request("d", {
        secretEnv: ["DEPLOY_KEY"],
        steps: [new Step({ shell: "bash", script: `deploy --key ${ENV_SECRET}` })]
      })
      const s = scenario(sid)
      const a1 = new Attempt({ ...s.attempts.a1, tail: `using ${ENV_SECRET}\n`, message: `key ${ENV_SECRET} refused` })
      const result = new TestResult({ id: d.id, name: d.name, source: d.source, ref: "main", status: "FAILED", durationMs: 100, attempts: [a1] })
      yield* Effect.provide(
        recordAll(sid, [
          s.inFlight[0]!,
          Events.TestQueued({ test: d, sha: "a".repeat(40), refName: "main", expectedMs: undefined }),
          Events.AttemptStarted({ testId: d.id, n: 1, worker: 0, worktree: a1.worktree, startedAt: T0, logPath: a1.logPath }),
          Events.AttemptFinished({ testId: d.id, attempt: a1 }),
          Events.TestFinished({ result })
        ], s.meta),
        SqlStore.layer({ filename: file, environment: StoreSuite.environment })
      )
      const bytes = Buffer.concat(
        (yield* Effect.forEach([file, `${file}-wal`], (f) => Effect.map(exists(f), (e) => e ? [f] : []))).flat()
          .map((f) => Buffer.from(NodeFs.readFileSync(f)))
      )
      assert.isFalse(bytes.includes(Buffer.from(ENV_SECRET)), "the secret is in the file")
      assert.isTrue(bytes.includes(Buffer.from("deploy --key ***")), "no masked script: nothing was checked")
      assert.isTrue(bytes.includes(Buffer.from("using ***")), "no masked tail: nothing was checked")
      const rows = yield* raw(file, (sql) => sql<{ request: string }>`SELECT request FROM executions WHERE test_id = 'd'`)
      assert.deepStrictEqual(JSON.parse(rows[0]!.request).secretsMasked, ["DEPLOY_KEY"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("two stores on one file write concurrently without \"database is locked\"", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      // both open (and would migrate) the new file at the same time
      const [one, two] = yield* Effect.all([
        Layer.build(SqlStore.layer({ filename: file })),
        Layer.build(SqlStore.layer({ filename: file }))
      ], { concurrency: 2 })
      const events = (sessionId: string, startedAt: number) => {
        const list: Array<SessionEvent> = [
          Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c", workers: 2, startedAt })
        ]
        for (let i = 0; list.length < 200; i++) {
          list.push(Events.TestQueued({ test: request(`t${i}`), sha: "c", refName: "main", expectedMs: undefined }))
          list.push(Events.AttemptStarted({ testId: TestId.make(`t${i}`), n: 1, worker: i % 2, worktree: "/w", startedAt: startedAt + i, logPath: "/l" }))
        }
        return list
      }
      const write = (ctx: typeof one, sessionId: string, startedAt: number) =>
        Effect.provide(recordAll(sessionId, events(sessionId, startedAt)), ctx)
      yield* Effect.all([
        write(one, "20261124-0912-one0", T0),
        write(two, "20261124-0912-two0", T0 + 1)
      ], { concurrency: 2 })
      // each sees what the other wrote
      for (const ctx of [one, two]) {
        const list = yield* Effect.provide(Effect.flatMap(Store.Store, (store) => store.sessions(10)), ctx)
        assert.deepStrictEqual(list.map((x) => [x.id, x.total]), [["20261124-0912-two0", 100], ["20261124-0912-one0", 100]])
      }
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a long write transaction that yields does not lock out the other store of this process", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      const open = Effect.map(Layer.build(SqlStore.layer({ filename: file, busyTimeout: "500 millis" })), Context.get(Store.Store))
      const [one, two] = yield* Effect.all([open, open])
      for (const [store, sessionId] of [[one, "20261124-0912-big0"], [two, "20261124-0912-sml0"]] as const) {
        yield* store.record(sessionId, Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c", workers: 1, startedAt: T0 }))
        yield* store.record(sessionId, Events.TestQueued({ test: request("t"), sha: "c", refName: "main", expectedMs: undefined }))
      }
      // a result with many attempts is one transaction long enough for its fiber to yield
      const attempts = Array.from({ length: 300 }, (_, i) =>
        new Attempt({ n: i + 1, status: "FAILED", exitCode: 1, signal: null, worker: 0, worktree: "/w", startedAt: DateTime.unsafeMake(T0 + i), durationMs: 1, logPath: "/l", tail: "x" }))
      const big = new TestResult({ id: TestId.make("t"), name: "t", source: "t", ref: "main", status: "FAILED", durationMs: 300, attempts })
      const small = (i: number) => Events.RetryScheduled({ testId: TestId.make("t"), nextAttempt: i, delayMs: 1 })
      yield* Effect.all([
        one.record("20261124-0912-big0", Events.TestFinished({ result: big })),
        Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => two.record("20261124-0912-sml0", small(i)), { discard: true })
      ], { concurrency: 2 })
      const report = Option.getOrThrow(yield* two.report("20261124-0912-big0"))
      assert.strictEqual(report.tests[0]!.attempts.length, 300)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("another process holding the write lock makes a write wait (busy timeout), not fail", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      const patient = Context.get(yield* Layer.build(SqlStore.layer({ filename: file })), Store.Store)
      const hasty = Context.get(yield* Layer.build(SqlStore.layer({ filename: file, busyTimeout: "100 millis" })), Store.Store)
      yield* Effect.provideService(finishedSession("20261124-0912-bef0", T0, [["x", "PASSED", 1]]), Store.Store, patient)
      // a writer in another process: takes the write lock, says so, holds it a second, commits
      const holder = `${dir}/holder.ts`
      yield* fs.writeFileString(holder, [
        `import Database from "better-sqlite3"`,
        `const db = new Database(process.argv[2])`,
        `db.exec("BEGIN IMMEDIATE")`,
        `db.prepare("UPDATE sessions SET pid = 99").run()`,
        `process.stdout.write("locked\\n")`,
        `setTimeout(() => { db.exec("COMMIT"); db.close() }, 1000)`
      ].join("\n"))
      const proc = yield* Command.start(
        Command.make(`${packageRoot}/node_modules/.bin/vite-node`, holder, file).pipe(Command.workingDirectory(packageRoot))
      )
      const first = yield* proc.stdout.pipe(Stream.decodeText(), Stream.splitLines, Stream.take(1), Stream.runCollect)
      assert.deepStrictEqual(Chunk.toReadonlyArray(first), ["locked"])
      const start = (sessionId: string) =>
        Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c", workers: 1, startedAt: T0 + 1 })
      // with a short busy timeout the write gives up: a StoreError that says why, not a defect
      const error = yield* Effect.flip(hasty.record("20261124-0912-hst0", start("20261124-0912-hst0")))
      assert.strictEqual(error.reason, "Query")
      assert.include(error.message, "database is locked")
      assert.include(error.message, "try again")
      // with the default one it waits for the other process to commit
      yield* patient.record("20261124-0912-aft0", start("20261124-0912-aft0"))
      assert.strictEqual(yield* proc.exitCode, 0)
      const list = yield* patient.sessions(10)
      assert.deepStrictEqual(list.map((x) => [x.id, x.pid]), [["20261124-0912-aft0", 0], ["20261124-0912-bef0", 99]])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a process that migrates the file while this one waits for the lock: migrations run once", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/grove.db`
      // another grove, a step ahead: it holds the exclusive lock of a new file while it migrates
      const migrator = `${dir}/migrator.ts`
      yield* fs.writeFileString(migrator, [
        `import Database from "better-sqlite3"`,
        `const db = new Database(process.argv[2])`,
        `db.pragma("journal_mode = WAL")`,
        `db.exec("BEGIN EXCLUSIVE")`,
        `db.exec("CREATE TABLE sessions (id TEXT PRIMARY KEY)")`,
        `db.exec("PRAGMA user_version = ${SqlStore.schemaVersion}")`,
        `process.stdout.write("locked\\n")`,
        `setTimeout(() => { db.exec("COMMIT"); db.close() }, 1000)`
      ].join("\n"))
      const proc = yield* Command.start(
        Command.make(`${packageRoot}/node_modules/.bin/vite-node`, migrator, file).pipe(Command.workingDirectory(packageRoot))
      )
      const first = yield* proc.stdout.pipe(Stream.decodeText(), Stream.splitLines, Stream.take(1), Stream.runCollect)
      assert.deepStrictEqual(Chunk.toReadonlyArray(first), ["locked"])
      // this one reads version 0, waits for the exclusive lock, reads the version again and
      // finds nothing to do (migrating again would fail: "table sessions already exists")
      yield* Layer.build(SqlStore.layer({ filename: file }))
      assert.strictEqual(yield* proc.exitCode, 0)
      assert.strictEqual(yield* userVersion(file), SqlStore.schemaVersion)
      const tables = yield* raw(file, (sql) => sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`)
      assert.deepStrictEqual(tables.map((t) => t.name), ["sessions"])
    }).pipe(Effect.provide(NodeContext.layer)))
})
