/**
 * The SQLite store (SPEC §5): one file, shared by every grove process of a
 * repository, written as events happen.
 *
 * Why it looks the way it does:
 * 1. The file is inspected read-only before SQLite opens it. Opening switches a
 *    database to WAL and creates `-wal`/`-shm` files; a file that is not SQLite, or
 *    whose schema is newer than this grove knows, is refused with its bytes untouched.
 * 2. Every connection sets `busy_timeout`, `foreign_keys` and `synchronous` when it opens.
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
import { Events, isTerminal, type SessionEvent, type SessionStatus, type TestId, type TestStatus } from "./Domain.js"
import { StoreError } from "./GroveError.js"
import * as SessionState from "./SessionState.js"
import {
  type AttemptRow,
  attemptRow,
  decodePayload,
  decodeRequest,
  type Environment,
  eventPayload,
  type ExecutionRow,
  historyOf,
  loadReport,
  type QueuedResult,
  type RecordOptions,
  resultOf,
  seqTaken,
  testIdOf,
  type PendingTest,
  pendingTest,
  type RecordMeta,
  secretValues,
  type SessionRow,
  type SessionSummary,
  Store,
  storedRequest,
  type TestHistory,
  type TestsQuery,
  unknownSession,
  unknownTest
} from "./Store.js"

/**
 * The schema version this grove writes and understands (`PRAGMA user_version`).
 *
 * @since 0.1.0
 * @category models
 */
export const schemaVersion = 3

const groveVersion = "0.1.0"

/** how long a connection waits for another one's lock, by default */
const defaultBusyTimeout: Duration.DurationInput = "10 seconds"

/**
 * Migrations by the version they bring the schema to, one statement each.
 * Never edit a released one: add the next version.
 */
const migrations: ReadonlyArray<readonly [version: number, statements: ReadonlyArray<string>]> = [
  [1, [
    `CREATE TABLE sessions (
      id TEXT PRIMARY KEY,
      status TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      completed_at INTEGER,
      duration_ms INTEGER,
      base_ref TEXT NOT NULL,
      base_sha TEXT NOT NULL,
      workers INTEGER NOT NULL,
      repo_root TEXT NOT NULL,
      pid INTEGER NOT NULL,
      config TEXT NOT NULL,
      total INTEGER,
      passed INTEGER,
      flaky INTEGER,
      failed INTEGER,
      timed_out INTEGER,
      error INTEGER,
      cancelled INTEGER,
      success_rate REAL
    )`,
    `CREATE INDEX sessions_by_start ON sessions (started_at, id)`,
    `CREATE INDEX sessions_by_repo ON sessions (repo_root, started_at)`,
    `CREATE TABLE executions (
      session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
      test_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      name TEXT NOT NULL,
      source TEXT NOT NULL,
      ref_name TEXT NOT NULL,
      sha TEXT NOT NULL,
      status TEXT NOT NULL,
      request TEXT,
      priority INTEGER NOT NULL,
      expected_ms INTEGER,
      duration_ms INTEGER,
      flakiness REAL,
      kept_worktree TEXT,
      PRIMARY KEY (session_id, test_id)
    )`,
    `CREATE INDEX executions_by_test ON executions (test_id)`,
    `CREATE TABLE attempts (
      session_id TEXT NOT NULL,
      test_id TEXT NOT NULL,
      n INTEGER NOT NULL,
      status TEXT NOT NULL,
      exit_code INTEGER,
      signal TEXT,
      worker INTEGER NOT NULL,
      worktree TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      duration_ms INTEGER,
      log_path TEXT NOT NULL,
      tail TEXT,
      message TEXT,
      pgid INTEGER,
      process_start_time TEXT,
      PRIMARY KEY (session_id, test_id, n),
      FOREIGN KEY (session_id, test_id) REFERENCES executions (session_id, test_id) ON DELETE CASCADE
    )`
  ]],
  // a new test's seq is the session's last + 1: without this index every insert scanned
  // the session's executions, O(n²) in a session (issue 6, B1)
  [2, [`CREATE INDEX executions_by_seq ON executions (session_id, seq)`]],
  // the event log (SPEC §5): the rows above are projected from it in the same transaction
  [3, [`CREATE TABLE events (
      session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
      seq INTEGER NOT NULL,
      tag TEXT NOT NULL,
      payload TEXT NOT NULL,
      PRIMARY KEY (session_id, seq)
    )`]]
]

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
    const seen = yield* userVersion(sql)
    if (seen > schemaVersion) return yield* Effect.fail(schemaTooNew(filename, seen))
    if (seen === schemaVersion) return
    yield* transaction(sql, "BEGIN EXCLUSIVE")(Effect.gen(function*() {
      const current = yield* userVersion(sql) // another process may have migrated meanwhile
      if (current > schemaVersion) return yield* Effect.fail(schemaTooNew(filename, current))
      for (const [version, statements] of migrations) {
        if (version <= current) continue
        for (const statement of statements) yield* sql.unsafe(statement)
        if (version === 3) yield* backfillEvents(sql, filename)
      }
      if (current < schemaVersion) yield* sql.unsafe(`PRAGMA user_version = ${schemaVersion}`)
    }))
  }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(queryFailed(`store ${filename}`, "prepare the database", busyTimeout)(e))))

