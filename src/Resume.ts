/**
 * What a dead grove run leaves behind, and how a later run takes it back (SPEC §5).
 *
 * A grove killed with SIGKILL (or a machine that lost power) cannot clean up: its
 * worktrees stay registered and locked with `grove <session> <pid>`, and the process
 * groups of its running attempts may live on (they are detached on purpose). This
 * module finds both from what grove wrote down — the lock reasons in
 * `git worktree list`, the process groups in the store — and removes them, never
 * touching what a live grove owns:
 *
 * 1. An owner is alive while a process with its pid runs (not a zombie) and, where
 *    /proc tells, that process is node or grove. A pid reused by something else counts
 *    as dead; a pid reused by another node process counts as alive, which errs on the
 *    side of leaving things alone. That holds on the owner's own host: the owner of a
 *    session recorded by a grove on another host lives while its heartbeat is fresh
 *    (`sessionOwner`, Heartbeat.ts), and what it left there (process groups) is that
 *    host's to reap.
 * 2. A recorded process group is killed only when it is still the attempt's: its
 *    leader runs with the start time recorded at spawn, or — the leader gone — a member
 *    carries the session's `GROVE_SESSION` entry. Then every process carrying that
 *    entry is terminated too (it finds `setsid` escapees the group misses).
 * 3. `--resume` then closes the dead run's open attempts as CANCELLED and returns the
 *    tests without a terminal status, with the attempts they already made, so attempt
 *    numbers continue.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Config from "./Config.js"
import type { GroveConfig } from "./Config.js"
import { Attempt, Events, TestRequest } from "./Domain.js"
import { Git, type RepoInfo } from "./Git.js"
import { type GitError, InvalidInput, Issue, type StoreError } from "./GroveError.js"
import * as Heartbeat from "./Heartbeat.js"
import * as ProcessTree from "./internal/processTree.js"
import { formatDuration } from "./internal/text.js"
import * as Plan from "./Plan.js"
import { type PendingTest, type SessionOwner, type SessionSummary, Store, testStream } from "./Store.js"

// -----------------------------------------------------------------------------
// owners
// -----------------------------------------------------------------------------

/**
 * Who locked a worktree: `grove <session> <pid>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LockOwner {
  readonly session: string
  /** 0 for a worktree kept on purpose (`grove <session> kept`) */
  readonly pid: number
  /** left on purpose by --keep-failed or --no-cleanup: only `grove worktrees --prune` removes it */
  readonly kept: boolean
}

/**
 * Reads a lock reason grove wrote (`grove <session> <pid>`); anything else is not grove's.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseLock = (reason: string | undefined): LockOwner | undefined => {
  const match = /^grove (\S+) (\d+|kept)$/.exec((reason ?? "").trim())
  if (match === null) return undefined
  if (match[2] === "kept") return { session: match[1]!, pid: 0, kept: true }
  const pid = Number(match[2])
  return Number.isSafeInteger(pid) && pid > 0 ? { session: match[1]!, pid, kept: false } : undefined
}

const readCommandLine = (pid: number): string | undefined => {
  try {
    return Fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\u0000", " ")
  } catch {
    return undefined
  }
}

/**
 * Whether the grove process `pid` may still be running (point 1 of the module notes):
 * this process itself; else a live, non-zombie process with that pid whose command
 * line (when /proc shows it) names node or grove.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ownerAlive = (pid: number): Effect.Effect<boolean> =>
  Effect.sync(() => {
    if (!Number.isSafeInteger(pid) || pid <= 1) return false
    if (pid === process.pid) return true
    if (!ProcessTree.procAvailable) return ProcessTree.signal(pid, 0) !== "gone"
    if (ProcessTree.isGone(ProcessTree.readStat(pid))) return false
    const commandLine = readCommandLine(pid)
    return commandLine === undefined || commandLine === "" || /node|grove/i.test(commandLine)
  })

/**
 * The owner of a session as this process sees it (`sessionOwner`).
 *
 * @since 0.3.0
 * @category models
 */
