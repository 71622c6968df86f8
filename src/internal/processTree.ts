/**
 * Linux /proc helpers for terminating an attempt's whole process tree (SPEC §4):
 * its process group, every descendant (ppid links) and every process whose
 * environment carries the attempt's token (catches `setsid` escapees re-parented to
 * init). `signal` is the ONE function in grove that sends signals.
 *
 * Everything here reads /proc synchronously: a scan of a few hundred small files
 * takes about a millisecond. Waiting for processes to die is real time on purpose
 * (it is an OS process, not grove's logic), so it also works under TestClock.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"

/**
 * One line of /proc/<pid>/stat, the fields grove needs.
 *
 * @internal
 */
export interface ProcInfo {
  readonly pid: number
  readonly ppid: number
  readonly pgid: number
  readonly sid: number
  /** R, S, D, Z (zombie), T (stopped), X (dead) … */
  readonly state: string
  /** field 22: clock ticks after boot when the process started; tells a pid reused from the one recorded */
  readonly startTime: string
}

/**
 * Whether this system has a /proc grove can read (Linux).
 *
 * @internal
 */
export const procAvailable: boolean = Fs.existsSync("/proc/self/stat")

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may
 * itself hold spaces and parentheses, so fields are counted after the last `)`.
 *
 * @internal
 */
export const parseStat = (content: string): ProcInfo | undefined => {
  const open = content.indexOf("(")
  const close = content.lastIndexOf(")")
  if (open < 0 || close < open) return undefined
  const pid = Number(content.slice(0, open).trim())
  const rest = content.slice(close + 2).split(" ")
  // rest[0] is field 3, so field n is rest[n - 3]
  const state = rest[0]
  const ppid = Number(rest[1])
  const pgid = Number(rest[2])
  const sid = Number(rest[3])
  const startTime = rest[19]
  if (state === undefined || startTime === undefined || !Number.isInteger(pid)) return undefined
  return { pid, ppid, pgid, sid, state, startTime }
}

// One shared buffer and a single read: /proc files are small and generated on
// read; readFileSync's stat-then-read costs about three times as much per file.
let scratch = Buffer.allocUnsafe(16 * 1024)

/** the whole content of a /proc file, or undefined when it cannot be read; valid until the next call */
const readProc = (path: string): Buffer | undefined => {
  let fd: number
  try {
    fd = Fs.openSync(path, "r")
  } catch {
    return undefined
  }
  let length = 0
  let ok = true
  try {
    for (;;) {
      if (length === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2)
        scratch.copy(bigger, 0, 0, length)
        scratch = bigger
      }
      const n = Fs.readSync(fd, scratch, length, scratch.length - length, null)
      if (n === 0) break
      length += n
    }
  } catch {
    ok = false // the process went away while being read
  }
  try {
    Fs.closeSync(fd)
  } catch {
    // nothing to do: the fd is gone either way
  }
  return ok ? scratch.subarray(0, length) : undefined
}

/**
 * @internal
 */
export const readStat = (pid: number): ProcInfo | undefined => {
  const content = readProc(`/proc/${pid}/stat`)
  return content === undefined ? undefined : parseStat(content.toString("latin1"))
}

/**
 * /proc/<pid>/stat field 22 (start time in clock ticks after boot), or undefined when
 * there is no such process.
 *
 * @internal
 */
export const startTime = (pid: number): string | undefined => readStat(pid)?.startTime

/**
 * Gone for grove's purposes: no such process, or a zombie (it has exited; only its
 * parent's wait is missing, and init may never do it).
 *
 * @internal
 */
export const isGone = (info: ProcInfo | undefined): boolean =>
  info === undefined || info.state === "Z" || info.state === "X" || info.state === "x"

/**
 * Every process (not thread) of the system, zombies included.
 *
 * @internal
 */
export const listProcesses = (): ReadonlyArray<ProcInfo> => {
  let names: Array<string>
  try {
    names = Fs.readdirSync("/proc")
  } catch {
    return []
  }
  const out: Array<ProcInfo> = []
  for (const name of names) {
    const c = name.charCodeAt(0)
    if (c < 48 || c > 57) continue
    const info = readStat(Number(name))
    if (info !== undefined) out.push(info)
  }
  return out
}

/**
 * `pids` and all their descendants (following ppid links in `procs`).
 *
 * @internal
 */
export const withDescendants = (pids: Iterable<number>, procs: ReadonlyArray<ProcInfo>): Set<number> => {
  const children = new Map<number, Array<number>>()
  for (const p of procs) {
    const list = children.get(p.ppid)
    if (list === undefined) children.set(p.ppid, [p.pid])
    else list.push(p.pid)
  }
  const seen = new Set<number>()
  const stack = [...pids]
  while (stack.length > 0) {
    const pid = stack.pop()!
    if (seen.has(pid)) continue
    seen.add(pid)
    for (const child of children.get(pid) ?? []) stack.push(child)
  }
  return seen
}

