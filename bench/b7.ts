/**
 * B7 cluster (issue 13, SPEC §10). `--runners` `grove runner` processes × `--workers`
 * workers on loopback, each on its own clone, over a fresh database of the PostgreSQL
 * at `--pg` (default `GROVE_TEST_PG_URL`), measured in one run:
 *
 * - makespan: B3's heavy-tailed mix of `--tests` sleep tests (`--scale`), run twice
 *   with `grove run --cluster` (the second run has the first one's history: longest
 *   first); session time ÷ the lower bound of SPEC §4 on all the cluster's workers;
 * - per-attempt cost: `--tests` tests of `true` on the cluster and on one machine with
 *   as many workers: session time × workers ÷ tests, each;
 * - restart latency: a runner holding an attempt is SIGKILLed; the time until the
 *   attempt's process runs on another runner (its shards' locks expire first).
 *
 *   node dist/bench/bench/b7.js --runners 3 --workers 2 --tests 36 --rounds 2
 *
 * @since 0.3.0
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { Scheduler } from "../src/index.js"
import { args, durations, emit, listSchedule, median, numberArg, round, sh, spawn } from "./common.js"
import { generate } from "./repo.js"

const a = args()
const runnerCount = numberArg(a, "runners", 3)
const workers = numberArg(a, "workers", 2)
const tests = numberArg(a, "tests", 36)
const scale = numberArg(a, "scale", 0.5)
const rounds = numberArg(a, "rounds", 2)
const pg = a.get("pg") ?? process.env.GROVE_TEST_PG_URL ?? ""
const bin = Path.resolve(import.meta.dirname, "../../bin/grove.js")

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** pids whose environment holds `entry` */
const withEnv = (entry: string): Array<number> =>
  Fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).flatMap((n) => {
    try {
      return Fs.readFileSync(`/proc/${n}/environ`, "latin1").split("\0").includes(entry) ? [Number(n)] : []
    } catch {
      return []
    }
  })

interface Runner {
  readonly name: string
  readonly clone: string
  readonly child: ChildProcess.ChildProcess
}

const startRunner = async (db: string, clone: string, port?: number): Promise<Runner> => {
  const p = port ?? await freePort()
  const name = `127.0.0.1:${p}`
  const child = ChildProcess.spawn(process.execPath, [
    bin, "runner", "--cluster", db, "--repo", clone, "--listen", name, "--workers", String(workers)
  ], { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString("utf8")
      if (stderr.includes("Ctrl-C stops")) resolve()
    })
    child.on("exit", (code) => reject(new Error(`runner ${name} exited ${code}: ${stderr}`)))
  })
  return { name, clone, child }
}

/**
 * The two placements the issue names, on the nominal durations (longest first, as a
 * second run submits them), over `trials` random hash placements: plain hashing (each
 * attempt to a runner chosen by its id's hash, where it waits for one of that runner's
 * workers) against claims (each attempt to a free worker anywhere).
 */
const placements = (list: ReadonlyArray<number>, trials: number) => {
  const order = [...list].sort((x, y) => y - x)
  const claims = listSchedule(order, runnerCount * workers)
  const hashed: Array<number> = []
  for (let t = 0; t < trials; t++) {
    const per = Array.from({ length: runnerCount }, () => [] as Array<number>)
    for (const x of order) per[Math.floor(Math.random() * runnerCount)]!.push(x)
    hashed.push(Math.max(...per.map((xs) => listSchedule(xs, workers))))
  }
  hashed.sort((x, y) => x - y)
  return { claims, hashedMedian: median(hashed), hashedP90: hashed[Math.floor(trials * 0.9)]! }
}

