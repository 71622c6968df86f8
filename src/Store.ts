/**
 * The record of sessions, tests and attempts (SPEC §5). The Orchestrator writes every
 * event through `record` before anything that depends on it happens. This module holds
 * the service, the row shapes and folds every backend shares, and `layerMemory`; the
 * SQLite backend is `SqlStore`.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import {
  Attempt,
  isSuccess,
  isTerminal,
  Logged,
  type Report,
  SessionEvent,
  type SessionStatus,
  type TestId,
  TestRequest,
  TestResult,
  type TestStatus
} from "./Domain.js"
import { StoreError } from "./GroveError.js"
import { fromState } from "./Report.js"
import * as SessionState from "./SessionState.js"

/**
 * What history says of one test.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestHistory {
  /** median duration of its last 10 PASSED/FLAKY executions, in ms */
  readonly expectedMs: number | undefined
  /** share (0..1) of its last 20 finished executions (CANCELLED ones not counted) that ended FLAKY */
  readonly flakiness: number | undefined
  /** the statuses of those finished executions, newest first; absent when there are none */
  readonly recent?: ReadonlyArray<TestStatus>
}

/**
 * A test of a stored session that has no terminal status yet (for --resume).
 *
 * @since 0.1.0
 * @category models
 */
export interface PendingTest {
  readonly request: TestRequest
  readonly sha: string
  readonly refName: string
  /** attempts already made; the next one is attempts + 1 */
  readonly attempts: number
  /**
   * the `secretEnv` names whose values the store masked as `***` in the stored request
   * (in a step's script, or elsewhere): it cannot run as stored (SPEC §4 "Secrets")
   */
  readonly masked?: ReadonlyArray<string> | undefined
}

/**
 * The tests that did not pass in the latest finished session of a repository.
 *
 * @since 0.1.0
 * @category models
 */
export interface LastFailed {
  readonly sessionId: string
  /** in queue order; `attempts` is how many that session made */
  readonly tests: ReadonlyArray<PendingTest>
}

/**
 * A process group recorded for an attempt that has no end yet (for reaping).
 *
 * @since 0.1.0
 * @category models
 */
