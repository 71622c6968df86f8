/**
 * Git as a service: the real layer over the git CLI and an in-memory layer with the
 * same semantics (and failures on demand) for tests of the logic above it.
 *
 * Every command grove runs has hooks off (`-c core.hooksPath=/dev/null`),
 * `GIT_LFS_SKIP_SMUDGE=1` and `GIT_TERMINAL_PROMPT=0`, and every destructive one
 * first checks that the folder it names is the top level of a linked worktree,
 * never the main checkout (SPEC §4). Needs git 2.31 or later.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import ignore from "ignore"
import * as ChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { GitError } from "./GroveError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface RepoInfo {
  /** top level of the main worktree */
  readonly root: string
  /** absolute path of the git common dir (shared by all worktrees) */
  readonly commonDir: string
  /** basename of root */
  readonly name: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface WorktreeEntry {
  readonly path: string
  readonly head: string | undefined
  /** the lock reason, when locked ("" when locked without one) */
  readonly locked: string | undefined
  readonly prunable: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface WorktreeState {
  readonly head: string
  /** no tracked change, no untracked and no ignored file outside the keep patterns */
  readonly clean: boolean
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Git extends Context.Tag("grove/Git")<Git, {
  /** the repository containing `dir` (any folder inside it, or inside one of its worktrees) */
  readonly repoInfo: (dir: string) => Effect.Effect<RepoInfo, GitError>
  /** the commit SHA a ref names (branch, tag, SHA, HEAD~2 …) */
  readonly resolveRef: (repo: RepoInfo, ref: string) => Effect.Effect<string, GitError>
  /** the branch the main worktree's HEAD is on (`main`), undefined when HEAD is detached */
  readonly headBranch: (repo: RepoInfo) => Effect.Effect<string | undefined, GitError>
  /** whether `path` (a folder or file, relative to the root) exists at commit `sha` */
  readonly pathExistsAt: (repo: RepoInfo, sha: string, path: string) => Effect.Effect<boolean, GitError>
  /** whether any of `paths` differ between two commits */
  readonly changedBetween: (repo: RepoInfo, from: string, to: string, paths: ReadonlyArray<string>) => Effect.Effect<boolean, GitError>
  /** adds a detached worktree at `sha`, locked with `lockReason`, hooks off; submodules initialised when asked */
  readonly worktreeAdd: (repo: RepoInfo, path: string, sha: string, options: { readonly lockReason: string; readonly submodules?: boolean }) => Effect.Effect<void, GitError>
  /** replaces a worktree's lock reason (e.g. `grove <session> kept` for one left on purpose) */
  readonly worktreeLock: (repo: RepoInfo, path: string, reason: string) => Effect.Effect<void, GitError>
  /** unlocks and removes a worktree; when git cannot, removes the folder and prunes */
  readonly worktreeRemove: (repo: RepoInfo, path: string) => Effect.Effect<void, GitError>
  readonly worktreeList: (repo: RepoInfo) => Effect.Effect<ReadonlyArray<WorktreeEntry>, GitError>
  readonly prune: (repo: RepoInfo) => Effect.Effect<void, GitError>
  /**
   * HEAD and cleanliness of a grove worktree (checked to be that worktree first); with
   * `submodules`, a submodule at another commit than recorded, not checked out, or with
   * anything changed, untracked or ignored inside makes it dirty
   */
  readonly state: (worktree: string, keep: ReadonlyArray<string>, options?: SubmoduleOptions) => Effect.Effect<WorktreeState, GitError>
  /**
   * moves a grove worktree to `sha` detached and removes every change, untracked and ignored
   * file outside `keep`; with `submodules`, also moves every submodule (recursively) to the
   * commit `sha` records and cleans inside it the same way
   */
  readonly checkoutClean: (worktree: string, sha: string, keep: ReadonlyArray<string>, options?: SubmoduleOptions) => Effect.Effect<void, GitError>
}>() {}

/**
 * Whether a worktree's submodules are grove's to keep in step (config `submodules`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SubmoduleOptions {
  readonly submodules?: boolean
}

// ---------------------------------------------------------------------------
// make: every operation derived from one primitive, `exec`
// ---------------------------------------------------------------------------

/**
 * What one git process returned.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecResult {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * The primitives the Git service is derived from. `exec` runs `git <args>` in `cwd`
 * with `env` added to the environment and reports the exit code (it fails only when
 * git could not be started). `removeTree` (`rm -rf`) and `realPath` are used only
 * when git cannot remove a worktree itself; they default to node:fs.
 *
 * @since 0.1.0
 * @category models
 */
export interface Primitives {
  readonly exec: (
    args: ReadonlyArray<string>,
    options: { readonly cwd: string; readonly env?: Readonly<Record<string, string>> }
  ) => Effect.Effect<ExecResult, GitError>
  readonly removeTree?: (path: string) => Effect.Effect<void, GitError>
  /** the canonical path of `path`, undefined when it does not exist */
  readonly realPath?: (path: string) => Effect.Effect<string | undefined, GitError>
}

/**
 * Options every grove git command starts with: no hooks.
 *
 * @since 0.1.0
 * @category constants
 */
export const baseArgs: ReadonlyArray<string> = ["-c", "core.hooksPath=/dev/null"]

/**
 * Options of the commands that clone or update submodules: a submodule with a local
 * URL (a path, `../lib.git` next to a local remote, `file://`) is refused by git
 * 2.38.1+ unless the file protocol is allowed. The submodules are the repository's
 * own and its tests run as code anyway, so grove allows it.
 *
 * @since 0.1.0
 * @category constants
 */
export const submoduleArgs: ReadonlyArray<string> = ["-c", "protocol.file.allow=always"]

/**
 * Options of the commands that write a whole tree (`worktree add`, `checkout --force`):
 * git's parallel checkout (2.32+; older gits ignore the key), one process per core,
 * for trees of at least 100 files (`checkout.thresholdForParallelism`). Making a
 * worktree is what the first test waits for.
 *
 * @since 0.1.0
 * @category constants
 */
export const parallelCheckout: ReadonlyArray<string> = ["-c", "checkout.workers=0"]

/**
 * Environment every grove git command runs with: no LFS downloads, no prompts.
 *
 * @since 0.1.0
 * @category constants
 */
export const baseEnv: Readonly<Record<string, string>> = { GIT_LFS_SKIP_SMUDGE: "1", GIT_TERMINAL_PROMPT: "0" }

const defaultRemoveTree = (path: string): Effect.Effect<void, GitError> =>
  Effect.try({
    try: () => NodeFs.rmSync(path, { recursive: true, force: true }),
    catch: (cause) => new GitError({ reason: "CommandFailed", subject: `rm -rf ${path}`, cause })
  })

const defaultRealPath = (path: string): Effect.Effect<string | undefined, GitError> =>
  Effect.try({
    try: () => NodeFs.existsSync(path) ? NodeFs.realpathSync(path) : undefined,
    catch: (cause) => new GitError({ reason: "CommandFailed", subject: `realpath ${path}`, cause })
  })

/** `child` is `parent` or inside it (absolute, normalised paths) */
const within = (child: string, parent: string): boolean =>
  child === parent || child.startsWith(parent.endsWith(NodePath.sep) ? parent : parent + NodePath.sep)

const lines = (text: string): Array<string> => text.split("\n").map((l) => l.replace(/\r$/, ""))

/** refs and SHAs go after options; one that looks like an option is refused */
const looksLikeOption = (arg: string): boolean => arg.startsWith("-")

/**
 * Parses `git worktree list --porcelain`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseWorktreeList = (text: string): Array<WorktreeEntry> => {
  const out: Array<WorktreeEntry> = []
  let current: { path: string; head: string | undefined; locked: string | undefined; prunable: boolean } | undefined
  const flush = () => {
    if (current !== undefined) out.push(current)
    current = undefined
  }
  for (const line of lines(text)) {
    if (line.startsWith("worktree ")) {
      flush()
      current = { path: line.slice("worktree ".length), head: undefined, locked: undefined, prunable: false }
    } else if (current === undefined) {
      continue
    } else if (line.startsWith("HEAD ")) {
      current.head = line.slice("HEAD ".length)
    } else if (line === "locked" || line.startsWith("locked ")) {
      current.locked = line === "locked" ? "" : line.slice("locked ".length)
    } else if (line === "prunable" || line.startsWith("prunable ")) {
      current.prunable = true
    } else if (line === "") {
      flush()
    }
  }
  flush()
  return out
}

/** is `path` a regular file (not a folder, not missing) */
const isFile = (path: string): boolean => {
  try {
    return NodeFs.statSync(path).isFile()
  } catch {
    return false
  }
}

const keepMatchers = new Map<string, (path: string) => boolean>()

/** `keep` as a predicate on repository-relative paths, with gitignore rules (as `git clean --exclude`); none without patterns */
const keptBy = (keep: ReadonlyArray<string>): ((path: string) => boolean) | undefined => {
  if (keep.length === 0) return undefined
  const id = keep.join("\u0000")
  const known = keepMatchers.get(id)
  if (known !== undefined) return known
  const matcher = ignore().add([...keep])
  const kept = (path: string) => matcher.ignores(path)
  keepMatchers.set(id, kept)
  return kept
}

/**
 * What `git status --porcelain=v2 --branch -z --untracked-files=normal --ignored=matching`
 * says of a worktree: `dirty` when something tracked changed or an untracked (`?`) or
 * ignored (`!`) file is not kept; `unsure` when, besides kept paths, only folders are
 * listed that are not kept themselves but may hold kept paths (status shows a folder
 * as one entry; only `git clean -n` knows whether it would remove it); else `clean`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseStatus = (
  output: string,
  kept: ((path: string) => boolean) | undefined
): { readonly head: string; readonly state: "clean" | "dirty" | "unsure" } => {
  let head = ""
  let dirty = false
  let unsure = false
  for (const record of output.split("\u0000")) {
    if (record.startsWith("# branch.oid ")) head = record.slice("# branch.oid ".length)
    else if (record.startsWith("1 ") || record.startsWith("2 ") || record.startsWith("u ")) dirty = true
    else if (record.startsWith("? ") || record.startsWith("! ")) {
      const path = record.slice(2)
      if (kept === undefined) dirty = true
      else if (!kept(path)) {
        if (path.endsWith("/")) unsure = true
        else dirty = true
      }
    }
    if (dirty && head !== "") break
  }
  return { head: head === "(initial)" ? "" : head, state: dirty ? "dirty" : unsure ? "unsure" : "clean" }
}

/**
 * What `git worktree add` says when it lost a race with another git command in the same
 * repository: it read another add's admin folder before it was complete
 * (`fatal: failed to read .git/worktrees/w14/commondir: Success`), met its lock file,
 * or a `git worktree remove` of the last worktree deleted the empty `.git/worktrees`
 * under it, before it made its folder there (`fatal: Invalid path
 * '/repo/.git/worktrees': No such file or directory`) or after (`fatal: could not open
 * '.git/worktrees/w1/gitdir' for writing: No such file or directory`) — both seen with
 * two grove runs in one repository.
 */
const concurrentAdd =
  /failed to read \S*worktrees\/[^/\s]+\/(commondir|gitdir)|\.lock': File exists|Invalid path '[^']*worktrees': No such file or directory|could not open '[^']*worktrees\/[^/']+\/\w+' for writing: No such file or directory/

/**
 * Builds the Git service from its primitives. Every command gets hooks off and the
 * LFS / prompt environment; exit codes are checked here, not by `exec`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (primitives: Primitives): Git["Type"] => {
  const removeTree = primitives.removeTree ?? defaultRemoveTree
  const realPath = primitives.realPath ?? defaultRealPath

  /** runs git; the exit code is the caller's to judge */
  const run = (cwd: string, args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = baseEnv) =>
    primitives.exec([...baseArgs, ...args], { cwd, env })

  const commandFailed = (cwd: string, args: ReadonlyArray<string>, result: ExecResult) =>
    new GitError({
      reason: "CommandFailed",
      subject: `git ${args.join(" ")} (in ${cwd})`,
      exitCode: result.exitCode,
      stderr: result.stderr
    })

  /** runs git and fails with CommandFailed on a non-zero exit */
  const runOk = (cwd: string, args: ReadonlyArray<string>, env?: Readonly<Record<string, string>>) =>
    Effect.flatMap(run(cwd, args, env), (result) =>
      result.exitCode === 0 ? Effect.succeed(result.stdout) : Effect.fail(commandFailed(cwd, args, result)))

  const unsafe = (worktree: string, topLevel: string, cause?: unknown) =>
    new GitError({ reason: "UnsafeWorktree", subject: worktree, stderr: topLevel, ...(cause === undefined ? {} : { cause }) })

  /**
   * The safety check of every destructive command: `worktree` must be the top level
   * of a linked worktree. A folder git climbs out of (a plain folder, a worktree whose
   * `.git` file is gone) or the main checkout is refused.
   */
  const ensureLinkedWorktree = (worktree: string, withHead = false): Effect.Effect<string, GitError> =>
    Effect.gen(function*() {
      if (!NodePath.isAbsolute(worktree)) return yield* Effect.fail(unsafe(worktree, "none: the path is not absolute"))
      const args = ["rev-parse", "--show-prefix", "--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir"]
      const result = yield* run(worktree, withHead ? [...args, "HEAD"] : args).pipe(
        Effect.mapError((cause) => unsafe(worktree, "none: the folder cannot be entered", cause))
      )
      if (result.exitCode !== 0) {
        // HEAD may be what failed: ask again without it to tell which
        if (withHead) {
          yield* ensureLinkedWorktree(worktree, false)
          return yield* Effect.fail(commandFailed(worktree, [...args, "HEAD"], result))
        }
        return yield* Effect.fail(unsafe(worktree, `none: not inside a git worktree (${result.stderr.trim()})`))
      }
      const [prefix = "", topLevel = "", gitDir = "", commonDir = "", head = ""] = lines(result.stdout)
      if (prefix !== "") return yield* Effect.fail(unsafe(worktree, topLevel))
      if (gitDir === commonDir) return yield* Effect.fail(unsafe(worktree, `${topLevel}, the main worktree`))
      return head
    })

  const repoInfo = (dir: string): Effect.Effect<RepoInfo, GitError> =>
    Effect.gen(function*() {
      const notARepo = (stderr: string, cause?: unknown) =>
        new GitError({ reason: "NotARepository", subject: dir, stderr, ...(cause === undefined ? {} : { cause }) })
      const result = yield* run(dir, ["rev-parse", "--path-format=absolute", "--git-common-dir", "--is-bare-repository"]).pipe(
        Effect.mapError((e) => notARepo(e.stderr ?? "", e))
      )
      if (result.exitCode !== 0) return yield* Effect.fail(notARepo(result.stderr))
      const [commonDir = "", bare = ""] = lines(result.stdout)
      let root: string
      if (bare === "true") {
        root = commonDir
      } else if (NodePath.basename(commonDir) === ".git") {
        root = NodePath.dirname(commonDir)
      } else {
        // a separate git dir: git's own answer for the main worktree comes first
        const main = parseWorktreeList(yield* runOk(dir, ["worktree", "list", "--porcelain"]))[0]
        if (main === undefined) return yield* Effect.fail(notARepo("no main worktree"))
        root = main.path
      }
      return { root, commonDir, name: NodePath.basename(root) }
    })

  const resolveRef = (repo: RepoInfo, ref: string): Effect.Effect<string, GitError> =>
    Effect.gen(function*() {
      const unknown = (stderr?: string) =>
        new GitError({ reason: "UnknownRef", subject: ref, ...(stderr ? { stderr } : {}) })
      if (ref.trim() === "" || looksLikeOption(ref)) return yield* Effect.fail(unknown())
      const result = yield* run(repo.root, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`])
      const sha = lines(result.stdout)[0] ?? ""
      if (result.exitCode !== 0 || sha === "") return yield* Effect.fail(unknown(result.stderr))
      return sha
    })

  const headBranch = (repo: RepoInfo): Effect.Effect<string | undefined, GitError> =>
    Effect.gen(function*() {
      // exit 1 without a word (-q): HEAD is detached
      const args = ["symbolic-ref", "--short", "-q", "HEAD"]
      const result = yield* run(repo.root, args)
      if (result.exitCode === 1) return undefined
      if (result.exitCode !== 0) return yield* Effect.fail(commandFailed(repo.root, args, result))
      return lines(result.stdout)[0] || undefined
    })

  const pathExistsAt = (repo: RepoInfo, sha: string, path: string): Effect.Effect<boolean, GitError> =>
    Effect.gen(function*() {
      if (looksLikeOption(sha)) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: sha }))
      const normal = NodePath.posix.normalize(path.replaceAll("\\", "/")).replace(/^\.\/?/, "").replace(/\/+$/, "")
      const object = normal === "" || normal === "." ? `${sha}^{tree}` : `${sha}:${normal}`
      const result = yield* run(repo.root, ["cat-file", "-e", object])
      return result.exitCode === 0
    })

  const changedBetween = (repo: RepoInfo, from: string, to: string, paths: ReadonlyArray<string>): Effect.Effect<boolean, GitError> =>
    Effect.gen(function*() {
      if (paths.length === 0 || from === to) return false
      if (looksLikeOption(from)) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: from }))
      if (looksLikeOption(to)) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: to }))
      const args = ["diff", "--quiet", "--no-ext-diff", "--no-textconv", from, to, "--", ...paths]
      const result = yield* run(repo.root, args)
      if (result.exitCode === 0) return false
      if (result.exitCode === 1) return true
      return yield* Effect.fail(commandFailed(repo.root, args, result))
    })

  const worktreeList = (repo: RepoInfo): Effect.Effect<ReadonlyArray<WorktreeEntry>, GitError> =>
    Effect.map(runOk(repo.root, ["worktree", "list", "--porcelain"]), parseWorktreeList)

  const prune = (repo: RepoInfo): Effect.Effect<void, GitError> =>
    Effect.asVoid(runOk(repo.root, ["worktree", "prune"]))

  const worktreeLock = (repo: RepoInfo, path: string, reason: string): Effect.Effect<void, GitError> =>
    run(repo.root, ["worktree", "unlock", path]).pipe(
      Effect.ignore,
      Effect.zipRight(runOk(repo.root, ["worktree", "lock", "--reason", reason, path])),
      Effect.asVoid
    )

  const worktreeRemove = (repo: RepoInfo, path: string): Effect.Effect<void, GitError> =>
    Effect.gen(function*() {
      if (!NodePath.isAbsolute(path)) return yield* Effect.fail(unsafe(path, "none: the path is not absolute"))
      const unlock = run(repo.root, ["worktree", "unlock", path]).pipe(Effect.ignore)
      yield* unlock
      const removed = yield* run(repo.root, ["worktree", "remove", "--force", "--force", path])
      if (removed.exitCode === 0) return
      // git cannot remove it (e.g. its .git file is gone): rm -rf the folder and prune,
      // but only a folder git has registered as a linked worktree of this repository
      const real = yield* realPath(path)
      const target = real ?? NodePath.resolve(path)
      if (within(repo.root, target) || within(target, repo.root) || within(target, repo.commonDir) || within(repo.commonDir, target)) {
        return yield* Effect.fail(unsafe(path, `${repo.root}: the folder is, holds or is inside the repository`))
      }
      if (real !== undefined) {
        const entries = yield* worktreeList(repo)
        const registered = entries.slice(1).some((e) => e.path === real || e.path === path)
        if (!registered) {
          return yield* Effect.fail(
            unsafe(path, `none: not a worktree of ${repo.root} (${removed.stderr.trim()}); remove it yourself if it is not needed`)
          )
        }
        yield* removeTree(real)
      }
      yield* unlock
      yield* prune(repo)
    })

  const worktreeAdd = (
    repo: RepoInfo,
    path: string,
    sha: string,
    options: { readonly lockReason: string; readonly submodules?: boolean }
  ): Effect.Effect<void, GitError> =>
    Effect.gen(function*() {
      if (looksLikeOption(sha)) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: sha }))
      yield* runOk(repo.root, [...parallelCheckout, "worktree", "add", "--detach", "--lock", "--reason", options.lockReason, path, sha]).pipe(
        // another `git worktree add` in this repository at the same moment (a second grove)
        // can make this one read its half-made admin folder and give up: try again, while
        // git has left nothing at `path`
        Effect.retry({
          schedule: Schedule.spaced("100 millis"),
          times: 4,
          while: (e) => e.stderr !== undefined && concurrentAdd.test(e.stderr) && !NodeFs.existsSync(path)
        })
      )
      if (options.submodules === true) {
        yield* runOk(path, [...submoduleArgs, "submodule", "update", "--init", "--recursive"]).pipe(
          Effect.tapError(() => worktreeRemove(repo, path).pipe(Effect.ignore))
        )
      }
    })

  /**
   * One `git status` (it runs before every test): HEAD, tracked changes, and untracked
   * and ignored paths outside `keep`, i.e. what `checkoutClean` would reset or remove.
   * `keep` patterns are matched as `git clean --exclude` does, with gitignore rules;
   * status lists an untracked or ignored folder as one entry, so a folder that is not
   * kept itself but may hold kept paths is left to `git clean -n` (a second process,
   * only then). Read-only, so the safety check is lighter than a destructive command's:
   * the folder must hold a `.git` file (a linked worktree's top level; the main
   * checkout has a folder there) and git may not look above it.
   *
   * With `submodules`, status also reports every submodule at another commit or with
   * changed or untracked content (whatever `.gitmodules` says to ignore), and, when
   * that finds nothing, two more commands look for what it cannot see: a submodule
   * not checked out (`git submodule status`) and ignored files inside one
   * (`git clean -n` in each).
   */
  const state = (worktree: string, keep: ReadonlyArray<string>, options: SubmoduleOptions = {}): Effect.Effect<WorktreeState, GitError> =>
    Effect.gen(function*() {
      if (!NodePath.isAbsolute(worktree)) return yield* Effect.fail(unsafe(worktree, "none: the path is not absolute"))
      if (!isFile(NodePath.join(worktree, ".git"))) {
        return yield* Effect.fail(unsafe(worktree, "none: no .git file there, so it is not the top level of a linked worktree"))
      }
      const env = { ...baseEnv, GIT_CEILING_DIRECTORIES: NodePath.dirname(worktree) }
      const submodules = options.submodules === true
      const args = ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal", "--ignored=matching"]
      const status = parseStatus(
        yield* runOk(worktree, submodules ? [...args, "--ignore-submodules=none"] : args, env),
        keptBy(keep)
      )
      if (status.state === "dirty") return { head: status.head, clean: false }
      const excludes = keep.map((p) => `--exclude=${p}`)
      if (status.state === "unsure") {
        const removable = yield* runOk(worktree, ["clean", "-n", "-ffdx", ...excludes], env)
        if (removable.trim() !== "") return { head: status.head, clean: false }
      }
      if (!submodules) return { head: status.head, clean: true }
      // each line starts with ' ' when the submodule is checked out at the recorded commit
      const listed = yield* runOk(worktree, ["submodule", "status", "--recursive"], env)
      if (lines(listed).some((l) => l !== "" && !l.startsWith(" "))) return { head: status.head, clean: false }
      if (listed.trim() === "") return { head: status.head, clean: true }
      const ignored = yield* runOk(worktree, ["submodule", "foreach", "--quiet", "--recursive", "git", "clean", "-n", "-ffdx", ...excludes], env)
      return { head: status.head, clean: ignored.trim() === "" }
    })

  /**
   * `checkout --force`, `reset --hard`, `clean -ffdx` (which also removes the folder of a
   * submodule the commit no longer has); with `submodules`, then
   * `submodule update --init --recursive --force` (every submodule to its recorded
   * commit, local changes thrown away) and `git clean -ffdx` inside each submodule, with
   * the same `keep` patterns. Without it, submodules stay where they were.
   */
  const checkoutClean = (worktree: string, sha: string, keep: ReadonlyArray<string>, options: SubmoduleOptions = {}): Effect.Effect<void, GitError> =>
    Effect.gen(function*() {
      if (looksLikeOption(sha)) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: sha }))
      yield* ensureLinkedWorktree(worktree)
      const excludes = keep.map((p) => `--exclude=${p}`)
      yield* runOk(worktree, ["checkout", "--quiet", "--force", "--detach", sha, "--"])
      yield* runOk(worktree, ["reset", "--quiet", "--hard"])
      yield* runOk(worktree, ["clean", "-q", "-ffdx", ...excludes])
      if (options.submodules !== true) return
      yield* runOk(worktree, [...submoduleArgs, "submodule", "update", "--quiet", "--init", "--recursive", "--force"])
      yield* runOk(worktree, ["submodule", "foreach", "--quiet", "--recursive", "git", "clean", "-q", "-ffdx", ...excludes])
    })

  return {
    repoInfo,
    resolveRef,
    headBranch,
    pathExistsAt,
    changedBetween,
    worktreeAdd,
    worktreeLock,
    worktreeRemove,
    worktreeList,
    prune,
    state,
    checkoutClean
  }
}

// ---------------------------------------------------------------------------
// layer: the git CLI through @effect/platform's Command
// ---------------------------------------------------------------------------

/** variables that would point git at another repository, index or work tree */
const redirectingEnv = [
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_INDEX_FILE",
  "GIT_COMMON_DIR",
  "GIT_OBJECT_DIRECTORY",
  "GIT_ALTERNATE_OBJECT_DIRECTORIES",
  "GIT_NAMESPACE",
  "GIT_PREFIX",
  "GIT_QUARANTINE_PATH"
]

/**
 * `exec` over the `git` binary (`execFile`): both pipes are read to the end, stdin is
 * empty, and variables that would redirect git (`GIT_DIR`, `GIT_WORK_TREE`,
 * `GIT_INDEX_FILE`, …, e.g. when grove runs from a git hook) are removed from the
 * environment. Interrupting it kills git.
 *
 * Not `@effect/platform`'s Command: its streams made a git call cost ≈ 27 ms of CPU
 * against ≈ 8 ms here, and grove runs git before every test (issue 6, B3).
 *
 * @since 0.1.0
 * @category constructors
 */
export const execCli: Primitives["exec"] = (args, options) =>
  Effect.async<ExecResult, GitError>((resume, signal) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env }
    for (const name of redirectingEnv) delete env[name]
    const failed = (cause: Error) =>
      new GitError({ reason: "CommandFailed", subject: `git ${args.join(" ")} (in ${options.cwd})`, stderr: cause.message, cause })
    try {
      const child = ChildProcess.execFile(
        "git",
        args,
        { cwd: options.cwd, env, encoding: "utf8", maxBuffer: outputLimit, signal },
        (error, stdout, stderr) => {
          if (error === null) return resume(Effect.succeed({ exitCode: 0, stdout, stderr }))
          // a non-zero exit is the caller's to judge; a spawn failure, a signal or too much output is not
          const code = (error as { readonly code?: unknown }).code
          resume(typeof code === "number" ? Effect.succeed({ exitCode: code, stdout, stderr }) : Effect.fail(failed(error)))
        }
      )
      // a stream error (EPIPE, or a stream destroyed when the spawn failed) is not an
      // exception to crash on: the callback above reports how git ended
      for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.on("error", () => undefined)
      child.stdin?.end()
    } catch (cause) {
      resume(Effect.fail(failed(cause as Error)))
    }
  })

/** what git may print to one pipe before grove gives up on it */
const outputLimit = 256 * 1024 * 1024

/**
 * The real Git: the `git` CLI (2.31 or later).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Git> = Layer.succeed(Git, make({ exec: execCli }))

// ---------------------------------------------------------------------------
// layerMemory: the same semantics in memory, with failures on demand
// ---------------------------------------------------------------------------

/**
 * A repository of the in-memory Git.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryRepo {
  /** top level of the main worktree, e.g. "/repo" */
  readonly root: string
  /** default `<root>/.git` */
  readonly commonDir?: string
  /** ref name → commit SHA, e.g. `{ main: "sha1", v1: "sha0" }`; a `HEAD` key is a detached HEAD at that SHA */
  readonly refs: Readonly<Record<string, string>>
  /**
   * The branch checked out in the main worktree (a key of `refs`): HEAD names it and
   * moves with it, as in git. Default: main, master or the first ref, unless `refs`
   * has a `HEAD` (detached).
   */
  readonly head?: string
  /** per commit SHA, its files (path → content); a known commit not listed has none */
  readonly files?: Readonly<Record<string, Readonly<Record<string, string>>>>
  /** per commit SHA, its first parent, for `<ref>~<n>` and `<ref>^`; a commit not listed has none */
  readonly parents?: Readonly<Record<string, string>>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  readonly repos: ReadonlyArray<MemoryRepo>
}

/**
 * The name of one operation of the Git service.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = keyof Git["Type"]

/**
 * A worktree of the in-memory Git, for assertions.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryWorktree {
  readonly path: string
  /** root of the repository it belongs to */
  readonly repo: string
  readonly head: string
  /** a tracked file changed or gone, an untracked file, or `control.dirty` (no `keep` patterns applied) */
  readonly dirty: boolean
  readonly locked: string | undefined
  /** broken with `breakWorktree`: state and checkoutClean fail there, as after its `.git` file was deleted */
  readonly broken: boolean
}

/**
 * The handle tests use to steer and inspect the in-memory Git.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryControl {
  /** the next call of `operation` (on `path` when given: the worktree, or the repository root) fails with `error`, default CommandFailed; calls stack */
  readonly failNext: (operation: Operation, path?: string, error?: GitError) => Effect.Effect<void>
  /** a test wrote, changed or deleted files in the worktree (without saying which: dirty until the next checkoutClean) */
  readonly dirty: (path: string) => Effect.Effect<void>
  /** a test wrote `file` (relative to the worktree) in the worktree at `path` */
  readonly writeFile: (path: string, file: string, content: string) => Effect.Effect<void>
  /** a test deleted `file` in the worktree at `path` */
  readonly removeFile: (path: string, file: string) => Effect.Effect<void>
  /** the content of `file` in the worktree at `path`, undefined when there is none (or no such worktree) */
  readonly readFile: (path: string, file: string) => Effect.Effect<string | undefined>
  /** adds a repository, as a test creating one on disk would */
  readonly addRepo: (repo: MemoryRepo) => Effect.Effect<void>
  /** as if the worktree's `.git` file were deleted: state and checkoutClean fail there; remove still works */
  readonly breakWorktree: (path: string) => Effect.Effect<void>
  /** points a ref at a commit (the commit becomes known), e.g. a branch moving mid-run; `HEAD` detaches HEAD there */
  readonly setRef: (root: string, ref: string, sha: string, files?: Readonly<Record<string, string>>) => Effect.Effect<void>
  /** every linked worktree, in creation order */
  readonly worktrees: Effect.Effect<ReadonlyArray<MemoryWorktree>>
  /** how many times each operation was called (failed calls included) */
  readonly calls: Effect.Effect<Readonly<Record<Operation, number>>>
}

/**
 * The control handle of `layerMemory`.
 *
 * @since 0.1.0
 * @category tags
 */
export class GitMemory extends Context.Tag("grove/GitMemory")<GitMemory, MemoryControl>() {}

interface MemRepoState {
  readonly info: RepoInfo
  /** branches and tags; HEAD is `head` */
  readonly refs: Map<string, string>
  /** the main worktree's HEAD: on a branch (a key of refs), or detached at a commit */
  head: { readonly branch: string } | { readonly detached: string } | undefined
  readonly files: Map<string, Readonly<Record<string, string>>>
  readonly parents: Map<string, string>
}

interface MemWorktreeState {
  readonly path: string
  readonly repo: string
  head: string
  /** `control.dirty`: changed in a way not modelled file by file */
  dirty: boolean
  /** what is on disk there: path (relative) → content */
  files: Map<string, string>
  locked: string | undefined
  broken: boolean
}

const operations: ReadonlyArray<Operation> = [
  "repoInfo",
  "resolveRef",
  "headBranch",
  "pathExistsAt",
  "changedBetween",
  "worktreeAdd",
  "worktreeLock",
  "worktreeRemove",
  "worktreeList",
  "prune",
  "state",
  "checkoutClean"
]

const normalizePath = (p: string): string => {
  const n = NodePath.posix.normalize(p.replaceAll("\\", "/"))
  return n.length > 1 ? n.replace(/\/+$/, "") : n
}

const normalizeRelative = (p: string): string =>
  normalizePath(p).replace(/^\.\/?/, "").replace(/^\/+/, "")

/**
 * Builds an in-memory Git and its control handle. Worktree paths, refs, per-commit
 * files, the files in each worktree, lock reasons and the safety checks behave like
 * the real ones (test/GitSuite.ts holds both to the same contract); errors have the
 * same types and reasons. A worktree is clean when its tracked files are those of its
 * commit and every other file matches a `keep` pattern (untracked and ignored files
 * are alike to grove: `checkoutClean` removes both). It has no submodules: the
 * `submodules` options change nothing (a change inside a submodule is `dirty` like
 * any other).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options: MemoryOptions): Effect.Effect<{ readonly git: Git["Type"]; readonly control: MemoryControl }> =>
  Effect.sync(() => {
    const repos = new Map<string, MemRepoState>()
    const addRepo = (r: MemoryRepo) => {
      const root = normalizePath(r.root)
      const refs = new Map(Object.entries(r.refs))
      const detached = refs.get("HEAD")
      refs.delete("HEAD")
      const branch = r.head ?? (detached !== undefined ? undefined : ["main", "master", ...refs.keys()].find((b) => refs.has(b)))
      if (branch !== undefined && !refs.has(branch)) throw new Error(`GitMemory: head ${branch} is not a ref of ${root}`)
      repos.set(root, {
        info: { root, commonDir: normalizePath(r.commonDir ?? `${root}/.git`), name: NodePath.posix.basename(root) },
        refs,
        head: branch !== undefined ? { branch } : detached !== undefined ? { detached } : undefined,
        files: new Map(Object.entries(r.files ?? {})),
        parents: new Map(Object.entries(r.parents ?? {}))
      })
    }
    options.repos.forEach(addRepo)
    const worktrees = new Map<string, MemWorktreeState>()
    const failures: Array<{ readonly operation: Operation; readonly path: string | undefined; readonly error: GitError | undefined }> = []
    const calls = Object.fromEntries(operations.map((o) => [o, 0])) as Record<Operation, number>

    /** counts the call and fails it when a failure was asked for */
    const enter = (operation: Operation, path: string): Effect.Effect<void, GitError> =>
      Effect.suspend(() => {
        calls[operation]++
        const p = normalizePath(path)
        const i = failures.findIndex((f) => f.operation === operation && (f.path === undefined || normalizePath(f.path) === p))
        if (i < 0) return Effect.void
        const [f] = failures.splice(i, 1)
        return Effect.fail(
          f?.error ?? new GitError({ reason: "CommandFailed", subject: `git ${operation} ${p}`, exitCode: 128, stderr: "fatal: failure injected by GitMemory.failNext" })
        )
      })

    const findRepo = (repo: RepoInfo): Effect.Effect<MemRepoState, GitError> => {
      const r = repos.get(normalizePath(repo.root))
      return r === undefined ? Effect.fail(new GitError({ reason: "NotARepository", subject: repo.root })) : Effect.succeed(r)
    }

    /** the commit HEAD is at, through its branch */
    const headSha = (r: MemRepoState): string | undefined =>
      r.head === undefined ? undefined : "branch" in r.head ? r.refs.get(r.head.branch) : r.head.detached

    const isCommit = (r: MemRepoState, sha: string) =>
      r.files.has(sha) || [...r.refs.values()].includes(sha) || headSha(r) === sha
    const filesAt = (r: MemRepoState, sha: string) => r.files.get(sha) ?? {}

    /** `<ref>~<n>`, `<ref>^` … as git reads them: first parents */
    const lookup = (r: MemRepoState, ref: string): string | undefined => {
      const ancestry = /^(.+?)((?:~\d*|\^1?)+)$/.exec(ref)
      if (ancestry === null) return lookupName(r, ref)
      let sha = lookupName(r, ancestry[1]!)
      for (const step of ancestry[2]!.match(/~\d*|\^1?/g) ?? []) {
        const n = step.startsWith("~") && step.length > 1 ? Number(step.slice(1)) : 1
        for (let i = 0; i < n && sha !== undefined; i++) sha = r.parents.get(sha)
      }
      return sha
    }

    const lookupName = (r: MemRepoState, ref: string): string | undefined => {
      if (ref === "" || looksLikeOption(ref)) return undefined
      if (ref === "HEAD") return headSha(r)
      const direct = r.refs.get(ref) ?? r.refs.get(ref.replace(/^refs\/(heads|tags)\//, ""))
      if (direct !== undefined) return direct
      if (isCommit(r, ref)) return ref
      if (/^[0-9a-f]{4,}$/i.test(ref)) {
        const head = headSha(r)
        const all = new Set([...r.files.keys(), ...r.refs.values(), ...(head === undefined ? [] : [head])])
        const matches = [...all].filter((sha) => sha.startsWith(ref))
        if (matches.length === 1) return matches[0]
      }
      return undefined
    }

    /** what git makes of a commit argument: one that looks like an option is refused first, as the real layer does */
    const commitOrFail = (r: MemRepoState, sha: string, command: string): Effect.Effect<string, GitError> => {
      if (looksLikeOption(sha)) return Effect.fail(new GitError({ reason: "UnknownRef", subject: sha }))
      const resolved = lookup(r, sha)
      return resolved !== undefined
        ? Effect.succeed(resolved)
        : Effect.fail(new GitError({ reason: "CommandFailed", subject: command, exitCode: 128, stderr: `fatal: invalid reference: ${sha}` }))
    }

    /** a worktree's files as `checkoutClean` leaves them: the commit's, plus the untracked files `keep` protects */
    const checkedOut = (r: MemRepoState, sha: string, before: ReadonlyMap<string, string>, kept: ((path: string) => boolean) | undefined) => {
      const tracked = filesAt(r, sha)
      const files = new Map(Object.entries(tracked))
      if (kept !== undefined) {
        for (const [file, content] of before) if (!(file in tracked) && kept(file)) files.set(file, content)
      }
      return files
    }

    /** what `state` reads: a tracked file changed or gone, or another file that no `keep` pattern matches */
    const isClean = (r: MemRepoState, wt: MemWorktreeState, kept: ((path: string) => boolean) | undefined) => {
      if (wt.dirty) return false
      const tracked = filesAt(r, wt.head)
      for (const [file, content] of Object.entries(tracked)) if (wt.files.get(file) !== content) return false
      for (const file of wt.files.keys()) if (!(file in tracked) && (kept === undefined || !kept(file))) return false
      return true
    }

    /** the real safety check: a linked worktree's top level, never the main checkout or a folder git climbs out of */
    const linked = (path: string): Effect.Effect<MemWorktreeState, GitError> => {
      const p = normalizePath(path)
      const wt = worktrees.get(p)
      if (wt !== undefined && !wt.broken) return Effect.succeed(wt)
      const owner = [...repos.values()].find((r) => within(p, r.info.root))
      const top = owner !== undefined
        ? (owner.info.root === p ? `${p}, the main worktree` : owner.info.root)
        : [...worktrees.values()].find((w) => !w.broken && within(p, w.path))?.path ?? "none: not inside a git worktree"
      return Effect.fail(new GitError({ reason: "UnsafeWorktree", subject: path, stderr: top }))
    }

    const git: Git["Type"] = {
      repoInfo: (dir) =>
        Effect.gen(function*() {
          yield* enter("repoInfo", dir)
          const p = normalizePath(dir)
          const direct = [...repos.values()].find((r) => within(p, r.info.root))
          if (direct !== undefined) return direct.info
          const wt = [...worktrees.values()].find((w) => !w.broken && within(p, w.path))
          const viaWorktree = wt === undefined ? undefined : repos.get(wt.repo)
          if (viaWorktree !== undefined) return viaWorktree.info
          return yield* Effect.fail(new GitError({ reason: "NotARepository", subject: dir }))
        }),
      resolveRef: (repo, ref) =>
        Effect.gen(function*() {
          yield* enter("resolveRef", repo.root)
          const r = yield* findRepo(repo)
          const sha = lookup(r, ref)
          if (sha === undefined) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: ref }))
          return sha
        }),
      headBranch: (repo) =>
        Effect.gen(function*() {
          yield* enter("headBranch", repo.root)
          const r = yield* findRepo(repo)
          return r.head !== undefined && "branch" in r.head ? r.head.branch : undefined
        }),
      pathExistsAt: (repo, sha, path) =>
        Effect.gen(function*() {
          yield* enter("pathExistsAt", repo.root)
          const r = yield* findRepo(repo)
          if (looksLikeOption(sha)) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: sha }))
          const commit = lookup(r, sha)
          if (commit === undefined) return false
          const rel = normalizeRelative(path)
          if (rel === "" || rel === ".") return true
          return Object.keys(filesAt(r, commit)).some((f) => f === rel || f.startsWith(rel + "/"))
        }),
      changedBetween: (repo, from, to, paths) =>
        Effect.gen(function*() {
          yield* enter("changedBetween", repo.root)
          const r = yield* findRepo(repo)
          if (paths.length === 0 || from === to) return false
          const a = filesAt(r, yield* commitOrFail(r, from, `git diff ${from} ${to}`))
          const b = filesAt(r, yield* commitOrFail(r, to, `git diff ${from} ${to}`))
          const under = (f: string) => paths.some((p) => {
            const rel = normalizeRelative(p)
            return rel === "" || rel === "." || f === rel || f.startsWith(rel + "/")
          })
          const names = new Set([...Object.keys(a), ...Object.keys(b)].filter(under))
          return [...names].some((f) => a[f] !== b[f])
        }),
      worktreeAdd: (repo, path, sha, opts) =>
        Effect.gen(function*() {
          yield* enter("worktreeAdd", path)
          const r = yield* findRepo(repo)
          const p = normalizePath(path)
          const command = `git worktree add --detach --lock --reason ${opts.lockReason} ${p} ${sha}`
          const commit = yield* commitOrFail(r, sha, command)
          if (worktrees.has(p) || within(r.info.root, p)) {
            return yield* Effect.fail(
              new GitError({ reason: "CommandFailed", subject: command, exitCode: 128, stderr: `fatal: '${p}' already exists` })
            )
          }
          worktrees.set(p, {
            path: p,
            repo: r.info.root,
            head: commit,
            dirty: false,
            files: new Map(Object.entries(filesAt(r, commit))),
            locked: opts.lockReason,
            broken: false
          })
        }),
      worktreeLock: (repo, path, reason) =>
        Effect.gen(function*() {
          yield* enter("worktreeLock", path)
          const r = yield* findRepo(repo)
          const wt = worktrees.get(normalizePath(path))
          if (wt === undefined || wt.repo !== r.info.root) {
            return yield* Effect.fail(
              new GitError({ reason: "CommandFailed", subject: `git worktree lock ${path}`, exitCode: 128, stderr: `fatal: '${path}' is not a working tree` })
            )
          }
          wt.locked = reason
        }),
      worktreeRemove: (repo, path) =>
        Effect.gen(function*() {
          yield* enter("worktreeRemove", path)
          const r = yield* findRepo(repo)
          if (!NodePath.isAbsolute(path)) {
            return yield* Effect.fail(new GitError({ reason: "UnsafeWorktree", subject: path, stderr: "none: the path is not absolute" }))
          }
          const p = normalizePath(path)
          const wt = worktrees.get(p)
          if (wt !== undefined && wt.repo === r.info.root) {
            worktrees.delete(p)
            return
          }
          // what git cannot remove is rm -rf'd only outside the repository (as the real fallback)
          if (within(r.info.root, p) || within(p, r.info.root)) {
            return yield* Effect.fail(
              new GitError({ reason: "UnsafeWorktree", subject: path, stderr: `${r.info.root}: the folder is, holds or is inside the repository` })
            )
          }
        }),
      worktreeList: (repo) =>
        Effect.gen(function*() {
          yield* enter("worktreeList", repo.root)
          const r = yield* findRepo(repo)
          const main: WorktreeEntry = { path: r.info.root, head: headSha(r), locked: undefined, prunable: false }
          return [
            main,
            ...[...worktrees.values()].filter((w) => w.repo === r.info.root).map((w): WorktreeEntry => ({
              path: w.path,
              head: w.head,
              locked: w.locked,
              prunable: w.broken && w.locked === undefined
            }))
          ]
        }),
      prune: (repo) =>
        Effect.gen(function*() {
          yield* enter("prune", repo.root)
          const r = yield* findRepo(repo)
          for (const w of [...worktrees.values()]) {
            if (w.repo === r.info.root && w.broken && w.locked === undefined) worktrees.delete(w.path)
          }
        }),
      // per test: one generator function, not one per call (Runner.ts says why)
      state: Effect.fnUntraced(function*(worktree: string, keep: ReadonlyArray<string>) {
        yield* enter("state", worktree)
        const wt = yield* linked(worktree)
        const r = repos.get(wt.repo)
        if (r === undefined) return yield* Effect.fail(new GitError({ reason: "NotARepository", subject: worktree }))
        return { head: wt.head, clean: isClean(r, wt, keptBy(keep)) }
      }),
      checkoutClean: (worktree, sha, keep) =>
        Effect.gen(function*() {
          yield* enter("checkoutClean", worktree)
          if (looksLikeOption(sha)) return yield* Effect.fail(new GitError({ reason: "UnknownRef", subject: sha }))
          const wt = yield* linked(worktree)
          const r = repos.get(wt.repo)
          if (r === undefined) return yield* Effect.fail(new GitError({ reason: "NotARepository", subject: worktree }))
          const commit = yield* commitOrFail(r, sha, `git checkout --force --detach ${sha}`)
          wt.files = checkedOut(r, commit, wt.files, keptBy(keep))
          wt.head = commit
          wt.dirty = false
        })
    }

    const mark = (path: string, f: (w: MemWorktreeState) => void) =>
      Effect.sync(() => {
        const w = worktrees.get(normalizePath(path))
        if (w === undefined) throw new Error(`GitMemory: no worktree at ${path}`)
        f(w)
      })

    const control: MemoryControl = {
      failNext: (operation, path, error) => Effect.sync(() => void failures.push({ operation, path, error })),
      dirty: (path) => mark(path, (w) => (w.dirty = true)),
      writeFile: (path, file, content) => mark(path, (w) => void w.files.set(normalizeRelative(file), content)),
      removeFile: (path, file) => mark(path, (w) => void w.files.delete(normalizeRelative(file))),
      readFile: (path, file) => Effect.sync(() => worktrees.get(normalizePath(path))?.files.get(normalizeRelative(file))),
      addRepo: (repo) => Effect.sync(() => addRepo(repo)),
      breakWorktree: (path) => mark(path, (w) => (w.broken = true)),
      setRef: (root, ref, sha, files) =>
        Effect.sync(() => {
          const r = repos.get(normalizePath(root))
          if (r === undefined) throw new Error(`GitMemory: no repository at ${root}`)
          if (ref === "HEAD") r.head = { detached: sha }
          else r.refs.set(ref, sha)
          if (files !== undefined) r.files.set(sha, files)
        }),
      worktrees: Effect.sync(() =>
        [...worktrees.values()].map(({ files: _, ...w }): MemoryWorktree => {
          const r = repos.get(w.repo)
          return { ...w, dirty: r === undefined ? w.dirty : !isClean(r, { ...w, files: _ }, undefined) }
        })
      ),
      calls: Effect.sync(() => ({ ...calls }))
    }
    return { git, control }
  })

/**
 * An in-memory Git with the same semantics as the real one, plus its `GitMemory`
 * control handle (failures on demand, dirty and broken worktrees, call counts), e.g.
 * `Git.layerMemory({ repos: [{ root: "/repo", refs: { main: "sha1" } }] })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: MemoryOptions): Layer.Layer<Git | GitMemory> =>
  Layer.effectContext(
    Effect.map(makeMemory(options), ({ control, git }) => Context.make(Git, git).pipe(Context.add(GitMemory, control)))
  )
