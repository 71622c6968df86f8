/**
 * B1 orchestration overhead: N tests through the full Orchestrator (real queue,
 * scheduler, runners, pool, report) with the in-memory Git, an instant Harness and
 * the in-memory or SQLite Store. Prints `BENCH {json}` with tests/s per session and
 * the process's peak RSS.
 *
 *   node dist/bench/b1.js --tests 10000 --workers 4 --store memory --sessions 3 --warmup 1
 *   node dist/bench/bundle/b1.js --tests 100000 --workers 4 --store sqlite --path cli --sessions 1 --warmup 0
 *
 * The CLI path's memory is measured as the executable runs: bundled the same way
 * (`node scripts/bundle.mjs --bench`, which `npm run bench` runs) and with the
 * modules `grove` loads (the command line's too) resident — node keeps about half as
 * much of a bundle's modules as of the same modules read one file at a time, and V8
 * lets the heap grow to about four times what is live. `bundled` on the BENCH line
 * says which build ran.
 *
 * Each run also reports its CPU time (`cpuMs`, `cpuUsPerTest`), steadier than tests/s on a
 * shared machine; `--samples FILE [--sample-ms N]` writes the memory use over time.
 * With the SQLite store each run also reports `statementsPerTest`: the SQL statements
 * SQLite ran (BEGIN and COMMIT included) ÷ tests.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import * as Os from "node:os"
import * as Path from "node:path"
import { createRequire } from "node:module"
// the modules a session and its reports need, not the index: it also loads the HTTP API
// and the server, which `grove run` does not (index 31 MiB of live heap after a GC, these
// 20 MiB, src/Cli.ts 24 MiB), and V8 lets old space grow to about four times what is live
// before a full collection, so each live MiB costs about four of peak RSS
import * as Config from "../src/Config.js"
import * as Domain from "../src/Domain.js"
import * as Git from "../src/Git.js"
import * as Orchestrator from "../src/Orchestrator.js"
import * as Report from "../src/Report.js"
import * as SqlStore from "../src/SqlStore.js"
import * as Store from "../src/Store.js"
import { args, emit, numberArg, peakRssMiB } from "./common.js"
import { instantHarness, memoryRepo, trueTest } from "./engine.js"

/** set by `scripts/bundle.mjs --bench` */
declare const __GROVE_BUNDLED__: boolean | undefined
const bundled = typeof __GROVE_BUNDLED__ === "boolean" && __GROVE_BUNDLED__

const a = args()
const tests = numberArg(a, "tests", 10_000)
const workers = numberArg(a, "workers", 4)
const sessions = numberArg(a, "sessions", 3)
const warmup = numberArg(a, "warmup", 1)
const store = a.get("store") ?? "memory"
/** the CLI path's tests per submission */
const submission = 1000
/**
 * `library` (default): one `runTests` of an array, the report returned whole.
 * `cli`: what `grove run` does — tests submitted as a stream in batches, the fold's
 * state awaited, the JSON and JUnit reports streamed from the store to files, no
 * Report of all tests built.
 */
const path = a.get("path") ?? "library"
/**
 * `--samples FILE`: `process.memoryUsage()` every `--sample-ms` (default 250) as JSON
 * lines, to see where the peak comes from (heap, external, array buffers, the rest).
 * Sampled from the instant harness's spawn too: a busy session can keep the event loop
 * from running timers for many seconds.
 */
const sample: () => void = (() => {
  const file = a.get("samples")
  if (file === undefined) return () => {}
  const out = Fs.openSync(file, "w")
  const every = numberArg(a, "sample-ms", 250)
  const started = performance.now()
  let last = -Infinity
  const mib = (n: number) => Math.round(n / 1048576 * 10) / 10
  const take = () => {
    const now = performance.now()
    if (now - last < every) return
    last = now
    const m = process.memoryUsage()
    Fs.writeSync(out, JSON.stringify({
      s: Math.round(now - started) / 1000,
      rss: mib(m.rss),
      heapTotal: mib(m.heapTotal),
      heapUsed: mib(m.heapUsed),
      external: mib(m.external),
      arrayBuffers: mib(m.arrayBuffers),
      // RssAnon / RssFile / RssShmem: what of the RSS is not the JS heap
      ...Object.fromEntries(
        [...Fs.readFileSync("/proc/self/status", "utf8").matchAll(/^(RssAnon|RssFile|RssShmem):\s+(\d+) kB/gm)]
          .map(([, k, v]) => [k, Math.round(Number(v) / 102.4) / 10])
      )
    }) + "\n")
  }
  setInterval(take, every).unref()
  return take
})()

const instant = instantHarness(sample)
const repo = memoryRepo
const request = (prefix: string, i: number) => trueTest(`${prefix}-${i}`, `test ${i}`)

const requests = (count: number, prefix: string): ReadonlyArray<Domain.TestRequest> =>
  Array.from({ length: count }, (_, i) => request(prefix, i))

/**
 * Every statement better-sqlite3 runs (prepared or not, `run` or `all`) counted: the
 * store's cost in statements, whatever @effect/sql does above it.
 */
const statements = (() => {
  let count = 0
  if (store !== "sqlite") return () => 0
  const Database = createRequire(import.meta.url)("better-sqlite3") as new(f: string) => {
    prepare: (sql: string) => object
    close: () => void
  }
  const db = new Database(":memory:")
  const proto = Object.getPrototypeOf(db.prepare("SELECT 1")) as Record<string, (...args: Array<unknown>) => unknown>
  db.close()
  for (const method of ["run", "all", "get", "iterate"]) {
    const original = proto[method]!
    proto[method] = function(this: unknown, ...args: Array<unknown>) {
      count++
      return original.apply(this, args)
    }
  }
  return () => count
})()

