/**
 * The handlers of the `actions` group (`actionsApi.ts`): start, cancel and re-run
 * sessions through `grove serve` (SPEC §9).
 *
 * - **start** turns the JSON body into `grove run`'s options and checks them with
 *   `grove run`'s own `prepare` (the served repository as the folder relative paths
 *   are taken from): the same checks, the same `file:line` issues, and nothing is
 *   created when one fails. The session then runs in this process (`ApiSessions`).
 * - **cancel** stops a session this server runs, as `grove run`'s first signal (or
 *   its second, `immediate`). A session another live grove runs is refused with its
 *   pid and host: only that process can stop it. Whether it lives is its pid on this
 *   host and its heartbeat on another (`Resume.sessionOwner`): a store shared by
 *   machines holds sessions this server cannot signal.
 * - **rerun** takes the tests of the session that did not pass (not PASSED or FLAKY:
 *   what `grove run --last-failed` takes of the latest session), from the requests
 *   its stored events queued. A test with `secretEnv` is read again from its plan
 *   file (`Resume.unmask`): the store never holds a secret, so a stored request may
 *   have `***` in its script or lack a secret variable of its plan's `env`. The new
 *   session runs with the recorded config of the old one (over grove.config.json and
 *   the environment, as `--resume` does) and names it in its own (`rerunOf`).
 *
 * @since 0.2.0
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as NodePath from "node:path"
import * as Os from "node:os"
import * as Api from "../Api.js"
import { prepare, type RunOptions } from "../cli/run.js"
import * as Config from "../Config.js"
import { isSuccess, type TestRequest, type TestStatus } from "../Domain.js"
import type * as Git from "../Git.js"
import type { GitError, InvalidInput, StoreError } from "../GroveError.js"
import * as Heartbeat from "../Heartbeat.js"
import { formatDuration } from "../internal/text.js"
import * as Resume from "../Resume.js"
import { eventStream, type PendingTest, Store, testStream } from "../Store.js"
import * as ActionsApi from "./actionsApi.js"
import { ApiSessions } from "./sessions.js"

// -----------------------------------------------------------------------------
// from the body to grove run's options
// -----------------------------------------------------------------------------

/** the body's field for each of grove run's flags, so an issue names what the client sent */
const fieldOfFlag: ReadonlyArray<readonly [string, string]> = [
  ["--workers", "workers"],
  ["--retries", "retries"],
  ["--timeout", "timeout"],
  ["--ref", "ref"],
  ["--tag", "tags"],
  ["--filter", "filter"],
  ["--worktree-dir", "worktreeDir"],
  ["--fail-fast", "failFast"],
  ["--max-fail", "maxFail"],
  ["--each", "each"],
  ["grove run", "plans"]
]

const fieldOf = (where: string): string => {
  for (const [flag, field] of fieldOfFlag) {
    if (where === flag) return field
    if (where.startsWith(flag + " ")) return field + where.slice(flag.length)
  }
  return where
}

/** grove's issues as the API's: a plan's `file:line` also apart, a flag as the body's field */
const runIssues = (e: InvalidInput, rename: (where: string) => string = fieldOf): ReadonlyArray<ActionsApi.RunIssue> =>
  e.issues.map((issue) => {
    const at = /^(.+):(\d+)$/.exec(issue.where)
    return at === null
      ? new ActionsApi.RunIssue({ where: rename(issue.where), message: issue.message })
      : new ActionsApi.RunIssue({ where: issue.where, file: at[1]!, line: Number(at[2]), message: issue.message })
  })

const invalid = (issues: ReadonlyArray<ActionsApi.RunIssue>) =>
  new ActionsApi.InvalidInput({
    message: `${issues.length} problem${issues.length === 1 ? "" : "s"} found, nothing was run: ` +
      issues.map((i) => `${i.where}: ${i.message}`).join("; "),
    issues
  })

