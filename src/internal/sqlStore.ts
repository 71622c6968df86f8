/**
 * What the SQL stores share (SPEC §5): the tables and their migrations, the rows, and
 * the whole `Store` service over an `SqlClient`. `SqlStore` (SQLite) and `PgStore`
 * (PostgreSQL) open their database, migrate it under their own lock and hand a
 * `Dialect` for the little that differs.
 *
 * @since 0.2.0
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import {
  type AttemptStarted,
  Events,
  isTerminal,
  type SessionEvent,
  type SessionStatus,
  type TestId,
  type TestQueued,
  type TestResult,
  type TestStatus
} from "../Domain.js"
import { StoreError } from "../GroveError.js"
import * as SessionState from "../SessionState.js"
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
  type Beat,
  type RecordOptions,
  resultOf,
  seqTaken,
  testIdOf,
  type PendingTest,
  pendingTest,
  type RecordMeta,
  secretValues,
  type SessionOwner,
  type SessionRow,
  type SessionSummary,
  Store,
  storedRequest,
  type TestHistory,
  type TestsQuery,
  unknownSession,
  unknownTest
} from "../Store.js"

/**
 * The schema version this grove writes and understands.
 *
 * @since 0.1.0
 * @category models
 */
export const schemaVersion = 4

/**
 * What differs between the SQL backends.
 *
 * @since 0.2.0
 * @internal
 */
