/**
 * Git as a service: the real layer over the git CLI and an in-memory layer with the
 * same semantics (and failures on demand) for tests of the logic above it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { GitError } from "./GroveError.js"

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
  /** whether `path` (a folder or file, relative to the root) exists at commit `sha` */
  readonly pathExistsAt: (repo: RepoInfo, sha: string, path: string) => Effect.Effect<boolean, GitError>
  /** whether any of `paths` differ between two commits */
  readonly changedBetween: (repo: RepoInfo, from: string, to: string, paths: ReadonlyArray<string>) => Effect.Effect<boolean, GitError>
  /** adds a detached worktree at `sha`, locked with `lockReason`, hooks off; submodules initialised when asked */
  readonly worktreeAdd: (repo: RepoInfo, path: string, sha: string, options: { readonly lockReason: string; readonly submodules?: boolean }) => Effect.Effect<void, GitError>
  /** unlocks and removes a worktree; when git cannot, removes the folder and prunes */
  readonly worktreeRemove: (repo: RepoInfo, path: string) => Effect.Effect<void, GitError>
  readonly worktreeList: (repo: RepoInfo) => Effect.Effect<ReadonlyArray<WorktreeEntry>, GitError>
  readonly prune: (repo: RepoInfo) => Effect.Effect<void, GitError>
  /** HEAD and cleanliness of a grove worktree (checked to be that worktree first) */
  readonly state: (worktree: string, keep: ReadonlyArray<string>) => Effect.Effect<WorktreeState, GitError>
  /** moves a grove worktree to `sha` detached and removes every change, untracked and ignored file outside `keep` */
  readonly checkoutClean: (worktree: string, sha: string, keep: ReadonlyArray<string>) => Effect.Effect<void, GitError>
}>() {}
