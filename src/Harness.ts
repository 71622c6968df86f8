/**
 * Runs one attempt of a test: every step in one process group, output to a capped
 * log with a bounded tail, secrets masked, the whole tree terminated at the end.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { Readable } from "node:stream"
import type { Step } from "./Domain.js"
import { HarnessError } from "./GroveError.js"
import * as Mask from "./internal/mask.js"
import * as ProcessTree from "./internal/processTree.js"
import * as Tail from "./internal/tail.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface AttemptSpec {
  readonly testId: string
  readonly attempt: number
  /** unique per attempt; put in the environment as GROVE_ATTEMPT_ID to find escaped processes */
  readonly attemptKey: string
  readonly steps: ReadonlyArray<Step>
  /** absolute folder the steps run in */
  readonly cwd: string
  /** added to grove's own environment (test env and GROVE_* variables) */
  readonly env: Readonly<Record<string, string>>
  /** values replaced by *** in the log and the tail */
  readonly secrets: ReadonlyArray<string>
  readonly logPath: string
  readonly logCap: number
  readonly tailBytes: number
  readonly killGrace: Duration.Duration
  /** when it completes, the grace period is cut short: SIGKILL at once (a second Ctrl-C) */
  readonly hurry?: Effect.Effect<void>
  /** called once the process group exists (for the store's reaper) */
  readonly onSpawn?: (info: { readonly pgid: number; readonly startTime: string }) => Effect.Effect<void>
}

/**
 * What an attempt's processes showed, whether they ended or were stopped.
 *
 * @since 0.1.0
 * @category models
 */
export interface Seen {
  /** last `tailBytes` of output, masked, decoded as UTF-8 */
  readonly tail: string
  /** bytes the steps wrote; those past logCap were dropped */
  readonly bytes: number
  /**
   * 0-based index of the step that failed, when one did; for a stopped attempt, the
   * step that was running
   */
  readonly failedStep: number | undefined
  /** the signal that ended the wrapper, if one did */
  readonly signal: string | null
}

/**
 * How an attempt ended: its steps ran to an end (`Exited`), or it was stopped at its
 * deadline (`TimedOut`, applied by `runWithin`, never by a Harness).
 *
 * @since 0.1.0
 * @category models
 */
export interface AttemptOutcome extends Seen {
  readonly _tag: "Exited" | "TimedOut"
  /** the failing step's exit code, 0 when all passed, null when killed by a signal or timed out */
  readonly exitCode: number | null
}

/**
 * An attempt whose process group exists. Its processes belong to the scope `spawn`
 * ran in: closing it terminates the whole tree (SIGTERM, SIGKILL after the grace).
 *
 * @since 0.1.0
 * @category models
 */
export interface Spawned {
  /** waits for the steps to end, then for their output: what they did */
  readonly exited: Effect.Effect<AttemptOutcome, HarnessError>
  /** terminates the whole tree now, drains its output and hands back what it saw */
  readonly stop: Effect.Effect<Seen, HarnessError>
}

/**
 * Spawns an attempt and streams its output. A Harness knows nothing of deadlines:
 * the caller decides how long to wait (`runWithin`) and stops it.
 *
 * @since 0.1.0
 * @category tags
 */
export class Harness extends Context.Tag("grove/Harness")<Harness, {
  readonly spawn: (spec: AttemptSpec) => Effect.Effect<Spawned, HarnessError, Scope.Scope>
}>() {}

/**
 * Deadlines on Effect's Clock that share one sleeping fiber: it sleeps until the
 * earliest deadline and is replaced only when an earlier one arrives. An attempt
 * that ends before its deadline (nearly all of them) then costs no fiber for it,
 * where `Effect.timeout` forks two per call. A session provides one to its workers;
 * `runWithin` makes its own for the call when none is provided. Tests drive it with
 * TestClock like any sleep.
 *
 * @since 0.1.0
 * @category tags
 */
export class Deadlines extends Context.Tag("grove/Deadlines")<Deadlines, {
  /**
   * calls `fire` once the Clock reaches `at` (epoch millis), unless the returned
   * function is called first (it cancels)
   */
  readonly at: (at: number, fire: () => void) => Effect.Effect<() => void>
}>() {}

