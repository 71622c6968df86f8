/**
 * The contract every `Git` backend keeps (as StoreSuite is for the stores):
 * `suite(name, backend)` runs it; each test makes a repository of the commits and
 * files it names with `backend.makeRepo` and talks to it through the `Git` service
 * alone. The real layer runs it on temp repositories, `Git.layerMemory` in memory:
 * where they differ, the fake is what gets fixed.
 *
 * Covered: the repository and its refs (and refs that do not resolve), files per
 * commit, adding, locking, listing and removing worktrees, a worktree's state clean
 * and dirty (tracked changes, untracked, ignored and kept paths), moving it to
 * another commit, the safety checks of destructive commands. Failures on demand exist
 * only in the fake (`backend.control`): those tests run for it alone. Submodules are
 * not modelled by the fake; test/Git.test.ts covers them against real git.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as NodePath from "node:path"
import { Git, type MemoryControl, type RepoInfo } from "../src/Git.js"
import { GitError } from "../src/GroveError.js"

// -----------------------------------------------------------------------------
// what a backend provides
// -----------------------------------------------------------------------------

/** one commit: its parent (a commit named before it; none for a root commit) and all of its files */
export interface CommitSpec {
  readonly name: string
  readonly parent?: string
  readonly files: Readonly<Record<string, string>>
}

/** a repository to make: commits in order, branches and tags naming commits, the branch checked out */
export interface RepoSpec {
  readonly commits: ReadonlyArray<CommitSpec>
  readonly branches: Readonly<Record<string, string>>
  readonly tags: Readonly<Record<string, string>>
  readonly head: string
}

/** a repository made from a RepoSpec, and what a test does on disk (or in memory) around grove */
export interface Fixture {
  readonly info: RepoInfo
  /** the SHA of a commit of the spec, by name */
  readonly sha: (commit: string) => string
  /** a folder outside the repository for worktrees (it need not exist) */
  readonly worktreeDir: string
  /** a folder that exists and is in no repository */
  readonly outside: string
  /** writes `file` (relative to the worktree's top level) */
  readonly write: (worktree: string, file: string, content: string) => Effect.Effect<void>
  /** deletes `file` */
  readonly remove: (worktree: string, file: string) => Effect.Effect<void>
  /** `file`'s content, undefined when there is none */
  readonly read: (worktree: string, file: string) => Effect.Effect<string | undefined>
  /** deletes the worktree's `.git` file, as a test may */
  readonly breakWorktree: (worktree: string) => Effect.Effect<void>
  /** detaches the main checkout's HEAD at a commit */
  readonly detachHead: (sha: string) => Effect.Effect<void>
}

export interface Backend<R> {
  /** the Git service and whatever `makeRepo` needs */
  readonly layer: Layer.Layer<Git | R>
  readonly makeRepo: (spec: RepoSpec) => Effect.Effect<Fixture, unknown, Git | R | Scope.Scope>
  /** failures on demand: the fake's control handle; undefined for the real git */
  readonly control?: Effect.Effect<MemoryControl, never, R>
}

// -----------------------------------------------------------------------------
// the repository every test starts from
// -----------------------------------------------------------------------------

/**
 * first (tagged v1): README.md, package-lock.json v1, src/app.txt v1, .gitignore;
 * second (main, off first): src/app.txt v2; feature (branch, off first): package-lock.json v2, feature.txt
 */
export const spec: RepoSpec = (() => {
  const first = {
    "README.md": "# test repository\n",
    "package-lock.json": "{\"lockfileVersion\":1}\n",
    "src/app.txt": "v1\n",
    ".gitignore": "node_modules/\n*.log\n"
  }
  return {
    commits: [
      { name: "first", files: first },
      { name: "second", parent: "first", files: { ...first, "src/app.txt": "v2\n" } },
      {
        name: "feature",
        parent: "first",
        files: { ...first, "package-lock.json": "{\"lockfileVersion\":2}\n", "feature.txt": "feature\n" }
      }
    ],
    branches: { main: "second", feature: "feature" },
    tags: { v1: "first" },
    head: "main"
  }
})()

