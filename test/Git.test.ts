import * as FileSystem from "@effect/platform/FileSystem"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as NodePath from "node:path"
import * as TestClock from "effect/TestClock"
import * as Git from "../src/Git.js"
import { GitError } from "../src/GroveError.js"
import { git, makeRepo, makeSuperRepo } from "./support/repo.js"

const RealGit = Git.layer.pipe(Layer.provideMerge(NodeContext.layer))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return failure
}

const assertGitError = <A>(exit: Exit.Exit<A, GitError>, reason: GitError["reason"], subject?: string) => {
  const error = failureOf(exit)
  assert.instanceOf(error, GitError)
  assert.strictEqual(error.reason, reason, error.message)
  if (subject !== undefined) assert.strictEqual(error.subject, subject)
}

/** a snapshot of what grove must never change in the main checkout */
const mainSnapshot = (root: string) =>
  Effect.all({
    status: git(root, "status", "--porcelain", "--ignored", "--untracked-files=all"),
    index: git(root, "ls-files", "--stage"),
    head: git(root, "rev-parse", "HEAD"),
    branches: git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
    hooks: git(root, "config", "--get-all", "core.hooksPath").pipe(Effect.orElseSucceed(() => "")),
    stash: git(root, "stash", "list")
  })

describe("Git.parseStatus (git status --porcelain=v2 --branch -z)", () => {
  const head = "# branch.oid 1111111111111111111111111111111111111111\u0000# branch.head (detached)\u0000"
  const kept = (p: string) => p.startsWith("node_modules/") || p.includes(".cache/")
  const sha = "1".repeat(40)
  it("clean: no entries, or only kept untracked and ignored paths", () => {
    assert.deepStrictEqual(Git.parseStatus(head, kept), { head: sha, state: "clean" })
    assert.deepStrictEqual(Git.parseStatus(`${head}! node_modules/\u0000? build/.cache/\u0000`, kept), { head: sha, state: "clean" })
    assert.deepStrictEqual(Git.parseStatus("# branch.oid (initial)\u0000", kept), { head: "", state: "clean" })
  })
  it("dirty: a tracked change (ordinary, renamed, unmerged) or an untracked or ignored file that is not kept", () => {
    for (
      const entry of [
        "1 .M N... 100644 100644 100644 aaaa aaaa src/app.txt",
        "2 R. N... 100644 100644 100644 aaaa aaaa R100 new.txt\u0000old.txt",
        "u UU N... 100644 100644 100644 100644 aaaa bbbb cccc both.txt",
        "? added.txt",
        "! debug.log",
        "? build/\u0000? build.o"
      ]
    ) {
      assert.deepStrictEqual(Git.parseStatus(`${head}${entry}\u0000`, kept), { head: sha, state: "dirty" }, entry)
    }
  })
  it("a folder that is not kept: dirty without keep patterns, unsure with them (it may hold kept paths)", () => {
    assert.deepStrictEqual(Git.parseStatus(`${head}? build/\u0000! dist/\u0000`, undefined), { head: sha, state: "dirty" })
    assert.deepStrictEqual(Git.parseStatus(`${head}? build/\u0000! dist/\u0000`, kept), { head: sha, state: "unsure" })
  })
})

