import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Config from "../src/Config.js"
import { Step, TestRequest } from "../src/Domain.js"
import * as Scheduler from "../src/Scheduler.js"
import * as TestQueue from "../src/TestQueue.js"

const entry = (seq: number, fields: Partial<Scheduler.Entry> = {}): Scheduler.Entry => ({
  seq,
  priority: 0,
  expectedMs: undefined,
  retry: false,
  resources: [],
  ...fields
})

const job = (seq: number, fields: Partial<Scheduler.Entry> = {}): TestQueue.Job => ({
  ...entry(seq, fields),
  request: new TestRequest({ id: `t${seq}` as never, name: `t${seq}`, source: "test", steps: [new Step({ shell: "sh", script: "true" })] }),
  sha: "sha",
  refName: "HEAD",
  timeout: Duration.seconds(1),
  attempts: [],
  priorAttempts: 0
})

const policy = Scheduler.make(Scheduler.longestFirstOrder)
const orderOf = (entries: ReadonlyArray<Scheduler.Entry>) => [...entries].sort(policy.order).map((e) => e.seq)

describe("Scheduler", () => {
  it("orders by priority, then longest expected duration, unknown first, ties FIFO", () => {
    const entries = [
      entry(0, { expectedMs: 100 }),
      entry(1, { expectedMs: 5000 }),
      entry(2, { priority: 5, expectedMs: 1 }),
      entry(3),
      entry(4, { expectedMs: 100 }),
      entry(5, { priority: -1 }),
      entry(6)
    ]
    assert.deepStrictEqual(orderOf(entries), [2, 3, 6, 1, 0, 4, 5])
  })

  it("puts a retry before waiting tests of equal priority only", () => {
    const entries = [entry(0), entry(1, { retry: true, expectedMs: 1 }), entry(2, { priority: 1, expectedMs: 1 })]
    assert.deepStrictEqual(orderOf(entries), [2, 1, 0])
  })

  it.effect("the queue skips tests whose resources are busy rather than idling", () =>
    Effect.gen(function*() {
      const queue = yield* TestQueue.make(10)
      yield* queue.offerAll([job(0, { resources: ["db"] }), job(1, { expectedMs: 10 }), job(2, { resources: ["db"], priority: 9 })])
      const first = Option.getOrThrow(yield* queue.take)
      assert.strictEqual(first.seq, 2, "the best one, db free")
      assert.strictEqual(Option.getOrThrow(yield* queue.take).seq, 1, "db is held: the next free one")
      const blocked = yield* Effect.fork(queue.take)
      yield* Effect.yieldNow()
      assert.isTrue(Option.isNone(yield* Fiber.poll(blocked)), "only a db test is left: it waits")
      yield* queue.release(first)
      assert.strictEqual(Option.getOrThrow(yield* Fiber.join(blocked)).seq, 0)
    }).pipe(Effect.provide(Scheduler.layer)))

  it("computes the lower bound of a session", () => {
    assert.strictEqual(Scheduler.lowerBound([10, 10, 10, 10], 2), 20)
    assert.strictEqual(Scheduler.lowerBound([100, 1, 1], 4), 100)
    assert.strictEqual(Scheduler.lowerBound([], 4), 0)
  })
})

