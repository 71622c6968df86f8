/**
 * The HTTP API of `grove serve` (SPEC §9), as an `@effect/platform` `HttpApi`: its
 * groups, endpoints, payload Schemas and errors. The handlers are in `Server.ts`;
 * this module is the contract a client (the dashboard, `HttpApiClient`, a script)
 * is written against, and what `/api/v1/openapi.json` is generated from.
 *
 * Every payload is a Schema. `Report`, `TestResult` and `Attempt` come from
 * `Domain`; the store's summaries and histories are interfaces in `Store.ts`, so their
 * Schemas are here, checked field for field against those interfaces at compile
 * time (they can move to the Store later without changing the wire format).
 *
 * Errors are grove's own `Schema.TaggedError`s, each with its status: a body of
 * `{ _tag, message, … }` for every refusal, 401 and 404 included (the built-in
 * `HttpApiError`s answer those with an empty body).
 *
 * Live events: `GET /sessions/:id/events` (Server-Sent Events) and `GET
 * /sessions/:id/ws` (WebSocket) send a snapshot (`SessionState.Snapshot`) then the
 * session's events (`Domain.SessionEvent`), each with its sequence number; the
 * frames are made in `server/Live.ts`.
 *
 * @since 0.1.0
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { SessionInfo, SessionStatus, TestId, TestResult, TestStatus, Totals } from "./Domain.js"
import type * as Resume from "./Resume.js"
import { ActionsGroup } from "./server/actionsApi.js"
import type * as Store from "./Store.js"

// -----------------------------------------------------------------------------
// payloads
// -----------------------------------------------------------------------------

/** compile-time proof that a Schema's type is exactly an interface */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
const sameShape = <A, B>(proof: Equals<A, B>): Equals<A, B> => proof

/**
 * A session as the store lists it (`Store.SessionSummary`): times in epoch
 * milliseconds; `completedAt` absent while it runs.
 *
 * @since 0.1.0
 * @category models
 */
export const SessionSummary = Schema.Struct({
  id: Schema.String,
  status: Schema.String,
  startedAt: Schema.Number,
  completedAt: Schema.UndefinedOr(Schema.Number),
  total: Schema.Int,
  /** tests that ended PASSED or FLAKY */
  passed: Schema.Int,
  /** tests that ended FAILED, TIMED_OUT, ERROR or CANCELLED */
  notPassed: Schema.Int,
  repoRoot: Schema.String,
  /** the grove process that ran it (last) */
  pid: Schema.Int
}).annotations({ identifier: "SessionSummary" })
sameShape<typeof SessionSummary.Type, Store.SessionSummary>(true)

/**
 * What history says of one test (`Store.TestHistory`).
 *
 * @since 0.1.0
 * @category models
 */
export const TestHistory = Schema.Struct({
  /** median duration of its last 10 PASSED/FLAKY executions, in ms */
  expectedMs: Schema.UndefinedOr(Schema.Number),
  /** share (0..1) of its last 20 finished executions (CANCELLED not counted) that ended FLAKY */
  flakiness: Schema.UndefinedOr(Schema.Number),
  /** the statuses of those finished executions, newest first */
  recent: Schema.optionalWith(Schema.Array(TestStatus), { exact: true })
}).annotations({ identifier: "TestHistory" })
sameShape<typeof TestHistory.Type, Store.TestHistory>(true)

/**
 * `GET /api/v1/tests/:testId/history`.
 *
 * @since 0.1.0
 * @category models
 */
export class TestHistoryResponse extends Schema.Class<TestHistoryResponse>("TestHistoryResponse")({
  testId: TestId,
  history: TestHistory
}) {}

/**
 * A worktree grove owns, from its lock (`Resume.GroveWorktree`).
 *
 * @since 0.1.0
 * @category models
 */
export const GroveWorktree = Schema.Struct({
  path: Schema.String,
  session: Schema.String,
  /** the grove process that locked it (0 for one kept on purpose) */
  pid: Schema.Int,
  /** whether that process still runs */
  alive: Schema.Boolean,
  /** left on purpose by --keep-failed or --no-cleanup */
  kept: Schema.Boolean,
  /** git reports its folder missing */
  prunable: Schema.Boolean,
  /** the commit it is at, when git knows */
  head: Schema.UndefinedOr(Schema.String)
}).annotations({ identifier: "GroveWorktree" })
sameShape<typeof GroveWorktree.Type, Resume.GroveWorktree>(true)

/**
 * A worktree as `GET /api/v1/worktrees` lists it: with the status of its session
 * (`unknown` when the store does not hold it).
 *
 * @since 0.1.0
 * @category models
 */
export class WorktreeEntry extends Schema.Class<WorktreeEntry>("WorktreeEntry")({
  ...GroveWorktree.fields,
  sessionStatus: Schema.String
}) {}