/**
 * The sleeping fiber belongs to the scope: closing it interrupts the sleep.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDeadlines: Effect.Effect<Deadlines["Type"], never, Scope.Scope> = Effect.map(Effect.scope, (scope) => {
  interface Entry {
    readonly at: number
    readonly fire: () => void
  }
  /** the deadlines not yet due nor cancelled (a few: one per running attempt) */
  const entries = new Set<Entry>()
  /** the sleeper's wake-up time; a sleeper whose Armed is no longer `armed` ends at once */
  interface Armed {
    at: number
    fiber: Fiber.RuntimeFiber<void> | undefined
  }
  let armed: Armed | undefined
  const earliest = () => {
    let min = Infinity
    for (const e of entries) if (e.at < min) min = e.at
    return min
  }
  const sleeper = (me: Armed): Effect.Effect<void> =>
    Effect.gen(function*() {
      while (armed === me) {
        const now = yield* Clock.currentTimeMillis
        if (me.at > now) {
          yield* Effect.sleep(Duration.millis(me.at - now))
          continue
        }
        for (const e of entries) {
          if (e.at <= now) {
            entries.delete(e)
            e.fire()
          }
        }
        const next = earliest()
        if (next === Infinity) armed = undefined
        else me.at = next
      }
    })
  return Deadlines.of({
    at: (at, fire) =>
      Effect.suspend(() => {
        const entry: Entry = { at, fire }
        const cancel = () => {
          entries.delete(entry)
        }
        if (at === Infinity) return Effect.succeed(cancel)
        entries.add(entry)
        // the sleeper wakes in time for it (it re-arms for the earliest when it wakes)
        if (armed !== undefined && armed.at <= at) return Effect.succeed(cancel)
        const previous = armed
        const me: Armed = { at, fiber: undefined }
        armed = me
        return Effect.forkIn(Effect.interruptible(sleeper(me)), scope).pipe(
          Effect.map((fiber) => {
            me.fiber = fiber
            // replaced: it would wake too late (an interrupt is a message, no fiber forked)
            previous?.fiber?.unsafeInterruptAsFork(fiber.id())
            return cancel
          })
        )
      })
  })
})

/** how `runWithin`'s wait ended: the steps ended, or the deadline came */
type Ended =
  | { readonly _tag: "Exited"; readonly exit: Exit.Exit<AttemptOutcome, HarnessError> }
  | { readonly _tag: "Deadline" }

const deadlineReached: Ended = { _tag: "Deadline" }

/**
 * Runs an attempt for at most `timeout`, counted from the spawn on Effect's Clock: at
 * the deadline the tree is stopped and the attempt is `TimedOut` with what it showed
 * (its tail, the step that was running). The one place a timeout is applied, for tests
 * (the Runner's local Executor, a cluster runner) and setup (the pool) alike.
 * Interrupting it terminates the tree.
 *
 * The steps are waited for in one fiber of their own; the deadline is an entry of the
 * context's `Deadlines` (a session provides one to its workers), else of one made for
 * the call — not `Effect.timeout`, which forks two fibers per call.
 *
 * @since 0.1.0
 * @category constructors
 */
export const runWithin = (
  harness: Harness["Type"],
  spec: AttemptSpec,
  timeout: Duration.Duration
): Effect.Effect<AttemptOutcome, HarnessError> => Effect.scoped(attemptWithin(harness, spec, timeout))

// made once: a generator function made per call gets a prototype and maps of its own
// from V8 on its first call (Runner.ts)
const attemptWithin = Effect.fnUntraced(function*(harness: Harness["Type"], spec: AttemptSpec, timeout: Duration.Duration) {
  const provided = yield* Effect.serviceOption(Deadlines)
  const deadlines = Option.isSome(provided) ? provided.value : yield* makeDeadlines
  const spawned = yield* harness.spawn(spec)
  const at = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
  // what came first, the exit or the deadline: Effect's Latch and the value, not a Deferred —
  // V8 gave each Deferred made here (Effect 3.22 spreads a prototype into it) four maps of
  // its own, in old space, every test (docs/design.md)
  let first: Ended | undefined
  const ended = Effect.unsafeMakeLatch()
  const end = (e: Ended) => {
    if (first !== undefined) return
    first = e
    ended.unsafeOpen()
  }
  // interruptible whatever the caller's region: the deadline interrupts it
  const steps = yield* Effect.fork(Effect.interruptible(spawned.exited))
  steps.addObserver((exit) => end({ _tag: "Exited", exit }))
  const cancel = yield* deadlines.at(at, () => end(deadlineReached))
  const came = yield* ended.await.pipe(
    // the latch opens only once `first` is set
    Effect.map(() => first!),
    Effect.onInterrupt(() => Fiber.interrupt(steps)),
    Effect.ensuring(Effect.sync(cancel))
  )
  if (came._tag === "Exited") return yield* came.exit
  yield* Fiber.interrupt(steps)
  const seen = yield* spawned.stop
  return { ...seen, _tag: "TimedOut", exitCode: null } satisfies AttemptOutcome
})

