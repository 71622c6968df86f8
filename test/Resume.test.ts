/**
 * Reaping and resuming (SPEC §5) below the CLI: lock owners, worktrees of dead runs
 * (real git), process groups of dead runs (real processes), closing a dead run's
 * attempts, and the Orchestrator continuing a stored session in memory.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Config from "../src/Config.js"
import { Attempt, Counts, Events, Step, TestId, TestRequest, TestResult } from "../src/Domain.js"
import * as Git from "../src/Git.js"
import * as Harness from "../src/Harness.js"
import * as ProcessTree from "../src/internal/processTree.js"
import * as Orchestrator from "../src/Orchestrator.js"
import * as Resume from "../src/Resume.js"
import * as SqlStore from "../src/SqlStore.js"
import * as Store from "../src/Store.js"
import * as Testing from "../src/Testing.js"
import { git, makeRepo } from "./support/repo.js"

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------

const T0 = 1_700_000_000_000

const req = (id: string, fields: Partial<ConstructorParameters<typeof TestRequest>[0]> = {}) =>
  new TestRequest({
    id: TestId.make(id),
    name: `test ${id}`,
    source: `plans/${id}.md`,
    steps: [new Step({ shell: "bash", script: `run ${id}` })],
    ...fields
  })

const attempt = (testId: string, n: number, status: Attempt["status"], startedAt: number, durationMs = 100) =>
  new Attempt({
    n,
    status,
    exitCode: status === "PASSED" ? 0 : status === "FAILED" ? 1 : null,
    signal: null,
    worker: 1,
    worktree: "/repo.grove/s/w1",
    startedAt: DateTime.unsafeMake(startedAt),
    durationMs,
    logPath: `/repo/.git/grove/sessions/s/logs/${testId}.${n}.log`,
    tail: ""
  })

/** a pid that surely belongs to no process now: a child that has exited and been reaped */
const deadPid = Effect.async<number>((resume) => {
  const child = ChildProcess.spawn("true")
  child.on("exit", () => resume(Effect.succeed(child.pid!)))
})

/** a process for the length of the scope (killed with its group at the end) */
const spawnScoped = (command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      ChildProcess.spawn(command, args, { detached: true, stdio: "ignore", env: { ...process.env, ...env } })
    ),
    (child) =>
      Effect.sync(() => {
        for (const target of [-child.pid!, child.pid!]) {
          try {
            process.kill(target, "SIGKILL")
          } catch {
            // gone already
          }
        }
      })
  )

/** waits (real time, bounded) until `check` holds: processes take a moment to start */
const eventually = (check: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400; i++) {
      if (check()) return
      yield* ProcessTree.realSleep(10)
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

const liveWith = (entry: string) => ProcessTree.findByEnv(entry).length

/** every process carrying `entry` is killed when the scope closes, whatever the test did */
const sweepScoped = (entry: string) =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const p of ProcessTree.findByEnv(entry)) ProcessTree.signal(p.pid, "SIGKILL")
    })
  )

// -----------------------------------------------------------------------------
// pure parts
// -----------------------------------------------------------------------------

describe("Resume: lock reasons and config snapshots", () => {
  it("parseLock reads grove's lock reasons only", () => {
    assert.deepStrictEqual(Resume.parseLock("grove 20261124-0912-k3f9 4242"), { session: "20261124-0912-k3f9", pid: 4242, kept: false })
    assert.deepStrictEqual(Resume.parseLock("  grove s 7\n"), { session: "s", pid: 7, kept: false })
    assert.deepStrictEqual(Resume.parseLock("grove s kept"), { session: "s", pid: 0, kept: true })
    for (const reason of [undefined, "", "grove", "grove s", "grove s x", "grove s 0", "mine 1 2", "grove s 12 extra"]) {
      assert.isUndefined(Resume.parseLock(reason), String(reason))
    }
  })

  it("configOf reads the Orchestrator's snapshot back, durations from milliseconds", () => {
    const snapshot = JSON.stringify({
      ...Config.defaults,
      workers: 2,
      retries: 0,
      keep: ["node_modules"],
      timeoutPercent: 300,
      timeout: 90_000,
      killGrace: 250,
      retryBase: 10,
      retryCap: 20,
      fromTheFuture: true,
      logCap: "lots"
    })
    const config = Resume.configOf(snapshot)
    assert.strictEqual(config.workers, 2)
    assert.strictEqual(config.retries, 0)
    assert.deepStrictEqual(config.keep, ["node_modules"])
    assert.strictEqual(config.timeoutPercent, 300)
    assert.strictEqual(Duration.toMillis(config.timeout!), 90_000)
    assert.strictEqual(Duration.toMillis(config.killGrace!), 250)
    assert.isFalse("fromTheFuture" in config)
    assert.isFalse("logCap" in config, "a value of the wrong type is left out")
    assert.deepStrictEqual(Resume.configOf("not json"), {})
    assert.deepStrictEqual(Resume.configOf("[1]"), {})
  })
})