/**
 * What `POST /api/v1/worktrees/prune` removed, and what it could not.
 *
 * @since 0.1.0
 * @category models
 */
export class PruneResult extends Schema.Class<PruneResult>("PruneResult")({
  removed: Schema.Array(Schema.String),
  failed: Schema.Array(Schema.Struct({ path: Schema.String, error: Schema.String }))
}) {}

/**
 * The grove process that owns a session, and whether it still runs.
 *
 * @since 0.1.0
 * @category models
 */
export class SessionOwner extends Schema.Class<SessionOwner>("SessionOwner")({
  pid: Schema.Int,
  alive: Schema.Boolean
}) {}

/**
 * `GET /api/v1/sessions/:id`: the session and its totals, without its tests (those
 * are `GET /api/v1/sessions/:id/tests`).
 *
 * @since 0.1.0
 * @category models
 */
export class SessionDetail extends Schema.Class<SessionDetail>("SessionDetail")({
  session: SessionInfo,
  totals: Totals,
  repoRoot: Schema.String,
  owner: SessionOwner,
  /** RUNNING, but its grove is gone: `grove run --resume` finishes it */
  resumable: Schema.Boolean,
  /** a re-run (`POST /sessions/:id/rerun`): the session whose failed tests it runs again */
  rerunOf: Schema.optional(Schema.String)
}) {}

/**
 * `GET /api/v1/health`.
 *
 * @since 0.1.0
 * @category models
 */
export class Health extends Schema.Class<Health>("Health")({
  status: Schema.Literal("ok"),
  version: Schema.String
}) {}

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * One problem with a request: where (`limit`, `status`, `n`, `Range`…) and what.
 *
 * @since 0.1.0
 * @category errors
 */
export class RequestIssue extends Schema.Class<RequestIssue>("RequestIssue")({
  where: Schema.String,
  message: Schema.String
}) {}

/**
 * 400: a malformed path parameter, query, header or body. `issues` names each field.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  message: Schema.String,
  issues: Schema.Array(RequestIssue)
}, HttpApiSchema.annotations({ status: 400 })) {}

/**
 * 401: no token, or not the right one.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 401 })) {}

/**
 * 403: a state-changing request from another origin (`CrossOrigin`), or a log
 * outside the session's log folder (`LogOutsideSession`).
 *
 * @since 0.1.0
 * @category errors
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  reason: Schema.Literal("CrossOrigin", "LogOutsideSession"),
  message: Schema.String
}, HttpApiSchema.annotations({ status: 403 })) {}

/**
 * 404: no such session, test, attempt, log, or route.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  what: Schema.Literal("session", "test", "attempt", "log", "repository", "route"),
  /** the id or path asked for */
  subject: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

/**
 * 409: the session is running in a live grove process (`pid` on `host`).
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionRunning extends Schema.TaggedError<SessionRunning>()("SessionRunning", {
  sessionId: Schema.String,
  pid: Schema.Int,
  host: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

/**
 * 416: a `Range` that starts at or after the end of the log (`size` bytes).
 *
 * @since 0.1.0
 * @category errors
 */
export class RangeNotSatisfiable extends Schema.TaggedError<RangeNotSatisfiable>()("RangeNotSatisfiable", {
  range: Schema.String,
  size: Schema.Int,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 416 })) {}

/**
 * 421: a `Host` header that is not one of the names grove serves (DNS rebinding).
 *
 * @since 0.1.0
 * @category errors
 */
export class MisdirectedRequest extends Schema.TaggedError<MisdirectedRequest>()("MisdirectedRequest", {
  host: Schema.String,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 421 })) {}

/**
 * 500: the store or git failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Schema.TaggedError<ServerError>()("ServerError", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 500 })) {}

// -----------------------------------------------------------------------------
// security
// -----------------------------------------------------------------------------

/**
 * The cookie `GET /login?token=…` sets, named after the port: cookies are per host,
 * not per port, so two `grove serve` on one machine would otherwise overwrite each
 * other's.
 *
 * @since 0.1.0
 * @category security
 */
export const cookieName = (port: number): string => `grove_token_${port}`

/**
 * Every endpoint but health needs the token: `Authorization: Bearer <token>`, or the
 * HttpOnly cookie `/login?token=…` sets (browsers' EventSource and WebSocket cannot
 * send headers). The declared scheme is the bearer one; the implementation (in
 * `Server.ts`) accepts either.
 *
 * @since 0.1.0
 * @category security
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("grove/Api/Authorization", {
  failure: Unauthorized,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(
        OpenApi.Description,
        "The token grove serve printed (or --token / GROVE_TOKEN). Browsers log in once with GET /login?token=…, which sets an HttpOnly cookie."
      )
    )
  }
}) {}

// -----------------------------------------------------------------------------
// endpoints
// -----------------------------------------------------------------------------

/** the offending value of a parse issue, for a message */
const actualOf = (issue: ParseResult.ParseIssue): string => JSON.stringify(issue.actual) ?? String(issue.actual)

