/**
 * The contract of the endpoints that change what runs (SPEC §9): start a session,
 * cancel one, re-run the tests of one that did not pass. `Api.ts` adds this group to
 * `GroveApi` (with its token middleware); the handlers are in `actions.ts`.
 *
 * This module imports nothing of `Api.ts` (which imports it): the errors it needs
 * besides the API's global ones (`BadRequest`, `NotFound`, …) are its own.
 *
 * @since 0.2.0
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"

// -----------------------------------------------------------------------------
// payloads
// -----------------------------------------------------------------------------

const Count = (minimum: number) => Schema.Int.pipe(Schema.greaterThanOrEqualTo(minimum))

/**
 * `POST /api/v1/sessions`: what `grove run` takes, as JSON. Either `plans` (paths
 * relative to the served repository) or `each` (`grove run --each COMMAND ARG...`),
 * and the options of `grove run` under their camelCase names. A field grove does not
 * know is refused (400 naming it), not ignored.
 *
 * @since 0.2.0
 * @category models
 */
export const StartRequest = Schema.Struct({
  plans: Schema.optional(Schema.Array(Schema.String)).annotations({
    description: "plan files, relative to the served repository (grove run PLAN...)"
  }),
  each: Schema.optional(Schema.Struct({
    command: Schema.String.annotations({ description: "CMD of --each: {} is the shell-quoted ARG (appended when absent)" }),
    args: Schema.Array(Schema.String).annotations({ description: "the ARGs: one test each, paths as seen from the worktree root" })
  }).annotations({ parseOptions: { onExcessProperty: "error" } })),
  workers: Schema.optional(Count(1)),
  retries: Schema.optional(Count(0)),
  timeout: Schema.optional(Schema.Union(Schema.String, Schema.Number)).annotations({
    description: "as --timeout: 90s, 5m, 1h30m, a number of seconds, or N% of the test's median duration"
  }),
  ref: Schema.optional(Schema.Union(Schema.String, Schema.Array(Schema.String))).annotations({
    description: "as --ref (one or several): every test runs at each, as <id>@<ref> when several"
  }),
  tags: Schema.optional(Schema.Array(Schema.String)).annotations({ description: "as --tag: any of them; !TAG excludes" }),
  filter: Schema.optional(Schema.String).annotations({ description: "as --filter: a glob over ids and names" }),
  worktreeDir: Schema.optional(Schema.String).annotations({ description: "as --worktree-dir (relative to the served repository)" }),
  keepFailed: Schema.optional(Schema.Boolean),
  noCleanup: Schema.optional(Schema.Boolean),
  failFast: Schema.optional(Schema.Boolean),
  maxFail: Schema.optional(Count(1))
}).annotations({ identifier: "StartRequest", parseOptions: { onExcessProperty: "error" } })

/**
 * `POST /api/v1/sessions/:id/cancel`: graceful (running attempts get the kill grace
 * period, as grove run's first Ctrl-C) unless `immediate` (as its second). No body
 * is the same as `{}`.
 *
 * @since 0.2.0
 * @category models
 */
export const CancelRequest = Schema.NullOr(
  Schema.Struct({
    immediate: Schema.optionalWith(Schema.Boolean, { default: () => false })
  }).annotations({ identifier: "CancelRequest", parseOptions: { onExcessProperty: "error" } })
)

/**
 * 202: the session was started (its id; `Location` names it too).
 *
 * @since 0.2.0
 * @category models
 */
export class SessionAccepted extends Schema.Class<SessionAccepted>("SessionAccepted")({
  id: Schema.String,
  location: Schema.String,
  /** a re-run: the session whose tests it runs again */
  rerunOf: Schema.optional(Schema.String),
  /** how many tests it runs */
  tests: Schema.Int
}) {}

/**
 * 202: the session is stopping; `GET /api/v1/sessions/:id` shows when it has ended.
 *
 * @since 0.2.0
 * @category models
 */
export class CancelAccepted extends Schema.Class<CancelAccepted>("CancelAccepted")({
  id: Schema.String,
  immediate: Schema.Boolean
}) {}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * One problem found in a start request, as `grove run` prints it (`where`: a plan's
 * `file:line`, or the field), with `file` and `line` apart when it is in a plan.
 *
 * @since 0.2.0
 * @category errors
 */