// -----------------------------------------------------------------------------
// owners and worktrees (real processes, real git)
// -----------------------------------------------------------------------------

describe("Resume: owners and worktrees", () => {
  it.scopedLive("ownerAlive: this process and a live node process are alive; an exited pid or a non-node process is not", () =>
    Effect.gen(function*() {
      assert.isTrue(yield* Resume.ownerAlive(process.pid))
      assert.isFalse(yield* Resume.ownerAlive(yield* deadPid))
      assert.isFalse(yield* Resume.ownerAlive(0))
      assert.isFalse(yield* Resume.ownerAlive(1))
      const node = yield* spawnScoped(process.execPath, ["-e", "setTimeout(() => {}, 60000)"])
      const sleeper = yield* spawnScoped("sleep", ["60"])
      yield* eventually(() => ProcessTree.readStat(node.pid!) !== undefined, "node to start")
      assert.isTrue(yield* Resume.ownerAlive(node.pid!))
      // a pid now held by something that is not grove (a reused pid) counts as dead
      yield* eventually(() => (Fs.readFileSync(`/proc/${sleeper.pid}/cmdline`, "latin1")).startsWith("sleep"), "sleep to exec")
      assert.isFalse(yield* Resume.ownerAlive(sleeper.pid!))
    }))

  it.scopedLive("reclaim removes the worktrees of dead grove runs only, then their empty folders", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      const root = NodePath.join(repo.dir, "repo.grove")
      const dead = yield* deadPid
      const add = (path: string, reason: string) =>
        git(repo.root, "worktree", "add", "--detach", "--lock", "--reason", reason, path, repo.second)
      const deadA = NodePath.join(root, "20260101-0000-dead", "w1")
      const deadB = NodePath.join(root, "20260101-0000-dead", "w2")
      const otherDead = NodePath.join(root, "20260102-0000-gone", "w1")
      const live = NodePath.join(root, "20260103-0000-live", "w1")
      const foreign = NodePath.join(repo.dir, "mine")
      const kept = NodePath.join(root, "20260104-0000-kept", "w1")
      yield* add(kept, "grove 20260104-0000-kept kept")
      yield* add(deadA, `grove 20260101-0000-dead ${dead}`)
      yield* add(deadB, `grove 20260101-0000-dead ${dead}`)
      yield* add(otherDead, `grove 20260102-0000-gone ${dead}`)
      yield* add(live, `grove 20260103-0000-live ${process.pid}`)
      yield* add(foreign, "my own work, do not touch")
      // a dead run's worktree whose folder someone already deleted
      Fs.rmSync(deadB, { recursive: true, force: true })

      const listed = yield* Resume.worktrees(info)
      assert.deepStrictEqual(
        listed.map((w) => [w.session, w.alive, NodePath.basename(NodePath.dirname(w.path))]).sort(),
        [
          ["20260101-0000-dead", false, "20260101-0000-dead"],
          ["20260101-0000-dead", false, "20260101-0000-dead"],
          ["20260102-0000-gone", false, "20260102-0000-gone"],
          ["20260103-0000-live", true, "20260103-0000-live"],
          ["20260104-0000-kept", false, "20260104-0000-kept"]
        ]
      )

      // one session only
      const first = yield* Resume.reclaim(info, { session: "20260101-0000-dead" })
      assert.deepStrictEqual(first.removed.map((w) => w.path).sort(), [deadA, deadB].sort())
      assert.deepStrictEqual(first.failed, [])
      assert.isFalse(Fs.existsSync(NodePath.dirname(deadA)), "the session folder went with its worktrees")
      assert.isTrue(Fs.existsSync(otherDead))

      // every dead one
      const second = yield* Resume.reclaim(info)
      assert.deepStrictEqual(second.removed.map((w) => w.path), [otherDead])
      assert.isFalse(Fs.existsSync(NodePath.dirname(otherDead)))
      assert.isTrue(Fs.existsSync(live), "a live grove's worktree stays")
      assert.isTrue(Fs.existsSync(foreign), "a worktree grove did not lock stays")
      assert.isTrue(Fs.existsSync(root), "the root still holds the live session")
      const left = (yield* g.worktreeList(info)).map((e) => e.path).sort()
      assert.deepStrictEqual(left, [repo.root, foreign, live, kept].sort(), "a worktree kept on purpose (--keep-failed) stays")
      assert.deepStrictEqual((yield* Resume.reclaim(info)).removed, [])
      // grove worktrees --prune: the kept one too
      assert.deepStrictEqual((yield* Resume.reclaim(info, { kept: true })).removed.map((w) => w.path), [kept])
    }).pipe(Effect.provide(Layer.provideMerge(Git.layer, NodeContext.layer))))
})

