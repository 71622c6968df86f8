/**
 * The facts of one session, fixed when it starts: its id, the repository, the base
 * ref resolved to a SHA, and the folders it owns.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as NodePath from "node:path"
import { GroveConfigTag } from "./Config.js"
import { Git, type RepoInfo } from "./Git.js"
import { GitError } from "./GroveError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionInfo {
  readonly id: string
  readonly repo: RepoInfo
  readonly baseRef: string
  readonly baseSha: string
  /**
   * The branch HEAD was on when the session started, for a base ref of HEAD;
   * undefined when HEAD was detached (or the base ref names something else). For
   * display: `baseRef` stays what was asked for.
   */
  readonly baseBranch?: string | undefined
  /** `<worktreeDir>`: holds one folder per session; removed at the end when empty */
  readonly worktreeRoot: string
  /** `<worktreeDir>/<session>`: the session's worktrees w<slot>[-n] */
  readonly worktreeDir: string
  /** `<git-common-dir>/grove/sessions/<session>`: logs and other files of the session */
  readonly dataDir: string
  /** epoch millis, from Clock */
  readonly startedAt: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Session extends Context.Tag("grove/Session")<Session, SessionInfo>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** any folder inside the repository under test */
  readonly repo: string
  /** default HEAD */
  readonly baseRef?: string | undefined
  /** reuse an id (resume); default a new one */
  readonly id?: string | undefined
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/**
 * A new session id: `YYYYMMDD-HHMM-xxxx` (UTC), time-sortable and short.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeId: Effect.Effect<string> = Effect.gen(function*() {
  const now = new Date(yield* Clock.currentTimeMillis)
  let suffix = ""
  for (let i = 0; i < 4; i++) suffix += "abcdefghijklmnopqrstuvwxyz0123456789"[yield* Random.nextIntBetween(0, 36)]
  return `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}-${suffix}`
})

/**
 * Where the worktrees of a repository's sessions go: `worktreeDir`, or
 * `<repo>/../<repo-name>.grove`. Refused when inside the repository's working tree.
 *
 * @since 0.1.0
 * @category constructors
 */
export const worktreeRoot = (repo: RepoInfo, worktreeDir: string | undefined): Effect.Effect<string, GitError> => {
  const root = worktreeDir === undefined
    ? NodePath.join(NodePath.dirname(repo.root), `${repo.name}.grove`)
    : NodePath.resolve(worktreeDir)
  const inside = root === repo.root || root.startsWith(repo.root + NodePath.sep)
  return inside ? Effect.fail(new GitError({ reason: "WorktreeDirInsideRepository", subject: root })) : Effect.succeed(root)
}

/**
 * Resolves the repository and the base ref and fixes the session's facts. Creates
 * nothing on disk.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<SessionInfo, GitError, Git | GroveConfigTag> =>
  Effect.gen(function*() {
    const git = yield* Git
    const config = yield* GroveConfigTag
    const repo = yield* git.repoInfo(options.repo)
    const baseRef = options.baseRef ?? "HEAD"
    const baseSha = yield* git.resolveRef(repo, baseRef)
    const baseBranch = baseRef === "HEAD" ? yield* git.headBranch(repo) : undefined
    const root = yield* worktreeRoot(repo, config.worktreeDir)
    const id = options.id ?? (yield* makeId)
    return {
      id,
      repo,
      baseRef,
      baseSha,
      baseBranch,
      worktreeRoot: root,
      worktreeDir: NodePath.join(root, id),
      dataDir: NodePath.join(repo.commonDir, "grove", "sessions", id),
      startedAt: yield* Clock.currentTimeMillis
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Session, GitError, Git | GroveConfigTag> =>
  Layer.effect(Session, make(options))