export interface LiveGroup {
  readonly pgid: number
  readonly processStartTime: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionSummary {
  readonly id: string
  readonly status: string
  readonly startedAt: number
  readonly completedAt: number | undefined
  readonly total: number
  /** tests that ended PASSED or FLAKY */
  readonly passed: number
  /** tests that ended FAILED, TIMED_OUT, ERROR or CANCELLED (tests still waiting or running are in neither) */
  readonly notPassed: number
  readonly repoRoot: string
  readonly pid: number
}

/**
 * Who runs (or last ran) a session: the grove process's host and pid, and when it
 * last said it was alive (`heartbeat`). A session recorded before store schema 4
 * has no host and no heartbeat.
 *
 * @since 0.3.0
 * @category models
 */
export interface SessionOwner {
  readonly sessionId: string
  readonly status: SessionStatus
  /** `os.hostname()` (or `GROVE_HOST`) of the owner; undefined when the store does not know */
  readonly host: string | undefined
  readonly pid: number
  /** epoch millis of the owner's last heartbeat; undefined when there was none */
  readonly heartbeatAt: number | undefined
}

/**
 * A heartbeat of a session's owner (`Store.heartbeat`).
 *
 * @since 0.3.0
 * @category models
 */
export interface Beat {
  readonly host: string
  readonly pid: number
  /** epoch millis, from Clock */
  readonly at: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Store extends Context.Tag("grove/Store")<Store, {
  /**
   * whether writers that come together gain from sharing one write (default true): a
   * store whose write is a transaction (SQLite's commit, a round trip to PostgreSQL)
   * does, so the session's log hands each batch of concurrent events to one writer; the
   * in-memory store's writes cost nothing to share (false), so its log is written by
   * each caller in turn, with no hand-over between fibers
   */
  readonly groupCommit?: boolean
  /**
   * write one event of a session; SessionStarted creates the session row (again for a
   * resumed session: status RUNNING, start and base kept), TestQueued for a test already
   * queued updates it unless it has ended; other events of an unknown session fail with
   * `UnknownSession`, attempts of a test never queued with `Query`
   */
  readonly record: (sessionId: string, event: SessionEvent, options?: RecordOptions) => Effect.Effect<number, StoreError>
  /**
   * `record` of each event in order, in one write where the backend can (a submitted
   * batch's TestQueued events), numbered from `firstSeq` (default: the log's next);
   * returns the last number. Fails with the first event's error that `record` gives;
   * the events before it are kept.
   */
  readonly recordAll: (
    sessionId: string,
    events: ReadonlyArray<SessionEvent>,
    options?: { readonly firstSeq?: number }
  ) => Effect.Effect<number, StoreError>
  /** up to `limit` events of the session with a sequence number above `after`, in order */
  readonly events: (
    sessionId: string,
    options: { readonly after: number; readonly limit: number }
  ) => Effect.Effect<ReadonlyArray<Logged>, StoreError>
  /**
   * up to `limit` tests of the session after queue position `after` (1-based: a page
   * starts after the last `seq` of the one before), in queue order, with their
   * attempts; only those with one of `statuses`, and only those of `ids`, when given
   */
  readonly tests: (sessionId: string, options: TestsQuery) => Effect.Effect<ReadonlyArray<QueuedResult>, StoreError>
  readonly sessions: (limit: number) => Effect.Effect<ReadonlyArray<SessionSummary>, StoreError>
  /**
   * the session's report: its stored events folded (`SessionState`) with its tests
   * (tests without a result show QUEUED/RUNNING); derived from `events` and `tests`
   */
  readonly report: (sessionId: string) => Effect.Effect<Option.Option<Report>, StoreError>
  readonly history: (ids: ReadonlyArray<TestId>) => Effect.Effect<ReadonlyMap<TestId, TestHistory>, StoreError>
  readonly pending: (sessionId: string) => Effect.Effect<ReadonlyArray<PendingTest>, StoreError>
  readonly liveGroups: (sessionId: string) => Effect.Effect<ReadonlyArray<LiveGroup>, StoreError>
  /** ids of the tests that did not pass in the latest finished session of this repository */
  readonly lastFailed: (repoRoot: string) => Effect.Effect<Option.Option<ReadonlyArray<TestId>>, StoreError>
  /**
   * the tests of `lastFailed` with their stored requests (secret values not stored),
   * and the session they come from (for `--last-failed`)
   */
  readonly lastFailedTests: (repoRoot: string) => Effect.Effect<Option.Option<LastFailed>, StoreError>
  /** deletes a session with its executions and attempts */
  readonly deleteSession: (sessionId: string) => Effect.Effect<void, StoreError>
  /**
   * which of `ids` the session already holds (queued, running or ended): a second test
   * with one of those ids is refused, without the engine keeping every id it was given
   */
  readonly queued: (sessionId: string, ids: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, StoreError>
  /** the summary of one session; fails with `StoreError({ reason: "UnknownSession" })` when there is none */
  readonly requireSession: (sessionId: string) => Effect.Effect<SessionSummary, StoreError>
  /**
   * the config snapshot a session was last started with (`RecordMeta.config`, JSON);
   * fails with `UnknownSession` when there is none
   */
  readonly sessionConfig: (sessionId: string) => Effect.Effect<string, StoreError>
  /**
   * deletes every session but the newest `keep` (by start time), with their executions and
   * attempts; returns the deleted ids, newest first (the caller removes their log folders)
   */
  readonly gc: (keep: number) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** who owns the session (`SessionOwner`); fails with `UnknownSession` when there is none */
  readonly owner: (sessionId: string) => Effect.Effect<SessionOwner, StoreError>
  /**
   * the owner's heartbeat: sets the session's heartbeat to `beat.at` while it is
   * RUNNING and still owned by `beat`'s host and pid; returns whether it was (false:
   * the session ended, is gone, or another grove took it over with --resume)
   */
  readonly heartbeat: (sessionId: string, beat: Beat) => Effect.Effect<boolean, StoreError>
}>() {}

/**
 * Which tests of a session `Store.tests` reads.
 *
 * @since 0.2.0
 * @category models
 */
export interface TestsQuery {
  readonly after: number
  readonly limit: number
  readonly statuses?: ReadonlyArray<TestStatus> | undefined
  readonly ids?: ReadonlyArray<string> | undefined
}

/**
 * A test of a session with its queue position.
 *
 * @since 0.2.0
 * @category models
 */
export interface QueuedResult {
  readonly seq: number
  readonly result: TestResult
}

/**
 * What `record` takes besides the event: the sequence number to log it under
 * (default: the log's next), and with SessionStarted the facts of the process
 * that runs the session.
 *
 * @since 0.2.0
 * @category models
 */
export interface RecordOptions {
  readonly seq?: number | undefined
  readonly meta?: RecordMeta | undefined
}

/**
 * Facts of the process that runs the session, stored with its SessionStarted.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordMeta {
  readonly repoRoot: string
  readonly pid: number
  /** the config snapshot, as JSON */
  readonly config: string
  /** the host the process runs on (`Heartbeat.localHost`); absent: unknown */
  readonly host?: string | undefined
  /** its first heartbeat (epoch millis); absent: none yet */
  readonly heartbeatAt?: number | undefined
}

// -----------------------------------------------------------------------------
// rows: the shape of the tables (SPEC §5), shared by every backend
// -----------------------------------------------------------------------------

/**
 * One row of `sessions`. Times are epoch millis.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionRow {
  readonly id: string
  readonly status: SessionStatus
  readonly startedAt: number
  readonly completedAt: number | null
  readonly durationMs: number | null
  readonly baseRef: string
  readonly baseSha: string
  readonly workers: number
  readonly repoRoot: string
  readonly pid: number
  readonly config: string
  /** the owner's host; null when unknown (recorded before store schema 4) */
  readonly host: string | null
  /** the owner's last heartbeat, epoch millis; null when there was none */
  readonly heartbeatAt: number | null
}

/**
 * One row of `executions`: a test of a session. `seq` is its queue order (1-based);
 * `request` is the encoded TestRequest without secret values.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecutionRow {
  readonly sessionId: string
  readonly testId: string
  readonly seq: number
  readonly name: string
  readonly source: string
  readonly refName: string
  readonly sha: string
  readonly status: TestStatus
  readonly request: string | null
  readonly priority: number
  readonly expectedMs: number | null
  readonly durationMs: number | null
  readonly flakiness: number | null
  readonly keptWorktree: string | null
}

/**
 * One row of `attempts`, like a line of GNU parallel's joblog.
 *
 * @since 0.1.0
 * @category models
 */
export interface AttemptRow {
  readonly sessionId: string
  readonly testId: string
  readonly n: number
  readonly status: TestStatus
  readonly exitCode: number | null
  readonly signal: string | null
  readonly worker: number
  readonly worktree: string
  readonly startedAt: number
  readonly durationMs: number | null
  readonly logPath: string
  readonly tail: string | null
  readonly message: string | null
  readonly pgid: number | null
  readonly processStartTime: string | null
}

// -----------------------------------------------------------------------------
// pure folds shared by the backends
// -----------------------------------------------------------------------------

/**
 * Where secret values come from besides a plan's `env`: grove's environment
 * (`process.env`), or the one a store or a test is given.
 *
 * @since 0.2.0
 * @category models
 */
export type Environment = Readonly<Record<string, string | undefined>>

/**
 * Values of the test's `secretEnv` variables: from its `env`, else from `environment`
 * (grove's own) — the values the Runner masks in output and the store never holds.
 * Non-empty, deduplicated, longest first.
 *
 * @since 0.1.0
 * @category utils
 */
export const secretValues = (test: TestRequest, environment: Environment): ReadonlyArray<string> =>
  secretsOf(test, environment).values

/** the secret values of `secretValues`, with the name each came from */
const secretsOf = (test: TestRequest, environment: Environment) => {
  const names = new Map<string, string>()
  for (const name of test.secretEnv) {
    const value = test.env[name] ?? environment[name]
    if (value !== undefined && value.length > 0 && !names.has(value)) names.set(value, name)
  }
  return { values: [...names.keys()].sort((a, b) => b.length - a.length), names }
}

/**
 * Replaces every occurrence of a secret by `***` (longest secret first).
 *
 * @since 0.1.0
 * @category utils
 */
export const maskSecrets = (text: string, secrets: ReadonlyArray<string>): string =>
  secrets.reduce((acc, secret) => secret.length === 0 ? acc : acc.replaceAll(secret, "***"), text)

const stringsIn = (value: unknown): ReadonlyArray<string> =>
  typeof value === "string"
    ? [value]
    : value !== null && typeof value === "object"
    ? Object.values(value).flatMap(stringsIn)
    : []

const maskDeep = (value: unknown, secrets: ReadonlyArray<string>): unknown => {
  if (typeof value === "string") return maskSecrets(value, secrets)
  if (Array.isArray(value)) return value.map((v) => maskDeep(v, secrets))
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskDeep(v, secrets)]))
  }
  return value
}

