/**
 * Helpers shared by the benchmarks: argument parsing, peak RSS, medians, running a
 * child process and collecting its JSON answer. Benchmarks are scripts, not library
 * code: they may use Promises and real time freely.
 *
 * @since 0.1.0
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"

/** `--name value` pairs of argv */
export const args = (argv: ReadonlyArray<string> = process.argv.slice(2)): Map<string, string> => {
  const out = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a.startsWith("--")) {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith("--")) out.set(a.slice(2), "true")
      else {
        out.set(a.slice(2), next)
        i++
      }
    }
  }
  return out
}

export const numberArg = (a: Map<string, string>, name: string, fallback: number): number => {
  const v = a.get(name)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`)
  return n
}

/** peak resident set size of this process so far, in MiB (getrusage ru_maxrss) */
export const peakRssMiB = (): number => process.resourceUsage().maxRSS / 1024

/** VmHWM (peak RSS) of a live process, in MiB, from /proc; undefined once it is gone */
export const vmHwmMiB = (pid: number): number | undefined => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? undefined : Number(m[1]) / 1024
  } catch {
    return undefined
  }
}

export const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export const round = (x: number, digits = 1): number => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** a benchmark process prints one line `BENCH <json>` on stdout */
export const emit = (value: unknown): void => {
  process.stdout.write(`BENCH ${JSON.stringify(value)}\n`)
}

export interface Spawned {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly wallMs: number
  /** highest VmHWM seen while polling, MiB */
  readonly peakMiB: number | undefined
}

/** runs a command to its end, polling its VmHWM every `pollMs` */
export const spawn = (
  command: string,
  argv: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly pollMs?: number; readonly stdout?: "pipe" | "ignore" } = {}
): Promise<Spawned> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = ChildProcess.spawn(command, argv, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", options.stdout ?? "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (c: Buffer) => {
      if (stdout.length < 4_000_000) stdout += c.toString("utf8")
    })
    child.stderr?.on("data", (c: Buffer) => {
      if (stderr.length < 1_000_000) stderr += c.toString("utf8")
    })
    let peak: number | undefined
    const poll = setInterval(() => {
      const v = child.pid === undefined ? undefined : vmHwmMiB(child.pid)
      if (v !== undefined) peak = Math.max(peak ?? 0, v)
    }, options.pollMs ?? 50)
    child.on("error", (e) => {
      clearInterval(poll)
      reject(e)
    })
    child.on("close", (code) => {
      clearInterval(poll)
      resolve({ code, stdout, stderr, wallMs: performance.now() - started, peakMiB: peak })
    })
  })

/** the `BENCH {...}` line of a benchmark child's output */
export const answer = <A>(s: Spawned, what: string): A => {
  const line = s.stdout.split("\n").find((l) => l.startsWith("BENCH "))
  if (s.code !== 0 || line === undefined) {
    throw new Error(`${what} failed (exit ${s.code}):\n${s.stderr.slice(-4000)}\n${s.stdout.slice(-2000)}`)
  }
  return JSON.parse(line.slice(6)) as A
}

/** runs a shell command synchronously, failing loudly */
export const sh = (script: string, cwd?: string): string =>
  ChildProcess.execFileSync("bash", ["-eo", "pipefail", "-c", script], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024
  })

/**
 * Pareto(α = 1.2, xₘ = 0.4 s × scale) at the quantiles (i + ½)/n, in seconds with
 * millisecond steps, all distinct (they are the test ids); the longest is set to a third
 * of the sum of the others, so list order is as bad as it gets for a longest-last list.
 * Ascending: the list order, longest last.
 */
export const durations = (n: number, s: number): Array<number> => {
  const d = Array.from({ length: n }, (_, i) => (0.4 * s) / Math.pow((i + 0.5) / n, 1 / 1.2)).sort((x, y) => x - y)
  d[n - 1] = d.slice(0, -1).reduce((x, y) => x + y, 0) / 3
  const out: Array<number> = []
  for (const x of d) {
    let v = Math.round(x * 1000) / 1000
    while (out.includes(v)) v = Math.round((v + 0.001) * 1000) / 1000
    out.push(v)
  }
  return out
}

/** greedy list scheduling: each test to the first free of `w` workers, in the given order; the makespan */
export const listSchedule = (order: ReadonlyArray<number>, w: number): number => {
  const free = Array.from({ length: w }, () => 0)
  for (const x of order) {
    const i = free.indexOf(Math.min(...free))
    free[i] = free[i]! + x
  }
  return Math.max(...free)
}