const main = async () => {
  if (pg === "") throw new Error("b7 needs a PostgreSQL: --pg URL or GROVE_TEST_PG_URL (scripts/pg-temp.sh start)")
  const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b7-"))
  const repo = Path.join(base, "repo")
  generate(repo, 20)
  const dbName = `grove_b7_${process.pid}`
  sh(`psql ${JSON.stringify(pg)} -qc "CREATE DATABASE ${dbName}"`)
  const db = pg.replace(/\/[^/]*$/, `/${dbName}`)
  const runners: Array<Runner> = []
  for (let i = 0; i < runnerCount; i++) {
    const clone = Path.join(base, `clone${i}`)
    sh(`git clone -q ${JSON.stringify(repo)} ${JSON.stringify(clone)}`)
    runners.push(await startRunner(db, clone))
  }
  const total = runnerCount * workers
  const grove = async (label: string, argv: ReadonlyArray<string>, extra: ReadonlyArray<string>) => {
    const report = Path.join(base, `${label}.json`)
    const s = await spawn(process.execPath, [
      bin, "run", "--repo", repo, "--retries", "0", "--quiet", "--report", `json:${report}`, ...extra, "--each", ...argv
    ], { cwd: repo })
    if (s.code !== 0) throw new Error(`grove ${label} exited ${s.code}: ${s.stderr}\n${s.stdout}`)
    return JSON.parse(Fs.readFileSync(report, "utf8")) as { session: { durationMs: number } }
  }
  const cluster = ["--cluster", db]
  const local = ["--db", Path.join(base, "local.db"), "--workers", String(total), "--worktree-dir", Path.join(base, "wt")]

  const list = durations(tests, scale)
  const sleeps = ["sleep {}", ...list.map((x) => x.toFixed(3))]
  const trues = ["true {}", ...Array.from({ length: tests }, (_, i) => `t${i}`)]
  const boundMs = Scheduler.lowerBound(list.map((x) => x * 1000), total)
  const placed = placements(list, 2000)
  const placement = {
    claimsOverBound: round((placed.claims * 1000) / boundMs, 3),
    hashedOverBoundMedian: round((placed.hashedMedian * 1000) / boundMs, 3),
    hashedOverBoundP90: round((placed.hashedP90 * 1000) / boundMs, 3)
  }
  // and on tests of equal length, where hashing's imbalance is not hidden behind one long test
  const even = placements(Array.from({ length: tests }, () => 1), 2000)
  const evenBound = Scheduler.lowerBound(Array.from({ length: tests }, () => 1000), total)
  Object.assign(placement, {
    equalClaimsOverBound: round((even.claims * 1000) / evenBound, 3),
    equalHashedOverBoundMedian: round((even.hashedMedian * 1000) / evenBound, 3),
    equalHashedOverBoundP90: round((even.hashedP90 * 1000) / evenBound, 3)
  })
  process.stderr.write(`b7 placement (simulated, nominal durations): ${JSON.stringify(placement)}\n`)
  const rows: Array<Record<string, unknown>> = []
  for (let r = 0; r < rounds; r++) {
    const first = await grove(`first${r}`, sleeps, cluster)
    const second = await grove(`second${r}`, sleeps, cluster)
    const c = await grove(`true-cluster${r}`, trues, cluster)
    const l = await grove(`true-local${r}`, trues, local)
    const row = {
      firstMs: first.session.durationMs,
      secondMs: second.session.durationMs,
      secondOverBound: round(second.session.durationMs / boundMs, 3),
      clusterMsPerTestPerWorker: round(c.session.durationMs * total / tests),
      localMsPerTestPerWorker: round(l.session.durationMs * total / tests)
    }
    rows.push(row)
    process.stderr.write(`b7 round ${r + 1}: ${JSON.stringify(row)}\n`)
  }

  // restart latency: a runner dies while it holds an attempt
  const latencies: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    const id = `slow${r}`
    const run = spawn(process.execPath, [
      bin, "run", "--repo", repo, "--retries", "0", "--quiet", ...cluster, "--each", "sleep 12 # {}", id
    ], { cwd: repo })
    let holder: Runner | undefined
    while (holder === undefined) {
      holder = runners.find((x) => withEnv(`GROVE_RUNNER=${x.name}`).length > 0)
      await sleep(20)
    }
    const killedAt = performance.now()
    holder.child.kill("SIGKILL")
    const others = runners.filter((x) => x !== holder)
    while (!others.some((x) => withEnv(`GROVE_RUNNER=${x.name}`).length > 0)) await sleep(20)
    latencies.push(performance.now() - killedAt)
    process.stderr.write(`b7 restart ${r + 1}: ${round(latencies[latencies.length - 1]!)} ms\n`)
    const done = await run
    if (done.code !== 0) throw new Error(`the relocated run exited ${done.code}: ${done.stderr}`)
    // the runner comes back at its address (and reaps what it left)
    const port = Number(holder.name.split(":")[1])
    runners[runners.indexOf(holder)] = await startRunner(db, holder.clone, port)
  }
  for (const x of runners) x.child.kill("SIGTERM")
  await sleep(1000)
  sh(`psql ${JSON.stringify(pg)} -qc "DROP DATABASE ${dbName} WITH (FORCE)"`)
  sh(`rm -rf ${JSON.stringify(base)}`)
  emit({
    runners: runnerCount,
    workers,
    tests,
    boundMs,
    placement,
    secondOverBound: median(rows.map((x) => x.secondOverBound as number)),
    restartLatencyMs: latencies.map((x) => round(x)),
    rounds: rows
  })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
