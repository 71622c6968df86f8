/**
 * A scoped pool of locked worktrees, at most one per worker, made as borrowers need
 * them, reused across tests and cleaned between them (SPEC §4), on Effect's `Pool`.
 * A session's workers each lease one (`lease`) and keep it from test to test.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Pool from "effect/Pool"
import * as Ref from "effect/Ref"
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
  /**
   * a worktree held by one worker from test to test (`Lease`); what it holds goes back
   * to the pool when the scope closes
   */
  readonly lease: Effect.Effect<Lease, never, Scope.Scope>
}>() {}

/**
 * One worker's worktree, kept between its tests instead of going back to the pool
 * after each one: `prepare` readies it for the next test exactly as `borrow` does (the
 * state check, the clean, setup when needed). A worktree that cannot be prepared is
 * discarded and given back before `prepare` fails — the pool replaces it, and the next
 * `prepare` borrows another — so a worker that tries again never holds the worktree its
 * replacement needs. With one worktree per worker at most, holding it changes nothing
 * a test can see; it saves the pool's hand-over per test.
 *
 * @since 0.3.0
 * @category models
 */
export interface Lease {
  /** the held worktree (or a newly borrowed one) at `sha`, clean and set up */
  readonly prepare: (sha: string) => Effect.Effect<Worktree, WorktreeError>
  /** --keep-failed: leave the held worktree on disk when the session ends; the next `prepare` borrows another */
  readonly keep: Effect.Effect<void>
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

/** what the pool knows of one of its worktrees, kept in a `Ref` on the item */
interface ItemState {
  /** the commit setup last succeeded at; undefined: setup has to run before the next test */
  readonly setupSha: string | undefined
  /** setup runs so far (names the setup logs) */
  readonly setupRuns: number
  /** invalidated: removed when it comes back, whatever `cleanup` says */
  readonly discarded: boolean
  /** left on disk (--keep-failed) */
  readonly kept: boolean
}

/** the Pool's item: one worktree and its state */
interface Item {
  readonly worktree: Worktree
  readonly state: Ref.Ref<ItemState>
}

/** which names are free: slot n is `w<n>`, its replacements `w<n>-1`, `w<n>-2` … */
interface Slots {
  readonly free: ReadonlyArray<number>
  readonly generations: ReadonlyMap<number, number>
}

/** what `Effect.uninterruptibleMask` hands its body */
type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

const lastLines = (text: string, n: number) => text.trimEnd().split("\n").slice(-n).join("\n")

/**
 * The pool of a session, on `Pool.makeWithTTL` with `min: 0` and `max: config.workers`:
 * no worktree exists before the first borrow, and one is added (`git worktree add
 * --detach --lock`, at `<session.worktreeDir>/w<slot>`; a replacement of a slot is
 * `w<slot>-<n>`) when a borrower finds none free. The time to live is infinite: a
 * session's pool never shrinks.
 *
 * `borrow(sha)` takes a worktree from the pool and prepares it for `sha` (skipping the
 * reset when it is already clean there), runs `config.setup` in it when it is new or
 * when `config.setupInputs` changed since its last setup. When any of that fails, the
 * worktree is invalidated and given back at once, before the borrow fails: the Pool
 * removes it and makes a replacement, so a borrower that tries again does not wait
 * for the worktree it still holds. A worktree that cannot be made fails the borrow
 * with a `WorktreeError` (Create); the next borrow tries again.
 *
 * When the scope closes, however it closes, the Pool waits for borrowed worktrees to
 * come back; then every worktree is removed and pruned, concurrently, except kept ones
 * and, with `cleanup: false`, all of them; then the session's folder and the worktree
 * root go when they are empty.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  WorktreePool["Type"],
  GitError,
  Scope.Scope | Git | Harness.Harness | Session | GroveConfigTag
> = Effect.map(Effect.suspend(() => build), ({ service }) => service)

const build = Effect.gen(function*() {
  const git = yield* Git
  const harness = yield* Harness.Harness
  const session = yield* Session
  const config = yield* GroveConfigTag
  const repo = session.repo
  const dir = NodePath.resolve(session.worktreeDir)

  if (isWithin(dir, repo.root) && !isWithin(dir, repo.commonDir)) {
    return yield* Effect.fail(new GitError({ reason: "WorktreeDirInsideRepository", subject: dir }))
  }

  // the pool's own scope, sequential whatever the enclosing one is: its finalizers run
  // in the reverse order of the lines below
  const scope = yield* Effect.flatMap(Effect.scope, (outer) => Scope.fork(outer, ExecutionStrategy.sequential))
  const lockReason = `grove ${session.id} ${process.pid}`
  const slots = yield* Ref.make<Slots>({
    free: Array.from({ length: config.workers }, (_, i) => i + 1),
    generations: new Map()
  })
  /** set when the pool starts to shut down: releases are then collected and run together */
  const closing = yield* Ref.make(false)
  const pending = yield* Ref.make<ReadonlyArray<Item>>([])

