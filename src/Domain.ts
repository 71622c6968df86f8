/**
 * The values grove talks about: ids, statuses, test requests, attempts, results
 * and the session events the Orchestrator publishes.
 *
 * @since 0.1.0
 */
import * as Path from "node:path"
import * as Schema from "effect/Schema"

/**
 * A test's id, unique in its session.
 *
 * @since 0.1.0
 * @category models
 */
export const TestId = Schema.NonEmptyTrimmedString.pipe(Schema.brand("TestId"))
/**
 * @since 0.1.0
 * @category models
 */
export type TestId = typeof TestId.Type

/**
 * A session's id: time-sortable and short, e.g. `20261124-0912-k3f9`.
 *
 * @since 0.1.0
 * @category models
 */
export const SessionId = Schema.String.pipe(
  Schema.pattern(/^\d{8}-\d{4}-[a-z0-9]{4,}$/),
  Schema.brand("SessionId")
)
/**
 * @since 0.1.0
 * @category models
 */
export type SessionId = typeof SessionId.Type

/**
 * Status of an attempt and of a test (SPEC §3).
 *
 * @since 0.1.0
 * @category models
 */
export const TestStatus = Schema.Literal(
  "QUEUED",
  "RUNNING",
  "PASSED",
  "FLAKY",
  "FAILED",
  "TIMED_OUT",
  "ERROR",
  "CANCELLED"
)
/**
 * @since 0.1.0
 * @category models
 */
export type TestStatus = typeof TestStatus.Type

/**
 * Statuses that end a test or an attempt.
 *
 * @since 0.1.0
 * @category models
 */
export const isTerminal = (status: TestStatus): boolean => status !== "QUEUED" && status !== "RUNNING"

/**
 * Statuses that count as success.
 *
 * @since 0.1.0
 * @category models
 */
export const isSuccess = (status: TestStatus): boolean => status === "PASSED" || status === "FLAKY"

/**
 * Attempt statuses that are retried (SPEC §3).
 *
 * @since 0.1.0
 * @category models
 */
export const isRetryable = (status: TestStatus): boolean =>
  status === "FAILED" || status === "TIMED_OUT" || status === "ERROR"

/**
 * Status of a session (SPEC §3).
 *
 * @since 0.1.0
 * @category models
 */
export const SessionStatus = Schema.Literal(
  "RUNNING",
  "COMPLETE",
  "PARTIAL_SUCCESS",
  "FAILED",
  "NO_TESTS",
  "INTERRUPTED"
)
/**
 * @since 0.1.0
 * @category models
 */
export type SessionStatus = typeof SessionStatus.Type

/**
 * One step of a test: a shell command run by `bash -eo pipefail -c` or `sh -e -c`.
 *
 * @since 0.1.0
 * @category models
 */
export class Step extends Schema.Class<Step>("Step")({
  shell: Schema.Literal("bash", "sh"),
  script: Schema.String,
  /** 1-based line of the code block in its plan file, when it came from one */
  line: Schema.optional(Schema.Int)
}) {}

/**
 * Whether a relative path stays inside the folder it is relative to.
 *
 * @since 0.1.0
 */
export const staysInside = (relative: string): boolean => {
  if (Path.isAbsolute(relative)) return false
  const normal = Path.posix.normalize(relative.replaceAll("\\", "/"))
  return normal !== ".." && !normal.startsWith("../")
}

const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, {
    message: () => "environment variable names are letters, digits and _, not starting with a digit"
  })
)

/**
 * A request to run one test. Fields left out fall back to the session's Config.
 *
 * @since 0.1.0
 * @category models
 */
export class TestRequest extends Schema.Class<TestRequest>("TestRequest")({
  id: TestId,
  name: Schema.String,
  /** where the test came from: a plan path, `--each`, or anything a library user likes */
  source: Schema.String,
  steps: Schema.NonEmptyArray(Step),
  /** a ref to run at; default: the session's base ref */
  ref: Schema.optional(Schema.NonEmptyTrimmedString),
  timeout: Schema.optional(
    Schema.DurationFromMillis.pipe(
      Schema.filter((d) => d.value._tag !== "Infinity" && (d.value._tag === "Millis" ? d.value.millis > 0 : true), {
        message: () => "timeout must be a finite duration greater than zero"
      })
    )
  ),
  retries: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))),
  priority: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  tags: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  env: Schema.optionalWith(Schema.Record({ key: EnvName, value: Schema.String }), { default: () => ({}) }),
  secretEnv: Schema.optionalWith(Schema.Array(EnvName), { default: () => [] }),
  /** relative to the worktree root; must stay inside it */
  cwd: Schema.optional(
    Schema.String.pipe(
      Schema.filter((c) => staysInside(c), {
        message: () => "cwd must be a relative path that stays inside the worktree"
      })
    )
  ),
  resources: Schema.optionalWith(Schema.Array(Schema.NonEmptyTrimmedString), { default: () => [] })
}) {}

