/**
 * Crash safety with the real binary (SPEC §5): a session of 30 short tests is killed
 * with SIGKILL at chosen moments — found by polling the store, stdout and the tests'
 * own records, never by sleeping — and `grove run --resume ID` completes it each time.
 * Then: every test has exactly one terminal execution, nothing recorded as finished
 * ran again, attempt numbers continued, and no process or worktree of the dead run is
 * left. Also: two grove runs at once on one repository and one store.
 *
 * Every test appends `<id> <attempt>` to a file outside the repository when it starts,
 * and carries a marker in its environment; every process started here is killed when
 * its test ends, however it ends. Run `npm run build` first (`npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Cli from "./support/cli.js"
import { type EmptyRepo, makeEmptyRepo } from "./support/repo.js"

const ids = Array.from({ length: 30 }, (_, i) => `t${String(i + 1).padStart(2, "0")}`)

// -----------------------------------------------------------------------------
// the store, read behind grove's back
// -----------------------------------------------------------------------------

interface Execution {
  readonly test_id: string
  readonly status: string
}
interface AttemptRow {
  readonly test_id: string
  readonly n: number
  readonly status: string
}
interface Snapshot {
  readonly session: string | undefined
  readonly executions: ReadonlyArray<Execution>
  readonly attempts: ReadonlyArray<AttemptRow>
}

const terminal = (status: string) => status !== "QUEUED" && status !== "RUNNING"

/** the session's rows, from a connection of this process (grove may be writing meanwhile) */
const snapshot = (dbFile: string, sessionId: string): Effect.Effect<Snapshot> =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(SqliteClient.layer({ filename: dbFile, disableWAL: true }))
    const sql = Context.get(context, SqlClient.SqlClient)
    yield* sql.unsafe("PRAGMA busy_timeout = 10000")
    const session = yield* sql<{ readonly status: string }>`SELECT status FROM sessions WHERE id = ${sessionId}`
    const executions = yield* sql<Execution>`SELECT test_id, status FROM executions WHERE session_id = ${sessionId} ORDER BY test_id`
    const attempts = yield* sql<AttemptRow>`SELECT test_id, n, status FROM attempts WHERE session_id = ${sessionId} ORDER BY test_id, n`
    return { session: session[0]?.status, executions, attempts }
  })).pipe(Effect.orDie)

// -----------------------------------------------------------------------------
// a scenario's world
// -----------------------------------------------------------------------------

type Repo = EmptyRepo

const tinyRepo = makeEmptyRepo("grove-crash-")

interface World {
  readonly repo: Repo
  readonly dbFile: string
  /** `<id> <attempt>` per line, one line per attempt that started its step */
  readonly countFile: string
  /** blocked tests go on once this file exists */
  readonly releaseFile: string
  /** `NAME=value` every process of the runs carries */
  readonly marker: string
  readonly env: Record<string, string>
}

const world: Effect.Effect<World, Error, Scope.Scope | NodeContext.NodeContext> = Effect.gen(function*() {
  const repo = yield* tinyRepo
  const value = Crypto.randomUUID()
  const marker = `GROVE_CRASH_MARKER=${value}`
  // whatever happens in the test, nothing it started outlives it
  yield* Effect.addFinalizer(() =>
    Effect.map(Cli.processesWithEnv(marker), (left) => {
      for (const p of left) {
        try {
          process.kill(p.pid, "SIGKILL")
        } catch {
          // gone meanwhile
        }
      }
    })
  )
  return {
    repo,
    dbFile: NodePath.join(repo.commonDir, "grove", "grove.db"),
    countFile: NodePath.join(repo.dir, "count"),
    releaseFile: NodePath.join(repo.dir, "release"),
    marker,
    env: { GROVE_CRASH_MARKER: value }
  }
})

/**
 * The step of every test: record the start, leave a background process behind (grove
 * must terminate it), optionally block or fail its first attempt, then a short sleep.
 */
