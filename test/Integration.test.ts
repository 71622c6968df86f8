/**
 * The engine with real git, real processes and the in-memory store: what the
 * Orchestrator promises about isolation, termination and cleanup (SPEC §4).
 */
import { assert, describe, it } from "@effect/vitest"
import * as NodeContext from "@effect/platform-node/NodeContext"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Config from "../src/Config.js"
import { type Report, type SessionEvent, Step, TestRequest } from "../src/Domain.js"
import * as Git from "../src/Git.js"
import * as Harness from "../src/Harness.js"
import * as Orchestrator from "../src/Orchestrator.js"
import * as Store from "../src/Store.js"
import { git, makeRepo, type TestRepo } from "./support/repo.js"

const req = (id: string, script: string, fields: Partial<ConstructorParameters<typeof TestRequest>[0]> = {}) =>
  new TestRequest({
    id: id as TestRequest["id"],
    name: id,
    source: "integration",
    steps: [new Step({ shell: "bash", script })],
    ...fields
  })

/** processes whose environment holds GROVE_SESSION=<id> */
const processesOf = (sessionId: string): Array<number> =>
  Fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((pid) => {
    try {
      const env = Fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")
      const stat = Fs.readFileSync(`/proc/${pid}/stat`, "latin1")
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
      return env.includes(`GROVE_SESSION=${sessionId}`) && state !== "Z" ? [Number(pid)] : []
    } catch {
      return []
    }
  })

/** runs tests in one session on `repo`; returns the report and the session facts */
const session = (
  repo: TestRepo,
  tests: ReadonlyArray<TestRequest>,
  config: Partial<Config.GroveConfig> = {}
): Effect.Effect<{ readonly report: Report; readonly id: string; readonly worktreeDir: string }, unknown, CommandExecutor.CommandExecutor | FileSystem.FileSystem> =>
  Effect.scoped(Effect.gen(function*() {
    const orch = yield* Orchestrator.Orchestrator
    const report = yield* orch.runTests(tests)
    return { report, id: orch.session.id, worktreeDir: orch.session.worktreeDir }
  }).pipe(
    Effect.provide(
      Orchestrator.layerSession({ repo: repo.root, baseRef: "main" }).pipe(
        Layer.provide(Layer.mergeAll(
          Config.layer({ workers: 2, retries: 0, killGrace: Duration.seconds(1), ...config }),
          Git.layer,
          Harness.layerShell,
          Store.layerMemory
        ))
      )
    )
  ))

const snapshot = (repo: TestRepo) =>
  Effect.all({
    status: git(repo.root, "status", "--porcelain", "--ignored"),
    branches: git(repo.root, "for-each-ref", "--format=%(refname) %(objectname)"),
    head: git(repo.root, "rev-parse", "HEAD"),
    index: git(repo.root, "ls-files", "--stage")
  })