// ---------------------------------------------------------------------------
// output: masked, capped log + bounded tail (shared by the real and the fake)
// ---------------------------------------------------------------------------

/**
 * The line appended to a log that reached its cap.
 *
 * @since 0.1.0
 * @category constructors
 */
export const droppedMarker = (logCap: number, dropped: number): string =>
  `\n[grove] log capped at ${logCap} bytes: ${dropped} more bytes were dropped\n`

interface Output {
  /** raw bytes of one source (0: stdout, 1: stderr) */
  readonly write: (source: 0 | 1, chunk: Uint8Array) => void
  /** flushes the maskers and writes the dropped marker; call once, at the end */
  readonly finish: () => void
  /** raw bytes written by the steps */
  readonly bytes: () => number
  readonly tail: () => string
  /** the first error of `sink`, if any (the log is not written any further after it) */
  readonly error: () => unknown
}

/**
 * Masks each source with its own masker (so a secret split across two writes of one
 * stream is still found; the wrapper merges stderr into stdout, so in practice there
 * is one ordered stream), keeps the tail, and hands at most `logCap` bytes to `sink`,
 * then counts the rest. Nothing is split into lines or decoded on the way.
 */
const makeOutput = (options: {
  readonly secrets: ReadonlyArray<string>
  readonly logCap: number
  readonly tailBytes: number
  readonly sink: (bytes: Uint8Array) => void
}): Output => {
  const maskers = [Mask.makeMasker(options.secrets), Mask.makeMasker(options.secrets)] as const
  const tail = Tail.makeTail(options.tailBytes)
  const cap = Math.max(0, Math.floor(options.logCap))
  let raw = 0
  let logged = 0
  let dropped = 0
  let error: unknown = undefined
  const sink = (bytes: Uint8Array): void => {
    if (error !== undefined || bytes.length === 0) return
    try {
      options.sink(bytes)
    } catch (e) {
      error = e
    }
  }
  const emit = (masked: Uint8Array): void => {
    if (masked.length === 0) return
    tail.push(masked)
    const room = cap - logged
    if (room >= masked.length) {
      logged += masked.length
      sink(masked)
    } else {
      if (room > 0) {
        logged += room
        sink(masked.subarray(0, room))
      }
      dropped += masked.length - Math.max(0, room)
    }
  }
  return {
    write: (source, chunk) => {
      raw += chunk.length
      emit(maskers[source].push(chunk))
    },
    finish: () => {
      emit(maskers[0].flush())
      emit(maskers[1].flush())
      if (dropped > 0) sink(Buffer.from(droppedMarker(cap, dropped), "utf8"))
    },
    bytes: () => raw,
    tail: () => tail.text(),
    error: () => error
  }
}

// ---------------------------------------------------------------------------
// layerShell
// ---------------------------------------------------------------------------

/**
 * Why a wrapper: every step of an attempt must live in ONE process group (so the
 * group, and what `setsid` lets escape it, can be terminated as a whole), yet each
 * step runs in its own shell so `cd`/`export` do not carry over. Node can only put
 * a child in a new group (`detached: true`), not in an existing one, so grove spawns
 * one detached `sh` that becomes the group leader and runs the steps as its children,
 * in order, stopping at the first failing one and exiting with its code. (`sh`, not
 * bash: the wrapper is plain POSIX, and on Debian's dash it starts in about half the
 * time; the steps still get bash or sh as their plan says.)
 * Before step i starts it writes `i` on fd 3 (a pipe only the wrapper holds: steps
 * get fd 3 closed), so grove knows which step failed or was running at a timeout; an
 * attempt of one step has no fd 3 (that step is the one). `exec 2>&1`, its first
 * line, merges stderr into stdout: one ordered byte stream, as a terminal shows it, and
 * the only pipe grove reads (the wrapper's own stderr is not one: a pipe and a socket
 * fewer per attempt).
 * Arguments: pairs of (shell, source), the source being a script file or `-`.
 *
 * How a step gets its script: not in argv — one argument past 128 KiB fails to start
 * (Linux's limit on one argument, `spawn E2BIG`; all of them together past ARG_MAX),
 * a plan with a big heredoc or an inlined fixture is ordinary, and argv is readable by
 * every user of the machine (`ps`), while a script may spell out a secret value. The
 * step's shell reads its script on stdin and `eval`s it, with stdin then /dev/null:
 * still `bash -eo pipefail -c SCRIPT bash` (or `sh -e -c SCRIPT sh`) as far as the
 * script can tell — `$0` is `bash`, no positional parameters, messages read
 * `bash: line N: …` — rather than `bash FILE`, which would show a path as `$0` and in
 * every error. bash reads it with `$(</dev/stdin)` (a subshell, no other program);
 * dash has no such form, so sh steps use `command -p cat` (found whatever PATH the
 * test sets). Small scripts (see `inlineLimit`) come in the wrapper's environment as
 * `GROVE_STEP_SCRIPT_<i>` (private to the user, like a 0600 file: /proc/<pid>/environ),
 * which the wrapper moves into shell variables and unsets before any step starts, so
 * no step and no child sees them, and hands to the step's stdin as a here-document
 * (those variables, `__grove_script*`, are unset first, so that one inherited from
 * grove's or the test's environment cannot carry a script into a step's);
 * bigger ones, or ones with a NUL byte, go through files (see `writeScripts`).
 * Creating and removing a folder and a file per attempt cost more than the step's
 * shell itself on a file system that recycles inodes slowly (ext4 without a journal:
 * 2–4 ms per attempt on the B6 machine).
 */