/** a literal union whose parse error lists the choices */
const oneOf = <const L extends readonly [string, ...Array<string>]>(literals: Schema.Literal<L>): Schema.Literal<L> =>
  literals.annotations({
    message: (issue) => ({ message: `expected one of ${literals.literals.join(", ")}, got ${actualOf(issue)}`, override: true })
  })

/** a log's bytes as written (secrets masked when they were written) */
const LogText = HttpApiSchema.Text({ contentType: "text/plain; charset=utf-8" })

const SessionPath = Schema.Struct({ id: Schema.String })

/** the sequence number of the last event a live client saw */
const SeenSeq = Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(0)).annotations({
  description: "the sequence number of the last event seen: only the events after it are sent, without a snapshot",
  message: (issue) => ({ message: `expected an event's sequence number (0, 1, 2, …), got ${actualOf(issue)}`, override: true })
})
const TestPath = Schema.Struct({ id: Schema.String, testId: TestId })
const AttemptPath = Schema.Struct({
  id: Schema.String,
  testId: TestId,
  n: Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(1)).annotations({
    description: "the attempt's number, from 1",
    message: (issue) => ({ message: `expected an attempt number (1, 2, …), got ${actualOf(issue)}`, override: true })
  })
})

/**
 * `GET /api/v1/health`, without a token.
 *
 * @since 0.1.0
 * @category groups
 */
export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Health))
  .annotate(OpenApi.Description, "Whether grove serve is up. The only request that needs no token.")
{}

/**
 * Sessions, their tests, attempts and logs.
 *
 * @since 0.1.0
 * @category groups
 */
export class SessionsGroup extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.get("list", "/sessions")
      .setUrlParams(Schema.Struct({
        status: Schema.optional(oneOf(SessionStatus)),
        limit: Schema.optional(
          Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 10_000)).annotations({
            description: "how many sessions, newest first (default 20)",
            message: (issue) => ({ message: `expected a whole number from 1 to 10000, got ${actualOf(issue)}`, override: true })
          })
        )
      }))
      .addSuccess(Schema.Array(SessionSummary))
      .annotate(OpenApi.Description, "Recent sessions, newest first; `status` keeps those with that status.")
  )
  .add(
    HttpApiEndpoint.get("show", "/sessions/:id")
      .setPath(SessionPath)
      .addSuccess(SessionDetail)
      .addError(NotFound)
      .annotate(OpenApi.Description, "One session with its totals (its tests: /sessions/:id/tests).")
  )
  .add(
    HttpApiEndpoint.del("delete", "/sessions/:id")
      .setPath(SessionPath)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFound)
      .addError(SessionRunning)
      .annotate(
        OpenApi.Description,
        "Deletes a session that is not running (its rows and its log folder). A session whose grove process still runs is refused with 409."
      )
  )
  .add(
    HttpApiEndpoint.get("tests", "/sessions/:id/tests")
      .setPath(SessionPath)
      .setUrlParams(Schema.Struct({
        status: Schema.optional(oneOf(TestStatus)),
        after: Schema.optional(
          Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(0)).annotations({
            description: "a queue position: only the tests queued after it (a page's `Link: rel=\"next\"` names it)",
            message: (issue) => ({ message: `expected a queue position (0, 1, 2, …), got ${actualOf(issue)}`, override: true })
          })
        ),
        limit: Schema.optional(
          Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 10_000)).annotations({
            description: "at most this many tests (a page); without it, all of them",
            message: (issue) => ({ message: `expected a whole number from 1 to 10000, got ${actualOf(issue)}`, override: true })
          })
        )
      }))
      .addSuccess(Schema.Array(TestResult))
      .addError(NotFound)
      .annotate(
        OpenApi.Description,
        "The session's tests in queue order, with their attempts; `status` keeps those with that status. With `limit`, " +
          "one page: when it is full, a `Link: <…?after=N&limit=M>; rel=\"next\"` header names the next one. Without " +
          "it, every test, streamed from the store a page at a time."
      )
  )
  .add(
    HttpApiEndpoint.get("test", "/sessions/:id/tests/:testId")
      .setPath(TestPath)
      .addSuccess(TestResult)
      .addError(NotFound)
      .annotate(OpenApi.Description, "One test with its attempts. A test id with `/` is sent URL-encoded (%2F).")
  )
  .add(
    HttpApiEndpoint.get("log", "/sessions/:id/tests/:testId/attempts/:n/log")
      .setPath(AttemptPath)
      .setHeaders(Schema.Struct({
        range: Schema.optional(Schema.String).annotations({
          description: "bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX (one range)"
        })
      }))
      .addSuccess(LogText.annotations({ description: "the whole log (Accept-Ranges: bytes)" }))
      .addSuccess(LogText.annotations({
        description: "the bytes the Range asked for (Content-Range: bytes FIRST-LAST/SIZE)",
        ...HttpApiSchema.annotations({ status: 206 })
      }))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(RangeNotSatisfiable)
      .annotate(
        OpenApi.Description,
        "The attempt's full log (its bytes as written, secrets masked), or one byte range of it with `Range` (206, `Content-Range`); a range past the end gives 416."
      )
  )
  .add(
    HttpApiEndpoint.get("events", "/sessions/:id/events")
      .setPath(SessionPath)
      .setUrlParams(Schema.Struct({ after: Schema.optional(SeenSeq) }))
      .setHeaders(Schema.Struct({ "last-event-id": Schema.optional(SeenSeq) }))
      .addSuccess(HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({
        description: "frames `id: <seq>`, `event: snapshot | <the event's _tag>`, `data: <JSON>`; `: ping` every 15 s"
      }))
      .addError(NotFound)
      .annotate(
        OpenApi.Description,
        "The session's live events as Server-Sent Events. First `event: snapshot` with `data: {\"seq\": N, \"state\": …, \"eta\": …}` " +
          "(the fold's state, SessionState.Snapshot; `eta`: the time left then, `{\"millis\": ms, \"estimate\": bool}` — " +
          "estimate when it stands on the mean of the finished tests rather than their history —, 0 once the session " +
          "ended, null while nothing is known yet), then each event after N with `id:` = its sequence number and " +
          "`data:` = the event (Domain.SessionEvent). A client that reconnects with `Last-Event-ID: N` (or `?after=N`) " +
          "gets no snapshot but every event after N, once. The stream ends after SessionFinished."
      )
  )
  .add(
    HttpApiEndpoint.get("ws", "/sessions/:id/ws")
      .setPath(SessionPath)
      .setUrlParams(Schema.Struct({ after: Schema.optional(SeenSeq) }))
      .addSuccess(HttpApiSchema.NoContent.annotations({ description: "after the WebSocket closed" }))
      .addError(NotFound)
      .addError(BadRequest)
      .annotate(
        OpenApi.Description,
        "The same frames over a WebSocket (GET with `Upgrade: websocket`, from grove's own origin): text messages " +
          "`{ \"id\": seq, \"event\": \"snapshot\" | <_tag>, \"data\": … }`, snapshot first; `?after=N` resumes. " +
          "Closed by grove (1000) after SessionFinished, (1001) when it stops."
      )
  )
  .middleware(Authorization)
{}