/**
 * The request as the store keeps it: encoded with the `TestRequest` schema, without
 * the variables named in `secretEnv` (a resumed session takes them from grove's
 * environment or the plan again), and with any secret value (`secretValues`) that
 * appears elsewhere masked — the store never holds a secret value. When one was,
 * `secretsMasked` lists the names of those secrets (`PendingTest.masked`): a request
 * with `***` in its script must not run as stored.
 *
 * @since 0.1.0
 * @category utils
 */
export const encodeRequest = (test: TestRequest, environment: Environment): Effect.Effect<string, ParseResult.ParseError> =>
  Effect.map(requestAsStored(test, environment), (encoded) => JSON.stringify(encoded))

const requestAsStored = (test: TestRequest, environment: Environment): Either.Either<unknown, ParseResult.ParseError> =>
  encodeTestRequest(test).pipe(
    Either.map((encoded) => {
      if (test.secretEnv.length === 0) return encoded
      const secretNames = new Set(test.secretEnv)
      const env = Object.fromEntries(Object.entries(encoded.env ?? {}).filter(([name]) => !secretNames.has(name)))
      const kept = { ...encoded, env }
      const { names, values } = secretsOf(test, environment)
      const strings = stringsIn(kept)
      const masked = [...new Set(values.filter((v) => strings.some((t) => t.includes(v))).map((v) => names.get(v)!))].sort()
      return masked.length === 0 ? kept : { ...(maskDeep(kept, values) as object), secretsMasked: masked }
    })
  )

/** what `pendingTest` reads of a stored request besides the `TestRequest` */
const StoredMasks = Schema.parseJson(Schema.Struct({ secretsMasked: Schema.optional(Schema.Array(Schema.String)) }))

// the synchronous encoders: every event of every session goes through them, and the
// Effect-returning ones run a fiber step per field
const encodeTestRequest = Schema.encodeEither(TestRequest)
const encodeEvent = Schema.encodeEither(SessionEvent)
const decodeEvent = Schema.decodeUnknown(Schema.parseJson(SessionEvent))

/**
 * The payload the event log keeps of an event: its Schema encoding as JSON, with
 * the secrets of its test masked (a queued request as `encodeRequest` keeps it, its
 * secret values taken from its `env` and `environment`).
 *
 * @since 0.2.0
 * @category utils
 */
export const eventPayload = (
  event: SessionEvent,
  secrets: ReadonlyArray<string>,
  environment: Environment
): Either.Either<string, ParseResult.ParseError> =>
  Either.flatMap(encodeEvent(event), (encoded) =>
    event._tag === "TestQueued" && event.test.secretEnv.length > 0
      ? Either.map(requestAsStored(event.test, environment), (test) => JSON.stringify({ ...encoded, test }))
      : Either.right(JSON.stringify(secrets.length === 0 ? encoded : maskDeep(encoded, secrets))))

/**
 * Reads back a payload of the event log.
 *
 * @since 0.2.0
 * @category utils
 */
export const decodePayload = (
  sessionId: string,
  seq: number,
  payload: string,
  where: string
): Effect.Effect<Logged, StoreError> =>
  decodeEvent(payload).pipe(
    Effect.map((event) => new Logged({ seq, event }, true)),
    Effect.mapError((cause) =>
      new StoreError({
        reason: "Query",
        detail: `event ${seq} of session ${sessionId} in ${where} cannot be read (${cause.message}); ` +
          "a newer grove may have written it: upgrade grove",
        cause
      })
    )
  )

