/**
 * The one fold (SPEC §8): the only place that knows what a session's events mean.
 * `update` is a pure `(state, event) → state`; the Orchestrator's `status` and the
 * report it returns, the terminal views, `grove show` / `grove report` on a stored
 * session and the HTTP API's snapshots are all this fold, run over the live event
 * stream or over the events the store holds.
 *
 * The state is bounded: it holds the session's facts, counts, and the tests that
 * wait or run — never the finished ones (their results are in the store).
 *
 * @since 0.2.0
 */
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Effect from "effect/Effect"
import { Counts, isTerminal, type Logged, type SessionEvent, SessionStatus, type TestStatus, Totals } from "./Domain.js"

/**
 * A test a worker has taken: its attempt runs (`active`), or ended while its retry
 * or result is not known yet.
 *
 * @since 0.2.0
 * @category models
 */
export interface Running {
  readonly testId: string
  readonly n: number
  readonly worker: number
  readonly worktree: string
  readonly startedAt: number
  readonly logPath: string
  readonly active: boolean
  /** median of its recent durations, when the store knows it */
  readonly expectedMs: number | undefined
}

/**
 * A test in the waiting room: queued, or waiting for its retry.
 *
 * @since 0.2.0
 * @category models
 */
export interface Waiting {
  readonly testId: string
  readonly expectedMs: number | undefined
  readonly retry: boolean
}

/**
 * What the events of a session say, as far as they have been folded.
 *
 * @since 0.2.0
 * @category models
 */
export interface SessionState {
  /** the sequence number of the last event folded (0: none) */
  readonly seq: number
  readonly sessionId: string
  readonly baseRef: string
  readonly baseSha: string
  readonly workers: number
  /** epoch millis of the first start (a resumed session keeps its first run's) */
  readonly startedAt: number | undefined
  /** a re-run: the session whose tests that did not pass it runs again */
  readonly rerunOf: string | undefined
  /** RUNNING until SessionFinished */
  readonly status: SessionStatus
  readonly completedAt: number | null
  /** the latest start or end of an attempt seen: how long a session that never finished lasted */
  readonly lastActivity: number | undefined
  readonly counts: Counts
  /** the summed durations of the tests that ran to an end (not CANCELLED or ERROR), and how many */
  readonly finishedMs: number
  readonly finishedCount: number
  readonly waiting: HashMap.HashMap<string, Waiting>
  readonly running: HashMap.HashMap<string, Running>
}

const zero = new Counts({ total: 0, passed: 0, flaky: 0, failed: 0, timedOut: 0, error: 0, cancelled: 0 })

/**
 * The state before any event.
 *
 * @since 0.2.0
 * @category constructors
 */
export const initial = (sessionId = ""): SessionState => ({
  seq: 0,
  sessionId,
  baseRef: "",
  baseSha: "",
  workers: 0,
  startedAt: undefined,
  rerunOf: undefined,
  status: "RUNNING",
  completedAt: null,
  lastActivity: undefined,
  counts: zero,
  finishedMs: 0,
  finishedCount: 0,
  waiting: HashMap.empty(),
  running: HashMap.empty()
})

/** the counts once a test ends with `status` (QUEUED, RUNNING: has not ended), `joined` when it is new */
const counted = (counts: Counts, status: TestStatus, joined: boolean): Counts => {
  if (!joined && !isTerminal(status)) return counts
  const c = { ...counts, total: counts.total + (joined ? 1 : 0) }
  switch (status) {
    case "PASSED":
      c.passed++
      break
    case "FLAKY":
      c.flaky++
      break
    case "FAILED":
      c.failed++
      break
    case "TIMED_OUT":
      c.timedOut++
      break
    case "ERROR":
      c.error++
      break
    case "CANCELLED":
      c.cancelled++
      break
    case "QUEUED":
    case "RUNNING":
      break
  }
  return new Counts(c, true)
}

/**
 * `HashMap.remove` that gives the map back as it is when the key is absent. Effect's
 * remove of an absent key (3.22) still copies the path to where the key would be and
 * leaves an empty node there, so the trie grows by a node with every such call; the
 * fold removes each test from the map it is not in (TestQueued from `running`,
 * TestFinished from `waiting`): a 20,000-test session's waiting map held 9,500 empty
 * nodes, copied in part at every event.
 */
const without = <V>(map: HashMap.HashMap<string, V>, key: string): HashMap.HashMap<string, V> =>
  HashMap.has(map, key) ? HashMap.remove(map, key) : map

const latest = (a: number | undefined, b: number): number => (a === undefined || b > a ? b : a)

/** whether the state knows the test as waiting or running (a finished one is not kept) */
const known = (state: SessionState, testId: string): boolean =>
  HashMap.has(state.waiting, testId) || HashMap.has(state.running, testId)

const expectedOf = (state: SessionState, testId: string): number | undefined =>
  Option.getOrUndefined(HashMap.get(state.waiting, testId))?.expectedMs ??
    Option.getOrUndefined(HashMap.get(state.running, testId))?.expectedMs