/**
 * Schema 3 brings the event log. Sessions recorded before it get the events their rows
 * say — it started; each test was queued (when its request was kept) and its attempts
 * ran, or it finished; it ended — so that every session folds the same way.
 */
const backfillEvents = (sql: SqlClient.SqlClient, filename: string): Effect.Effect<void, SqlError | StoreError> =>
  Effect.gen(function*() {
    const where = `store ${filename}`
    const sessions = yield* sql<SessionRecord>`SELECT * FROM sessions ORDER BY started_at, id`
    for (const record of sessions) {
      const session = sessionRow(record)
      const executions = (yield* sql<ExecutionRecord>`SELECT * FROM executions WHERE session_id = ${session.id} ORDER BY seq`)
        .map(executionRow)
      const attempts = (yield* sql<AttemptRecord>`SELECT * FROM attempts WHERE session_id = ${session.id} ORDER BY test_id, n`)
        .map(attemptRowOf)
      const byTest = new Map<string, Array<AttemptRow>>()
      for (const a of attempts) byTest.set(a.testId, [...(byTest.get(a.testId) ?? []), a])
      const events: Array<SessionEvent> = [Events.SessionStarted({
        sessionId: session.id,
        baseRef: session.baseRef,
        baseSha: session.baseSha,
        workers: session.workers,
        startedAt: session.startedAt
      })]
      for (const execution of executions) {
        const rows = byTest.get(execution.testId) ?? []
        const result = resultOf(execution, rows)
        if (isTerminal(execution.status)) {
          events.push(Events.TestFinished({ result }))
          continue
        }
        const request = execution.request === null ? undefined : yield* Effect.option(decodeRequest(execution.request))
        if (request !== undefined && request._tag === "Some") {
          events.push(Events.TestQueued({
            test: request.value,
            sha: execution.sha,
            refName: execution.refName,
            expectedMs: execution.expectedMs ?? undefined
          }))
        }
        for (const attempt of result.attempts) {
          events.push(Events.AttemptStarted({
            testId: result.id,
            n: attempt.n,
            worker: attempt.worker,
            worktree: attempt.worktree,
            startedAt: attempt.startedAt.epochMillis,
            logPath: attempt.logPath
          }))
          if (attempt.status !== "RUNNING") events.push(Events.AttemptFinished({ testId: result.id, attempt }))
        }
      }
      if (session.status !== "RUNNING" && session.completedAt !== null) {
        // the counts it ends with are the fold's of the events above
        const { counts } = events.reduce(SessionState.applyEvent, SessionState.initial(session.id))
        events.push(Events.SessionFinished({ status: session.status, completedAt: session.completedAt, counts }))
      }
      let seq = 0
      for (const event of events) {
        const payload = yield* eventPayload(event, [], {}).pipe(
          Effect.mapError((cause) =>
            new StoreError({ reason: "Query", detail: `${where}: could not write the events of session ${session.id}: ${cause.message}`, cause })
          )
        )
        seq++
        yield* sql`INSERT INTO events (session_id, seq, tag, payload) VALUES (${session.id}, ${seq}, ${event._tag}, ${payload})`
      }
    }
  })

// -----------------------------------------------------------------------------
// rows
// -----------------------------------------------------------------------------

interface SessionRecord {
  readonly id: string
  readonly status: string
  readonly started_at: number
  readonly completed_at: number | null
  readonly duration_ms: number | null
  readonly base_ref: string
  readonly base_sha: string
  readonly workers: number
  readonly repo_root: string
  readonly pid: number
  readonly config: string
}

const sessionRow = (r: SessionRecord): SessionRow => ({
  id: r.id,
  status: r.status as SessionStatus,
  startedAt: r.started_at,
  completedAt: r.completed_at,
  durationMs: r.duration_ms,
  baseRef: r.base_ref,
  baseSha: r.base_sha,
  workers: r.workers,
  repoRoot: r.repo_root,
  pid: r.pid,
  config: r.config
})

