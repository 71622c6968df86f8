/**
 * Live events below HTTP (`server/Live.ts`, `SessionState.Snapshot`), where time is
 * the TestClock's: the snapshot Schema's round trip through JSON; the frames of a
 * stored session — snapshot, the events as they are written, a heartbeat every
 * interval (and none before), the end after SessionFinished — with the notifier's
 * polls on the TestClock; the snapshot's time left; a resumed follower; a session resumed after its
 * SessionFinished goes on. The frames over real HTTP, with real `grove run`s and
 * `grove serve`, are `LiveServerCli.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { Attempt, Counts, Events, Logged, type SessionEvent, Step, TestId, TestRequest, TestResult } from "../src/Domain.js"
import * as Live from "../src/server/Live.js"
import * as SessionState from "../src/SessionState.js"
import * as Store from "../src/Store.js"
import * as DateTime from "effect/DateTime"

const sessionId = "20261201-1000-live"
const T0 = 1_796_000_000_000

const request = (id: string) =>
  new TestRequest({ id: TestId.make(id), name: id, source: "test", steps: [new Step({ shell: "sh", script: "true" })] })

const attempt = (n: number, status: "PASSED" | "FAILED", worker: number, startedAt: number) =>
  new Attempt({
    n,
    status,
    exitCode: status === "PASSED" ? 0 : 1,
    signal: null,
    worker,
    worktree: `/wt/w${worker}`,
    startedAt: DateTime.unsafeMake(startedAt),
    durationMs: 100,
    logPath: `/logs/${n}.log`,
    tail: "out\n"
  })

/** a session in the middle: a passed test, one failed and waiting for its retry, one running, one queued */
const events: ReadonlyArray<SessionEvent> = [
  Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c0ffee", workers: 2, startedAt: T0 }),
  Events.TestQueued({ test: request("a"), sha: "c0ffee", refName: "main", expectedMs: 120 }),
  Events.TestQueued({ test: request("b"), sha: "c0ffee", refName: "main", expectedMs: undefined }),
  Events.TestQueued({ test: request("c"), sha: "c0ffee", refName: "main", expectedMs: 50 }),
  Events.TestQueued({ test: request("d"), sha: "c0ffee", refName: "main" }),
  Events.AttemptStarted({ testId: TestId.make("a"), n: 1, worker: 1, worktree: "/wt/w1", startedAt: T0 + 10, logPath: "/logs/a.1" }),
  Events.AttemptStarted({ testId: TestId.make("b"), n: 1, worker: 2, worktree: "/wt/w2", startedAt: T0 + 10, logPath: "/logs/b.1" }),
  Events.AttemptFinished({ testId: TestId.make("a"), attempt: attempt(1, "PASSED", 1, T0 + 10) }),
  Events.TestFinished({
    result: new TestResult({
      id: TestId.make("a"),
      name: "a",
      source: "test",
      ref: "main",
      status: "PASSED",
      durationMs: 100,
      attempts: [attempt(1, "PASSED", 1, T0 + 10)]
    })
  }),
  Events.AttemptFinished({ testId: TestId.make("b"), attempt: attempt(1, "FAILED", 2, T0 + 10) }),
  Events.RetryScheduled({ testId: TestId.make("b"), nextAttempt: 2, delayMs: 1000 }),
  Events.AttemptStarted({ testId: TestId.make("c"), n: 1, worker: 1, worktree: "/wt/w1", startedAt: T0 + 200, logPath: "/logs/c.1" })
]

const logged = events.map((event, i) => new Logged({ seq: i + 1, event }))

/** a state as plain values, its maps as sorted entries, to compare two states */
const plain = (state: SessionState.SessionState) => ({
  ...state,
  counts: { ...state.counts },
  waiting: [...HashMap.toEntries(state.waiting)].sort(([a], [b]) => a.localeCompare(b)),
  running: [...HashMap.toEntries(state.running)].sort(([a], [b]) => a.localeCompare(b))
})