  const takeSlot = Ref.modify(slots, (s): [Worktree, Slots] => {
    const slot = s.free.length > 0 ? Math.min(...s.free) : Math.max(config.workers, ...s.generations.keys()) + 1
    const generation = s.generations.get(slot) ?? 0
    const path = NodePath.join(dir, generation === 0 ? `w${slot}` : `w${slot}-${generation}`)
    return [{ path, slot, generation }, {
      free: s.free.filter((n) => n !== slot),
      generations: new Map(s.generations).set(slot, generation + 1)
    }]
  })
  const freeSlot = (slot: number) => Ref.update(slots, (s) => ({ ...s, free: [...s.free, slot] }))

  /** removes it (or, kept or without cleanup, marks it kept); its slot is free again */
  const remove = (item: Item) =>
    Effect.gen(function*() {
      const state = yield* Ref.get(item.state)
      const path = item.worktree.path
      yield* !state.kept && (config.cleanup || state.discarded)
        ? git.worktreeRemove(repo, path).pipe(
          Effect.catchAll((e) => Effect.logWarning(`grove: could not remove worktree ${path}: ${e.message}`))
        )
        // left on purpose (--keep-failed, --no-cleanup): a lock no later run reclaims
        : git.worktreeLock(repo, path, `grove ${session.id} kept`).pipe(
          Effect.catchAll((e) => Effect.logWarning(`grove: could not mark worktree ${path} as kept: ${e.message}`))
        )
    }).pipe(
      Effect.ensuring(Effect.suspend(() => freeSlot(item.worktree.slot)))
    )

  /** the Pool's release: at once during the session, collected at its end (the Pool releases one by one) */
  const release = (item: Item) =>
    Effect.flatMap(Ref.get(closing), (late) => late ? Ref.update(pending, (all) => [...all, item]) : remove(item))

  // Added first, so it runs last: after the Pool has released every worktree.
  yield* Scope.addFinalizer(
    scope,
    Effect.gen(function*() {
      yield* Effect.forEach(yield* Ref.get(pending), remove, { concurrency: "unbounded", discard: true })
      if (config.cleanup) {
        yield* git.prune(repo).pipe(
          Effect.catchAll((e) => Effect.logWarning(`grove: git worktree prune failed: ${e.message}`))
        )
      }
      yield* removeIfEmpty(dir)
      yield* removeIfEmpty(NodePath.resolve(session.worktreeRoot))
    })
  )

  /** a new worktree (acquireRelease: uninterruptible, so one that exists is always released) */
  const acquire: Effect.Effect<Item, WorktreeError, Scope.Scope> = Effect.acquireRelease(
    Effect.gen(function*() {
      const worktree = yield* takeSlot
      yield* git.worktreeAdd(repo, worktree.path, session.baseSha, { lockReason, submodules: config.submodules }).pipe(
        Effect.mapError((cause) => new WorktreeError({ reason: "Create", worktree: worktree.path, detail: cause.message, cause })),
        Effect.tapError(() => freeSlot(worktree.slot))
      )
      const state = yield* Ref.make<ItemState>({ setupSha: undefined, setupRuns: 0, discarded: false, kept: false })
      return { worktree, state } satisfies Item
    }),
    release
  )

  const pool = yield* Pool.makeWithTTL({
    acquire,
    min: 0,
    max: config.workers,
    timeToLive: Duration.infinity
  }).pipe(Scope.extend(scope))

  // Added after the Pool, so it runs before the Pool shuts down.
  yield* Scope.addFinalizer(scope, Ref.set(closing, true))

  const prepareError = (item: Item, cause: GitError, what: string) =>
    new WorktreeError({ reason: "Prepare", worktree: item.worktree.path, detail: `${what}: ${cause.message}`, cause })

  const setup = (item: Item, sha: string) =>
    Effect.gen(function*() {
      const path = item.worktree.path
      const name = NodePath.basename(path)
      const n = yield* Ref.modify(item.state, (s) => [s.setupRuns + 1, { ...s, setupRuns: s.setupRuns + 1, setupSha: undefined }])
      const logPath = NodePath.join(session.dataDir, "logs", `setup-${name}.${n}.log`)
      const setupError = (detail: string, cause?: unknown) =>
        new WorktreeError({ reason: "Setup", worktree: path, detail, ...(cause === undefined ? {} : { cause }) })
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
      yield* Ref.update(item.state, (s) => ({ ...s, setupSha: sha }))
    })