interface ExecutionRecord {
  readonly session_id: string
  readonly test_id: string
  readonly seq: number
  readonly name: string
  readonly source: string
  readonly ref_name: string
  readonly sha: string
  readonly status: string
  readonly request: string | null
  readonly priority: number
  readonly expected_ms: number | null
  readonly duration_ms: number | null
  readonly flakiness: number | null
  readonly kept_worktree: string | null
}

const executionRow = (r: ExecutionRecord): ExecutionRow => ({
  sessionId: r.session_id,
  testId: r.test_id,
  seq: r.seq,
  name: r.name,
  source: r.source,
  refName: r.ref_name,
  sha: r.sha,
  status: r.status as TestStatus,
  request: r.request,
  priority: r.priority,
  expectedMs: r.expected_ms,
  durationMs: r.duration_ms,
  flakiness: r.flakiness,
  keptWorktree: r.kept_worktree
})

interface AttemptRecord {
  readonly session_id: string
  readonly test_id: string
  readonly n: number
  readonly status: string
  readonly exit_code: number | null
  readonly signal: string | null
  readonly worker: number
  readonly worktree: string
  readonly started_at: number
  readonly duration_ms: number | null
  readonly log_path: string
  readonly tail: string | null
  readonly message: string | null
  readonly pgid: number | null
  readonly process_start_time: string | null
}

const attemptRowOf = (r: AttemptRecord): AttemptRow => ({
  sessionId: r.session_id,
  testId: r.test_id,
  n: r.n,
  status: r.status as TestStatus,
  exitCode: r.exit_code,
  signal: r.signal,
  worker: r.worker,
  worktree: r.worktree,
  startedAt: r.started_at,
  durationMs: r.duration_ms,
  logPath: r.log_path,
  tail: r.tail,
  message: r.message,
  pgid: r.pgid,
  processStartTime: r.process_start_time
})

interface SummaryRecord {
  readonly id: string
  readonly status: string
  readonly started_at: number
  readonly completed_at: number | null
  readonly repo_root: string
  readonly pid: number
  readonly total: number
  readonly passed: number | null
  readonly not_passed: number | null
}

const summary = (r: SummaryRecord): SessionSummary => ({
  id: r.id,
  status: r.status,
  startedAt: r.started_at,
  completedAt: r.completed_at ?? undefined,
  total: r.total,
  passed: r.passed ?? 0,
  notPassed: r.not_passed ?? 0,
  repoRoot: r.repo_root,
  pid: r.pid
})

const chunksOf = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

// -----------------------------------------------------------------------------
// the store
// -----------------------------------------------------------------------------