/**
 * Reads back a request stored by `encodeRequest`.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeRequest = (json: string): Effect.Effect<TestRequest, ParseResult.ParseError> =>
  Schema.decodeUnknown(Schema.parseJson(TestRequest))(json)

/**
 * The median of some numbers (mean of the middle two for an even count).
 *
 * @since 0.1.0
 * @category utils
 */
export const median = (values: ReadonlyArray<number>): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** how many past executions `historyOf` looks at */
const historyWindow = { durations: 10, flakiness: 20 } as const

/**
 * What history says of one test, from its executions newest first: the median
 * duration of the last 10 PASSED/FLAKY ones, and the share of the last 20 finished
 * ones that ended FLAKY. CANCELLED executions say nothing about the test and are
 * skipped; so are tests still waiting or running.
 *
 * @since 0.1.0
 * @category utils
 */
export const historyOf = (
  newestFirst: ReadonlyArray<{ readonly status: TestStatus; readonly durationMs: number | null }>
): TestHistory => {
  const durations: Array<number> = []
  const recent: Array<TestStatus> = []
  for (const row of newestFirst) {
    if (isSuccess(row.status) && row.durationMs !== null && durations.length < historyWindow.durations) {
      durations.push(row.durationMs)
    }
    if (isTerminal(row.status) && row.status !== "CANCELLED" && recent.length < historyWindow.flakiness) {
      recent.push(row.status)
    }
  }
  const expected = median(durations)
  return {
    // whole milliseconds, as every store keeps them (the mean of two middle values may be x.5)
    expectedMs: expected === undefined ? undefined : Math.round(expected),
    flakiness: flakyShare(recent),
    ...(recent.length === 0 ? {} : { recent })
  }
}

const flakyShare = (statuses: ReadonlyArray<TestStatus>): number | undefined =>
  statuses.length === 0 ? undefined : statuses.filter((s) => s === "FLAKY").length / statuses.length

/**
 * The flakiness of a test that just ended with `status`, given what history said of
 * it before: the share of FLAKY among this execution and the finished ones before it
 * (20 in all). A CANCELLED or unfinished status says nothing: history's figure stays.
 *
 * @since 0.1.0
 * @category utils
 */
export const flakinessWith = (history: TestHistory | undefined, status: TestStatus): number | undefined =>
  !isTerminal(status) || status === "CANCELLED"
    ? history?.flakiness
    : flakyShare([status, ...(history?.recent ?? [])].slice(0, historyWindow.flakiness))

/**
 * A session row with the statuses of its tests, as listed by `sessions`.
 *
 * @since 0.1.0
 * @internal
 */
export const summaryOf = (session: SessionRow, statuses: ReadonlyArray<TestStatus>): SessionSummary => ({
  id: session.id,
  status: session.status,
  startedAt: session.startedAt,
  completedAt: session.completedAt ?? undefined,
  total: statuses.length,
  passed: statuses.filter(isSuccess).length,
  notPassed: statuses.filter((s) => isTerminal(s) && !isSuccess(s)).length,
  repoRoot: session.repoRoot,
  pid: session.pid
})

/**
 * Rows the store wrote itself, so their classes are built without validation. Not only
 * a check saved: Effect 3's class constructor validates through `AST.typeAST` of its
 * fields, which builds a new AST whenever a field transforms (`startedAt` is a
 * DateTimeUtc), so every validated `new Attempt` compiled a new parser (≈ 45 µs, and an
 * entry in Schema's memo WeakMap, whose table only grows: 4 MiB after 20,000 tests).
 */
const fromStore = { disableValidation: true } as const

const attemptOf = (row: AttemptRow): Attempt =>
  new Attempt({
    n: row.n,
    status: row.status,
    exitCode: row.exitCode,
    signal: row.signal,
    worker: row.worker,
    worktree: row.worktree,
    startedAt: DateTime.unsafeMake(row.startedAt),
    durationMs: row.durationMs ?? 0,
    logPath: row.logPath,
    tail: row.tail ?? "",
    ...(row.message === null ? {} : { message: row.message })
  }, fromStore)

/**
 * A stored test with its attempts (in attempt order) as a TestResult.
 *
 * @since 0.2.0
 * @category utils
 */
export const resultOf = (execution: ExecutionRow, attempts: ReadonlyArray<AttemptRow>): TestResult => {
  const list = [...attempts].sort((a, b) => a.n - b.n).map(attemptOf)
  return new TestResult({
    id: execution.testId as TestId,
    name: execution.name,
    source: execution.source,
    ref: execution.refName,
    status: execution.status,
    durationMs: execution.durationMs ?? list.reduce((sum, a) => sum + a.durationMs, 0),
    attempts: list,
    ...(execution.keptWorktree === null ? {} : { keptWorktree: execution.keptWorktree }),
    ...(execution.flakiness === null ? {} : { flakiness: execution.flakiness })
  }, fromStore)
}

/** events and tests read from a store per page */
const page = 500

/**
 * Every event of a session after `after`, read from the store a page at a time.
 *
 * @since 0.2.0
 * @category utils
 */
export const eventStream = (
  store: Pick<Context.Tag.Service<Store>, "events">,
  sessionId: string,
  after = 0
): Stream.Stream<Logged, StoreError> =>
  Stream.paginateChunkEffect(after, (from) =>
    Effect.map(store.events(sessionId, { after: from, limit: page }), (events) => {
      const last = events[events.length - 1]
      return [
        Chunk.unsafeFromArray(events as Array<Logged>),
        events.length < page || last === undefined ? Option.none() : Option.some(last.seq)
      ] as const
    }))

