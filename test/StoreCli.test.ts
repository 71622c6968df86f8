/**
 * The store commands with the real binary (SPEC §6): `grove sessions`, `show`, `report`,
 * `worktrees`, `gc` on real runs, with and without `--json`; and bad input — an
 * unknown session, a `--db` that is not SQLite, a store whose schema is newer — each a
 * clear error, exit 2, nothing created and the file's bytes unchanged.
 * Run `npm run build` first (`npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Json from "../src/report/Json.js"
import * as Cli from "./support/cli.js"
import { type EmptyRepo, git, makeEmptyRepo } from "./support/repo.js"

type Repo = EmptyRepo

const tinyRepo = makeEmptyRepo("grove-storecli-")

const grove = (repo: Repo, ...args: Array<string>) => Cli.run(args, { cwd: repo.root })

const show = (o: Cli.Outcome) => `exit ${o.code}\nstdout:\n${o.stdout}\nstderr:\n${o.stderr}`

const ok = (o: Cli.Outcome) => {
  assert.strictEqual(o.code, 0, show(o))
  return o
}

const refused = (o: Cli.Outcome, ...fragments: Array<string>) => {
  assert.strictEqual(o.code, 2, show(o))
  for (const f of fragments) assert.include(o.stderr, f, show(o))
  return o
}

const parse = <A>(o: Cli.Outcome): A => JSON.parse(ok(o).stdout) as A

/** a pid no process has now */
const deadPid = Effect.async<number>((resume) => {
  const child = ChildProcess.spawn("true")
  child.on("exit", () => resume(Effect.succeed(child.pid!)))
})

const live = <A, E>(name: string, body: Effect.Effect<A, E, Scope.Scope | NodeContext.NodeContext>) =>
  it.scopedLive(name, () => body.pipe(Effect.provide(NodeContext.layer)), 120_000)

interface SessionJson {
  readonly id: string
  readonly status: string
  readonly total: number
  readonly passed: number
  readonly notPassed: number
  readonly startedAt: string
  readonly completedAt: string | null
  readonly repoRoot: string
  readonly resumable: boolean
}

