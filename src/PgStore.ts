/**
 * The PostgreSQL store (SPEC §5, §10): one database shared by the grove processes of
 * many machines, so that a team's history (durations, flakiness) outlives throwaway CI
 * machines. Same tables, events and guarantees as the SQLite store, whose queries and
 * service it shares (`internal/sqlStore.ts`).
 *
 * Why it looks the way it does:
 * 1. The URL is checked before anything connects (`parseUrl`): a malformed one is refused
 *    with what to write instead. Its password never appears in a message (`redact`).
 * 2. Connecting waits at most `connectTimeout` (default 10 seconds): a refused or
 *    unreachable server is a `StoreError` naming the store, not a hang.
 * 3. The schema version is the row of `grove_schema`. It is read first without writing: a
 *    database with a newer schema is refused untouched. Migrations run in one transaction
 *    (PostgreSQL's DDL is transactional: a failed migration leaves nothing) holding
 *    `pg_advisory_xact_lock`, which reads the version again: two processes opening a new
 *    database at once migrate it once.
 * 4. Every write is a transaction that first takes the advisory lock of its session
 *    (`pg_advisory_xact_lock(grove, hashtext(session))`), so read-then-write (a test's
 *    queue position, the log's next number) is safe against another process writing the
 *    same session, while sessions of different processes write in parallel. Writes of one
 *    store also take its semaphore, so they commit in the order they were made, as with
 *    SQLite: a reader of "the events after N" never sees N + 2 before N + 1.
 * 5. Reads are `REPEATABLE READ, READ ONLY` transactions: a page of tests and their
 *    attempts come from one snapshot while others write.
 * 6. PostgreSQL's 64-bit integers (`BIGINT`, `COUNT`) arrive as numbers, not strings.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { StoreError } from "./GroveError.js"
import * as Shared from "./internal/sqlStore.js"
import { parseUrl, redact } from "./internal/sqlUrl.js"
import { type Environment, Store } from "./Store.js"

/**
 * The schema version this grove writes and understands (the row of `grove_schema`).
 *
 * @since 0.2.0
 * @category models
 */
export const schemaVersion = Shared.schemaVersion

const groveVersion = "0.1.0"

/** PostgreSQL's column types for the shared migrations */
const types: Shared.ColumnTypes = { int: "BIGINT", real: "DOUBLE PRECISION" }

/** the first key of grove's advisory locks ("grove" in ASCII); the second says what is locked */
const lockSpace = 0x67726f76
const migrationLock = 0

const defaultConnectTimeout: Duration.DurationInput = "10 seconds"

// -----------------------------------------------------------------------------
// the URL (checked without loading the driver: internal/sqlUrl.ts)
// -----------------------------------------------------------------------------

export {
  /**
   * @since 0.2.0
   * @category utils
   */
  isUrl,
  /**
   * @since 0.2.0
   * @category utils
   */
  parseUrl,
  /**
   * @since 0.2.0
   * @category utils
   */
  redact
} from "./internal/sqlUrl.js"

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

const messageOf = (cause: unknown): string => {
  const inner = cause instanceof Error && "cause" in cause && cause.cause instanceof Error ? cause.cause : cause
  if (inner instanceof AggregateError && inner.errors.length > 0) return messageOf(inner.errors[0])
  return inner instanceof Error ? inner.message || inner.constructor.name : String(inner)
}

const connectFailed = (url: string, cause: unknown, timeout: Duration.Duration) => {
  const why = messageOf(cause)
  return new StoreError({
    reason: "Open",
    detail: `could not connect to the store ${redact(url)}: ` +
      (/timed out|timeout/i.test(why) ? `no answer within ${Duration.format(timeout)}` : why) +
      "; check that PostgreSQL runs there and accepts this user and database, or pass --db with another store; " +
      "nothing was created",
    cause
  })
}

const schemaTooNew = (url: string, version: number) =>
  new StoreError({
    reason: "SchemaTooNew",
    detail: `the store ${redact(url)} has store schema version ${version}, but this grove (${groveVersion}) knows ` +
      `versions up to ${schemaVersion}: a newer grove wrote it. Upgrade grove to the version that wrote it (or newer), ` +
      "or pass --db with another store; nothing was written"
  })

const queryFailed = (url: string) => (what: string, cause: SqlError) =>
  new StoreError({
    reason: "Query",
    detail: `store ${redact(url)}: could not ${what}: ${messageOf(cause)}`,
    cause
  })