/**
 * The tests of a session in queue order (with `statuses`: only those; with `after`:
 * those queued after that position), read from the store a page at a time.
 *
 * @since 0.2.0
 * @category utils
 */
export const testStream = (
  store: Pick<Context.Tag.Service<Store>, "tests">,
  sessionId: string,
  statuses?: ReadonlyArray<TestStatus>,
  after = 0
): Stream.Stream<TestResult, StoreError> =>
  Stream.paginateChunkEffect(after, (from) =>
    Effect.map(
      store.tests(sessionId, { after: from, limit: page, ...(statuses === undefined ? {} : { statuses }) }),
      (rows) => {
        const last = rows[rows.length - 1]
        return [
          Chunk.unsafeFromArray(rows.map((r) => r.result)),
          rows.length < page || last === undefined ? Option.none() : Option.some(last.seq)
        ] as const
      }
    ))

/**
 * The folded state of a stored session: none when the store holds no event of it.
 *
 * @since 0.2.0
 * @category utils
 */
export const stateOf = (
  store: Pick<Context.Tag.Service<Store>, "events">,
  sessionId: string
): Effect.Effect<Option.Option<SessionState.SessionState>, StoreError> =>
  Effect.map(
    SessionState.fromStream(eventStream(store, sessionId), SessionState.initial(sessionId)),
    (state) => state.seq === 0 ? Option.none() : Option.some(state)
  )

/**
 * `Store.report` from the primitives every backend has: the stored events folded,
 * with the stored tests.
 *
 * @since 0.2.0
 * @category utils
 */
export const loadReport = (
  store: Pick<Context.Tag.Service<Store>, "events" | "tests">,
  sessionId: string
): Effect.Effect<Option.Option<Report>, StoreError> =>
  Effect.flatMap(stateOf(store, sessionId), (state) =>
    Option.isNone(state)
      ? Effect.succeed(Option.none())
      : Effect.map(
        Stream.runCollect(testStream(store, sessionId)),
        (tests) => Option.some(fromState(state.value, Chunk.toReadonlyArray(tests)))
      ))

/**
 * Sessions newest first: by start time, then by id.
 *
 * @since 0.1.0
 * @internal
 */
export const newestFirst = (a: SessionRow, b: SessionRow): number =>
  b.startedAt - a.startedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)

/**
 * The error for a session id the store does not hold.
 *
 * @since 0.1.0
 * @internal
 */
export const unknownSession = (sessionId: string, where: string): StoreError =>
  new StoreError({
    reason: "UnknownSession",
    detail: `there is no session ${JSON.stringify(sessionId)} in ${where}: \`grove sessions\` lists the ones it holds`
  })

/**
 * The error for an attempt event about a test that was never queued in its session.
 *
 * @since 0.1.0
 * @internal
 */
export const unknownTest = (sessionId: string, testId: string, where: string): StoreError =>
  new StoreError({
    reason: "Query",
    detail: `test ${JSON.stringify(testId)} was never queued in session ${sessionId} (${where}): ` +
      "record its TestQueued event before its attempts"
  })

/**
 * The error for an event logged under a sequence number the session's log has used.
 *
 * @since 0.2.0
 * @internal
 */
export const seqTaken = (sessionId: string, seq: number, where: string): StoreError =>
  new StoreError({
    reason: "Query",
    detail: `event ${seq} of session ${sessionId} is already in ${where}: ` +
      "another grove is writing this session; only one may run it at a time"
  })

/**
 * The test an event is about, if any.
 *
 * @since 0.2.0
 * @internal
 */
export const testIdOf = (event: SessionEvent): string | undefined => {
  switch (event._tag) {
    case "TestQueued":
      return event.test.id
    case "AttemptStarted":
    case "AttemptSpawned":
    case "Relocated":
    case "AttemptFinished":
    case "RetryScheduled":
      return event.testId
    case "TestFinished":
      return event.result.id
    case "SessionStarted":
    case "SessionFinished":
      return undefined
  }
}

/**
 * The row an attempt becomes, its tail and message masked; the process group of an
 * earlier row of the same attempt is kept.
 *
 * @since 0.1.0
 * @internal
 */
export const attemptRow = (
  sessionId: string,
  testId: string,
  attempt: Attempt,
  secrets: ReadonlyArray<string>,
  previous?: AttemptRow
): AttemptRow => ({
  sessionId,
  testId,
  n: attempt.n,
  status: attempt.status,
  exitCode: attempt.exitCode,
  signal: attempt.signal,
  worker: attempt.worker,
  worktree: attempt.worktree,
  startedAt: DateTime.toEpochMillis(attempt.startedAt),
  durationMs: attempt.durationMs,
  logPath: attempt.logPath,
  tail: maskSecrets(attempt.tail, secrets),
  message: attempt.message === undefined ? null : maskSecrets(attempt.message, secrets),
  pgid: previous?.pgid ?? null,
  processStartTime: previous?.processStartTime ?? null
})

const encodeFailed = (sessionId: string, testId: string, where: string) => (cause: ParseResult.ParseError) =>
  new StoreError({
    reason: "Query",
    detail: `could not encode the request of test ${testId} of session ${sessionId} for ${where}: ${cause.message}`,
    cause
  })

const decodeFailed = (sessionId: string, testId: string, where: string) => (cause: unknown) =>
  new StoreError({
    reason: "Query",
    detail: `the stored request of test ${testId} of session ${sessionId} in ${where} cannot be read` +
      (cause instanceof Error ? `: ${cause.message}` : "") +
      "; run the test again from its plan instead of resuming",
    cause
  })