export class RunIssue extends Schema.Class<RunIssue>("RunIssue")({
  where: Schema.String,
  file: Schema.optional(Schema.String),
  line: Schema.optional(Schema.Int),
  message: Schema.String
}) {}

/**
 * 400: plans or options that `grove run` would refuse (exit 2); every problem at
 * once; nothing was created.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  message: Schema.String,
  issues: Schema.Array(RunIssue)
}, HttpApiSchema.annotations({ status: 400 })) {}

/**
 * 409: the session has ended: there is nothing to cancel.
 *
 * @since 0.2.0
 * @category errors
 */
export class SessionFinished extends Schema.TaggedError<SessionFinished>()("SessionFinished", {
  sessionId: Schema.String,
  status: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

/**
 * 409: another live grove process (`pid` on `host`) runs the session: only it can
 * stop it.
 *
 * @since 0.2.0
 * @category errors
 */
export class SessionOwnedElsewhere extends Schema.TaggedError<SessionOwnedElsewhere>()("SessionOwnedElsewhere", {
  sessionId: Schema.String,
  pid: Schema.Int,
  host: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

/**
 * 409: the session is still running (here or in another grove): re-run it once it has ended.
 *
 * @since 0.2.0
 * @category errors
 */
export class SessionStillRunning extends Schema.TaggedError<SessionStillRunning>()("SessionStillRunning", {
  sessionId: Schema.String,
  pid: Schema.Int,
  host: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

/**
 * 409: the store says RUNNING but its grove process is gone: nothing runs it;
 * `grove run --resume` finishes it.
 *
 * @since 0.2.0
 * @category errors
 */
export class SessionAbandoned extends Schema.TaggedError<SessionAbandoned>()("SessionAbandoned", {
  sessionId: Schema.String,
  pid: Schema.Int,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

/**
 * 409: every test of the session passed (or it had none): there is nothing to re-run.
 *
 * @since 0.2.0
 * @category errors
 */
export class NothingToRerun extends Schema.TaggedError<NothingToRerun>()("NothingToRerun", {
  sessionId: Schema.String,
  status: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

// -----------------------------------------------------------------------------
// endpoints
// -----------------------------------------------------------------------------

const SessionPath = Schema.Struct({ id: Schema.String })

/**
 * Start, cancel, re-run. Sessions started here run in `grove serve`'s process and
 * write to its store like any other; a signal to `grove serve` stops them as
 * `grove run` stops on one.
 *
 * @since 0.2.0
 * @category groups
 */
export class ActionsGroup extends HttpApiGroup.make("actions")
  .add(
    HttpApiEndpoint.post("start", "/sessions")
      .setPayload(StartRequest)
      .addSuccess(SessionAccepted, { status: 202 })
      .addError(InvalidInput)
      .annotate(
        OpenApi.Description,
        "Starts a session from plans or --each args with grove run's options, in grove serve's process. " +
          "Invalid plans or options: 400 with each problem (file:line), and nothing is created. " +
          "202 with the session's id and a Location header."
      )
  )
  .add(
    HttpApiEndpoint.post("cancel", "/sessions/:id/cancel")
      .setPath(SessionPath)
      .setPayload(CancelRequest)
      .addSuccess(CancelAccepted, { status: 202 })
      .addError(SessionFinished)
      .addError(SessionOwnedElsewhere)
      .addError(SessionAbandoned)
      .annotate(
        OpenApi.Description,
        "Stops a session this grove serve started: no test starts any more, waiting ones end CANCELLED, running " +
          "attempts are terminated (after the kill grace period unless `immediate`), and the session ends INTERRUPTED. " +
          "409 when it has ended, or when another grove process runs it."
      )
  )
  .add(
    HttpApiEndpoint.post("rerun", "/sessions/:id/rerun")
      .setPath(SessionPath)
      .addSuccess(SessionAccepted, { status: 202 })
      .addError(InvalidInput)
      .addError(SessionStillRunning)
      .addError(SessionAbandoned)
      .addError(NothingToRerun)
      .annotate(
        OpenApi.Description,
        "Starts a new session of the tests that did not pass in this one (as grove run --last-failed takes them), " +
          "with its options; the new session names it (`rerunOf`). Secrets are taken from the plans and the " +
          "environment again. 409 while it runs, or when every test passed."
      )
  )
{}
