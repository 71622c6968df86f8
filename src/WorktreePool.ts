/**
 * A scoped pool of locked worktrees, one per worker, reused across tests and
 * cleaned between them (SPEC §4).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { GroveConfigTag } from "./Config.js"
import { Step, type Worktree } from "./Domain.js"
import { Git } from "./Git.js"
import { GitError, WorktreeError } from "./GroveError.js"
import * as Harness from "./Harness.js"
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
  Scope.Scope | Git | Harness.Harness | Session | GroveConfigTag
> = Effect.gen(function*() {
  const git = yield* Git
  const harness = yield* Harness.Harness
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

  // Added first, so it runs last: after every worktree is released.
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

  /** removes it (or, kept or without cleanup, marks it kept); its slot is free again */
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

  // Every worktree that exists is in `entries` until it is released: at the end, each one
  // left is released (removed, or kept). Added after the prune above, so it runs before it.
  yield* Effect.addFinalizer(() => Effect.forEach([...entries.values()], release, { concurrency: config.workers, discard: true }))

  /** a new worktree; uninterruptible, so one that exists is always in `entries` */
  const create: Effect.Effect<Entry, WorktreeError> = Effect.uninterruptible(Effect.gen(function*() {
    const worktree = yield* takeSlot
    yield* git.worktreeAdd(repo, worktree.path, session.baseSha, { lockReason, submodules: config.submodules }).pipe(
      Effect.mapError((cause) => new WorktreeError({ reason: "Create", worktree: worktree.path, detail: cause.message, cause })),
      Effect.tapError(() => Effect.sync(() => freeSlots.add(worktree.slot)))
    )
    const entry: Entry = { worktree, setupSha: undefined, setupRuns: 0, discarded: false, kept: false }
    entries.set(worktree.path, entry)
    return entry
  }))

  /**
   * The free worktrees, one item per slot; `undefined` is a slot whose worktree was
   * discarded or kept, made again by the next borrow that takes it. (Effect's Pool did
   * this with a scope, a fork and a finalizer per borrow: most of a borrow's cost when
   * tests are short, issue 6 B1.)
   */
  const free = yield* Queue.unbounded<Entry | undefined>()
  yield* Effect.forEach(Array.from({ length: config.workers }), () => Effect.flatMap(create, (e) => Queue.offer(free, e)), {
    concurrency: "unbounded",
    discard: true
  })

  /** back to the pool: discarded and kept ones are released and their slot made again later */
  const giveBack = (entry: Entry): Effect.Effect<void> =>
    entry.discarded || entry.kept
      ? Effect.zipRight(release(entry), Queue.offer(free, undefined))
      : Queue.offer(free, entry)

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
      const outcome = yield* Harness.runWithin(harness, {
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
        killGrace: config.killGrace
      }, config.setupTimeout).pipe(Effect.mapError((cause) => setupError(`${cause.message} (log: ${logPath})`, cause)))
      if (outcome._tag === "TimedOut") {
        return yield* Effect.fail(setupError(`setup timed out after ${Duration.format(config.setupTimeout)} (setupTimeout; log: ${logPath})`))
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
      const submodules = { submodules: config.submodules }
      const state = yield* git.state(path, config.keep, submodules).pipe(
        Effect.mapError((e) => prepareError(entry, e, "cannot read its state"))
      )
      if (!(state.clean && state.head === sha)) {
        yield* git.checkoutClean(path, sha, config.keep, submodules).pipe(
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

  const borrow = (sha: string): Effect.Effect<Worktree, WorktreeError, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const taken = yield* restore(Queue.take(free))
        const entry = taken ?? (yield* create.pipe(Effect.tapError(() => Queue.offer(free, undefined))))
        // it goes back when the borrower's scope closes, or as soon as its preparation fails:
        // a borrower that retries must not hold the slot its replacement needs
        let out = false
        const back = Effect.suspend(() => {
          if (out) return Effect.void
          out = true
          return giveBack(entry)
        })
        yield* Effect.addFinalizer(() => back)
        // a failure discards it; an interruption does not (the next borrow checks its state anyway)
        yield* restore(prepare(entry, sha)).pipe(
          Effect.tapErrorCause((cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.void : Effect.zipRight(Effect.sync(() => {
              entry.discarded = true
            }), back)
          )
        )
        return entry.worktree
      })
    )

  const invalidate = (worktree: Worktree): Effect.Effect<void> =>
    Effect.sync(() => {
      const entry = entries.get(worktree.path)
      if (entry !== undefined) entry.discarded = true
    })

  const keep = (worktree: Worktree): Effect.Effect<void> =>
    Effect.sync(() => {
      const entry = entries.get(worktree.path)
      if (entry !== undefined) entry.kept = true
    })

  return { borrow, invalidate, keep }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<WorktreePool, GitError | WorktreeError, Git | Harness.Harness | Session | GroveConfigTag> =
  Layer.scoped(WorktreePool, make)