const command = (w: World, options: { readonly block?: "all" | string; readonly failFirst?: string } = {}) =>
  [
    `echo "$GROVE_TEST_ID $GROVE_ATTEMPT" >> ${w.countFile}`,
    options.block === undefined
      ? ""
      : options.block === "all"
      ? `[ -e ${w.releaseFile} ] || sleep 30`
      : `if [ "$GROVE_TEST_ID" = ${options.block} ] && [ ! -e ${w.releaseFile} ]; then sleep 30; fi`,
    options.failFirst === undefined ? "" : `if [ "$GROVE_TEST_ID" = ${options.failFirst} ] && [ "$GROVE_ATTEMPT" = 1 ]; then exit 1; fi`,
    "sleep 0.01 # {}"
  ].filter((s) => s !== "").join("; ")

const start = (w: World, cmd: string) =>
  Cli.spawn(["run", "--workers", "2", "--each", cmd, ...ids], { cwd: w.repo.root, env: w.env })

const resume = (w: World, id: string, extra: ReadonlyArray<string> = []) =>
  Cli.spawn(["run", "--resume", id, ...extra], { cwd: w.repo.root, env: w.env })

/** `<id> <attempt>` lines of the count file */
const started = (w: World): ReadonlyArray<readonly [string, number]> =>
  Fs.existsSync(w.countFile)
    ? Fs.readFileSync(w.countFile, "utf8").split("\n").filter((l) => l !== "").map((l) => {
      const [id, n] = l.split(" ")
      return [id!, Number(n)] as const
    })
    : []

const startsOf = (w: World) => {
  const counts = new Map<string, number>()
  for (const [id] of started(w)) counts.set(id, (counts.get(id) ?? 0) + 1)
  return counts
}

/** lines of finished tests grove printed so far */
const finishedLines = (p: Cli.Running) =>
  p.stdout().split("\n").filter((l) => /^(PASSED|FLAKY|FAILED|TIMED_OUT|ERROR|CANCELLED) /.test(l)).length

const sessionOf = (p: Cli.Running) =>
  Effect.gen(function*() {
    yield* Cli.waitFor("the session line", Effect.sync(() => Cli.sessionId(p.stdout()) !== undefined), {
      context: () => `stdout: ${p.stdout()}\nstderr: ${p.stderr()}`
    })
    return Cli.sessionId(p.stdout())!
  })

/** SIGKILL, then what the store and the tests' records say at that moment */
const kill = (w: World, p: Cli.Running, id: string) =>
  Effect.gen(function*() {
    yield* p.kill("SIGKILL")
    const outcome = yield* p.exit
    assert.strictEqual(outcome.signal, "SIGKILL", `grove ended by itself before the kill:\n${outcome.stdout}\n${outcome.stderr}`)
    const dead = yield* snapshot(w.dbFile, id)
    assert.strictEqual(dead.session, "RUNNING")
    return { dead, startsAtKill: startsOf(w) }
  })

