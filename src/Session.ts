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
import * as Option from "effect/Option"
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
  /** a re-run: the session whose tests that did not pass it runs again */
  readonly rerunOf?: string | undefined
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
  /** a re-run: the session whose tests that did not pass this one runs again */
  readonly rerunOf?: string | undefined
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
      dataDir: dataDirIn(repo.commonDir, id),
      startedAt: yield* Clock.currentTimeMillis,
      ...(options.rerunOf === undefined ? {} : { rerunOf: options.rerunOf })
    }
  })

/**
 * `<git-common-dir>/grove/sessions/<id>`: the folder of a session's logs and files.
 *
 * @since 0.2.0
 * @category constructors
 */
export const dataDirIn = (commonDir: string, id: string): string => NodePath.join(commonDir, "grove", "sessions", id)

/** an id that is one folder name, so that its data folder stays inside `sessions/` */
const safeSegment = (id: string) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id) && !id.includes("..")

/**
 * The git common dir of the repository a stored session ran in: `known`'s when it is
 * that repository (or the row names none), else the one at `repoRoot`; none when
 * that is no repository any more.
 *
 * @since 0.2.0
 * @category constructors
 */
export const commonDirOf = (
  repoRoot: string,
  known: Option.Option<RepoInfo>
): Effect.Effect<Option.Option<string>, never, Git> => {
  const own = Option.filter(known, (r) => r.root === repoRoot || repoRoot === "")
  if (Option.isSome(own)) return Effect.succeed(Option.some(own.value.commonDir))
  if (repoRoot === "") return Effect.succeed(Option.none())
  return Effect.flatMap(Git, (git) => git.repoInfo(repoRoot).pipe(Effect.map((r) => r.commonDir), Effect.option))
}

/**
 * `dataDirIn` for an id read from a store: none for an id that is not one folder
 * name (a store's row cannot point grove outside `sessions/`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const storedDataDirIn = (commonDir: string, id: string): Option.Option<string> =>
  safeSegment(id) ? Option.some(dataDirIn(commonDir, id)) : Option.none()

/**
 * The data folder of a stored session, in the git common dir `commonDirOf` finds;
 * none for an unsafe id (`storedDataDirIn`) or a repository that is gone.
 *
 * @since 0.2.0
 * @category constructors
 */
export const storedDataDir = (
  session: { readonly id: string; readonly repoRoot: string },
  known: Option.Option<RepoInfo>
): Effect.Effect<Option.Option<string>, never, Git> =>
  Effect.map(commonDirOf(session.repoRoot, known), Option.flatMap((dir) => storedDataDirIn(dir, session.id)))

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Session, GitError, Git | GroveConfigTag> =>
  Layer.effect(Session, make(options))