export interface OwnerState {
  readonly sessionId: string
  /** undefined: the store does not know (a session recorded before store schema 4) */
  readonly host: string | undefined
  readonly pid: number
  /** on this host, or on an unknown one: its pid tells whether it lives, and its processes are this host's */
  readonly local: boolean
  /** how long ago its last heartbeat was (ms), when it wrote one */
  readonly heartbeatAgeMs: number | undefined
  /** the session is RUNNING and its owner may still run it */
  readonly alive: boolean
}

/**
 * Whether the owner of a stored session lives (point 1 of the module notes): a
 * session not RUNNING has no live owner; one owned on this host (or an unknown one)
 * lives while its pid does (`ownerAlive`); one owned on another host lives while its
 * heartbeat is fresh (`Heartbeat.isFresh`).
 *
 * @since 0.3.0
 * @category constructors
 */
export const ownerState = (owner: SessionOwner): Effect.Effect<OwnerState> =>
  Effect.gen(function*() {
    const here = yield* Heartbeat.localHost
    const now = yield* Clock.currentTimeMillis
    const local = owner.host === undefined || owner.host === here
    const running = owner.status === "RUNNING"
    return {
      sessionId: owner.sessionId,
      host: owner.host,
      pid: owner.pid,
      local,
      heartbeatAgeMs: owner.heartbeatAt === undefined ? undefined : Math.max(0, now - owner.heartbeatAt),
      alive: running && (local ? yield* ownerAlive(owner.pid) : Heartbeat.isFresh(owner.heartbeatAt, now))
    }
  })

/**
 * `ownerState` of the session `sessionId` of the store (`UnknownSession` when it
 * holds none).
 *
 * @since 0.3.0
 * @category constructors
 */
export const sessionOwner = (sessionId: string): Effect.Effect<OwnerState, StoreError, Store> =>
  Effect.flatMap(Store, (store) => Effect.flatMap(store.owner(sessionId), ownerState))

/**
 * The owner for a message: `grove process 4242 on ci-7 (last heartbeat 2.0s ago)`.
 *
 * @since 0.3.0
 * @category utils
 */
export const describeOwner = (owner: OwnerState): string =>
  `grove process ${owner.pid} on ${owner.host ?? "this host"}` +
  (owner.heartbeatAgeMs === undefined ? "" : ` (last heartbeat ${formatDuration(owner.heartbeatAgeMs)} ago)`)

/**
 * How to stop a session whose owner lives, for a message: where to signal it.
 *
 * @since 0.3.0
 * @category utils
 */
export const howToStop = (owner: OwnerState): string =>
  owner.local
    ? `stop it (Ctrl-C in its terminal, or kill -INT ${owner.pid})`
    : `stop it on ${owner.host} (Ctrl-C in its terminal there, or kill -INT ${owner.pid} on that host)`

/**
 * For an owner on another host: when it will count as dead should that host be gone.
 *
 * @since 0.3.0
 * @category utils
 */
export const whenGone = (owner: OwnerState): string =>
  owner.local
    ? ""
    : `; if ${owner.host} is gone, its grove counts as dead once its heartbeat is ${Duration.format(Heartbeat.staleAfter)} old`

// -----------------------------------------------------------------------------
// worktrees
// -----------------------------------------------------------------------------

/**
 * A worktree grove owns, from its lock.
 *
 * @since 0.1.0
 * @category models
 */
export interface GroveWorktree {
  readonly path: string
  readonly session: string
  /** the grove process that locked it */
  readonly pid: number
  /** whether that process still runs (`ownerAlive`) */
  readonly alive: boolean
  /** left on purpose (--keep-failed, --no-cleanup) */
  readonly kept: boolean
  /** git reports its folder missing */
  readonly prunable: boolean
  /** the commit it is at, when git knows */
  readonly head: string | undefined
}