/**
 * One try of a test (SPEC §1).
 *
 * @since 0.1.0
 * @category models
 */
export class Attempt extends Schema.Class<Attempt>("Attempt")({
  n: Schema.Int,
  status: TestStatus,
  exitCode: Schema.NullOr(Schema.Int),
  signal: Schema.NullOr(Schema.String),
  worker: Schema.Int,
  worktree: Schema.String,
  startedAt: Schema.DateTimeUtc,
  durationMs: Schema.Number,
  logPath: Schema.String,
  tail: Schema.String,
  /** why grove could not run it, or what ended it, when there is more to say than the status */
  message: Schema.optional(Schema.String)
}) {}

/**
 * The outcome of one test after all its attempts.
 *
 * @since 0.1.0
 * @category models
 */
export class TestResult extends Schema.Class<TestResult>("TestResult")({
  id: TestId,
  name: Schema.String,
  source: Schema.String,
  ref: Schema.String,
  status: TestStatus,
  durationMs: Schema.Number,
  attempts: Schema.Array(Attempt),
  /** set when --keep-failed kept this test's last worktree */
  keptWorktree: Schema.optional(Schema.String),
  /** share (0..1) of recent sessions where this test was FLAKY, when history is known */
  flakiness: Schema.optional(Schema.Number)
}) {}

/**
 * The session part of a report (SPEC §7).
 *
 * @since 0.1.0
 * @category models
 */
export class SessionInfo extends Schema.Class<SessionInfo>("SessionInfo")({
  id: Schema.String,
  status: SessionStatus,
  startedAt: Schema.DateTimeUtc,
  completedAt: Schema.NullOr(Schema.DateTimeUtc),
  durationMs: Schema.Number,
  baseRef: Schema.String,
  baseSha: Schema.String,
  workers: Schema.Int
}) {}

/**
 * Counts of a session's tests by how they ended (SPEC §3): what `SessionFinished`
 * carries and the fold keeps.
 *
 * @since 0.2.0
 * @category models
 */
export class Counts extends Schema.Class<Counts>("Counts")({
  total: Schema.Int,
  passed: Schema.Int,
  flaky: Schema.Int,
  failed: Schema.Int,
  timedOut: Schema.Int,
  error: Schema.Int,
  cancelled: Schema.Int
}) {}

/**
 * Counts of a report (SPEC §3): the counts and the success rate.
 *
 * @since 0.1.0
 * @category models
 */
export class Totals extends Schema.Class<Totals>("Totals")({
  ...Counts.fields,
  successRate: Schema.Number
}) {}

/**
 * The session's report, whose encoded form is the JSON report (SPEC §7).
 *
 * @since 0.1.0
 * @category models
 */
export class Report extends Schema.Class<Report>("Report")({
  version: Schema.Literal(1),
  session: SessionInfo,
  totals: Totals,
  tests: Schema.Array(TestResult)
}) {}

/**
 * A worktree lent to one test at a time.
 *
 * @since 0.1.0
 * @category models
 */
export interface Worktree {
  readonly path: string
  /** the worker slot it was made for */
  readonly slot: number
  /** distinguishes replacements of one slot: 0 for the first, then 1, 2 … */
  readonly generation: number
}

const Millis = Schema.Number

/**
 * A session started (or, resumed, started again: its id is one the store holds).
 *
 * @since 0.2.0
 * @category models
 */
export class SessionStarted extends Schema.TaggedClass<SessionStarted>()("SessionStarted", {
  sessionId: Schema.String,
  baseRef: Schema.String,
  baseSha: Schema.String,
  workers: Schema.Int,
  startedAt: Millis,
  /** a re-run: the session whose tests that did not pass it runs again */
  rerunOf: Schema.optionalWith(Schema.String, { exact: true })
}) {}

/**
 * A test joined the waiting room (again, for a resumed one).
 *
 * @since 0.2.0
 * @category models
 */
export class TestQueued extends Schema.TaggedClass<TestQueued>()("TestQueued", {
  test: TestRequest,
  sha: Schema.String,
  refName: Schema.String,
  expectedMs: Schema.optional(Schema.Number)
}) {}

