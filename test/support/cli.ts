/**
 * The built `grove` binary as a real process, for end-to-end tests of the CLI:
 * spawn it with a cwd and an environment, collect stdout, stderr and the exit
 * code, send it signals; find the processes a run left behind through /proc.
 *
 * The binary is `dist/bin/grove.js`: `npm test` builds it first; run `npm run build`
 * before running a CLI test file alone.
 */
import * as Command from "@effect/platform/Command"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { git } from "./repo.js"

/** the repository's root (where package.json is) */
export const projectRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/** the built executable */
export const binPath = Path.join(projectRoot, "dist", "bin", "grove.js")

/** what a finished grove process left */
export interface Outcome {
  /** exit code, or null when a signal killed it */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** a running grove process */
export interface Running {
  readonly pid: number
  /** stdout so far */
  readonly stdout: () => string
  readonly stderr: () => string
  /** waits for the process to exit */
  readonly exit: Effect.Effect<Outcome>
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** closes the read end of its stdout, as `grove run | head -1` does */
  readonly closeStdout: Effect.Effect<void>
  /** closes the read end of its stderr */
  readonly closeStderr: Effect.Effect<void>
}

export interface SpawnOptions {
  readonly cwd: string
  /** added to the environment (after the variables below are removed from the inherited one) */
  readonly env?: Record<string, string>
}

/**
 * The environment grove gets: the test runner's, without anything that would
 * change grove's behaviour from outside (GROVE_*, NO_COLOR, GITHUB_STEP_SUMMARY,
 * the user's git config), plus `extra`.
 */
export const groveEnv = (extra: Record<string, string> = {}): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("GROVE_") || k === "NO_COLOR" || k === "FORCE_COLOR" || k === "GITHUB_STEP_SUMMARY" || k.startsWith("TMUX")) continue
    env[k] = v
  }
  return {
    ...env,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    ...extra
  }
}

/**
 * Starts `node dist/bin/grove.js ...args`, stdin closed, stdout and stderr piped
 * (so not a TTY). When the scope closes and the process still runs, it is
 * killed with SIGKILL (a failing test must not leave grove behind).
 */
export const spawn = (args: ReadonlyArray<string>, options: SpawnOptions): Effect.Effect<Running, never, Scope.Scope> =>
  spawnCommand(process.execPath, [binPath, ...args], options)

const spawnCommand = (command: string, args: ReadonlyArray<string>, options: SpawnOptions): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.gen(function*() {
    const done = yield* Deferred.make<Outcome>()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        let stdout = ""
        let stderr = ""
        const proc = ChildProcess.spawn(command, args, {
          cwd: options.cwd,
          env: groveEnv(options.env),
          stdio: ["ignore", "pipe", "pipe"]
        })
        proc.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s))
        proc.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s))
        proc.on("error", (e) => {
          stderr += `spawn error: ${e.message}`
          Deferred.unsafeDone(done, Effect.succeed({ code: -1, signal: null, stdout, stderr }))
        })
        // "close": the process exited and its pipes are drained
        proc.on("close", (code, signal) => Deferred.unsafeDone(done, Effect.succeed({ code, signal, stdout, stderr })))
        return { proc, stdout: () => stdout, stderr: () => stderr }
      }),
      ({ proc }) =>
        Effect.flatMap(Deferred.isDone(done), (finished) =>
          finished ? Effect.void : Effect.sync(() => void proc.kill("SIGKILL")).pipe(Effect.zipRight(Deferred.await(done))))
    )
    return {
      pid: child.proc.pid ?? -1,
      stdout: child.stdout,
      stderr: child.stderr,
      exit: Deferred.await(done),
      kill: (signal) => Effect.sync(() => void child.proc.kill(signal)),
      closeStdout: Effect.sync(() => void child.proc.stdout.destroy()),
      closeStderr: Effect.sync(() => void child.proc.stderr.destroy())
    }
  })