/** a plan path must stay inside the served repository: the API runs what is in it */
const planPathIssues = (plans: ReadonlyArray<string>): ReadonlyArray<ActionsApi.RunIssue> =>
  plans.flatMap((plan, i) => {
    const normal = NodePath.normalize(plan)
    const outside = NodePath.isAbsolute(plan) || normal === ".." || normal.startsWith(".." + NodePath.sep)
    return outside
      ? [new ActionsApi.RunIssue({
        where: `plans[${i}]`,
        message: `${JSON.stringify(plan)} is not inside the served repository: give plan paths relative to its root, e.g. docs/plans/a.md`
      })]
      : []
  })

/**
 * `grove run`'s options of a start request, on the served repository and store (what
 * a `grove run` there would get as `--repo` and `--db`).
 */
const runOptionsOf = (
  body: typeof ActionsApi.StartRequest.Type,
  repo: Git.RepoInfo,
  dbFile: string
): RunOptions => ({
  plans: [...(body.each !== undefined ? body.each.args : body.plans ?? [])],
  each: Option.fromNullable(body.each?.command),
  workers: Option.fromNullable(body.workers),
  repo: repo.root,
  ref: body.ref === undefined ? [] : typeof body.ref === "string" ? [body.ref] : [...body.ref],
  timeout: Option.map(Option.fromNullable(body.timeout), String),
  retries: Option.fromNullable(body.retries),
  tag: [...(body.tags ?? [])],
  filter: Option.fromNullable(body.filter),
  worktreeDir: Option.fromNullable(body.worktreeDir),
  keepFailed: body.keepFailed ?? false,
  noCleanup: body.noCleanup ?? false,
  failFast: body.failFast ?? false,
  maxFail: Option.fromNullable(body.maxFail),
  dryRun: false,
  report: [],
  db: Option.some(dbFile),
  cluster: Option.none(),
  resume: Option.none(),
  lastFailed: false,
  shard: Option.none(),
  quiet: true
})

// -----------------------------------------------------------------------------
// handlers
// -----------------------------------------------------------------------------

const serverError = (e: StoreError | GitError) => new Api.ServerError({ message: e.message })

const sessionNotFound = (id: string) =>
  new Api.NotFound({ what: "session", subject: id, message: `there is no session ${JSON.stringify(id)} in this store` })

const requireSession = (id: string) =>
  Effect.flatMap(Store, (store) => store.requireSession(id)).pipe(
    Effect.catchTag("StoreError", (e) => Effect.fail(e.reason === "UnknownSession" ? sessionNotFound(id) : serverError(e)))
  )

const requireRepo = (repo: Option.Option<Git.RepoInfo>) =>
  Option.match(repo, {
    onNone: () =>
      Effect.fail(
        new Api.NotFound({
          what: "repository",
          subject: "",
          message: "grove serve was started without a repository (--db only): it cannot run tests; start it with --repo DIR"
        })
      ),
    onSome: Effect.succeed
  })

/** 202 with the session's id and its `Location` */
const accepted = (id: string, tests: number, rerunOf?: string) => {
  const location = `/api/v1/sessions/${encodeURIComponent(id)}`
  const body = new ActionsApi.SessionAccepted({ id, location, tests, ...(rerunOf === undefined ? {} : { rerunOf }) })
  return HttpServerResponse.unsafeJson(Schema.encodeSync(ActionsApi.SessionAccepted)(body), {
    status: 202,
    headers: { location }
  })
}

/** a session that another live grove process runs (here or on another host): who, and what to do */
const ownedElsewhere = (owner: Resume.OwnerState) =>
  new ActionsApi.SessionOwnedElsewhere({
    sessionId: owner.sessionId,
    pid: owner.pid,
    host: owner.host ?? Os.hostname(),
    message: `session ${owner.sessionId} is run by ${Resume.describeOwner(owner)}, not by this grove serve, ` +
      `so it cannot be cancelled from here: ${Resume.howToStop(owner)}${Resume.whenGone(owner)}`
  })

const abandoned = (summary: { readonly id: string; readonly pid: number }, owner?: Resume.OwnerState) =>
  new ActionsApi.SessionAbandoned({
    sessionId: summary.id,
    pid: summary.pid,
    message: `session ${summary.id} is recorded RUNNING but ` +
      (owner === undefined || owner.local
        ? `its grove process ${summary.pid} is gone`
        : `its grove process ${summary.pid} on ${owner.host} stopped writing its heartbeat ` +
          (owner.heartbeatAgeMs === undefined ? "" : `${formatDuration(owner.heartbeatAgeMs)} ago `) +
          `(it counts as dead after ${Duration.format(Heartbeat.staleAfter)})`) +
      `, so nothing runs it: finish it with grove run --resume ${summary.id}, or delete it`
  })

