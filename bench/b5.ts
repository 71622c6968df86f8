/**
 * B5 live events (issue 12 item 6): `grove serve` (the built binary) follows a session
 * that a `grove run` in another process writes into the same SQLite store: `--tests`
 * tests (default 200) on 4 workers, with failures (retried twice, then FAILED) and
 * flaky tests (pass on attempt 2), while these SSE clients read
 * `/api/v1/sessions/:id/events`:
 *
 * - 50 from the start (`?after=0`),
 * - 10 that drop after some events and reconnect with `Last-Event-ID`,
 * - 5 that join late (no Last-Event-ID: a snapshot, then the events after it),
 * - 1 that stops reading for 10 s after its first events, then reads on.
 *
 * Checks: every client sees each event exactly once and in order (1..N; a dropper
 * across its two connections; a late one from its snapshot on), and folding a late
 * client's snapshot with its events gives the same state as folding all N events.
 * Measures: delivery latency (receive time − the time stamped in the event, for
 * AttemptStarted, AttemptFinished and SessionFinished frames of events written after
 * the client connected; the stamp is taken just before the store write, same clock),
 * p50/p99/max over the live clients; the server's peak RSS (VmHWM); and the time from
 * SIGINT to exit of grove serve with 50 SSE clients following a running session.
 * Prints `BENCH {json}`.
 *
 *   node dist/bench/bench/b5.js --tests 200 --workers 4
 *   node dist/bench/bench/b5.js --tests 40 --profile /tmp/b5-profile     (a CPU profile of grove serve)
 *
 * @since 0.2.0
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { Logged, SessionEvent } from "../src/Domain.js"
import * as SessionState from "../src/SessionState.js"
import * as Schema from "effect/Schema"
import { args, emit, numberArg, sh, vmHwmMiB } from "./common.js"
import { generate } from "./repo.js"

const a = args()
const tests = numberArg(a, "tests", 200)
const workers = numberArg(a, "workers", 4)
const fromStartCount = numberArg(a, "clients", 50)
const droppers = numberArg(a, "droppers", 10)
const lateCount = numberArg(a, "late", 5)
const pauseMs = numberArg(a, "pause-ms", 10_000)
const bin = Path.resolve(import.meta.dirname, "../../bin/grove.js")
const token = "bench-b5-token-0123456789abcdef"

const log = (message: string) => void process.stderr.write(`b5: ${message}\n`)

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

const decodeEvent = Schema.decodeUnknownSync(SessionEvent)

interface Received {
  readonly seq: number
  readonly event: string
  readonly data: string
  readonly at: number
}

/** an SSE client: frames with their arrival time; `pause`/`resume` stop and restart reading */
class Client {
  readonly frames: Array<Received> = []
  readonly connectedAt = Date.now()
  status = 0
  private req: Http.ClientRequest | undefined
  private res: Http.IncomingMessage | undefined
  readonly done: Promise<void>
  private waiters: Array<{ n: number; resolve: () => void }> = []

  constructor(port: number, path: string, headers: Record<string, string> = {}) {
    this.done = new Promise((resolve, reject) => {
      let pending = ""
      this.req = Http.request(
        { host: "127.0.0.1", port, path, agent: false, headers: { authorization: `Bearer ${token}`, ...headers } },
        (res) => {
          this.res = res
          this.status = res.statusCode ?? 0
          res.setEncoding("utf8")
          res.on("data", (s: string) => {
            pending += s
            let cut = pending.indexOf("\n\n")
            while (cut !== -1) {
              const block = pending.slice(0, cut)
              pending = pending.slice(cut + 2)
              cut = pending.indexOf("\n\n")
              let id = ""
              let event = ""
              let data = ""
              for (const line of block.split("\n")) {
                if (line.startsWith("id: ")) id = line.slice(4)
                else if (line.startsWith("event: ")) event = line.slice(7)
                else if (line.startsWith("data: ")) data = line.slice(6)
              }
              if (event !== "") this.frames.push({ seq: Number(id), event, data, at: Date.now() })
            }
            this.waiters = this.waiters.filter((w) => (this.frames.length >= w.n ? (w.resolve(), false) : true))
          })
          res.on("end", () => resolve())
          res.on("close", () => resolve())
        }
      )
      this.req.on("error", (e) => (this.closed ? resolve() : reject(e)))
      this.req.end()
    })
  }

  private closed = false

  /** resolves once `n` frames have arrived, or the stream has ended */
  received(n: number): Promise<void> {
    if (this.frames.length >= n) return Promise.resolve()
    return Promise.race([new Promise<void>((resolve) => this.waiters.push({ n, resolve })), this.done])
  }

  close() {
    this.closed = true
    this.req?.destroy()
  }

