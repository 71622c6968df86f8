/**
 * A real git repository in a temp folder, for tests that need git.
 *
 * `makeRepo` is scoped: the folder (repository, worktrees next to it, everything)
 * is removed when the scope closes.
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as NodePath from "node:path"

/** A test repository. Branch `main` (checked out, at `second`), tag `v1` (at `first`), branch `feature` (off `first`). */
export interface TestRepo {
  /** the temp folder holding the repository; worktree folders can go next to it */
  readonly dir: string
  /** the repository's top level (canonical path), `<dir>/repo` */
  readonly root: string
  /** `<root>/.git` */
  readonly commonDir: string
  /** first commit on main, tagged v1: README.md, package-lock.json (v1), src/app.txt (v1), .gitignore */
  readonly first: string
  /** main's head: src/app.txt changed to v2; package-lock.json unchanged */
  readonly second: string
  /** head of branch `feature` (off first): package-lock.json changed to v2, feature.txt added */
  readonly feature: string
}

const isolatedEnv = {
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "grove test",
  GIT_AUTHOR_EMAIL: "grove@example.invalid",
  GIT_COMMITTER_NAME: "grove test",
  GIT_COMMITTER_EMAIL: "grove@example.invalid",
  GIT_TERMINAL_PROMPT: "0"
}

/** Runs `git ...args` in `cwd`; fails unless it exits 0; returns stdout without the trailing newline. */
export const git = (cwd: string, ...args: Array<string>): Effect.Effect<string, Error, CommandExecutor.CommandExecutor> =>
  Effect.scoped(
    Effect.gen(function*() {
      const proc = yield* Command.start(
        Command.make("git", ...args).pipe(
          Command.workingDirectory(cwd),
          Command.env(isolatedEnv),
          Command.stdin(Stream.empty)
        )
      )
      const text = <E>(s: Stream.Stream<Uint8Array, E>) => s.pipe(Stream.decodeText(), Stream.mkString)
      const [stdout, stderr, code] = yield* Effect.all([text(proc.stdout), text(proc.stderr), proc.exitCode], {
        concurrency: "unbounded"
      })
      if (code !== 0) return yield* Effect.fail(new Error(`git ${args.join(" ")} in ${cwd} exited ${code}: ${stderr}`))
      return stdout.replace(/\n$/, "")
    })
  ).pipe(Effect.mapError((e) => (e instanceof Error ? e : new Error(String(e)))))

/** Creates the test repository in a fresh temp folder (removed with the scope). */
export const makeRepo: Effect.Effect<TestRepo, Error, Scope.Scope | FileSystem.FileSystem | CommandExecutor.CommandExecutor> =
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const tmp = yield* fs.makeTempDirectoryScoped({ prefix: "grove-git-" }).pipe(Effect.mapError((e) => new Error(e.message)))
    const dir = yield* fs.realPath(tmp).pipe(Effect.mapError((e) => new Error(e.message)))
    const root = NodePath.join(dir, "repo")
    const write = (file: string, content: string) =>
      Effect.gen(function*() {
        yield* fs.makeDirectory(NodePath.dirname(NodePath.join(root, file)), { recursive: true })
        yield* fs.writeFileString(NodePath.join(root, file), content)
      }).pipe(Effect.mapError((e) => new Error(e.message)))

    yield* fs.makeDirectory(root).pipe(Effect.mapError((e) => new Error(e.message)))
    yield* git(root, "init", "--quiet", "--initial-branch=main")
    yield* git(root, "config", "commit.gpgsign", "false")
    yield* git(root, "config", "tag.gpgsign", "false")
    yield* git(root, "config", "core.autocrlf", "false")

    yield* write("README.md", "# test repository\n")
    yield* write("package-lock.json", "{\"lockfileVersion\":1}\n")
    yield* write("src/app.txt", "v1\n")
    yield* write(".gitignore", "node_modules/\n*.log\ndist/\n")
    yield* git(root, "add", "--all")
    yield* git(root, "commit", "--quiet", "-m", "first")
    const first = yield* git(root, "rev-parse", "HEAD")
    yield* git(root, "tag", "v1")

    yield* git(root, "branch", "feature")
    yield* write("src/app.txt", "v2\n")
    yield* git(root, "commit", "--quiet", "-am", "second")
    const second = yield* git(root, "rev-parse", "HEAD")

    yield* git(root, "checkout", "--quiet", "feature")
    yield* write("package-lock.json", "{\"lockfileVersion\":2}\n")
    yield* write("feature.txt", "feature\n")
    yield* git(root, "add", "--all")
    yield* git(root, "commit", "--quiet", "-m", "feature")
    const feature = yield* git(root, "rev-parse", "HEAD")
    yield* git(root, "checkout", "--quiet", "main")

    return { dir, root, commonDir: NodePath.join(root, ".git"), first, second, feature }
  })