describe("TestQueue", () => {
  const provide = Effect.provide(Scheduler.layer)
  const takeJob = (queue: TestQueue.TestQueue["Type"]) => Effect.map(queue.take, Option.getOrThrow)

  it.effect("takes the best waiting test and holds its resources until release", () =>
    Effect.gen(function*() {
      const queue = yield* TestQueue.make(10)
      yield* queue.offerAll([job(0, { resources: ["pg"] }), job(1, { resources: ["pg"] }), job(2, { expectedMs: 1 })])
      const first = yield* takeJob(queue)
      assert.strictEqual(first.seq, 0)
      const second = yield* takeJob(queue)
      assert.strictEqual(second.seq, 2, "the other pg test waits while pg is held")
      const blocked = yield* Effect.fork(takeJob(queue))
      yield* Effect.yieldNow()
      assert.isTrue(Option.isNone(yield* Fiber.poll(blocked)))
      yield* queue.release(first)
      const third = yield* Fiber.join(blocked)
      assert.strictEqual(third.seq, 1)
    }).pipe(provide))

  it.effect("offer suspends while the queue is full; a retry does not need a slot", () =>
    Effect.gen(function*() {
      const queue = yield* TestQueue.make(2)
      yield* queue.offer(job(0))
      yield* queue.offer(job(1))
      const third = yield* Effect.fork(queue.offer(job(2)))
      yield* Effect.yieldNow()
      assert.isTrue(Option.isNone(yield* Fiber.poll(third)), "backpressure")
      yield* queue.requeue(job(9, { retry: true }))
      assert.strictEqual(yield* queue.size, 3)
      assert.strictEqual((yield* takeJob(queue)).seq, 9, "the retry goes first")
      assert.isTrue(Option.isNone(yield* Fiber.poll(third)), "taking a retry frees no slot")
      yield* queue.take
      yield* Fiber.join(third)
      assert.strictEqual(yield* queue.size, 2)
    }).pipe(provide))

  it.effect("a batch larger than the queue keeps its order", () =>
    Effect.gen(function*() {
      const queue = yield* TestQueue.make(3)
      const batch = Array.from({ length: 12 }, (_, i) => job(i, { expectedMs: (i % 4) * 10, priority: i === 11 ? 1 : 0 }))
      const taken: Array<number> = []
      const consumer = yield* Effect.fork(Effect.forEach(batch, () => Effect.map(takeJob(queue), (j) => taken.push(j.seq))))
      yield* queue.offerAll(batch)
      yield* Fiber.join(consumer)
      assert.deepStrictEqual(taken, [11, 3, 7, 2, 6, 10, 1, 5, 9, 0, 4, 8])
    }).pipe(provide))

  it.effect("a large queue gives the Scheduler's order, retries first, skipping tests whose resource is held", () =>
    Effect.gen(function*() {
      const n = 2_000
      const queue = yield* TestQueue.make(n)
      // a deterministic shuffle of expected durations; every 100th test needs pg
      const jobs = Array.from({ length: n }, (_, i) => job(i, { expectedMs: (i * 7919) % 1009, resources: i % 100 === 0 ? ["pg"] : [] }))
      for (const j of [...jobs].reverse()) assert.isTrue(yield* queue.offer(j))
      yield* queue.requeue(job(n, { retry: true, expectedMs: 1 }))
      const order = [...jobs].sort(Scheduler.longestFirstOrder)
      assert.strictEqual((yield* takeJob(queue)).seq, n, "the retry first")
      // hold the first pg test: the other pg tests are skipped until it is released
      const firstPg = order.find((j) => j.resources.length > 0)!
      const taken: Array<number> = []
      let held = false
      while (taken.length < n) {
        const next = yield* takeJob(queue)
        taken.push(next.seq)
        if (next.seq === firstPg.seq) {
          held = true
          continue
        }
        if (next.resources.length > 0 && held) assert.fail("a pg test was taken while pg was held")
        yield* queue.release(next)
        if (held && taken.length === n - 19) { // the 19 other pg tests are all that is left
          yield* queue.release(firstPg)
          held = false
        }
      }
      const others = order.filter((j) => j.resources.length === 0 || j.seq === firstPg.seq).map((j) => j.seq)
      const pgRest = order.filter((j) => j.resources.length > 0 && j.seq !== firstPg.seq).map((j) => j.seq)
      assert.deepStrictEqual(taken, [...others, ...pgRest])
      assert.strictEqual(yield* queue.size, 0)
    }).pipe(provide))

  it.effect("close: suspended and later offers give false, takes give none; waiting tests stay for drain", () =>
    Effect.gen(function*() {
      const queue = yield* TestQueue.make(1)
      assert.isTrue(yield* queue.offer(job(0)))
      const blockedOffer = yield* Effect.fork(queue.offer(job(1)))
      const idle = yield* TestQueue.make(1)
      const blockedTake = yield* Effect.fork(idle.take)
      yield* Effect.yieldNow()
      yield* queue.close
      yield* idle.close
      assert.isFalse(yield* Fiber.join(blockedOffer))
      assert.isTrue(Option.isNone(yield* Fiber.join(blockedTake)))
      assert.isFalse(yield* queue.offer(job(2)))
      assert.isFalse(yield* queue.requeue(job(3, { retry: true })))
      assert.isTrue(Option.isNone(yield* queue.take))
      assert.deepStrictEqual((yield* queue.drain).map((j) => j.seq), [0])
    }).pipe(provide))

  it.effect("drain empties the queue and frees its slots", () =>
    Effect.gen(function*() {
      const queue = yield* TestQueue.make(2)
      yield* queue.offerAll([job(0), job(1)])
      const drained = yield* queue.drain
      assert.deepStrictEqual(drained.map((j) => j.seq), [0, 1])
      yield* queue.offerAll([job(2), job(3)])
      assert.strictEqual(yield* queue.size, 2)
    }).pipe(provide))

  it.effect("the layer reads maxQueueSize from Config", () =>
    Effect.gen(function*() {
      const queue = yield* TestQueue.TestQueue
      yield* queue.offer(job(0))
      const second = yield* Effect.fork(queue.offer(job(1)))
      yield* Effect.yieldNow()
      assert.isTrue(Option.isNone(yield* Fiber.poll(second)))
      yield* Fiber.interrupt(second)
    }).pipe(Effect.provide(TestQueue.layer), Effect.provide(Config.layer({ maxQueueSize: 1 })), provide))
})