/** Runs grove to its end. */
export const run = (args: ReadonlyArray<string>, options: SpawnOptions): Effect.Effect<Outcome> =>
  Effect.scoped(Effect.flatMap(spawn(args, options), (p) => p.exit))

const shellQuote = (word: string) => /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`

/**
 * Runs grove to its end on a pseudo-terminal (util-linux `script`), so that its
 * stdout is a TTY; stdout and stderr arrive together in `stdout`.
 */
export const runOnTty = (args: ReadonlyArray<string>, options: SpawnOptions): Effect.Effect<Outcome> =>
  Effect.scoped(Effect.flatMap(
    spawnCommand("script", ["-qec", [process.execPath, binPath, ...args].map(shellQuote).join(" "), "/dev/null"], options),
    (p) => p.exit
  ))

/**
 * A pseudo-terminal that can go away, in Python's `pty` module: the child is the
 * session leader with the pty as its controlling terminal and as stdin, stdout and
 * stderr; its output is copied to this process's stdout. On SIGUSR1 the master
 * side is closed — a terminal closed, an SSH connection dropped: the kernel hangs
 * the terminal up (SIGHUP to the child, EIO on its writes) — then it waits for the
 * child and exits with its exit code (128 + N when a signal N killed it).
 */
const ptyScript = String.raw`
import os, pty, select, signal, sys
hang = False
def on_usr1(*_):
    global hang
    hang = True
signal.signal(signal.SIGUSR1, on_usr1)
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
while not hang:
    try:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            sys.stdout.buffer.write(os.read(fd, 65536))
            sys.stdout.flush()
    except InterruptedError:
        pass
    except OSError:
        break
os.close(fd)
_, status = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
`

/** the Python that `spawnOnPty` needs, when there is one */
export const python3 = ["/usr/bin/python3", "/usr/local/bin/python3"].find((p) => Fs.existsSync(p))

/**
 * Starts grove on a pseudo-terminal that the test can make go away: `hangUp`
 * closes the terminal (see `ptyScript`); `exit` then gives grove's exit code.
 * stdout holds what grove wrote to the terminal (stdout and stderr together).
 */
export const spawnOnPty = (
  args: ReadonlyArray<string>,
  options: SpawnOptions
): Effect.Effect<Running & { readonly hangUp: Effect.Effect<void> }, never, Scope.Scope> =>
  Effect.map(
    spawnCommand(python3 ?? "python3", ["-c", ptyScript, process.execPath, binPath, ...args], options),
    (running) => ({ ...running, hangUp: running.kill("SIGUSR1") })
  )

/**
 * Polls `check` (every 50 ms) until it holds; dies after `within` saying what it
 * waited for and, via `context`, what it saw. For waiting on other processes only.
 */
export const waitFor = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  options: { readonly within?: Duration.DurationInput; readonly context?: () => string } = {}
): Effect.Effect<void, E, R> =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (ok) => ok }),
    Effect.timeout(options.within ?? Duration.seconds(120)),
    Effect.catchTag("TimeoutException", () =>
      Effect.dieMessage(`timed out waiting for ${what}${options.context === undefined ? "" : `\n${options.context()}`}`)),
    Effect.asVoid
  )

/** The session id of grove's first line (`grove session <id> ...`), if printed yet. */
export const sessionId = (stdout: string): string | undefined => /^grove session (\S+)/.exec(stdout)?.[1]

/**
 * Live processes whose environment holds `NAME=value` (e.g. `GROVE_SESSION=<id>`,
 * which every process of a run inherits, also one that escaped its group), with
 * their command lines. Zombies and processes gone while reading are skipped.
 */
export const processesWithEnv = (entry: string): Effect.Effect<Array<{ readonly pid: number; readonly cmdline: string }>> =>
  Effect.sync(() => {
    const found: Array<{ pid: number; cmdline: string }> = []
    for (const name of Fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue
      try {
        const environ = Fs.readFileSync(`/proc/${name}/environ`, "latin1").split("\0")
        if (!environ.includes(entry)) continue
        const stat = Fs.readFileSync(`/proc/${name}/stat`, "latin1")
        const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
        if (state === "Z" || state === "X") continue
        found.push({ pid: Number(name), cmdline: Fs.readFileSync(`/proc/${name}/cmdline`, "latin1").replace(/\0/g, " ").trim() })
      } catch {
        // gone, or not ours to read
      }
    }
    return found
  })

/** `git worktree list --porcelain` paths, the main worktree first. */
export const worktreePaths = (root: string) =>
  Effect.map(git(root, "worktree", "list", "--porcelain"), (text) =>
    text.split("\n").filter((l) => l.startsWith("worktree ")).map((l) => l.slice("worktree ".length)))

/** Removes worktrees a test kept on purpose (locked by grove: `--force` twice). */
export const removeWorktrees = (root: string, paths: ReadonlyArray<string>) =>
  Effect.forEach(paths, (p) => git(root, "worktree", "remove", "--force", "--force", p), { discard: true })

/** Writes files (paths relative to `dir`, folders made as needed). */
export const writeFiles = (dir: string, files: Record<string, string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    for (const [file, text] of Object.entries(files)) {
      const abs = Path.join(dir, file)
      yield* fs.makeDirectory(Path.dirname(abs), { recursive: true })
      yield* fs.writeFileString(abs, text)
    }
  }).pipe(Effect.orDie)

/** A plan file's text: optional front matter (YAML lines), a heading, and one block per step. */
export const plan = (
  options: { readonly front?: string; readonly title?: string; readonly steps: ReadonlyArray<string>; readonly shell?: "sh" | "bash" }
): string => {
  const front = options.front === undefined ? "" : `---\n${options.front.trim()}\n---\n`
  const blocks = options.steps.map((s) => "```" + (options.shell ?? "bash") + "\n" + s.trim() + "\n```\n").join("\n")
  return `${front}# ${options.title ?? "a test"}\n\n${blocks}`
}

