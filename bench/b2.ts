/**
 * B2 isolation cost. A generated repository of `--files` files; `--tests` trivial tests
 * on `--workers` workers, once with tests that leave the tree clean and once with
 * tests that modify tracked files and add untracked and ignored ones, each isolated by:
 *
 * - grove: the library with real Git, the real Harness and the SQLite store (a pool of
 *   worktrees; before a test: `git status`/`clean -n`, reset+clean only when dirty);
 * - worktree: `git worktree add --detach` + `git worktree remove --force` per test;
 * - reset: one worktree per worker, `git reset --hard` + `git clean -ffdx` before every test.
 *
 * The alternatives run as one bash loop per worker (the cheapest driver there is). Each
 * round runs all six side by side; prints `BENCH {json}` with the wall time per test.
 *
 *   node dist/bench/bench/b2.js --files 5000 --tests 200 --worktree-tests 40 --workers 2 --rounds 3
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Config, Domain, Git, Harness, Orchestrator, SqlStore } from "../src/index.js"
import { args, emit, numberArg, sh, spawn } from "./common.js"
import { generate } from "./repo.js"

const a = args()
const files = numberArg(a, "files", 5000)
const tests = numberArg(a, "tests", 200)
const workers = numberArg(a, "workers", 2)
const rounds = numberArg(a, "rounds", 3)
/** tests of the worktree-per-test strategy: its cost per test is flat and large, so fewer are enough */
const worktreeTests = numberArg(a, "worktree-tests", tests)

export const commands = {
  clean: "test -f README.md",
  dirty: [
    "echo changed >> src/d000/f000.txt",
    "echo changed >> src/d001/f001.txt",
    "rm src/d002/f002.txt",
    "echo new > untracked.txt",
    "mkdir -p scratch && echo new > scratch/a.txt",
    "echo log > debug.log",
    "mkdir -p build && echo obj > build/out.o"
  ].join(" && ")
} as const
type Kind = keyof typeof commands

const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b2-"))
const repo = Path.join(base, "repo")
const sha = generate(repo, files)

const grove = (kind: Kind, round: number) =>
  Effect.gen(function*() {
    const batch = Array.from({ length: tests }, (_, i) =>
      new Domain.TestRequest({
        id: Domain.TestId.make(`${kind}-${i}`),
        name: `${kind} ${i}`,
        source: "bench",
        steps: [new Domain.Step({ shell: "sh", script: commands[kind] })],
        priority: 0,
        tags: [],
        env: {},
        secretEnv: [],
        resources: []
      }))
    const live = Orchestrator.layerSession({ repo, baseRef: "HEAD" }).pipe(
      Layer.provide(Layer.mergeAll(
        Config.layer({ workers, retries: 0, worktreeDir: Path.join(base, "grove-worktrees") }),
        Git.layer,
        Harness.layerShell,
        SqlStore.layer({ filename: Path.join(base, `grove-${kind}-${round}.db`) })
      )),
      Layer.provide(NodeContext.layer)
    )
    const started = performance.now()
    const report = yield* Effect.scoped(Effect.flatMap(Orchestrator.Orchestrator, (o) => o.runTests(batch)).pipe(
      Effect.provide(live)
    ))
    const ms = performance.now() - started
    if (report.totals.passed !== tests) {
      return yield* Effect.die(new Error(`grove ${kind}: expected ${tests} passed, got ${JSON.stringify(report.totals)}`))
    }
    return ms
  })

/** one bash loop per worker over its share of the tests */
const loops = async (strategy: "worktree" | "reset", kind: Kind, count: number): Promise<number> => {
  const dir = Path.join(base, `alt-${strategy}`)
  Fs.rmSync(dir, { recursive: true, force: true })
  Fs.mkdirSync(dir, { recursive: true })
  const per = Math.ceil(count / workers)
  const body = strategy === "worktree"
    ? `for i in $(seq 1 ${per}); do
         d="${dir}/w$W-$i"
         git -C "${repo}" worktree add -q --detach "$d" ${sha}
         (cd "$d" && sh -e -c "$CMD")
         git -C "${repo}" worktree remove --force "$d"
       done`
    : `d="${dir}/w$W"
       git -C "${repo}" worktree add -q --detach "$d" ${sha}
       for i in $(seq 1 ${per}); do
         git -C "$d" reset -q --hard ${sha}
         git -C "$d" clean -q -ffdx
         (cd "$d" && sh -e -c "$CMD")
       done
       git -C "${repo}" worktree remove --force "$d"`
  const script = `set -e
export CMD=${JSON.stringify(commands[kind]).replaceAll("$", "\\$")}
for W in $(seq 1 ${workers}); do ( W=$W; ${body} ) & done
wait`
  const s = await spawn("bash", ["-c", script])
  if (s.code !== 0) throw new Error(`${strategy} ${kind} failed: ${s.stderr}`)
  sh(`git -C "${repo}" worktree prune`)
  return s.wallMs
}

const main = async () => {
  const rows: Array<Record<string, number>> = []
  for (let round = 0; round < rounds; round++) {
    const row: Record<string, number> = {}
    for (const kind of ["clean", "dirty"] as const) {
      row[`grove_${kind}`] = (await Effect.runPromise(grove(kind, round))) / tests
      row[`worktree_${kind}`] = (await loops("worktree", kind, worktreeTests)) / (Math.ceil(worktreeTests / workers) * workers)
      row[`reset_${kind}`] = (await loops("reset", kind, tests)) / (Math.ceil(tests / workers) * workers)
    }
    rows.push(row)
    process.stderr.write(`b2 round ${round + 1}: ${JSON.stringify(row)}\n`)
  }
  emit({ files, tests, worktreeTests, workers, sha, rounds: rows })
}

main().then(
  () => Fs.rmSync(base, { recursive: true, force: true }),
  (e) => {
    console.error(e)
    process.exitCode = 1
  }
)
