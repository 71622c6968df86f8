/**
 * Whether a session's owner lives is host + heartbeat once machines share a store
 * (SPEC §10), end to end with the built binary: two "hosts" (`GROVE_HOST`) on one
 * store, SQLite and — when `GROVE_TEST_PG_URL` is set — PostgreSQL. A session run by
 * a live grove on host-a is refused by `--resume` on host-b (naming host, pid and
 * heartbeat age), kept by `gc`, and cannot be cancelled or deleted from a grove serve
 * there; with host-a's grove killed but its heartbeat fresh it is still refused (a
 * pid means nothing across hosts); once the heartbeat is stale it resumes, leaving
 * host-a's processes to host-a. On one host the pid decides, as before.
 * Run `npm run build` first.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Cli from "./support/cli.js"
import * as Pg from "./support/postgres.js"
import { makeEmptyRepo } from "./support/repo.js"

const show = (o: Cli.Outcome) => `exit ${o.code}\nstdout:\n${o.stdout}\nstderr:\n${o.stderr}`

/** a store the grove processes share: its `--db` value, and a client to look at its rows */
interface Shared {
  readonly db: string
  readonly sql: SqlClient.SqlClient
}

const sqliteStore = (dir: string): Effect.Effect<Shared, never, Scope.Scope> => {
  const db = NodePath.join(dir, "shared.db")
  return Effect.map(
    Layer.build(SqliteClient.layer({ filename: db })).pipe(Effect.orDie),
    (context) => ({ db, sql: Context.get(context, SqliteClient.SqliteClient) })
  )
}

const pgStore = (url: string) => (_dir: string): Effect.Effect<Shared, never, Scope.Scope> =>
  Effect.flatMap(Pg.freshDatabase(url), (db) => Effect.map(Pg.client(db), (sql) => ({ db, sql })))

/** the test waits for GROVE_TEST_GO: without it (host-a's run) it sleeps */
const waitingPlan = Cli.plan({ front: "retries: 0", title: "waits", steps: ['test -n "$GROVE_TEST_GO" || sleep 300'] })

const kill = (pids: ReadonlyArray<number>) =>
  Effect.sync(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // gone already
      }
    }
  })

/** grove on host-a running the waiting plan, its attempt started; its processes are killed with the scope */
const ownerOnHostA = (root: string, db: string) =>
  Effect.gen(function*() {
    const a = yield* Cli.spawn(["run", "plans/wait.md", "--db", db], { cwd: root, env: { GROVE_HOST: "host-a" } })
    yield* Cli.waitFor("host-a's session line", Effect.sync(() => Cli.sessionId(a.stdout()) !== undefined), {
      within: "60 seconds",
      context: () => a.stderr()
    })
    const id = Cli.sessionId(a.stdout())!
    const entry = `GROVE_SESSION=${id}`
    yield* Effect.addFinalizer(() => Effect.flatMap(Cli.processesWithEnv(entry), (ps) => kill(ps.map((p) => p.pid))))
    yield* Cli.waitFor("host-a's attempt to run", Effect.map(Cli.processesWithEnv(entry), (ps) => ps.some((p) => p.cmdline.includes("sleep 300"))))
    return { a, id, entry }
  })