/**
 * Folds one event into the state. A test that is neither waiting nor running joins
 * the total with the first event about it, whichever that is (the Orchestrator never
 * queues a finished test again); its TestFinished counts its status.
 *
 * @since 0.2.0
 * @category constructors
 */
export const applyEvent = (state: SessionState, event: SessionEvent): SessionState => {
  switch (event._tag) {
    case "SessionStarted":
      return state.startedAt === undefined
        ? {
          ...state,
          sessionId: event.sessionId,
          baseRef: event.baseRef,
          baseSha: event.baseSha,
          workers: event.workers,
          startedAt: event.startedAt,
          rerunOf: event.rerunOf,
          status: "RUNNING",
          completedAt: null
        }
        // resumed: the first run's start and base stay
        : { ...state, workers: event.workers, status: "RUNNING", completedAt: null }
    case "TestQueued": {
      const id = event.test.id
      return {
        ...state,
        counts: counted(state.counts, "QUEUED", !known(state, id)),
        running: without(state.running, id),
        waiting: HashMap.set(state.waiting, id, {
          testId: id,
          expectedMs: event.expectedMs ?? expectedOf(state, id),
          retry: false
        })
      }
    }
    case "AttemptStarted": {
      const id = event.testId
      return {
        ...state,
        counts: counted(state.counts, "RUNNING", !known(state, id)),
        lastActivity: latest(state.lastActivity, event.startedAt),
        waiting: without(state.waiting, id),
        running: HashMap.set(state.running, id, {
          testId: id,
          n: event.n,
          worker: event.worker,
          worktree: event.worktree,
          startedAt: event.startedAt,
          logPath: event.logPath,
          active: true,
          expectedMs: expectedOf(state, id)
        })
      }
    }
    case "AttemptSpawned":
      return state
    case "Relocated": {
      const running = Option.getOrUndefined(HashMap.get(state.running, event.testId))
      return running !== undefined && running.n === event.n
        ? { ...state, running: HashMap.set(state.running, event.testId, { ...running, worktree: event.to }) }
        : state
    }
    case "AttemptFinished": {
      const a = event.attempt
      const end = a.startedAt.epochMillis + a.durationMs
      const running = Option.getOrUndefined(HashMap.get(state.running, event.testId))
      return {
        ...state,
        lastActivity: latest(state.lastActivity, end),
        running: running !== undefined && running.n === a.n
          ? HashMap.set(state.running, event.testId, { ...running, active: false })
          : state.running
      }
    }
    case "RetryScheduled": {
      const id = event.testId
      if (!HashMap.has(state.running, id)) return state
      return {
        ...state,
        running: without(state.running, id),
        waiting: HashMap.set(state.waiting, id, { testId: id, expectedMs: expectedOf(state, id), retry: true })
      }
    }
    case "TestFinished": {
      const result = event.result
      const id = result.id
      let lastActivity = state.lastActivity
      for (const a of result.attempts) lastActivity = latest(lastActivity, a.startedAt.epochMillis + a.durationMs)
      const ran = result.status !== "CANCELLED" && result.status !== "ERROR" && isTerminal(result.status)
      return {
        ...state,
        lastActivity,
        finishedMs: state.finishedMs + (ran ? result.durationMs : 0),
        finishedCount: state.finishedCount + (ran ? 1 : 0),
        counts: counted(state.counts, result.status, !known(state, id)),
        waiting: without(state.waiting, id),
        running: without(state.running, id)
      }
    }
    case "SessionFinished":
      return { ...state, status: event.status, completedAt: event.completedAt }
  }
}

/**
 * Folds one logged event: `applyEvent`, and the sequence number it covers. An event
 * numbered at or below the state's is already in it and changes nothing, so a
 * subscriber may start from a snapshot and fold what its subscription queued.
 *
 * @since 0.2.0
 * @category constructors
 */
export const update = (state: SessionState, logged: Logged): SessionState => {
  // an event the state already covers (a subscriber that started from a snapshot)
  if (logged.seq <= state.seq) return state
  const next = applyEvent(state, logged.event)
  return logged.seq > next.seq ? { ...next, seq: logged.seq } : next
}

/**
 * Runs a stream of logged events into the state.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromStream = <E, R>(
  events: Stream.Stream<Logged, E, R>,
  from: SessionState = initial()
): Effect.Effect<SessionState, E, R> => Stream.runFold(events, from, update)

// -----------------------------------------------------------------------------
// what the state says
// -----------------------------------------------------------------------------

/**
 * The counts with the success rate of SPEC §3: (passed + flaky) / total × 100,
 * rounded to 2 decimals, and 0 when there are no tests.
 *
 * @since 0.2.0
 */
export const totals = (counts: Counts): Totals =>
  new Totals({
    ...counts,
    successRate: counts.total === 0
      ? 0
      : Math.round(((counts.passed + counts.flaky) / counts.total) * 100 * 100) / 100
  }, true)

/**
 * The status a session ends with (SPEC §3): INTERRUPTED when interrupted, NO_TESTS
 * when there are none, COMPLETE when every test PASSED or FLAKY, FAILED when none did,
 * PARTIAL_SUCCESS otherwise.
 *
 * @since 0.2.0
 */
