/**
 * The commands that read the store (SPEC §6): `grove sessions`, `grove show`,
 * `grove report`, `grove worktrees`, `grove gc`. Each takes `--repo` and `--db` as
 * `grove run` does. A store file that does not exist is not created: it holds no
 * session. A file that is not grove's store is refused with its bytes untouched.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Report, type TestId, TestResult } from "../Domain.js"
import * as Git from "../Git.js"
import { InvalidInput, StoreError } from "../GroveError.js"
import { formatDuration } from "../internal/text.js"
import * as ReportModule from "../Report.js"
import * as Resume from "../Resume.js"
import * as Session from "../Session.js"
import { type SessionSummary, Store } from "../Store.js"
import * as Plain from "../view/Plain.js"
import * as Help from "./help.js"
import { db, err, inspectStore, onInvalid, out, repo, resolveDb, setExit, storeExists, storeLayer, storeName, styleOf } from "./shared.js"

// ---------------------------------------------------------------------------
// the store of a command
// ---------------------------------------------------------------------------

interface Where {
  /** absolute path of the store file */
  readonly dbFile: string
  /** the repository, when --repo names one */
  readonly repo: Option.Option<Git.RepoInfo>
  /** whether the store file exists (a missing one is never created here) */
  readonly exists: boolean
}

/**
 * Finds the store: `--db`, else `<git-common-dir>/grove/grove.db` of `--repo`. Looks at
 * an existing file read-only first (NotADatabase, SchemaTooNew: exit 2, file untouched).
 *
 * @since 0.2.0
 * @internal
 */
export const locate = (o: { readonly repo: string; readonly db: Option.Option<string> }) =>
  Effect.gen(function*() {
    const git = yield* Git.Git
    const path = yield* Path.Path
    const repoDir = path.resolve(o.repo)
    const repoInfo = yield* git.repoInfo(repoDir).pipe(Effect.option)
    const dbFile = Option.isSome(o.db)
      ? resolveDb(path, o.db.value)
      : Option.isSome(repoInfo)
      ? path.join(repoInfo.value.commonDir, "grove", "grove.db")
      : undefined
    if (dbFile === undefined) {
      return yield* Effect.fail(InvalidInput.one(
        "--repo",
        `${repoDir} is not inside a git repository, so grove has no store there: pass --repo with a folder of the repository, or --db FILE`
      ))
    }
    yield* inspectStore(dbFile)
    const exists = yield* storeExists(dbFile)
    return { dbFile, repo: repoInfo, exists } satisfies Where
  })

/** runs `use` with the store open, or `missing` when the file does not exist */
const withStore = <A, E, R>(
  where: Where,
  use: Effect.Effect<A, E, R | Store>,
  missing: Effect.Effect<A, E | StoreError, Exclude<R, Store>>
): Effect.Effect<A, E | StoreError, Exclude<R, Store> | FileSystem.FileSystem | Path.Path> =>
  where.exists
    ? Effect.provide(use, storeLayer(where.dbFile)) as Effect.Effect<
      A,
      E | StoreError,
      Exclude<R, Store> | FileSystem.FileSystem | Path.Path
    >
    : missing

const noSuchSession = (where: Where, id: string) =>
  new StoreError({
    reason: "UnknownSession",
    detail: `there is no session ${JSON.stringify(id)}: the store ${where.dbFile} does not exist yet ` +
      "(no grove run has used it); pass --repo or --db with the store that holds it"
  })

const requireRepo = (where: Where, command: string) =>
  Option.match(where.repo, {
    onNone: () =>
      Effect.fail(InvalidInput.one("--repo", `grove ${command} needs a repository: pass --repo with a folder inside it`)),
    onSome: Effect.succeed
  })

const iso = (millis: number | null | undefined): string | null =>
  millis === null || millis === undefined ? null : new Date(millis).toISOString()

const json = (value: unknown) => out(JSON.stringify(value, null, 2))

const common = { repo, db }

const jsonOption = (what: string) => Options.boolean("json").pipe(Help.option({ text: `Print ${what} as JSON.` }))

/** a session id argument */
const sessionArg = Args.text({ name: "SESSION" }).pipe(
  Help.arg({ text: "A session id, as grove sessions lists them.", example: "20261124-0912-k3f9" })
)

/** how many sessions `grove sessions` lists and `grove gc` keeps by default */
const defaultKeep = 20

