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
 * grove's session time includes what a loop with ready worktrees does not pay: starting
 * the CLI and making its worktrees (on the B6 machine's file system, 0.3–4 s for one of
 * 5,000 files). So each round also reports:
 *
 * - loop+add: the same loops, each first making its worktree (`git worktree add`), timed;
 * - grove's cycle: the median time from one attempt's start to the next on the same
 *   worker (what each further test costs, fixed costs aside), against the loop's
 *   per-test time.
 *
 * Then the parts of a grove test, each timed alone on the same machine (the breakdown):
 * the worktree state check grove runs (`Git.state`), an attempt through the real Harness
 * (wrapper, step shell, log, process-group kill and /proc sweep; wall time and grove's own
 * CPU), the /proc sweep alone, and the engine with an instant harness and in-memory git
 * (Effect runtime, events, SQLite store; ms per test per worker, as for grove).
 *
 * `--baseline DIR` also runs another build's CLI (`DIR/dist/bin/grove.js`, e.g. a worktree
 * of an older commit) in each round, so that two builds are compared side by side.
 *
 *   node dist/bench/bench/b6.js --files 5000 --tests 200 --workers 2 --rounds 3 [--baseline DIR]
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Config, Domain, Git, Harness, Orchestrator, SqlStore } from "../src/index.js"
import * as ProcessTree from "../src/internal/processTree.js"
import { args, emit, median, numberArg, round, sh, spawn } from "./common.js"
import { instantHarness, memoryRepo, trueTest } from "./engine.js"
import { generate } from "./repo.js"

const a = args()
const files = numberArg(a, "files", 5000)
const tests = numberArg(a, "tests", 200)
const workers = numberArg(a, "workers", 2)
const rounds = numberArg(a, "rounds", 3)
const here = import.meta.dirname
const root = Path.resolve(here, "../../..")
const grove = Path.join(root, "dist/bin/grove.js")
const baselineDir = a.get("baseline")
const baseline = baselineDir === undefined ? undefined : Path.join(Path.resolve(baselineDir), "dist/bin/grove.js")
if (baseline !== undefined && !Fs.existsSync(baseline)) throw new Error(`--baseline: no ${baseline}; build that checkout first (npm run build)`)
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

interface GroveRound {
  /** session time × workers ÷ tests */
  readonly msPerTest: number
  /** the session's start to its first attempt's: the CLI's start and the first worktree */
  readonly firstStartMs: number
  /** median time from an attempt's start to the next one's on the same worker */
  readonly cycleMs: number
}

/** one grove session of `cli` (a grove.js) */
const groveRun = async (cli: string): Promise<GroveRound> => {
  const report = Path.join(base, "report.json")
  const argv = Array.from({ length: tests }, (_, i) => `t${i}`)
  const s = await spawn(process.execPath, [
    cli, "run", "--each", "true", "--workers", String(workers), "--retries", "0",
    "--db", Path.join(base, "grove.db"), "--report", `json:${report}`, "--quiet", ...argv
  ], { cwd: repo, env: { ...process.env, CI: "true" } })
  if (s.code !== 0) throw new Error(`grove exited ${s.code}: ${s.stderr.slice(-2000)}`)
  const json = JSON.parse(Fs.readFileSync(report, "utf8")) as {
    session: { durationMs: number; startedAt: string }
    tests: ReadonlyArray<{ attempts: ReadonlyArray<{ worker: number; startedAt: string }> }>
  }
  const started = Date.parse(json.session.startedAt)
  const byWorker = new Map<number, Array<number>>()
  for (const t of json.tests) {
    for (const at of t.attempts) {
      const list = byWorker.get(at.worker) ?? []
      list.push(Date.parse(at.startedAt))
      byWorker.set(at.worker, list)
    }
  }
  const gaps: Array<number> = []
  let first = Infinity
  for (const starts of byWorker.values()) {
    starts.sort((x, y) => x - y)
    first = Math.min(first, starts[0]! - started)
    for (let i = 1; i < starts.length; i++) gaps.push(starts[i]! - starts[i - 1]!)
  }
  return { msPerTest: json.session.durationMs * workers / tests, firstStartMs: first, cycleMs: median(gaps) }
}

