/**
 * The heartbeat of a session's owner and whether an owner lives (src/Heartbeat.ts,
 * `Resume.ownerState`), on TestClock over the in-memory store: the fiber beats every
 * interval and stops with its scope or once the session is another's; an owner on
 * another host lives while its heartbeat is fresh, one on this host while its pid does.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Os from "node:os"
import { Events, Step, TestRequest } from "../src/Domain.js"
import { StoreError } from "../src/GroveError.js"
import * as Harness from "../src/Harness.js"
import * as Heartbeat from "../src/Heartbeat.js"
import { Orchestrator } from "../src/Orchestrator.js"
import * as Resume from "../src/Resume.js"
import * as Store from "../src/Store.js"
import * as Testing from "../src/Testing.js"

const sid = "20261201-1200-beat"
const started = (startedAt: number) =>
  Events.SessionStarted({ sessionId: sid, baseRef: "main", baseSha: "c0ffee1", workers: 1, startedAt })

/** a session in `store` owned by `host`/`pid`, its first heartbeat at `at` */
const owned = (store: Store.Store["Type"], host: string, pid: number, at: number) =>
  store.record(sid, started(at), { meta: { repoRoot: "/repo", pid, config: "{}", host, heartbeatAt: at } })

const heartbeatAt = (store: Store.Store["Type"]) => Effect.map(store.owner(sid), (o) => o.heartbeatAt)

/** a pid no process has (a child that has exited) */
const deadPid = Effect.async<number>((resume) => {
  const child = ChildProcess.spawn("true")
  child.on("exit", () => resume(Effect.succeed(child.pid!)))
})

const req = (id: string) =>
  new TestRequest({ id: id as TestRequest["id"], name: id, source: "test", steps: [new Step({ shell: "sh", script: `run ${id}` })] })

describe("Heartbeat (TestClock)", () => {
  it("the host is GROVE_HOST when set, else os.hostname()", () => {
    assert.strictEqual(Heartbeat.hostOf({ GROVE_HOST: "ci-7" }), "ci-7")
    assert.strictEqual(Heartbeat.hostOf({ GROVE_HOST: "  " }), Os.hostname())
    assert.strictEqual(Heartbeat.hostOf({}), Os.hostname())
  })

  it.scoped("beats at once and every 5 s on the Clock; stops when its scope closes", () =>
    Effect.gen(function*() {
      const store = yield* Store.makeMemory
      yield* owned(store, "ci-1", 4242, 0)
      yield* TestClock.adjust("1 second")
      const scope = yield* Scope.make()
      yield* Heartbeat.run(sid, { host: "ci-1", pid: 4242 }).pipe(
        Effect.provideService(Store.Store, store),
        Effect.forkIn(scope)
      )
      yield* TestClock.adjust("0 millis")
      assert.strictEqual(yield* heartbeatAt(store), 1000, "one beat when it starts")
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual(yield* heartbeatAt(store), 1000, "none before the interval")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* heartbeatAt(store), 6000)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* heartbeatAt(store), 16_000)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* heartbeatAt(store), 16_000, "no beat after its scope closed")
    }))

  it.scoped("a store that refuses beats is warned about once, its return once; once another grove owns the session the fiber ends", () =>
    Effect.gen(function*() {
      const memory = yield* Store.makeMemory
      let failures = 3
      const store = Store.Store.of({
        ...memory,
        heartbeat: (id, beat) =>
          failures-- > 0
            ? Effect.fail(new StoreError({ reason: "Query", detail: "the server went away" }))
            : memory.heartbeat(id, beat)
      })
      const warnings: Array<string> = []
      const logger = Logger.make(({ message }) => void warnings.push(Array.isArray(message) ? message.join(" ") : String(message)))
      yield* owned(store, "ci-1", 4242, 0)
      const fiber = yield* Effect.fork(
        Heartbeat.run(sid, { host: "ci-1", pid: 4242 }).pipe(Effect.provideService(Store.Store, store), Effect.provide(Logger.add(logger)))
      )
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* heartbeatAt(store), 0, "three beats refused")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* heartbeatAt(store), 15_000, "the fiber went on: the next beat was written")
      assert.strictEqual(warnings.length, 2, warnings.join("\n"))
      assert.include(warnings[0], "could not write the heartbeat of session 20261201-1200-beat (the server went away)")
      assert.include(warnings[0], "once its heartbeat is 15s old")
      assert.include(warnings[1], "is written again")
      // another grove resumes the session (another host, another pid)
      yield* owned(store, "ci-2", 77, 17_000)
      yield* TestClock.adjust("5 seconds")
      assert.isTrue(Option.isSome(yield* Fiber.poll(fiber)), "the heartbeat of a lost session ends")
      assert.include(warnings[2], "is now run by grove process 77 on ci-2")
      assert.deepStrictEqual(yield* store.owner(sid), { sessionId: sid, status: "RUNNING", host: "ci-2", pid: 77, heartbeatAt: 17_000 })
    }))

  it.scoped("the Orchestrator's session: owner recorded at its start, a heartbeat while it runs, none once it has ended", () =>
    Effect.gen(function*() {
      const memory = yield* Store.makeMemory
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Testing.layer({
          script: Harness.scriptTable({ slow: [{ exitCode: 0, durationMs: 12_000 }] }),
          store: Layer.succeed(Store.Store, memory)
        }),
        scope
      )
      const orch = Context.get(context, Orchestrator)
      const id = orch.session.id
      const first = yield* memory.owner(id)
      assert.deepStrictEqual(first, { sessionId: id, status: "RUNNING", host: Heartbeat.hostOf(process.env), pid: process.pid, heartbeatAt: 0 })
      const run = yield* Effect.fork(orch.runTests([req("slow")]))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* memory.owner(id)).heartbeatAt, 10_000)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* Fiber.join(run)).session.status, "COMPLETE")
      yield* Scope.close(scope, Exit.void)
      const last = yield* memory.owner(id)
      assert.strictEqual(last.status, "COMPLETE")
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(yield* memory.owner(id), last, "a finished session's heartbeat stays where it stopped")
    }))
})