/** runs a command body with its exit code and errors handled as every grove command does */
const command = <R>(body: Effect.Effect<number, unknown, R>) =>
  body.pipe(onInvalid, Effect.flatMap(setExit))

// ---------------------------------------------------------------------------
// grove sessions
// ---------------------------------------------------------------------------

/**
 * A session as `grove sessions --json` prints it.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionJson {
  readonly id: string
  readonly status: string
  readonly startedAt: string | null
  readonly completedAt: string | null
  readonly durationMs: number | null
  readonly total: number
  readonly passed: number
  readonly notPassed: number
  readonly repoRoot: string
  readonly pid: number
  /** the host its grove ran on; null when the store does not know (recorded before store schema 4) */
  readonly host: string | null
  /** RUNNING, but its grove is gone (its pid on this host, its heartbeat on another): `grove run --resume` finishes it */
  readonly resumable: boolean
}

/**
 * The owner of a session (`Resume.sessionOwner`: its pid on this host, its heartbeat
 * on another); none for a session gone meanwhile.
 */
const ownerOf = (s: SessionSummary) =>
  Resume.sessionOwner(s.id).pipe(
    Effect.map(Option.some),
    Effect.catchIf((e) => e.reason === "UnknownSession", () => Effect.succeed(Option.none<Resume.OwnerState>()))
  )

/** whether the grove that runs a RUNNING session lives */
const ownerLives = (s: SessionSummary) => Effect.map(ownerOf(s), Option.exists((owner) => owner.alive))

const sessionJson = (s: SessionSummary) =>
  Effect.map(
    ownerOf(s),
    (owner): SessionJson => ({
      id: s.id,
      status: s.status,
      startedAt: iso(s.startedAt),
      completedAt: iso(s.completedAt),
      durationMs: s.completedAt === undefined ? null : Math.max(0, s.completedAt - s.startedAt),
      total: s.total,
      passed: s.passed,
      notPassed: s.notPassed,
      repoRoot: s.repoRoot,
      pid: s.pid,
      host: Option.getOrUndefined(Option.flatMapNullable(owner, (o) => o.host)) ?? null,
      resumable: s.status === "RUNNING" && Option.isSome(owner) && !owner.value.alive
    })
  )

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd())
    .join("\n")
}

const shortTime = (millis: number) => new Date(millis).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")

const sessionsOptions = {
  ...common,
  limit: Options.integer("limit").pipe(
    Options.withPseudoName("N"),
    Options.withDefault(defaultKeep),
    Help.option({ text: "List the N newest sessions.", default: String(defaultKeep), example: "--limit 5" })
  ),
  json: jsonOption("the sessions")
}

/**
 * `grove sessions [--limit N] [--json]`: recent sessions, newest first.
 *
 * @since 0.1.0
 * @category commands
 */
export const sessions = Command.make("sessions", sessionsOptions, (o) =>
  command(Effect.gen(function*() {
    if (o.limit < 0) return yield* Effect.fail(InvalidInput.one("--limit", `must be 0 or more, got ${o.limit}`))
    const where = yield* locate(o)
    // whose grove died is read with the store open (on another host: its heartbeat)
    const [list, rows] = yield* withStore(
      where,
      Effect.flatMap(Store, (store) =>
        Effect.flatMap(store.sessions(o.limit), (list) => Effect.map(Effect.forEach(list, sessionJson), (rows) => [list, rows] as const))),
      Effect.succeed([[] as ReadonlyArray<SessionSummary>, [] as ReadonlyArray<SessionJson>] as const)
    )
    if (o.json) {
      yield* json(rows)
      return 0
    }
    if (rows.length === 0) {
      yield* out(`no sessions in ${storeName(where.dbFile)}`)
      return 0
    }
    yield* out(table([
      ["SESSION", "STATUS", "STARTED", "DURATION", "TESTS", "PASSED", "NOT PASSED"],
      ...list.map((s, i) => [
        s.id,
        rows[i]!.resumable ? "RUNNING (grove died: grove run --resume)" : s.status,
        shortTime(s.startedAt),
        s.completedAt === undefined ? "-" : formatDuration(s.completedAt - s.startedAt),
        String(s.total),
        String(s.passed),
        String(s.notPassed)
      ])
    ]))
    return 0
  }))).pipe(
    Help.command(sessionsOptions, {
      summary: "List the store's recent sessions, newest first.",
      examples: ["grove sessions --limit 5 --json"]
    })
  )

