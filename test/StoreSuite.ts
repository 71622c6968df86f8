/**
 * The contract every `Store` backend keeps (modelled on @effect/sql's
 * SqlPersistedQueueTest): `suite(name, layer)` runs it; each test gets a fresh store
 * from `layer(environment)`, a store that takes secret values from `environment`
 * besides a test's `env` (as it does from grove's environment).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import {
  Attempt,
  Counts,
  Events,
  Report,
  SessionEvent,
  SessionInfo,
  type SessionStatus,
  Step,
  TestId,
  TestRequest,
  TestResult,
  type TestStatus,
  Totals
} from "../src/Domain.js"
import { type Environment, eventStream, Store } from "../src/Store.js"

// -----------------------------------------------------------------------------
// fixtures
// -----------------------------------------------------------------------------

export const T0 = 1_700_000_000_000
export const SECRET = "s3cr3t-t0ken-value"
export const ROOT = "/home/dev/project"
/** a secret from grove's environment (the store's), in no plan's env */
export const ENV_SECRET = "gr0ve-env-D3pl0y-k3y-91c4"
export const environment: Environment = { DEPLOY_KEY: ENV_SECRET }

export const request = (id: string, fields: Partial<ConstructorParameters<typeof TestRequest>[0]> = {}) =>
  new TestRequest({
    id: TestId.make(id),
    name: `test ${id}`,
    source: `docs/plans/${id}.md`,
    steps: [new Step({ shell: "bash", script: `npm test -- ${id}`, line: 7 })],
    ...fields
  })

/** a: FAILED then PASSED → FLAKY, carries a secret; b: FAILED; c: CANCELLED while running */
export const requests = {
  a: request("a", {
    priority: 5,
    tags: ["smoke"],
    env: { NODE_ENV: "test", API_TOKEN: SECRET },
    secretEnv: ["API_TOKEN"],
    resources: ["postgres"],
    retries: 2
  }),
  b: request("b", { ref: "feature", retries: 0 }),
  c: request("c", { cwd: "packages/api" })
}

const attempt = (fields: {
  n: number
  status: TestStatus
  exitCode: number | null
  signal?: string | null
  worker: number
  startedAt: number
  durationMs: number
  tail: string
  message?: string
  testId: string
}) =>
  new Attempt({
    n: fields.n,
    status: fields.status,
    exitCode: fields.exitCode,
    signal: fields.signal ?? null,
    worker: fields.worker,
    worktree: `/work/project.grove/s/w${fields.worker}`,
    startedAt: DateTime.unsafeMake(fields.startedAt),
    durationMs: fields.durationMs,
    logPath: `/repo/.git/grove/sessions/s/logs/${fields.testId}.${fields.n}.log`,
    tail: fields.tail,
    ...(fields.message === undefined ? {} : { message: fields.message })
  })

const started = (sessionId: string, testId: string, a: Attempt) =>
  Events.AttemptStarted({
    testId: TestId.make(testId),
    n: a.n,
    worker: a.worker,
    worktree: a.worktree,
    startedAt: DateTime.toEpochMillis(a.startedAt),
    logPath: a.logPath
  })

/**
 * A realistic session as the Orchestrator would publish it, cut in two: `inFlight`
 * (a waits for its retry, b has FAILED, c runs) and `rest`, with the report the
 * Orchestrator would publish at the end.
 */