const WRAPPER = `exec 2>&1
n=$(($# / 2))
i=0
unset __grove_script
while [ "$i" -lt "$n" ]; do
  unset "__grove_script_$i"
  eval "__grove_script_$i=\\\${GROVE_STEP_SCRIPT_$i-}"
  unset "GROVE_STEP_SCRIPT_$i"
  i=$((i + 1))
done
i=0
while [ "$#" -gt 1 ]; do
  if [ "$n" -gt 1 ]; then printf '%s\\n' "$i" >&3; fi
  if [ "$2" = - ]; then
    eval "__grove_script=\\\$__grove_script_$i"
    if [ "$1" = bash ]; then
      bash -eo pipefail -c 'eval "$(</dev/stdin)" </dev/null' bash 3>&- <<GROVE_SCRIPT_END
$__grove_script
GROVE_SCRIPT_END
    else
      sh -e -c 'eval "$(command -p cat)" </dev/null' sh 3>&- <<GROVE_SCRIPT_END
$__grove_script
GROVE_SCRIPT_END
    fi
  elif [ "$1" = bash ]; then
    bash -eo pipefail -c 'eval "$(</dev/stdin)" </dev/null' bash <"$2" 3>&-
  else
    sh -e -c 'eval "$(command -p cat)" </dev/null' sh <"$2" 3>&-
  fi
  rc=$?
  if [ "$rc" -ne 0 ]; then exit "$rc"; fi
  shift 2
  i=$((i + 1))
done
exit 0
`

/**
 * The largest script (UTF-8 bytes) that goes to its step through the environment,
 * and the most all of an attempt's such scripts may take together; the rest go
 * through files. Far below Linux's 128 KiB per variable and the ARG_MAX that the
 * environment shares with grove's own variables.
 *
 * @since 0.1.0
 * @category constants
 */
export const inlineLimit = { perStep: 32 * 1024, perAttempt: 64 * 1024 } as const

/** for each step, whether its script goes through the environment (else a file) */
const inlined = (steps: ReadonlyArray<Step>): ReadonlyArray<boolean> => {
  let total = 0
  return steps.map((step) => {
    const bytes = Buffer.byteLength(step.script, "utf8")
    if (bytes > inlineLimit.perStep || total + bytes > inlineLimit.perAttempt || step.script.includes("\u0000")) return false
    total += bytes
    return true
  })
}

/**
 * The folder of an attempt's step scripts that are too big for the environment:
 * beside its log, named after it. It holds the scripts as written in the plan (secret
 * values a script spells out included), so it is private to the user (0700, files
 * 0600) and removed when the attempt ends, however it ends.
 *
 * @since 0.1.0
 * @category constructors
 */
export const scriptsDir = (logPath: string): string => `${logPath}.steps`

/**
 * Writes one file per step that is not inlined (`1.bash`, `2.sh`, …) into a fresh
 * `scriptsDir`; returns, per step, its file or `-` (inlined). The release removes the
 * folder. Nothing is written when every script is inlined.
 */
const writeScripts = (spec: AttemptSpec, inline: ReadonlyArray<boolean>) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        if (inline.every((x) => x)) return spec.steps.map(() => "-")
        const dir = scriptsDir(spec.logPath)
        // a folder of a crashed run (same log path) would keep its old scripts
        Fs.rmSync(dir, { recursive: true, force: true })
        Fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
        Fs.chmodSync(dir, 0o700) // whatever the umask
        return spec.steps.map((step, i) => {
          if (inline[i]) return "-"
          const file = NodePath.join(dir, `${i + 1}.${step.shell}`)
          Fs.writeFileSync(file, step.script, { mode: 0o600, flag: "wx" })
          return file
        })
      },
      catch: (cause) =>
        spawnError(
          `could not write the step scripts to ${scriptsDir(spec.logPath)}: ${(cause as Error).message ?? String(cause)}; check free space and permissions`,
          cause
        )
    }),
    (sources) =>
      sources.every((s) => s === "-")
        ? Effect.void
        : Effect.sync(() => Fs.rmSync(scriptsDir(spec.logPath), { recursive: true, force: true })).pipe(Effect.ignore)
  )