// ---------------------------------------------------------------------------
// grove show / grove report
// ---------------------------------------------------------------------------

/**
 * The stored report of a session; tests without a stored flakiness get history's
 * current figure.
 */
const storedReport = (where: Where, id: string) =>
  withStore(
    where,
    Effect.gen(function*() {
      const store = yield* Store
      yield* store.requireSession(id)
      const report = yield* store.report(id)
      if (Option.isNone(report)) return yield* Effect.fail(noSuchSession(where, id))
      const missing = report.value.tests.filter((t) => t.flakiness === undefined).map((t) => t.id as TestId)
      if (missing.length === 0) return report.value
      const history = yield* store.history(missing)
      return new Report({
        ...report.value,
        tests: report.value.tests.map((t) => {
          const flakiness = t.flakiness ?? history.get(t.id)?.flakiness
          return flakiness === undefined ? t : new TestResult({ ...t, flakiness })
        })
      })
    }),
    Effect.fail(noSuchSession(where, id))
  )

const percent = (share: number | undefined) => (share === undefined ? "-" : `${Math.round(share * 100)}%`)

const showText = (report: Report): string => {
  const style = styleOf(process.stdout)
  const s = report.session
  const t = report.totals
  const lines: Array<string> = []
  lines.push(
    `session ${s.id}  ${s.status}  started ${DateTime.formatIso(s.startedAt)}` +
      `${s.completedAt === null ? "" : `  took ${formatDuration(s.durationMs)}`}  ${s.workers} worker${
        s.workers === 1 ? "" : "s"
      }  ${s.baseRef} ${s.baseSha.slice(0, 10)}`
  )
  lines.push(
    `${t.total} test${t.total === 1 ? "" : "s"}: ${t.passed} passed, ${t.flaky} flaky, ${t.failed} failed, ` +
      `${t.timedOut} timed out, ${t.error} error, ${t.cancelled} cancelled; success rate ${t.successRate.toFixed(1)}%`
  )
  if (report.tests.length > 0) {
    lines.push("")
    lines.push(table([
      ["STATUS", "TEST", "DURATION", "ATTEMPTS", "FLAKY RECENTLY"],
      ...report.tests.map((r) => [
        r.status,
        Plain.safe(r.id),
        formatDuration(r.durationMs),
        String(r.attempts.length),
        percent(r.flakiness)
      ])
    ]))
    for (const r of report.tests) {
      if (r.attempts.length === 0 && r.keptWorktree === undefined) continue
      lines.push("", `${Plain.status(style, r.status)} ${Plain.safe(r.id)}  ${Plain.safe(r.name)}  (${Plain.safe(r.source)}, ${r.ref})`)
      for (const a of r.attempts) {
        const how = a.exitCode !== null ? `exit ${a.exitCode}` : a.signal !== null ? a.signal : "-"
        lines.push(
          `  attempt ${a.n}  ${a.status.padEnd(9)} ${how.padEnd(8)} worker ${a.worker}  ${
            DateTime.formatIso(a.startedAt)
          }  ${formatDuration(a.durationMs)}`
        )
        if (a.message !== undefined) lines.push(`    ${Plain.safe(a.message)}`)
        if (a.logPath !== "") lines.push(`    log: ${a.logPath}`)
      }
      if (r.keptWorktree !== undefined) lines.push(`  worktree kept: ${r.keptWorktree}`)
    }
  }
  return lines.join("\n")
}

const showOptions = { ...common, session: sessionArg, json: jsonOption("the session") }

/**
 * `grove show SESSION [--json]`: one session with its tests and attempts. The JSON is
 * the session's JSON report (SPEC §7), with each test's flakiness.
 *
 * @since 0.1.0
 * @category commands
 */
export const show = Command.make("show", showOptions, (o) =>
  command(Effect.gen(function*() {
    const where = yield* locate(o)
    const report = yield* storedReport(where, o.session)
    if (o.json) yield* out(ReportModule.renderers.json!(report).trimEnd())
    else yield* out(showText(report))
    return 0
  }))).pipe(
    Help.command(showOptions, {
      summary: "Show one session with its tests and attempts.",
      examples: ["grove show 20261124-0912-k3f9 --json"]
    })
  )