describe("grove sessions / show / report / worktrees / gc", () => {
  live("work on real runs, as text and as JSON", Effect.gen(function*() {
    const repo = yield* tinyRepo
    // a first session: one passes, one fails twice, one passes on its second attempt
    const first = yield* grove(
      repo,
      "run",
      "--workers",
      "2",
      "--retries",
      "1",
      "--each",
      "case {} in bad) exit 3;; flaky) [ \"$GROVE_ATTEMPT\" = 2 ];; esac",
      "good",
      "bad",
      "flaky"
    )
    assert.strictEqual(first.code, 1, show(first))
    const firstId = Cli.sessionId(first.stdout)!
    const second = ok(yield* grove(repo, "run", "--each", "true", "again"))
    const secondId = Cli.sessionId(second.stdout)!

    const [listText, list, one, shown, shownJson, junit, jsonReport, markdown, html] = yield* Effect.all([
      grove(repo, "sessions"),
      grove(repo, "sessions", "--json"),
      grove(repo, "sessions", "--limit", "1", "--json"),
      grove(repo, "show", firstId),
      grove(repo, "show", firstId, "--json"),
      grove(repo, "report", firstId, "--format", "junit", "--out", NodePath.join(repo.dir, "junit.xml")),
      grove(repo, "report", firstId, "--format", "json"),
      grove(repo, "report", firstId, "--format", "markdown"),
      grove(repo, "report", firstId, "--format", "html", "--out", NodePath.join(repo.dir, "report.html"))
    ], { concurrency: 3 })

    // sessions: newest first
    const rows = ok(listText).stdout.trim().split("\n")
    assert.match(rows[0]!, /^SESSION\s+STATUS\s+STARTED/)
    assert.match(rows[1]!, new RegExp(`^${secondId}\\s+COMPLETE\\s`))
    assert.match(rows[2]!, new RegExp(`^${firstId}\\s+PARTIAL_SUCCESS\\s.*\\s3\\s+2\\s+1$`))
    const sessions = parse<ReadonlyArray<SessionJson>>(list)
    assert.deepStrictEqual(sessions.map((s) => [s.id, s.status, s.total, s.passed, s.notPassed]), [
      [secondId, "COMPLETE", 1, 1, 0],
      [firstId, "PARTIAL_SUCCESS", 3, 2, 1]
    ])
    assert.strictEqual(sessions[1]!.repoRoot, repo.root)
    assert.isFalse(sessions[1]!.resumable)
    assert.isTrue(new Date(sessions[1]!.completedAt!).getTime() >= new Date(sessions[1]!.startedAt).getTime())
    assert.deepStrictEqual(parse<ReadonlyArray<SessionJson>>(one).map((s) => s.id), [secondId])

    // show: tests, attempts, log paths, flakiness
    const text = ok(shown).stdout
    assert.include(text, `session ${firstId}  PARTIAL_SUCCESS`)
    assert.match(text, /FLAKY\s+flaky\s+\S+\s+2\s+100%/)
    assert.match(text, /FAILED\s+bad\s+\S+\s+2\s+0%/)
    assert.match(text, /attempt 2 {2}FAILED +exit 3/)
    assert.include(text, NodePath.join(repo.commonDir, "grove", "sessions", firstId, "logs"))
    const report = yield* Json.decode(ok(shownJson).stdout)
    assert.strictEqual(report.session.id, firstId)
    assert.deepStrictEqual(report.tests.map((t) => [t.id as string, t.status as string, t.attempts.length, t.flakiness]), [
      ["good", "PASSED", 1, 0],
      ["bad", "FAILED", 2, 0],
      ["flaky", "FLAKY", 2, 1]
    ])
    assert.deepStrictEqual([report.totals.passed, report.totals.flaky, report.totals.failed], [1, 1, 1])

    // report, each kind
    ok(junit)
    const xml = Fs.readFileSync(NodePath.join(repo.dir, "junit.xml"), "utf8")
    assert.match(xml, /^<\?xml/)
    assert.include(xml, "<testsuite")
    assert.include(xml, "<flakyFailure")
    assert.strictEqual((yield* Json.decode(ok(jsonReport).stdout)).totals.total, 3)
    assert.include(ok(markdown).stdout, firstId)
    ok(html)
    assert.include(Fs.readFileSync(NodePath.join(repo.dir, "report.html"), "utf8"), firstId)
    refused(
      yield* grove(repo, "report", firstId, "--format", "junit", "--out", NodePath.join(repo.dir, "nowhere", "j.xml")),
      "--out",
      "does not exist"
    )

    // worktrees: none after clean runs; then one of a dead grove, one of a live one
    assert.include(ok(yield* grove(repo, "worktrees")).stdout, "no worktrees owned by grove")
    const dead = yield* deadPid
    const stale = NodePath.join(repo.dir, "repo.grove", "20260101-0000-dead", "w1")
    const inUse = NodePath.join(repo.dir, "repo.grove", "20260101-0000-busy", "w1")
    yield* git(repo.root, "worktree", "add", "--detach", "--lock", "--reason", `grove 20260101-0000-dead ${dead}`, stale, "HEAD")
    yield* git(repo.root, "worktree", "add", "--detach", "--lock", "--reason", `grove 20260101-0000-busy ${process.pid}`, inUse, "HEAD")
    const [wtText, wtJson] = yield* Effect.all([grove(repo, "worktrees"), grove(repo, "worktrees", "--json")], { concurrency: 2 })
    assert.match(ok(wtText).stdout, /20260101-0000-dead \(unknown\)\s+pid \d+\s+stale/)
    assert.match(wtText.stdout, /20260101-0000-busy \(unknown\)\s+pid \d+\s+in use/)
    const listed = parse<{ readonly worktrees: ReadonlyArray<{ readonly path: string; readonly alive: boolean; readonly session: string }> }>(wtJson)
    assert.deepStrictEqual(
      listed.worktrees.map((w) => [w.path, w.session, w.alive]).sort(),
      [[inUse, "20260101-0000-busy", true], [stale, "20260101-0000-dead", false]]
    )
    const pruned = parse<{ readonly removed: ReadonlyArray<string> }>(yield* grove(repo, "worktrees", "--prune", "--json"))
    assert.deepStrictEqual(pruned.removed, [stale])
    assert.isFalse(Fs.existsSync(stale))
    assert.isTrue(Fs.existsSync(inUse), "a live grove's worktree stays")
    assert.include(ok(yield* grove(repo, "worktrees", "--prune")).stdout, "nothing to prune")
    yield* git(repo.root, "worktree", "remove", "--force", "--force", inUse)

    // gc: keeps the newest, deletes the rest with their logs
    const logs = NodePath.join(repo.commonDir, "grove", "sessions", firstId)
    assert.isTrue(Fs.existsSync(logs))
    const gc = parse<{ readonly deleted: ReadonlyArray<string>; readonly kept: number }>(yield* grove(repo, "gc", "--keep", "1", "--json"))
    assert.deepStrictEqual([gc.deleted, gc.kept], [[firstId], 1])
    assert.isFalse(Fs.existsSync(logs))
    assert.deepStrictEqual(parse<ReadonlyArray<SessionJson>>(yield* grove(repo, "sessions", "--json")).map((s) => s.id), [secondId])
    refused(yield* grove(repo, "show", firstId), firstId, "grove sessions")
    assert.include(ok(yield* grove(repo, "gc", "--keep", "1")).stdout, "deleted 0 sessions, kept 1")
  }))
})