// -----------------------------------------------------------------------------
// processes (real processes, recorded in a store)
// -----------------------------------------------------------------------------

describe("Resume: process groups of a dead run", () => {
  const sessionId = "20260101-0000-reap"

  /** a session in the store with one running attempt per group */
  const recordGroups = (groups: ReadonlyArray<{ readonly testId: string; readonly pgid: number; readonly startTime: string }>) =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      yield* store.record(
        sessionId,
        Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c0ffee1", workers: 2, startedAt: T0 }),
        { meta: { repoRoot: "/repo", pid: yield* deadPid, config: "{}" } }
      )
      for (const g of groups) {
        const testId = TestId.make(g.testId)
        yield* store.record(sessionId, Events.TestQueued({ test: req(g.testId), sha: "c0ffee1", refName: "main", expectedMs: undefined }))
        yield* store.record(sessionId, Events.AttemptStarted({ testId, n: 1, worker: 1, worktree: "/w", startedAt: T0, logPath: "/l" }))
        yield* store.record(sessionId, Events.AttemptSpawned({ testId, n: 1, pgid: g.pgid, processStartTime: g.startTime }))
      }
    })

  it.scopedLive("kills recorded groups whose leader's start time matches, and the session's escapees; leaves a reused pid alone", () =>
    Effect.gen(function*() {
      const marker = `GROVE_REAP_TEST=${Crypto.randomUUID()}`
      yield* sweepScoped(marker)
      const [name, value] = marker.split("=") as [string, string]
      const sessionEnv = { [name]: value, GROVE_SESSION: sessionId }
      // an attempt's group: the leader and a background child
      const attemptGroup = yield* spawnScoped("bash", ["-c", "sleep 60 & exec sleep 60"], sessionEnv)
      // a group whose leader has exited, its member still running
      const orphaned = yield* spawnScoped("bash", ["-c", "sleep 60 & exit 0"], sessionEnv)
      // an escapee in its own session, never recorded
      yield* spawnScoped("bash", ["-c", "setsid sleep 60 & exec sleep 60"], sessionEnv)
      // a stranger that got a recorded pid: another start time, not of this session
      const stranger = yield* spawnScoped("bash", ["-c", "sleep 60 & exec sleep 60"], { [name]: value })
      yield* eventually(() => liveWith(marker) === 7, "the test processes to start")
      yield* eventually(() => ProcessTree.isGone(ProcessTree.readStat(orphaned.pid!)), "the orphaned group's leader to exit")

      yield* recordGroups([
        { testId: "a", pgid: attemptGroup.pid!, startTime: ProcessTree.startTime(attemptGroup.pid!)! },
        { testId: "b", pgid: orphaned.pid!, startTime: "12345" },
        { testId: "c", pgid: stranger.pid!, startTime: "1" },
        { testId: "d", pgid: 999_999_999, startTime: "1" }
      ])
      const reaped = yield* Resume.reapProcesses(sessionId, "2 seconds")
      assert.strictEqual(reaped.groups, 2, "the attempt's group and the orphaned one")
      assert.strictEqual(reaped.processes, 5)
      // only the stranger's two processes are left
      const left = ProcessTree.findByEnv(marker)
      assert.deepStrictEqual(left.map((p) => p.pgid), [stranger.pid!, stranger.pid!])
      assert.deepStrictEqual(yield* Resume.reapProcesses(sessionId, "2 seconds"), { groups: 0, processes: 0, killed: 0 })
    }).pipe(Effect.provide(Store.layerMemory)))
})