/**
 * how long to wait, once the tree is gone, for the pipes to close and the exit to be
 * seen; only a pipe holder out of grove's reach (no token, not a descendant) makes
 * this wait the full time
 */
const DRAIN_MILLIS = 500
/** fd 3 carries only step numbers; more than this is not the wrapper talking */
const MARKER_CAP = 64 * 1024

interface ExitInfo {
  readonly code: number | null
  readonly signal: string | null
}

interface Leader {
  readonly pid: number
  readonly startTime: string
  /** the wrapper's exit (not the end of its output) */
  readonly exit: Effect.Effect<ExitInfo>
  readonly exitNow: () => ExitInfo | undefined
  /** the last step the wrapper started, if any */
  readonly lastStarted: () => number | undefined
  /**
   * waits up to `millis` (real time) for every pipe to close and the exit to be seen,
   * then closes grove's ends of the pipes
   */
  readonly drain: (millis: number) => Effect.Effect<void>
  readonly destroy: () => void
}

const spawnError = (detail: string, cause?: unknown) =>
  new HarnessError(cause === undefined ? { reason: "Spawn", detail } : { reason: "Spawn", detail, cause })

const childEnv = (spec: AttemptSpec, sources: ReadonlyArray<string>): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  Object.assign(env, spec.env)
  env.GROVE_ATTEMPT_ID = spec.attemptKey
  sources.forEach((source, i) => {
    if (source === "-") env[`GROVE_STEP_SCRIPT_${i}`] = spec.steps[i]!.script
  })
  return env
}

const checkCwd = (cwd: string): Effect.Effect<void, HarnessError> =>
  Effect.try({
    try: () => Fs.statSync(cwd),
    catch: (cause) =>
      spawnError(`the test's folder ${cwd} does not exist or cannot be read: check the test's cwd`, cause)
  }).pipe(Effect.flatMap((stat) =>
    stat.isDirectory()
      ? Effect.void
      : Effect.fail(spawnError(`the test's folder ${cwd} is not a folder: check the test's cwd`))
  ))

const openLog = (path: string): Effect.Effect<number, HarnessError> =>
  Effect.try({
    try: () => {
      Fs.mkdirSync(NodePath.dirname(path), { recursive: true })
      return Fs.openSync(path, "w")
    },
    catch: (cause) =>
      new HarnessError({
        reason: "Log",
        detail: `${path}: ${(cause as Error).message ?? String(cause)}; check that its folder is writable`,
        cause
      })
  })

const writeAll = (fd: number) => (bytes: Uint8Array): void => {
  let off = 0
  while (off < bytes.length) off += Fs.writeSync(fd, bytes, off, bytes.length - off)
}