/**
 * The worktrees of `repo` that grove locked, in `git worktree list` order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const worktrees = (repo: RepoInfo): Effect.Effect<ReadonlyArray<GroveWorktree>, GitError, Git> =>
  Effect.gen(function*() {
    const git = yield* Git
    const entries = yield* git.worktreeList(repo)
    const out: Array<GroveWorktree> = []
    for (const entry of entries) {
      const owner = parseLock(entry.locked)
      if (owner === undefined || entry.path === repo.root) continue
      out.push({
        path: entry.path,
        session: owner.session,
        pid: owner.pid,
        alive: owner.kept ? false : yield* ownerAlive(owner.pid),
        kept: owner.kept,
        prunable: entry.prunable,
        head: entry.head
      })
    }
    return out
  })

/**
 * What `reclaim` did.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reclaimed {
  readonly removed: ReadonlyArray<GroveWorktree>
  readonly failed: ReadonlyArray<{ readonly worktree: GroveWorktree; readonly error: GitError }>
}

/** `rmdir`: only an empty folder goes (not empty, or gone already: left as it is) */
const removeIfEmpty = (dir: string): Effect.Effect<void> => Effect.ignore(Effect.try(() => Fs.rmdirSync(dir)))

/**
 * Removes the worktrees of dead grove runs (their lock's pid is gone; with `session`,
 * only that session's), prunes git's records, and removes the session folders
 * (`<worktreeDir>/<session>`) and the worktree root they leave empty. A worktree git
 * cannot remove is reported in `failed`, and the others still go.
 *
 * @since 0.1.0
 * @category constructors
 */
export const reclaim = (
  repo: RepoInfo,
  options: {
    readonly session?: string | undefined
    /** also the worktrees kept on purpose (`grove worktrees --prune`) */
    readonly kept?: boolean
  } = {}
): Effect.Effect<Reclaimed, GitError, Git> =>
  Effect.gen(function*() {
    const git = yield* Git
    const stale = (yield* worktrees(repo)).filter((w) =>
      !w.alive && (options.kept === true || !w.kept) && (options.session === undefined || w.session === options.session)
    )
    if (stale.length === 0) return { removed: [], failed: [] }
    const removed: Array<GroveWorktree> = []
    const failed: Array<{ readonly worktree: GroveWorktree; readonly error: GitError }> = []
    for (const worktree of stale) {
      yield* git.worktreeRemove(repo, worktree.path).pipe(
        Effect.match({
          onFailure: (error) => void failed.push({ worktree, error }),
          onSuccess: () => void removed.push(worktree)
        })
      )
    }
    yield* git.prune(repo).pipe(Effect.ignore)
    if (failed.length > 0) {
      // another grove starting at the same time may have removed it first: that is no failure
      const still = new Set((yield* git.worktreeList(repo).pipe(Effect.orElseSucceed(() => []))).map((e) => e.path))
      for (let i = failed.length - 1; i >= 0; i--) {
        const { worktree } = failed[i]!
        if (!still.has(worktree.path)) {
          failed.splice(i, 1)
          removed.push(worktree)
        }
      }
    }
    for (const worktree of removed) {
      const sessionDir = NodePath.dirname(worktree.path)
      if (NodePath.basename(sessionDir) !== worktree.session) continue
      yield* removeIfEmpty(sessionDir)
      yield* removeIfEmpty(NodePath.dirname(sessionDir))
    }
    return { removed, failed }
  })

// -----------------------------------------------------------------------------
// processes
// -----------------------------------------------------------------------------

/**
 * What `reapProcesses` did.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reaped {
  /** recorded process groups that were still the attempt's and alive */
  readonly groups: number
  /** live processes found (groups, their descendants, carriers of the session's entry) */
  readonly processes: number
  /** of those, the ones that needed SIGKILL after the grace period */
  readonly killed: number
}