describe("engine with real git and processes", () => {
  it.scopedLive("N tests on K workers never share a worktree at once", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const probe = [
        "mkdir -p .probe",
        "if [ -n \"$(ls -A .probe)\" ]; then echo \"shared with $(ls .probe)\"; exit 1; fi",
        "touch \".probe/$GROVE_TEST_ID\"",
        "echo \"$GROVE_WORKTREE\" > \"$OUT/$GROVE_TEST_ID\"",
        "sleep 0.3",
        "rm \".probe/$GROVE_TEST_ID\""
      ].join("\n")
      const out = NodePath.join(repo.dir, "out")
      Fs.mkdirSync(out)
      const tests = Array.from({ length: 8 }, (_, i) => req(`t${i}`, probe, { env: { OUT: out } }))
      const { report } = yield* session(repo, tests, { workers: 3 })
      assert.strictEqual(report.session.status, "COMPLETE", JSON.stringify(report.tests.map((t) => t.attempts.map((a) => a.tail))))
      const worktrees = new Set(Fs.readdirSync(out).map((f) => Fs.readFileSync(NodePath.join(out, f), "utf8").trim()))
      assert.strictEqual(worktrees.size, 3, "the tests spread over the three worktrees")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("what a test changes does not reach the next one, keep paths do; other refs show their content", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const before = yield* snapshot(repo)
      const dirty = req("dirty", [
        "echo changed > README.md",
        "echo new > added.txt",
        "mkdir -p dist && echo built > dist/out.js && echo log > debug.log",
        "mkdir -p node_modules && echo kept > node_modules/kept.txt"
      ].join("\n"), { priority: 2 })
      const check = req("check", [
        "test \"$(cat README.md)\" = '# test repository'",
        "test ! -e added.txt",
        "test ! -e dist/out.js && test ! -e debug.log",
        "test \"$(cat node_modules/kept.txt)\" = kept"
      ].join("\n"), { priority: 1 })
      const old = req("old", "test \"$(cat src/app.txt)\" = v1 && test ! -e feature.txt", { ref: "v1" })
      const branch = req("branch", "test -e feature.txt", { ref: "feature" })
      const { report } = yield* session(repo, [dirty, check, old, branch], { workers: 1, keep: ["node_modules"] })
      assert.deepStrictEqual(
        report.tests.map((t) => [t.id, t.status]),
        [["dirty", "PASSED"], ["check", "PASSED"], ["old", "PASSED"], ["branch", "PASSED"]],
        report.tests.map((t) => t.attempts[0]?.tail).join("\n")
      )
      assert.deepStrictEqual(yield* snapshot(repo), before, "the repository's own checkout is untouched")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("ends every process of an attempt: TERM-trapping, background, setsid; a held pipe does not delay", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const started = Date.now()
      const { id, report } = yield* session(repo, [
        req("trap", "trap '' TERM; sleep 1000", { timeout: Duration.seconds(1) }),
        req("background", "sleep 1000 &\nsetsid sleep 1000 &\n(setsid sh -c 'sleep 1000' &)\necho started"),
        req("held", "sleep 30 &\necho hi")
      ], { workers: 3, killGrace: Duration.seconds(1) })
      const elapsed = Date.now() - started
      const status = Object.fromEntries(report.tests.map((t) => [t.id, t.status]))
      assert.deepStrictEqual(status, { trap: "TIMED_OUT", background: "PASSED", held: "PASSED" })
      assert.isBelow(report.tests.find((t) => t.id === "held")!.durationMs, 10_000, "the background child holding stdout did not delay the end")
      assert.isBelow(elapsed, 20_000, "the SIGTERM-ignoring step was killed after timeout + grace (generous bound)")
      assert.deepStrictEqual(processesOf(id), [], "no process of the session is left")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a stop (--max-fail) during an attempt: CANCELLED, recorded only once its TERM-ignoring tree is gone", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const store = yield* Store.makeMemory
      /** the session's processes still there when the store got a CANCELLED attempt */
      const left: Array<Array<number>> = []
      const watch = (sessionId: string, events: ReadonlyArray<SessionEvent>) => {
        for (const e of events) {
          if (e._tag === "AttemptFinished" && e.attempt.status === "CANCELLED") left.push(processesOf(sessionId))
        }
      }
      const watched: typeof store = {
        ...store,
        record: (sessionId, event, options) => Effect.zipRight(Effect.sync(() => watch(sessionId, [event])), store.record(sessionId, event, options)),
        recordAll: (sessionId, events, options) =>
          Effect.zipRight(Effect.sync(() => watch(sessionId, events)), store.recordAll(sessionId, events, options))
      }
      const { id, report } = yield* Effect.scoped(Effect.gen(function*() {
        const orch = yield* Orchestrator.Orchestrator
        const report = yield* orch.runTests([
          req("long", "trap '' TERM; sleep 1000 & sleep 1000", { priority: 1 }),
          req("bad", "sleep 0.5; exit 1")
        ])
        return { report, id: orch.session.id }
      }).pipe(Effect.provide(
        Orchestrator.layerSession({ repo: repo.root, baseRef: "main" }).pipe(
          Layer.provide(Layer.mergeAll(
            Config.layer({ workers: 2, retries: 0, maxFail: 1, killGrace: Duration.seconds(1) }),
            Git.layer,
            Harness.layerShell,
            Layer.succeed(Store.Store, watched)
          ))
        )
      )))
      const status = Object.fromEntries(report.tests.map((t) => [t.id, t.status]))
      assert.deepStrictEqual(status, { long: "CANCELLED", bad: "FAILED" })
      assert.include(report.tests.find((t) => t.id === "long")!.attempts[0]!.message ?? "", "the session stopped")
      assert.deepStrictEqual(left, [[]], "one CANCELLED attempt, recorded after its processes were gone")
      assert.deepStrictEqual(processesOf(id), [], "no process of the session is left")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a worktree whose .git file a test deleted is replaced and later tests pass; cleanup leaves nothing", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const before = yield* snapshot(repo)
      const { report, worktreeDir } = yield* session(repo, [
        req("vandal", "rm -f .git", { priority: 1 }),
        req("after1", "test -f README.md && git status --porcelain >/dev/null"),
        req("after2", "test -f README.md")
      ], { workers: 1 })
      assert.deepStrictEqual(report.tests.map((t) => t.status), ["PASSED", "PASSED", "PASSED"])
      const list = yield* git(repo.root, "worktree", "list", "--porcelain")
      assert.strictEqual(list.split("\n").filter((l) => l.startsWith("worktree ")).length, 1, list)
      assert.isFalse(Fs.existsSync(worktreeDir), "the session folder is gone")
      assert.isFalse(Fs.existsSync(NodePath.dirname(worktreeDir)), "the empty <repo>.grove folder is gone")
      assert.deepStrictEqual(yield* snapshot(repo), before, "the repository's working tree and branches are untouched")
    }).pipe(Effect.provide(NodeContext.layer)))
})
