/**
 * B3 makespan. `--tests` sleep tests with a heavy-tailed (Pareto) duration mix whose
 * longest test is a third of all the others together, listed shortest first (longest
 * last), on `--workers` workers:
 *
 * - grove's first run (no history: submission order),
 * - grove's second run on the same SQLite db (stored medians: longest first),
 * - GNU parallel -j`workers` on the same commands in list order,
 * - the lower bound of SPEC §4 (`Scheduler.lowerBound` of the nominal durations), and the
 *   same bound of the durations grove measured on its second run (overhead included).
 *
 * grove runs as the CLI (`grove run --each 'sleep {}' …`). Prints `BENCH {json}`.
 *
 *   node dist/bench/bench/b3.js --tests 60 --workers 4 --scale 1 --rounds 2
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Scheduler } from "../src/index.js"
import { args, durations, emit, listSchedule, numberArg, sh, spawn } from "./common.js"
import { generate } from "./repo.js"

const a = args()
const tests = numberArg(a, "tests", 60)
const workers = numberArg(a, "workers", 4)
const scale = numberArg(a, "scale", 1)
const rounds = numberArg(a, "rounds", 2)
const bin = Path.resolve(import.meta.dirname, "../../bin/grove.js")

const main = async () => {
  const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b3-"))
  const repo = Path.join(base, "repo")
  generate(repo, 20)
  const list = durations(tests, scale)
  const argv = list.map((x) => x.toFixed(3))
  const boundMs = Scheduler.lowerBound(list.map((x) => x * 1000), workers)
  const grove = async (db: string, label: string) => {
    const report = Path.join(base, `${label}.json`)
    const s = await spawn(process.execPath, [
      bin, "run", "--repo", repo, "--db", db, "--workers", String(workers), "--retries", "0", "--quiet",
      "--worktree-dir", Path.join(base, "worktrees"), "--report", `json:${report}`, "--each", "sleep {}", ...argv
    ], { cwd: repo })
    if (s.code !== 0) throw new Error(`grove ${label} exited ${s.code}: ${s.stderr}\n${s.stdout}`)
    const json = JSON.parse(Fs.readFileSync(report, "utf8")) as {
      session: { durationMs: number; startedAt: string }
      tests: Array<{ id: string; attempts: Array<{ worker: number; startedAt: string; durationMs: number }> }>
    }
    // the test that started first: the longest one on the second run
    const first = [...json.tests].sort((x, y) => Date.parse(x.attempts[0]!.startedAt) - Date.parse(y.attempts[0]!.startedAt))[0]
    // the bound of the durations grove measured (each attempt from its start, worktree preparation included):
    // how far the schedule is from the best one for these tests as grove ran them
    const measured = json.tests.map((t) => t.attempts.reduce((sum, x) => sum + x.durationMs, 0))
    return {
      wallMs: s.wallMs,
      sessionMs: json.session.durationMs,
      firstStarted: first?.id,
      // how long after the session's start its first attempt began: the first worktree's cost
      firstStartMs: first === undefined ? undefined : Date.parse(first.attempts[0]!.startedAt) - Date.parse(json.session.startedAt),
      measuredBoundMs: Scheduler.lowerBound(measured, workers)
    }
  }
  const rows: Array<Record<string, unknown>> = []
  for (let round = 0; round < rounds; round++) {
    const db = Path.join(base, `round${round}.db`)
    const first = await grove(db, `first${round}`)
    const second = await grove(db, `second${round}`)
    const par = await spawn("parallel", ["-j", String(workers), "sleep", ":::", ...argv], { cwd: repo })
    if (par.code !== 0) throw new Error(`parallel exited ${par.code}: ${par.stderr}`)
    const row = {
      groveFirstWallMs: first.wallMs,
      groveFirstSessionMs: first.sessionMs,
      groveSecondWallMs: second.wallMs,
      groveSecondSessionMs: second.sessionMs,
      secondFirstStarted: second.firstStarted,
      secondFirstStartMs: second.firstStartMs,
      secondRatio: Math.round(second.sessionMs / boundMs * 1000) / 1000,
      secondMeasuredBoundMs: second.measuredBoundMs,
      parallelWallMs: par.wallMs
    }
    rows.push(row)
    process.stderr.write(`b3 round ${round + 1}: ${JSON.stringify(row)}\n`)
  }
  sh(`rm -rf ${JSON.stringify(base)}`)
  emit({
    tests,
    workers,
    totalSleepS: list.reduce((x, y) => x + y, 0),
    longestS: list[list.length - 1],
    boundMs,
    listOrderIdealMs: listSchedule(list, workers) * 1000,
    longestFirstIdealMs: listSchedule([...list].reverse(), workers) * 1000,
    durations: argv,
    rounds: rows
  })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