describe("SessionState.Snapshot", () => {
  it("survives JSON: encode, stringify, parse, decode gives the same state, and encodes to the same text again", () => {
    for (let n = 0; n <= logged.length; n++) {
      const state = logged.slice(0, n).reduce(SessionState.update, SessionState.initial(sessionId))
      const text = JSON.stringify(SessionState.encodeSnapshot(state))
      const back = SessionState.decodeSnapshot(JSON.parse(text))
      assert.deepStrictEqual(plain(back), plain(state), `after ${n} events`)
      assert.strictEqual(JSON.stringify(SessionState.encodeSnapshot(back)), text)
      // and the fold goes on from the decoded state as from the original
      const rest = logged.slice(n)
      assert.deepStrictEqual(plain(rest.reduce(SessionState.update, back)), plain(rest.reduce(SessionState.update, state)))
    }
  })

  it("writes the maps as arrays (running by worker, waiting by id) and absent numbers as null", () => {
    const state = logged.reduce(SessionState.update, SessionState.initial(sessionId))
    const json = JSON.parse(JSON.stringify(SessionState.encodeSnapshot(state)))
    assert.deepStrictEqual(json.waiting, [
      { testId: "b", expectedMs: null, retry: true },
      { testId: "d", expectedMs: null, retry: false }
    ])
    assert.deepStrictEqual(json.running.map((r: any) => [r.testId, r.worker, r.active, r.expectedMs]), [["c", 1, true, 50]])
    assert.strictEqual(json.seq, logged.length)
    assert.strictEqual(json.completedAt, null)
    assert.deepStrictEqual(json.counts, { total: 4, passed: 1, flaky: 0, failed: 0, timedOut: 0, error: 0, cancelled: 0 })
  })

  it("refuses what is not a state, naming the field", () => {
    const json = JSON.parse(JSON.stringify(SessionState.encodeSnapshot(SessionState.initial(sessionId))))
    const bad = Schema.decodeUnknownEither(SessionState.Snapshot)({ ...json, status: "DONE" })
    assert.isTrue(bad._tag === "Left")
    assert.include(String(bad._tag === "Left" ? bad.left.message : ""), "status")
  })
})

// -----------------------------------------------------------------------------
// the frames, on the TestClock
// -----------------------------------------------------------------------------

const meta = { repoRoot: "/repo", pid: 1, config: "{}" }

const tagOf = (frame: Live.Frame) =>
  frame._tag === "Event" ? `${frame.seq}:${frame.event}` : frame._tag === "Snapshot" ? `snapshot@${frame.state.seq}` : "ping"

/** runs the frames into a list the test reads while they come; returns the list and the fiber */
const collect = (frames: Stream.Stream<Live.Frame, unknown>) =>
  Effect.gen(function*() {
    const seen = yield* Ref.make<ReadonlyArray<string>>([])
    const fiber = yield* Effect.fork(Stream.runForEach(frames, (f) => Ref.update(seen, (s) => [...s, tagOf(f)])))
    return { seen: Ref.get(seen), fiber }
  })

/** lets forked fibers run (the store is in memory: no real time is involved) */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