describe("grove run --last-failed, and a plain run taking back a dead run's worktrees", () => {
  live("runs what did not pass in the previous session", Effect.gen(function*() {
    const repo = yield* tinyRepo
    refused(yield* grove(repo, "run", "--last-failed"), "--last-failed", "run grove without --last-failed first")
    assert.isFalse(Fs.existsSync(NodePath.join(repo.commonDir, "grove")), "no store was created by asking")

    const fixed = NodePath.join(repo.dir, "fixed")
    const cmd = `case {} in bad) [ -e ${fixed} ];; esac`
    // a worktree a dead grove left behind: the next plain run takes it back
    const stale = NodePath.join(repo.dir, "repo.grove", "20260101-0000-dead", "w1")
    yield* git(repo.root, "worktree", "add", "--detach", "--lock", "--reason", `grove 20260101-0000-dead ${yield* deadPid}`, stale, "HEAD")
    const first = yield* grove(repo, "run", "--retries", "0", "--each", cmd, "good", "bad", "other")
    assert.strictEqual(first.code, 1, show(first))
    assert.include(first.stderr, "removed 1 worktree left by dead grove runs (session 20260101-0000-dead)")
    assert.isFalse(Fs.existsSync(stale))

    // a dry run shows what would run, with the durations the store knows
    const [dry, dryFailed] = yield* Effect.all([
      grove(repo, "run", "--dry-run", "--each", cmd, "good", "bad", "new"),
      grove(repo, "run", "--dry-run", "--last-failed")
    ], { concurrency: 2 })
    assert.match(ok(dry).stdout, /^ {2}good {2}expected \d/m)
    assert.match(dry.stdout, /^ {2}bad {2}expected unknown$/m)
    assert.match(dry.stdout, /^ {2}new {2}expected unknown$/m)
    assert.match(ok(dryFailed).stdout, /grove dry run: 1 test .*\n {2}bad {2}expected unknown/)

    // only bad runs again (still failing)
    const again = yield* grove(repo, "run", "--last-failed")
    assert.strictEqual(again.code, 1, show(again))
    assert.include(again.stderr, `1 test did not pass in session ${Cli.sessionId(first.stdout)}`)
    assert.match(again.stdout, /^grove session \S+ {2}1 test on/)
    assert.match(again.stdout, /^FAILED +bad /m)
    assert.notMatch(again.stdout, /good|other/)

    // fixed: it passes; and then nothing is left to run
    Fs.writeFileSync(fixed, "")
    const fixedRun = ok(yield* grove(repo, "run", "--last-failed"))
    assert.match(fixedRun.stdout, /^PASSED +bad /m)
    const nothing = ok(yield* grove(repo, "run", "--last-failed"))
    assert.include(nothing.stderr, "0 tests did not pass")
    assert.include(nothing.stdout, "NO_TESTS")
  }))
})

// -----------------------------------------------------------------------------
// bad input
// -----------------------------------------------------------------------------

const bytes = (file: string) => Fs.readFileSync(file)

