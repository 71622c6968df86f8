import * as FileSystem from "@effect/platform/FileSystem"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as NodePath from "node:path"
import * as Config from "../src/Config.js"
import { Step, TestId, TestRequest, type Worktree } from "../src/Domain.js"
import * as Git from "../src/Git.js"
import { type GitError, WorktreeError } from "../src/GroveError.js"
import { type AttemptSpec, Harness, HarnessMemory } from "../src/Harness.js"
import * as Orchestrator from "../src/Orchestrator.js"
import { Session, type SessionInfo } from "../src/Session.js"
import * as Testing from "../src/Testing.js"
import * as WorktreePool from "../src/WorktreePool.js"
import { git, makeRepo, makeSuperRepo, type TestRepo } from "./support/repo.js"

const sessionId = "20250101-0000-test"

/** a Harness that records what it was asked to run; `failNext` makes the next run exit 1 */
const recordingHarness = () => {
  const calls: Array<AttemptSpec> = []
  let failures = 0
  const service: Harness["Type"] = {
    spawn: (spec) =>
      Effect.sync(() => {
        calls.push(spec)
        const fail = failures > 0
        if (fail) failures--
        const outcome = { _tag: "Exited", exitCode: fail ? 1 : 0, signal: null, failedStep: fail ? 0 : undefined, tail: fail ? "npm ERR! boom" : "", bytes: 0 } as const
        return { exited: Effect.succeed(outcome), stop: Effect.succeed(outcome) }
      })
  }
  return { service, calls, failNext: () => void failures++ }
}

/** counts the calls of a Git service's operations */
const counting = (inner: Git.Git["Type"]) => {
  const counts = { checkoutClean: 0, worktreeAdd: 0, worktreeRemove: 0, state: 0 }
  const service: Git.Git["Type"] = {
    ...inner,
    checkoutClean: (...args) => Effect.suspend(() => (counts.checkoutClean++, inner.checkoutClean(...args))),
    worktreeAdd: (...args) => Effect.suspend(() => (counts.worktreeAdd++, inner.worktreeAdd(...args))),
    worktreeRemove: (...args) => Effect.suspend(() => (counts.worktreeRemove++, inner.worktreeRemove(...args))),
    state: (...args) => Effect.suspend(() => (counts.state++, inner.state(...args)))
  }
  return { service, counts }
}

const sessionOf = (repo: Git.RepoInfo, baseSha: string, worktreeRoot: string): SessionInfo => ({
  id: sessionId,
  repo,
  baseRef: "main",
  baseSha,
  worktreeRoot,
  worktreeDir: NodePath.join(worktreeRoot, sessionId),
  dataDir: NodePath.join(repo.commonDir, "grove", "sessions", sessionId),
  startedAt: 0
})

interface Env {
  readonly repo: TestRepo
  readonly info: Git.RepoInfo
  readonly session: SessionInfo
  readonly git: Git.Git["Type"]
  readonly counts: ReturnType<typeof counting>["counts"]
  readonly harness: ReturnType<typeof recordingHarness>
  /** runs `body` with a pool of this config in its own scope, closed when `body` ends */
  readonly withPool: <A, E, R>(
    config: Partial<Config.GroveConfig>,
    body: (pool: WorktreePool.WorktreePool["Type"]) => Effect.Effect<A, E, R>,
    gitService?: Git.Git["Type"]
  ) => Effect.Effect<A, E | WorktreeError | GitError, Exclude<R, import("effect/Scope").Scope>>
}

/** a real repository, the real Git (counted) and a recording Harness */
const realEnv = Effect.gen(function*() {
  const repo = yield* makeRepo
  const real = yield* Git.Git
  const { counts, service } = counting(real)
  const info = yield* real.repoInfo(repo.root)
  const session = sessionOf(info, repo.second, NodePath.join(repo.dir, "repo.grove"))
  const harness = recordingHarness()
  const withPool: Env["withPool"] = (config, body, gitService) =>
    Effect.scoped(Effect.flatMap(WorktreePool.make, body)).pipe(
      Effect.provideService(Git.Git, gitService ?? service),
      Effect.provideService(Harness, harness.service),
      Effect.provideService(Session, session),
      Effect.provideService(Config.GroveConfigTag, { ...Config.defaults, ...config })
    ) as never
  return { repo, info, session, git: real, counts, harness, withPool } satisfies Env
})

const RealGit = Git.layer.pipe(Layer.provideMerge(NodeContext.layer))

const worktreePaths = (root: string) =>
  Effect.map(git(root, "worktree", "list", "--porcelain"), (text) =>
    text.split("\n").filter((l) => l.startsWith("worktree ")).map((l) => l.slice("worktree ".length)))