export const endStatus = (counts: Counts, options: { readonly interrupted: boolean }): SessionStatus => {
  if (options.interrupted) return "INTERRUPTED"
  if (counts.total === 0) return "NO_TESTS"
  const succeeded = counts.passed + counts.flaky
  if (succeeded === counts.total) return "COMPLETE"
  if (succeeded === 0) return "FAILED"
  return "PARTIAL_SUCCESS"
}

/**
 * The attempt each worker slot runs, index `slot - 1` (`undefined` while idle).
 *
 * @since 0.2.0
 */
export const slots = (state: SessionState): ReadonlyArray<Running | undefined> => {
  const out: Array<Running | undefined> = Array.from({ length: Math.max(0, state.workers) }, () => undefined)
  for (const r of HashMap.values(state.running)) {
    if (!r.active || r.worker < 1) continue
    while (out.length < r.worker) out.push(undefined)
    out[r.worker - 1] = r
  }
  return out
}

/**
 * How long the session lasted: until its end, or, for one that never finished (a
 * crash), until the end of its last known attempt.
 *
 * @since 0.2.0
 */
export const durationMs = (state: SessionState): number => {
  if (state.startedAt === undefined) return 0
  const end = state.completedAt ?? state.lastActivity
  return end === undefined ? 0 : Math.max(0, end - state.startedAt)
}

// -----------------------------------------------------------------------------
// the state on the wire
// -----------------------------------------------------------------------------

/** `number | undefined` in the state, `number | null` in JSON (which has no undefined) */
const MaybeNumber = Schema.transform(Schema.NullOr(Schema.Number), Schema.UndefinedOr(Schema.Number), {
  strict: true,
  decode: (n) => n ?? undefined,
  encode: (n) => n ?? null
})

/**
 * A running test (`Running`) as JSON.
 *
 * @since 0.2.0
 * @category schemas
 */
export const RunningSchema = Schema.Struct({
  testId: Schema.String,
  n: Schema.Int,
  worker: Schema.Int,
  worktree: Schema.String,
  startedAt: Schema.Number,
  logPath: Schema.String,
  active: Schema.Boolean,
  expectedMs: MaybeNumber
}).annotations({ identifier: "Running" })

/**
 * A waiting test (`Waiting`) as JSON.
 *
 * @since 0.2.0
 * @category schemas
 */
export const WaitingSchema = Schema.Struct({
  testId: Schema.String,
  expectedMs: MaybeNumber,
  retry: Schema.Boolean
}).annotations({ identifier: "Waiting" })

/** a HashMap by test id as an array of its values (sorted, so the JSON of one state is one text) */
const byTestId = <A extends { readonly testId: string }, I>(
  value: Schema.Schema<A, I>,
  order: (a: A, b: A) => number
) =>
  Schema.transform(
    Schema.Array(value),
    Schema.HashMapFromSelf({ key: Schema.String, value: Schema.typeSchema(value) }),
    {
      strict: true,
      decode: (list) => HashMap.fromIterable(list.map((item) => [item.testId, item] as const)),
      encode: (map) => Array.from(HashMap.values(map)).sort(order)
    }
  )

const byId = (a: { readonly testId: string }, b: { readonly testId: string }) =>
  a.testId < b.testId ? -1 : a.testId > b.testId ? 1 : 0

/**
 * The fold's state (`SessionState`) as JSON: what `grove serve` sends as the first
 * frame of a session's live events (`{ seq, state }`), and what a client decodes to
 * go on folding the events that follow with `update`. The HashMaps of waiting and
 * running tests are arrays (running by worker slot, waiting by test id); absent
 * numbers are `null`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Snapshot = Schema.Struct({
  seq: Schema.Int,
  sessionId: Schema.String,
  baseRef: Schema.String,
  baseSha: Schema.String,
  workers: Schema.Int,
  startedAt: MaybeNumber,
  rerunOf: Schema.UndefinedOr(Schema.String),
  status: SessionStatus,
  completedAt: Schema.NullOr(Schema.Number),
  lastActivity: MaybeNumber,
  counts: Counts,
  finishedMs: Schema.Number,
  finishedCount: Schema.Int,
  waiting: byTestId(WaitingSchema, byId),
  running: byTestId(RunningSchema, (a, b) => a.worker - b.worker || byId(a, b))
}).annotations({ identifier: "SessionState" })

/** compile-time proof that the Schema's type is the state, field for field */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
const sameShape: Equals<typeof Snapshot.Type, SessionState> = true
void sameShape

/**
 * A state as JSON (`Snapshot`'s encoded form).
 *
 * @since 0.2.0
 * @category schemas
 */
export const encodeSnapshot: (state: SessionState) => typeof Snapshot.Encoded = Schema.encodeSync(Snapshot)

/**
 * A state from JSON (a snapshot frame's `state`); throws a `ParseError` on anything else.
 *
 * @since 0.2.0
 * @category schemas
 */
export const decodeSnapshot: (json: unknown) => SessionState = Schema.decodeUnknownSync(Snapshot)
