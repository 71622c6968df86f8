/**
 * A scoped pool of locked worktrees, one per worker, reused across tests and
 * cleaned between them (SPEC §4).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Pool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { GroveConfigTag } from "./Config.js"
import { Step, type Worktree } from "./Domain.js"
import { Git } from "./Git.js"
import { GitError, WorktreeError } from "./GroveError.js"
import { Harness } from "./Harness.js"
import { Session } from "./Session.js"

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

/** what the pool knows of one of its worktrees */
interface Entry {
  readonly worktree: Worktree
  /** the commit setup last succeeded at; undefined: setup has to run before the next test */
  setupSha: string | undefined
  /** setup runs so far (names the setup logs) */
  setupRuns: number
  /** remove it when it comes back, whatever `cleanup` says */
  discarded: boolean
  /** leave it on disk */
  kept: boolean
}

/** `rmdir`: removes a folder only when it is empty; anything else is left alone */
const removeIfEmpty = (dir: string): Effect.Effect<void> =>
  Effect.try(() => NodeFs.rmdirSync(dir)).pipe(
    Effect.catchAll((error) => {
      const code = (error.error as NodeJS.ErrnoException | undefined)?.code
      return code === "ENOENT" || code === "ENOTEMPTY" || code === "EEXIST"
        ? Effect.void
        : Effect.logDebug(`grove: could not remove folder ${dir}`, error.error)
    })
  )

const isWithin = (child: string, parent: string) => child === parent || child.startsWith(parent + NodePath.sep)

const lastLines = (text: string, n: number) => text.trimEnd().split("\n").slice(-n).join("\n")