const spawnLeader = (spec: AttemptSpec, sources: ReadonlyArray<string>, output: Output): Effect.Effect<Leader, HarnessError> =>
  Effect.suspend(() => {
    const args = ["-c", WRAPPER, "grove-attempt"]
    spec.steps.forEach((step, i) => args.push(step.shell, sources[i]!))
    let child: ChildProcess.ChildProcess
    try {
      child = ChildProcess.spawn("sh", args, {
        cwd: spec.cwd,
        env: childEnv(spec, sources),
        detached: true, // setsid: the wrapper leads a new session and process group
        // stdin is /dev/null; stderr goes to stdout (the wrapper's first line); fd 3: step numbers
        stdio: spec.steps.length > 1 ? ["ignore", "pipe", "ignore", "pipe"] : ["ignore", "pipe", "ignore"]
      })
    } catch (cause) {
      return Effect.fail(spawnError(`sh in ${spec.cwd}: ${(cause as Error).message}`, cause))
    }
    let spawnFailure: unknown = undefined
    let onSpawnFailure: ((e: unknown) => void) | undefined
    child.on("error", (e) => {
      spawnFailure ??= e
      onSpawnFailure?.(e)
    })
    const pid = child.pid
    if (pid === undefined) {
      // the failure (ENOENT, EACCES, …) arrives as an event on a later tick
      return Effect.async<never, HarnessError>((resume) => {
        const fail = (e: unknown) =>
          resume(Effect.fail(spawnError(`sh in ${spec.cwd}: ${(e as Error).message ?? String(e)}; are sh and bash on PATH?`, e)))
        if (spawnFailure !== undefined) fail(spawnFailure)
        else onSpawnFailure = fail
      })
    }
    // read now, synchronously: the child cannot have been reaped yet (at worst a zombie)
    const startTime = ProcessTree.startTime(pid) ?? ""

    let exitInfo: ExitInfo | undefined
    const waiting: Array<(info: ExitInfo) => void> = []
    const streams: Array<Readable> = []
    let open = 0 // streams not closed yet
    const settledWaiters: Array<() => void> = []
    const settled = () => open === 0 && exitInfo !== undefined
    const checkSettled = () => {
      if (settled()) for (const w of settledWaiters.splice(0)) w()
    }
    child.on("exit", (code, sig) => {
      exitInfo = { code, signal: sig }
      for (const w of waiting.splice(0)) w(exitInfo)
      checkSettled()
    })

    const track = (stream: Readable | null | undefined, onData: (chunk: Buffer) => void) => {
      if (stream === null || stream === undefined) return
      streams.push(stream)
      open++
      stream.on("data", onData)
      stream.on("error", () => {}) // EPIPE/ECONNRESET once destroyed: nothing to do
      stream.on("close", () => {
        open--
        checkSettled()
      })
    }
    track(child.stdout, (chunk) => output.write(0, chunk))
    track(child.stderr, (chunk) => output.write(1, chunk))
    let markers = ""
    track(child.stdio[3] as Readable | null, (chunk) => {
      if (markers.length < MARKER_CAP) markers += chunk.toString("latin1")
    })

    const destroy = () => {
      for (const s of streams) s.destroy()
    }
    const leader: Leader = {
      pid,
      startTime,
      exit: Effect.async<ExitInfo>((resume) => {
        if (exitInfo !== undefined) return resume(Effect.succeed(exitInfo))
        const w = (info: ExitInfo) => resume(Effect.succeed(info))
        waiting.push(w)
        return Effect.sync(() => {
          const i = waiting.indexOf(w)
          if (i >= 0) waiting.splice(i, 1)
        })
      }),
      exitNow: () => exitInfo,
      lastStarted: () => {
        if (spec.steps.length === 1) return 0
        const lines = markers.split("\n").filter((l) => /^\d+$/.test(l))
        return lines.length === 0 ? undefined : Number(lines[lines.length - 1])
      },
      drain: (millis) =>
        Effect.async<void>((resume) => {
          if (settled()) return resume(Effect.void)
          const forget = () => {
            clearTimeout(timer)
            const i = settledWaiters.indexOf(done)
            if (i >= 0) settledWaiters.splice(i, 1)
          }
          const done = () => {
            forget()
            resume(Effect.void)
          }
          const timer = setTimeout(done, millis)
          settledWaiters.push(done)
          return Effect.sync(forget)
        }).pipe(Effect.ensuring(Effect.sync(destroy))),
      destroy
    }
    return Effect.succeed(leader)
  })