  // made once (Effect.fnUntraced): it runs per test, and V8 gives a generator function
  // made per call a prototype and maps of its own on its first call (Runner.ts)
  const prepare = Effect.fnUntraced(function*(item: Item, sha: string) {
    const path = item.worktree.path
    const submodules = { submodules: config.submodules }
    const state = yield* git.state(path, config.keep, submodules).pipe(
      Effect.mapError((e) => prepareError(item, e, "cannot read its state"))
    )
    if (!(state.clean && state.head === sha)) {
      yield* git.checkoutClean(path, sha, config.keep, submodules).pipe(
        Effect.mapError((e) => prepareError(item, e, `cannot move it to ${sha} and clean it`))
      )
    }
    if (config.setup.length === 0) return
    const { setupSha } = yield* Ref.get(item.state)
    const needed = setupSha === undefined
      ? true
      : setupSha !== sha && config.setupInputs.length > 0
      ? yield* git.changedBetween(repo, setupSha, sha, config.setupInputs).pipe(
        Effect.mapError((e) => prepareError(item, e, "cannot compare its setup inputs"))
      )
      : false
    if (needed) yield* setup(item, sha)
  })

  /** marks it discarded and tells the Pool, which removes it when it comes back and makes another */
  const discard = (item: Item) =>
    Effect.zipRight(Ref.update(item.state, (s) => ({ ...s, discarded: true })), pool.invalidate(item))

  const borrow = (sha: string): Effect.Effect<Worktree, WorktreeError, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        // the worktree is held in a scope of its own, closed with the borrower's, or as soon
        // as its preparation fails: a borrower that retries must not hold the worktree (and
        // the Pool's permit) that its replacement needs
        const held = yield* Effect.flatMap(Effect.scope, (outer) => Scope.fork(outer, ExecutionStrategy.sequential))
        const item = yield* restore(Scope.extend(pool.get, held)).pipe(
          Effect.onError((cause) => Scope.close(held, Exit.failCause(cause)))
        )
        // a failure discards it; an interruption does not (the next borrow checks its state anyway)
        yield* restore(prepare(item, sha)).pipe(
          Effect.onError((cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.void : Effect.zipRight(discard(item), Scope.close(held, Exit.failCause(cause)))
          )
        )
        return item.worktree
      })
    )

  const lease: Effect.Effect<Lease, never, Scope.Scope> = Effect.gen(function*() {
    const outer = yield* Effect.scope
    let held: { readonly scope: Scope.CloseableScope; readonly item: Item } | undefined
    /** gives back what the lease holds */
    const drop = (exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => {
        const h = held
        held = undefined
        return h === undefined ? Effect.void : Scope.close(h.scope, exit)
      })
    yield* Scope.addFinalizer(outer, drop(Exit.void))
    const prepareHeld = Effect.fnUntraced(function*(restore: Restore, sha: string) {
      if (held === undefined) {
        const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
        const got = yield* restore(Scope.extend(pool.get, scope)).pipe(
          Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
        )
        held = { scope, item: got }
      }
      const item = held.item
      // as in borrow: a failure discards it, and it is given back before the failure
      // reaches the worker; an interruption does not
      yield* restore(prepare(item, sha)).pipe(
        Effect.onError((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.zipRight(discard(item), drop(Exit.failCause(cause)))
        )
      )
      return item.worktree
    })
    return {
      prepare: (sha) => Effect.uninterruptibleMask((restore) => prepareHeld(restore, sha)),
      keep: Effect.suspend(() => {
        const h = held
        if (h === undefined) return Effect.void
        return Effect.zipRight(
          Ref.update(h.item.state, (st) => ({ ...st, kept: true })),
          Effect.zipRight(pool.invalidate(h.item), drop(Exit.void))
        )
      })
    }
  })

  const service: WorktreePool["Type"] = { borrow, lease }
  return { service, first: Effect.scoped(Effect.asVoid(pool.get)) }
})

/**
 * The session's pool (what the Orchestrator builds when the first test is accepted):
 * `make`, then the first worktree, made at once, so that a worktree that cannot be
 * created fails the session with one `WorktreeError` (Create) instead of an ERROR per
 * test. The others are made as borrowers need them.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<WorktreePool, GitError | WorktreeError, Git | Harness.Harness | Session | GroveConfigTag> =
  Layer.scoped(WorktreePool, Effect.flatMap(build, ({ first, service }) => Effect.as(first, service)))