/** point 2 of the module notes: is the recorded group `pgid` still the attempt's? */
const groupIsTheAttempts = (pgid: number, startTime: string, sessionEntry: string): boolean => {
  const procs = ProcessTree.listProcesses()
  const leader = procs.find((p) => p.pid === pgid)
  if (leader !== undefined && !ProcessTree.isGone(leader)) return leader.startTime === startTime
  return procs.some((p) => p.pgid === pgid && !ProcessTree.isGone(p) && ProcessTree.environHas(p.pid, sessionEntry))
}

/**
 * Terminates what the dead run of `sessionId` left running (point 2 of the module
 * notes): SIGTERM, then SIGKILL after `grace`. Groups recorded without a start time
 * are left alone (they cannot be told from a reused pid). Call it only once the
 * session's owner is known to be dead.
 *
 * @since 0.1.0
 * @category constructors
 */
export const reapProcesses = (
  sessionId: string,
  grace: Duration.DurationInput
): Effect.Effect<Reaped, StoreError, Store> =>
  Effect.gen(function*() {
    const store = yield* Store
    const groups = yield* store.liveGroups(sessionId)
    if (!ProcessTree.procAvailable) {
      // without /proc there is no start time to check: leave them alone rather than risk a reused pid
      return { groups: 0, processes: 0, killed: 0 }
    }
    const sessionEntry = `GROVE_SESSION=${sessionId}`
    let live = 0
    let processes = 0
    let killed = 0
    for (const group of groups) {
      if (group.processStartTime === "" || ProcessTree.refusal(group.pgid) !== undefined) continue
      if (!(yield* Effect.sync(() => groupIsTheAttempts(group.pgid, group.processStartTime, sessionEntry)))) continue
      const done = yield* ProcessTree.terminate({ pgid: group.pgid, startTime: group.processStartTime }, grace)
      if (done.found > 0) live++
      processes += done.found
      killed += done.killed
    }
    // whatever still carries the session's entry escaped its group (setsid) or was never recorded
    const carriers = yield* Effect.sync(() => ProcessTree.findByEnv(sessionEntry))
    const first = carriers[0]
    if (first !== undefined) {
      const done = yield* ProcessTree.terminate(
        { pgid: first.pid, startTime: first.startTime, envEntry: sessionEntry },
        grace
      )
      processes += done.found
      killed += done.killed
    }
    return { groups: live, processes, killed }
  })

// -----------------------------------------------------------------------------
// resume
// -----------------------------------------------------------------------------

/**
 * The message an attempt gets when its grove died while it ran.
 *
 * @since 0.1.0
 * @category models
 */
export const interruptedMessage = "grove stopped before this attempt ended (its process died); the attempt was not counted as a result"

/**
 * Ends the attempts of `sessionId` still recorded RUNNING as CANCELLED (their grove is
 * dead, so nobody else will); returns how many. Their tests keep no terminal status
 * and stay pending.
 *
 * @since 0.1.0
 * @category constructors
 */
export const closeInterrupted = (sessionId: string): Effect.Effect<number, StoreError, Store> =>
  Effect.gen(function*() {
    const store = yield* Store
    return yield* testStream(store, sessionId, ["QUEUED", "RUNNING"]).pipe(
      Stream.mapConcat((test) => test.attempts.filter((a) => a.status === "RUNNING").map((attempt) => ({ test, attempt }))),
      Stream.runFoldEffect(0, (closed, { attempt, test }) =>
        Effect.as(
          store.record(
            sessionId,
            Events.AttemptFinished({
              testId: test.id,
              attempt: new Attempt({ ...attempt, status: "CANCELLED", message: interruptedMessage })
            })
          ),
          closed + 1
        ))
    )
  })