/**
 * Worktrees grove owns, and removal of stale ones.
 *
 * @since 0.1.0
 * @category groups
 */
export class WorktreesGroup extends HttpApiGroup.make("worktrees")
  .add(
    HttpApiEndpoint.get("list", "/worktrees")
      .addSuccess(Schema.Array(WorktreeEntry))
      .addError(NotFound)
      .annotate(OpenApi.Description, "The worktrees grove owns in this repository, from their locks (as `grove worktrees`).")
  )
  .add(
    HttpApiEndpoint.post("prune", "/worktrees/prune")
      .addSuccess(PruneResult)
      .addError(NotFound)
      .annotate(OpenApi.Description, "Removes the worktrees whose grove process is gone, kept ones too (as `grove worktrees --prune`).")
  )
  .middleware(Authorization)
{}

/**
 * A test's history across sessions.
 *
 * @since 0.1.0
 * @category groups
 */
export class TestsGroup extends HttpApiGroup.make("tests")
  .add(
    HttpApiEndpoint.get("history", "/tests/:testId/history")
      .setPath(Schema.Struct({ testId: TestId }))
      .addSuccess(TestHistoryResponse)
      .annotate(OpenApi.Description, "Expected duration (median of the last 10 passing runs), flakiness and recent statuses of a test id.")
  )
  .middleware(Authorization)
{}

/**
 * The whole API, under `/api/v1`.
 *
 * @since 0.1.0
 * @category api
 */
export class GroveApi extends HttpApi.make("grove")
  .add(HealthGroup)
  .add(SessionsGroup)
  .add(WorktreesGroup)
  .add(TestsGroup)
  .add(ActionsGroup.middleware(Authorization))
  .addError(BadRequest)
  .addError(Unauthorized)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(MisdirectedRequest)
  .addError(ServerError)
  .prefix("/api/v1")
  .annotate(OpenApi.Title, "grove")
  .annotate(
    OpenApi.Description,
    "The sessions, tests, attempts, logs and worktrees of one repository's grove store (SPEC §9). Errors are JSON { _tag, message, … }."
  )
{}
