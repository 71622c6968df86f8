/**
 * B6 per-test cost (issue 14). A generated repository of `--files` files; `--tests`
 * tests that each run `true`, on `--workers` workers, measured side by side in each
 * round:
 *
 * - grove: the real CLI (`grove run --each true …`, SQLite store, real worktrees):
 *   session time × workers ÷ tests, from its JSON report;
 * - loop: `bench/loop.sh` per worker, each in its own worktree — one `git status
 *   --porcelain` and one `bash -c` per test, the floor of what isolation needs;
 * - GNU parallel (when installed): `parallel -j workers true`, no isolation at all.
 *
 * Then the parts of a grove test, each timed alone on the same machine (the breakdown):
 * the worktree state check grove runs (`Git.state`), an attempt through the real Harness
 * (wrapper, step shell, log, process-group kill and /proc sweep), the /proc sweep alone,
 * and the engine with an instant harness (Effect runtime, events, SQLite store).
 *
 *   node dist/bench/bench/b6.js --files 5000 --tests 200 --workers 2 --rounds 3
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Domain, Git, Harness } from "../src/index.js"
import * as ProcessTree from "../src/internal/processTree.js"
import { args, emit, median, numberArg, round, sh, spawn } from "./common.js"
import { generate } from "./repo.js"

const a = args()
const files = numberArg(a, "files", 5000)
const tests = numberArg(a, "tests", 200)
const workers = numberArg(a, "workers", 2)
const rounds = numberArg(a, "rounds", 3)
const here = import.meta.dirname
const root = Path.resolve(here, "../../..")
const grove = Path.join(root, "dist/bin/grove.js")
const loop = Path.join(root, "bench/loop.sh")

const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b6-"))
const repo = Path.join(base, "repo")
generate(repo, files)
const loopTrees = Array.from({ length: workers }, (_, i) => Path.join(base, `loop-w${i + 1}`))
for (const wt of loopTrees) sh(`git worktree add -q --detach ${wt}`, repo)

const hasParallel = (() => {
  try {
    sh("command -v parallel")
    return true
  } catch {
    return false
  }
})()

/** ms per test per worker of one grove session */
const groveRun = async (): Promise<number> => {
  const report = Path.join(base, "report.json")
  const argv = Array.from({ length: tests }, (_, i) => `t${i}`)
  const s = await spawn(process.execPath, [
    grove, "run", "--each", "true", "--workers", String(workers), "--retries", "0",
    "--db", Path.join(base, "grove.db"), "--report", `json:${report}`, "--quiet", ...argv
  ], { cwd: repo, env: { ...process.env, CI: "true" } })
  if (s.code !== 0) throw new Error(`grove exited ${s.code}: ${s.stderr.slice(-2000)}`)
  const json = JSON.parse(Fs.readFileSync(report, "utf8")) as { session: { durationMs: number } }
  return json.session.durationMs * workers / tests
}

/** ms per test per worker of the bare loops, one per worker in parallel */
const loopRun = async (): Promise<number> => {
  const started = performance.now()
  await Promise.all(loopTrees.map((wt, i) =>
    spawn("bash", [loop, wt, String(Math.floor(tests / workers) + (i < tests % workers ? 1 : 0)), "true"]).then((s) => {
      if (s.code !== 0) throw new Error(`loop exited ${s.code}: ${s.stderr}`)
    })
  ))
  return (performance.now() - started) * workers / tests
}

const parallelRun = async (): Promise<number | undefined> => {
  if (!hasParallel) return undefined
  const s = await spawn("parallel", ["-j", String(workers), "true", ":::", ...Array.from({ length: tests }, (_, i) => `t${i}`)], { cwd: repo })
  if (s.code !== 0) throw new Error(`parallel exited ${s.code}: ${s.stderr}`)
  return s.wallMs * workers / tests
}

/** ms per call of `f`, median over `n` calls */
const timed = async (n: number, f: () => Promise<unknown>): Promise<number> => {
  const xs: Array<number> = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await f()
    xs.push(performance.now() - t)
  }
  return median(xs)
}

const breakdown = async () => {
  const wt = loopTrees[0]!
  const git = Git.make({ exec: Git.execCli })
  const state = await timed(30, () => Effect.runPromise(git.state(wt, [], { submodules: false })))
  const spec = (i: number): Harness.AttemptSpec => ({
    testId: `b6-${i}`,
    attempt: 1,
    attemptKey: `b6-${process.pid}-${i}`,
    steps: [new Domain.Step({ shell: "bash", script: "true" })],
    cwd: wt,
    env: {},
    secrets: [],
    logPath: Path.join(base, "logs", `b6-${i}.log`),
    logCap: 1_000_000,
    tailBytes: 4096,
    killGrace: Duration.seconds(5)
  })
  const harness = Effect.runSync(Harness.makeShell)
  let i = 0
  const attempt = await timed(30, () => Effect.runPromise(Harness.runWithin(harness, spec(i++), Duration.minutes(1))))
  const sweep = await timed(30, async () => ProcessTree.findByEnv("GROVE_ATTEMPT_ID=nothing"))
  const bash = await timed(30, () => spawn("bash", ["-c", "true"]))
  const status = await timed(30, () => spawn("git", ["status", "--porcelain"], { cwd: wt }))
  return { gitStateMs: state, harnessAttemptMs: attempt, procSweepMs: sweep, bashSpawnMs: bash, gitStatusMs: status }
}

const main = async () => {
  const groveMs: Array<number> = []
  const loopMs: Array<number> = []
  const parallelMs: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    groveMs.push(await groveRun())
    loopMs.push(await loopRun())
    const p = await parallelRun()
    if (p !== undefined) parallelMs.push(p)
    process.stderr.write(`round ${r + 1}: grove ${round(groveMs[r]!)} ms/test/worker, loop ${round(loopMs[r]!)}, parallel ${p === undefined ? "-" : round(p)}\n`)
  }
  const parts = await breakdown()
  const ratios = groveMs.map((g, i) => g / loopMs[i]!)
  emit({
    files,
    tests,
    workers,
    rounds,
    groveMsPerTest: round(median(groveMs), 2),
    loopMsPerTest: round(median(loopMs), 2),
    parallelMsPerTest: parallelMs.length === 0 ? null : round(median(parallelMs), 2),
    ratio: round(median(ratios), 2),
    ratios: ratios.map((x) => round(x, 2)),
    breakdown: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, round(v, 2)]))
  })
  Fs.rmSync(base, { recursive: true, force: true })
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`)
  process.exit(1)
})