  pause() {
    this.res?.pause()
  }

  resume() {
    this.res?.resume()
  }
}

/** whether `seqs` is exactly from..to, once each, in order */
const exactly = (seqs: ReadonlyArray<number>, from: number, to: number) =>
  seqs.length === Math.max(0, to - from + 1) && seqs.every((s, i) => s === from + i)

const stampOf = (event: string, data: string): number | undefined => {
  if (event !== "AttemptStarted" && event !== "AttemptFinished" && event !== "SessionFinished") return undefined
  const d = JSON.parse(data)
  if (event === "AttemptStarted") return d.startedAt
  if (event === "SessionFinished") return d.completedAt
  return Date.parse(d.attempt.startedAt) + d.attempt.durationMs
}

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((x, y) => x - y)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

const firstLine = (child: ChildProcess.ChildProcess, what: string): Promise<string> =>
  new Promise((resolve, reject) => {
    let out = ""
    const onData = (c: Buffer) => {
      out += c.toString("utf8")
      const nl = out.indexOf("\n")
      if (nl !== -1) {
        child.stdout?.off("data", onData)
        child.stdout?.resume()
        resolve(out.slice(0, nl))
      }
    }
    child.stdout?.on("data", onData)
    child.on("exit", (code) => reject(new Error(`${what} exited ${code} before its first line`)))
  })

const exited = (child: ChildProcess.ChildProcess): Promise<number | null> =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    child.on("exit", (code) => resolve(code))
  })

/** user + system CPU time of a live process so far, in ms (/proc/<pid>/stat, clock ticks of 10 ms) */
const cpuMs = (pid: number): number | undefined => {
  try {
    const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return undefined
  }
}