/** ms per test per worker of the bare loops, one per worker in parallel; with `add`, each first makes its worktree */
const loopRun = async (add: boolean): Promise<number> => {
  const trees = add ? loopTrees.map((wt) => `${wt}-add`) : loopTrees
  const started = performance.now()
  await Promise.all(trees.map((wt, i) =>
    (add ? spawn("git", ["worktree", "add", "-q", "--detach", wt], { cwd: repo }) : Promise.resolve({ code: 0, stderr: "" }))
      .then((made) => {
        if (made.code !== 0) throw new Error(`git worktree add exited ${made.code}: ${made.stderr}`)
        return spawn("bash", [loop, wt, String(Math.floor(tests / workers) + (i < tests % workers ? 1 : 0)), "true"])
      })
      .then((s) => {
        if (s.code !== 0) throw new Error(`loop exited ${s.code}: ${s.stderr}`)
      })
  ))
  const ms = (performance.now() - started) * workers / tests
  // removed outside the timing, as grove's session time ends before its cleanup
  if (add) for (const wt of trees) sh(`git worktree remove --force ${wt}`, repo)
  return ms
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

const instant = instantHarness()

/** ms per test per worker of the engine alone: in-memory git, instant harness, SQLite store */
const engineRun = (label: string): Promise<number> => {
  const memRepo = memoryRepo
  const requests = Array.from({ length: tests }, (_, i) => trueTest(`t${i}`, `t${i}`, { source: "--each", shell: "bash" }))
  const session = Orchestrator.layerSession({ repo: memRepo.root, baseRef: "main" }).pipe(
    Layer.provide(Layer.mergeAll(
      Config.layer({ workers, retries: 0 }),
      Git.layerMemory({ repos: [memRepo] }),
      instant,
      SqlStore.layer({ filename: Path.join(base, `engine-${label}.db`) }).pipe(Layer.provide(NodeContext.layer))
    ))
  )
  return Effect.runPromise(Effect.gen(function*() {
    const started = performance.now()
    const report = yield* Effect.scoped(Effect.flatMap(Orchestrator.Orchestrator, (o) => o.runTests(requests)).pipe(Effect.provide(session)))
    if (report.totals.passed !== tests) return yield* Effect.die(new Error(`engine: ${JSON.stringify(report.totals)}`))
    return (performance.now() - started) * workers / tests
  }))
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
  const cpu: Array<number> = []
  const attempt = await timed(30, async () => {
    const before = process.cpuUsage()
    await Effect.runPromise(Harness.runWithin(harness, spec(i++), Duration.minutes(1)))
    const used = process.cpuUsage(before)
    cpu.push((used.user + used.system) / 1000)
  })
  const sweep = await timed(30, async () => ProcessTree.findTarget({ pgid: 2 ** 22 + 1, envEntry: "GROVE_ATTEMPT_ID=nothing" }))
  const bash = await timed(30, () => spawn("bash", ["-c", "true"]))
  const status = await timed(30, () => spawn("git", ["status", "--porcelain"], { cwd: wt }))
  const engine: Array<number> = []
  for (let r = 0; r < 3; r++) engine.push(await engineRun(String(r)))
  return {
    gitStateMs: state,
    harnessAttemptMs: attempt,
    harnessAttemptCpuMs: median(cpu),
    procSweepMs: sweep,
    processes: ProcessTree.listProcesses().length,
    bashSpawnMs: bash,
    gitStatusMs: status,
    engineMsPerTest: median(engine)
  }
}

const main = async () => {
  const groves: Array<GroveRound> = []
  const baselines: Array<GroveRound> = []
  const loopMs: Array<number> = []
  const loopAddMs: Array<number> = []
  const parallelMs: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    // alternate which build goes first: a round's first session pays for the previous one's deleted files
    if (baseline !== undefined && r % 2 === 1) baselines.push(await groveRun(baseline))
    groves.push(await groveRun(grove))
    if (baseline !== undefined && r % 2 === 0) baselines.push(await groveRun(baseline))
    loopMs.push(await loopRun(false))
    loopAddMs.push(await loopRun(true))
    const p = await parallelRun()
    if (p !== undefined) parallelMs.push(p)
    const g = groves[r]!
    const b = baseline === undefined ? "" : `, baseline ${round(baselines[r]!.msPerTest)} (cycle ${round(baselines[r]!.cycleMs)})`
    process.stderr.write(
      `round ${r + 1}: grove ${round(g.msPerTest)} ms/test/worker (first attempt at ${round(g.firstStartMs)} ms, cycle ${round(g.cycleMs)})${b}, ` +
        `loop ${round(loopMs[r]!)}, loop+add ${round(loopAddMs[r]!)}, parallel ${p === undefined ? "-" : round(p)}\n`
    )
  }
  const parts = await breakdown()
  const summary = (runs: ReadonlyArray<GroveRound>) => ({
    msPerTest: round(median(runs.map((g) => g.msPerTest)), 2),
    firstStartMs: round(median(runs.map((g) => g.firstStartMs)), 0),
    cycleMs: round(median(runs.map((g) => g.cycleMs)), 2),
    /** the figure: session time against the loop with ready worktrees, per round */
    ratios: runs.map((g, i) => round(g.msPerTest / loopMs[i]!, 2)),
    ratio: round(median(runs.map((g, i) => g.msPerTest / loopMs[i]!)), 2),
    /** against loops that make their worktrees too */
    ratioWithAdd: round(median(runs.map((g, i) => g.msPerTest / loopAddMs[i]!)), 2),
    /** what each further test costs, against the loop's per-test time */
    cycleRatio: round(median(runs.map((g, i) => g.cycleMs / loopMs[i]!)), 2)
  })
  const groveSummary = summary(groves)
  emit({
    files,
    tests,
    workers,
    rounds,
    groveMsPerTest: groveSummary.msPerTest,
    loopMsPerTest: round(median(loopMs), 2),
    loopAddMsPerTest: round(median(loopAddMs), 2),
    parallelMsPerTest: parallelMs.length === 0 ? null : round(median(parallelMs), 2),
    ratio: groveSummary.ratio,
    ratios: groveSummary.ratios,
    grove: groveSummary,
    ...(baseline === undefined ? {} : { baseline: { cli: baseline, ...summary(baselines) } }),
    breakdown: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, round(v, 2)]))
  })
  Fs.rmSync(base, { recursive: true, force: true })
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`)
  process.exit(1)
})
