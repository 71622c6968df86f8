/**
 * The SQLite store (SPEC §5): one file, shared by every grove process of a
 * repository, written as events happen.
 *
 * Why it looks the way it does:
 * 1. The file is inspected read-only before SQLite opens it. Opening switches a
 *    database to WAL and creates `-wal`/`-shm` files; a file that is not SQLite, or
 *    whose schema is newer than this grove knows, is refused with its bytes untouched.
 * 2. Every connection sets `busy_timeout`, `foreign_keys`, `synchronous` and `cache_size`
 *    when it opens.
 * 3. The schema version is `PRAGMA user_version`. Migrations run in a
 *    `BEGIN EXCLUSIVE` transaction that reads the version again, so two processes
 *    opening a new file at once migrate it once.
 * 4. Every write is a `BEGIN IMMEDIATE` transaction: it takes the write lock before it
 *    reads, so a concurrent writer makes it wait (busy timeout) instead of failing
 *    with SQLITE_BUSY when a deferred transaction tries to upgrade its read lock.
 * 5. better-sqlite3 is synchronous: while SQLite waits for a lock, the whole thread
 *    waits. With two connections to one file in one process, a fiber that yields inside
 *    its write transaction cannot resume while the other connection blocks the thread
 *    in the busy handler: the other write fails with "database is locked" after the
 *    busy timeout (seen with an `Effect.yieldNow()` in the transaction). So writes of
 *    one process to one file also take a per-file semaphore; other processes are
 *    SQLite's business. A ROLLBACK after a failed BEGIN is not a defect either.
 * 6. The tables, queries and the service itself are shared with the PostgreSQL store
 *    (`internal/sqlStore.ts`); this module opens the file, migrates it, and hands over
 *    the SQLite dialect (the transactions above, `LIMIT -1`, `MAX`, its error texts).
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { StoreError } from "./GroveError.js"
import * as Shared from "./internal/sqlStore.js"
import { type Environment, Store } from "./Store.js"

/**
 * The schema version this grove writes and understands (`PRAGMA user_version`).
 *
 * @since 0.1.0
 * @category models
 */
export const schemaVersion = Shared.schemaVersion

const groveVersion = "0.1.0"

/** how long a connection waits for another one's lock, by default */
const defaultBusyTimeout: Duration.DurationInput = "10 seconds"

/** SQLite's column types: the migrations as they always were */
const types: Shared.ColumnTypes = { int: "INTEGER", real: "REAL" }

// -----------------------------------------------------------------------------
// locks and transactions
// -----------------------------------------------------------------------------

const fileLocks = new Map<string, Effect.Semaphore>()

/** one semaphore per database file of this process (see point 5 above) */
const lockFor = (filename: string): Effect.Semaphore => {
  if (filename === "" || filename === ":memory:" || filename.startsWith("file:")) return Effect.unsafeMakeSemaphore(1)
  const existing = fileLocks.get(filename)
  if (existing !== undefined) return existing
  const made = Effect.unsafeMakeSemaphore(1)
  fileLocks.set(filename, made)
  return made
}

const transaction = (sql: SqlClient.SqlClient, begin: string) =>
  SqlClient.makeWithTransaction({
    transactionTag: SqlClient.TransactionConnection,
    spanAttributes: [],
    acquireConnection: Effect.flatMap(
      Scope.make(),
      (scope) => Effect.map(Scope.extend(sql.reserve, scope), (conn) => [scope, conn] as const)
    ),
    begin: (conn) => conn.executeUnprepared(begin, [], undefined),
    savepoint: (conn, id) => conn.executeUnprepared(`SAVEPOINT grove_${id}`, [], undefined),
    commit: (conn) => conn.executeUnprepared("COMMIT", [], undefined),
    // when BEGIN itself failed (e.g. SQLITE_BUSY) there is nothing to roll back: the
    // BEGIN's error is the one to report, not a defect from ROLLBACK
    rollback: (conn) =>
      conn.executeUnprepared("ROLLBACK", [], undefined).pipe(
        Effect.catchIf(
          (e) => e.cause instanceof Error && /no transaction is active/.test(e.cause.message),
          () => Effect.succeed([])
        )
      ),
    rollbackSavepoint: (conn, id) => conn.executeUnprepared(`ROLLBACK TO SAVEPOINT grove_${id}`, [], undefined)
  })