/** what must hold once a resume has completed the session */
const assertComplete = (
  w: World,
  id: string,
  outcome: Cli.Outcome,
  dead: Snapshot,
  startsAtKill: ReadonlyMap<string, number>
) =>
  Effect.gen(function*() {
    const context = `stdout:\n${outcome.stdout}\nstderr:\n${outcome.stderr}`
    assert.strictEqual(outcome.code, 0, context)
    assert.strictEqual(Cli.sessionId(outcome.stdout), id, "the same session goes on")
    const final = yield* snapshot(w.dbFile, id)
    assert.strictEqual(final.session, "COMPLETE", context)
    // one terminal execution per test
    assert.deepStrictEqual(final.executions.map((e) => e.test_id), ids)
    for (const e of final.executions) assert.include(["PASSED", "FLAKY"], e.status, e.test_id)
    // what was finished at the kill did not run again
    const starts = startsOf(w)
    for (const e of dead.executions.filter((e) => terminal(e.status))) {
      assert.strictEqual(starts.get(e.test_id), startsAtKill.get(e.test_id), `${e.test_id} was finished and ran again`)
      assert.strictEqual(final.executions.find((f) => f.test_id === e.test_id)!.status, e.status)
    }
    for (const t of ids) assert.isAtLeast(starts.get(t) ?? 0, 1, `${t} never ran`)
    // attempt numbers continue: 1..k per test, never reused, the dead run's rows kept
    const seen = new Set<string>()
    for (const [t, n] of started(w)) {
      assert.isFalse(seen.has(`${t} ${n}`), `attempt ${n} of ${t} ran twice`)
      seen.add(`${t} ${n}`)
    }
    for (const t of ids) {
      const ns = final.attempts.filter((a) => a.test_id === t).map((a) => a.n)
      assert.deepStrictEqual(ns, ns.map((_, i) => i + 1), `attempt numbers of ${t}`)
      const before = dead.attempts.filter((a) => a.test_id === t)
      for (const a of before) {
        const now = final.attempts.find((f) => f.test_id === t && f.n === a.n)!
        assert.strictEqual(now.status, a.status === "RUNNING" ? "CANCELLED" : a.status, `attempt ${a.n} of ${t}`)
      }
      const last = final.attempts.filter((a) => a.test_id === t).at(-1)!
      assert.strictEqual(last.status, "PASSED", `last attempt of ${t}`)
    }
    // nothing of the dead run is left: no process, no worktree, no folder
    assert.deepStrictEqual(yield* Cli.processesWithEnv(w.marker), [])
    assert.deepStrictEqual(yield* Cli.worktreePaths(w.repo.root), [w.repo.root])
    assert.isFalse(Fs.existsSync(NodePath.join(w.repo.dir, "repo.grove")))
  })

/**
 * Resume once, to the end, and check; then `grove show --json`, in a fresh process,
 * says what the resumed run reported: both are the fold of the same stored events.
 */
const resumeToEnd = (w: World, id: string, dead: Snapshot, startsAtKill: ReadonlyMap<string, number>) =>
  Effect.gen(function*() {
    const reported = NodePath.join(w.repo.dir, `resumed-${id}.json`)
    const p = yield* resume(w, id, ["--report", `json:${reported}`])
    const outcome = yield* p.exit
    yield* assertComplete(w, id, outcome, dead, startsAtKill)
    const shown = yield* Cli.run(["show", id, "--json"], { cwd: w.repo.root })
    assert.deepStrictEqual(JSON.parse(shown.stdout), JSON.parse(Fs.readFileSync(reported, "utf8")))
    Fs.rmSync(reported)
    return outcome
  })

const live = <A, E>(name: string, body: Effect.Effect<A, E, Scope.Scope | NodeContext.NodeContext>) =>
  it.scopedLive(name, () => body.pipe(Effect.provide(NodeContext.layer)), 120_000)

// -----------------------------------------------------------------------------
// the moments
// -----------------------------------------------------------------------------

