/**
 * The facts of one session, fixed when it starts: its id, the repository, the base
 * ref resolved to a SHA, and the folders it owns.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { RepoInfo } from "./Git.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionInfo {
  readonly id: string
  readonly repo: RepoInfo
  readonly baseRef: string
  readonly baseSha: string
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
