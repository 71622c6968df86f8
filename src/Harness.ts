/**
 * Runs one attempt of a test: every step in one process group, output to a capped
 * log with a bounded tail, secrets masked, the whole tree terminated at the end.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type { Step } from "./Domain.js"
import type { HarnessError } from "./GroveError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface AttemptSpec {
  readonly testId: string
  readonly attempt: number
  /** unique per attempt; put in the environment as GROVE_ATTEMPT_ID to find escaped processes */
  readonly attemptKey: string
  readonly steps: ReadonlyArray<Step>
  /** absolute folder the steps run in */
  readonly cwd: string
  /** added to grove's own environment (test env and GROVE_* variables) */
  readonly env: Readonly<Record<string, string>>
  /** values replaced by *** in the log and the tail */
  readonly secrets: ReadonlyArray<string>
  readonly logPath: string
  readonly logCap: number
  readonly tailBytes: number
  /** covers the steps only; measured with Effect's Clock */
  readonly timeout: Duration.Duration
  readonly killGrace: Duration.Duration
  /** called once the process group exists (for the store's reaper) */
  readonly onSpawn?: (info: { readonly pgid: number; readonly startTime: string }) => Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface AttemptOutcome {
  readonly _tag: "Exited" | "TimedOut"
  /** the failing step's exit code, 0 when all passed, null when killed by a signal or timed out */
  readonly exitCode: number | null
  readonly signal: string | null
  /** 0-based index of the step that failed, when one did */
  readonly failedStep: number | undefined
  /** last `tailBytes` of output, masked, decoded as UTF-8 */
  readonly tail: string
  /** bytes the steps wrote; those past logCap were dropped */
  readonly bytes: number
}

/**
 * Interrupting `run` terminates the process tree (SIGTERM, SIGKILL after the grace)
 * before it completes.
 *
 * @since 0.1.0
 * @category tags
 */
export class Harness extends Context.Tag("grove/Harness")<Harness, {
  readonly run: (spec: AttemptSpec) => Effect.Effect<AttemptOutcome, HarnessError>
}>() {}