describe("Live frames", () => {
  it.scoped("snapshot, then the events as they are written, a ping every 15 s to a waiting client and none before, the end after SessionFinished", () =>
    Effect.gen(function*() {
      const store = yield* Store.makeMemory
      yield* store.record(sessionId, events[0]!, { meta })
      yield* store.record(sessionId, events[1]!)
      const live = yield* Live.make({ heartbeat: "15 seconds" }).pipe(Effect.provideService(Store.Store, store))
      const frames = Option.getOrThrow(yield* live.frames(sessionId, { _tag: "Snapshot" }))
      const { fiber, seen } = yield* collect(frames)
      yield* settle
      assert.deepStrictEqual(yield* seen, ["snapshot@2"])

      yield* TestClock.adjust("14 seconds")
      yield* settle
      assert.deepStrictEqual(yield* seen, ["snapshot@2"], "no heartbeat before 15 s")
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual(yield* seen, ["snapshot@2", "ping"])

      // written by "another process": the notifier's next poll (≤ 250 ms of Clock time) finds them
      yield* store.record(sessionId, events[2]!)
      yield* store.record(sessionId, events[3]!)
      yield* TestClock.adjust("250 millis")
      yield* settle
      assert.deepStrictEqual(yield* seen, ["snapshot@2", "ping", "3:TestQueued", "4:TestQueued"])

      // while events flow the poller looks every 50 ms: the next one is there 50 ms later, not before
      yield* store.record(sessionId, events[4]!)
      yield* TestClock.adjust("40 millis")
      yield* settle
      assert.strictEqual((yield* seen).length, 4)
      yield* TestClock.adjust("10 millis")
      yield* settle
      assert.deepStrictEqual((yield* seen).slice(4), ["5:TestQueued"])

      yield* store.record(sessionId, Events.SessionFinished({ status: "NO_TESTS", completedAt: T0 + 5, counts: new Counts({ total: 0, passed: 0, flaky: 0, failed: 0, timedOut: 0, error: 0, cancelled: 0 }) }))
      yield* TestClock.adjust("250 millis")
      yield* settle
      const exit = yield* Fiber.await(fiber)
      assert.strictEqual(exit._tag, "Success", "the stream ended after SessionFinished")
      assert.deepStrictEqual(yield* seen, ["snapshot@2", "ping", "3:TestQueued", "4:TestQueued", "5:TestQueued", "6:SessionFinished"])

      // a finished session: snapshot, then the end; resumed after its last event: nothing, then the end
      const late = yield* Stream.runCollect(Option.getOrThrow(yield* live.frames(sessionId, { _tag: "Snapshot" })))
      assert.deepStrictEqual(Chunk.toArray(late).map(tagOf), ["snapshot@6"])
      const after3 = yield* Stream.runCollect(Option.getOrThrow(yield* live.frames(sessionId, { _tag: "After", seq: 3 })))
      assert.deepStrictEqual(Chunk.toArray(after3).map(tagOf), ["4:TestQueued", "5:TestQueued", "6:SessionFinished"])
      const after6 = yield* Stream.runCollect(Option.getOrThrow(yield* live.frames(sessionId, { _tag: "After", seq: 6 })))
      assert.deepStrictEqual(Chunk.toArray(after6), [])
      assert.isTrue(Option.isNone(yield* live.frames("20261201-1000-none", { _tag: "Snapshot" })))
      assert.isTrue(Option.isNone(yield* live.frames("20261201-1000-none", { _tag: "After", seq: 0 })))
    }))

  it.scoped("the snapshot carries the time left when it was taken, on the Clock of the events; null while unknown, 0 once ended", () =>
    Effect.gen(function*() {
      const store = yield* Store.makeMemory
      yield* store.record(sessionId, events[0]!, { meta })
      for (const event of events.slice(1)) yield* store.record(sessionId, event)
      const live = yield* Live.make({ heartbeat: "15 seconds" }).pipe(Effect.provideService(Store.Store, store))
      const snapshotAt = (id: string) =>
        Effect.gen(function*() {
          const frames = Option.getOrThrow(yield* live.frames(id, { _tag: "Snapshot" }))
          const first = Chunk.toArray(yield* Stream.runCollect(Stream.take(frames, 1)))[0]!
          const sse = Live.sseText(first)
          const data = JSON.parse(sse.slice(sse.indexOf("data: ") + 6))
          assert.deepStrictEqual(JSON.parse(Live.wsText(first)!).data.eta, data.eta, "SSE and WebSocket say the same")
          return data.eta
        })
      // c runs since T0 + 200 and expects 50 ms: 30 left at T0 + 220; b and d have no history and count as
      // the mean of what is known (30); 90 ms over 2 workers, never below the longest (30): 45
      yield* TestClock.setTime(T0 + 220)
      assert.deepStrictEqual(yield* snapshotAt(sessionId), { millis: 45, estimate: false })
      yield* TestClock.setTime(T0 + 240)
      assert.deepStrictEqual(yield* snapshotAt(sessionId), { millis: 15, estimate: false })

      // nothing known: a waiting test without history and fewer than 3 finished
      const other = "20261201-1000-eta0"
      yield* store.record(other, Events.SessionStarted({ sessionId: other, baseRef: "main", baseSha: "c0ffee", workers: 2, startedAt: T0 }), { meta })
      yield* store.record(other, Events.TestQueued({ test: request("x"), sha: "c0ffee", refName: "main" }))
      assert.strictEqual(yield* snapshotAt(other), null)

      // ended: nothing is left
      const zero = new Counts({ total: 1, passed: 0, flaky: 0, failed: 0, timedOut: 0, error: 0, cancelled: 1 })
      yield* store.record(other, Events.SessionFinished({ status: "INTERRUPTED", completedAt: T0 + 300, counts: zero }))
      assert.deepStrictEqual(yield* snapshotAt(other), { millis: 0, estimate: false })
    }))

  it.scoped("reads a long log in pages, each event once, and goes on past a SessionFinished that a resume followed", () =>
    Effect.gen(function*() {
      const store = yield* Store.makeMemory
      yield* store.record(sessionId, events[0]!, { meta })
      for (let i = 0; i < 120; i++) {
        yield* store.record(sessionId, Events.TestQueued({ test: request(`t${i}`), sha: "c0ffee", refName: "main" }))
      }
      const zero = new Counts({ total: 0, passed: 0, flaky: 0, failed: 0, timedOut: 0, error: 0, cancelled: 0 })
      yield* store.record(sessionId, Events.SessionFinished({ status: "INTERRUPTED", completedAt: T0 + 1, counts: zero }))
      // resumed
      yield* store.record(sessionId, Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c0ffee", workers: 2, startedAt: T0 + 2 }), { meta })
      const live = yield* Live.make({ page: 7 }).pipe(Effect.provideService(Store.Store, store))
      const { fiber, seen } = yield* collect(Option.getOrThrow(yield* live.frames(sessionId, { _tag: "After", seq: 0 })))
      yield* settle
      const first = yield* seen
      assert.deepStrictEqual(first.map((s) => Number(s.split(":")[0])), Array.from({ length: 123 }, (_, i) => i + 1))
      assert.isNull(yield* Fiber.poll(fiber).pipe(Effect.map(Option.getOrNull)), "still following after the resume")
      yield* store.record(sessionId, Events.SessionFinished({ status: "NO_TESTS", completedAt: T0 + 3, counts: zero }))
      yield* TestClock.adjust("250 millis")
      yield* settle
      assert.strictEqual((yield* Fiber.await(fiber))._tag, "Success")
      assert.deepStrictEqual((yield* seen).slice(-2), ["123:SessionStarted", "124:SessionFinished"])
    }))

  it.scoped("pulls: a client that stops taking frames stops reading the store (a page at a time, no queue)", () =>
    Effect.gen(function*() {
      const memory = yield* Store.makeMemory
      const pages: Array<number> = []
      // the store, counting the pages clients read (the notifier reads one event at a time)
      const store = {
        ...memory,
        events: (id: string, options: { readonly after: number; readonly limit: number }) => {
          if (options.limit > 1) pages.push(options.after)
          return memory.events(id, options)
        }
      }
      yield* memory.record(sessionId, events[0]!, { meta })
      for (let i = 0; i < 1000; i++) {
        yield* memory.record(sessionId, Events.TestQueued({ test: request(`t${i}`), sha: "c0ffee", refName: "main" }))
      }
      const live = yield* Live.make({ page: 10 }).pipe(Effect.provideService(Store.Store, store))
      const pull = yield* Stream.toPull(Option.getOrThrow(yield* live.frames(sessionId, { _tag: "After", seq: 0 })))
      const first = yield* pull
      assert.deepStrictEqual(Chunk.toArray(first).map(tagOf).slice(0, 2), ["1:SessionStarted", "2:TestQueued"])
      assert.strictEqual(Chunk.size(first), 10)
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* settle
      assert.deepStrictEqual(pages, [0], "one page read while the client took one")
      yield* pull
      yield* settle
      assert.deepStrictEqual(pages, [0, 10])
    }))
})