const failureOf = <A>(exit: Exit.Exit<A, GitError>): GitError => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a GitError, got success: ${JSON.stringify(exit.value)}`)
  if (exit.cause._tag !== "Fail") throw new Error(`expected a GitError, got ${String(exit.cause)}`)
  assert.instanceOf(exit.cause.error, GitError)
  return exit.cause.error
}

const fails = <A>(exit: Exit.Exit<A, GitError>, reason: GitError["reason"]) => {
  const error = failureOf(exit)
  assert.strictEqual(error.reason, reason, error.message)
  return error
}

// -----------------------------------------------------------------------------
// the suite
// -----------------------------------------------------------------------------

export const suite = <R>(name: string, backend: Backend<R>) =>
  describe(`Git contract: ${name}`, () => {
    const test = (title: string, body: (git: Git["Type"], repo: Fixture) => Effect.Effect<void, unknown, R | Scope.Scope>) =>
      it.scoped(title, () =>
        Effect.gen(function*() {
          const git = yield* Git
          const repo = yield* backend.makeRepo(spec)
          yield* body(git, repo)
        }).pipe(Effect.provide(backend.layer)))

    const lock = { lockReason: "grove s1 4242" }
    const wt = (repo: Fixture, n = 1) => NodePath.join(repo.worktreeDir, `w${n}`)

    test("the repository from its top level, a folder inside it or a linked worktree; NotARepository outside", (git, repo) =>
      Effect.gen(function*() {
        const info = yield* git.repoInfo(repo.info.root)
        assert.deepStrictEqual(info, repo.info)
        assert.strictEqual(info.name, NodePath.basename(info.root))
        assert.strictEqual(info.commonDir, NodePath.join(info.root, ".git"))
        assert.deepStrictEqual(yield* git.repoInfo(NodePath.join(repo.info.root, "src")), info)
        yield* git.worktreeAdd(info, wt(repo), repo.sha("first"), lock)
        assert.deepStrictEqual(yield* git.repoInfo(NodePath.join(wt(repo), "src")), info)
        fails(yield* Effect.exit(git.repoInfo(repo.outside)), "NotARepository")
      }))

    test("refs: branches, tags, full and abbreviated SHAs, HEAD, ancestry; UnknownRef for what does not resolve", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        assert.strictEqual(yield* git.resolveRef(info, "main"), sha("second"))
        assert.strictEqual(yield* git.resolveRef(info, "refs/heads/feature"), sha("feature"))
        assert.strictEqual(yield* git.resolveRef(info, "v1"), sha("first"))
        assert.strictEqual(yield* git.resolveRef(info, "refs/tags/v1"), sha("first"))
        assert.strictEqual(yield* git.resolveRef(info, sha("feature")), sha("feature"))
        assert.strictEqual(yield* git.resolveRef(info, sha("feature").slice(0, 12)), sha("feature"))
        assert.strictEqual(yield* git.resolveRef(info, "HEAD"), sha("second"))
        assert.strictEqual(yield* git.resolveRef(info, "main~1"), sha("first"))
        assert.strictEqual(yield* git.resolveRef(info, "HEAD^"), sha("first"))
        assert.strictEqual(yield* git.resolveRef(info, "feature~1"), sha("first"))
        for (const ref of ["nope", "", "  ", "-x", "--all", "main~5", "f".repeat(40)]) {
          const error = fails(yield* Effect.exit(git.resolveRef(info, ref)), "UnknownRef")
          assert.strictEqual(error.subject, ref)
        }
      }))

    test("the branch HEAD is on; undefined once HEAD is detached", (git, repo) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* git.headBranch(repo.info), "main")
        yield* repo.detachHead(repo.sha("first"))
        assert.isUndefined(yield* git.headBranch(repo.info))
        assert.strictEqual(yield* git.resolveRef(repo.info, "HEAD"), repo.sha("first"))
        assert.strictEqual((yield* git.worktreeList(repo.info))[0]!.head, repo.sha("first"))
      }))

    test("files per commit: pathExistsAt and changedBetween", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        assert.isTrue(yield* git.pathExistsAt(info, sha("first"), "src"))
        assert.isTrue(yield* git.pathExistsAt(info, sha("first"), "./src/app.txt"))
        assert.isTrue(yield* git.pathExistsAt(info, sha("first"), "src/"))
        assert.isTrue(yield* git.pathExistsAt(info, sha("first"), "."))
        assert.isFalse(yield* git.pathExistsAt(info, sha("first"), "feature.txt"))
        assert.isTrue(yield* git.pathExistsAt(info, sha("feature"), "feature.txt"))
        assert.isFalse(yield* git.pathExistsAt(info, sha("first"), "sr"), "a prefix of a name is not a path")
        assert.isFalse(yield* git.pathExistsAt(info, "f".repeat(40), "src"), "an unknown commit has no paths")
        fails(yield* Effect.exit(git.pathExistsAt(info, "--all", "src")), "UnknownRef")

        assert.isFalse(yield* git.changedBetween(info, sha("first"), sha("second"), ["package-lock.json"]))
        assert.isTrue(yield* git.changedBetween(info, sha("second"), sha("feature"), ["package-lock.json"]))
        assert.isTrue(yield* git.changedBetween(info, sha("first"), sha("second"), ["src"]))
        assert.isTrue(yield* git.changedBetween(info, sha("first"), sha("feature"), ["feature.txt"]), "a file added")
        assert.isFalse(yield* git.changedBetween(info, sha("first"), sha("second"), []))
        assert.isFalse(yield* git.changedBetween(info, sha("first"), sha("first"), ["src"]))
        fails(yield* Effect.exit(git.changedBetween(info, sha("first"), "f".repeat(40), ["src"])), "CommandFailed")
        fails(yield* Effect.exit(git.changedBetween(info, "-p", sha("first"), ["src"])), "UnknownRef")
      }))

    test("add: a detached worktree at the commit, locked with the reason, listed after the main one", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        yield* git.worktreeAdd(info, wt(repo), sha("first"), lock)
        assert.deepStrictEqual(yield* git.worktreeList(info), [
          { path: info.root, head: sha("second"), locked: undefined, prunable: false },
          { path: wt(repo), head: sha("first"), locked: lock.lockReason, prunable: false }
        ])
        assert.strictEqual(yield* repo.read(wt(repo), "src/app.txt"), "v1\n")
        assert.isUndefined(yield* repo.read(wt(repo), "feature.txt"))
        assert.deepStrictEqual(yield* git.state(wt(repo), []), { head: sha("first"), clean: true })
        assert.strictEqual(yield* git.headBranch(info), "main", "the main checkout stays on its branch")

        // a ref name works where a SHA does
        yield* git.worktreeAdd(info, wt(repo, 2), "feature", lock)
        assert.strictEqual((yield* git.worktreeList(info))[2]!.head, sha("feature"))
        assert.strictEqual(yield* repo.read(wt(repo, 2), "feature.txt"), "feature\n")
      }))

    test("add fails where a worktree exists, at a commit that does not resolve, and leaves nothing", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        yield* git.worktreeAdd(info, wt(repo), sha("first"), lock)
        fails(yield* Effect.exit(git.worktreeAdd(info, wt(repo), sha("second"), lock)), "CommandFailed")
        assert.strictEqual(yield* repo.read(wt(repo), "src/app.txt"), "v1\n", "the existing one is untouched")
        fails(yield* Effect.exit(git.worktreeAdd(info, wt(repo, 2), "f".repeat(40), lock)), "CommandFailed")
        fails(yield* Effect.exit(git.worktreeAdd(info, wt(repo, 3), "--orphan", lock)), "UnknownRef")
        assert.deepStrictEqual((yield* git.worktreeList(info)).map((e) => e.path), [info.root, wt(repo)])
      }))

    test("lock replaces the reason; a path that is no worktree cannot be locked", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        yield* git.worktreeAdd(info, wt(repo), sha("first"), lock)
        yield* git.worktreeLock(info, wt(repo), "grove s1 kept")
        assert.strictEqual((yield* git.worktreeList(info))[1]!.locked, "grove s1 kept")
        fails(yield* Effect.exit(git.worktreeLock(info, wt(repo, 9), "grove s1 kept")), "CommandFailed")
      }))

    test("remove: a locked worktree, a broken one (its .git file deleted); never the main checkout or a relative path", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        yield* git.worktreeAdd(info, wt(repo), sha("first"), lock)
        yield* git.worktreeAdd(info, wt(repo, 2), sha("first"), lock)
        yield* repo.write(wt(repo), "untracked.txt", "x\n")
        yield* git.worktreeRemove(info, wt(repo))
        assert.isUndefined(yield* repo.read(wt(repo), "README.md"))
        assert.deepStrictEqual((yield* git.worktreeList(info)).map((e) => e.path), [info.root, wt(repo, 2)])

        yield* repo.breakWorktree(wt(repo, 2))
        yield* git.worktreeRemove(info, wt(repo, 2))
        assert.isUndefined(yield* repo.read(wt(repo, 2), "README.md"))
        assert.deepStrictEqual((yield* git.worktreeList(info)).map((e) => e.path), [info.root])

        fails(yield* Effect.exit(git.worktreeRemove(info, info.root)), "UnsafeWorktree")
        fails(yield* Effect.exit(git.worktreeRemove(info, "w1")), "UnsafeWorktree")
        assert.strictEqual(yield* repo.read(info.root, "README.md"), "# test repository\n")
        // nothing there: nothing to do
        yield* git.worktreeRemove(info, wt(repo, 7))
      }))

    test("prune keeps a broken worktree that is locked", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        yield* git.worktreeAdd(info, wt(repo), sha("first"), lock)
        yield* repo.breakWorktree(wt(repo))
        yield* git.prune(info)
        assert.deepStrictEqual((yield* git.worktreeList(info)).map((e) => [e.path, e.locked, e.prunable]), [
          [info.root, undefined, false],
          [wt(repo), lock.lockReason, false]
        ])
      }))

    test("state: clean at its commit; dirty with a tracked change, a deleted file, an untracked or an ignored file; kept paths do not count", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        const path = wt(repo)
        yield* git.worktreeAdd(info, path, sha("second"), lock)
        const keep = ["node_modules", "*.cache"]
        const clean = { head: sha("second"), clean: true }
        const dirty = { head: sha("second"), clean: false }
        assert.deepStrictEqual(yield* git.state(path, keep), clean)

        const cases: ReadonlyArray<readonly [string, Effect.Effect<void>, Effect.Effect<void>]> = [
          ["a tracked change", repo.write(path, "src/app.txt", "changed\n"), repo.write(path, "src/app.txt", "v2\n")],
          ["a tracked file deleted", repo.remove(path, "README.md"), repo.write(path, "README.md", "# test repository\n")],
          ["an untracked file", repo.write(path, "new.txt", "x\n"), repo.remove(path, "new.txt")],
          ["an untracked file in a new folder", repo.write(path, "scratch/a.txt", "x\n"), repo.remove(path, "scratch/a.txt")],
          ["an ignored file", repo.write(path, "debug.log", "x\n"), repo.remove(path, "debug.log")],
          ["an ignored file in a folder", repo.write(path, "logs/run.log", "x\n"), repo.remove(path, "logs/run.log")],
          ["an untracked folder named like a kept one", repo.write(path, "node_modules.bak/x", "x\n"), repo.remove(path, "node_modules.bak/x")]
        ]
        for (const [what, make, undo] of cases) {
          yield* make
          assert.deepStrictEqual(yield* git.state(path, keep), dirty, what)
          yield* undo
          assert.deepStrictEqual(yield* git.state(path, keep), clean, `${what}, undone`)
        }

        yield* repo.write(path, "node_modules/x/index.js", "kept\n")
        yield* repo.write(path, "src/build.cache", "kept\n")
        assert.deepStrictEqual(yield* git.state(path, keep), clean, "kept paths")
        assert.deepStrictEqual(yield* git.state(path, []), dirty, "the same paths without keep patterns")
        yield* repo.write(path, "src/app.txt", "changed\n")
        assert.deepStrictEqual(yield* git.state(path, keep), dirty, "a tracked change beside kept paths")
      }))

    test("checkoutClean: back to the commit, untracked and ignored files gone, kept paths stay; to another commit", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        const path = wt(repo)
        const keep = ["node_modules"]
        yield* git.worktreeAdd(info, path, sha("second"), lock)
        yield* repo.write(path, "src/app.txt", "changed\n")
        yield* repo.remove(path, "README.md")
        yield* repo.write(path, "new.txt", "x\n")
        yield* repo.write(path, "debug.log", "x\n")
        yield* repo.write(path, "node_modules/x/index.js", "kept\n")
        yield* git.checkoutClean(path, sha("second"), keep)
        assert.deepStrictEqual(yield* git.state(path, keep), { head: sha("second"), clean: true })
        assert.strictEqual(yield* repo.read(path, "src/app.txt"), "v2\n")
        assert.strictEqual(yield* repo.read(path, "README.md"), "# test repository\n")
        assert.isUndefined(yield* repo.read(path, "new.txt"))
        assert.isUndefined(yield* repo.read(path, "debug.log"))
        assert.strictEqual(yield* repo.read(path, "node_modules/x/index.js"), "kept\n")

        yield* git.checkoutClean(path, sha("feature"), keep)
        assert.deepStrictEqual(yield* git.state(path, keep), { head: sha("feature"), clean: true })
        assert.strictEqual(yield* repo.read(path, "src/app.txt"), "v1\n")
        assert.strictEqual(yield* repo.read(path, "feature.txt"), "feature\n")
        assert.strictEqual(yield* repo.read(path, "node_modules/x/index.js"), "kept\n")
        yield* git.checkoutClean(path, sha("second"), [])
        assert.isUndefined(yield* repo.read(path, "feature.txt"), "a file the commit does not have is gone")
        assert.isUndefined(yield* repo.read(path, "node_modules/x/index.js"), "without keep patterns, nothing is kept")
        assert.deepStrictEqual((yield* git.worktreeList(info))[1]!.head, sha("second"))
      }))

    test("checkoutClean at a commit that does not resolve fails and changes nothing", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        const path = wt(repo)
        yield* git.worktreeAdd(info, path, sha("second"), lock)
        yield* repo.write(path, "new.txt", "x\n")
        fails(yield* Effect.exit(git.checkoutClean(path, "f".repeat(40), [])), "CommandFailed")
        fails(yield* Effect.exit(git.checkoutClean(path, "--orphan", [])), "UnknownRef")
        assert.deepStrictEqual(yield* git.state(path, []), { head: sha("second"), clean: false })
        assert.strictEqual(yield* repo.read(path, "new.txt"), "x\n")
      }))

    test("safety: state and checkoutClean refuse the main checkout, a folder inside a worktree, a relative path, a broken worktree", (git, repo) =>
      Effect.gen(function*() {
        const { info, sha } = repo
        const path = wt(repo)
        yield* git.worktreeAdd(info, path, sha("second"), lock)
        yield* repo.write(info.root, "work-in-progress.txt", "mine\n")
        for (const where of [info.root, NodePath.join(info.root, "src"), NodePath.join(path, "src"), "w1", repo.outside]) {
          fails(yield* Effect.exit(git.state(where, [])), "UnsafeWorktree")
          fails(yield* Effect.exit(git.checkoutClean(where, sha("first"), [])), "UnsafeWorktree")
        }
        assert.strictEqual(yield* repo.read(info.root, "work-in-progress.txt"), "mine\n")
        assert.strictEqual(yield* repo.read(info.root, "src/app.txt"), "v2\n")
        yield* repo.breakWorktree(path)
        fails(yield* Effect.exit(git.state(path, [])), "UnsafeWorktree")
        fails(yield* Effect.exit(git.checkoutClean(path, sha("first"), [])), "UnsafeWorktree")
        assert.strictEqual(yield* repo.read(info.root, "work-in-progress.txt"), "mine\n")
      }))

    const control = backend.control
    if (control !== undefined) {
      const withControl = (title: string, body: (git: Git["Type"], repo: Fixture, control: MemoryControl) => Effect.Effect<void, unknown, R | Scope.Scope>) =>
        test(`(fake only) ${title}`, (git, repo) => Effect.flatMap(control, (c) => body(git, repo, c)))

      withControl("failures on demand: once per request, for the named path only, with the error asked for", (git, repo, c) =>
        Effect.gen(function*() {
          const { info, sha } = repo
          yield* c.failNext("worktreeAdd", wt(repo, 2))
          yield* git.worktreeAdd(info, wt(repo), sha("first"), lock)
          const error = fails(yield* Effect.exit(git.worktreeAdd(info, wt(repo, 2), sha("first"), lock)), "CommandFailed")
          assert.include(error.message, "failure injected")
          assert.deepStrictEqual((yield* git.worktreeList(info)).map((e) => e.path), [info.root, wt(repo)], "nothing was added")
          yield* git.worktreeAdd(info, wt(repo, 2), sha("first"), lock)

          yield* c.failNext("state")
          yield* c.failNext("state")
          fails(yield* Effect.exit(git.state(wt(repo), [])), "CommandFailed")
          fails(yield* Effect.exit(git.state(wt(repo, 2), [])), "CommandFailed")
          assert.isTrue((yield* git.state(wt(repo), [])).clean)

          yield* c.failNext("resolveRef", undefined, new GitError({ reason: "UnknownRef", subject: "main" }))
          fails(yield* Effect.exit(git.resolveRef(info, "main")), "UnknownRef")
          assert.strictEqual(yield* git.resolveRef(info, "main"), sha("second"))
          const calls = yield* c.calls
          assert.strictEqual(calls.worktreeAdd, 3)
          assert.strictEqual(calls.state, 3)
        }))
    }
  })
