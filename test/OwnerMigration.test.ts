/**
 * Store schema 4 (a session's owner host and heartbeat) migrates a schema-3 store in
 * place, SQLite and — when `GROVE_TEST_PG_URL` is set — PostgreSQL: the data is
 * kept, the old sessions read as unknown host and no heartbeat (so only the pid on
 * this host says whether their owner lives), and new sessions record both.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as PgStore from "../src/PgStore.js"
import * as SqlStore from "../src/SqlStore.js"
import * as Store from "../src/Store.js"
import * as Pg from "./support/postgres.js"
import { recordAll, scenario } from "./StoreSuite.js"

const OLD = "20261124-0912-old3"
const NEW = "20261124-0913-new4"

/**
 * The check both backends share: `open` opens the store (migrating it), `raw` is a
 * connection behind its back, `toVersion3` turns the current schema back into schema 3.
 */
const migratesInPlace = <R>(
  open: Effect.Effect<Store.Store["Type"], unknown, Scope.Scope | R>,
  raw: SqlClient.SqlClient,
  toVersion3: Effect.Effect<void, unknown>,
  version: Effect.Effect<number, unknown>
) =>
  Effect.gen(function*() {
    const s = scenario(OLD)
    // a store as a grove of schema 3 left it: a session in flight, its owner a pid only
    yield* Effect.scoped(Effect.flatMap(open, (store) => Effect.provideService(recordAll(OLD, s.inFlight, s.meta), Store.Store, store)))
    yield* toVersion3
    assert.strictEqual(yield* version, 3)

    const store = yield* open
    assert.strictEqual(yield* version, 4)
    assert.deepStrictEqual(yield* store.owner(OLD), { sessionId: OLD, status: "RUNNING", host: undefined, pid: 4242, heartbeatAt: undefined })
    // no beat counts for an owner whose host the store does not know
    assert.isFalse(yield* store.heartbeat(OLD, { host: "ci-1", pid: 4242, at: 1 }))
    assert.deepStrictEqual((yield* store.pending(OLD)).map((p) => p.request.id), ["a", "c"])

    // a session after the migration records its owner, and the old one finishes as before
    const n = scenario(NEW)
    yield* store.record(NEW, n.inFlight[0]!, { meta: { ...n.meta, host: "ci-1", heartbeatAt: 5 } })
    assert.isTrue(yield* store.heartbeat(NEW, { host: "ci-1", pid: 4242, at: 10 }))
    assert.deepInclude(yield* store.owner(NEW), { host: "ci-1", heartbeatAt: 10 })
    yield* Effect.provideService(recordAll(OLD, s.rest), Store.Store, store)
    assert.strictEqual(Option.getOrThrow(yield* store.report(OLD)).session.status, "PARTIAL_SUCCESS")
    const columns = yield* raw<{ host: string | null }>`SELECT host FROM sessions ORDER BY id`
    assert.deepStrictEqual(columns.map((c) => c.host), [null, "ci-1"])
  })

describe("store schema 4 (SQLite)", () => {
  it.scoped("a schema-3 file is migrated in place: rows kept, old sessions with unknown host and no heartbeat", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const file = `${yield* fs.makeTempDirectoryScoped()}/grove.db`
      const open = Effect.map(Layer.build(SqlStore.layer({ filename: file })), Context.get(Store.Store))
      // open the file first, so the raw connection sees a database
      yield* Effect.scoped(open)
      const raw = Context.get(yield* Layer.build(SqliteClient.layer({ filename: file })), SqliteClient.SqliteClient)
      yield* migratesInPlace(
        open,
        raw,
        Effect.all([
          raw`ALTER TABLE sessions DROP COLUMN host`,
          raw`ALTER TABLE sessions DROP COLUMN heartbeat_at`,
          raw.unsafe("PRAGMA user_version = 3")
        ], { discard: true }),
        Effect.map(raw<{ user_version: number }>`PRAGMA user_version`, (r) => r[0]!.user_version)
      )
    }).pipe(Effect.provide(NodeContext.layer)))
})

Pg.describePg("store schema 4 (PostgreSQL)", (url) => {
  it.scoped("a schema-3 database is migrated in place: rows kept, old sessions with unknown host and no heartbeat", () =>
    Effect.gen(function*() {
      const db = yield* Pg.freshDatabase(url)
      const raw = yield* Pg.client(db)
      const open = Effect.map(Layer.build(PgStore.layer({ url: db })), Context.get(Store.Store))
      yield* migratesInPlace(
        open,
        raw,
        Effect.all([
          raw`ALTER TABLE sessions DROP COLUMN host`,
          raw`ALTER TABLE sessions DROP COLUMN heartbeat_at`,
          raw`UPDATE grove_schema SET version = 3`
        ], { discard: true }),
        Effect.map(raw<{ version: number | string }>`SELECT MAX(version) AS version FROM grove_schema`, (r) => Number(r[0]!.version))
      )
    }))
})