const spawnShell = (spec: AttemptSpec): Effect.Effect<Spawned, HarnessError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkCwd(spec.cwd)
    let logOpen = false
    const fd = yield* Effect.acquireRelease(
      openLog(spec.logPath).pipe(Effect.tap(() =>
        Effect.sync(() => {
          logOpen = true
        })
      )),
      (fd) =>
        Effect.sync(() => {
          logOpen = false // a late write must never reach a reused fd number
          Fs.closeSync(fd)
        }).pipe(Effect.ignore)
    )
    const write = writeAll(fd)
    const output = makeOutput({
      secrets: spec.secrets,
      logCap: spec.logCap,
      tailBytes: spec.tailBytes,
      sink: (bytes) => {
        if (logOpen) write(bytes)
      }
    })

    // Termination is the release of the leader, so it runs however the attempt ends
    // (pass, fail, stop, interruption), uninterruptibly, within about killGrace.
    let terminated = false
    let hurried = false
    if (spec.hurry !== undefined) {
      yield* Effect.forkScoped(Effect.andThen(spec.hurry, Effect.sync(() => (hurried = true))))
    }
    const terminate = (leader: Leader) =>
      Effect.suspend(() => {
        if (terminated) return Effect.void
        terminated = true
        return ProcessTree.terminate({
          pgid: leader.pid,
          startTime: leader.startTime === "" ? undefined : leader.startTime,
          envEntry: `GROVE_ATTEMPT_ID=${spec.attemptKey}`,
          since: leader.startTime === "" ? undefined : leader.startTime
        }, spec.killGrace, () => hurried)
      }).pipe(Effect.asVoid, Effect.uninterruptible)
    // acquired before the leader, so removed after every process of the attempt is gone
    const sources = yield* writeScripts(spec, inlined(spec.steps))
    const leader = yield* Effect.acquireRelease(
      spawnLeader(spec, sources, output),
      (leader) => terminate(leader).pipe(Effect.zipRight(Effect.sync(leader.destroy)))
    )
    if (spec.onSpawn !== undefined) yield* spec.onSpawn({ pgid: leader.pid, startTime: leader.startTime })

    /** ends the tree (what the wrapper left, or all of it), then what it wrote */
    const settle = Effect.gen(function*() {
      yield* terminate(leader)
      yield* leader.drain(DRAIN_MILLIS)
      output.finish()
      const logError = output.error()
      if (logError !== undefined) {
        return yield* Effect.fail(
          new HarnessError({
            reason: "Log",
            detail: `${spec.logPath}: ${(logError as Error).message ?? String(logError)}; check free space and permissions`,
            cause: logError
          })
        )
      }
      return { tail: output.tail(), bytes: output.bytes() }
    })

    return {
      // completion is the wrapper's exit, not the end of its output
      exited: Effect.gen(function*() {
        const { code, signal } = yield* leader.exit
        const { bytes, tail } = yield* settle
        const passed = code === 0 && signal === null
        return {
          _tag: "Exited",
          exitCode: signal === null ? code : null,
          signal,
          failedStep: passed ? undefined : leader.lastStarted(),
          tail,
          bytes
        } satisfies AttemptOutcome
      }),
      stop: Effect.gen(function*() {
        const { bytes, tail } = yield* settle
        return { signal: leader.exitNow()?.signal ?? null, failedStep: leader.lastStarted(), tail, bytes } satisfies Seen
      })
    } satisfies Spawned
  })

/**
 * The real Harness: bash wrapper per attempt as a process-group leader, output
 * streamed as bytes to the log, whole tree terminated through /proc at the end.
 * Needs nothing from the context (it uses Node's `child_process` and `fs` directly:
 * the platform CommandExecutor waits without deadline for a child that ignores
 * SIGTERM, and ties completion to the end of output).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeShell: Effect.Effect<Harness["Type"]> = Effect.succeed(Harness.of({ spawn: spawnShell }))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerShell: Layer.Layer<Harness> = Layer.effect(Harness, makeShell)

// ---------------------------------------------------------------------------
// layerMemory: the scripted fake
// ---------------------------------------------------------------------------

/**
 * What a scripted attempt does.
 *
 * @since 0.1.0
 * @category models
 */
export interface Scripted {
  /** the exit code (ignored when `signal` is set) */
  readonly exitCode: number
  /** a death by this signal, e.g. "SIGSEGV" (exitCode is then null) */
  readonly signal?: string
  /** how long the steps run, on Effect's Clock; default 0 (a caller's deadline may stop them first) */
  readonly durationMs?: number
  /** what the steps print (masked, capped and tailed as the real harness does) */
  readonly output?: string
  /** the failing step; default: the last step, when exitCode ≠ 0 or signal is set */
  readonly failedStep?: number
}

/**
 * A script for the fake: what each attempt does. It may itself take Clock time (e.g.
 * wait on a Deferred the test controls, or `Effect.never`); that time is the steps' time.
 *
 * @since 0.1.0
 * @category models
 */
export type Script = (spec: AttemptSpec) => Effect.Effect<Scripted, HarnessError>

/**
 * The data form of a script: per test id, one entry per attempt (the last repeats);
 * tests not listed pass at once with no output (or get `fallback`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const scriptTable = (
  table: Readonly<Record<string, ReadonlyArray<Scripted>>>,
  fallback: Scripted = { exitCode: 0 }
): Script =>
(spec) => {
  const list = Object.prototype.hasOwnProperty.call(table, spec.testId) ? table[spec.testId]! : []
  if (list.length === 0) return Effect.succeed(fallback)
  return Effect.succeed(list[Math.min(spec.attempt, list.length) - 1] ?? list[0]!)
}

/**
 * One call of the fake's `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedRun {
  readonly spec: AttemptSpec
  /** Clock time `run` started */
  readonly startedAt: number
  /** Clock time it ended (undefined while running) */
  readonly endedAt: number | undefined
  readonly outcome: AttemptOutcome | undefined
  readonly error: HarnessError | undefined
  /** its scope closed while it ran (the tree would have been killed) */
  readonly interrupted: boolean
  /** stopped by its caller (a deadline) before it ended */
  readonly stopped: boolean
  /** what the real harness would have written to the log (masked, capped, marker included) */
  readonly log: string
}