const main = async () => {
  const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b5-"))
  const repo = Path.join(base, "repo")
  generate(repo, 20)
  const env = { ...process.env, GROVE_TOKEN: token }
  // --profile DIR: a CPU profile of grove serve (node --cpu-prof) in DIR
  const profile = a.get("profile")
  const serve = ChildProcess.spawn(process.execPath, [...(profile === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", profile]), bin, "serve", "--port", "0", "--repo", repo], {
    cwd: repo,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let serveErr = ""
  serve.stderr.on("data", (c: Buffer) => (serveErr += c.toString("utf8")))
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(await firstLine(serve, "grove serve"))?.[1])
  if (!Number.isFinite(port)) throw new Error(`no port from grove serve: ${serveErr}`)

  const ids = Array.from({ length: tests }, (_, i) => `t${String(i).padStart(3, "0")}`)
  // ids ending in 7 fail every attempt (2 retries), in 3 pass on their second attempt
  const cmd = "case {} in *7) echo failing; exit 1;; *3) [ \"$GROVE_ATTEMPT\" -ge 2 ] || exit 1;; *) sleep 0.05; echo ok;; esac"
  const startedAt = Date.now()
  const run = ChildProcess.spawn(process.execPath, [
    bin, "run", "--repo", repo, "--workers", String(workers), "--worktree-dir", Path.join(base, "wt"), "--quiet", "--each", cmd, ...ids
  ], { cwd: repo, env: process.env, stdio: ["ignore", "pipe", "pipe"] })
  let runErr = ""
  run.stderr.on("data", (c: Buffer) => (runErr += c.toString("utf8")))
  const sessionId = /^grove session (\S+)/.exec(await firstLine(run, "grove run"))?.[1]
  if (sessionId === undefined) throw new Error(`no session id from grove run: ${runErr}`)
  const path = `/api/v1/sessions/${sessionId}/events`
  log(`serving on ${port}; session ${sessionId}`)

  const fromStart = Array.from({ length: fromStartCount }, () => new Client(port, `${path}?after=0`))
  const slow = new Client(port, `${path}?after=0`)
  // about 5 events a test (queued, started, spawned, finished, test finished), more with retries
  const expected = tests * 5
  // a dropper goes away after 2 %, 8 %, 14 % … of the frames and comes back with the last id it saw
  const dropped = Array.from({ length: droppers }, (_, i) => (async () => {
    const first = new Client(port, `${path}?after=0`)
    await first.received(Math.round(expected * (0.02 + i * 0.06)))
    first.close()
    const before = [...first.frames]
    await sleep(100)
    const last = before[before.length - 1]?.seq ?? 0
    const second = new Client(port, path, { "last-event-id": String(last) })
    await second.done
    return { before, after: second.frames, last }
  })())
  // late clients join after 10 %, 25 %, 40 % … of the frames of the first client
  const late = Array.from({ length: lateCount }, (_, i) => (async () => {
    await fromStart[0]!.received(Math.round(expected * (0.1 + i * 0.15)))
    const client = new Client(port, path)
    await client.done
    return client
  })())
  const paused = (async () => {
    await slow.received(10)
    slow.pause()
    await sleep(pauseMs)
    slow.resume()
    await slow.done
  })()

  const runCode = await exited(run)
  log(`grove run exited ${runCode}`)
  const sessionMs = Date.now() - startedAt
  if (runCode !== 1) throw new Error(`grove run exited ${runCode} (failures expected: 1): ${runErr}`)
  await Promise.all(fromStart.map((c) => c.done))
  log("from-start clients done")
  const drops = await Promise.all(dropped)
  const lates = await Promise.all(late)
  await paused
  log("all clients done")
  const peakRssMiB = vmHwmMiB(serve.pid!)
  const serveCpuMs = cpuMs(serve.pid!)

  // exactly once
  const all = fromStart[0]!.frames
  const n = all.length
  if (all[n - 1]?.event !== "SessionFinished") throw new Error("the first client's stream did not end with SessionFinished")
  const problems: Array<string> = []
  fromStart.forEach((c, i) => exactly(c.frames.map((f) => f.seq), 1, n) || problems.push(`from-start client ${i}`))
  exactly(slow.frames.map((f) => f.seq), 1, n) || problems.push("the client that stopped reading")
  drops.forEach((d, i) => exactly([...d.before, ...d.after].map((f) => f.seq), 1, n) || problems.push(`dropper ${i}`))
  const full = all.reduce(
    (s, f) => SessionState.update(s, new Logged({ seq: f.seq, event: decodeEvent(JSON.parse(f.data)) })),
    SessionState.initial(sessionId)
  )
  const finalJson = JSON.stringify(SessionState.encodeSnapshot(full))
  const lateSnapshots: Array<number> = []
  lates.forEach((c, i) => {
    const [snap, ...rest] = c.frames
    if (snap?.event !== "snapshot") return void problems.push(`late client ${i}: no snapshot first`)
    const s = JSON.parse(snap.data)
    lateSnapshots.push(s.seq)
    if (!exactly(rest.map((f) => f.seq), s.seq + 1, n)) problems.push(`late client ${i}: events after its snapshot`)
    const folded = rest.reduce(
      (st, f) => SessionState.update(st, new Logged({ seq: f.seq, event: decodeEvent(JSON.parse(f.data)) })),
      SessionState.decodeSnapshot(s.state)
    )
    if (JSON.stringify(SessionState.encodeSnapshot(folded)) !== finalJson) problems.push(`late client ${i}: fold differs`)
  })

  // latency of the live clients (not the one that stopped reading)
  const latencies: Array<number> = []
  // and those of events written once every client had connected (2 s in), apart
  const settled: Array<number> = []
  const sample = (f: Received, since: number) => {
    const stamp = stampOf(f.event, f.data)
    if (stamp === undefined || stamp < since) return
    latencies.push(f.at - stamp)
    if (stamp >= startedAt + 2000) settled.push(f.at - stamp)
  }
  for (const c of [...fromStart, ...lates]) c.frames.forEach((f) => sample(f, c.connectedAt))
  for (const d of drops) [...d.before, ...d.after].forEach((f) => sample(f, startedAt))

  // SIGINT with 50 clients following a running session
  const hold = ChildProcess.spawn(process.execPath, [
    bin, "run", "--repo", repo, "--workers", "1", "--worktree-dir", Path.join(base, "wt2"), "--quiet", "--each", "sleep 120 # {}", "hold"
  ], { cwd: repo, env: process.env, stdio: ["ignore", "pipe", "pipe"] })
  const holdId = /^grove session (\S+)/.exec(await firstLine(hold, "grove run (hold)"))?.[1]
  const holding = Array.from({ length: 50 }, () => new Client(port, `/api/v1/sessions/${holdId}/events`))
  await Promise.all(holding.map((c) => c.received(1)))
  const sigintAt = performance.now()
  serve.kill("SIGINT")
  const serveCode = await exited(serve)
  const sigintExitMs = performance.now() - sigintAt
  hold.kill("SIGINT")
  await exited(hold)
  sh(`rm -rf ${JSON.stringify(base)}`)

  emit({
    tests,
    workers,
    clients: { fromStart: fromStartCount, droppers, late: lateCount, stoppedReadingMs: pauseMs },
    events: n,
    sessionMs,
    exactlyOnce: problems.length === 0,
    problems,
    lateSnapshots,
    latencyMs: {
      samples: latencies.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
      p99After2s: percentile(settled, 99)
    },
    peakRssMiB,
    serveCpuMs,
    benchCpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
    sigint: { exitCode: serveCode, exitMs: sigintExitMs, clients: holding.length }
  })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