const scenarios = (name: string, store: (dir: string) => Effect.Effect<Shared, never, Scope.Scope>) =>
  describe(`two hosts on one store (${name})`, () => {
    const live = (title: string, body: Effect.Effect<void, unknown, Scope.Scope | NodeContext.NodeContext>) =>
      it.scopedLive(title, () => body.pipe(Effect.provide(NodeContext.layer)), 180_000)

    live("a live owner on host-a: --resume, gc, cancel and delete from host-b refuse; killed, with a fresh heartbeat, still refused; stale, it resumes on host-b", Effect.gen(function*() {
      const repo = yield* makeEmptyRepo("grove-hosts-")
      const { db, sql } = yield* store(repo.dir)
      yield* Cli.writeFiles(repo.root, { "plans/wait.md": waitingPlan })
      const onHost = (host: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
        Cli.run([...args, "--db", db], { cwd: repo.root, env: { GROVE_HOST: host, ...env } })

      const { a, id, entry } = yield* ownerOnHostA(repo.root, db)
      // (the test's PostgreSQL client reads BIGINT as text)
      const [row] = yield* sql<{ host: string; pid: number | string }>`SELECT host, pid FROM sessions WHERE id = ${id}`
      assert.deepStrictEqual([row?.host, Number(row?.pid)], ["host-a", a.pid])

      // --resume from host-b: refused, naming the owner's host, pid and heartbeat age
      const refused = yield* onHost("host-b", ["run", "--resume", id], { GROVE_TEST_GO: "1" })
      assert.strictEqual(refused.code, 2, show(refused))
      assert.include(refused.stderr, `session ${id} is still running in grove process ${a.pid} on host-a (last heartbeat `)
      assert.include(refused.stderr, "on that host")

      // grove sessions on host-b: host-a's, not resumable
      const listed = (yield* onHost("host-b", ["sessions", "--json"]))
      assert.deepInclude(JSON.parse(listed.stdout)[0], { id, status: "RUNNING", host: "host-a", pid: a.pid, resumable: false })

      // gc from host-b keeps it
      const gc = yield* onHost("host-b", ["gc", "--keep", "0", "--json"])
      assert.strictEqual(gc.code, 0, show(gc))
      assert.deepInclude(JSON.parse(gc.stdout), { deleted: [], stillRunning: [id] })

      // a grove serve on host-b can neither cancel nor delete it
      const served = yield* Cli.startServe(repo.root, ["--db", db, "--token", "hosts-test-token-0123456789"], { GROVE_HOST: "host-b" })
      const call = (method: string, path: string) =>
        Effect.promise(() =>
          fetch(`${served.base}/api/v1${path}`, {
            method,
            headers: { authorization: "Bearer hosts-test-token-0123456789", "content-type": "application/json" },
            ...(method === "POST" ? { body: "{}" } : {})
          }).then(async (r) => ({ status: r.status, body: await r.json() as Record<string, unknown> }))
        )
      const cancel = yield* call("POST", `/sessions/${id}/cancel`)
      assert.strictEqual(cancel.status, 409, JSON.stringify(cancel.body))
      assert.deepInclude(cancel.body, { _tag: "SessionOwnedElsewhere", sessionId: id, pid: a.pid, host: "host-a" })
      assert.include(cancel.body.message as string, "cannot be cancelled from here")
      assert.include(cancel.body.message as string, `kill -INT ${a.pid} on that host`)
      const deleted = yield* call("DELETE", `/sessions/${id}`)
      assert.strictEqual(deleted.status, 409, JSON.stringify(deleted.body))
      assert.deepInclude(deleted.body, { _tag: "SessionRunning", pid: a.pid, host: "host-a" })
      yield* served.process.kill("SIGTERM")
      yield* served.process.exit

      // host-a's grove dies without a word; its heartbeat is fresh: a pid on host-b says
      // nothing of a process on host-a, so the session is still taken as running
      yield* a.kill("SIGKILL")
      yield* a.exit
      yield* sql`UPDATE sessions SET heartbeat_at = ${Date.now()} WHERE id = ${id}`
      const still = yield* onHost("host-b", ["run", "--resume", id], { GROVE_TEST_GO: "1" })
      assert.strictEqual(still.code, 2, show(still))
      assert.include(still.stderr, `grove process ${a.pid} on host-a (last heartbeat `)

      // a minute later its heartbeat is stale: host-b resumes and finishes it
      yield* sql`UPDATE sessions SET heartbeat_at = heartbeat_at - 60000 WHERE id = ${id}`
      const stale = (yield* onHost("host-b", ["sessions", "--json"]))
      assert.deepInclude(JSON.parse(stale.stdout)[0], { id, status: "RUNNING", host: "host-a", resumable: true })
      const resumed = yield* onHost("host-b", ["run", "--resume", id], { GROVE_TEST_GO: "1" })
      assert.strictEqual(resumed.code, 0, show(resumed))
      assert.include(resumed.stderr + resumed.stdout, `resuming session ${id}`)
      const [after] = yield* sql<{ status: string; host: string; heartbeat_at: number | null }>`
        SELECT status, host, heartbeat_at FROM sessions WHERE id = ${id}`
      assert.deepInclude(after, { status: "COMPLETE", host: "host-b" })
      assert.isNotNull(after!.heartbeat_at)
      // what host-a's grove left running there is host-a's to reap: host-b did not signal it
      assert.isTrue(
        (yield* Cli.processesWithEnv(entry)).some((p) => p.cmdline.includes("sleep 300")),
        "host-b killed a process recorded on host-a"
      )
    }))

    live("on one host the pid decides: a killed owner with a fresh heartbeat is resumed there", Effect.gen(function*() {
      const repo = yield* makeEmptyRepo("grove-hosts-")
      const { db, sql } = yield* store(repo.dir)
      yield* Cli.writeFiles(repo.root, { "plans/wait.md": waitingPlan })
      const { a, id, entry } = yield* ownerOnHostA(repo.root, db)
      yield* a.kill("SIGKILL")
      yield* a.exit
      // its heartbeat fresh, far from stale: the dead pid alone makes it resumable here
      yield* sql`UPDATE sessions SET heartbeat_at = ${Date.now() + 3_600_000} WHERE id = ${id}`
      const resumed = yield* Cli.run(["run", "--resume", id, "--db", db], { cwd: repo.root, env: { GROVE_HOST: "host-a", GROVE_TEST_GO: "1" } })
      assert.strictEqual(resumed.code, 0, show(resumed))
      // on its own host, what the dead run left running is reaped
      assert.include(resumed.stderr + resumed.stdout, "terminated")
      assert.deepStrictEqual((yield* Cli.processesWithEnv(entry)).filter((p) => p.cmdline.includes("sleep 300")), [])
      assert.isFalse(Fs.existsSync(NodePath.join(repo.dir, "repo.grove", id)), "its worktrees are gone")
    }))
  })

scenarios("SQLite", sqliteStore)

Pg.describePg("two hosts on one PostgreSQL store", (url) => scenarios("PostgreSQL", pgStore(url)))