export interface Dialect {
  /** how messages name the store, e.g. `store /repo/.git/grove/grove.db` */
  readonly where: string
  /**
   * runs `effect` as a write transaction that holds the write lock before it reads, so
   * read-then-write is safe against other writers (SQLite: `BEGIN IMMEDIATE` under the
   * file's semaphore; PostgreSQL: this store's semaphore and an advisory lock).
   * Writes of one store commit in the order they were called. `sessionId` is the
   * session written ("" for several).
   */
  readonly write: <A, E, R>(sessionId: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /** runs `effect` as a read transaction that sees one snapshot */
  readonly read: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /** `LIMIT` that means no limit before an `OFFSET` (SQLite `LIMIT -1`, PostgreSQL `LIMIT ALL`) */
  readonly noLimit: string
  /** the scalar maximum of two values (SQLite `MAX`, PostgreSQL `GREATEST`) */
  readonly greatest: string
  /** the error is the unique key of `table` refusing a row */
  readonly isUniqueViolation: (error: SqlError, table: string) => boolean
  /** turns a failed statement into the StoreError to report (`what` = could not …) */
  readonly queryFailed: (what: string, cause: SqlError) => StoreError
}

/** column types of the migrations */
export interface ColumnTypes {
  /** integers, epoch millis included (SQLite `INTEGER`, PostgreSQL `BIGINT`) */
  readonly int: string
  /** floating point (SQLite `REAL`, PostgreSQL `DOUBLE PRECISION`) */
  readonly real: string
}

/**
 * Migrations by the version they bring the schema to, one statement each.
 * Never edit a released one: add the next version. SQLite's are these with `INTEGER` and
 * `REAL`, as they always were.
 */
export const migrations = (t: ColumnTypes): ReadonlyArray<readonly [version: number, statements: ReadonlyArray<string>]> => [
  [1, [
    `CREATE TABLE sessions (
      id TEXT PRIMARY KEY,
      status TEXT NOT NULL,
      started_at ${t.int} NOT NULL,
      completed_at ${t.int},
      duration_ms ${t.int},
      base_ref TEXT NOT NULL,
      base_sha TEXT NOT NULL,
      workers ${t.int} NOT NULL,
      repo_root TEXT NOT NULL,
      pid ${t.int} NOT NULL,
      config TEXT NOT NULL,
      total ${t.int},
      passed ${t.int},
      flaky ${t.int},
      failed ${t.int},
      timed_out ${t.int},
      error ${t.int},
      cancelled ${t.int},
      success_rate ${t.real}
    )`,
    `CREATE INDEX sessions_by_start ON sessions (started_at, id)`,
    `CREATE INDEX sessions_by_repo ON sessions (repo_root, started_at)`,
    `CREATE TABLE executions (
      session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
      test_id TEXT NOT NULL,
      seq ${t.int} NOT NULL,
      name TEXT NOT NULL,
      source TEXT NOT NULL,
      ref_name TEXT NOT NULL,
      sha TEXT NOT NULL,
      status TEXT NOT NULL,
      request TEXT,
      priority ${t.int} NOT NULL,
      expected_ms ${t.int},
      duration_ms ${t.int},
      flakiness ${t.real},
      kept_worktree TEXT,
      PRIMARY KEY (session_id, test_id)
    )`,
    `CREATE INDEX executions_by_test ON executions (test_id)`,
    `CREATE TABLE attempts (
      session_id TEXT NOT NULL,
      test_id TEXT NOT NULL,
      n ${t.int} NOT NULL,
      status TEXT NOT NULL,
      exit_code ${t.int},
      signal TEXT,
      worker ${t.int} NOT NULL,
      worktree TEXT NOT NULL,
      started_at ${t.int} NOT NULL,
      duration_ms ${t.int},
      log_path TEXT NOT NULL,
      tail TEXT,
      message TEXT,
      pgid ${t.int},
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
      seq ${t.int} NOT NULL,
      tag TEXT NOT NULL,
      payload TEXT NOT NULL,
      PRIMARY KEY (session_id, seq)
    )`]],
  // whether a session's owner lives is host + heartbeat once machines share a store
  // (SPEC §10, Heartbeat.ts); rows from before read as unknown host, no heartbeat
  [4, [
    `ALTER TABLE sessions ADD COLUMN host TEXT`,
    `ALTER TABLE sessions ADD COLUMN heartbeat_at ${t.int}`
  ]]
]

/**
 * Runs the migrations after version `from` (inside the caller's locked transaction).
 *
 * @since 0.2.0
 * @internal
 */
export const migrate = (
  sql: SqlClient.SqlClient,
  types: ColumnTypes,
  from: number,
  where: string
): Effect.Effect<void, SqlError | StoreError> =>
  Effect.gen(function*() {
    for (const [version, statements] of migrations(types)) {
      if (version <= from) continue
      for (const statement of statements) yield* sql.unsafe(statement)
      if (version === 3) yield* backfillEvents(sql, where)
    }
  })

/**
 * Schema 3 brings the event log. Sessions recorded before it get the events their rows
 * say — it started; each test was queued (when its request was kept) and its attempts
 * ran, or it finished; it ended — so that every session folds the same way.
 *
 * @internal
 */
export const backfillEvents = (sql: SqlClient.SqlClient, where: string): Effect.Effect<void, SqlError | StoreError> =>
  Effect.gen(function*() {
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
  /** absent in a schema-3 row being backfilled */
  readonly host?: string | null
  readonly heartbeat_at?: number | null
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
  config: r.config,
  host: r.host ?? null,
  heartbeatAt: r.heartbeat_at ?? null
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

/**
 * The store over `sql`, once its database is open and migrated.
 *
 * @since 0.2.0
 * @internal
 */
export const makeWith = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  environment: Environment
): Context.Tag.Service<Store> => {
  const where = dialect.where
  /** secret values per `session\0test`, to mask tails and messages of this process's sessions */
  const secrets = new Map<string, ReadonlyArray<string>>()
  const key = (sessionId: string, testId: string) => `${sessionId}\u0000${testId}`
  /**
   * Sessions (`key(id, "")`) and tests whose row this store has written in a committed
   * transaction (their SessionStarted, their TestQueued) and not forgotten since: the check
   * before each event's write (does the session, does the test exist?) needs no query for
   * them. Only commits add to it — a read inside a write may see a row of the same
   * transaction, which a rollback takes back. Bounded like `secrets`: a test is forgotten
   * when its TestFinished commits, a session with all its tests when its SessionFinished
   * does or it is deleted. A running session is never deleted by another process (the API
   * and `grove gc` refuse), and the foreign keys would refuse a write to one that was gone.
   */
  const stored = new Set<string>()
  const forgetSession = (sessionId: string) => {
    const prefix = key(sessionId, "")
    for (const k of secrets.keys()) if (k.startsWith(prefix)) secrets.delete(k)
    for (const k of stored) if (k.startsWith(prefix)) stored.delete(k)
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

  /**
   * A statement of a write, run on its transaction's connection: compiled, then executed
   * without what @effect/sql's Statement adds to each execution (a span, the connection
   * looked up, a scope) — several times what SQLite itself spends on one of these
   * statements, and a test writes about 23. The stores configure no row transforms, so
   * none is lost. Outside a transaction it runs as the Statement does.
   */
  const run = <A extends object>(statement: Statement.Statement<A>): Effect.Effect<ReadonlyArray<A>, SqlError> =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) => {
      if (Option.isNone(tx)) return statement
      const [query, params] = statement.compile()
      return tx.value[0].execute(query, params, undefined)
    })

  /** the one write path: every write of the store is a `dialect.write` transaction */
  const write = <A, R>(
    sessionId: string,
    what: string,
    effect: Effect.Effect<A, StoreError | SqlError, R>
  ): Effect.Effect<A, StoreError, R> =>
    dialect.write(sessionId, effect).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(dialect.queryFailed(what, e)))
    )

  const read = <A, R>(what: string, effect: Effect.Effect<A, StoreError | SqlError, R>): Effect.Effect<A, StoreError, R> =>
    dialect.read(effect).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(dialect.queryFailed(what, e)))
    )

  /** fails with UnknownSession unless the store holds the session: always asks */
  const checkSession = (sessionId: string) =>
    Effect.flatMap(
      run(sql<{ readonly id: string }>`SELECT id FROM sessions WHERE id = ${sessionId}`),
      (rows) => rows.length === 0 ? Effect.fail(unknownSession(sessionId, where)) : Effect.void
    )

  /** `checkSession` before an event's write: asks only of a session not `stored` */
  const requireSession = (sessionId: string) => stored.has(key(sessionId, "")) ? Effect.void : checkSession(sessionId)

  const executionStatus = (sessionId: string, testId: string) =>
    Effect.map(
      run(sql<{ readonly status: string }>`SELECT status FROM executions
        WHERE session_id = ${sessionId} AND test_id = ${testId}`),
      (rows) => Option.map(Option.fromNullable(rows[0]), (r) => r.status as TestStatus)
    )

  const requireTest = (sessionId: string, testId: string) =>
    Effect.zipRight(
      requireSession(sessionId),
      stored.has(key(sessionId, testId)) ? Effect.void : Effect.flatMap(
        executionStatus(sessionId, testId),
        Option.match({
          onNone: () => Effect.fail(unknownTest(sessionId, testId, where)),
          onSome: () => Effect.void
        })
      )
    )

  const nextSeq = (sessionId: string) =>
    sql`(COALESCE((SELECT seq FROM executions WHERE session_id = ${sessionId} ORDER BY seq DESC LIMIT 1), 0) + 1)`

  const upsertAttempt = (row: AttemptRow) =>
    run(sql`INSERT INTO attempts (session_id, test_id, n, status, exit_code, signal, worker, worktree, started_at,
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
        process_start_time = COALESCE(excluded.process_start_time, attempts.process_start_time)`)

  /** the owner a SessionStarted with `meta` names (Heartbeat.ts): its host and first heartbeat */
  const recordOwner = (sessionId: string, meta: RecordMeta | undefined) =>
    meta === undefined
      ? Effect.void
      : run(sql`UPDATE sessions SET host = ${meta.host ?? null}, heartbeat_at = ${meta.heartbeatAt ?? null}
          WHERE id = ${sessionId}`)

  /**
   * What recording one event takes: the statements (run inside a write transaction),
   * what they do (for an error message), and what to remember once they committed.
   */
  interface EventWrite {
    readonly what: string
    readonly statements: Effect.Effect<void, StoreError | SqlError>
    readonly committed?: () => void
  }

  // What an event writes, one function each, made once per store with Effect.fnUntraced
  // rather than an `Effect.gen` per event (Runner.ts's attemptOnce says why).
  const queuedRows = Effect.fnUntraced(function*(sessionId: string, event: TestQueued, request: string) {
    const test = event.test
    yield* requireSession(sessionId)
    const status = yield* executionStatus(sessionId, test.id)
    if (Option.isSome(status) && isTerminal(status.value)) return
    if (Option.isSome(status)) {
      yield* run(sql`UPDATE executions SET status = 'QUEUED', name = ${test.name}, source = ${test.source},
          ref_name = ${event.refName}, sha = ${event.sha}, request = ${request},
          priority = ${test.priority}, expected_ms = ${event.expectedMs === undefined ? null : Math.round(event.expectedMs)}
        WHERE session_id = ${sessionId} AND test_id = ${test.id}`)
    } else {
      yield* run(sql`INSERT INTO executions (session_id, test_id, seq, name, source, ref_name, sha, status,
          request, priority, expected_ms)
        VALUES (${sessionId}, ${test.id}, ${nextSeq(sessionId)}, ${test.name}, ${test.source},
          ${event.refName}, ${event.sha}, 'QUEUED', ${request}, ${test.priority}, ${event.expectedMs === undefined ? null : Math.round(event.expectedMs)})`)
    }
  })

  const startedRows = Effect.fnUntraced(function*(sessionId: string, event: AttemptStarted) {
    yield* requireTest(sessionId, event.testId)
    yield* run(sql`INSERT INTO attempts (session_id, test_id, n, status, worker, worktree, started_at, log_path)
      VALUES (${sessionId}, ${event.testId}, ${event.n}, 'RUNNING', ${event.worker}, ${event.worktree},
        ${event.startedAt}, ${event.logPath})
      ON CONFLICT (session_id, test_id, n) DO UPDATE SET
        status = 'RUNNING', worker = excluded.worker, worktree = excluded.worktree,
        started_at = excluded.started_at, log_path = excluded.log_path, exit_code = NULL, signal = NULL,
        duration_ms = NULL, tail = NULL, message = NULL, pgid = NULL, process_start_time = NULL`)
    yield* run(sql`UPDATE executions SET status = 'RUNNING'
      WHERE session_id = ${sessionId} AND test_id = ${event.testId} AND status IN ('QUEUED', 'RUNNING')`)
  })

  const finishedRows = Effect.fnUntraced(function*(sessionId: string, result: TestResult) {
    const values = secrets.get(key(sessionId, result.id)) ?? []
    yield* requireSession(sessionId)
    yield* run(sql`INSERT INTO executions (session_id, test_id, seq, name, source, ref_name, sha, status,
        request, priority, duration_ms, flakiness, kept_worktree)
      VALUES (${sessionId}, ${result.id}, ${nextSeq(sessionId)}, ${result.name}, ${result.source},
        ${result.ref}, '', ${result.status}, NULL, 0, ${result.durationMs}, ${result.flakiness ?? null},
        ${result.keptWorktree ?? null})
      ON CONFLICT (session_id, test_id) DO UPDATE SET
        status = excluded.status, duration_ms = excluded.duration_ms, flakiness = excluded.flakiness,
        kept_worktree = excluded.kept_worktree`)
    for (const attempt of result.attempts) {
      yield* upsertAttempt(attemptRow(sessionId, result.id, attempt, values))
    }
  })

  const writeOf = (sessionId: string, event: SessionEvent, meta?: RecordMeta): Effect.Effect<EventWrite, StoreError> => {
    switch (event._tag) {
      case "SessionStarted":
        return Effect.succeed({
          what: `record the start of session ${sessionId}`,
          statements: run(sql`INSERT INTO sessions (id, status, started_at, base_ref, base_sha, workers, repo_root, pid, config)
            VALUES (${sessionId}, 'RUNNING', ${event.startedAt}, ${event.baseRef}, ${event.baseSha}, ${event.workers},
              ${meta?.repoRoot ?? ""}, ${meta?.pid ?? 0}, ${meta?.config ?? "{}"})
            ON CONFLICT (id) DO UPDATE SET
              status = 'RUNNING', completed_at = NULL, duration_ms = NULL, workers = excluded.workers,
              total = NULL, passed = NULL, flaky = NULL, failed = NULL, timed_out = NULL, error = NULL,
              cancelled = NULL, success_rate = NULL,
              repo_root = COALESCE(${meta?.repoRoot ?? null}, sessions.repo_root),
              pid = COALESCE(${meta?.pid ?? null}, sessions.pid),
              config = COALESCE(${meta?.config ?? null}, sessions.config)`).pipe(Effect.zipRight(recordOwner(sessionId, meta))),
          committed: () => stored.add(key(sessionId, ""))
        })
      case "TestQueued": {
        const test = event.test
        // its secrets are known before anything else is written: a batch may hold its attempts too
        return Effect.map(storedRequest(sessionId, test, environment, where), (request) => {
          secrets.set(key(sessionId, test.id), secretValues(test, environment))
          return {
            what: `record that test ${test.id} of session ${sessionId} was queued`,
            statements: queuedRows(sessionId, event, request),
            committed: () => stored.add(key(sessionId, test.id))
          }
        })
      }
      case "AttemptStarted":
        return Effect.succeed({
          what: `record the start of attempt ${event.n} of test ${event.testId} of session ${sessionId}`,
          statements: startedRows(sessionId, event)
        })
      case "Relocated":
        return Effect.succeed({
          what: `record that attempt ${event.n} of test ${event.testId} of session ${sessionId} moved to ${event.to}`,
          statements: Effect.zipRight(
            requireSession(sessionId),
            run(sql`UPDATE attempts SET worktree = ${event.to}
              WHERE session_id = ${sessionId} AND test_id = ${event.testId} AND n = ${event.n}`)
          )
        })
      case "AttemptSpawned":
        return Effect.succeed({
          what: `record the process group of attempt ${event.n} of test ${event.testId} of session ${sessionId}`,
          statements: Effect.zipRight(
            requireSession(sessionId),
            run(sql`UPDATE attempts SET pgid = ${event.pgid}, process_start_time = ${event.processStartTime}
              WHERE session_id = ${sessionId} AND test_id = ${event.testId} AND n = ${event.n}`)
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
            run(sql`UPDATE executions SET status = 'QUEUED'
              WHERE session_id = ${sessionId} AND test_id = ${event.testId} AND status IN ('QUEUED', 'RUNNING')`)
          )
        })
      case "TestFinished": {
        const result = event.result
        return Effect.succeed({
          what: `record the result of test ${result.id} of session ${sessionId}`,
          statements: finishedRows(sessionId, result),
          committed: () => {
            secrets.delete(key(sessionId, result.id))
            stored.delete(key(sessionId, result.id))
          }
        })
      }
      case "SessionFinished": {
        const totals = SessionState.totals(event.counts)
        return Effect.succeed({
          what: `record the end of session ${sessionId}`,
          statements: Effect.zipRight(
            requireSession(sessionId),
            run(sql`UPDATE sessions SET status = ${event.status},
                completed_at = ${event.completedAt},
                duration_ms = ${sql.literal(dialect.greatest)}(0, ${event.completedAt} - started_at), total = ${totals.total}, passed = ${totals.passed},
                flaky = ${totals.flaky}, failed = ${totals.failed}, timed_out = ${totals.timedOut},
                error = ${totals.error}, cancelled = ${totals.cancelled}, success_rate = ${totals.successRate}
              WHERE id = ${sessionId}`)
          ),
          committed: () => forgetSession(sessionId)
        })
      }
    }
  }

  const lastSeq = (sessionId: string) =>
    Effect.map(
      run(sql<{ readonly last: number }>`SELECT COALESCE(MAX(seq), 0) AS last FROM events WHERE session_id = ${sessionId}`),
      (rows) => rows[0]?.last ?? 0
    )

  /**
   * The event's write with its log entry: the projection's statements, then the event
   * appended under `seq` (default: the log's next), in the same transaction. Its
   * payload is made first, with the secrets its test's TestQueued made known.
   */
  const logged = Effect.fnUntraced(function*(sessionId: string, event: SessionEvent, w: EventWrite, seq: number | undefined) {
    const testId = testIdOf(event)
    const payload = yield* Effect.mapError(
      eventPayload(event, testId === undefined ? [] : secrets.get(key(sessionId, testId)) ?? [], environment),
      (cause) => new StoreError({ reason: "Query", detail: `${where}: could not encode a ${event._tag} event of session ${sessionId}: ${cause.message}`, cause })
    )
    return loggedRows(sessionId, event._tag, payload, w.statements, seq)
  })

  const loggedRows = Effect.fnUntraced(function*(
    sessionId: string,
    tag: SessionEvent["_tag"],
    payload: string,
    statements: EventWrite["statements"],
    seq: number | undefined
  ) {
    const insert = (n: number) =>
      run(sql`INSERT INTO events (session_id, seq, tag, payload) VALUES (${sessionId}, ${n}, ${tag}, ${payload})`)
    yield* statements
    if (seq === undefined) {
      const n = (yield* lastSeq(sessionId)) + 1
      yield* insert(n)
      return n
    }
    // the writer numbers its events in order: a number already in the log is one
    // another writer took (the key refuses it), with no read per event
    yield* insert(seq).pipe(
      Effect.catchIf(
        (e) => dialect.isUniqueViolation(e, "events"),
        () => Effect.fail(seqTaken(sessionId, seq, where))
      )
    )
    return seq
  })

  const record: (sessionId: string, event: SessionEvent, options?: RecordOptions) => Effect.Effect<number, StoreError> =
    Effect.fnUntraced(function*(sessionId: string, event: SessionEvent, options?: RecordOptions) {
      const w = yield* writeOf(sessionId, event, options?.meta)
      const statements = yield* logged(sessionId, event, w, options?.seq)
      const seq = yield* write(sessionId, w.what, statements)
      w.committed?.()
      return seq
    })

  /**
   * Many events in one transaction (one commit instead of one per event). When that
   * fails, they are written one by one, so the error names the event it is about and
   * the events before it are kept.
   */
  const recordAll: (
    sessionId: string,
    events: ReadonlyArray<SessionEvent>,
    options?: { readonly firstSeq?: number }
  ) => Effect.Effect<number, StoreError> = Effect.fnUntraced(
    function*(sessionId: string, events: ReadonlyArray<SessionEvent>, options?: { readonly firstSeq?: number }) {
      const first = options?.firstSeq ?? (yield* read(`read the event log of session ${sessionId}`, lastSeq(sessionId))) + 1
      const one = (e: SessionEvent, i: number) => record(sessionId, e, { seq: first + i })
      if (events.length <= 1) {
        yield* Effect.forEach(events, one, { discard: true })
        return first + events.length - 1
      }
      // each event's statements are made as the transaction comes to them, not all before
      // it: what a write holds dies with its statements instead of living as long as the
      // whole transaction (V8 pretenures the allocation sites of objects a burst keeps
      // alive, and then allocates them in old space for every later event as well)
      const committed: Array<() => void> = []
      return yield* write(
        sessionId,
        `record ${events.length} events of session ${sessionId}`,
        Effect.forEach(events, (e, i) =>
          Effect.flatMap(writeOf(sessionId, e), (w) => {
            if (w.committed !== undefined) committed.push(w.committed)
            return Effect.flatten(logged(sessionId, e, w, first + i))
          }), { discard: true })
      ).pipe(
        Effect.tap(() => Effect.sync(() => committed.forEach((f) => f()))),
        Effect.as(first + events.length - 1),
        Effect.catchAll(() => Effect.as(Effect.forEach(events, one, { discard: true }), first + events.length - 1))
      )
    }
  )

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
        COUNT(CASE WHEN e.status IN ('PASSED', 'FLAKY') THEN 1 END) AS passed,
        COUNT(CASE WHEN e.status IN ('FAILED', 'TIMED_OUT', 'ERROR', 'CANCELLED') THEN 1 END) AS not_passed
      FROM (SELECT * FROM sessions
        ${filter === "all" ? sql`` : sql`WHERE id = ${filter.id}`}
        ORDER BY started_at DESC, id DESC LIMIT ${limit}) AS s
      LEFT JOIN executions e ON e.session_id = s.id
      GROUP BY s.id, s.status, s.started_at, s.completed_at, s.repo_root, s.pid
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
    queued: (sessionId, ids) =>
      read(
        `read the tests of session ${sessionId}`,
        Effect.gen(function*() {
          const found = new Set<string>()
          for (const chunk of chunksOf([...new Set(ids)], 500)) {
            const rows = yield* sql<{ readonly test_id: string }>`SELECT test_id FROM executions
              WHERE session_id = ${sessionId} AND ${sql.in("test_id", chunk)}`
            for (const row of rows) found.add(row.test_id)
          }
          return found
        })
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
          yield* checkSession(sessionId)
          return yield* testsWithStatus(sessionId, ["QUEUED", "RUNNING"], where)
        })
      ),
    liveGroups: (sessionId) =>
      read(
        `read the running attempts of session ${sessionId}`,
        Effect.gen(function*() {
          yield* checkSession(sessionId)
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
        sessionId,
        `delete session ${sessionId}`,
        Effect.zipRight(checkSession(sessionId), deleteRows([sessionId]))
      ).pipe(Effect.tap(() => Effect.sync(() => forgetSession(sessionId)))),
    gc: (keep) =>
      write(
        "",
        "delete old sessions",
        Effect.gen(function*() {
          const rows = yield* sql<{ readonly id: string }>`SELECT id FROM sessions
            ORDER BY started_at DESC, id DESC ${sql.literal(dialect.noLimit)} OFFSET ${Math.max(0, keep)}`
          const ids = rows.map((r) => r.id)
          yield* deleteRows(ids)
          return ids
        })
      ).pipe(Effect.tap((ids) => Effect.sync(() => ids.forEach(forgetSession)))),
    owner: (sessionId) =>
      read(
        `read the owner of session ${sessionId}`,
        Effect.flatMap(
          sql<{
            readonly status: string
            readonly host: string | null
            readonly pid: number
            readonly heartbeat_at: number | null
          }>`SELECT status, host, pid, heartbeat_at FROM sessions WHERE id = ${sessionId}`,
          (rows) =>
            rows[0] === undefined
              ? Effect.fail(unknownSession(sessionId, where))
              : Effect.succeed<SessionOwner>({
                sessionId,
                status: rows[0].status as SessionStatus,
                host: rows[0].host ?? undefined,
                pid: rows[0].pid,
                heartbeatAt: rows[0].heartbeat_at ?? undefined
              })
        )
      ),
    heartbeat: (sessionId, beat: Beat) =>
      write(
        sessionId,
        `record a heartbeat of session ${sessionId}`,
        Effect.map(
          sql<{ readonly id: string }>`UPDATE sessions SET heartbeat_at = ${beat.at}
            WHERE id = ${sessionId} AND status = 'RUNNING' AND host = ${beat.host} AND pid = ${beat.pid}
            RETURNING id`,
          (rows) => rows.length > 0
        )
      )
  })
  return self
}