const queryFailed = (where: string, what: string, busyTimeout: Duration.Duration) => (cause: SqlError) => {
  const inner = cause.cause instanceof Error ? cause.cause.message : undefined
  return new StoreError({
    reason: "Query",
    detail: `${where}: could not ${what}: ${inner ?? cause.message}` +
      (inner !== undefined && /locked|busy/i.test(inner)
        ? ` (another process held the database for more than ${Duration.format(busyTimeout)}; try again)`
        : ""),
    cause
  })
}

// -----------------------------------------------------------------------------
// opening
// -----------------------------------------------------------------------------

const header = new TextEncoder().encode("SQLite format 3\u0000")

const notADatabase = (filename: string, why: string) =>
  new StoreError({
    reason: "NotADatabase",
    detail: `${filename} is not an SQLite database (${why}), so grove cannot keep its sessions there; ` +
      "the file was left untouched. Pass --db with another file, or move this one away."
  })

const schemaTooNew = (filename: string, version: number) =>
  new StoreError({
    reason: "SchemaTooNew",
    detail: `${filename} has store schema version ${version}, but this grove (${groveVersion}) knows versions ` +
      `up to ${schemaVersion}: a newer grove wrote it. Upgrade grove to the version that wrote it (or newer), ` +
      "or pass --db with another file; the file was left untouched."
  })

const openFailed = (filename: string, what: string, cause: unknown) =>
  new StoreError({
    reason: "Open",
    detail: `could not open the store ${filename}: ${what}` +
      (cause instanceof Error ? `: ${cause.message}` : "") +
      "; check the path and its permissions, or pass --db with another file",
    cause
  })

/**
 * Looks at an existing store file without writing anything: it must be empty or an
 * SQLite database whose `user_version` (header offset 60, big endian) this grove knows.
 *
 * @since 0.1.0
 * @category utils
 */
export const inspect = (filename: string): Effect.Effect<void, StoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const info = yield* fs.stat(filename).pipe(
      Effect.map(Option.some),
      Effect.catchIf(
        (e) => e._tag === "SystemError" && e.reason === "NotFound",
        () => Effect.succeed(Option.none())
      ),
      Effect.mapError((cause) => openFailed(filename, "cannot look at the file", cause))
    )
    if (Option.isNone(info)) return
    if (info.value.type !== "File") return yield* Effect.fail(notADatabase(filename, `it is a ${info.value.type}`))
    if (info.value.size === FileSystem.Size(0)) return // SQLite treats an empty file as an empty database
    const bytes = yield* Effect.scoped(
      Effect.flatMap(fs.open(filename, { flag: "r" }), (file) => file.readAlloc(FileSystem.Size(100)))
    ).pipe(
      Effect.map(Option.getOrElse(() => new Uint8Array(0))),
      Effect.mapError((cause) => openFailed(filename, "cannot read the file", cause))
    )
    if (bytes.length < 100 || header.some((b, i) => bytes[i] !== b)) {
      return yield* Effect.fail(notADatabase(filename, "its first bytes are not an SQLite header"))
    }
    const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getInt32(60, false)
    if (version > schemaVersion) return yield* Effect.fail(schemaTooNew(filename, version))
  })

const userVersion = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ readonly user_version: number }>`PRAGMA user_version`, (rows) => rows[0]?.user_version ?? 0)