describe("Git.worktreeAdd racing another git command", () => {
  const repo: Git.RepoInfo = { root: "/nowhere/repo", commonDir: "/nowhere/repo/.git", name: "repo" }
  const race = "Preparing worktree (detached HEAD 55372b0)\nfatal: failed to read .git/worktrees/w14/commondir: Success\n"
  /** git whose `worktree add` fails with `stderr` the first `failures` times */
  const flakyAdd = (failures: number, stderr: string) => {
    let adds = 0
    const git = Git.make({
      exec: (args) =>
        Effect.sync(() => {
          if (!args.includes("add")) return { exitCode: 0, stdout: "", stderr: "" }
          adds++
          return adds <= failures ? { exitCode: 128, stdout: "", stderr } : { exitCode: 0, stdout: "", stderr: "" }
        })
    })
    return { git, adds: () => adds }
  }
  const add = (git: Git.Git["Type"]) =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.exit(git.worktreeAdd(repo, "/nowhere/wt/w1", "c".repeat(40), { lockReason: "grove s 1" })))
      yield* TestClock.adjust("2 seconds")
      return yield* Fiber.join(fiber)
    })

  it.effect("tries again after reading the other add's half-made admin folder", () =>
    Effect.gen(function*() {
      const g = flakyAdd(2, race)
      assert.isTrue(Exit.isSuccess(yield* add(g.git)))
      assert.strictEqual(g.adds(), 3)
    }))

  it.effect("tries again when a concurrent `worktree remove` deleted the empty .git/worktrees under it", () =>
    Effect.gen(function*() {
      // as git said it in the suite, with two grove runs in one repository
      const removed = "Preparing worktree (detached HEAD 703e8d3)\n" +
        "fatal: Invalid path '/nowhere/repo/.git/worktrees': No such file or directory\n"
      const g = flakyAdd(1, removed)
      assert.isTrue(Exit.isSuccess(yield* add(g.git)))
      assert.strictEqual(g.adds(), 2)
      // the same remove, a moment later: after this add made its folder there
      const later = "Preparing worktree (detached HEAD a6abab9)\n" +
        "fatal: could not open '.git/worktrees/w1/gitdir' for writing: No such file or directory\n"
      const h = flakyAdd(1, later)
      assert.isTrue(Exit.isSuccess(yield* add(h.git)))
      assert.strictEqual(h.adds(), 2)
    }))

  it.effect("makes the worktree with git's parallel checkout (what the first test waits for)", () =>
    Effect.gen(function*() {
      const calls: Array<ReadonlyArray<string>> = []
      const git = Git.make({ exec: (args) => Effect.sync(() => (calls.push(args), { exitCode: 0, stdout: "", stderr: "" })) })
      yield* git.worktreeAdd(repo, "/nowhere/wt/w1", "c".repeat(40), { lockReason: "grove s 1" })
      const add = calls.find((args) => args.includes("worktree") && args.includes("add"))!
      assert.includeMembers([...add], ["-c", "checkout.workers=0", "-c", "core.hooksPath=/dev/null"])
      assert.isBelow(add.indexOf("checkout.workers=0"), add.indexOf("worktree"), "a git option, before the command")
    }))

  it.effect("gives up after four more tries, and at once on any other failure", () =>
    Effect.gen(function*() {
      const always = flakyAdd(100, race)
      assert.strictEqual(failureOf(yield* add(always.git)).reason, "CommandFailed")
      assert.strictEqual(always.adds(), 5)
      const other = flakyAdd(1, "fatal: '/nowhere/wt/w1' already exists\n")
      assert.include(failureOf(yield* add(other.git)).stderr, "already exists")
      assert.strictEqual(other.adds(), 1)
    }))
})