export const scenario = (sessionId: string, t0 = T0, repoRoot = ROOT) => {
  const a1 = attempt({ testId: "a", n: 1, status: "FAILED", exitCode: 1, worker: 0, startedAt: t0 + 10, durationMs: 100, tail: "token=*** expected 2 got 3\n" })
  const b1 = attempt({ testId: "b", n: 1, status: "FAILED", exitCode: 2, worker: 1, startedAt: t0 + 12, durationMs: 150, tail: "npm ERR! b\n" })
  const c1 = attempt({ testId: "c", n: 1, status: "CANCELLED", exitCode: null, signal: "SIGTERM", worker: 0, startedAt: t0 + 1210, durationMs: 40, tail: "", message: "the session stopped first" })
  const a2 = attempt({ testId: "a", n: 2, status: "PASSED", exitCode: 0, worker: 1, startedAt: t0 + 1200, durationMs: 90, tail: "ok\n" })
  const a = new TestResult({ id: TestId.make("a"), name: "test a", source: "docs/plans/a.md", ref: "main", status: "FLAKY", durationMs: 190, attempts: [a1, a2], flakiness: 0.5 })
  const b = new TestResult({ id: TestId.make("b"), name: "test b", source: "docs/plans/b.md", ref: "feature", status: "FAILED", durationMs: 150, attempts: [b1], keptWorktree: "/work/project.grove/s/w1" })
  const c = new TestResult({ id: TestId.make("c"), name: "test c", source: "docs/plans/c.md", ref: "main", status: "CANCELLED", durationMs: 40, attempts: [c1] })
  const report = new Report({
    version: 1,
    session: new SessionInfo({
      id: sessionId,
      status: "PARTIAL_SUCCESS",
      startedAt: DateTime.unsafeMake(t0),
      completedAt: DateTime.unsafeMake(t0 + 2000),
      durationMs: 2000,
      baseRef: "main",
      baseSha: "a".repeat(40),
      workers: 2
    }),
    totals: new Totals({ total: 3, passed: 0, flaky: 1, failed: 1, timedOut: 0, error: 0, cancelled: 1, successRate: 33.33 }),
    tests: [a, b, c]
  })
  const queued = (r: TestRequest, refName: string, sha: string, expectedMs: number | undefined) =>
    Events.TestQueued({ test: r, sha, refName, expectedMs })
  const inFlight: ReadonlyArray<SessionEvent> = [
    Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "a".repeat(40), workers: 2, startedAt: t0 }),
    queued(requests.a, "main", "a".repeat(40), 1000),
    queued(requests.b, "feature", "b".repeat(40), undefined),
    queued(requests.c, "main", "a".repeat(40), undefined),
    started(sessionId, "a", a1),
    Events.AttemptSpawned({ testId: TestId.make("a"), n: 1, pgid: 5001, processStartTime: "1001" }),
    started(sessionId, "b", b1),
    Events.AttemptSpawned({ testId: TestId.make("b"), n: 1, pgid: 5002, processStartTime: "1002" }),
    Events.AttemptFinished({ testId: TestId.make("a"), attempt: a1 }),
    Events.RetryScheduled({ testId: TestId.make("a"), nextAttempt: 2, delayMs: 1000 }),
    Events.AttemptFinished({ testId: TestId.make("b"), attempt: b1 }),
    Events.TestFinished({ result: b }),
    started(sessionId, "c", c1),
    Events.AttemptSpawned({ testId: TestId.make("c"), n: 1, pgid: 5003, processStartTime: "1003" })
  ]
  const rest: ReadonlyArray<SessionEvent> = [
    started(sessionId, "a", a2),
    Events.AttemptSpawned({ testId: TestId.make("a"), n: 2, pgid: 5004, processStartTime: "1004" }),
    Events.AttemptFinished({ testId: TestId.make("a"), attempt: a2 }),
    Events.TestFinished({ result: a }),
    Events.AttemptFinished({ testId: TestId.make("c"), attempt: c1 }),
    Events.TestFinished({ result: c }),
    Events.SessionFinished({
      status: "PARTIAL_SUCCESS",
      completedAt: t0 + 2000,
      counts: new Counts({ total: 3, passed: 0, flaky: 1, failed: 1, timedOut: 0, error: 0, cancelled: 1 })
    })
  ]
  const meta = { repoRoot, pid: 4242, config: JSON.stringify({ workers: 2, retries: 2 }) }
  return { inFlight, rest, report, meta, attempts: { a1, a2, b1, c1 } }
}

export const recordAll = (sessionId: string, events: ReadonlyArray<SessionEvent>, meta?: { readonly repoRoot: string; readonly pid: number; readonly config: string }) =>
  Effect.flatMap(Store, (store) =>
    Effect.forEach(events, (e) => store.record(sessionId, e, e._tag === "SessionStarted" ? { meta } : undefined), {
      discard: true
    }))

/** a whole session whose tests each ran once and ended as given */
export const finishedSession = (
  sessionId: string,
  startedAt: number,
  tests: ReadonlyArray<readonly [id: string, status: TestStatus, durationMs: number]>,
  options: { readonly repoRoot?: string; readonly status?: SessionStatus; readonly finish?: boolean } = {}
) => {
  const events: Array<SessionEvent> = [
    Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c".repeat(40), workers: 1, startedAt })
  ]
  const results: Array<TestResult> = []
  tests.forEach(([id, status, durationMs], i) => {
    const a = attempt({ testId: id, n: 1, status: status === "FLAKY" ? "PASSED" : status, exitCode: status === "PASSED" || status === "FLAKY" ? 0 : 1, worker: 0, startedAt: startedAt + i, durationMs, tail: "" })
    const result = new TestResult({ id: TestId.make(id), name: `test ${id}`, source: `docs/plans/${id}.md`, ref: "main", status, durationMs, attempts: [a] })
    results.push(result)
    events.push(
      Events.TestQueued({ test: request(id), sha: "c".repeat(40), refName: "main", expectedMs: undefined }),
      started(sessionId, id, a),
      Events.AttemptFinished({ testId: TestId.make(id), attempt: a }),
      Events.TestFinished({ result })
    )
  })
  if (options.finish !== false) {
    events.push(Events.SessionFinished({
      status: options.status ?? "COMPLETE",
      completedAt: startedAt + 1000,
      counts: new Counts({ total: results.length, passed: 0, flaky: 0, failed: 0, timedOut: 0, error: 0, cancelled: 0 })
    }))
  }
  return recordAll(sessionId, events, { repoRoot: options.repoRoot ?? ROOT, pid: 1, config: "{}" })
}

const encodeReport = Schema.encodeSync(Report)

const id = (s: string) => TestId.make(s)

// -----------------------------------------------------------------------------
// the suite
// -----------------------------------------------------------------------------