const reportOptions = {
  ...common,
  session: sessionArg,
  format: Options.choice("format", ["junit", "json", "markdown", "html"] as const).pipe(
    Help.option({ text: "The kind of report to write.", example: "--format junit" })
  ),
  out: Options.text("out").pipe(
    Options.withPseudoName("FILE"),
    Options.optional,
    Help.option({ text: "Write the report to FILE.", default: "standard output", example: "--out out/junit.xml" })
  )
}

/**
 * `grove report SESSION --format junit|json|markdown|html [--out FILE]`.
 *
 * @since 0.1.0
 * @category commands
 */
export const report = Command.make("report", reportOptions, (o) =>
  command(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const target = Option.map(o.out, (f) => path.resolve(f))
    if (Option.isSome(target)) {
      const dir = path.dirname(target.value)
      const info = yield* fs.stat(dir).pipe(Effect.option)
      if (Option.isNone(info) || info.value.type !== "Directory") {
        return yield* Effect.fail(InvalidInput.one("--out", `folder ${dir} does not exist: create it first`))
      }
      const existing = yield* fs.stat(target.value).pipe(Effect.option)
      if (Option.isSome(existing) && existing.value.type === "Directory") {
        return yield* Effect.fail(InvalidInput.one("--out", `${target.value} is a folder: name a file`))
      }
    }
    const where = yield* locate(o)
    const stored = yield* storedReport(where, o.session)
    const text = yield* ReportModule.render(o.format, stored)
    if (Option.isNone(target)) {
      yield* out(text)
      return 0
    }
    yield* fs.writeFileString(target.value, text).pipe(
      Effect.mapError((e) => InvalidInput.one("--out", `cannot write ${target.value}: ${e.message}`))
    )
    yield* err(`grove: wrote the ${o.format} report of session ${o.session} to ${target.value}`)
    return 0
  }))).pipe(
    Help.command(reportOptions, {
      summary: "Write the report of a stored session.",
      examples: ["grove report 20261124-0912-k3f9 --format junit --out out/junit.xml"]
    })
  )

// ---------------------------------------------------------------------------
// grove worktrees
// ---------------------------------------------------------------------------

const worktreesOptions = {
  ...common,
  prune: Options.boolean("prune").pipe(
    Help.option({ text: "Remove the worktrees whose grove process is gone, and git's records of them." })
  ),
  json: jsonOption("the worktrees")
}

/**
 * `grove worktrees [--prune] [--json]`: the worktrees grove owns, from their locks; with
 * `--prune`, removes those whose grove process is gone.
 *
 * @since 0.1.0
 * @category commands
 */
export const worktrees = Command.make("worktrees", worktreesOptions, (o) =>
  command(Effect.gen(function*() {
    const where = yield* locate(o)
    const repoInfo = yield* requireRepo(where, "worktrees")
    const listed = yield* Resume.worktrees(repoInfo)
    // the status of each worktree's session, when the store holds it
    const ids = [...new Set(listed.map((w) => w.session))]
    const statuses = yield* withStore(
      where,
      Effect.flatMap(Store, (store) =>
        Effect.forEach(ids, (id) =>
          store.requireSession(id).pipe(
            Effect.map((s) => [id, s.status] as const),
            Effect.catchTag("StoreError", (e) => e.reason === "UnknownSession" ? Effect.succeed([id, "unknown"] as const) : Effect.fail(e))
          ))),
      Effect.succeed(ids.map((id) => [id, "unknown"] as const))
    ).pipe(Effect.map((pairs) => new Map<string, string>(pairs)))
    const rows = listed.map((w) => ({
      path: w.path,
      session: w.session,
      sessionStatus: statuses.get(w.session) ?? "unknown",
      pid: w.pid,
      alive: w.alive,
      kept: w.kept,
      prunable: w.prunable,
      head: w.head ?? null
    }))
    const reclaimed = o.prune ? yield* Resume.reclaim(repoInfo, { kept: true }) : undefined
    if (o.json) {
      yield* json({
        worktrees: rows,
        ...(reclaimed === undefined ? {} : {
          removed: reclaimed.removed.map((w) => w.path),
          failed: reclaimed.failed.map((f) => ({ path: f.worktree.path, error: f.error.message }))
        })
      })
    } else {
      if (rows.length === 0) yield* out(`no worktrees owned by grove in ${repoInfo.root}`)
      else {
        yield* out(table([
          ["WORKTREE", "SESSION", "OWNER", "STATE"],
          ...rows.map((r) => [
            r.path,
            `${r.session} (${r.sessionStatus})`,
            `pid ${r.pid}`,
            r.alive ? "in use" : r.kept ? `kept${o.prune ? "" : ": grove worktrees --prune removes it"}` : `stale${r.prunable ? ", folder missing" : ""}${o.prune ? "" : ": grove worktrees --prune removes it"}`
          ])
        ]))
      }
      if (reclaimed !== undefined) {
        yield* out(
          reclaimed.removed.length === 0
            ? "nothing to prune"
            : `removed ${reclaimed.removed.length} stale worktree${reclaimed.removed.length === 1 ? "" : "s"}`
        )
        for (const f of reclaimed.failed) yield* err(`grove: could not remove ${f.worktree.path}: ${f.error.message}`)
      }
    }
    return reclaimed !== undefined && reclaimed.failed.length > 0 ? 1 : 0
  }))).pipe(
    Help.command(worktreesOptions, {
      summary: "List the worktrees grove owns, from their locks.",
      description: "With --prune, removes those whose grove process is gone.",
      examples: ["grove worktrees --prune"]
    })
  )