/** pragmas of the connection, then migrations under an exclusive lock */
const prepare = (
  sql: SqlClient.SqlClient,
  filename: string,
  busyTimeout: Duration.Duration
): Effect.Effect<void, StoreError> =>
  Effect.gen(function*() {
    yield* sql.unsafe(`PRAGMA busy_timeout = ${Math.max(0, Math.round(Duration.toMillis(busyTimeout)))}`)
    yield* sql.unsafe("PRAGMA foreign_keys = ON")
    // with WAL, NORMAL keeps every committed transaction through a crash of the process
    yield* sql.unsafe("PRAGMA synchronous = NORMAL")
    // SQLite's own default page cache (2 MB), not better-sqlite3's 16 MB: grove appends
    // and reads by key, with the OS's file cache behind it, and the larger cache filled
    // with the pages a long session wrote (≈ 14 MiB more resident memory, no faster)
    yield* sql.unsafe("PRAGMA cache_size = -2000")
    const seen = yield* userVersion(sql)
    if (seen > schemaVersion) return yield* Effect.fail(schemaTooNew(filename, seen))
    if (seen === schemaVersion) return
    yield* transaction(sql, "BEGIN EXCLUSIVE")(Effect.gen(function*() {
      const current = yield* userVersion(sql) // another process may have migrated meanwhile
      if (current > schemaVersion) return yield* Effect.fail(schemaTooNew(filename, current))
      yield* Shared.migrate(sql, types, current, `store ${filename}`)
      if (current < schemaVersion) yield* sql.unsafe(`PRAGMA user_version = ${schemaVersion}`)
    }))
  }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(queryFailed(`store ${filename}`, "prepare the database", busyTimeout)(e))))


const dialect = (
  sql: SqlClient.SqlClient,
  filename: string,
  lock: Effect.Semaphore,
  busyTimeout: Duration.Duration
): Shared.Dialect => {
  const immediate = transaction(sql, "BEGIN IMMEDIATE")
  return {
    where: `store ${filename}`,
    write: (_sessionId, effect) => lock.withPermits(1)(immediate(effect)),
    read: sql.withTransaction,
    noLimit: "LIMIT -1",
    greatest: "MAX",
    isUniqueViolation: (e, table) =>
      e.cause instanceof Error && e.cause.message.includes(`UNIQUE constraint failed: ${table}`),
    queryFailed: (what, cause) => queryFailed(`store ${filename}`, what, busyTimeout)(cause)
  }
}


/**
 * The store over an SQLite client: sets the connection's pragmas, migrates the
 * schema under an exclusive lock (refusing a newer one), and returns the service.
 * The file itself is not inspected here: `layer` does that before opening it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Context.Tag.Service<Store>, StoreError, SqliteClient.SqliteClient> = Effect.gen(
  function*() {
    const client = yield* SqliteClient.SqliteClient
    const filename = client.config.filename
    const lock = lockFor(filename)
    const busyTimeout = Duration.decode(defaultBusyTimeout)
    yield* lock.withPermits(1)(prepare(client, filename, busyTimeout))
    return Shared.makeWith(client, dialect(client, filename, lock, busyTimeout), process.env)
  }
)

/**
 * The SQLite store in `filename` (its folder is created): inspects the file
 * read-only first (`NotADatabase`, `SchemaTooNew`, nothing written), then opens it
 * and migrates it. `busyTimeout` (default 10 seconds) is how long a write waits for
 * another process's lock before it fails; `environment` is where secret values not in a
 * test's `env` come from (`StoreOptions`). The connection closes with the layer's scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: {
  readonly filename: string
  readonly busyTimeout?: Duration.DurationInput
  readonly environment?: Environment | undefined
}): Layer.Layer<Store, StoreError, FileSystem.FileSystem | Path.Path> =>
  Layer.scoped(
    Store,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const filename = options.filename === ":memory:" ? options.filename : path.resolve(options.filename)
      const lock = lockFor(filename)
      const busyTimeout = Duration.decode(options.busyTimeout ?? defaultBusyTimeout)
      return yield* lock.withPermits(1)(Effect.gen(function*() {
        if (filename !== ":memory:") {
          yield* inspect(filename)
          yield* fs.makeDirectory(path.dirname(filename), { recursive: true }).pipe(
            Effect.mapError((cause) => openFailed(filename, `cannot create its folder ${path.dirname(filename)}`, cause))
          )
        }
        const context = yield* Layer.build(SqliteClient.layer({ filename })).pipe(
          Effect.catchAllDefect((cause) => Effect.fail(openFailed(filename, "SQLite refused it", cause))),
          Effect.catchTag("ConfigError", (cause) => Effect.fail(openFailed(filename, "bad configuration", cause)))
        )
        const client = Context.get(context, SqliteClient.SqliteClient)
        yield* prepare(client, filename, busyTimeout)
        return Shared.makeWith(client, dialect(client, filename, lock, busyTimeout), options.environment ?? process.env)
      }))
    })
  )