describe("crash safety (SIGKILL, then --resume)", () => {
  live("before any test finished: both workers inside a test", Effect.gen(function*() {
    const w = yield* world
    const p = yield* start(w, command(w, { block: "all" }))
    const id = yield* sessionOf(p)
    yield* Cli.waitFor("two tests to start", Effect.sync(() => started(w).length === 2))
    const { dead, startsAtKill } = yield* kill(w, p, id)
    assert.deepStrictEqual(dead.executions.filter((e) => terminal(e.status)), [])
    assert.strictEqual(dead.attempts.filter((a) => a.status === "RUNNING").length, 2)
    // their process groups outlive grove: the resume must reap them
    assert.isAbove((yield* Cli.processesWithEnv(w.marker)).length, 0)
    Fs.writeFileSync(w.releaseFile, "")
    const outcome = yield* resumeToEnd(w, id, dead, startsAtKill)
    assert.match(outcome.stderr, /terminated \d+ process/)
    assert.match(outcome.stderr, /closed 2 interrupted attempts/)
    assert.match(outcome.stdout, /^grove session \S+ {2}30 tests/)
  }))

  live("during: one test blocked in its step, others finished", Effect.gen(function*() {
    const w = yield* world
    const p = yield* start(w, command(w, { block: "t10" }))
    const id = yield* sessionOf(p)
    yield* Cli.waitFor(
      "t10 to block while others finish",
      Effect.sync(() => startsOf(w).has("t10") && finishedLines(p) >= 12),
      { context: () => p.stdout() }
    )
    const { dead, startsAtKill } = yield* kill(w, p, id)
    assert.strictEqual(dead.executions.find((e) => e.test_id === "t10")!.status, "RUNNING")
    assert.isAtLeast(dead.executions.filter((e) => terminal(e.status)).length, 12)
    assert.isAbove((yield* Cli.processesWithEnv(w.marker)).length, 0, "t10's processes outlive grove")
    Fs.writeFileSync(w.releaseFile, "")
    yield* resumeToEnd(w, id, dead, startsAtKill)
    const final = yield* snapshot(w.dbFile, id)
    assert.deepStrictEqual(
      final.attempts.filter((a) => a.test_id === "t10").map((a) => [a.n, a.status]),
      [[1, "CANCELLED"], [2, "PASSED"]],
      "t10 goes on with attempt 2, not flaky for grove's death"
    )
    assert.strictEqual(final.executions.find((e) => e.test_id === "t10")!.status, "PASSED")
  }))

  live("while a test waits for its retry", Effect.gen(function*() {
    const w = yield* world
    const p = yield* start(w, command(w, { failFirst: "t03" }))
    const id = yield* sessionOf(p)
    yield* Cli.waitFor(
      "t03's first attempt to fail and its retry to be scheduled",
      Effect.map(snapshot(w.dbFile, id), (s) =>
        s.executions.some((e) => e.test_id === "t03" && e.status === "QUEUED") &&
        s.attempts.some((a) => a.test_id === "t03" && a.n === 1 && a.status === "FAILED")),
      { context: () => p.stdout() }
    )
    const { dead, startsAtKill } = yield* kill(w, p, id)
    // the backoff is at least 0.8 s: the kill came before the retry started
    assert.deepStrictEqual(dead.attempts.filter((a) => a.test_id === "t03").map((a) => a.status), ["FAILED"])
    assert.strictEqual(dead.executions.find((e) => e.test_id === "t03")!.status, "QUEUED")
    yield* resumeToEnd(w, id, dead, startsAtKill)
    const final = yield* snapshot(w.dbFile, id)
    assert.strictEqual(final.executions.find((e) => e.test_id === "t03")!.status, "FLAKY")
    assert.deepStrictEqual(
      final.attempts.filter((a) => a.test_id === "t03").map((a) => [a.n, a.status]),
      [[1, "FAILED"], [2, "PASSED"]],
      "the retry runs in the resumed session as attempt 2"
    )
  }))

  live("near the end (29 of 30 finished)", Effect.gen(function*() {
    const w = yield* world
    const p = yield* start(w, command(w, { block: "t30" }))
    const id = yield* sessionOf(p)
    yield* Cli.waitFor("29 tests to finish", Effect.sync(() => finishedLines(p) >= 29), { context: () => p.stdout() })
    const { dead, startsAtKill } = yield* kill(w, p, id)
    assert.deepStrictEqual(dead.executions.filter((e) => !terminal(e.status)).map((e) => e.test_id), ["t30"])
    // grove sessions tells a dead session from a running one
    const listed = JSON.parse((yield* Cli.run(["sessions", "--json"], { cwd: w.repo.root })).stdout) as ReadonlyArray<{
      readonly id: string
      readonly status: string
      readonly resumable: boolean
    }>
    assert.deepStrictEqual(listed.map((s) => [s.id, s.status, s.resumable]), [[id, "RUNNING", true]])
    Fs.writeFileSync(w.releaseFile, "")
    const outcome = yield* resumeToEnd(w, id, dead, startsAtKill)
    assert.match(outcome.stderr, /1 test left to run/)
    assert.strictEqual(finishedLinesOf(outcome.stdout), 1, "only t30 ran")
  }))

  live("twice: after 8 tests, then half way through the resumed run, which is resumed again", Effect.gen(function*() {
    const w = yield* world
    const p = yield* start(w, command(w))
    const id = yield* sessionOf(p)
    yield* Cli.waitFor("8 tests to finish", Effect.sync(() => finishedLines(p) >= 8), { context: () => p.stdout() })
    const first = yield* kill(w, p, id)
    const again = yield* resume(w, id)
    assert.strictEqual(yield* sessionOf(again), id)
    yield* Cli.waitFor("8 more tests to finish", Effect.sync(() => finishedLines(again) >= 8), { context: () => again.stdout() })
    const second = yield* kill(w, again, id)
    // what the first run finished is still finished, and did not run again
    for (const e of first.dead.executions.filter((e) => terminal(e.status))) {
      assert.strictEqual(second.dead.executions.find((f) => f.test_id === e.test_id)!.status, e.status)
      assert.strictEqual(second.startsAtKill.get(e.test_id), first.startsAtKill.get(e.test_id))
    }
    yield* resumeToEnd(w, id, second.dead, second.startsAtKill)
  }))
})