/**
 * The fake's control handle.
 *
 * @since 0.1.0
 * @category tags
 */
export class HarnessMemory extends Context.Tag("grove/HarnessMemory")<HarnessMemory, {
  /** every run so far, in the order they started */
  readonly runs: Effect.Effect<ReadonlyArray<RecordedRun>>
  /** runs started and not ended */
  readonly running: Effect.Effect<number>
}>() {}

/**
 * pgids the fake hands to `onSpawn`: above any possible Linux pid (pid_max ≤ 2^22),
 * so a reaper that finds them in a store can never signal a real process.
 *
 * @since 0.1.0
 * @category constructors
 */
export const memoryPgidBase = 10_000_000

/**
 * Builds the scripted fake and its control handle. No real I/O and no real time:
 * durations go through Effect's Clock (TestClock-able). Like the real Harness it has
 * no deadline of its own: `runWithin` stops it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (script: Script): Effect.Effect<{
  readonly harness: Harness["Type"]
  readonly control: HarnessMemory["Type"]
}> =>
  Effect.sync(() => {
    const runs: Array<RecordedRun> = []
    const update = (i: number, patch: Partial<RecordedRun>) => {
      runs[i] = { ...runs[i]!, ...patch }
    }
    const spawn = (spec: AttemptSpec): Effect.Effect<Spawned, HarnessError, Scope.Scope> =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const index = runs.length
        runs.push({
          spec,
          startedAt,
          endedAt: undefined,
          outcome: undefined,
          error: undefined,
          interrupted: false,
          stopped: false,
          log: ""
        })
        const end = (patch: Partial<RecordedRun>) =>
          Effect.map(Clock.currentTimeMillis, (endedAt) => update(index, { endedAt, ...patch }))
        // its scope closed before it ended or was stopped: interrupted, like a real tree killed
        yield* Effect.addFinalizer(() => Effect.suspend(() => runs[index]!.endedAt === undefined ? end({ interrupted: true }) : Effect.void))
        if (spec.onSpawn !== undefined) yield* spec.onSpawn({ pgid: memoryPgidBase + index, startTime: "memory" })

        const chunks: Array<Uint8Array> = []
        const output = makeOutput({
          secrets: spec.secrets,
          logCap: spec.logCap,
          tailBytes: spec.tailBytes,
          sink: (b) => chunks.push(Uint8Array.from(b))
        })
        const flush = () => {
          output.finish()
          update(index, { log: Buffer.concat(chunks).toString("utf8") })
        }
        const lastStep = Math.max(0, spec.steps.length - 1)
        let scripted: Scripted | undefined
        // the steps: the script decides, its output is printed at once, then they run durationMs
        const steps = yield* Effect.forkScoped(Effect.gen(function*() {
          const s = yield* script(spec)
          scripted = s
          if (s.output !== undefined) output.write(0, Buffer.from(s.output, "utf8"))
          yield* Effect.sleep(Duration.millis(Math.max(0, s.durationMs ?? 0)))
          return s
        }))
        return {
          exited: Fiber.join(steps).pipe(
            Effect.map((s): AttemptOutcome => {
              flush()
              const signal = s.signal ?? null
              const passed = signal === null && s.exitCode === 0
              return {
                _tag: "Exited",
                exitCode: signal === null ? s.exitCode : null,
                signal,
                failedStep: passed ? undefined : s.failedStep ?? lastStep,
                tail: output.tail(),
                bytes: output.bytes()
              }
            }),
            Effect.tap((outcome) => end({ outcome })),
            Effect.tapError((error) => end({ error }))
          ),
          stop: Effect.gen(function*() {
            yield* Fiber.interrupt(steps)
            flush()
            yield* end({ stopped: true })
            return {
              signal: null,
              failedStep: scripted?.failedStep ?? lastStep,
              tail: output.tail(),
              bytes: output.bytes()
            } satisfies Seen
          })
        } satisfies Spawned
      })
    return {
      harness: Harness.of({ spawn }),
      control: HarnessMemory.of({
        runs: Effect.sync(() => runs.slice()),
        running: Effect.sync(() => runs.filter((r) => r.endedAt === undefined).length)
      })
    }
  })

/**
 * The scripted fake as a layer, with its control handle.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (script: Script): Layer.Layer<Harness | HarnessMemory> =>
  Layer.effectContext(
    makeMemory(script).pipe(
      Effect.map(({ control, harness }) => Context.make(Harness, harness).pipe(Context.add(HarnessMemory, control)))
    )
  )