/**
 * What `prepare` found and did before a session is resumed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Prepared {
  readonly session: SessionSummary
  readonly worktrees: Reclaimed
  readonly processes: Reaped
  /** attempts of the dead run that were closed as CANCELLED */
  readonly closed: number
  /** the tests to run, in queue order, with the attempts they already made */
  readonly pending: ReadonlyArray<PendingTest>
}

/**
 * Everything `grove run --resume SESSION` does before the session runs again:
 * checks that the store holds the session (`StoreError` UnknownSession otherwise),
 * that it belongs to `repo` and that its grove is dead (`sessionOwner`: its pid on
 * this host, its heartbeat on another; `InvalidInput` naming host, pid and heartbeat
 * age otherwise, and nothing is touched then); reaps its process groups (only when it
 * ran on this host), then its worktrees; closes its open attempts; and returns the
 * tests without a terminal status.
 *
 * @since 0.1.0
 * @category constructors
 */
export const prepare = (
  repo: RepoInfo,
  sessionId: string,
  options: { readonly grace: Duration.DurationInput }
): Effect.Effect<Prepared, StoreError | InvalidInput | GitError, Store | Git> =>
  Effect.gen(function*() {
    const store = yield* Store
    const session = yield* store.requireSession(sessionId)
    if (session.repoRoot !== "" && session.repoRoot !== repo.root) {
      return yield* Effect.fail(InvalidInput.one(
        "--resume",
        `session ${sessionId} ran in repository ${session.repoRoot}, not ${repo.root}: pass --repo ${session.repoRoot}`
      ))
    }
    const owner = yield* sessionOwner(sessionId)
    if (owner.alive && !(owner.local && owner.pid === process.pid)) {
      return yield* Effect.fail(InvalidInput.one(
        "--resume",
        `session ${sessionId} is still running in ${describeOwner(owner)}: wait for it to end, or ${howToStop(owner)} ` +
          `and resume it then${whenGone(owner)}`
      ))
    }
    // process groups recorded on another host are that host's: a pid here is another process
    const processes = owner.local ? yield* reapProcesses(sessionId, options.grace) : { groups: 0, processes: 0, killed: 0 }
    const reclaimed = yield* reclaim(repo, { session: sessionId })
    const closed = yield* closeInterrupted(sessionId)
    const pending = yield* store.pending(sessionId)
    return { session, worktrees: reclaimed, processes, closed, pending }
  })

/** the test of `plans` that `stored` was queued as (also as `<id>@<ref>` of `--ref`), with the ref it ran at */
const rereadOf = (stored: TestRequest, plans: ReadonlyArray<Plan.LoadedPlan>): TestRequest | undefined => {
  const ref = stored.ref === undefined ? {} : { ref: stored.ref }
  for (const { request } of plans) {
    if (request.id === stored.id) return request.ref === undefined ? new TestRequest({ ...request, ...ref }) : request
    if (request.ref === undefined && stored.ref !== undefined && stored.id === `${request.id}@${stored.ref}`) {
      return new TestRequest({ ...request, id: stored.id, name: stored.name, ...ref })
    }
  }
  return undefined
}

/**
 * The pending tests of a resumed session as they can run (SPEC §4 "Secrets"). The
 * store never holds a secret value: a test whose stored request had one masked as
 * `***` (`PendingTest.masked`: a secret's value written into its script) takes its
 * request from its plan file read again — its `source`, relative to `repoRoot` — when
 * that file still holds a test with its id. Otherwise (an `--each` test has no plan
 * file; the file is gone, unreadable, or no longer holds the test) `InvalidInput`
 * names each such test, why, and what to do: grove never runs `***` in its place.
 *
 * @since 0.2.0
 * @category constructors
 */
