/**
 * B8 where a test's microseconds go: the engine's per-test work taken apart, each part
 * timed alone in one process (CPU time, after warm-up rounds), next to B1's whole
 * per-test cost measured in the same process. Prints `BENCH {json}` with µs per call.
 *
 *   node dist/bench/bench/b8.js [--calls 20000] [--tests 5000]
 *
 * Parts:
 * - Effect's primitives a test pays several times, run inside a session's Context
 *   (the Context and FiberRefs a worker really has): `provideService`, `Effect.scoped`,
 *   a fork joined, a Deferred;
 * - a worktree borrowed from the session's `WorktreePool` and given back, and a worker's
 *   leased worktree readied again for its next test (in-memory Git);
 * - an attempt through `Harness.runWithin` on an instant Harness (the deadline included);
 * - the events one test produced in a real session (recorded from it, not made up),
 *   written to the in-memory store and to SQLite (grouped as the session log groups
 *   them), and folded by `SessionState.update`;
 * - B1's own figure: a whole session of `--tests` tests on 4 workers, in memory.
 *
 * @since 0.3.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Config from "../src/Config.js"
import * as Domain from "../src/Domain.js"
import * as Git from "../src/Git.js"
import * as Harness from "../src/Harness.js"
import * as Orchestrator from "../src/Orchestrator.js"
import * as Session from "../src/Session.js"
import * as SessionState from "../src/SessionState.js"
import * as SqlStore from "../src/SqlStore.js"
import * as Store from "../src/Store.js"
import * as WorktreePool from "../src/WorktreePool.js"
import { args, emit, median, numberArg, round } from "./common.js"
import { instantHarness, memoryRepo, trueTest } from "./engine.js"

const a = args()
const calls = numberArg(a, "calls", 20_000)
const tests = numberArg(a, "tests", 5_000)

const instant = instantHarness()
const repo = memoryRepo
const request = (prefix: string, i: number) => trueTest(`${prefix}-${i}`, `test ${i}`)

const base = Layer.mergeAll(Config.layer({ workers: 4, retries: 0 }), Git.layerMemory({ repos: [repo] }), instant)

/** CPU µs per run of `effect`, median of 3 rounds after 2 warm-up rounds of `n` runs each */
const perCall = <E, R>(effect: Effect.Effect<unknown, E, R>, n = calls) =>
  Effect.gen(function*() {
    const rounds: Array<number> = []
    for (let round = 0; round < 5; round++) {
      const before = process.cpuUsage()
      for (let i = 0; i < n; i++) yield* effect
      const used = process.cpuUsage(before)
      if (round >= 2) rounds.push((used.user + used.system) / n)
    }
    return round(median(rounds), 2)
  })

class Probe extends Context.Tag("bench/Probe")<Probe, number>() {}

/** the events of one session of `count` tests, as its subscribers saw them */
const recordSession = (count: number) =>
  Effect.scoped(Effect.gen(function*() {
    const o = yield* Orchestrator.Orchestrator
    const sub = yield* o.subscribe
    yield* o.runTests(Array.from({ length: count }, (_, i) => request("rec", i)))
    return Chunk.toReadonlyArray(yield* Queue.takeAll(sub))
  }).pipe(Effect.provide(Orchestrator.layerSession({ repo: repo.root, baseRef: "main" }).pipe(
    Layer.provide(Layer.mergeAll(base, Store.layerMemory))
  ))))