/**
 * A worker took the test and borrowed a worktree for attempt `n`.
 *
 * @since 0.2.0
 * @category models
 */
export class AttemptStarted extends Schema.TaggedClass<AttemptStarted>()("AttemptStarted", {
  testId: TestId,
  n: Schema.Int,
  worker: Schema.Int,
  worktree: Schema.String,
  startedAt: Millis,
  logPath: Schema.String
}) {}

/**
 * A cluster runner died during the attempt: the attempt ran again, with its number,
 * on another runner (SPEC §10). Not a retry. `from`/`to` are `runner:worktree`.
 *
 * @since 0.3.0
 * @category models
 */
export class Relocated extends Schema.TaggedClass<Relocated>()("Relocated", {
  testId: TestId,
  n: Schema.Int,
  from: Schema.String,
  to: Schema.String
}) {}

/**
 * The attempt's process group exists (for reaping after a crash).
 *
 * @since 0.2.0
 * @category models
 */
export class AttemptSpawned extends Schema.TaggedClass<AttemptSpawned>()("AttemptSpawned", {
  testId: TestId,
  n: Schema.Int,
  pgid: Schema.Int,
  processStartTime: Schema.String
}) {}

/**
 * An attempt ended.
 *
 * @since 0.2.0
 * @category models
 */
export class AttemptFinished extends Schema.TaggedClass<AttemptFinished>()("AttemptFinished", {
  testId: TestId,
  attempt: Attempt
}) {}

/**
 * The retry Schedule decided the test runs again after `delayMs`.
 *
 * @since 0.2.0
 * @category models
 */
export class RetryScheduled extends Schema.TaggedClass<RetryScheduled>()("RetryScheduled", {
  testId: TestId,
  nextAttempt: Schema.Int,
  delayMs: Millis
}) {}

/**
 * A test has its final result.
 *
 * @since 0.2.0
 * @category models
 */
export class TestFinished extends Schema.TaggedClass<TestFinished>()("TestFinished", {
  result: TestResult
}) {}

/**
 * The session ended: its status and counts, not its tests (those are in the store).
 *
 * @since 0.2.0
 * @category models
 */
export class SessionFinished extends Schema.TaggedClass<SessionFinished>()("SessionFinished", {
  status: SessionStatus,
  completedAt: Millis,
  counts: Counts
}) {}

/**
 * Every state change of a session (SPEC §5): what the Orchestrator appends to the
 * store's event log and publishes, and what `SessionState.update` folds.
 *
 * @since 0.1.0
 * @category models
 */
export const SessionEvent = Schema.Union(
  SessionStarted,
  TestQueued,
  AttemptStarted,
  AttemptSpawned,
  Relocated,
  AttemptFinished,
  RetryScheduled,
  TestFinished,
  SessionFinished
)
/**
 * @since 0.1.0
 * @category models
 */
export type SessionEvent = typeof SessionEvent.Type

/**
 * An event as the log holds it: numbered 1, 2, 3 … per session, never reused
 * (also across `--resume`).
 *
 * @since 0.2.0
 * @category models
 */
export class Logged extends Schema.Class<Logged>("Logged")({
  seq: Schema.Int,
  event: SessionEvent
}) {}

/**
 * Constructors of the events by tag, e.g. `Events.TestQueued({ … })`. The values
 * come from code that already typed them, so they are not validated again (a
 * decoded event from the store or the network is validated by `SessionEvent`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const Events = {
  SessionStarted: (fields: ConstructorParameters<typeof SessionStarted>[0]) => new SessionStarted(fields, true),
  TestQueued: (fields: ConstructorParameters<typeof TestQueued>[0]) => new TestQueued(fields, true),
  AttemptStarted: (fields: ConstructorParameters<typeof AttemptStarted>[0]) => new AttemptStarted(fields, true),
  AttemptSpawned: (fields: ConstructorParameters<typeof AttemptSpawned>[0]) => new AttemptSpawned(fields, true),
  Relocated: (fields: ConstructorParameters<typeof Relocated>[0]) => new Relocated(fields, true),
  AttemptFinished: (fields: ConstructorParameters<typeof AttemptFinished>[0]) => new AttemptFinished(fields, true),
  RetryScheduled: (fields: ConstructorParameters<typeof RetryScheduled>[0]) => new RetryScheduled(fields, true),
  TestFinished: (fields: ConstructorParameters<typeof TestFinished>[0]) => new TestFinished(fields, true),
  SessionFinished: (fields: ConstructorParameters<typeof SessionFinished>[0]) => new SessionFinished(fields, true)
} as const