/** CPU time the process spent on the session (user + system, all threads): steadier than wall time on a shared machine */
const cpuOf = (since: NodeJS.CpuUsage, count: number) => {
  const used = process.cpuUsage(since)
  const cpuMs = (used.user + used.system) / 1000
  return { cpuMs, cpuUsPerTest: (cpuMs * 1000) / count }
}

const dbDir = store === "sqlite" ? Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b1-")) : undefined

const session = (count: number, label: string) =>
  Effect.gen(function*() {
    const storeLayer: Layer.Layer<Store.Store, unknown> = store === "sqlite"
      ? SqlStore.layer({ filename: Path.join(dbDir!, `${label}.db`) }).pipe(Layer.provide(NodeContext.layer))
      : Store.layerMemory
    const live = Orchestrator.layerSession({ repo: repo.root, baseRef: "main" }).pipe(
      Layer.provide(Layer.mergeAll(
        Config.layer({ workers, retries: 0 }),
        Git.layerMemory({ repos: [repo] }),
        instant,
        storeLayer
      ))
    )
    const started = performance.now()
    const cpu = process.cpuUsage()
    const statementsBefore = statements()
    const perTest = () => store === "sqlite" ? { statementsPerTest: (statements() - statementsBefore) / count } : {}
    if (path === "cli") {
      let reportsFrom = started
      const out = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b1-reports-"))
      const passed = yield* Effect.scoped(Effect.gen(function*() {
        const o = yield* Orchestrator.Orchestrator
        const st = yield* Store.Store
        // made as they are submitted, 1,000 at a time: Stream.range's own chunks (4,096 by
        // default) made 4,096 requests at once, three thousand of them waiting in the stream
        yield* Stream.range(0, count - 1, submission).pipe(
          Stream.map((i) => request(label, i)),
          Stream.grouped(submission),
          Stream.runForEach((chunk) => o.submitBatch(chunk))
        )
        const state = yield* o.awaitIdle
        reportsFrom = performance.now()
        const head = Report.fromState(state, [])
        const fs = yield* FileSystem.FileSystem
        for (const kind of ["json", "junit"] as const) {
          const text = Option.getOrThrow(Report.renderStream(kind, head, Store.testStream(st, state.sessionId)))
          yield* Stream.run(Stream.encodeText(text), fs.sink(Path.join(out, `report.${kind}`)))
        }
        return state.counts.passed
      }).pipe(
        // one store, shared by the session and the report writer
        Effect.provide(Orchestrator.layerSession({ repo: repo.root, baseRef: "main" }).pipe(
          Layer.provide(Layer.mergeAll(Config.layer({ workers, retries: 0 }), Git.layerMemory({ repos: [repo] }), instant)),
          Layer.provideMerge(storeLayer)
        )),
        Effect.provide(NodeContext.layer)
      ))
      Fs.rmSync(out, { recursive: true, force: true })
      const ms = performance.now() - started
      if (passed !== count) return yield* Effect.die(new Error(`expected ${count} passed, got ${passed}`))
      // when the reports began, in the process's time (performance.now(), as --trace-gc's ms):
      // what a GC trace of the run phase and of the report phase needs to tell them apart
      const phases = { startedAtMs: Math.round(started), reportsAtMs: Math.round(reportsFrom), reportsMs: Math.round(ms - (reportsFrom - started)) }
      return { ms, testsPerSecond: count / (ms / 1000), ...cpuOf(cpu, count), ...perTest(), phases }
    }
    const batch = requests(count, label)
    const report = yield* Effect.scoped(Effect.flatMap(Orchestrator.Orchestrator, (o) => o.runTests(batch)).pipe(
      Effect.provide(live)
    ))
    const ms = performance.now() - started
    if (report.totals.passed !== count) {
      return yield* Effect.die(new Error(`expected ${count} passed, got ${JSON.stringify(report.totals)}`))
    }
    return { ms, testsPerSecond: count / (ms / 1000), ...cpuOf(cpu, count), ...perTest() }
  })

const program = Effect.gen(function*() {
  if (path === "cli") {
    if (!bundled) {
      process.stderr.write("b1: --path cli from the unbundled build: its memory is not the executable's (run node dist/bench/bundle/b1.js)\n")
    }
    // what `grove run` has loaded besides the session: the command line, the plan parser
    yield* Effect.promise(() => import("../src/Cli.js"))
  }
  for (let i = 0; i < warmup; i++) yield* session(Math.min(tests, 2000), `warm${i}`)
  const runs: Array<{ ms: number; testsPerSecond: number; cpuMs: number; cpuUsPerTest: number; statementsPerTest?: number; phases?: object }> = []
  for (let i = 0; i < sessions; i++) runs.push(yield* session(tests, `s${i}`))
  // the heap after a forced collection: what stays live (no flag needed to get gc)
  V8.setFlagsFromString("--expose-gc")
  const gc = Vm.runInNewContext("gc") as () => void
  gc()
  emit({ tests, workers, store, path, bundled, runs, peakRssMiB: peakRssMiB(), heapUsedMiB: process.memoryUsage().heapUsed / 1048576 })
})

Effect.runPromise(program).then(
  () => {
    if (dbDir !== undefined) Fs.rmSync(dbDir, { recursive: true, force: true })
  },
  (e) => {
    console.error(e)
    process.exitCode = 1
  }
)