const mainSnapshot = (root: string) =>
  Effect.all({
    status: git(root, "status", "--porcelain", "--ignored", "--untracked-files=all"),
    index: git(root, "ls-files", "--stage"),
    staged: git(root, "diff", "--cached"),
    head: git(root, "symbolic-ref", "HEAD"),
    branches: git(root, "for-each-ref", "--format=%(refname) %(objectname)")
  })

const wError = <A, E>(exit: Exit.Exit<A, E>): WorktreeError => {
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a failure, got ${String(exit)}`)
  const error = exit.cause.error
  assert.instanceOf(error, WorktreeError)
  return error as WorktreeError
}

describe("WorktreePool (real git)", () => {
  it.scopedLive("N borrows on K worktrees never share one; dirty ones are cleaned, clean ones skip the reset", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      const inUse = new Map<string, number>()
      const used = new Set<string>()
      const borrowers = 8
      const workers = 2
      yield* env.withPool({ workers }, (pool) =>
        Effect.forEach(Array.from({ length: borrowers }, (_, i) => i), (i) =>
          Effect.scoped(Effect.gen(function*() {
            const wt = yield* pool.borrow(env.repo.second)
            used.add(wt.path)
            inUse.set(wt.path, (inUse.get(wt.path) ?? 0) + 1)
            assert.strictEqual(inUse.get(wt.path), 1, `${wt.path} borrowed twice at once`)
            // no marker of an earlier borrower survived the preparation, and nobody else writes here
            const before = (yield* fs.readDirectory(wt.path)).filter((f) => f.startsWith("marker-"))
            assert.deepStrictEqual(before, [])
            yield* fs.writeFileString(NodePath.join(wt.path, `marker-${i}`), String(i))
            yield* Effect.yieldNow()
            const after = (yield* fs.readDirectory(wt.path)).filter((f) => f.startsWith("marker-"))
            assert.deepStrictEqual(after, [`marker-${i}`])
            inUse.set(wt.path, (inUse.get(wt.path) ?? 0) - 1)
          })), { concurrency: "unbounded", discard: true }))
      const dir = env.session.worktreeDir
      assert.deepStrictEqual([...used].sort(), [NodePath.join(dir, "w1"), NodePath.join(dir, "w2")])
      // every borrow but the first on each fresh worktree found the previous marker: one reset each
      assert.strictEqual(env.counts.checkoutClean, borrowers - workers)
      assert.strictEqual(env.counts.worktreeAdd, workers)
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("prepares: skips the reset when clean at the commit, cleans a dirty one, moves to another commit", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      yield* env.withPool({ workers: 1, keep: ["node_modules"] }, (pool) =>
        Effect.gen(function*() {
          const borrow = (sha: string) => Effect.scoped(pool.borrow(sha))
          const wt = yield* borrow(env.repo.second)
          const at = (f: string) => NodePath.join(wt.path, f)
          assert.deepStrictEqual(wt, { path: NodePath.join(env.session.worktreeDir, "w1"), slot: 1, generation: 0 })
          assert.strictEqual(yield* git(wt.path, "rev-parse", "HEAD"), env.repo.second)
          yield* borrow(env.repo.second)
          assert.strictEqual(env.counts.checkoutClean, 0)

          yield* fs.writeFileString(at("src/app.txt"), "changed by a test\n")
          yield* fs.writeFileString(at("new.txt"), "new\n")
          yield* fs.writeFileString(at("test.log"), "ignored\n")
          yield* fs.makeDirectory(at("node_modules/x"), { recursive: true })
          yield* fs.writeFileString(at("node_modules/x/index.js"), "kept")
          const again = yield* borrow(env.repo.second)
          assert.strictEqual(again.path, wt.path)
          assert.strictEqual(env.counts.checkoutClean, 1)
          assert.strictEqual(yield* fs.readFileString(at("src/app.txt")), "v2\n")
          assert.isFalse(yield* fs.exists(at("new.txt")))
          assert.isFalse(yield* fs.exists(at("test.log")))
          assert.strictEqual(yield* fs.readFileString(at("node_modules/x/index.js")), "kept")

          yield* borrow(env.repo.second)
          assert.strictEqual(env.counts.checkoutClean, 1) // kept files do not make it dirty

          yield* borrow(env.repo.feature)
          assert.strictEqual(env.counts.checkoutClean, 2)
          assert.strictEqual(yield* fs.readFileString(at("feature.txt")), "feature\n")
          assert.strictEqual(yield* git(wt.path, "rev-parse", "HEAD"), env.repo.feature)
        }))
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("submodules: true: a worktree prepared for a then b has b's submodule; a change inside it is cleaned by the next prepare", () =>
    Effect.gen(function*() {
      const repo = yield* makeSuperRepo
      const fs = yield* FileSystem.FileSystem
      const real = yield* Git.Git
      const { counts, service } = counting(real)
      const info = yield* real.repoInfo(repo.root)
      const session = sessionOf(info, repo.a, NodePath.join(repo.dir, "super.grove"))
      yield* Effect.scoped(Effect.gen(function*() {
        const pool = yield* WorktreePool.make
        const borrow = (sha: string) => Effect.scoped(pool.borrow(sha))
        const wt = yield* borrow(repo.a)
        const lib = NodePath.join(wt.path, "lib")
        const libHead = git(lib, "rev-parse", "HEAD")
        assert.strictEqual(yield* libHead, repo.libA)

        yield* borrow(repo.b)
        assert.strictEqual(counts.checkoutClean, 1)
        assert.strictEqual(yield* libHead, repo.libB, "the submodule stayed at a's commit")
        assert.strictEqual(yield* fs.readFileString(NodePath.join(lib, "lib.txt")), "b\n")

        // a test changes the submodule: the next prepare at the same commit cleans it
        yield* fs.writeFileString(NodePath.join(lib, "lib.txt"), "changed by a test\n")
        yield* fs.writeFileString(NodePath.join(lib, "out.log"), "ignored inside the submodule\n")
        yield* borrow(repo.b)
        assert.strictEqual(counts.checkoutClean, 2, "the change inside the submodule was not seen")
        assert.strictEqual(yield* fs.readFileString(NodePath.join(lib, "lib.txt")), "b\n")
        assert.isFalse(yield* fs.exists(NodePath.join(lib, "out.log")))
        yield* borrow(repo.b)
        assert.strictEqual(counts.checkoutClean, 2, "clean at the commit: no reset")
      })).pipe(
        Effect.provideService(Git.Git, service),
        Effect.provideService(Harness, recordingHarness().service),
        Effect.provideService(Session, session),
        Effect.provideService(Config.GroveConfigTag, { ...Config.defaults, workers: 1, submodules: true })
      )
      assert.deepStrictEqual(yield* worktreePaths(repo.root), [repo.root])
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("a worktree whose .git file was deleted is discarded and replaced; later borrows succeed", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      const dir = env.session.worktreeDir
      yield* env.withPool({ workers: 1 }, (pool) =>
        Effect.gen(function*() {
          const first = yield* Effect.scoped(Effect.tap(pool.borrow(env.repo.second), (wt) =>
            fs.remove(NodePath.join(wt.path, ".git"))))
          const failed = wError(yield* Effect.exit(Effect.scoped(pool.borrow(env.repo.second))))
          assert.strictEqual(failed.reason, "Prepare")
          assert.strictEqual(failed.worktree, first.path)

          const next = yield* Effect.scoped(pool.borrow(env.repo.first))
          assert.deepStrictEqual(next, { path: NodePath.join(dir, "w1-1"), slot: 1, generation: 1 })
          assert.strictEqual(yield* fs.readFileString(NodePath.join(next.path, "src/app.txt")), "v1\n")
          assert.isFalse(yield* fs.exists(first.path))
          assert.deepStrictEqual(yield* worktreePaths(env.repo.root), [env.repo.root, next.path])
          yield* Effect.scoped(pool.borrow(env.repo.second))
        }))
      assert.deepStrictEqual(yield* worktreePaths(env.repo.root), [env.repo.root])
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("setup runs once per new worktree and again when a setup input changed", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const config = { workers: 1, setup: ["npm ci", "npm run build"], setupInputs: ["package-lock.json"] }
      yield* env.withPool(config, (pool) =>
        Effect.gen(function*() {
          const calls = env.harness.calls
          const borrow = (sha: string) => Effect.scoped(pool.borrow(sha))
          const wt = yield* borrow(env.repo.second)
          assert.strictEqual(calls.length, 1)
          const spec = calls[0]!
          assert.strictEqual(spec.cwd, wt.path)
          assert.deepStrictEqual(spec.steps.map((s) => [s.shell, s.script]), [["bash", "npm ci"], ["bash", "npm run build"]])
          assert.strictEqual(spec.logPath, NodePath.join(env.session.dataDir, "logs", "setup-w1.1.log"))
          assert.strictEqual(spec.env.GROVE_SESSION, sessionId)

          yield* borrow(env.repo.second)
          yield* borrow(env.repo.first) // package-lock.json is the same at first and second
          assert.strictEqual(calls.length, 1)
          yield* borrow(env.repo.feature) // package-lock.json differs
          assert.strictEqual(calls.length, 2)
          assert.strictEqual(calls[1]!.logPath, NodePath.join(env.session.dataDir, "logs", "setup-w1.2.log"))
          yield* borrow(env.repo.feature)
          assert.strictEqual(calls.length, 2)
          yield* borrow(env.repo.second) // and back
          assert.strictEqual(calls.length, 3)
        }))
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("when the scope closes, worktrees, the session folder and the empty root are gone; the main checkout is untouched", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      const root = env.repo.root
      // the user's work in progress
      yield* fs.writeFileString(NodePath.join(root, "src/app.txt"), "work in progress\n")
      yield* fs.writeFileString(NodePath.join(root, "staged.txt"), "staged\n")
      yield* git(root, "add", "staged.txt")
      yield* fs.writeFileString(NodePath.join(root, "notes.txt"), "untracked\n")
      yield* fs.writeFileString(NodePath.join(root, "debug.log"), "ignored\n")
      const before = yield* mainSnapshot(root)

      yield* env.withPool({ workers: 3, setup: ["true"] }, (pool) =>
        Effect.gen(function*() {
          yield* Effect.forEach([env.repo.first, env.repo.second, env.repo.feature, env.repo.first], (sha, i) =>
            Effect.scoped(Effect.flatMap(pool.borrow(sha), (wt) => fs.writeFileString(NodePath.join(wt.path, `out-${i}.txt`), "x"))),
            { concurrency: "unbounded", discard: true })
          // four borrowers at once on three workers: three worktrees, each locked as this session's
          const listed = yield* env.git.worktreeList(env.info)
          assert.strictEqual(listed.length, 4)
          for (const e of listed.slice(1)) assert.strictEqual(e.locked, `grove ${sessionId} ${process.pid}`)
        }))

      assert.deepStrictEqual(yield* worktreePaths(root), [root])
      assert.isFalse(yield* fs.exists(env.session.worktreeDir))
      assert.isFalse(yield* fs.exists(env.session.worktreeRoot))
      // no administrative files left in the common dir either
      const admin = NodePath.join(env.repo.commonDir, "worktrees")
      if (yield* fs.exists(admin)) assert.deepStrictEqual(yield* fs.readDirectory(admin), [])
      assert.deepStrictEqual(yield* mainSnapshot(root), before)
      assert.strictEqual(yield* fs.readFileString(NodePath.join(root, "src/app.txt")), "work in progress\n")
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("the worktree root stays when it holds another session's folder", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      const other = NodePath.join(env.session.worktreeRoot, "20240101-0000-othr")
      yield* fs.makeDirectory(other, { recursive: true })
      yield* env.withPool({ workers: 1 }, () => Effect.void)
      assert.isFalse(yield* fs.exists(env.session.worktreeDir))
      assert.isTrue(yield* fs.exists(other))
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("a lease's keep leaves its worktree on disk (replaced for later tests); one that cannot be prepared is removed at once", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      const dir = env.session.worktreeDir
      let kept: Worktree | undefined
      yield* env.withPool({ workers: 1, keepFailed: true }, (pool) =>
        Effect.gen(function*() {
          const lease = yield* pool.lease
          kept = yield* lease.prepare(env.repo.second)
          yield* fs.writeFileString(NodePath.join(kept.path, "failure.txt"), "evidence")
          yield* lease.keep
          const next = yield* lease.prepare(env.repo.second)
          assert.strictEqual(next.path, NodePath.join(dir, "w1-1"))
          // its .git file gone, it cannot be prepared: discarded and removed before the failure
          yield* fs.remove(NodePath.join(next.path, ".git"))
          assert.strictEqual((yield* Effect.flip(lease.prepare(env.repo.second))).reason, "Prepare")
          assert.isFalse(yield* fs.exists(next.path))
          const third = yield* lease.prepare(env.repo.second)
          assert.strictEqual(third.path, NodePath.join(dir, "w1-2"))
        }).pipe(Effect.scoped))
      assert.isDefined(kept)
      assert.strictEqual(yield* fs.readFileString(NodePath.join(kept!.path, "failure.txt")), "evidence")
      const entries = yield* env.git.worktreeList(env.info)
      assert.deepStrictEqual(entries.map((e) => [e.path, e.locked]), [
        [env.repo.root, undefined],
        [kept!.path, `grove ${sessionId} kept`]
      ])
      assert.deepStrictEqual(yield* fs.readDirectory(dir), ["w1"])
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("cleanup: false leaves every worktree on disk, locked", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      // two borrowers at once: two worktrees
      yield* env.withPool({ workers: 2, cleanup: false }, (pool) =>
        Effect.all([Effect.scoped(pool.borrow(env.repo.first)), Effect.scoped(pool.borrow(env.repo.first))], { concurrency: 2 }))
      const entries = yield* env.git.worktreeList(env.info)
      assert.deepStrictEqual(entries.map((e) => e.path), [
        env.repo.root,
        NodePath.join(env.session.worktreeDir, "w1"),
        NodePath.join(env.session.worktreeDir, "w2")
      ])
      for (const e of entries.slice(1)) assert.strictEqual(e.locked, `grove ${sessionId} kept`)
      assert.deepStrictEqual((yield* fs.readDirectory(env.session.worktreeDir)).sort(), ["w1", "w2"])
      assert.strictEqual(env.counts.worktreeRemove, 0)
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("interrupted while worktrees are being added, the pool still removes every one", () =>
    Effect.gen(function*() {
      const env = yield* realEnv
      const fs = yield* FileSystem.FileSystem
      const session = yield* Deferred.make<Fiber.RuntimeFiber<unknown, unknown>>()
      let adds = 0
      let seen = 0
      // the first two adds are done (they may run at the same time as the third)
      const othersAdded = yield* Deferred.make<void>()
      let others = 0
      // the third add creates its worktree, waits for the other two, then interrupts the session before it returns
      const slowGit: Git.Git["Type"] = {
        ...env.git,
        worktreeAdd: (...args) =>
          Effect.suspend(() =>
            ++adds === 3
              ? env.git.worktreeAdd(...args).pipe(
                Effect.zipLeft(Deferred.await(othersAdded)),
                Effect.zipLeft(Effect.flatMap(env.git.worktreeList(env.info), (listed) => Effect.sync(() => void (seen = listed.length)))),
                Effect.zipLeft(Effect.flatMap(Deferred.await(session), (f) => Effect.sync(() => f.unsafeInterruptAsFork(FiberId.none)))),
                Effect.orDie
              )
              : env.git.worktreeAdd(...args).pipe(
                Effect.tap(() => ++others === 2 ? Deferred.succeed(othersAdded, undefined) : Effect.void)
              ))
      }
      // three borrowers that hold on: three adds, the third one still running when the session is interrupted
      const fiber = yield* Effect.fork(env.withPool({ workers: 3 }, (pool) =>
        Effect.forEach([1, 2, 3], () => Effect.scoped(Effect.zipRight(pool.borrow(env.repo.second), Effect.never)), {
          concurrency: "unbounded"
        }), slowGit))
      yield* Deferred.succeed(session, fiber)
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.strictEqual(adds, 3)
      assert.strictEqual(seen, 4, "the three worktrees existed when the session was interrupted")
      assert.deepStrictEqual(yield* worktreePaths(env.repo.root), [env.repo.root])
      assert.isFalse(yield* fs.exists(env.session.worktreeRoot))
    }).pipe(Effect.provide(RealGit)))
})

describe("WorktreePool (memory git)", () => {
  const memoryRepo: Git.MemoryRepo = {
    root: "/repo",
    refs: { main: "sha2", v1: "sha1", feature: "sha3" },
    files: {
      sha1: { "package-lock.json": "1" },
      sha2: { "package-lock.json": "1" },
      sha3: { "package-lock.json": "2" }
    }
  }
  const session = sessionOf({ root: "/repo", commonDir: "/repo/.git", name: "repo" }, "sha2", "/nonexistent-grove-test/repo.grove")
  const run = <A, E, R>(
    config: Partial<Config.GroveConfig>,
    harness: Harness["Type"],
    body: (pool: WorktreePool.WorktreePool["Type"], control: Git.MemoryControl) => Effect.Effect<A, E, R>
  ) =>
    Effect.gen(function*() {
      const control = yield* Git.GitMemory
      const result = yield* Effect.scoped(Effect.flatMap(WorktreePool.make, (pool) => body(pool, control)))
      return { result, remaining: yield* control.worktrees }
    }).pipe(
      Effect.provideService(Harness, harness),
      Effect.provideService(Session, session),
      Effect.provideService(Config.GroveConfigTag, { ...Config.defaults, ...config }),
      Effect.provide(Git.layerMemory({ repos: [memoryRepo] }))
    )
  const w = (name: string) => NodePath.join(session.worktreeDir, name)

  it.effect("skips the reset when clean, resets when dirty; failures on demand replace the worktree", () =>
    run({ workers: 1 }, recordingHarness().service, (pool, control) =>
      Effect.gen(function*() {
        const borrow = (sha: string) => Effect.scoped(pool.borrow(sha))
        yield* borrow("sha2")
        yield* borrow("sha2")
        assert.strictEqual((yield* control.calls).checkoutClean, 0)
        yield* control.dirty(w("w1"))
        yield* borrow("sha2")
        assert.strictEqual((yield* control.calls).checkoutClean, 1)
        yield* borrow("sha1")
        assert.strictEqual((yield* control.calls).checkoutClean, 2)

        yield* control.failNext("checkoutClean", w("w1"))
        const failed = wError(yield* Effect.exit(borrow("sha2")))
        assert.strictEqual(failed.reason, "Prepare")
        assert.strictEqual(failed.worktree, w("w1"))
        const replacement = yield* borrow("sha2")
        assert.strictEqual(replacement.path, w("w1-1"))
        assert.deepStrictEqual((yield* control.worktrees).map((x) => [x.path, x.head, x.locked]), [
          [w("w1-1"), "sha2", `grove ${sessionId} ${process.pid}`]
        ])

        yield* control.breakWorktree(w("w1-1"))
        assert.strictEqual(wError(yield* Effect.exit(borrow("sha2"))).reason, "Prepare")
        const next = yield* borrow("sha3")
        assert.deepStrictEqual(next, { path: w("w1-2"), slot: 1, generation: 2 })
      })).pipe(Effect.map(({ remaining }) => assert.deepStrictEqual(remaining, []))))

  it.effect("a failing setup ends the borrow with Setup and the replacement is set up again", () => {
    const harness = recordingHarness()
    return run({ workers: 1, setup: ["npm ci"], setupInputs: ["package-lock.json"] }, harness.service, (pool) =>
      Effect.gen(function*() {
        const borrow = (sha: string) => Effect.scoped(pool.borrow(sha))
        harness.failNext()
        const failed = wError(yield* Effect.exit(borrow("sha2")))
        assert.strictEqual(failed.reason, "Setup")
        assert.include(failed.message, "npm ci")
        assert.include(failed.message, "setup-w1.1.log")
        const wt = yield* borrow("sha2")
        assert.strictEqual(wt.path, w("w1-1"))
        assert.deepStrictEqual(harness.calls.map((c) => c.logPath), [
          NodePath.join(session.dataDir, "logs", "setup-w1.1.log"),
          NodePath.join(session.dataDir, "logs", "setup-w1-1.1.log")
        ])
        yield* borrow("sha1")
        assert.strictEqual(harness.calls.length, 2)
        yield* borrow("sha3")
        assert.strictEqual(harness.calls.length, 3)
      }))
  })

  it.effect("a borrower that retries in the same scope after a failed preparation gets the replacement (no deadlock on one worker)", () =>
    run({ workers: 1 }, recordingHarness().service, (pool, control) =>
      Effect.gen(function*() {
        yield* Effect.scoped(pool.borrow("sha2"))
        yield* control.failNext("state", w("w1"))
        // what the Runner does: the retry runs while the first borrow's scope is still open
        const retrying = Effect.scoped(pool.borrow("sha2").pipe(
          Effect.catchTag("WorktreeError", (e) => Effect.zipRight(Effect.sync(() => assert.strictEqual(e.reason, "Prepare")), pool.borrow("sha2")))
        ))
        const fiber = yield* Effect.fork(retrying.pipe(Effect.timeoutFail({ duration: "1 hour", onTimeout: () => "deadlock" as const })))
        yield* TestClock.adjust("1 hour")
        const exit = yield* Fiber.await(fiber)
        assert.deepStrictEqual(exit, Exit.succeed({ path: w("w1-1"), slot: 1, generation: 1 }))
        assert.deepStrictEqual((yield* control.worktrees).map((x) => x.path), [w("w1-1")])
      })).pipe(Effect.map(({ remaining }) => assert.deepStrictEqual(remaining, []))))

  it.effect("a lease keeps its worktree from test to test, cleaned when dirty; one that cannot be prepared is given back and replaced (no deadlock on one worker)", () =>
    run({ workers: 1 }, recordingHarness().service, (pool, control) =>
      Effect.gen(function*() {
        const lease = yield* pool.lease
        assert.strictEqual((yield* lease.prepare("sha2")).path, w("w1"))
        assert.strictEqual((yield* lease.prepare("sha2")).path, w("w1"))
        assert.strictEqual((yield* control.calls).checkoutClean, 0)
        yield* control.dirty(w("w1"))
        assert.strictEqual((yield* lease.prepare("sha2")).path, w("w1"))
        assert.strictEqual((yield* control.calls).checkoutClean, 1, "the test that dirtied it is cleaned up before the next")
        assert.strictEqual((yield* lease.prepare("sha1")).path, w("w1"))
        assert.strictEqual((yield* control.calls).checkoutClean, 2)
        // the lease holds the pool's only worktree: a prepare that fails must give it back
        yield* control.failNext("state", w("w1"))
        const failed = yield* Effect.flip(lease.prepare("sha2"))
        assert.strictEqual(failed.reason, "Prepare")
        const fiber = yield* Effect.fork(lease.prepare("sha2").pipe(Effect.timeoutFail({ duration: "1 hour", onTimeout: () => "deadlock" as const })))
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.succeed({ path: w("w1-1"), slot: 1, generation: 1 }))
        assert.deepStrictEqual((yield* control.worktrees).map((x) => x.path), [w("w1-1")])
      }).pipe(Effect.scoped)).pipe(Effect.map(({ remaining }) => assert.deepStrictEqual(remaining, []))))

  it.effect("a lease gives its worktree back when its scope closes; keep leaves it on disk and the next prepare borrows another", () =>
    run({ workers: 1 }, recordingHarness().service, (pool, control) =>
      Effect.gen(function*() {
        yield* Effect.scoped(Effect.flatMap(pool.lease, (lease) => lease.prepare("sha2")))
        // given back: a borrow on this one-worker pool gets the same worktree, none made
        assert.strictEqual((yield* Effect.scoped(pool.borrow("sha2"))).path, w("w1"))
        assert.strictEqual((yield* control.calls).worktreeAdd, 1)
        const lease = yield* pool.lease
        assert.strictEqual((yield* lease.prepare("sha2")).path, w("w1"))
        yield* lease.keep
        assert.strictEqual((yield* lease.prepare("sha2")).path, w("w1-1"))
      }).pipe(Effect.scoped)).pipe(Effect.map(({ remaining }) =>
        // kept: still there (locked as kept) when the pool is gone; the other was removed
        assert.deepStrictEqual(remaining.map((x) => [x.path, x.locked]), [[w("w1"), `grove ${sessionId} kept`]])
      )))

  it.effect("make creates no worktree before the first borrow, then only as many as borrowers hold at once", () =>
    run({ workers: 3 }, recordingHarness().service, (pool, control) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* control.worktrees, [])
        assert.strictEqual((yield* control.calls).worktreeAdd, 0)
        yield* Effect.scoped(pool.borrow("sha2"))
        yield* Effect.scoped(pool.borrow("sha1"))
        assert.deepStrictEqual((yield* control.worktrees).map((x) => x.path), [w("w1")])
        yield* Effect.scoped(Effect.all([pool.borrow("sha2"), pool.borrow("sha2")], { concurrency: 2 }))
        assert.deepStrictEqual((yield* control.worktrees).map((x) => x.path), [w("w1"), w("w2")])
        assert.strictEqual((yield* control.calls).worktreeAdd, 2)
      })).pipe(Effect.map(({ remaining }) => assert.deepStrictEqual(remaining, []))))

  it.effect("an idle pool does not shrink: a day later the same worktrees are borrowed, none made again", () =>
    run({ workers: 2 }, recordingHarness().service, (pool, control) =>
      Effect.gen(function*() {
        const both = Effect.scoped(Effect.all([pool.borrow("sha2"), pool.borrow("sha2")], { concurrency: 2 }))
        const before = yield* both
        yield* TestClock.adjust("1 day")
        const after = yield* both
        assert.deepStrictEqual(after.map((wt) => wt.path).sort(), before.map((wt) => wt.path).sort())
        assert.strictEqual((yield* control.calls).worktreeAdd, 2)
        assert.strictEqual((yield* control.calls).worktreeRemove, 0)
      })).pipe(Effect.map(({ remaining }) => assert.deepStrictEqual(remaining, []))))

  it.effect("a worktree that cannot be made mid-session fails only the borrow that needed it; the next borrow makes one", () =>
    run({ workers: 2 }, recordingHarness().service, (pool, control) =>
      Effect.scoped(Effect.gen(function*() {
        const first = yield* pool.borrow("sha2")
        assert.strictEqual(first.path, w("w1"))
        yield* control.failNext("worktreeAdd", w("w2"))
        const failed = wError(yield* Effect.exit(Effect.scoped(pool.borrow("sha2"))))
        assert.strictEqual(failed.reason, "Create")
        assert.strictEqual(failed.worktree, w("w2"))
        // a path a failed `worktree add` may have left something at is not used again
        const second = yield* pool.borrow("sha2")
        assert.strictEqual(second.path, w("w2-1"))
      }))).pipe(Effect.map(({ remaining }) => assert.deepStrictEqual(remaining, []))))

  it.effect("at the end, the worktrees are removed concurrently", () =>
    Effect.gen(function*() {
      const { control, git } = yield* Git.makeMemory({ repos: [memoryRepo] })
      const workers = 3
      const allStarted = yield* Deferred.make<void>()
      let started = 0
      // each removal waits until all of them have started: one at a time, the first would wait for ever
      const gated: Git.Git["Type"] = {
        ...git,
        worktreeRemove: (...args) =>
          Effect.suspend(() => {
            if (++started === workers) Deferred.unsafeDone(allStarted, Exit.void)
            return Effect.zipRight(Deferred.await(allStarted), git.worktreeRemove(...args))
          })
      }
      const session_ = Effect.scoped(Effect.flatMap(WorktreePool.make, (pool) =>
        Effect.scoped(Effect.all(Array.from({ length: workers }, () => pool.borrow("sha2")), { concurrency: workers })))).pipe(
          Effect.provideService(Git.Git, gated),
          Effect.provideService(Harness, recordingHarness().service),
          Effect.provideService(Session, session),
          Effect.provideService(Config.GroveConfigTag, { ...Config.defaults, workers })
        )
      // disconnected: removals run in finalizers, which a timeout cannot interrupt
      const fiber = yield* Effect.fork(session_.pipe(
        Effect.disconnect,
        Effect.timeoutFail({ duration: "1 hour", onTimeout: () => "one at a time" as const })
      ))
      yield* TestClock.adjust("1 hour")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      assert.strictEqual(started, workers)
      assert.deepStrictEqual(yield* control.worktrees, [])
    }))

  const layerEnv = <A, E, R>(body: (control: Git.MemoryControl) => Effect.Effect<A, E, R>) =>
    Effect.flatMap(Git.GitMemory, body).pipe(
      Effect.provideService(Harness, recordingHarness().service),
      Effect.provideService(Session, session),
      Effect.provideService(Config.GroveConfigTag, { ...Config.defaults, workers: 3 }),
      Effect.provide(Git.layerMemory({ repos: [memoryRepo] }))
    )

  it.effect("WorktreePool.layer makes the first worktree when it is built; a failing first worktree add fails it with one Create error and leaves none", () =>
    layerEnv((control) =>
      Effect.gen(function*() {
        yield* Effect.scoped(Effect.flatMap(Layer.build(WorktreePool.layer), () =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* control.worktrees).map((x) => x.path), [w("w1")])
          })))
        assert.deepStrictEqual(yield* control.worktrees, [])

        yield* control.failNext("worktreeAdd", w("w1"))
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(WorktreePool.layer)))
        assert.isTrue(Exit.isFailure(exit) && Cause.failures(exit.cause).length === 1, "one failure")
        const error = wError(exit)
        assert.strictEqual(error.reason, "Create")
        assert.strictEqual(error.worktree, w("w1"))
        assert.include(error.message, `could not create worktree ${w("w1")}`)
        assert.include(error.message, "failure injected by GitMemory.failNext")
        assert.deepStrictEqual(yield* control.worktrees, [])
      })))
})

describe("WorktreePool in a session (Testing.layer)", () => {
  it.scoped("a worktree that cannot be created at the start fails the submission with one clear error; no attempt, no ERROR per test", () =>
    Effect.gen(function*() {
      const orch = yield* Orchestrator.Orchestrator
      const git = yield* Git.GitMemory
      const harness = yield* HarnessMemory
      const tests = ["a", "b", "c"].map((id) =>
        new TestRequest({ id: TestId.make(id), name: id, source: "test", steps: [new Step({ shell: "sh", script: "true" })] }))
      // validation happens before the pool: nothing is made for bad input
      assert.strictEqual((yield* git.calls).worktreeAdd, 0)
      yield* git.failNext("worktreeAdd", NodePath.join(orch.session.worktreeDir, "w1"))
      const exit = yield* Effect.exit(orch.submitBatch(tests))
      assert.isTrue(Exit.isFailure(exit) && Cause.failures(exit.cause).length === 1, "one failure")
      const error = wError(exit)
      assert.strictEqual(error.reason, "Create")
      assert.include(error.message, "could not create worktree")
      assert.deepStrictEqual(yield* harness.runs, [])
      assert.deepStrictEqual(yield* git.worktrees, [])
      const state = yield* orch.state
      assert.strictEqual(state.counts.error, 0)
    }).pipe(Effect.provide(Testing.layer({ config: { workers: 2 } }))))
})