// -----------------------------------------------------------------------------
// prepare: what --resume does before the session runs
// -----------------------------------------------------------------------------

/**
 * A session that died: a PASSED, b running attempt 1, c queued, d waiting for its
 * retry after a FAILED attempt 1; its grove was `ownerPid`.
 */
const deadSession = (sessionId: string, ownerPid: number, repoRoot: string) =>
  Effect.gen(function*() {
    const store = yield* Store.Store
    yield* store.record(
      sessionId,
      Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c0ffee1", workers: 2, startedAt: T0 }),
      { meta: { repoRoot, pid: ownerPid, config: JSON.stringify({ ...Config.defaults, workers: 2, timeout: 60_000, killGrace: 200, retryBase: 1000, retryCap: 30_000 }) } }
    )
    for (const id of ["a", "b", "c", "d"]) {
      yield* store.record(sessionId, Events.TestQueued({ test: req(id), sha: "c0ffee1", refName: "main", expectedMs: undefined }))
    }
    const started = (id: string, a: Attempt) =>
      Events.AttemptStarted({ testId: TestId.make(id), n: a.n, worker: a.worker, worktree: a.worktree, startedAt: DateTime.toEpochMillis(a.startedAt), logPath: a.logPath })
    const a1 = attempt("a", 1, "PASSED", T0 + 10)
    yield* store.record(sessionId, started("a", a1))
    yield* store.record(sessionId, Events.TestFinished({ result: new TestResult({ id: TestId.make("a"), name: "test a", source: "plans/a.md", ref: "main", status: "PASSED", durationMs: 100, attempts: [a1] }) }))
    const d1 = attempt("d", 1, "FAILED", T0 + 20)
    yield* store.record(sessionId, started("d", d1))
    yield* store.record(sessionId, Events.AttemptFinished({ testId: TestId.make("d"), attempt: d1 }))
    yield* store.record(sessionId, Events.RetryScheduled({ testId: TestId.make("d"), nextAttempt: 2, delayMs: 1000 }))
    yield* store.record(sessionId, started("b", attempt("b", 1, "RUNNING", T0 + 200)))
  })