const makeWith = (
  sql: SqlClient.SqlClient,
  filename: string,
  lock: Effect.Semaphore,
  busyTimeout: Duration.Duration,
  environment: Environment
): Context.Tag.Service<Store> => {
  const where = `store ${filename}`
  const immediate = transaction(sql, "BEGIN IMMEDIATE")
  /** secret values per `session\0test`, to mask tails and messages of this process's sessions */
  const secrets = new Map<string, ReadonlyArray<string>>()
  const key = (sessionId: string, testId: string) => `${sessionId}\u0000${testId}`
  const forgetSession = (sessionId: string) => {
    for (const k of secrets.keys()) if (k.startsWith(key(sessionId, ""))) secrets.delete(k)
  }

  /** the newest session of `repoRoot` that is not running (none or one row) */
  const latestFinished = (repoRoot: string) =>
    sql<{ readonly id: string }>`SELECT id FROM sessions
      WHERE repo_root = ${repoRoot} AND status <> 'RUNNING'
      ORDER BY started_at DESC, id DESC LIMIT 1`

  /** the tests of a session with one of `statuses`, in queue order, with their attempt counts */
  const testsWithStatus = (sessionId: string, statuses: ReadonlyArray<TestStatus>, where: string) =>
    Effect.flatMap(
      sql<{
        readonly test_id: string
        readonly request: string | null
        readonly sha: string
        readonly ref_name: string
        readonly attempts: number
      }>`SELECT e.test_id, e.request, e.sha, e.ref_name,
          (SELECT COUNT(*) FROM attempts a WHERE a.session_id = e.session_id AND a.test_id = e.test_id) AS attempts
        FROM executions e
        WHERE e.session_id = ${sessionId} AND ${sql.in("e.status", statuses)}
        ORDER BY e.seq`,
      (rows) =>
        Effect.forEach(rows, (r): Effect.Effect<PendingTest, StoreError> =>
          pendingTest(sessionId, { testId: r.test_id, request: r.request, sha: r.sha, refName: r.ref_name }, r.attempts, where))
    )

  const write = <A, R>(what: string, effect: Effect.Effect<A, StoreError | SqlError, R>): Effect.Effect<A, StoreError, R> =>
    lock.withPermits(1)(immediate(effect)).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(queryFailed(where, what, busyTimeout)(e)))
    )

  const read = <A, R>(what: string, effect: Effect.Effect<A, StoreError | SqlError, R>): Effect.Effect<A, StoreError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(queryFailed(where, what, busyTimeout)(e)))
    )

  const requireSession = (sessionId: string) =>
    Effect.flatMap(
      sql<{ readonly id: string }>`SELECT id FROM sessions WHERE id = ${sessionId}`,
      (rows) => rows.length === 0 ? Effect.fail(unknownSession(sessionId, where)) : Effect.void
    )

  const executionStatus = (sessionId: string, testId: string) =>
    Effect.map(
      sql<{ readonly status: string }>`SELECT status FROM executions
        WHERE session_id = ${sessionId} AND test_id = ${testId}`,
      (rows) => Option.map(Option.fromNullable(rows[0]), (r) => r.status as TestStatus)
    )

  const requireTest = (sessionId: string, testId: string) =>
    Effect.zipRight(
      requireSession(sessionId),
      Effect.flatMap(
        executionStatus(sessionId, testId),
        Option.match({
          onNone: () => Effect.fail(unknownTest(sessionId, testId, where)),
          onSome: Effect.succeed
        })
      )
    )

  const nextSeq = (sessionId: string) =>
    sql`(COALESCE((SELECT seq FROM executions WHERE session_id = ${sessionId} ORDER BY seq DESC LIMIT 1), 0) + 1)`

  const upsertAttempt = (row: AttemptRow) =>
    sql`INSERT INTO attempts (session_id, test_id, n, status, exit_code, signal, worker, worktree, started_at,
        duration_ms, log_path, tail, message, pgid, process_start_time)
      VALUES (${row.sessionId}, ${row.testId}, ${row.n}, ${row.status}, ${row.exitCode}, ${row.signal}, ${row.worker},
        ${row.worktree}, ${row.startedAt}, ${row.durationMs}, ${row.logPath}, ${row.tail}, ${row.message},
        ${row.pgid}, ${row.processStartTime})
      ON CONFLICT (session_id, test_id, n) DO UPDATE SET
        status = excluded.status, exit_code = excluded.exit_code, signal = excluded.signal,
        worker = excluded.worker, worktree = excluded.worktree, started_at = excluded.started_at,
        duration_ms = excluded.duration_ms, log_path = excluded.log_path, tail = excluded.tail,
        message = excluded.message,
        pgid = COALESCE(excluded.pgid, attempts.pgid),
        process_start_time = COALESCE(excluded.process_start_time, attempts.process_start_time)`

  /**
   * What recording one event takes: the statements (run inside a write transaction),
   * what they do (for an error message), and what to remember once they committed.
   */
  interface EventWrite {
    readonly what: string
    readonly statements: Effect.Effect<void, StoreError | SqlError>
    readonly committed?: () => void
  }

  const writeOf = (sessionId: string, event: SessionEvent, meta?: RecordMeta): Effect.Effect<EventWrite, StoreError> => {
    switch (event._tag) {
      case "SessionStarted":
        return Effect.succeed({
          what: `record the start of session ${sessionId}`,
          statements: sql`INSERT INTO sessions (id, status, started_at, base_ref, base_sha, workers, repo_root, pid, config)
            VALUES (${sessionId}, 'RUNNING', ${event.startedAt}, ${event.baseRef}, ${event.baseSha}, ${event.workers},
              ${meta?.repoRoot ?? ""}, ${meta?.pid ?? 0}, ${meta?.config ?? "{}"})
            ON CONFLICT (id) DO UPDATE SET
              status = 'RUNNING', completed_at = NULL, duration_ms = NULL, workers = excluded.workers,
              total = NULL, passed = NULL, flaky = NULL, failed = NULL, timed_out = NULL, error = NULL,
              cancelled = NULL, success_rate = NULL,
              repo_root = COALESCE(${meta?.repoRoot ?? null}, sessions.repo_root),
              pid = COALESCE(${meta?.pid ?? null}, sessions.pid),
              config = COALESCE(${meta?.config ?? null}, sessions.config)`
        })
      case "TestQueued": {
        const test = event.test
        // its secrets are known before anything else is written: a batch may hold its attempts too
        return Effect.map(storedRequest(sessionId, test, environment, where), (request) => {
          secrets.set(key(sessionId, test.id), secretValues(test, environment))
          return {
            what: `record that test ${test.id} of session ${sessionId} was queued`,
            statements: Effect.gen(function*() {
              yield* requireSession(sessionId)
              const status = yield* executionStatus(sessionId, test.id)
              if (Option.isSome(status) && isTerminal(status.value)) return
              if (Option.isSome(status)) {
                yield* sql`UPDATE executions SET status = 'QUEUED', name = ${test.name}, source = ${test.source},
                    ref_name = ${event.refName}, sha = ${event.sha}, request = ${request},
                    priority = ${test.priority}, expected_ms = ${event.expectedMs ?? null}
                  WHERE session_id = ${sessionId} AND test_id = ${test.id}`
              } else {
                yield* sql`INSERT INTO executions (session_id, test_id, seq, name, source, ref_name, sha, status,
                    request, priority, expected_ms)
                  VALUES (${sessionId}, ${test.id}, ${nextSeq(sessionId)}, ${test.name}, ${test.source},
                    ${event.refName}, ${event.sha}, 'QUEUED', ${request}, ${test.priority}, ${event.expectedMs ?? null})`
              }
            })
          }
        })
      }
      case "AttemptStarted":
        return Effect.succeed({
          what: `record the start of attempt ${event.n} of test ${event.testId} of session ${sessionId}`,
          statements: Effect.gen(function*() {
            yield* requireTest(sessionId, event.testId)
            yield* sql`INSERT INTO attempts (session_id, test_id, n, status, worker, worktree, started_at, log_path)
              VALUES (${sessionId}, ${event.testId}, ${event.n}, 'RUNNING', ${event.worker}, ${event.worktree},
                ${event.startedAt}, ${event.logPath})
              ON CONFLICT (session_id, test_id, n) DO UPDATE SET
                status = 'RUNNING', worker = excluded.worker, worktree = excluded.worktree,
                started_at = excluded.started_at, log_path = excluded.log_path, exit_code = NULL, signal = NULL,
                duration_ms = NULL, tail = NULL, message = NULL, pgid = NULL, process_start_time = NULL`
            yield* sql`UPDATE executions SET status = 'RUNNING'
              WHERE session_id = ${sessionId} AND test_id = ${event.testId} AND status IN ('QUEUED', 'RUNNING')`
          })
        })
      case "AttemptSpawned":
        return Effect.succeed({
          what: `record the process group of attempt ${event.n} of test ${event.testId} of session ${sessionId}`,
          statements: Effect.zipRight(
            requireSession(sessionId),
            sql`UPDATE attempts SET pgid = ${event.pgid}, process_start_time = ${event.processStartTime}
              WHERE session_id = ${sessionId} AND test_id = ${event.testId} AND n = ${event.n}`
          )
        })
      case "AttemptFinished":
        return Effect.succeed({
          what: `record the end of attempt ${event.attempt.n} of test ${event.testId} of session ${sessionId}`,
          statements: Effect.zipRight(
            requireTest(sessionId, event.testId),
            Effect.suspend(() =>
              upsertAttempt(
                attemptRow(sessionId, event.testId, event.attempt, secrets.get(key(sessionId, event.testId)) ?? [])
              )
            )
          )
        })
      case "RetryScheduled":
        return Effect.succeed({
          what: `record the retry of test ${event.testId} of session ${sessionId}`,
          statements: Effect.zipRight(
            requireSession(sessionId),
            sql`UPDATE executions SET status = 'QUEUED'
              WHERE session_id = ${sessionId} AND test_id = ${event.testId} AND status IN ('QUEUED', 'RUNNING')`
          )
        })
      case "TestFinished": {
        const result = event.result
        return Effect.succeed({
          what: `record the result of test ${result.id} of session ${sessionId}`,
          statements: Effect.gen(function*() {
            const values = secrets.get(key(sessionId, result.id)) ?? []
            yield* requireSession(sessionId)
            yield* sql`INSERT INTO executions (session_id, test_id, seq, name, source, ref_name, sha, status,
                request, priority, duration_ms, flakiness, kept_worktree)
              VALUES (${sessionId}, ${result.id}, ${nextSeq(sessionId)}, ${result.name}, ${result.source},
                ${result.ref}, '', ${result.status}, NULL, 0, ${result.durationMs}, ${result.flakiness ?? null},
                ${result.keptWorktree ?? null})
              ON CONFLICT (session_id, test_id) DO UPDATE SET
                status = excluded.status, duration_ms = excluded.duration_ms, flakiness = excluded.flakiness,
                kept_worktree = excluded.kept_worktree`
            for (const attempt of result.attempts) {
              yield* upsertAttempt(attemptRow(sessionId, result.id, attempt, values))
            }
          }),
          committed: () => secrets.delete(key(sessionId, result.id))
        })
      }
      case "SessionFinished": {
        const totals = SessionState.totals(event.counts)
        return Effect.succeed({
          what: `record the end of session ${sessionId}`,
          statements: Effect.zipRight(
            requireSession(sessionId),
            sql`UPDATE sessions SET status = ${event.status},
                completed_at = ${event.completedAt},
                duration_ms = MAX(0, ${event.completedAt} - started_at), total = ${totals.total}, passed = ${totals.passed},
                flaky = ${totals.flaky}, failed = ${totals.failed}, timed_out = ${totals.timedOut},
                error = ${totals.error}, cancelled = ${totals.cancelled}, success_rate = ${totals.successRate}
              WHERE id = ${sessionId}`
          ),
          committed: () => forgetSession(sessionId)
        })
      }
    }
  }

  const lastSeq = (sessionId: string) =>
    Effect.map(
      sql<{ readonly last: number }>`SELECT COALESCE(MAX(seq), 0) AS last FROM events WHERE session_id = ${sessionId}`,
      (rows) => rows[0]?.last ?? 0
    )

  /**
   * The event's write with its log entry: the projection's statements, then the event
   * appended under `seq` (default: the log's next), in the same transaction. Its
   * payload is made first, with the secrets its test's TestQueued made known.
   */
  const logged = (sessionId: string, event: SessionEvent, w: EventWrite, seq: number | undefined) =>
    Effect.gen(function*() {
      const testId = testIdOf(event)
      const payload = yield* Effect.mapError(
        eventPayload(event, testId === undefined ? [] : secrets.get(key(sessionId, testId)) ?? [], environment),
        (cause) => new StoreError({ reason: "Query", detail: `${where}: could not encode a ${event._tag} event of session ${sessionId}: ${cause.message}`, cause })
      )
      const insert = (n: number) =>
        sql`INSERT INTO events (session_id, seq, tag, payload) VALUES (${sessionId}, ${n}, ${event._tag}, ${payload})`
      return Effect.gen(function*() {
        yield* w.statements
        if (seq === undefined) {
          const n = (yield* lastSeq(sessionId)) + 1
          yield* insert(n)
          return n
        }
        // the writer numbers its events in order: a number already in the log is one
        // another writer took (the key refuses it), with no read per event
        yield* insert(seq).pipe(
          Effect.catchIf(
            (e) => e.cause instanceof Error && /UNIQUE constraint failed: events/.test(e.cause.message),
            () => Effect.fail(seqTaken(sessionId, seq, where))
          )
        )
        return seq
      })
    })

  const record = (sessionId: string, event: SessionEvent, options?: RecordOptions): Effect.Effect<number, StoreError> =>
    Effect.gen(function*() {
      const w = yield* writeOf(sessionId, event, options?.meta)
      const statements = yield* logged(sessionId, event, w, options?.seq)
      const seq = yield* write(w.what, statements)
      w.committed?.()
      return seq
    })

  /**
   * Many events in one transaction (one commit instead of one per event). When that
   * fails, they are written one by one, so the error names the event it is about and
   * the events before it are kept.
   */
  const recordAll = (
    sessionId: string,
    events: ReadonlyArray<SessionEvent>,
    options?: { readonly firstSeq?: number }
  ): Effect.Effect<number, StoreError> =>
    Effect.gen(function*() {
      const first = options?.firstSeq ?? (yield* read(`read the event log of session ${sessionId}`, lastSeq(sessionId))) + 1
      const one = (e: SessionEvent, i: number) => record(sessionId, e, { seq: first + i })
      if (events.length <= 1) {
        yield* Effect.forEach(events, one, { discard: true })
        return first + events.length - 1
      }
      return yield* Effect.forEach(events, (e, i) =>
        Effect.flatMap(writeOf(sessionId, e), (w) =>
          Effect.map(logged(sessionId, e, w, first + i), (statements) => ({ w, statements })))).pipe(
        Effect.flatMap((ws) =>
          Effect.tap(
            write(
              `record ${ws.length} events of session ${sessionId}`,
              Effect.forEach(ws, ({ statements }) => statements, { discard: true })
            ),
            () => Effect.sync(() => ws.forEach(({ w }) => w.committed?.()))
          )
        ),
        Effect.as(first + events.length - 1),
        Effect.catchAll(() => Effect.as(Effect.forEach(events, one, { discard: true }), first + events.length - 1))
      )
    })

  const testsPage = (sessionId: string, options: TestsQuery) =>
    Effect.gen(function*() {
      if (options.ids !== undefined && options.ids.length === 0) return []
      const rows = (yield* sql<ExecutionRecord>`SELECT * FROM executions
        WHERE session_id = ${sessionId} AND seq > ${options.after}
          ${options.statuses === undefined ? sql`` : sql`AND ${sql.in("status", options.statuses)}`}
          ${options.ids === undefined ? sql`` : sql`AND ${sql.in("test_id", options.ids)}`}
        ORDER BY seq LIMIT ${Math.max(0, options.limit)}`).map(executionRow)
      if (rows.length === 0) return []
      const byTest = new Map<string, Array<AttemptRow>>()
      for (const chunk of chunksOf(rows.map((r) => r.testId), 500)) {
        const attempts = yield* sql<AttemptRecord>`SELECT * FROM attempts
          WHERE session_id = ${sessionId} AND ${sql.in("test_id", chunk)}`
        for (const a of attempts) {
          const list = byTest.get(a.test_id) ?? []
          list.push(attemptRowOf(a))
          byTest.set(a.test_id, list)
        }
      }
      return rows.map((row): QueuedResult => ({ seq: row.seq, result: resultOf(row, byTest.get(row.testId) ?? []) }))
    })

  const summaries = (filter: "all" | { readonly id: string }, limit: number) =>
    sql<SummaryRecord>`SELECT s.id, s.status, s.started_at, s.completed_at, s.repo_root, s.pid,
        COUNT(e.test_id) AS total,
        SUM(e.status IN ('PASSED', 'FLAKY')) AS passed,
        SUM(e.status IN ('FAILED', 'TIMED_OUT', 'ERROR', 'CANCELLED')) AS not_passed
      FROM (SELECT * FROM sessions
        ${filter === "all" ? sql`` : sql`WHERE id = ${filter.id}`}
        ORDER BY started_at DESC, id DESC LIMIT ${limit}) AS s
      LEFT JOIN executions e ON e.session_id = s.id
      GROUP BY s.id
      ORDER BY s.started_at DESC, s.id DESC`

  const deleteRows = (ids: ReadonlyArray<string>) =>
    Effect.forEach(chunksOf(ids, 500), (chunk) =>
      Effect.all([
        sql`DELETE FROM events WHERE ${sql.in("session_id", chunk)}`,
        sql`DELETE FROM attempts WHERE ${sql.in("session_id", chunk)}`,
        sql`DELETE FROM executions WHERE ${sql.in("session_id", chunk)}`,
        sql`DELETE FROM sessions WHERE ${sql.in("id", chunk)}`
      ], { discard: true }), { discard: true })

  const self: Context.Tag.Service<Store> = Store.of({
    record,
    recordAll,
    sessions: (limit) =>
      read("list sessions", Effect.map(summaries("all", Math.max(0, limit)), (rows) => rows.map(summary))),
    requireSession: (sessionId) =>
      read(
        `read session ${sessionId}`,
        Effect.flatMap(summaries({ id: sessionId }, 1), (rows) =>
          rows[0] === undefined ? Effect.fail(unknownSession(sessionId, where)) : Effect.succeed(summary(rows[0])))
      ),
    sessionConfig: (sessionId) =>
      read(
        `read the config of session ${sessionId}`,
        Effect.flatMap(
          sql<{ readonly config: string }>`SELECT config FROM sessions WHERE id = ${sessionId}`,
          (rows) => rows[0] === undefined ? Effect.fail(unknownSession(sessionId, where)) : Effect.succeed(rows[0].config)
        )
      ),
    report: (sessionId) => loadReport(self, sessionId),
    events: (sessionId, { after, limit }) =>
      read(
        `read the events of session ${sessionId}`,
        Effect.flatMap(
          sql<{ readonly seq: number; readonly payload: string }>`SELECT seq, payload FROM events
            WHERE session_id = ${sessionId} AND seq > ${after} ORDER BY seq LIMIT ${Math.max(0, limit)}`,
          (rows) => Effect.forEach(rows, (r) => decodePayload(sessionId, r.seq, r.payload, where))
        )
      ),
    tests: (sessionId, options) => read(`read the tests of session ${sessionId}`, testsPage(sessionId, options)),
    history: (ids) =>
      read(
        "read the history of tests",
        Effect.gen(function*() {
          const byTest = new Map<string, Array<{ readonly status: TestStatus; readonly durationMs: number | null }>>()
          for (const chunk of chunksOf([...new Set(ids)], 500)) {
            // per test, its executions newest first, cut to what historyOf looks at
            const rows = yield* sql<{
              readonly test_id: string
              readonly status: string
              readonly duration_ms: number | null
            }>`WITH ranked AS (
                SELECT e.test_id, e.status, e.duration_ms,
                  ROW_NUMBER() OVER (PARTITION BY e.test_id ORDER BY s.started_at DESC, s.id DESC) AS n_finished,
                  ROW_NUMBER() OVER (PARTITION BY e.test_id, e.status IN ('PASSED', 'FLAKY')
                    ORDER BY s.started_at DESC, s.id DESC) AS n_status
                FROM executions e JOIN sessions s ON s.id = e.session_id
                WHERE ${sql.in("e.test_id", chunk)}
                  AND e.status IN ('PASSED', 'FLAKY', 'FAILED', 'TIMED_OUT', 'ERROR')
              )
              SELECT test_id, status, duration_ms FROM ranked
              WHERE n_finished <= 20 OR (status IN ('PASSED', 'FLAKY') AND n_status <= 10)
              ORDER BY test_id, n_finished`
            for (const row of rows) {
              const list = byTest.get(row.test_id) ?? []
              list.push({ status: row.status as TestStatus, durationMs: row.duration_ms })
              byTest.set(row.test_id, list)
            }
          }
          const out = new Map<TestId, TestHistory>()
          for (const id of ids) out.set(id, historyOf(byTest.get(id) ?? []))
          return out as ReadonlyMap<TestId, TestHistory>
        })
      ),
    pending: (sessionId) =>
      read(
        `read the tests left in session ${sessionId}`,
        Effect.gen(function*() {
          yield* requireSession(sessionId)
          return yield* testsWithStatus(sessionId, ["QUEUED", "RUNNING"], where)
        })
      ),
    liveGroups: (sessionId) =>
      read(
        `read the running attempts of session ${sessionId}`,
        Effect.gen(function*() {
          yield* requireSession(sessionId)
          const rows = yield* sql<{ readonly pgid: number; readonly process_start_time: string }>`
            SELECT pgid, process_start_time FROM attempts
            WHERE session_id = ${sessionId} AND status = 'RUNNING'
              AND pgid IS NOT NULL AND process_start_time IS NOT NULL
            ORDER BY started_at, test_id, n`
          return rows.map((r) => ({ pgid: r.pgid, processStartTime: r.process_start_time }))
        })
      ),
    lastFailed: (repoRoot) =>
      read(
        `read the last session of ${repoRoot}`,
        Effect.gen(function*() {
          const latest = yield* latestFinished(repoRoot)
          if (latest[0] === undefined) return Option.none()
          const rows = yield* sql<{ readonly test_id: string }>`SELECT test_id FROM executions
            WHERE session_id = ${latest[0].id} AND status NOT IN ('PASSED', 'FLAKY')
            ORDER BY seq`
          return Option.some(rows.map((r) => r.test_id as TestId))
        })
      ),
    lastFailedTests: (repoRoot) =>
      read(
        `read the last session of ${repoRoot}`,
        Effect.gen(function*() {
          const latest = yield* latestFinished(repoRoot)
          if (latest[0] === undefined) return Option.none()
          const sessionId = latest[0].id
          const tests = yield* testsWithStatus(
            sessionId,
            ["FAILED", "TIMED_OUT", "ERROR", "CANCELLED", "QUEUED", "RUNNING"],
            where
          )
          return Option.some({ sessionId, tests })
        })
      ),
    deleteSession: (sessionId) =>
      write(
        `delete session ${sessionId}`,
        Effect.zipRight(requireSession(sessionId), deleteRows([sessionId]))
      ).pipe(Effect.tap(() => Effect.sync(() => forgetSession(sessionId)))),
    gc: (keep) =>
      write(
        "delete old sessions",
        Effect.gen(function*() {
          const rows = yield* sql<{ readonly id: string }>`SELECT id FROM sessions
            ORDER BY started_at DESC, id DESC LIMIT -1 OFFSET ${Math.max(0, keep)}`
          const ids = rows.map((r) => r.id)
          yield* deleteRows(ids)
          return ids
        })
      ).pipe(Effect.tap((ids) => Effect.sync(() => ids.forEach(forgetSession))))
  })
  return self
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
    return makeWith(client, filename, lock, busyTimeout, process.env)
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
        return makeWith(client, filename, lock, busyTimeout, options.environment ?? process.env)
      }))
    })
  )