const program = Effect.gen(function*() {
  const out: Record<string, number> = {}

  // Effect's primitives, in the Context of a session's worker
  yield* Effect.gen(function*() {
    out.provideService = yield* perCall(Effect.provideService(Effect.void, Probe, 1))
    out.scoped = yield* perCall(Effect.scoped(Effect.void))
    out.forkJoin = yield* perCall(Effect.flatMap(Effect.fork(Effect.void), (f) => f.await))
    out.deferred = yield* perCall(Effect.flatMap(Deferred.make<void>(), (d) => Effect.zipRight(Deferred.succeed(d, undefined), Deferred.await(d))))

    // a borrow and its return, and one attempt under its deadline
    const pool = yield* WorktreePool.WorktreePool
    const harness = yield* Harness.Harness
    out.borrow = yield* perCall(Effect.scoped(pool.borrow("c0ffee1")))
    // what a worker does per test: its leased worktree readied again
    const lease = yield* pool.lease
    out.leasePrepare = yield* perCall(lease.prepare("c0ffee1"))
    const spec: Harness.AttemptSpec = {
      testId: "t",
      attempt: 1,
      attemptKey: "k",
      steps: [new Domain.Step({ shell: "sh", script: "true" })],
      cwd: "/repo",
      env: {},
      secrets: [],
      logPath: Path.join(Os.tmpdir(), "grove-b8.log"),
      logCap: 1_000_000,
      tailBytes: 4096,
      killGrace: Duration.seconds(5),
      hurry: Effect.never
    }
    const deadlines = yield* Harness.makeDeadlines
    out.runWithin = yield* perCall(
      Harness.runWithin(harness, spec, Duration.minutes(30)).pipe(Effect.provideService(Harness.Deadlines, deadlines))
    )
  }).pipe(
    Effect.scoped,
    Effect.provide(WorktreePool.layer.pipe(
      Layer.provideMerge(Session.layer({ repo: repo.root, baseRef: "main" })),
      Layer.provideMerge(base)
    ))
  )

  // one test's events, from a real session: written, and folded
  const logged = yield* recordSession(200)
  const perTest = logged.filter((l) => l.event._tag !== "SessionStarted" && l.event._tag !== "SessionFinished")
  const eventsPerTest = perTest.length / 200
  out.eventsPerTest = round(eventsPerTest, 2)
  out.foldPerTest = round(
    (yield* perCall(Effect.sync(() => perTest.reduce(SessionState.update, SessionState.initial("s"))), 200)) / 200,
    2
  )
  const replay = (store: Store.Store["Type"], group: number) =>
    Effect.gen(function*() {
      let sessions = 0
      // each run writes a fresh session of the recorded tests: ids are the session's, seqs its own
      return yield* perCall(
        Effect.gen(function*() {
          const id = `replay-${sessions++}`
          yield* store.record(
            id,
            Domain.Events.SessionStarted({ sessionId: id, baseRef: "main", baseSha: "c0ffee1", workers: 4, startedAt: Date.now() }),
            { seq: 1, meta: { repoRoot: repo.root, pid: process.pid, config: "{}" } }
          )
          for (let i = 0; i < perTest.length; i += group) {
            yield* store.recordAll(id, perTest.slice(i, i + group).map((l) => l.event), { firstSeq: i + 2 })
          }
        }),
        10
      ).pipe(Effect.map((us) => round(us / 200, 1)))
    })
  out.memoryStorePerTest = yield* Effect.flatMap(Store.makeMemory, (store) => replay(store, 1))
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b8-"))
  // the session log hands SQLite ≈ 1.5 transactions per test (BENCHMARKS.md): about 3 events each
  out.sqliteStorePerTest = yield* Effect.scoped(Effect.flatMap(
    Layer.build(SqlStore.layer({ filename: Path.join(dir, "b8.db") }).pipe(Layer.provide(NodeContext.layer))),
    (context) => replay(Context.get(context, Store.Store), 3)
  ))
  Fs.rmSync(dir, { recursive: true, force: true })

  // B1's whole per-test cost, in this process
  out.sessionPerTest = round(
    yield* Effect.gen(function*() {
      const rounds: Array<number> = []
      for (let r = 0; r < 3; r++) {
        const before = process.cpuUsage()
        yield* Effect.scoped(Effect.flatMap(Orchestrator.Orchestrator, (o) =>
          o.runTests(Array.from({ length: tests }, (_, i) => request(`s${r}`, i)))).pipe(
            Effect.provide(Orchestrator.layerSession({ repo: repo.root, baseRef: "main" }).pipe(
              Layer.provide(Layer.mergeAll(base, Store.layerMemory))
            ))
          ))
        const used = process.cpuUsage(before)
        if (r > 0) rounds.push((used.user + used.system) / tests)
      }
      return median(rounds)
    }),
    1
  )
  emit({ calls, tests, us: out })
})

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exit(1)
})