/**
 * Whether /proc/<pid>/environ holds exactly the entry `entry` (e.g.
 * `GROVE_ATTEMPT_ID=abc`), as a whole NUL-separated entry.
 *
 * @internal
 */
export const environHas = (pid: number, entry: string): boolean => {
  const env = readProc(`/proc/${pid}/environ`)
  if (env === undefined) return false
  const needle = Buffer.from(entry, "utf8")
  let at = env.indexOf(needle)
  while (at !== -1) {
    const before = at === 0 || env[at - 1] === 0
    const end = at + needle.length
    const after = end === env.length || env[end] === 0
    if (before && after) return true
    at = env.indexOf(needle, at + 1)
  }
  return false
}

/** kernel threads (kthreadd and its children) have no environment worth reading */
const isKernelThread = (p: ProcInfo): boolean => p.pid === 2 || p.ppid === 2

/**
 * Live processes (not zombies) whose environment holds `entry`.
 *
 * @internal
 */
export const findByEnv = (entry: string, procs: ReadonlyArray<ProcInfo> = listProcesses()): ReadonlyArray<ProcInfo> =>
  procs.filter((p) => !isGone(p) && !isKernelThread(p) && p.pid !== process.pid && environHas(p.pid, entry))

let cachedOwnPgid: number | undefined
/**
 * grove's own process group.
 *
 * @internal
 */
export const ownPgid = (): number => {
  if (cachedOwnPgid === undefined) cachedOwnPgid = readStat(process.pid)?.pgid ?? process.pid
  return cachedOwnPgid
}

/**
 * Why `signal` refuses `pid`, or undefined when it may be signalled. Refused: 0
 * (own group), 1 (init), -1 (every process: as root, the whole machine), anything
 * that is not an integer, and grove's own pid or process group in either sign.
 *
 * @internal
 */
export const refusal = (pid: number): string | undefined => {
  if (!Number.isSafeInteger(pid)) return `${pid} is not a pid`
  if (pid === 0 || pid === 1 || pid === -1) return `pid ${pid} would signal more than one test's processes`
  const abs = Math.abs(pid)
  if (abs === process.pid) return `pid ${pid} is grove itself`
  if (abs === ownPgid()) return `pid ${pid} is grove's own process group`
  return undefined
}

/**
 * @internal
 */
export type SignalResult = "sent" | "gone" | "denied" | "refused"

/**
 * The one function that sends signals. A negative pid names a process group.
 * Never throws: "refused" for the pids of `refusal`, "gone" when there is no such
 * process (ESRCH), "denied" on EPERM.
 *
 * @internal
 */
export const signal = (pid: number, sig: NodeJS.Signals | 0): SignalResult => {
  if (refusal(pid) !== undefined) return "refused"
  try {
    process.kill(pid, sig)
    return "sent"
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM" ? "denied" : "gone"
  }
}

/**
 * What identifies one attempt's processes.
 *
 * @internal
 */
export interface Target {
  /** the wrapper's pid, which is also the process group id (it was spawned detached) */
  readonly pgid: number
  /**
   * the leader's start time (`startTime(pgid)` right after spawn). When the pid now
   * belongs to a process with another start time, the pid was reused and the group
   * is not the attempt's any more: only `envEntry` is followed then.
   */
  readonly startTime?: string | undefined
  /** an environment entry only this attempt's processes carry, e.g. `GROVE_ATTEMPT_ID=…` */
  readonly envEntry?: string | undefined
  /**
   * the start time of the attempt's first process (its leader's): every process that
   * carries `envEntry` was forked after it, so the environment of older processes is
   * not read (most of the machine's, most of the time)
   */
  readonly since?: string | undefined
}

/** `a` started at or after `b` (start times in clock ticks, as /proc gives them) */
const startedSince = (a: string, b: string): boolean =>
  a.length !== b.length ? a.length > b.length : a >= b

/**
 * Whether the process group `target.pgid` is still the attempt's. A pgid cannot be
 * reused while the group has a member, so a group without its leader is still ours;
 * a leader with another start time is a new process that got the same pid.
 */
const groupIsOurs = (target: Target, procs: ReadonlyArray<ProcInfo>): boolean => {
  if (target.startTime === undefined) return true
  const leader = procs.find((p) => p.pid === target.pgid)
  return leader === undefined || leader.startTime === target.startTime
}

/**
 * The live processes of an attempt: its group, processes carrying its environment
 * entry, and all their descendants. Zombies count as gone; grove itself never counts.
 * With `known` (an earlier result), the environment scan is replaced by those
 * processes (same pid and start time): cheap enough to poll every 25 ms, and what
 * they fork is found as their descendants.
 *
 * @internal
 */