export const unmask = (
  repoRoot: string,
  pending: ReadonlyArray<PendingTest>,
  flag: "--resume" | "--last-failed" = "--resume"
): Effect.Effect<ReadonlyArray<PendingTest>, InvalidInput, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const issues: Array<Issue> = []
    const out: Array<PendingTest> = []
    const files = new Map<string, Either.Either<ReadonlyArray<Plan.LoadedPlan>, InvalidInput>>()
    for (const p of pending) {
      if (p.masked === undefined || p.masked.length === 0) {
        out.push(p)
        continue
      }
      const { source, id } = p.request
      const names = p.masked.join(", ")
      const refuse = (why: string, todo: string) =>
        issues.push(
          new Issue({
            where: `${flag}: test ${id}`,
            message: `its stored script had the value of secret ${names} masked as *** (the store never keeps a ` +
              `secret) and ${why}: grove will not run *** in its place; ${todo}`
          })
        )
      if (source === "--each") {
        refuse(
          "an --each test has no plan file to read it again from",
          `run it again with grove run --each, writing "$${p.masked[0]}" in the command rather than the value ` +
            `(with ${names} set in grove's environment)`
        )
        continue
      }
      const loaded = files.get(source) ?? (yield* Effect.either(Plan.load([source], { repoRoot, cwd: repoRoot })))
      files.set(source, loaded)
      if (Either.isLeft(loaded)) {
        refuse(
          `its plan file ${source} cannot be read again (${loaded.left.issues.map((i) => i.message).join("; ")})`,
          `restore ${source} and ${flag === "--resume" ? "resume" : "run --last-failed"} again, or run the test afresh from its plan (grove run ${source})`
        )
        continue
      }
      const request = rereadOf(p.request, loaded.right)
      if (request === undefined) {
        refuse(
          `its plan file ${source} no longer holds a test ${id}`,
          `run the test afresh from its plan (grove run ${source})`
        )
        continue
      }
      out.push({ request, sha: p.sha, refName: p.refName, attempts: p.attempts })
    }
    if (issues.length > 0) return yield* Effect.fail(new InvalidInput({ issues: issues as unknown as [Issue, ...Array<Issue>] }))
    return out
  })

/**
 * A short line for the terminal about what `prepare` reaped, or undefined when
 * there was nothing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const summarize = (prepared: Prepared): string | undefined => {
  const bits: Array<string> = []
  const { processes, worktrees: wt } = prepared
  if (processes.processes > 0) {
    bits.push(`terminated ${processes.processes} process${processes.processes === 1 ? "" : "es"} it left running`)
  }
  if (wt.removed.length > 0) bits.push(`removed ${wt.removed.length} worktree${wt.removed.length === 1 ? "" : "s"}`)
  if (prepared.closed > 0) {
    bits.push(`closed ${prepared.closed} interrupted attempt${prepared.closed === 1 ? "" : "s"} as CANCELLED`)
  }
  return bits.length === 0 ? undefined : bits.join(", ")
}

/** keys a snapshot of grove ≤ 0.1 wrote as bare milliseconds (now `<ms>ms`, as `Config.Input` encodes them) */
const legacyMillis = new Set<string>(["timeout", "killGrace", "retryBase", "retryCap", "setupTimeout"])

/**
 * The config a session was recorded with (`Config.snapshot`, stored with
 * SessionStarted), decoded through the one config Schema (`Config.Input`). Unknown
 * keys and values this grove cannot read are left out (the flags and defaults apply). A
 * resumed session runs with it, under the flags given to `--resume`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const configOf = (snapshot: string): Partial<GroveConfig> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(snapshot)
  } catch {
    return {}
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return {}
  const raw: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(parsed)) {
    raw[key] = legacyMillis.has(key) && typeof value === "number" ? `${value}ms` : value
  }
  // a value this grove cannot read is dropped (the current flags and defaults apply), not fatal
  for (let tries = 0; tries < Config.keys.length; tries++) {
    const decoded = Config.decode(raw, (key) => key)
    if (Either.isRight(decoded)) return decoded.right
    for (const issue of decoded.left) delete raw[issue.where]
  }
  return {}
}