// -----------------------------------------------------------------------------
// opening
// -----------------------------------------------------------------------------

/**
 * grove's own queries return only text, integers, floats and booleans: 64-bit integers
 * (`BIGINT`, `COUNT`) and `NUMERIC` become numbers instead of pg's strings.
 */
const typeParsers = {
  getTypeParser: (oid: number) => {
    switch (oid) {
      case 16: // bool
        return (value: string) => value === "t"
      case 20: // int8
      case 21: // int2
      case 23: // int4
      case 26: // oid
      case 700: // float4
      case 701: // float8
      case 1700: // numeric
        return (value: string) => Number(value)
      default:
        return (value: string) => value
    }
  }
}

const storedVersion = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const [present] = yield* sql<{ readonly present: boolean }>`SELECT to_regclass('grove_schema') IS NOT NULL AS present`
    if (present?.present !== true) return 0
    const [row] = yield* sql<{ readonly version: number | null }>`SELECT MAX(version) AS version FROM grove_schema`
    return row?.version ?? 0
  })

/** reads the version without writing; migrates under the advisory lock when it is older */
const prepare = (sql: SqlClient.SqlClient, url: string): Effect.Effect<void, StoreError> =>
  Effect.gen(function*() {
    const seen = yield* storedVersion(sql)
    if (seen > schemaVersion) return yield* Effect.fail(schemaTooNew(url, seen))
    if (seen === schemaVersion) return
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${lockSpace}, ${migrationLock})`
      // another process may have migrated while this one waited for the lock
      yield* sql`CREATE TABLE IF NOT EXISTS grove_schema (version INTEGER NOT NULL)`
      const current = yield* storedVersion(sql)
      if (current > schemaVersion) return yield* Effect.fail(schemaTooNew(url, current))
      if (current === schemaVersion) return
      yield* Shared.migrate(sql, types, current, `store ${redact(url)}`)
      yield* sql`DELETE FROM grove_schema`
      yield* sql`INSERT INTO grove_schema (version) VALUES (${schemaVersion})`
    }))
  }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(queryFailed(url)("prepare the database", e))))

const dialect = (sql: SqlClient.SqlClient, url: string): Shared.Dialect => {
  const writes = Effect.unsafeMakeSemaphore(1)
  return {
    where: `store ${redact(url)}`,
    write: (sessionId, effect) =>
      writes.withPermits(1)(sql.withTransaction(Effect.zipRight(
        sql`SELECT pg_advisory_xact_lock(${lockSpace}, hashtext(${sessionId}))`,
        effect
      ))),
    read: (effect) =>
      sql.withTransaction(Effect.zipRight(sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`, effect)),
    noLimit: "LIMIT ALL",
    greatest: "GREATEST",
    isUniqueViolation: (e, table) => {
      const cause = e.cause as { readonly code?: unknown; readonly table?: unknown } | undefined
      return cause?.code === "23505" && cause.table === table
    },
    queryFailed: queryFailed(url)
  }
}

/**
 * The PostgreSQL store at `url` (`postgres://…` or `postgresql://…`): checks the URL,
 * connects (waiting at most `connectTimeout`, default 10 seconds), refuses a newer schema
 * without writing, migrates an older one under an advisory lock, and returns the
 * service. `maxConnections` (default 4) bounds this process's connections: many machines
 * share one server. `environment` is where secret values not in a test's `env` come from
 * (`StoreOptions`). The connections close with the layer's scope.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: {
  readonly url: string
  readonly connectTimeout?: Duration.DurationInput
  readonly maxConnections?: number
  readonly environment?: Environment | undefined
}): Layer.Layer<Store, StoreError> =>
  Layer.scoped(
    Store,
    Effect.gen(function*() {
      const url = options.url
      yield* parseUrl(url)
      const timeout = Duration.decode(options.connectTimeout ?? defaultConnectTimeout)
      const context = yield* Layer.build(PgClient.layer({
        url: Redacted.make(url),
        connectTimeout: timeout,
        maxConnections: options.maxConnections ?? 4,
        applicationName: "grove",
        types: typeParsers
      })).pipe(
        Effect.catchAllDefect((cause) => Effect.fail(connectFailed(url, cause, timeout))),
        Effect.catchTag("SqlError", (cause) => Effect.fail(connectFailed(url, cause, timeout)))
      )
      const sql = Context.get(context, SqlClient.SqlClient)
      yield* prepare(sql, url)
      return Shared.makeWith(sql, dialect(sql, url), options.environment ?? process.env)
    })
  )