/** the owner of a session, as `Resume.sessionOwner` judges it (pid here, heartbeat elsewhere) */
const ownerOf = (id: string) =>
  Resume.sessionOwner(id).pipe(
    Effect.catchTag("StoreError", (e) => Effect.fail(e.reason === "UnknownSession" ? sessionNotFound(id) : serverError(e)))
  )

const notPassed: ReadonlyArray<TestStatus> = ["FAILED", "TIMED_OUT", "ERROR", "CANCELLED", "QUEUED", "RUNNING"]

/**
 * The tests of a stored session that did not pass, in queue order, as it queued them
 * (from its events; the store masked their secrets). One with `secretEnv` is marked
 * masked, so that `Resume.unmask` reads it again from its plan.
 */
const failedTests = (sessionId: string): Effect.Effect<ReadonlyArray<PendingTest>, StoreError, Store> =>
  Effect.gen(function*() {
    const store = yield* Store
    const ids = new Set<string>()
    yield* testStream(store, sessionId, notPassed).pipe(
      Stream.runForEach((test) => Effect.sync(() => void (!isSuccess(test.status) && ids.add(test.id))))
    )
    if (ids.size === 0) return []
    const queued: Array<PendingTest> = []
    yield* eventStream(store, sessionId).pipe(
      Stream.runForEach(({ event }) =>
        Effect.sync(() => {
          if (event._tag !== "TestQueued" || !ids.has(event.test.id)) return
          ids.delete(event.test.id)
          const test: TestRequest = event.test
          queued.push({
            request: test,
            sha: event.sha,
            refName: event.refName,
            attempts: 0,
            masked: test.secretEnv.length > 0 ? test.secretEnv : undefined
          })
        })
      )
    )
    return queued
  })

/**
 * Takes back the worktrees of grove runs that died, as a plain `grove run` does
 * before it starts; a failure to list them is only warned about.
 */
const reclaimDead = (repo: Git.RepoInfo) =>
  Resume.reclaim(repo).pipe(
    Effect.flatMap(({ failed }) =>
      Effect.forEach(failed, ({ error, worktree }) =>
        Effect.logWarning(`grove serve: could not remove worktree ${worktree.path} of dead session ${worktree.session}: ${error.message}`), {
        discard: true
      })
    ),
    Effect.catchAll((e) => Effect.logWarning(`grove serve: could not list worktrees to reclaim: ${e.message}`))
  )

/**
 * @since 0.2.0
 * @category layers
 */