describe("Resume.prepare", () => {
  it.scopedLive("checks the session, reaps, closes the dead run's attempts and returns what is left", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const info = yield* Effect.flatMap(Git.Git, (g) => g.repoInfo(repo.root))
      const store = yield* Store.Store
      const dead = yield* deadPid
      yield* deadSession("20260101-0000-rsm1", dead, info.root)
      // its worktree is still there, locked by the dead grove
      const wt = NodePath.join(repo.dir, "repo.grove", "20260101-0000-rsm1", "w1")
      yield* git(repo.root, "worktree", "add", "--detach", "--lock", "--reason", `grove 20260101-0000-rsm1 ${dead}`, wt, repo.second)

      const prepared = yield* Resume.prepare(info, "20260101-0000-rsm1", { grace: "1 second" })
      assert.deepStrictEqual(prepared.pending.map((p) => [p.request.id, p.attempts]), [["b", 1], ["c", 0], ["d", 1]])
      assert.strictEqual(prepared.closed, 1)
      assert.deepStrictEqual(prepared.worktrees.removed.map((w) => w.path), [wt])
      assert.isFalse(Fs.existsSync(wt))
      assert.include(Resume.summarize(prepared)!, "removed 1 worktree")
      const report = Option.getOrThrow(yield* store.report("20260101-0000-rsm1"))
      const b = report.tests.find((t) => t.id === "b")!
      assert.deepStrictEqual(b.attempts.map((a) => [a.n, a.status]), [[1, "CANCELLED"]])
      assert.strictEqual(b.attempts[0]!.message, Resume.interruptedMessage)
      assert.deepStrictEqual(yield* store.liveGroups("20260101-0000-rsm1"), [])

      // unknown session: a StoreError naming it
      const unknown = yield* Effect.flip(Resume.prepare(info, "20260101-0000-nope", { grace: "1 second" }))
      assert.strictEqual(unknown._tag, "StoreError")
      assert.include(unknown.message, "20260101-0000-nope")

      // a session of another repository is refused, and nothing happens to it
      yield* deadSession("20260101-0000-othr", dead, "/somewhere/else")
      const other = yield* Effect.flip(Resume.prepare(info, "20260101-0000-othr", { grace: "1 second" }))
      assert.strictEqual(other._tag, "InvalidInput")
      assert.include(other.message, "--repo /somewhere/else")

      // a session whose grove still runs is refused, and nothing happens to it
      const node = yield* spawnScoped(process.execPath, ["-e", "setTimeout(() => {}, 60000)"])
      yield* eventually(() => ProcessTree.readStat(node.pid!) !== undefined, "node to start")
      yield* deadSession("20260101-0000-busy", node.pid!, info.root)
      const busy = yield* Effect.flip(Resume.prepare(info, "20260101-0000-busy", { grace: "1 second" }))
      assert.strictEqual(busy._tag, "InvalidInput")
      assert.include(busy.message, `still running in grove process ${node.pid}`)
      const untouched = Option.getOrThrow(yield* store.report("20260101-0000-busy"))
      assert.strictEqual(untouched.tests.find((t) => t.id === "b")!.attempts[0]!.status, "RUNNING")
    }).pipe(Effect.provide(Layer.mergeAll(Store.layerMemory, Layer.provideMerge(Git.layer, NodeContext.layer)))))
})

// -----------------------------------------------------------------------------
// the Orchestrator continues a stored session (in memory, TestClock)
// -----------------------------------------------------------------------------

describe("resuming a session in the Orchestrator", () => {
  it.scoped("same id, only the tests left, attempt numbers continue, the report covers the whole session", () =>
    Effect.gen(function*() {
      const memory = yield* Store.makeMemory
      const storeLayer = Layer.succeed(Store.Store, memory)
      const sessionId = "20260101-0000-cont"
      yield* deadSession(sessionId, yield* deadPid, Testing.defaultRepo.root).pipe(Effect.provide(storeLayer))
      yield* Resume.closeInterrupted(sessionId).pipe(Effect.provide(storeLayer))
      const pending = yield* memory.pending(sessionId)

      const live = Orchestrator.layerSession({ repo: Testing.defaultRepo.root, baseRef: "main", id: sessionId }).pipe(
        Layer.provideMerge(Layer.mergeAll(
          Config.layer({ seed: "grove", workers: 2 }),
          Git.layerMemory({ repos: [Testing.defaultRepo] }),
          Harness.layerMemory(Harness.scriptTable({}, { exitCode: 0, durationMs: 1_000 })),
          storeLayer
        ))
      )
      const { report, runs } = yield* Effect.gen(function*() {
        const orch = yield* Orchestrator.Orchestrator
        assert.strictEqual(orch.session.id, sessionId)
        // a test the session already finished cannot be submitted again
        const duplicate = yield* Effect.flip(orch.submit(req("a")))
        assert.strictEqual(duplicate._tag, "InvalidInput")
        const fiber = yield* Effect.fork(Effect.zipRight(orch.submitPending(pending), orch.awaitCompletion))
        yield* TestClock.adjust("1 minute")
        const report = yield* Fiber.join(fiber)
        // the session's four tests, each counted once (the resumed ones are not counted again)
        assert.strictEqual((yield* orch.status).submitted, 4)
        return { report, runs: yield* Effect.flatMap(Harness.HarnessMemory, (h) => h.runs) }
      }).pipe(Effect.scoped, Effect.provide(live))

      // only b, c and d ran, with the next attempt numbers
      assert.deepStrictEqual(runs.map((r) => [r.spec.testId, r.spec.attempt]).sort(), [["b", 2], ["c", 1], ["d", 2]])
      assert.deepStrictEqual(report.tests.map((t) => t.id).sort(), ["a", "b", "c", "d"])
      const byId = new Map(report.tests.map((t) => [t.id as string, t]))
      // b's first attempt died with grove: not a failure of b's
      assert.strictEqual(byId.get("b")!.status, "PASSED")
      assert.deepStrictEqual(byId.get("b")!.attempts.map((a) => [a.n, a.status]), [[1, "CANCELLED"], [2, "PASSED"]])
      // d failed once before the crash: FLAKY
      assert.strictEqual(byId.get("d")!.status, "FLAKY")
      assert.deepStrictEqual(byId.get("d")!.attempts.map((a) => [a.n, a.status]), [[1, "FAILED"], [2, "PASSED"]])
      assert.strictEqual(byId.get("a")!.attempts.length, 1)
      assert.strictEqual(report.session.status, "COMPLETE")
      assert.strictEqual(report.totals.total, 4)
      assert.strictEqual(DateTime.toEpochMillis(report.session.startedAt), T0, "the session keeps its first start")

      // the store agrees: one execution per test, all terminal, the session finished
      const stored = Option.getOrThrow(yield* memory.report(sessionId))
      assert.deepStrictEqual(stored.tests.map((t) => [t.id, t.status, t.attempts.map((a) => a.n)]), [
        ["a", "PASSED", [1]],
        ["b", "PASSED", [1, 2]],
        ["c", "PASSED", [1]],
        ["d", "FLAKY", [1, 2]]
      ])
      assert.strictEqual(stored.session.status, "COMPLETE")
      assert.deepStrictEqual(yield* memory.pending(sessionId), [])
    }))
})

