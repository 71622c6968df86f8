/**
 * A scoped pool of locked worktrees, one per worker, reused across tests and
 * cleaned between them (SPEC §4).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Worktree } from "./Domain.js"
import type { WorktreeError } from "./GroveError.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class WorktreePool extends Context.Tag("grove/WorktreePool")<WorktreePool, {
  /** a worktree at `sha`, clean (keep paths aside) and set up; it goes back when the scope closes */
  readonly borrow: (sha: string) => Effect.Effect<Worktree, WorktreeError, Scope.Scope>
  /** while borrowed: discard it when it comes back (removed, then replaced) */
  readonly invalidate: (worktree: Worktree) => Effect.Effect<void>
  /** while borrowed: leave it on disk when the session ends (--keep-failed); the pool replaces it */
  readonly keep: (worktree: Worktree) => Effect.Effect<void>
}>() {}
