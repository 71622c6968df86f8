/**
 * The record of sessions, tests and attempts (SPEC §5). The Orchestrator writes every
 * event through `record` before anything that depends on it happens.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { Report, SessionEvent, TestId, TestRequest } from "./Domain.js"
import type { StoreError } from "./GroveError.js"

/**
 * What history says of one test.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestHistory {
  /** median duration of its last 10 PASSED/FLAKY executions, in ms */
  readonly expectedMs: number | undefined
  /** share (0..1) of recent sessions (last 20) where it ended FLAKY */
  readonly flakiness: number | undefined
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
  readonly passed: number
  readonly notPassed: number
  readonly repoRoot: string
  readonly pid: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Store extends Context.Tag("grove/Store")<Store, {
  /** write one event of a session; SessionStarted creates the session row */
  readonly record: (sessionId: string, event: SessionEvent, meta?: { readonly repoRoot: string; readonly pid: number; readonly config: string }) => Effect.Effect<void, StoreError>
  readonly sessions: (limit: number) => Effect.Effect<ReadonlyArray<SessionSummary>, StoreError>
  /** the session folded into a report (tests without a result show QUEUED/RUNNING) */
  readonly report: (sessionId: string) => Effect.Effect<Option.Option<Report>, StoreError>
  readonly history: (ids: ReadonlyArray<TestId>) => Effect.Effect<ReadonlyMap<TestId, TestHistory>, StoreError>
  readonly pending: (sessionId: string) => Effect.Effect<ReadonlyArray<PendingTest>, StoreError>
  readonly liveGroups: (sessionId: string) => Effect.Effect<ReadonlyArray<LiveGroup>, StoreError>
  /** ids of the tests that did not pass in the latest finished session of this repository */
  readonly lastFailed: (repoRoot: string) => Effect.Effect<Option.Option<ReadonlyArray<TestId>>, StoreError>
  /** deletes a session with its executions and attempts */
  readonly deleteSession: (sessionId: string) => Effect.Effect<void, StoreError>
}>() {}