describe("Git (real git)", () => {
  it.scopedLive("adds a locked, detached worktree, lists it and removes it", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      assert.deepStrictEqual(info, { root: repo.root, commonDir: repo.commonDir, name: "repo" })

      const path = NodePath.join(repo.dir, "repo.grove", "s1", "w1")
      yield* g.worktreeAdd(info, path, repo.first, { lockReason: "grove s1 4242" })
      const entries = yield* g.worktreeList(info)
      assert.strictEqual(entries.length, 2)
      assert.strictEqual(entries[0]?.path, repo.root)
      assert.strictEqual(entries[0]?.locked, undefined)
      assert.deepStrictEqual(entries[1], { path, head: repo.first, locked: "grove s1 4242", prunable: false })
      assert.strictEqual(yield* git(path, "rev-parse", "--abbrev-ref", "HEAD"), "HEAD") // detached
      assert.strictEqual(yield* git(path, "show", "HEAD:src/app.txt"), "v1")

      yield* g.worktreeRemove(info, path)
      const after = yield* g.worktreeList(info)
      assert.deepStrictEqual(after.map((e) => e.path), [repo.root])
      assert.isFalse(yield* (yield* FileSystem.FileSystem).exists(path))
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("headBranch names the branch HEAD is on, and nothing when HEAD is detached", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      assert.strictEqual(yield* g.headBranch(info), "main")
      yield* git(repo.root, "checkout", "--quiet", "feature")
      assert.strictEqual(yield* g.headBranch(info), "feature")
      yield* git(repo.root, "checkout", "--quiet", "--detach", "main")
      assert.isUndefined(yield* g.headBranch(info))
      assert.strictEqual(yield* g.resolveRef(info, "HEAD"), repo.second)
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("removes a worktree whose .git file the test deleted (rm -rf + prune)", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      const path = NodePath.join(repo.dir, "wt", "w1")
      yield* g.worktreeAdd(info, path, repo.second, { lockReason: "grove s 1" })
      yield* fs.writeFileString(NodePath.join(path, "left-behind.txt"), "x")
      yield* fs.remove(NodePath.join(path, ".git"))
      // git itself cannot remove it any more
      const direct = yield* Effect.exit(git(repo.root, "worktree", "remove", "--force", "--force", path))
      assert.isTrue(Exit.isFailure(direct))

      yield* g.worktreeRemove(info, path)
      assert.isFalse(yield* fs.exists(path))
      assert.deepStrictEqual((yield* g.worktreeList(info)).map((e) => e.path), [repo.root])

      // a worktree whose whole folder is gone: its registration is pruned
      const gone = NodePath.join(repo.dir, "wt", "w2")
      yield* g.worktreeAdd(info, gone, repo.second, { lockReason: "grove s 1" })
      yield* fs.remove(gone, { recursive: true })
      yield* g.worktreeRemove(info, gone)
      assert.deepStrictEqual((yield* g.worktreeList(info)).map((e) => e.path), [repo.root])
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("refuses to rm -rf a folder that is not one of the repository's worktrees", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      const stranger = NodePath.join(repo.dir, "not-a-worktree")
      yield* fs.makeDirectory(stranger)
      yield* fs.writeFileString(NodePath.join(stranger, "precious.txt"), "keep me")
      assertGitError(yield* Effect.exit(g.worktreeRemove(info, stranger)), "UnsafeWorktree", stranger)
      assert.strictEqual(yield* fs.readFileString(NodePath.join(stranger, "precious.txt")), "keep me")
      // nor the repository itself, nor a folder inside it
      const before = yield* mainSnapshot(repo.root)
      assertGitError(yield* Effect.exit(g.worktreeRemove(info, repo.root)), "UnsafeWorktree")
      assertGitError(yield* Effect.exit(g.worktreeRemove(info, NodePath.join(repo.root, "src"))), "UnsafeWorktree")
      assert.strictEqual(yield* fs.readFileString(NodePath.join(repo.root, "src", "app.txt")), "v2\n")
      assert.deepStrictEqual(yield* mainSnapshot(repo.root), before)
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("checkoutClean removes modified, added and ignored files but keeps `keep` paths; state follows", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      const wt = NodePath.join(repo.dir, "wt", "w1")
      const at = (f: string) => NodePath.join(wt, f)
      const keep = ["node_modules", ".cache"]
      yield* g.worktreeAdd(info, wt, repo.second, { lockReason: "grove s 1" })
      assert.deepStrictEqual(yield* g.state(wt, keep), { head: repo.second, clean: true })

      yield* fs.writeFileString(at("src/app.txt"), "changed\n") // modified tracked
      yield* fs.writeFileString(at("added.txt"), "new\n") // untracked
      yield* fs.writeFileString(at("debug.log"), "ignored\n") // ignored by .gitignore
      yield* fs.makeDirectory(at("dist/deep"), { recursive: true }) // ignored folder
      yield* fs.writeFileString(at("dist/deep/out.js"), "x")
      yield* fs.makeDirectory(at("node_modules/pkg"), { recursive: true }) // kept
      yield* fs.writeFileString(at("node_modules/pkg/index.js"), "kept")
      yield* fs.makeDirectory(at("build/.cache"), { recursive: true }) // kept, nested in an untracked folder
      yield* fs.writeFileString(at("build/.cache/c"), "kept too")
      yield* fs.writeFileString(at("build/out.o"), "not kept")
      yield* fs.remove(at("README.md")) // deleted tracked
      yield* git(wt, "add", "added.txt") // staged
      assert.deepStrictEqual(yield* g.state(wt, keep), { head: repo.second, clean: false })

      yield* g.checkoutClean(wt, repo.second, keep)
      assert.deepStrictEqual(yield* g.state(wt, keep), { head: repo.second, clean: true })
      assert.strictEqual(yield* fs.readFileString(at("src/app.txt")), "v2\n")
      assert.isTrue(yield* fs.exists(at("README.md")))
      for (const gone of ["added.txt", "debug.log", "dist", "build/out.o"]) {
        assert.isFalse(yield* fs.exists(at(gone)), `${gone} should be gone`)
      }
      assert.strictEqual(yield* fs.readFileString(at("node_modules/pkg/index.js")), "kept")
      assert.strictEqual(yield* fs.readFileString(at("build/.cache/c")), "kept too")
      // nothing tracked changed; the only untracked thing left is the folder holding kept files
      assert.strictEqual(yield* git(wt, "status", "--porcelain", "--untracked-files=no"), "")
      assert.strictEqual(yield* git(wt, "status", "--porcelain", "--ignored"), "?? build/\n!! node_modules/")

      // without keep patterns, the kept files count as dirt and are removed
      assert.isFalse((yield* g.state(wt, [])).clean)
      yield* g.checkoutClean(wt, repo.second, [])
      assert.isFalse(yield* fs.exists(at("node_modules")))
      assert.deepStrictEqual(yield* g.state(wt, []), { head: repo.second, clean: true })
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("a worktree moved to another ref sees that ref's content", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      const wt = NodePath.join(repo.dir, "wt", "w1")
      yield* g.worktreeAdd(info, wt, repo.second, { lockReason: "grove s 1" })
      assert.isFalse(yield* fs.exists(NodePath.join(wt, "feature.txt")))

      const feature = yield* g.resolveRef(info, "feature")
      assert.strictEqual(feature, repo.feature)
      yield* g.checkoutClean(wt, feature, [])
      assert.deepStrictEqual(yield* g.state(wt, []), { head: repo.feature, clean: true })
      assert.strictEqual(yield* fs.readFileString(NodePath.join(wt, "feature.txt")), "feature\n")
      assert.strictEqual(yield* fs.readFileString(NodePath.join(wt, "src/app.txt")), "v1\n")

      yield* g.checkoutClean(wt, yield* g.resolveRef(info, "v1"), [])
      assert.strictEqual((yield* g.state(wt, [])).head, repo.first)
      assert.isFalse(yield* fs.exists(NodePath.join(wt, "feature.txt")))
      // the main checkout did not move
      assert.strictEqual(yield* git(repo.root, "rev-parse", "HEAD"), repo.second)
      assert.strictEqual(yield* git(repo.root, "symbolic-ref", "HEAD"), "refs/heads/main")
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("submodules: a worktree moved to another commit has that commit's submodule, and one changed inside is dirty until cleaned", () =>
    Effect.gen(function*() {
      const repo = yield* makeSuperRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      const wt = NodePath.join(repo.dir, "wt", "w1")
      const lib = NodePath.join(wt, "lib")
      const submodules = { submodules: true }
      const libHead = git(lib, "rev-parse", "HEAD")
      const state = g.state(wt, [], submodules)

      yield* g.worktreeAdd(info, wt, repo.a, { lockReason: "grove s 1", submodules: true })
      assert.strictEqual(yield* libHead, repo.libA)
      assert.deepStrictEqual(yield* state, { head: repo.a, clean: true })

      // moved to b: the submodule follows, and the worktree is clean there
      yield* g.checkoutClean(wt, repo.b, [], submodules)
      assert.strictEqual(yield* libHead, repo.libB)
      assert.strictEqual(yield* fs.readFileString(NodePath.join(lib, "lib.txt")), "b\n")
      assert.deepStrictEqual(yield* state, { head: repo.b, clean: true })

      // whatever a test leaves inside the submodule makes the worktree dirty; cleaning restores b's
      const dirt = [
        ["an untracked file", fs.writeFileString(NodePath.join(lib, "new.txt"), "new\n")],
        ["a changed tracked file", fs.writeFileString(NodePath.join(lib, "lib.txt"), "changed\n")],
        ["an ignored file", fs.writeFileString(NodePath.join(lib, "debug.log"), "ignored\n")],
        ["a staged change", Effect.zipRight(fs.writeFileString(NodePath.join(lib, "staged.txt"), "s\n"), git(lib, "add", "staged.txt"))],
        ["the submodule at another commit", git(lib, "checkout", "--quiet", "--detach", repo.libA)],
        ["the submodule emptied", git(wt, "submodule", "--quiet", "deinit", "--force", "lib")]
      ] as const
      for (const [what, make] of dirt) {
        yield* make
        assert.deepStrictEqual(yield* state, { head: repo.b, clean: false }, `${what} is not seen`)
        yield* g.checkoutClean(wt, repo.b, [], submodules)
        assert.deepStrictEqual(yield* state, { head: repo.b, clean: true }, `${what} is not cleaned`)
        assert.strictEqual(yield* libHead, repo.libB, what)
        assert.strictEqual(yield* git(lib, "status", "--porcelain", "--ignored"), "", what)
        assert.strictEqual(yield* fs.readFileString(NodePath.join(lib, "lib.txt")), "b\n", what)
      }

      // and back to a
      yield* g.checkoutClean(wt, repo.a, [], submodules)
      assert.strictEqual(yield* libHead, repo.libA)
      assert.deepStrictEqual(yield* state, { head: repo.a, clean: true })
      yield* g.worktreeRemove(info, wt)
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("refuses destructive commands in the main checkout and in a plain folder inside it", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      // user work in progress in the main checkout
      yield* fs.writeFileString(NodePath.join(repo.root, "src/app.txt"), "work in progress\n")
      yield* fs.writeFileString(NodePath.join(repo.root, "untracked.txt"), "mine\n")
      yield* fs.writeFileString(NodePath.join(repo.root, "build.log"), "ignored but mine\n")
      yield* git(repo.root, "add", "untracked.txt")
      const plain = NodePath.join(repo.root, "plain")
      yield* fs.makeDirectory(plain)
      yield* fs.writeFileString(NodePath.join(plain, "file.txt"), "plain\n")
      const before = yield* mainSnapshot(repo.root)

      for (const target of [repo.root, plain, NodePath.join(repo.root, "src")]) {
        assertGitError(yield* Effect.exit(g.checkoutClean(target, repo.first, [])), "UnsafeWorktree", target)
        assertGitError(yield* Effect.exit(g.state(target, [])), "UnsafeWorktree", target)
      }
      // a worktree whose .git file is gone climbs to nothing: refused too
      const info = yield* g.repoInfo(repo.root)
      const wt = NodePath.join(repo.dir, "wt", "w1")
      yield* g.worktreeAdd(info, wt, repo.second, { lockReason: "grove s 1" })
      yield* fs.remove(NodePath.join(wt, ".git"))
      assertGitError(yield* Effect.exit(g.checkoutClean(wt, repo.first, [])), "UnsafeWorktree", wt)

      assert.deepStrictEqual(yield* mainSnapshot(repo.root), before)
      assert.strictEqual(yield* fs.readFileString(NodePath.join(repo.root, "src/app.txt")), "work in progress\n")
      assert.strictEqual(yield* fs.readFileString(NodePath.join(plain, "file.txt")), "plain\n")
      assert.strictEqual(yield* fs.readFileString(NodePath.join(repo.root, "build.log")), "ignored but mine\n")
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("repoInfo gives the main root from a subfolder and from a linked worktree", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const g = yield* Git.Git
      const expected = { root: repo.root, commonDir: repo.commonDir, name: "repo" }
      assert.deepStrictEqual(yield* g.repoInfo(NodePath.join(repo.root, "src")), expected)
      const wt = NodePath.join(repo.dir, "wt", "w1")
      yield* g.worktreeAdd(expected, wt, repo.first, { lockReason: "grove s 1" })
      assert.deepStrictEqual(yield* g.repoInfo(wt), expected)
      assert.deepStrictEqual(yield* g.repoInfo(NodePath.join(wt, "src")), expected)
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("unknown refs, folders outside any repository, paths and changes between commits", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      const info = yield* g.repoInfo(repo.root)
      assertGitError(yield* Effect.exit(g.resolveRef(info, "no-such-branch")), "UnknownRef", "no-such-branch")
      assertGitError(yield* Effect.exit(g.resolveRef(info, "--all")), "UnknownRef", "--all")
      assert.strictEqual(yield* g.resolveRef(info, "HEAD~1"), repo.first)
      assert.strictEqual(yield* g.resolveRef(info, repo.second.slice(0, 10)), repo.second)

      const outside = NodePath.join(repo.dir, "outside")
      yield* fs.makeDirectory(outside)
      assertGitError(yield* Effect.exit(g.repoInfo(outside)), "NotARepository", outside)
      const missing = NodePath.join(repo.dir, "missing")
      assertGitError(yield* Effect.exit(g.repoInfo(missing)), "NotARepository", missing)

      assert.isTrue(yield* g.pathExistsAt(info, repo.first, "src"))
      assert.isTrue(yield* g.pathExistsAt(info, repo.first, "./src/app.txt"))
      assert.isTrue(yield* g.pathExistsAt(info, repo.first, "."))
      assert.isFalse(yield* g.pathExistsAt(info, repo.first, "feature.txt"))
      assert.isTrue(yield* g.pathExistsAt(info, repo.feature, "feature.txt"))

      assert.isFalse(yield* g.changedBetween(info, repo.first, repo.second, ["package-lock.json"]))
      assert.isTrue(yield* g.changedBetween(info, repo.first, repo.second, ["src"]))
      assert.isTrue(yield* g.changedBetween(info, repo.second, repo.feature, ["package-lock.json", "nothing-here"]))
      assert.isFalse(yield* g.changedBetween(info, repo.second, repo.feature, []))
      assertGitError(yield* Effect.exit(g.changedBetween(info, "0".repeat(40), repo.feature, ["src"])), "CommandFailed")
    }).pipe(Effect.provide(RealGit)))

  it.scopedLive("runs without hooks: a post-checkout hook of the repository does not fire", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const g = yield* Git.Git
      const marker = NodePath.join(repo.dir, "hook-ran")
      const hook = NodePath.join(repo.commonDir, "hooks", "post-checkout")
      yield* fs.writeFileString(hook, `#!/bin/sh\ntouch ${marker}\n`)
      yield* fs.chmod(hook, 0o755)
      const info = yield* g.repoInfo(repo.root)
      const wt = NodePath.join(repo.dir, "wt", "w1")
      yield* g.worktreeAdd(info, wt, repo.first, { lockReason: "grove s 1" })
      yield* g.checkoutClean(wt, repo.second, [])
      assert.isFalse(yield* fs.exists(marker))
      // the hook itself works: git run the ordinary way fires it
      yield* git(wt, "checkout", "--quiet", "--detach", repo.first)
      assert.isTrue(yield* fs.exists(marker))
    }).pipe(Effect.provide(RealGit)))
})

describe("Git (memory)", () => {
  const repoOptions: Git.MemoryOptions = {
    repos: [{
      root: "/repo",
      refs: { main: "sha2", v1: "sha1", feature: "sha3" },
      files: {
        sha1: { "package-lock.json": "1", "src/app.txt": "v1" },
        sha2: { "package-lock.json": "1", "src/app.txt": "v2" },
        sha3: { "package-lock.json": "2", "src/app.txt": "v1", "feature.txt": "f" }
      }
    }]
  }

  it.effect("worktrees: add, lock reason, state, dirty, checkoutClean, remove", () =>
    Effect.gen(function*() {
      const g = yield* Git.Git
      const control = yield* Git.GitMemory
      const info = yield* g.repoInfo("/repo/src")
      assert.deepStrictEqual(info, { root: "/repo", commonDir: "/repo/.git", name: "repo" })
      assert.strictEqual(yield* g.resolveRef(info, "HEAD"), "sha2")
      assertGitError(yield* Effect.exit(g.resolveRef(info, "nope")), "UnknownRef", "nope")
      assertGitError(yield* Effect.exit(g.repoInfo("/elsewhere")), "NotARepository", "/elsewhere")

      yield* g.worktreeAdd(info, "/wt/s/w1", "sha2", { lockReason: "grove s 1" })
      assert.deepStrictEqual(yield* g.repoInfo("/wt/s/w1/src"), info)
      assert.deepStrictEqual((yield* g.worktreeList(info))[1], { path: "/wt/s/w1", head: "sha2", locked: "grove s 1", prunable: false })
      assert.deepStrictEqual(yield* g.state("/wt/s/w1", []), { head: "sha2", clean: true })
      yield* control.dirty("/wt/s/w1")
      assert.deepStrictEqual(yield* g.state("/wt/s/w1", []), { head: "sha2", clean: false })
      yield* g.checkoutClean("/wt/s/w1", "sha3", [])
      assert.deepStrictEqual(yield* g.state("/wt/s/w1", []), { head: "sha3", clean: true })
      assertGitError(yield* Effect.exit(g.checkoutClean("/wt/s/w1", "unknown", [])), "CommandFailed")

      assertGitError(yield* Effect.exit(g.state("/repo", [])), "UnsafeWorktree", "/repo")
      assertGitError(yield* Effect.exit(g.checkoutClean("/repo/src", "sha1", [])), "UnsafeWorktree", "/repo/src")
      yield* control.breakWorktree("/wt/s/w1")
      assertGitError(yield* Effect.exit(g.checkoutClean("/wt/s/w1", "sha1", [])), "UnsafeWorktree", "/wt/s/w1")
      yield* g.worktreeRemove(info, "/wt/s/w1")
      assert.deepStrictEqual(yield* control.worktrees, [])
      assertGitError(yield* Effect.exit(g.worktreeRemove(info, "/repo")), "UnsafeWorktree")

      const calls = yield* control.calls
      assert.strictEqual(calls.checkoutClean, 4)
      assert.strictEqual(calls.worktreeAdd, 1)
    }).pipe(Effect.provide(Git.layerMemory(repoOptions))))

  it.effect("HEAD as in git: on main by default and moving with it, on a chosen branch, or detached", () =>
    Effect.gen(function*() {
      const refs = { main: "sha2", v1: "sha1", feature: "sha3" }
      const memory = (repo: Omit<Git.MemoryRepo, "root">) =>
        Effect.gen(function*() {
          const { control, git: g } = yield* Git.makeMemory({ repos: [{ root: "/repo", ...repo }] })
          return { control, g, info: yield* g.repoInfo("/repo") }
        })

      const onMain = yield* memory({ refs })
      assert.strictEqual(yield* onMain.g.headBranch(onMain.info), "main")
      assert.strictEqual(yield* onMain.g.resolveRef(onMain.info, "HEAD"), "sha2")
      yield* onMain.control.setRef("/repo", "main", "sha9")
      assert.strictEqual(yield* onMain.g.resolveRef(onMain.info, "HEAD"), "sha9", "HEAD follows its branch")
      assert.strictEqual((yield* onMain.g.worktreeList(onMain.info))[0]?.head, "sha9")
      yield* onMain.control.setRef("/repo", "HEAD", "sha1")
      assert.isUndefined(yield* onMain.g.headBranch(onMain.info), "setRef HEAD detaches")
      assert.strictEqual(yield* onMain.g.resolveRef(onMain.info, "HEAD"), "sha1")

      const onFeature = yield* memory({ refs, head: "feature" })
      assert.strictEqual(yield* onFeature.g.headBranch(onFeature.info), "feature")
      assert.strictEqual(yield* onFeature.g.resolveRef(onFeature.info, "HEAD"), "sha3")

      const detached = yield* memory({ refs: { ...refs, HEAD: "sha1" } })
      assert.isUndefined(yield* detached.g.headBranch(detached.info))
      assert.strictEqual(yield* detached.g.resolveRef(detached.info, "HEAD"), "sha1")
      assert.strictEqual((yield* detached.control.calls).headBranch, 1)
    }))

  it.effect("files per commit: pathExistsAt and changedBetween", () =>
    Effect.gen(function*() {
      const g = yield* Git.Git
      const info = yield* g.repoInfo("/repo")
      assert.isTrue(yield* g.pathExistsAt(info, "sha1", "src"))
      assert.isTrue(yield* g.pathExistsAt(info, "sha1", "./src/app.txt"))
      assert.isFalse(yield* g.pathExistsAt(info, "sha1", "feature.txt"))
      assert.isFalse(yield* g.changedBetween(info, "sha1", "sha2", ["package-lock.json"]))
      assert.isTrue(yield* g.changedBetween(info, "sha2", "sha3", ["package-lock.json"]))
      assert.isTrue(yield* g.changedBetween(info, "sha1", "sha2", ["src"]))
    }).pipe(Effect.provide(Git.layerMemory(repoOptions))))

  it.effect("fails on demand, once per request, and for the named path only", () =>
    Effect.gen(function*() {
      const g = yield* Git.Git
      const control = yield* Git.GitMemory
      const info = yield* g.repoInfo("/repo")
      yield* g.worktreeAdd(info, "/wt/w1", "sha2", { lockReason: "r" })
      yield* g.worktreeAdd(info, "/wt/w2", "sha2", { lockReason: "r" })
      yield* control.failNext("checkoutClean", "/wt/w2")
      yield* g.checkoutClean("/wt/w1", "sha1", [])
      assertGitError(yield* Effect.exit(g.checkoutClean("/wt/w2", "sha1", [])), "CommandFailed")
      yield* g.checkoutClean("/wt/w2", "sha1", [])
      yield* control.failNext("resolveRef", undefined, new GitError({ reason: "UnknownRef", subject: "main" }))
      assertGitError(yield* Effect.exit(g.resolveRef(info, "main")), "UnknownRef", "main")
      assert.strictEqual(yield* g.resolveRef(info, "main"), "sha2")
      yield* control.setRef("/repo", "main", "sha9")
      assert.strictEqual(yield* g.resolveRef(info, "main"), "sha9")
    }).pipe(Effect.provide(Git.layerMemory(repoOptions))))
})