export const group = (options: { readonly repo: Option.Option<Git.RepoInfo> }) =>
  HttpApiBuilder.group(Api.GroveApi, "actions", (handlers) =>
    handlers
      .handle("start", ({ payload }) =>
        Effect.gen(function*() {
          const repo = yield* requireRepo(options.repo)
          const sessions = yield* ApiSessions
          if (payload.plans !== undefined && payload.each !== undefined) {
            return yield* Effect.fail(invalid([
              new ActionsApi.RunIssue({ where: "each", message: "give plans or each, not both (with each, its args are the tests)" })
            ]))
          }
          const outside = planPathIssues(payload.plans ?? [])
          if (outside.length > 0) return yield* Effect.fail(invalid(outside))
          const prepared = yield* prepare(runOptionsOf(payload, repo, sessions.dbFile), repo.root).pipe(
            Effect.catchTag("InvalidInput", (e) => Effect.fail(invalid(runIssues(e))))
          )
          yield* reclaimDead(prepared.repo)
          const session = yield* sessions.start({ repo: prepared.repo, config: prepared.config, tests: prepared.tests }).pipe(
            Effect.catchTag("InvalidInput", (e) => Effect.fail(invalid(runIssues(e)))),
            Effect.mapError((e) => e._tag === "GitError" ? serverError(e) : e)
          )
          return accepted(session.id, prepared.tests.length)
        }))
      .handle("cancel", ({ path, payload }) =>
        Effect.gen(function*() {
          const sessions = yield* ApiSessions
          const immediate = payload?.immediate ?? false
          const summary = yield* requireSession(path.id)
          if (yield* sessions.cancel(summary.id, { immediate })) {
            return new ActionsApi.CancelAccepted({ id: summary.id, immediate })
          }
          // not one of ours (or it has just ended): what the store says
          const now = yield* requireSession(path.id)
          if (now.status !== "RUNNING") {
            return yield* Effect.fail(
              new ActionsApi.SessionFinished({
                sessionId: now.id,
                status: now.status,
                message: `session ${now.id} has ended (${now.status}): there is nothing to cancel`
              })
            )
          }
          const owner = yield* ownerOf(now.id)
          if (owner.alive && !(owner.local && owner.pid === process.pid)) return yield* Effect.fail(ownedElsewhere(owner))
          return yield* Effect.fail(abandoned(now, owner))
        }))
      .handle("rerun", ({ path }) =>
        Effect.gen(function*() {
          const repo = yield* requireRepo(options.repo)
          const sessions = yield* ApiSessions
          const store = yield* Store
          const summary = yield* requireSession(path.id)
          if (summary.repoRoot !== "" && summary.repoRoot !== repo.root) {
            return yield* Effect.fail(invalid([
              new ActionsApi.RunIssue({
                where: "session",
                message: `session ${summary.id} ran in repository ${summary.repoRoot}, not in the served ${repo.root}: ` +
                  `re-run it from a grove serve --repo ${summary.repoRoot}`
              })
            ]))
          }
          if (summary.status === "RUNNING") {
            const owner = yield* ownerOf(summary.id)
            if (!owner.alive) return yield* Effect.fail(abandoned(summary, owner))
            return yield* Effect.fail(
              new ActionsApi.SessionStillRunning({
                sessionId: summary.id,
                pid: summary.pid,
                host: owner.host ?? Os.hostname(),
                message: `session ${summary.id} is still running (${Resume.describeOwner(owner)}): ` +
                  "re-run its failed tests once it has ended, or cancel it first"
              })
            )
          }
          const failed = yield* failedTests(summary.id).pipe(Effect.mapError(serverError))
          if (failed.length === 0) {
            return yield* Effect.fail(
              new ActionsApi.NothingToRerun({
                sessionId: summary.id,
                status: summary.status,
                message: `every test of session ${summary.id} passed (${summary.status}, ${summary.total} test${summary.total === 1 ? "" : "s"}): there is nothing to re-run`
              })
            )
          }
          // each test with a secret comes from its plan again, never with *** in its script
          const rerunWhere = (where: string) => where.replace(/^--resume: /, "")
          const tests = yield* Resume.unmask(repo.root, failed).pipe(
            Effect.catchTag("InvalidInput", (e) => Effect.fail(invalid(runIssues(e, rerunWhere))))
          )
          // the options a `grove run --last-failed` would get here: grove.config.json and GROVE_*,
          // then the session's own recorded config over them (as --resume does)
          const base = yield* prepare({ ...runOptionsOf({}, repo, sessions.dbFile), lastFailed: true }, repo.root).pipe(
            Effect.catchTag("InvalidInput", (e) => Effect.fail(invalid(runIssues(e))))
          )
          const recorded = Resume.configOf(yield* store.sessionConfig(summary.id).pipe(Effect.mapError(serverError)))
          const config = yield* Config.validate({ ...Config.defaults, ...base.configSources.base, ...recorded }, (k) => `config ${k}`).pipe(
            Effect.catchTag("InvalidInput", (e) => Effect.fail(invalid(runIssues(e))))
          )
          yield* reclaimDead(repo)
          const session = yield* sessions.start({ repo, config, tests: tests.map((t) => t.request), rerunOf: summary.id }).pipe(
            Effect.catchTag("InvalidInput", (e) => Effect.fail(invalid(runIssues(e)))),
            Effect.mapError((e) => e._tag === "GitError" ? serverError(e) : e)
          )
          return accepted(session.id, tests.length, summary.id)
        }))
  )