/** A repository with one empty commit on `main`, in a temp folder removed with the scope. */
export interface EmptyRepo {
  readonly dir: string
  readonly root: string
  readonly commonDir: string
}

/** Creates an `EmptyRepo`; `prefix` names the temp folder (e.g. "grove-crash-"). */
export const makeEmptyRepo = (prefix: string): Effect.Effect<EmptyRepo, Error, Scope.Scope | FileSystem.FileSystem | CommandExecutor.CommandExecutor> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.realPath(yield* fs.makeTempDirectoryScoped({ prefix }))
    const root = NodePath.join(dir, "repo")
    yield* git(dir, "init", "--quiet", "--initial-branch=main", "repo")
    yield* git(root, "commit", "--quiet", "--allow-empty", "-m", "init")
    return { dir, root, commonDir: NodePath.join(root, ".git") }
  }).pipe(Effect.mapError((e) => (e instanceof Error ? e : new Error(String(e)))))

/**
 * A superproject with a submodule `lib` (a local repository beside it), at two
 * commits: `a` holds lib at `libA`, `b` bumps it to `libB` (lib.txt "a\n" then
 * "b\n"; lib ignores `*.log`). Branch `main` is at `b`. In a temp folder removed
 * with the scope.
 */
export interface SuperRepo {
  readonly dir: string
  /** the superproject's top level */
  readonly root: string
  readonly commonDir: string
  /** the submodule's own repository (its URL in .gitmodules) */
  readonly lib: string
  readonly a: string
  readonly b: string
  readonly libA: string
  readonly libB: string
}

/** a local submodule URL needs the file protocol, which git 2.38.1+ refuses by default */
const fileProtocol = ["-c", "protocol.file.allow=always"]

/** Creates a `SuperRepo`. */
export const makeSuperRepo: Effect.Effect<SuperRepo, Error, Scope.Scope | FileSystem.FileSystem | CommandExecutor.CommandExecutor> =
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.realPath(yield* fs.makeTempDirectoryScoped({ prefix: "grove-submodule-" }))
    const lib = NodePath.join(dir, "lib")
    const root = NodePath.join(dir, "super")
    for (const repo of ["lib", "super"]) {
      yield* git(dir, "init", "--quiet", "--initial-branch=main", repo)
      yield* git(NodePath.join(dir, repo), "config", "commit.gpgsign", "false")
    }
    yield* fs.writeFileString(NodePath.join(lib, "lib.txt"), "a\n")
    yield* fs.writeFileString(NodePath.join(lib, ".gitignore"), "*.log\n")
    yield* git(lib, "add", "--all")
    yield* git(lib, "commit", "--quiet", "-m", "lib a")
    const libA = yield* git(lib, "rev-parse", "HEAD")

    yield* fs.writeFileString(NodePath.join(root, "README.md"), "# superproject\n")
    yield* git(root, ...fileProtocol, "submodule", "--quiet", "add", lib, "lib")
    yield* git(root, "add", "--all")
    yield* git(root, "commit", "--quiet", "-m", "a: lib at a")
    const a = yield* git(root, "rev-parse", "HEAD")

    yield* fs.writeFileString(NodePath.join(lib, "lib.txt"), "b\n")
    yield* git(lib, "commit", "--quiet", "-am", "lib b")
    const libB = yield* git(lib, "rev-parse", "HEAD")
    yield* git(NodePath.join(root, "lib"), "fetch", "--quiet", "origin")
    yield* git(NodePath.join(root, "lib"), "checkout", "--quiet", libB)
    yield* git(root, "commit", "--quiet", "-am", "b: lib bumped to b")
    const b = yield* git(root, "rev-parse", "HEAD")
    return { dir, root, commonDir: NodePath.join(root, ".git"), lib, a, b, libA, libB }
  }).pipe(Effect.mapError((e) => (e instanceof Error ? e : new Error(String(e)))))