/** runs any command to its end; stdin is empty, stdout and stderr are collected */
export const exec = (cmd: string, args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env: Record<string, string> }) =>
  Effect.scoped(Effect.gen(function*() {
    const proc = yield* Command.start(Command.make(cmd, ...args).pipe(
      Command.workingDirectory(options.cwd),
      Command.env(options.env, { extendEnv: false }),
      Command.stdin(Stream.empty)
    ))
    const text = <E>(s: Stream.Stream<Uint8Array, E>) => s.pipe(Stream.decodeText(), Stream.mkString)
    const [stdout, stderr, code] = yield* Effect.all([text(proc.stdout), text(proc.stderr), proc.exitCode], { concurrency: "unbounded" })
    return { stdout, stderr, code: code as number }
  }))

/**
 * A `grove serve` started by `startServe`: its process, the port it chose, its base URL and
 * the token of its login URL ("" when the token came from GROVE_TOKEN or --token).
 */
export interface Served {
  readonly process: Running
  readonly port: number
  readonly base: string
  readonly token: string
}

/** starts `grove serve --port 0 …` in `cwd` and reads its port (and token) from its first line */
export const startServe = (cwd: string, args: ReadonlyArray<string> = [], env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const proc = yield* spawn(["serve", "--port", "0", ...args], { cwd, env })
    yield* waitFor("grove serve's first line", Effect.sync(() => proc.stdout().includes("\n")), {
      within: "30 seconds",
      context: () => `stdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`
    })
    const first = proc.stdout().split("\n")[0]!
    const match = /^grove serve (http:\/\/127\.0\.0\.1:(\d+))\/(?:login\?token=(\S+))?/.exec(first)
    if (match === null) return yield* Effect.die(new Error(`grove serve's first line: ${first}`))
    return {
      process: proc,
      port: Number(match[2]),
      base: match[1]!,
      token: match[3] === undefined ? "" : decodeURIComponent(match[3])
    } satisfies Served
  })