/**
 * Encodes a request for storage, failing with a StoreError that names the test.
 *
 * @since 0.1.0
 * @internal
 */
export const storedRequest = (
  sessionId: string,
  test: TestRequest,
  environment: Environment,
  where: string
): Effect.Effect<string, StoreError> => Effect.mapError(encodeRequest(test, environment), encodeFailed(sessionId, test.id, where))

/**
 * Decodes a stored request, failing with a StoreError that names the test.
 *
 * @since 0.1.0
 * @internal
 */
export const pendingTest = (
  sessionId: string,
  row: { readonly testId: string; readonly request: string | null; readonly sha: string; readonly refName: string },
  attempts: number,
  where: string
): Effect.Effect<PendingTest, StoreError> =>
  row.request === null
    ? Effect.fail(decodeFailed(sessionId, row.testId, where)(new Error("no request was stored")))
    : Effect.zip(decodeRequest(row.request), Schema.decodeUnknown(StoredMasks)(row.request)).pipe(
      Effect.mapError(decodeFailed(sessionId, row.testId, where)),
      Effect.map(([request, { secretsMasked }]) => ({
        request,
        sha: row.sha,
        refName: row.refName,
        attempts,
        ...(secretsMasked === undefined ? {} : { masked: secretsMasked })
      }))
    )

/** the owner columns a SessionStarted with `meta` sets */
const ownerOfMeta = (meta: RecordMeta | undefined): Pick<SessionRow, "host" | "heartbeatAt"> => ({
  host: meta?.host ?? null,
  heartbeatAt: meta?.heartbeatAt ?? null
})

// -----------------------------------------------------------------------------
// in memory
// -----------------------------------------------------------------------------

interface MemoryExecution {
  row: ExecutionRow
  readonly attempts: Map<number, AttemptRow>
}

const where = "the in-memory store"