// ---------------------------------------------------------------------------
// grove gc
// ---------------------------------------------------------------------------

const gcOptions = {
  ...common,
  keep: Options.integer("keep").pipe(
    Options.withPseudoName("N"),
    Options.withDefault(defaultKeep),
    Help.option({ text: "Keep the N newest sessions.", default: String(defaultKeep), example: "--keep 5" })
  ),
  json: jsonOption("what was deleted")
}

/**
 * `grove gc [--keep N] [--json]`: deletes every session but the newest N, with its
 * executions, attempts and log folder. A session whose grove still runs is kept.
 *
 * @since 0.1.0
 * @category commands
 */
export const gc = Command.make("gc", gcOptions, (o) =>
  command(Effect.gen(function*() {
    if (o.keep < 0) return yield* Effect.fail(InvalidInput.one("--keep", `must be 0 or more, got ${o.keep}`))
    const fs = yield* FileSystem.FileSystem
    const where = yield* locate(o)
    // one look per repository the deleted sessions ran in
    const commonDirOf = yield* Effect.cachedFunction((repoRoot: string) => Session.commonDirOf(repoRoot, where.repo))
    const result = yield* withStore(
      where,
      Effect.gen(function*() {
        const store = yield* Store
        const all = yield* store.sessions(1_000_000_000)
        const deleted: Array<string> = []
        const running: Array<string> = []
        const logs: Array<string> = []
        for (const s of all.slice(o.keep)) {
          if (s.status === "RUNNING" && (yield* ownerLives(s))) {
            running.push(s.id)
            continue
          }
          yield* store.deleteSession(s.id)
          deleted.push(s.id)
          // its logs: <git-common-dir>/grove/sessions/<id> of the repository it ran in
          const folder = Option.getOrUndefined(Option.flatMap(yield* commonDirOf(s.repoRoot), (dir) => Session.storedDataDirIn(dir, s.id)))
          if (folder === undefined) continue
          if (yield* fs.exists(folder).pipe(Effect.orElseSucceed(() => false))) {
            yield* fs.remove(folder, { recursive: true }).pipe(
              Effect.tap(() => Effect.sync(() => logs.push(folder))),
              Effect.catchAll((e) => err(`grove: warning: could not remove ${folder}: ${e.message}`))
            )
          }
        }
        return { deleted, running, logs, kept: all.length - deleted.length }
      }),
      Effect.succeed({ deleted: [] as Array<string>, running: [] as Array<string>, logs: [] as Array<string>, kept: 0 })
    )
    if (o.json) {
      yield* json({ deleted: result.deleted, kept: result.kept, stillRunning: result.running, removedLogs: result.logs })
    } else {
      yield* out(
        `deleted ${result.deleted.length} session${result.deleted.length === 1 ? "" : "s"}` +
          (result.deleted.length === 0 ? "" : ` (${result.deleted.join(", ")})`) +
          `, kept ${result.kept}` +
          (result.running.length === 0 ? "" : `, of which still running: ${result.running.join(", ")}`)
      )
    }
    return 0
  }))).pipe(
    Help.command(gcOptions, {
      summary: "Delete old sessions with their logs, keeping the newest ones.",
      description: "A session whose grove still runs is kept.",
      examples: ["grove gc --keep 10"]
    })
  )