// -----------------------------------------------------------------------------
// the store's additions, on both backends
// -----------------------------------------------------------------------------

const tempSqlite = Layer.unwrapScoped(
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "grove-resume-" })
    return SqlStore.layer({ filename: NodePath.join(dir, "grove.db") })
  })
).pipe(Layer.provide(NodeContext.layer))

for (const [name, layer] of [["memory", Store.layerMemory], ["SQLite", tempSqlite]] as const) {
  describe(`Store additions (${name})`, () => {
    it.effect("lastFailedTests: the requests of the tests that did not pass in the latest finished session", () =>
      Effect.gen(function*() {
        const store = yield* Store.Store
        assert.isTrue(Option.isNone(yield* store.lastFailedTests("/repo")))
        yield* deadSession("20260101-0000-lf01", 1234, "/repo")
        // still RUNNING: not "the previous session" yet
        assert.isTrue(Option.isNone(yield* store.lastFailedTests("/repo")))
        const running = Option.getOrThrow(yield* store.report("20260101-0000-lf01"))
        yield* store.record("20260101-0000-lf01", Events.SessionFinished({
          status: "PARTIAL_SUCCESS",
          completedAt: T0 + 5_000,
          counts: new Counts({ total: running.totals.total, passed: running.totals.passed, flaky: running.totals.flaky, failed: running.totals.failed, timedOut: running.totals.timedOut, error: running.totals.error, cancelled: running.totals.cancelled })
        }))
        const last = Option.getOrThrow(yield* store.lastFailedTests("/repo"))
        assert.strictEqual(last.sessionId, "20260101-0000-lf01")
        assert.deepStrictEqual(last.tests.map((t) => [t.request.id, t.attempts]), [["b", 1], ["c", 0], ["d", 1]])
        assert.deepStrictEqual(
          last.tests.map((t) => t.request.id),
          Option.getOrThrow(yield* store.lastFailed("/repo")),
          "the same tests as lastFailed"
        )
        assert.isTrue(Option.isNone(yield* store.lastFailedTests("/other")))
      }).pipe(Effect.provide(layer)))

    it.effect("sessionConfig: the snapshot a session was last started with", () =>
      Effect.gen(function*() {
        const store = yield* Store.Store
        yield* deadSession("20260101-0000-cfg1", 1234, "/repo")
        assert.strictEqual(Resume.configOf(yield* store.sessionConfig("20260101-0000-cfg1")).workers, 2)
        const error = yield* Effect.flip(store.sessionConfig("20260101-0000-none"))
        assert.strictEqual(error.reason, "UnknownSession")
      }).pipe(Effect.provide(layer)))
  })
}