/**
 * What a store takes besides its file: `environment`, where the secret values of a
 * test's `secretEnv` not in its `env` come from (default: grove's, `process.env`) —
 * the ones the Runner masks, so the store never holds them either.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoreOptions {
  readonly environment?: Environment | undefined
}

/**
 * A store that keeps everything in memory, with the same semantics as the SQLite
 * one (the contract suite in `test/StoreSuite.ts` runs on both).
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemoryWith = (options: StoreOptions = {}): Effect.Effect<Context.Tag.Service<Store>> => Effect.sync(() => {
  const environment = options.environment ?? process.env
  const sessions = new Map<string, SessionRow>()
  const executions = new Map<string, Map<string, MemoryExecution>>()
  /** secret values per `session\0test`, to mask tails and messages */
  const secrets = new Map<string, ReadonlyArray<string>>()
  const key = (sessionId: string, testId: string) => `${sessionId}\u0000${testId}`

  const require = (sessionId: string): Effect.Effect<[SessionRow, Map<string, MemoryExecution>], StoreError> => {
    const session = sessions.get(sessionId)
    const tests = executions.get(sessionId)
    return session === undefined || tests === undefined
      ? Effect.fail(unknownSession(sessionId, where))
      : Effect.succeed([session, tests])
  }

  const requireTest = (sessionId: string, testId: string) =>
    Effect.flatMap(require(sessionId), ([, tests]) => {
      const entry = tests.get(testId)
      return entry === undefined ? Effect.fail(unknownTest(sessionId, testId, where)) : Effect.succeed(entry)
    })

  const statusesOf = (sessionId: string): ReadonlyArray<TestStatus> =>
    [...(executions.get(sessionId)?.values() ?? [])].map((e) => e.row.status)

  const project = (sessionId: string, event: SessionEvent, meta?: RecordMeta): Effect.Effect<void, StoreError> => {
    switch (event._tag) {
      case "SessionStarted":
        return Effect.sync(() => {
          const old = sessions.get(sessionId)
          sessions.set(
            sessionId,
            old === undefined
              ? {
                id: sessionId,
                status: "RUNNING",
                startedAt: event.startedAt,
                completedAt: null,
                durationMs: null,
                baseRef: event.baseRef,
                baseSha: event.baseSha,
                workers: event.workers,
                repoRoot: meta?.repoRoot ?? "",
                pid: meta?.pid ?? 0,
                config: meta?.config ?? "{}",
                ...ownerOfMeta(meta)
              }
              : {
                ...old,
                status: "RUNNING",
                completedAt: null,
                durationMs: null,
                workers: event.workers,
                ...(meta === undefined ? {} : { repoRoot: meta.repoRoot, pid: meta.pid, config: meta.config, ...ownerOfMeta(meta) })
              }
          )
          if (!executions.has(sessionId)) executions.set(sessionId, new Map())
        })
      case "TestQueued":
        return Effect.flatMap(
          Effect.zip(require(sessionId), storedRequest(sessionId, event.test, environment, where)),
          ([[, tests], request]) =>
            Effect.sync(() => {
              const test = event.test
              secrets.set(key(sessionId, test.id), secretValues(test, environment))
              const old = tests.get(test.id)
              if (old !== undefined && isTerminal(old.row.status)) return
              const fields = {
                name: test.name,
                source: test.source,
                refName: event.refName,
                sha: event.sha,
                status: "QUEUED" as const,
                request,
                priority: test.priority,
                expectedMs: event.expectedMs ?? null
              }
              if (old !== undefined) {
                old.row = { ...old.row, ...fields }
                return
              }
              tests.set(test.id, {
                row: {
                  sessionId,
                  testId: test.id,
                  seq: tests.size + 1,
                  ...fields,
                  durationMs: null,
                  flakiness: null,
                  keptWorktree: null
                },
                attempts: new Map()
              })
            })
        )
      case "AttemptStarted":
        return Effect.map(requireTest(sessionId, event.testId), (entry) => {
          entry.attempts.set(event.n, {
            sessionId,
            testId: event.testId,
            n: event.n,
            status: "RUNNING",
            exitCode: null,
            signal: null,
            worker: event.worker,
            worktree: event.worktree,
            startedAt: event.startedAt,
            durationMs: null,
            logPath: event.logPath,
            tail: null,
            message: null,
            pgid: null,
            processStartTime: null
          })
          if (!isTerminal(entry.row.status)) entry.row = { ...entry.row, status: "RUNNING" }
        })
      case "AttemptSpawned":
        return Effect.map(require(sessionId), ([, tests]) => {
          const attempts = tests.get(event.testId)?.attempts
          const old = attempts?.get(event.n)
          if (attempts !== undefined && old !== undefined) {
            attempts.set(event.n, { ...old, pgid: event.pgid, processStartTime: event.processStartTime })
          }
        })
      case "Relocated":
        return Effect.map(require(sessionId), ([, tests]) => {
          const attempts = tests.get(event.testId)?.attempts
          const old = attempts?.get(event.n)
          if (attempts !== undefined && old !== undefined) attempts.set(event.n, { ...old, worktree: event.to })
        })
      case "AttemptFinished":
        return Effect.map(requireTest(sessionId, event.testId), (entry) => {
          const values = secrets.get(key(sessionId, event.testId)) ?? []
          entry.attempts.set(
            event.attempt.n,
            attemptRow(sessionId, event.testId, event.attempt, values, entry.attempts.get(event.attempt.n))
          )
        })
      case "RetryScheduled":
        return Effect.map(require(sessionId), ([, tests]) => {
          const entry = tests.get(event.testId)
          if (entry !== undefined && !isTerminal(entry.row.status)) entry.row = { ...entry.row, status: "QUEUED" }
        })
      case "TestFinished":
        return Effect.map(require(sessionId), ([, tests]) => {
          const result = event.result
          const values = secrets.get(key(sessionId, result.id)) ?? []
          const finished = {
            status: result.status,
            durationMs: result.durationMs,
            flakiness: result.flakiness ?? null,
            keptWorktree: result.keptWorktree ?? null
          }
          const old = tests.get(result.id)
          const entry: MemoryExecution = old ?? {
            row: {
              sessionId,
              testId: result.id,
              seq: tests.size + 1,
              name: result.name,
              source: result.source,
              refName: result.ref,
              sha: "",
              request: null,
              priority: 0,
              expectedMs: null,
              ...finished
            },
            attempts: new Map()
          }
          entry.row = { ...entry.row, ...finished }
          tests.set(result.id, entry)
          for (const attempt of result.attempts) {
            entry.attempts.set(attempt.n, attemptRow(sessionId, result.id, attempt, values, entry.attempts.get(attempt.n)))
          }
          secrets.delete(key(sessionId, result.id))
        })
      case "SessionFinished":
        return Effect.map(require(sessionId), ([session]) => {
          sessions.set(sessionId, {
            ...session,
            status: event.status,
            completedAt: event.completedAt,
            durationMs: Math.max(0, event.completedAt - session.startedAt)
          })
          for (const k of secrets.keys()) if (k.startsWith(key(sessionId, ""))) secrets.delete(k)
        })
    }
  }

  /** the event log of each session, in sequence order */
  const logs = new Map<string, Array<Logged>>()
  const lastSeqOf = (sessionId: string) => logs.get(sessionId)?.at(-1)?.seq ?? 0

  const record = (sessionId: string, event: SessionEvent, options?: RecordOptions): Effect.Effect<number, StoreError> =>
    Effect.suspend(() => {
      const last = lastSeqOf(sessionId)
      const seq = options?.seq ?? last + 1
      if (seq <= last) return Effect.fail(seqTaken(sessionId, seq, where))
      // known before the projection forgets them (a finished test's)
      const testId = testIdOf(event)
      const values = event._tag === "TestQueued"
        ? secretValues(event.test, environment)
        : testId === undefined
        ? []
        : secrets.get(key(sessionId, testId)) ?? []
      const masked = values.length === 0
        ? Effect.succeed(new Logged({ seq, event }, true))
        : Effect.flatMap(
          Effect.mapError(eventPayload(event, values, environment), encodeFailed(sessionId, testId ?? "", where)),
          (payload) => decodePayload(sessionId, seq, payload, where)
        )
      return Effect.flatMap(masked, (logged) =>
        Effect.map(project(sessionId, event, options?.meta), () => {
          const log = logs.get(sessionId) ?? []
          log.push(logged)
          logs.set(sessionId, log)
          return seq
        }))
    })

  const deleteNow = (sessionId: string) => {
    sessions.delete(sessionId)
    executions.delete(sessionId)
    logs.delete(sessionId)
    for (const k of secrets.keys()) if (k.startsWith(key(sessionId, ""))) secrets.delete(k)
  }

  /** the newest session of `repoRoot` that is not running */
  const latestFinished = (repoRoot: string) =>
    [...sessions.values()].filter((s) => s.repoRoot === repoRoot && s.status !== "RUNNING").sort(newestFirst)[0]
  /** the tests of a session that did not pass, in queue order */
  const notPassed = (sessionId: string) =>
    [...(executions.get(sessionId)?.values() ?? [])]
      .filter((e) => !isSuccess(e.row.status))
      .sort((a, b) => a.row.seq - b.row.seq)

  const self: Context.Tag.Service<Store> = Store.of({
    groupCommit: false,
    record,
    recordAll: (sessionId, events, options) =>
      Effect.suspend(() => {
        let seq = options?.firstSeq ?? lastSeqOf(sessionId) + 1
        return Effect.reduce(events, lastSeqOf(sessionId), (_, e) => record(sessionId, e, { seq: seq++ }))
      }),
    events: (sessionId, { after, limit }) =>
      Effect.sync(() => {
        const log = logs.get(sessionId) ?? []
        // the first event after `after`: the log is in sequence order
        let lo = 0
        let hi = log.length
        while (lo < hi) {
          const mid = (lo + hi) >>> 1
          if (log[mid]!.seq <= after) lo = mid + 1
          else hi = mid
        }
        return log.slice(lo, lo + Math.max(0, limit))
      }),
    tests: (sessionId, { after, ids, limit, statuses }) =>
      Effect.sync(() => {
        const out: Array<QueuedResult> = []
        const wanted = statuses === undefined ? undefined : new Set(statuses)
        const tests = executions.get(sessionId)
        const entries = ids === undefined
          ? tests?.values() ?? []
          : ids.flatMap((id) => tests?.get(id) ?? []).sort((a, b) => a.row.seq - b.row.seq)
        for (const entry of entries) {
          if (out.length >= limit) break
          if (entry.row.seq <= after || (wanted !== undefined && !wanted.has(entry.row.status))) continue
          out.push({ seq: entry.row.seq, result: resultOf(entry.row, [...entry.attempts.values()]) })
        }
        return out
      }),
    sessions: (limit) =>
      Effect.sync(() =>
        [...sessions.values()].sort(newestFirst).slice(0, Math.max(0, limit)).map((s) =>
          summaryOf(s, statusesOf(s.id))
        )
      ),
    report: (sessionId) => loadReport(self, sessionId),
    history: (ids) =>
      Effect.sync(() => {
        const ordered = [...sessions.values()].sort(newestFirst)
        const out = new Map<TestId, TestHistory>()
        for (const id of ids) {
          const rows = ordered.flatMap((s) => {
            const entry = executions.get(s.id)?.get(id)
            return entry === undefined ? [] : [entry.row]
          })
          out.set(id, historyOf(rows))
        }
        return out
      }),
    pending: (sessionId) =>
      Effect.flatMap(require(sessionId), ([, tests]) =>
        Effect.forEach(
          [...tests.values()].filter((e) => !isTerminal(e.row.status)).sort((a, b) => a.row.seq - b.row.seq),
          (e) => pendingTest(sessionId, e.row, e.attempts.size, where)
        )),
    liveGroups: (sessionId) =>
      Effect.map(require(sessionId), ([, tests]) =>
        [...tests.values()]
          .flatMap((e) => [...e.attempts.values()])
          .filter((a) => a.status === "RUNNING" && a.pgid !== null && a.processStartTime !== null)
          .sort((a, b) => a.startedAt - b.startedAt || (a.testId < b.testId ? -1 : a.testId > b.testId ? 1 : a.n - b.n))
          .map((a) => ({ pgid: a.pgid!, processStartTime: a.processStartTime! }))),
    lastFailed: (repoRoot) =>
      Effect.sync(() => {
        const latest = latestFinished(repoRoot)
        return latest === undefined ? Option.none() : Option.some(notPassed(latest.id).map((e) => e.row.testId as TestId))
      }),
    lastFailedTests: (repoRoot) =>
      Effect.suspend(() => {
        const latest = latestFinished(repoRoot)
        if (latest === undefined) return Effect.succeed(Option.none())
        return Effect.forEach(notPassed(latest.id), (e) => pendingTest(latest.id, e.row, e.attempts.size, where)).pipe(
          Effect.map((tests) => Option.some({ sessionId: latest.id, tests }))
        )
      }),
    deleteSession: (sessionId) => Effect.map(require(sessionId), () => deleteNow(sessionId)),
    requireSession: (sessionId) =>
      Effect.map(require(sessionId), ([session]) => summaryOf(session, statusesOf(sessionId))),
    sessionConfig: (sessionId) => Effect.map(require(sessionId), ([session]) => session.config),
    queued: (sessionId, ids) =>
      Effect.sync(() => {
        const tests = executions.get(sessionId)
        return new Set(tests === undefined ? [] : ids.filter((id) => tests.has(id)))
      }),
    gc: (keep) =>
      Effect.sync(() => {
        const doomed = [...sessions.values()].sort(newestFirst).slice(Math.max(0, keep)).map((s) => s.id)
        for (const id of doomed) deleteNow(id)
        return doomed
      }),
    owner: (sessionId) =>
      Effect.map(require(sessionId), ([session]) => ({
        sessionId,
        status: session.status,
        host: session.host ?? undefined,
        pid: session.pid,
        heartbeatAt: session.heartbeatAt ?? undefined
      })),
    heartbeat: (sessionId, beat) =>
      Effect.sync(() => {
        const session = sessions.get(sessionId)
        if (session === undefined || session.status !== "RUNNING" || session.host !== beat.host || session.pid !== beat.pid) {
          return false
        }
        sessions.set(sessionId, { ...session, heartbeatAt: beat.at })
        return true
      })
  })
  return self
})

/**
 * `makeMemoryWith` grove's environment.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<Context.Tag.Service<Store>> = makeMemoryWith()

/**
 * The in-memory store as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<Store> = Layer.effect(Store, makeMemory)

/**
 * The in-memory store with `options` as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemoryWith = (options: StoreOptions): Layer.Layer<Store> => Layer.effect(Store, makeMemoryWith(options))