export const findTarget = (
  target: Target,
  procs: ReadonlyArray<ProcInfo> = listProcesses(),
  known?: ReadonlyArray<ProcInfo>
): ReadonlyArray<ProcInfo> => {
  const ours = groupIsOurs(target, procs)
  const knownKeys = known === undefined ? undefined : new Set(known.map((p) => `${p.pid}:${p.startTime}`))
  const since = target.since
  const seeds: Array<number> = []
  for (const p of procs) {
    if (isGone(p)) continue
    if (ours && p.pgid === target.pgid) seeds.push(p.pid)
    else if (knownKeys !== undefined) {
      if (knownKeys.has(`${p.pid}:${p.startTime}`)) seeds.push(p.pid)
    } else if (
      target.envEntry !== undefined && !isKernelThread(p) && (since === undefined || startedSince(p.startTime, since)) &&
      environHas(p.pid, target.envEntry)
    ) {
      seeds.push(p.pid)
    }
  }
  const all = withDescendants(seeds, procs)
  return procs.filter((p) => all.has(p.pid) && !isGone(p) && p.pid !== process.pid)
}

/**
 * A wait on the real clock (not Effect's Clock): waiting for an OS process to die
 * takes real time even under TestClock.
 *
 * @internal
 */
export const realSleep = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

const send = (target: Target, live: ReadonlyArray<ProcInfo>, sig: NodeJS.Signals, group = true): void => {
  // the group as a whole first (atomic, also reaches a child forked after the scan);
  // only while it has live members, so the pgid cannot have been reused
  if (group && live.some((p) => p.pgid === target.pgid) && groupIsOurs(target, live)) signal(-target.pgid, sig)
  for (const p of live) signal(p.pid, sig)
}

/**
 * How a termination went.
 *
 * @internal
 */
export interface Terminated {
  /** live processes found when it started */
  readonly found: number
  /** processes still alive after the grace period, which got SIGKILL */
  readonly killed: number
}

/**
 * SIGTERM to the attempt's group and every process of `findTarget` (plus SIGCONT, so
 * a stopped process can act on it), a wait of up to `grace` polling every 25 ms
 * for them to be gone, then SIGKILL to whatever remains (repeated until nothing is
 * left, for children forked in between). Without /proc (macOS) it falls back to the
 * process group alone. Uninterruptible: once started it finishes, within about
 * `grace` plus a few scans.
 *
 * @internal
 */
export const terminate = (
  target: Target,
  grace: Duration.DurationInput,
  /** polled while waiting: true cuts the grace period short (a second Ctrl-C) */
  hurried: () => boolean = () => false
): Effect.Effect<Terminated> =>
  Effect.gen(function*() {
    if (!procAvailable) return yield* terminateGroupOnly(target.pgid, grace)
    const full = Effect.sync(() => findTarget(target))
    const quick = (known: ReadonlyArray<ProcInfo>) => Effect.sync(() => findTarget(target, listProcesses(), known))
    const first = yield* full
    if (first.length === 0) return { found: 0, killed: 0 }
    // every process gets SIGTERM once, also those forked or found after the first scan
    const termed = new Set<string>()
    const termNew = (procs: ReadonlyArray<ProcInfo>, group: boolean) => {
      const fresh = procs.filter((p) => !termed.has(`${p.pid}:${p.startTime}`))
      if (fresh.length === 0) return
      for (const p of fresh) termed.add(`${p.pid}:${p.startTime}`)
      send(target, fresh, "SIGTERM", group)
      send(target, fresh, "SIGCONT", group)
    }
    termNew(first, true)
    const deadline = Date.now() + Duration.toMillis(Duration.decode(grace))
    let live = yield* quick(first)
    for (;;) {
      // looks done: confirm with a full scan (environment included) before believing it
      if (live.length === 0) live = yield* full
      if (live.length === 0 || Date.now() >= deadline || hurried()) break
      termNew(live, false)
      yield* realSleep(Math.max(1, Math.min(25, deadline - Date.now())))
      live = yield* quick(live)
    }
    const killed = live.length
    for (let round = 0; live.length > 0 && round < 50; round++) {
      send(target, live, "SIGKILL")
      yield* realSleep(5)
      live = yield* full
    }
    return { found: first.length, killed }
  }).pipe(Effect.uninterruptible)

const terminateGroupOnly = (pgid: number, grace: Duration.DurationInput): Effect.Effect<Terminated> =>
  Effect.gen(function*() {
    const alive = () => signal(-pgid, 0) === "sent"
    if (!alive()) return { found: 0, killed: 0 }
    signal(-pgid, "SIGTERM")
    signal(-pgid, "SIGCONT")
    const deadline = Date.now() + Duration.toMillis(Duration.decode(grace))
    while (alive() && Date.now() < deadline) yield* realSleep(25)
    const killed = alive() ? 1 : 0
    if (killed) signal(-pgid, "SIGKILL")
    return { found: 1, killed }
  })