describe("whether a session's owner lives (Resume.ownerState, TestClock)", () => {
  const owner = (fields: Partial<Store.SessionOwner>): Store.SessionOwner => ({
    sessionId: sid,
    status: "RUNNING",
    host: "elsewhere-h3-test",
    pid: 4242,
    heartbeatAt: 0,
    ...fields
  })

  it.effect("on another host: alive while its heartbeat is younger than 3 intervals (15 s), whatever its pid here", () =>
    Effect.gen(function*() {
      const dead = yield* deadPid
      yield* TestClock.adjust("14999 millis")
      const fresh = yield* Resume.ownerState(owner({ pid: dead }))
      assert.deepInclude(fresh, { alive: true, local: false, heartbeatAgeMs: 14_999 })
      assert.include(Resume.describeOwner(fresh), `grove process ${dead} on elsewhere-h3-test (last heartbeat 15.0s ago)`)
      yield* TestClock.adjust("1 millis")
      assert.deepInclude(yield* Resume.ownerState(owner({ pid: process.pid })), { alive: false, heartbeatAgeMs: 15_000 })
      // a clock ahead of this one: fresh; no heartbeat at all: dead
      assert.isTrue((yield* Resume.ownerState(owner({ heartbeatAt: 20_000 }))).alive)
      assert.isFalse((yield* Resume.ownerState(owner({ heartbeatAt: undefined }))).alive)
    }))

  it.effect("on this host, or an unknown one (a session recorded before schema 4): its pid decides, not its heartbeat", () =>
    Effect.gen(function*() {
      const here = Heartbeat.hostOf(process.env)
      const dead = yield* deadPid
      yield* TestClock.adjust("1 hour")
      for (const host of [here, undefined]) {
        assert.deepInclude(yield* Resume.ownerState(owner({ host, pid: process.pid })), { alive: true, local: true })
        assert.deepInclude(yield* Resume.ownerState(owner({ host, pid: dead, heartbeatAt: 3_600_000 })), { alive: false, local: true })
      }
    }))

  it.effect("a session that is not RUNNING has no live owner", () =>
    Effect.gen(function*() {
      assert.isFalse((yield* Resume.ownerState(owner({ status: "COMPLETE", host: Heartbeat.hostOf(process.env), pid: process.pid }))).alive)
      assert.isFalse((yield* Resume.ownerState(owner({ status: "INTERRUPTED" }))).alive)
    }))
})