export const suite = <E>(name: string, layer: (environment: Environment) => Layer.Layer<Store, E>) => {
  const run = <A, E2>(effect: Effect.Effect<A, E2, Store>) => Effect.provide(effect, layer(environment))

  describe(`Store contract: ${name}`, () => {
    it.effect("report folds the stored rows back into the session's report", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s = scenario("20261124-0912-k3f9")
        yield* recordAll("20261124-0912-k3f9", [...s.inFlight, ...s.rest], s.meta)
        const report = yield* store.report("20261124-0912-k3f9")
        assert.isTrue(Option.isSome(report))
        assert.deepStrictEqual(encodeReport(Option.getOrThrow(report)), encodeReport(s.report))
        assert.isTrue(Option.isNone(yield* store.report("20261124-0000-none")))
      })))

    it.effect("the event log: numbered 1..n, read back after N as written, a number already used refused; tests by page, status and id", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s = scenario("20261124-0912-evlg")
        const written = [...s.inFlight, ...s.rest]
        yield* recordAll("20261124-0912-evlg", written, s.meta)
        const all = yield* Stream.runCollect(eventStream(store, "20261124-0912-evlg"))
        assert.deepStrictEqual(Chunk.toReadonlyArray(all).map((l) => l.seq), written.map((_, i) => i + 1))
        // what comes back is what was written (its secrets masked)
        const tags = Chunk.toReadonlyArray(all).map((l) => l.event._tag)
        assert.deepStrictEqual(tags, written.map((e) => e._tag))
        const after = yield* store.events("20261124-0912-evlg", { after: 3, limit: 2 })
        assert.deepStrictEqual(after.map((l) => [l.seq, l.event._tag]), [[4, written[3]!._tag], [5, written[4]!._tag]])
        assert.deepStrictEqual(yield* store.events("20261124-0912-evlg", { after: written.length, limit: 10 }), [])
        // a second writer under a number the log has passed is refused, and nothing changes
        const error = yield* Effect.flip(store.record(
          "20261124-0912-evlg",
          Events.RetryScheduled({ testId: TestId.make("a"), nextAttempt: 9, delayMs: 1 }),
          { seq: 2 }
        ))
        assert.match(error.message, /already in/)
        assert.strictEqual((yield* store.events("20261124-0912-evlg", { after: 0, limit: 1000 })).length, written.length)
        // the next number is taken when none is given
        assert.strictEqual(
          yield* store.record("20261124-0912-evlg", Events.RetryScheduled({ testId: TestId.make("a"), nextAttempt: 9, delayMs: 1 })),
          written.length + 1
        )
        // tests page by queue position, filtered by status
        const page1 = yield* store.tests("20261124-0912-evlg", { after: 0, limit: 2 })
        assert.deepStrictEqual(page1.map((t) => [t.seq, t.result.id]), [[1, "a"], [2, "b"]])
        const page2 = yield* store.tests("20261124-0912-evlg", { after: 2, limit: 2 })
        assert.deepStrictEqual(page2.map((t) => [t.seq, t.result.id]), [[3, "c"]])
        const failed = yield* store.tests("20261124-0912-evlg", { after: 0, limit: 10, statuses: ["FAILED", "CANCELLED"] })
        assert.deepStrictEqual(failed.map((t) => t.result.id), ["b", "c"])
        const some = yield* store.tests("20261124-0912-evlg", { after: 0, limit: 10, ids: ["c", "a", "unknown"] })
        assert.deepStrictEqual(some.map((t) => t.result.id), ["a", "c"], "by id, in queue order, unknown ids left out")
        assert.deepStrictEqual(yield* store.tests("20261124-0912-evlg", { after: 0, limit: 10, ids: [] }), [])
      })))

    it.effect("a session in flight: statuses, pending tests with attempt counts, live process groups", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s = scenario("20261124-0912-live")
        yield* recordAll("20261124-0912-live", s.inFlight, s.meta)

        const report = Option.getOrThrow(yield* store.report("20261124-0912-live"))
        assert.strictEqual(report.session.status, "RUNNING")
        assert.isNull(report.session.completedAt)
        assert.strictEqual(report.session.durationMs, 1210) // until the end of its last known attempt (c1 started at +1210)
        assert.deepStrictEqual(report.tests.map((t) => [t.id, t.status, t.attempts.length]), [["a", "QUEUED", 1], ["b", "FAILED", 1], ["c", "RUNNING", 1]])
        const c1 = report.tests[2]!.attempts[0]!
        assert.deepStrictEqual([c1.status, c1.exitCode, c1.durationMs, c1.tail], ["RUNNING", null, 0, ""])
        assert.deepStrictEqual(
          [report.totals.total, report.totals.failed, report.totals.passed, report.totals.successRate],
          [3, 1, 0, 0]
        )

        const pending = yield* store.pending("20261124-0912-live")
        assert.deepStrictEqual(pending.map((p) => [p.request.id, p.attempts, p.refName, p.sha]), [
          ["a", 1, "main", "a".repeat(40)],
          ["c", 1, "main", "a".repeat(40)]
        ])
        // the request comes back whole, except the secret's value
        const { env, ...rest } = Schema.encodeSync(TestRequest)(pending[0]!.request)
        const { env: _env, ...original } = Schema.encodeSync(TestRequest)(requests.a)
        assert.deepStrictEqual(rest, original)
        assert.deepStrictEqual(env, { NODE_ENV: "test" })
        assert.deepStrictEqual(Schema.encodeSync(TestRequest)(pending[1]!.request), Schema.encodeSync(TestRequest)(requests.c))

        assert.deepStrictEqual(yield* store.liveGroups("20261124-0912-live"), [{ pgid: 5003, processStartTime: "1003" }])

        // after the rest, nothing is pending or live
        yield* recordAll("20261124-0912-live", s.rest)
        assert.deepStrictEqual(yield* store.pending("20261124-0912-live"), [])
        assert.deepStrictEqual(yield* store.liveGroups("20261124-0912-live"), [])
      })))

    it.effect("resuming re-records SessionStarted and TestQueued without duplicating", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s = scenario("20261124-0912-rsme")
        yield* recordAll("20261124-0912-rsme", s.inFlight, s.meta)
        const before = Option.getOrThrow(yield* store.report("20261124-0912-rsme"))
        // a later process resumes the session: same id, later start, its own pid
        yield* store.record(
          "20261124-0912-rsme",
          Events.SessionStarted({ sessionId: "20261124-0912-rsme", baseRef: "main", baseSha: "a".repeat(40), workers: 3, startedAt: T0 + 60_000 }),
          { meta: { repoRoot: ROOT, pid: 777, config: "{}" } }
        )
        for (const p of yield* store.pending("20261124-0912-rsme")) {
          yield* store.record("20261124-0912-rsme", Events.TestQueued({ test: p.request, sha: p.sha, refName: p.refName, expectedMs: undefined }))
        }
        // b is finished: queuing it again changes nothing
        yield* store.record("20261124-0912-rsme", Events.TestQueued({ test: requests.b, sha: "b".repeat(40), refName: "feature", expectedMs: undefined }))

        const after = Option.getOrThrow(yield* store.report("20261124-0912-rsme"))
        assert.deepStrictEqual(after.tests.map((t) => [t.id, t.status, t.attempts.length]), [["a", "QUEUED", 1], ["b", "FAILED", 1], ["c", "QUEUED", 1]])
        assert.deepStrictEqual(after.session.startedAt, before.session.startedAt)
        assert.strictEqual(after.session.workers, 3)
        const summary = yield* store.requireSession("20261124-0912-rsme")
        assert.deepStrictEqual([summary.pid, summary.total, summary.status], [777, 3, "RUNNING"])
        assert.deepStrictEqual((yield* store.pending("20261124-0912-rsme")).map((p) => [p.request.id, p.attempts]), [["a", 1], ["c", 1]])
      })))

    it.effect("the owner: host, pid and first heartbeat come with SessionStarted; a heartbeat counts only from the owner of a running session", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const sid = "20261124-0912-ownr"
        const s = scenario(sid)
        const [start, ...inFlight] = s.inFlight
        yield* store.record(sid, start!, { meta: { ...s.meta, host: "ci-1", heartbeatAt: T0 } })
        yield* recordAll(sid, inFlight)
        assert.deepStrictEqual(yield* store.owner(sid), { sessionId: sid, status: "RUNNING", host: "ci-1", pid: 4242, heartbeatAt: T0 })

        assert.isTrue(yield* store.heartbeat(sid, { host: "ci-1", pid: 4242, at: T0 + 5000 }))
        assert.strictEqual((yield* store.owner(sid)).heartbeatAt, T0 + 5000)
        // the same pid on another host, another pid on the same host: not the owner
        assert.isFalse(yield* store.heartbeat(sid, { host: "ci-2", pid: 4242, at: T0 + 6000 }))
        assert.isFalse(yield* store.heartbeat(sid, { host: "ci-1", pid: 4243, at: T0 + 6000 }))
        assert.strictEqual((yield* store.owner(sid)).heartbeatAt, T0 + 5000)

        // another grove takes the session over (--resume): it is the owner now
        const resumed = Events.SessionStarted({ sessionId: sid, baseRef: "main", baseSha: "a".repeat(40), workers: 2, startedAt: T0 + 60_000 })
        yield* store.record(sid, resumed, { meta: { ...s.meta, pid: 77, host: "ci-2", heartbeatAt: T0 + 60_000 } })
        assert.deepStrictEqual(yield* store.owner(sid), { sessionId: sid, status: "RUNNING", host: "ci-2", pid: 77, heartbeatAt: T0 + 60_000 })
        assert.isFalse(yield* store.heartbeat(sid, { host: "ci-1", pid: 4242, at: T0 + 61_000 }))
        assert.isTrue(yield* store.heartbeat(sid, { host: "ci-2", pid: 77, at: T0 + 65_000 }))

        // once it has ended, its heartbeat stays where it stopped
        yield* recordAll(sid, s.rest)
        assert.isFalse(yield* store.heartbeat(sid, { host: "ci-2", pid: 77, at: T0 + 70_000 }))
        assert.deepStrictEqual(yield* store.owner(sid), { sessionId: sid, status: "PARTIAL_SUCCESS", host: "ci-2", pid: 77, heartbeatAt: T0 + 65_000 })

        // a process that does not say where it runs (as before store schema 4): no host, no heartbeat
        const old = "20261124-0912-ownx"
        yield* recordAll(old, scenario(old).inFlight.slice(0, 1), s.meta)
        assert.deepStrictEqual(yield* store.owner(old), { sessionId: old, status: "RUNNING", host: undefined, pid: 4242, heartbeatAt: undefined })

        // an unknown session has no owner and takes no heartbeat
        const nope = "20261124-0000-nope"
        const error = yield* Effect.flip(store.owner(nope))
        assert.strictEqual(error.reason, "UnknownSession")
        assert.include(error.message, nope)
        assert.isFalse(yield* store.heartbeat(nope, { host: "ci-1", pid: 4242, at: T0 }))
      })))

    it.effect("the store never holds a secret value", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s = scenario("20261124-0912-scrt")
        yield* store.record("20261124-0912-scrt", s.inFlight[0]!, { meta: s.meta })
        // a harness that forgot to mask: the store masks what it knows, also when the test's
        // TestQueued is in the same recordAll batch as the attempt
        const leaky = new Attempt({ ...s.attempts.a1, tail: `curl -H "Authorization: ${SECRET}"\n`, message: `token ${SECRET} rejected` })
        yield* store.recordAll("20261124-0912-scrt", [
          ...s.inFlight.slice(1, 5),
          Events.AttemptFinished({ testId: id("a"), attempt: leaky })
        ])
        const report = Option.getOrThrow(yield* store.report("20261124-0912-scrt"))
        const json = JSON.stringify(encodeReport(report))
        assert.notInclude(json, SECRET)
        assert.include(report.tests[0]!.attempts[0]!.tail, `"Authorization: ***"`)
        const pending = yield* store.pending("20261124-0912-scrt")
        assert.notInclude(JSON.stringify(Schema.encodeSync(Schema.Array(TestRequest))(pending.map((p) => p.request))), SECRET)
        assert.deepStrictEqual(pending[0]!.request.secretEnv, ["API_TOKEN"])
      })))

    it.effect("a secret from grove's environment written into a script is held nowhere, and the request says it was masked", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const sid = "20261124-0912-envs"
        // DEPLOY_KEY is not in the plan's env: its value comes from grove's environment
        const d = request("d", {
          secretEnv: ["DEPLOY_KEY"],
          steps: [new Step({ shell: "bash", script: `curl -H "Key: ${ENV_SECRET}" https://deploy.example`, line: 9 })]
        })
        const s = scenario(sid)
        const a1 = new Attempt({ ...s.attempts.a1, tail: `sent Key: ${ENV_SECRET}\n`, message: `key ${ENV_SECRET} refused` })
        yield* store.record(sid, s.inFlight[0]!, { meta: s.meta })
        // the attempt in the same batch as its TestQueued
        yield* store.recordAll(sid, [
          Events.TestQueued({ test: d, sha: "a".repeat(40), refName: "main", expectedMs: undefined }),
          Events.TestQueued({ test: requests.c, sha: "a".repeat(40), refName: "main", expectedMs: undefined }),
          started(sid, "d", a1),
          Events.AttemptFinished({ testId: id("d"), attempt: a1 }),
          Events.RetryScheduled({ testId: id("d"), nextAttempt: 2, delayMs: 1000 })
        ])
        const events = yield* store.events(sid, { after: 0, limit: 100 })
        assert.strictEqual(events.length, 6)
        const logged = JSON.stringify(events.map((l) => Schema.encodeSync(SessionEvent)(l.event)))
        assert.notInclude(logged, ENV_SECRET, "the event log")
        assert.include(logged, `curl -H \\"Key: ***\\"`)
        const report = JSON.stringify(encodeReport(Option.getOrThrow(yield* store.report(sid))))
        assert.notInclude(report, ENV_SECRET, "the report")
        assert.include(report, "sent Key: ***")
        assert.include(report, "key *** refused")
        const tests = yield* store.tests(sid, { after: 0, limit: 10 })
        assert.notInclude(JSON.stringify(tests.map((t) => Schema.encodeSync(TestResult)(t.result))), ENV_SECRET, "the tests")
        const pending = yield* store.pending(sid)
        assert.deepStrictEqual(pending.map((p) => p.request.id), ["d", "c"])
        assert.notInclude(JSON.stringify(Schema.encodeSync(Schema.Array(TestRequest))(pending.map((p) => p.request))), ENV_SECRET)
        assert.strictEqual(pending[0]!.request.steps[0].script, `curl -H "Key: ***" https://deploy.example`)
        // a resume must not run that script: the store says which secret it masked out
        assert.deepStrictEqual(pending[0]!.masked, ["DEPLOY_KEY"])
        assert.strictEqual(pending[1]!.masked, undefined)
      })))

    it.effect("unknown sessions and tests are refused", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const nope = "20261124-0000-nope"
        const queued = Events.TestQueued({ test: requests.a, sha: "a", refName: "main", expectedMs: undefined })
        for (
          const error of [
            yield* Effect.flip(store.record(nope, queued)),
            yield* Effect.flip(store.pending(nope)),
            yield* Effect.flip(store.liveGroups(nope)),
            yield* Effect.flip(store.deleteSession(nope)),
            yield* Effect.flip(store.requireSession(nope))
          ]
        ) {
          assert.strictEqual(error.reason, "UnknownSession")
          assert.include(error.message, nope)
        }
        const s = scenario("20261124-0912-unkt")
        yield* recordAll("20261124-0912-unkt", s.inFlight.slice(0, 1), s.meta)
        const error = (yield* Effect.flip(store.record("20261124-0912-unkt", started("20261124-0912-unkt", "a", s.attempts.a1))))
        assert.strictEqual(error.reason, "Query")
        assert.include(error.message, "never queued")
      })))

    it.effect("recordAll writes events in order like record; on a failing event it keeps the ones before and fails", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s = scenario("20261124-0912-all1")
        const [first, ...others] = [...s.inFlight, ...s.rest]
        yield* store.record("20261124-0912-all1", first!, { meta: s.meta })
        yield* store.recordAll("20261124-0912-all1", others)
        assert.deepStrictEqual(encodeReport(Option.getOrThrow(yield* store.report("20261124-0912-all1"))), encodeReport(s.report))

        // the second session: two tests queued, then an attempt of a test never queued
        const t = scenario("20261124-0912-all2")
        yield* store.record("20261124-0912-all2", t.inFlight[0]!, { meta: t.meta })
        const queued = (id: string) => Events.TestQueued({ test: request(id), sha: "c".repeat(40), refName: "main", expectedMs: undefined })
        const error = yield* Effect.flip(store.recordAll("20261124-0912-all2", [
          queued("q1"),
          queued("q2"),
          started("20261124-0912-all2", "never", t.attempts.a1),
          queued("q3")
        ]))
        assert.strictEqual(error.reason, "Query")
        assert.include(error.message, "never")
        const report = Option.getOrThrow(yield* store.report("20261124-0912-all2"))
        assert.deepStrictEqual(report.tests.map((x) => [x.id, x.status]), [["q1", "QUEUED"], ["q2", "QUEUED"]])
        assert.strictEqual((yield* Effect.flip(store.recordAll("20261124-0000-nope", [queued("q1"), queued("q2")]))).reason, "UnknownSession")
      })))

    it.effect("a batch leaves the rows one event per write leaves, wherever the batches are cut", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const encodeTest = Schema.encodeSync(TestResult)
        // what the projected rows say: the tests with their attempts, what is left, the live groups, the log
        const snapshot = (sid: string) =>
          Effect.gen(function*() {
            const tests = (yield* store.tests(sid, { after: 0, limit: 100 })).map((t) => [t.seq, encodeTest(t.result)])
            const pending = (yield* store.pending(sid)).map((p) => [p.request.id, p.attempts, p.sha, p.refName])
            const groups = yield* store.liveGroups(sid)
            const log = (yield* store.events(sid, { after: 0, limit: 100 })).map((l) => [l.seq, l.event._tag])
            return { tests, pending, groups, log }
          })
        const events = (sid: string) => [...scenario(sid).inFlight, ...scenario(sid).rest]
        const n = events("x").length
        const reference = "20261124-0913-one1"
        const expected: Array<unknown> = []
        for (const [i, e] of events(reference).entries()) {
          yield* store.record(reference, e, i === 0 ? { meta: scenario(reference).meta } : undefined)
          expected.push(yield* snapshot(reference))
        }
        for (let cut = 2; cut < n; cut++) {
          const sid = `20261124-0913-c${String(cut).padStart(3, "0")}`
          const [start, ...rest] = events(sid)
          yield* store.record(sid, start!, { meta: scenario(sid).meta })
          // two batches: events 2..cut, then the rest
          assert.strictEqual(yield* store.recordAll(sid, rest.slice(0, cut - 1)), cut)
          assert.deepStrictEqual(yield* snapshot(sid), expected[cut - 1], `after event ${cut}`)
          assert.strictEqual(yield* store.recordAll(sid, rest.slice(cut - 1)), n)
          assert.deepStrictEqual(yield* snapshot(sid), expected[n - 1], `cut after event ${cut}: the end`)
          assert.deepStrictEqual(encodeReport(Option.getOrThrow(yield* store.report(sid))), encodeReport(scenario(sid).report))
        }
      })))

    it.effect("every kind of event about a session that is not stored is refused, alone or in a batch, and leaves nothing", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const nope = "20261124-0913-gone"
        const [, ...events] = [...scenario(nope).inFlight, ...scenario(nope).rest]
        for (const e of events) {
          const error = yield* Effect.flip(store.record(nope, e, { seq: 1 }))
          assert.strictEqual(error.reason, "UnknownSession", e._tag)
          assert.include(error.message, nope)
        }
        assert.strictEqual((yield* Effect.flip(store.recordAll(nope, events, { firstSeq: 1 }))).reason, "UnknownSession")
        assert.strictEqual((yield* Effect.flip(store.requireSession(nope))).reason, "UnknownSession")
        assert.deepStrictEqual(yield* store.events(nope, { after: 0, limit: 100 }), [])
        assert.deepStrictEqual(yield* store.tests(nope, { after: 0, limit: 100 }), [])
      })))
    it.effect("history: median of the last 10 PASSED/FLAKY durations", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        // recorded out of order: only the start time says which is newer
        yield* finishedSession("20260103-0000-0003", T0 + 3, [["h1", "PASSED", 20], ["h2", "FLAKY", 10]])
        yield* finishedSession("20260101-0000-0001", T0 + 1, [["h1", "PASSED", 10]])
        yield* finishedSession("20260102-0000-0002", T0 + 2, [["h1", "FLAKY", 30]])
        // these do not count: not PASSED/FLAKY
        yield* finishedSession("20260104-0000-0004", T0 + 4, [["h1", "FAILED", 1000]], { status: "FAILED" })
        yield* finishedSession("20260105-0000-0005", T0 + 5, [["h1", "TIMED_OUT", 5000]], { status: "FAILED" })
        yield* finishedSession("20260106-0000-0006", T0 + 6, [["h1", "CANCELLED", 7000]], { status: "INTERRUPTED" })
        // h2: 2 old slow runs, then 10 newer ones of 1..9 ms and the 10 ms above
        yield* finishedSession("20250101-0000-0001", T0 - 20, [["h2", "PASSED", 1000]])
        yield* finishedSession("20250101-0000-0002", T0 - 19, [["h2", "PASSED", 1000]])
        for (let i = 1; i <= 9; i++) {
          yield* finishedSession(`20250201-0000-000${i}`, T0 - 10 + i, [["h2", "PASSED", i]])
        }
        const history = yield* store.history([id("h1"), id("h2"), id("h3")])
        assert.strictEqual(history.get(id("h1"))?.expectedMs, 20)
        // median of 1..10 is 5.5, kept in whole ms; with the old ones it would be 6.5
        assert.strictEqual(history.get(id("h2"))?.expectedMs, 6)
        assert.deepStrictEqual(history.get(id("h3")), { expectedMs: undefined, flakiness: undefined })
        assert.strictEqual(history.get(id("h1"))?.flakiness, 1 / 5) // FLAKY once in 5 finished (CANCELLED skipped)
        assert.strictEqual((yield* store.history([])).size, 0)
      })))

    it.effect("history: flakiness is the share of the last 20 finished executions that ended FLAKY", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const statuses: Array<TestStatus> = [
          "FLAKY", "FLAKY", "FLAKY", // the oldest three fall out of the window
          ...Array.from({ length: 20 }, (_, i): TestStatus => (i % 4 === 0 ? "FLAKY" : i % 4 === 1 ? "FAILED" : "PASSED"))
        ]
        for (const [i, status] of statuses.entries()) {
          yield* finishedSession(`20260201-0000-${String(i).padStart(4, "0")}`, T0 + i * 1000, [["f", status, 100]])
        }
        // neither a cancelled run nor one still in progress says anything about flakiness
        yield* finishedSession("20260301-0000-canc", T0 + 100_000, [["f", "CANCELLED", 5]], { status: "INTERRUPTED" })
        yield* recordAll("20260301-0000-runn", [
          Events.SessionStarted({ sessionId: "20260301-0000-runn", baseRef: "main", baseSha: "c", workers: 1, startedAt: T0 + 200_000 }),
          Events.TestQueued({ test: request("f"), sha: "c", refName: "main", expectedMs: 100 })
        ])
        const history = (yield* store.history([id("f")])).get(id("f"))!
        assert.strictEqual(history.flakiness, 5 / 20)
        assert.strictEqual(history.expectedMs, 100)
      })))

    it.effect("a TestQueued whose expected duration is not whole milliseconds is recorded (kept in whole ms)", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        yield* recordAll("20260401-0000-frac", [
          Events.SessionStarted({ sessionId: "20260401-0000-frac", baseRef: "main", baseSha: "c", workers: 1, startedAt: T0 }),
          Events.TestQueued({ test: request("q"), sha: "c", refName: "main", expectedMs: 18011.5 })
        ])
        const pending = yield* store.pending("20260401-0000-frac")
        assert.deepStrictEqual(pending.map((p) => p.request.id), [id("q")])
      })))

    it.effect("queued: the ids a session holds, queued or ended, and no other session's", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        yield* finishedSession("20260402-0000-done", T0, [["a", "PASSED", 10], ["b", "FAILED", 20]])
        yield* recordAll("20260402-0001-live", [
          Events.SessionStarted({ sessionId: "20260402-0001-live", baseRef: "main", baseSha: "c", workers: 1, startedAt: T0 + 10 }),
          Events.TestQueued({ test: request("q"), sha: "c", refName: "main", expectedMs: undefined })
        ])
        const ask = (sessionId: string, ids: ReadonlyArray<string>) => Effect.map(store.queued(sessionId, ids), (s) => [...s].sort())
        assert.deepStrictEqual(yield* ask("20260402-0000-done", ["a", "b", "q", "z"]), ["a", "b"])
        assert.deepStrictEqual(yield* ask("20260402-0001-live", ["a", "q", "q"]), ["q"])
        assert.deepStrictEqual(yield* ask("20260402-0001-live", []), [])
        assert.deepStrictEqual(yield* ask("no-such-session", ["a"]), [])
        // more ids than one query takes
        const many = Array.from({ length: 1200 }, (_, i) => `m${i}`)
        assert.deepStrictEqual(yield* ask("20260402-0001-live", [...many, "q"]), ["q"])
      })))

    it.effect("lastFailed: what did not pass in the latest finished session of the repository", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        assert.isTrue(Option.isNone(yield* store.lastFailed("/r1")))
        yield* finishedSession("20260101-0000-0001", T0, [["x", "FAILED", 1], ["y", "PASSED", 1]], { repoRoot: "/r1" })
        yield* finishedSession("20260102-0000-0002", T0 + 1, [["x", "PASSED", 1], ["y", "TIMED_OUT", 1], ["w", "FLAKY", 1], ["z", "CANCELLED", 1], ["v", "ERROR", 1]], { repoRoot: "/r1", status: "PARTIAL_SUCCESS" })
        // newer but still running, or another repository: not "the previous session"
        yield* finishedSession("20260103-0000-0003", T0 + 2, [["x", "FAILED", 1]], { repoRoot: "/r1", finish: false })
        yield* finishedSession("20260104-0000-0004", T0 + 3, [["q", "FAILED", 1]], { repoRoot: "/r2", status: "FAILED" })
        assert.deepStrictEqual(Option.getOrThrow(yield* store.lastFailed("/r1")), [id("y"), id("z"), id("v")])
        assert.deepStrictEqual(Option.getOrThrow(yield* store.lastFailed("/r2")), [id("q")])
        assert.isTrue(Option.isNone(yield* store.lastFailed("/r3")))
      })))

    it.effect("sessions: newest first, with counts", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s = scenario("20261124-0912-mid0", T0 + 10_000)
        yield* recordAll("20261124-0912-mid0", [...s.inFlight, ...s.rest], s.meta)
        yield* finishedSession("20261124-0000-old0", T0, [["x", "PASSED", 1]])
        yield* finishedSession("20261124-2359-new0", T0 + 20_000, [["x", "PASSED", 1]], { finish: false })
        const list = yield* store.sessions(10)
        assert.deepStrictEqual(list.map((x) => x.id), ["20261124-2359-new0", "20261124-0912-mid0", "20261124-0000-old0"])
        assert.deepStrictEqual((yield* store.sessions(2)).map((x) => x.id), ["20261124-2359-new0", "20261124-0912-mid0"])
        assert.deepStrictEqual(yield* store.sessions(0), [])
        assert.deepStrictEqual(list[1], {
          id: "20261124-0912-mid0",
          status: "PARTIAL_SUCCESS",
          startedAt: T0 + 10_000,
          completedAt: T0 + 12_000,
          total: 3,
          passed: 1,
          notPassed: 2,
          repoRoot: ROOT,
          pid: 4242
        })
        assert.deepStrictEqual([list[0]!.status, list[0]!.completedAt], ["RUNNING", undefined])
        assert.deepStrictEqual(yield* store.requireSession("20261124-0912-mid0"), list[1])
      })))

    it.effect("a session deleted while it runs: its next events are refused, none is written", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const sessionId = "20261124-0912-del3"
        const s = scenario(sessionId, T0)
        // running: the store has written the session and its tests (a backend may skip its checks for them)
        yield* recordAll(sessionId, s.inFlight, s.meta)
        yield* store.deleteSession(sessionId)
        for (const event of [Events.AttemptFinished({ testId: TestId.make("c"), attempt: s.report.tests[2]!.attempts[0]! }), Events.TestFinished({ result: s.report.tests[0]! })]) {
          const error = yield* Effect.flip(store.record(sessionId, event))
          assert.strictEqual(error.reason, "UnknownSession", event._tag)
        }
        assert.isTrue(Option.isNone(yield* store.report(sessionId)))
        assert.deepStrictEqual(yield* store.events(sessionId, { after: 0, limit: 100 }), [])
      })))

    it.effect("deleteSession removes the session with its executions and attempts", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        const s1 = scenario("20261124-0912-del1", T0)
        const s2 = scenario("20261124-0912-del2", T0 + 10_000)
        yield* recordAll("20261124-0912-del1", [...s1.inFlight, ...s1.rest], s1.meta)
        yield* recordAll("20261124-0912-del2", s2.inFlight, s2.meta)
        yield* finishedSession("20261124-0912-h001", T0 - 1000, [["b", "PASSED", 500]])
        assert.strictEqual((yield* store.history([id("a")])).get(id("a"))?.expectedMs, 190)

        yield* store.deleteSession("20261124-0912-del1")
        assert.isTrue(Option.isNone(yield* store.report("20261124-0912-del1")))
        assert.deepStrictEqual((yield* store.sessions(10)).map((x) => x.id), ["20261124-0912-del2", "20261124-0912-h001"])
        assert.strictEqual((yield* store.history([id("a")])).get(id("a"))?.expectedMs, undefined)
        assert.strictEqual((yield* store.history([id("b")])).get(id("b"))?.expectedMs, 500)
        assert.strictEqual((yield* Effect.flip(store.pending("20261124-0912-del1"))).reason, "UnknownSession")
        assert.strictEqual((yield* Effect.flip(store.deleteSession("20261124-0912-del1"))).reason, "UnknownSession")
        // the same id again starts empty: nothing of the old tests or attempts is left
        yield* recordAll("20261124-0912-del1", s1.inFlight.slice(0, 1), s1.meta)
        assert.deepStrictEqual(Option.getOrThrow(yield* store.report("20261124-0912-del1")).tests, [])
        // the other session is untouched
        assert.deepStrictEqual(Option.getOrThrow(yield* store.report("20261124-0912-del2")).tests.map((t) => t.attempts.length), [1, 1, 1])
      })))

    it.effect("gc keeps the newest sessions and returns the ids it deleted", () =>
      run(Effect.gen(function*() {
        const store = yield* Store
        for (const [i, sid] of ["20260101-0000-gc01", "20260102-0000-gc02", "20260103-0000-gc03", "20260104-0000-gc04"].entries()) {
          yield* finishedSession(sid, T0 + i, [["x", "PASSED", 10 + i]])
        }
        assert.deepStrictEqual(yield* store.gc(2), ["20260102-0000-gc02", "20260101-0000-gc01"])
        assert.deepStrictEqual((yield* store.sessions(10)).map((x) => x.id), ["20260104-0000-gc04", "20260103-0000-gc03"])
        assert.strictEqual((yield* store.history([id("x")])).get(id("x"))?.expectedMs, 13) // the median 12.5, in whole ms
        assert.deepStrictEqual(yield* store.gc(5), [])
        assert.deepStrictEqual(yield* store.gc(0), ["20260104-0000-gc04", "20260103-0000-gc03"])
        assert.deepStrictEqual(yield* store.sessions(10), [])
      })))
  })
}
