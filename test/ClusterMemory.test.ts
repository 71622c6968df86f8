/**
 * The cluster's protocol above its transport (src/Cluster.ts), on the cluster's own
 * in-memory runner (`TestRunner.layer`) and TestClock: the coordinator's Executor and
 * the runner's `GroveAttempt` handlers as `grove run --cluster` and `grove runner`
 * use them, over the in-memory Git and the scripted Harness.
 */
import type * as Sharding from "@effect/cluster/Sharding"
import * as TestRunner from "@effect/cluster/TestRunner"
import { assert, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Cluster from "../src/Cluster.js"
import * as Config from "../src/Config.js"
import { Step, TestRequest } from "../src/Domain.js"
import * as Git from "../src/Git.js"
import * as Harness from "../src/Harness.js"
import * as Orchestrator from "../src/Orchestrator.js"
import * as Runner from "../src/Runner.js"
import * as Store from "../src/Store.js"
import * as Testing from "../src/Testing.js"

const test = (id: string) =>
  new TestRequest({ id: id as TestRequest["id"], name: id, source: "memory", steps: [new Step({ shell: "bash", script: "true" })] })

/**
 * A session whose attempts go through the in-memory cluster to one runner of
 * `runnerWorkers` workers, while the coordinator has `workers` of its own.
 */
const clusterSession = (options: {
  readonly workers: number
  readonly runnerWorkers: number
  readonly script: Harness.Script
}) => {
  const runnerSide = Layer.unwrapEffect(Effect.gen(function*() {
    const git = yield* Git.Git
    const repo = yield* git.repoInfo(Testing.defaultRepo.root)
    return Cluster.layerEntity({
      repo,
      host: "runner-a",
      port: 1,
      config: { ...Config.defaults, workers: options.runnerWorkers }
    })
  }))
  // the coordinator's Executor over the same in-memory cluster
  const remote = Layer.effect(
    Runner.RemoteExecutor,
    Effect.map(
      Effect.context<Sharding.Sharding>(),
      (cluster) => Option.some(Cluster.layerExecutor.pipe(Layer.provide(Layer.succeedContext(cluster))))
    )
  )
  const base = Layer.mergeAll(
    Config.layer({ seed: "grove", workers: options.workers, retries: 0 }),
    Git.layerMemory({ repos: [Testing.defaultRepo] }),
    Harness.layerMemory(options.script),
    Store.layerMemory,
    TestRunner.layer
  )
  return Layer.mergeAll(
    Orchestrator.layerSession({ repo: Testing.defaultRepo.root, baseRef: "main" }).pipe(Layer.provide(remote)),
    runnerSide
  ).pipe(Layer.provideMerge(base))
}

/** runs `self` while TestClock moves on in steps of a second */
const withTime = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(self)
    while (Option.isNone(yield* Fiber.poll(fiber))) {
      yield* TestClock.adjust(Duration.seconds(1))
    }
    return yield* Fiber.join(fiber)
  })

it.scoped("a busy runner makes the claim go round until a worker is free: never more attempts on it than it has workers", () =>
  Effect.gen(function*() {
    const orch = yield* Orchestrator.Orchestrator
    const memory = yield* Harness.HarnessMemory
    const report = yield* withTime(orch.runTests([test("a"), test("b"), test("c")]))
    assert.deepStrictEqual(report.tests.map((t) => t.status), ["PASSED", "PASSED", "PASSED"])
    // one worker on the runner: the three 10 s runs of the Harness there did not overlap
    const runs = yield* memory.runs
    assert.strictEqual(runs.length, 3)
    const attempts = report.tests.map((t) => t.attempts[0]!)
    const ends = attempts.map((a) => a.startedAt.epochMillis + a.durationMs).sort((x, y) => x - y)
    assert.isAtLeast(ends[2]! - ends[0]!, 20_000, JSON.stringify(attempts))
    assert.isAtLeast(ends[1]! - ends[0]!, 10_000, JSON.stringify(attempts))
    for (const t of report.tests) {
      assert.isTrue(t.attempts[0]!.worktree.startsWith("runner-a:1:/"), t.attempts[0]!.worktree)
    }
  }).pipe(Effect.provide(clusterSession({
    workers: 3,
    runnerWorkers: 1,
    script: Harness.scriptTable({}, { exitCode: 0, durationMs: 10_000, output: "ran\n" })
  }))), { timeout: 60_000 })

it.scoped("an attempt's outcome comes back as the runner's Harness saw it: exit code, tail, the failing step", () =>
  Effect.gen(function*() {
    const orch = yield* Orchestrator.Orchestrator
    const report = yield* withTime(orch.runTests([test("ok"), test("bad")]))
    const byId = new Map(report.tests.map((t) => [t.id, t]))
    assert.strictEqual(byId.get("ok" as TestRequest["id"])!.status, "PASSED")
    const bad = byId.get("bad" as TestRequest["id"])!
    assert.strictEqual(bad.status, "FAILED")
    assert.strictEqual(bad.attempts[0]!.exitCode, 3)
    assert.include(bad.attempts[0]!.tail, "it broke")
    assert.include(bad.attempts[0]!.message ?? "", "step 1 of 1 exited with 3")
  }).pipe(Effect.provide(clusterSession({
    workers: 2,
    runnerWorkers: 2,
    script: Harness.scriptTable({ bad: [{ exitCode: 3, output: "it broke\n", durationMs: 500 }] })
  }))), { timeout: 60_000 })