/** what must hold after grove refused: nothing made in the repository or next to it */
const nothingCreated = (repo: Repo) =>
  Effect.gen(function*() {
    assert.deepStrictEqual(yield* Cli.worktreePaths(repo.root), [repo.root])
    assert.isFalse(Fs.existsSync(NodePath.join(repo.dir, "repo.grove")), "no worktree folder")
  })

describe("bad input: exit 2, a clear message, nothing created or changed", () => {
  live("an unknown session id", Effect.gen(function*() {
    const repo = yield* tinyRepo
    const unknown = "20991231-2359-none"
    // no store yet: it is not created by asking
    const outcomes = yield* Effect.all([
      grove(repo, "run", "--resume", unknown),
      grove(repo, "show", unknown),
      grove(repo, "report", unknown, "--format", "json")
    ], { concurrency: 3 })
    for (const o of outcomes) refused(o, unknown)
    assert.isFalse(Fs.existsSync(NodePath.join(repo.commonDir, "grove")), "no store, no session folder")
    assert.include(ok(yield* grove(repo, "sessions")).stdout, "no sessions")
    assert.deepStrictEqual(parse<ReadonlyArray<unknown>>(yield* grove(repo, "sessions", "--json")), [])
    // with a store that holds other sessions
    ok(yield* grove(repo, "run", "--each", "true", "x"))
    const dbFile = NodePath.join(repo.commonDir, "grove", "grove.db")
    const before = parse<ReadonlyArray<SessionJson>>(yield* grove(repo, "sessions", "--json"))
    for (const o of yield* Effect.all([grove(repo, "run", "--resume", unknown), grove(repo, "show", unknown)], { concurrency: 2 })) {
      refused(o, unknown, "grove sessions")
    }
    assert.deepStrictEqual(parse<ReadonlyArray<SessionJson>>(yield* grove(repo, "sessions", "--json")), before)
    assert.isTrue(Fs.existsSync(dbFile))
    yield* nothingCreated(repo)
    // --resume with plans is a usage error
    refused(yield* grove(repo, "run", "--resume", before[0]!.id, "plan.md"), "--resume", "give no plans")
  }))

  live("a --db file that is not SQLite", Effect.gen(function*() {
    const repo = yield* tinyRepo
    const file = NodePath.join(repo.dir, "notes.db")
    Fs.writeFileSync(file, "these are my notes, not a database\n".repeat(10))
    const original = bytes(file)
    const outcomes = yield* Effect.all([
      grove(repo, "sessions", "--db", file),
      grove(repo, "show", "20261124-0912-k3f9", "--db", file),
      grove(repo, "gc", "--db", file),
      grove(repo, "run", "--db", file, "--each", "true", "a"),
      grove(repo, "run", "--db", file, "--resume", "20261124-0912-k3f9")
    ], { concurrency: 3 })
    for (const o of outcomes) refused(o, file, "is not an SQLite database", "untouched")
    assert.deepStrictEqual(bytes(file), original)
    assert.isFalse(Fs.existsSync(`${file}-wal`))
    assert.isFalse(Fs.existsSync(`${file}-shm`))
    assert.notInclude(outcomes[3]!.stdout, "grove session", "no session started")
    yield* nothingCreated(repo)
  }))

  live("a store whose schema is newer than this grove's", Effect.gen(function*() {
    const repo = yield* tinyRepo
    const file = NodePath.join(repo.dir, "future.db")
    yield* Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(SqliteClient.layer({ filename: file, disableWAL: true }))
      const sql = Context.get(context, SqlClient.SqlClient)
      yield* sql.unsafe("CREATE TABLE sessions (id TEXT PRIMARY KEY, holographic BLOB)")
      yield* sql.unsafe("PRAGMA user_version = 99")
    }))
    const original = bytes(file)
    const outcomes = yield* Effect.all([
      grove(repo, "sessions", "--db", file),
      grove(repo, "report", "20261124-0912-k3f9", "--format", "junit", "--db", file),
      grove(repo, "run", "--db", file, "--each", "true", "a")
    ], { concurrency: 3 })
    for (const o of outcomes) refused(o, file, "schema version 99", "Upgrade grove")
    assert.deepStrictEqual(bytes(file), original)
    assert.isFalse(Fs.existsSync(`${file}-wal`))
    yield* nothingCreated(repo)
  }))
})