const finishedLinesOf = (stdout: string) =>
  stdout.split("\n").filter((l) => /^(PASSED|FLAKY|FAILED|TIMED_OUT|ERROR|CANCELLED) /.test(l)).length

// -----------------------------------------------------------------------------
// concurrency
// -----------------------------------------------------------------------------

describe("two grove runs at once on one repository and one store", () => {
  live("both finish with correct results, and neither touches the other's worktrees", Effect.gen(function*() {
    const w = yield* world
    const half = (from: number) => ids.slice(from, from + 10)
    const cmd = (fail: string) =>
      `echo "$GROVE_TEST_ID $GROVE_ATTEMPT" >> ${w.countFile}; [ "$GROVE_TEST_ID" != ${fail} ]; sleep 0.0$((RANDOM % 5 + 1)) # {}`
    const a = yield* Cli.spawn(["run", "--workers", "2", "--retries", "0", "--each", cmd("t02"), ...half(0)], { cwd: w.repo.root, env: w.env })
    const b = yield* Cli.spawn(["run", "--workers", "2", "--retries", "0", "--each", cmd("t15"), ...half(10)], { cwd: w.repo.root, env: w.env })
    const [ra, rb] = yield* Effect.all([a.exit, b.exit], { concurrency: 2 })
    for (const [r, failed] of [[ra, "t02"], [rb, "t15"]] as const) {
      const context = `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
      assert.strictEqual(r.code, 1, context)
      assert.notMatch(r.stderr, /locked|busy|SQLITE/i, context)
      assert.match(r.stdout, /PARTIAL_SUCCESS {2}9 passed, 1 failed {2}of 10/, context)
      const id = Cli.sessionId(r.stdout)!
      const s = yield* snapshot(w.dbFile, id)
      assert.strictEqual(s.session, "PARTIAL_SUCCESS")
      assert.strictEqual(s.executions.length, 10)
      assert.deepStrictEqual(s.executions.filter((e) => e.status !== "PASSED").map((e) => [e.test_id, e.status]), [[failed, "FAILED"]])
    }
    assert.notStrictEqual(Cli.sessionId(ra.stdout), Cli.sessionId(rb.stdout))
    // each test ran once
    const starts = startsOf(w)
    assert.deepStrictEqual([...starts.keys()].sort(), ids.slice(0, 20))
    for (const t of ids.slice(0, 20)) assert.strictEqual(starts.get(t), 1, t)
    assert.deepStrictEqual(yield* Cli.worktreePaths(w.repo.root), [w.repo.root])
    assert.deepStrictEqual(yield* Cli.processesWithEnv(w.marker), [])
  }))
})