/**
 * The pool of a session: `config.workers` locked worktrees at
 * `<session.worktreeDir>/w<slot>` (a replacement of a slot is `w<slot>-<n>`), made
 * eagerly and concurrently; `make` waits until they all exist and fails with a
 * `WorktreeError` (Create) when one cannot be made.
 *
 * `borrow(sha)` prepares a worktree for `sha` (skipping the reset when it is already
 * clean there), runs `config.setup` in it when it is new or when `config.setupInputs`
 * changed since its last setup, and discards it when any of that fails.
 *
 * When the scope closes, however it closes, every worktree is removed and pruned,
 * except kept ones and, with `cleanup: false`, all of them; then the session's folder
 * and the worktree root go when they are empty.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  WorktreePool["Type"],
  GitError | WorktreeError,
  Scope.Scope | Git | Harness | Session | GroveConfigTag
> = Effect.gen(function*() {
  const git = yield* Git
  const harness = yield* Harness
  const session = yield* Session
  const config = yield* GroveConfigTag
  const repo = session.repo
  const dir = NodePath.resolve(session.worktreeDir)

  if (isWithin(dir, repo.root) && !isWithin(dir, repo.commonDir)) {
    return yield* Effect.fail(new GitError({ reason: "WorktreeDirInsideRepository", subject: dir }))
  }

  const lockReason = `grove ${session.id} ${process.pid}`
  const entries = new Map<string, Entry>()
  const freeSlots = new Set<number>(Array.from({ length: config.workers }, (_, i) => i + 1))
  const generations = new Map<number, number>()
  const ready = yield* Deferred.make<void, WorktreeError>()
  let created = 0

  // Added before the pool exists, so it runs after the pool has released every worktree.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      if (config.cleanup) {
        yield* git.prune(repo).pipe(
          Effect.catchAll((e) => Effect.logWarning(`grove: git worktree prune failed: ${e.message}`))
        )
      }
      yield* removeIfEmpty(dir)
      yield* removeIfEmpty(NodePath.resolve(session.worktreeRoot))
    })
  )

  const takeSlot = Effect.sync(() => {
    const slot = freeSlots.size > 0 ? Math.min(...freeSlots) : config.workers + entries.size + 1
    freeSlots.delete(slot)
    const generation = generations.get(slot) ?? 0
    generations.set(slot, generation + 1)
    const path = NodePath.join(dir, generation === 0 ? `w${slot}` : `w${slot}-${generation}`)
    return { path, slot, generation } satisfies Worktree
  })

  const release = (entry: Entry) =>
    Effect.suspend(() => {
      const remove = !entry.kept && (config.cleanup || entry.discarded)
      const path = entry.worktree.path
      return (remove
        ? git.worktreeRemove(repo, path).pipe(
          Effect.catchAll((e) => Effect.logWarning(`grove: could not remove worktree ${path}: ${e.message}`))
        )
        // left on purpose (--keep-failed, --no-cleanup): a lock no later run reclaims
        : git.worktreeLock(repo, path, `grove ${session.id} kept`).pipe(
          Effect.catchAll((e) => Effect.logWarning(`grove: could not mark worktree ${path} as kept: ${e.message}`))
        )).pipe(
          Effect.ensuring(Effect.sync(() => {
            entries.delete(path)
            freeSlots.add(entry.worktree.slot)
          }))
        )
    })

  // the acquisition is uninterruptible: a worktree that exists has its release registered
  const acquire = Effect.acquireRelease(
    Effect.gen(function*() {
      const worktree = yield* takeSlot
      yield* git.worktreeAdd(repo, worktree.path, session.baseSha, { lockReason, submodules: config.submodules }).pipe(
        Effect.mapError((cause) =>
          new WorktreeError({ reason: "Create", worktree: worktree.path, detail: cause.message, cause })
        ),
        Effect.tapError((error) =>
          Effect.zipRight(Effect.sync(() => freeSlots.add(worktree.slot)), Deferred.fail(ready, error))
        )
      )
      const entry: Entry = { worktree, setupSha: undefined, setupRuns: 0, discarded: false, kept: false }
      entries.set(worktree.path, entry)
      created++
      if (created >= config.workers) yield* Deferred.succeed(ready, undefined)
      return entry
    }),
    release
  )

  const pool = yield* Pool.make({ acquire, size: config.workers })
  yield* Deferred.await(ready)

  const prepareError = (entry: Entry, cause: GitError, what: string) =>
    new WorktreeError({ reason: "Prepare", worktree: entry.worktree.path, detail: `${what}: ${cause.message}`, cause })

  const setup = (entry: Entry, sha: string) =>
    Effect.gen(function*() {
      const path = entry.worktree.path
      const name = NodePath.basename(path)
      const n = ++entry.setupRuns
      const logPath = NodePath.join(session.dataDir, "logs", `setup-${name}.${n}.log`)
      const setupError = (detail: string, cause?: unknown) =>
        new WorktreeError({ reason: "Setup", worktree: path, detail, ...(cause === undefined ? {} : { cause }) })
      entry.setupSha = undefined
      const outcome = yield* harness.run({
        testId: `setup-${name}`,
        attempt: n,
        attemptKey: `${session.id}.setup.${name}.${n}`,
        steps: config.setup.map((script) => new Step({ shell: "bash", script })),
        cwd: path,
        env: { GROVE_SESSION: session.id, GROVE_WORKTREE: path },
        secrets: [],
        logPath,
        logCap: config.logCap,
        tailBytes: config.tailBytes,
        timeout: config.timeout,
        killGrace: config.killGrace
      }).pipe(Effect.mapError((cause) => setupError(`${cause.message} (log: ${logPath})`, cause)))
      if (outcome._tag === "TimedOut") {
        return yield* Effect.fail(setupError(`setup timed out (log: ${logPath})`))
      }
      if (outcome.exitCode !== 0 || outcome.signal !== null) {
        const step = outcome.failedStep === undefined ? undefined : config.setup[outcome.failedStep]
        const how = outcome.signal !== null ? `was killed by ${outcome.signal}` : `exited with code ${outcome.exitCode}`
        const tail = lastLines(outcome.tail, 10)
        return yield* Effect.fail(
          setupError(`setup ${step === undefined ? "" : `command \`${step}\` `}${how} (log: ${logPath})${tail === "" ? "" : `\n${tail}`}`)
        )
      }
      entry.setupSha = sha
    })

  const prepare = (entry: Entry, sha: string) =>
    Effect.gen(function*() {
      const path = entry.worktree.path
      const state = yield* git.state(path, config.keep).pipe(
        Effect.mapError((e) => prepareError(entry, e, "cannot read its state"))
      )
      if (!(state.clean && state.head === sha)) {
        yield* git.checkoutClean(path, sha, config.keep).pipe(
          Effect.mapError((e) => prepareError(entry, e, `cannot move it to ${sha} and clean it`))
        )
      }
      if (config.setup.length === 0) return
      const needed = entry.setupSha === undefined
        ? true
        : entry.setupSha !== sha && config.setupInputs.length > 0
        ? yield* git.changedBetween(repo, entry.setupSha, sha, config.setupInputs).pipe(
          Effect.mapError((e) => prepareError(entry, e, "cannot compare its setup inputs"))
        )
        : false
      if (needed) yield* setup(entry, sha)
    })

  const discard = (entry: Entry) =>
    Effect.suspend(() => {
      entry.discarded = true
      return pool.invalidate(entry)
    })

  const borrow = (sha: string): Effect.Effect<Worktree, WorktreeError, Scope.Scope> =>
    Effect.gen(function*() {
      // the worktree goes back as soon as a borrow fails, not when the borrower's scope
      // closes: a borrower that retries must not hold the slot its replacement needs
      const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      return yield* Effect.gen(function*() {
        const entry = yield* pool.get.pipe(Scope.extend(scope))
        // a failure discards it; an interruption does not (the next borrow checks its state anyway)
        yield* prepare(entry, sha).pipe(
          Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : discard(entry))
        )
        return entry.worktree
      }).pipe(Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))))
    })

  const invalidate = (worktree: Worktree): Effect.Effect<void> =>
    Effect.suspend(() => {
      const entry = entries.get(worktree.path)
      return entry === undefined ? Effect.void : discard(entry)
    })

  const keep = (worktree: Worktree): Effect.Effect<void> =>
    Effect.suspend(() => {
      const entry = entries.get(worktree.path)
      if (entry === undefined) return Effect.void
      entry.kept = true
      return pool.invalidate(entry)
    })

  return { borrow, invalidate, keep }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<WorktreePool, GitError | WorktreeError, Git | Harness | Session | GroveConfigTag> =
  Layer.scoped(WorktreePool, make)
