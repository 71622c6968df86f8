/**
 * Live events of `grove serve` end to end (SPEC §9 "Live"): the real binary serving
 * a real SQLite store while a real `grove run` in another process writes a session
 * into it (passing, failing-then-retried, flaky tests and one with a secret), with
 * clients over real HTTP and WebSocket on 127.0.0.1.
 *
 * What is checked: a client from the start (`?after=0`) sees every event 1..N once,
 * in order, ending with SessionFinished, and exactly what the store holds; a client
 * that drops and reconnects with `Last-Event-ID: k` sees exactly k+1..N; a late client
 * gets a snapshot and then exactly the events after it, and folding the snapshot
 * with them gives the store's final fold; the WebSocket sends the same sequence
 * (snapshot first without `?after`); no frame holds the secret value; unknown
 * session 404, no token 401 (SSE and WebSocket), a cross-origin WebSocket upgrade
 * 403 and a same-origin one with the login cookie accepted; SIGINT with an SSE and
 * a WebSocket client connected to a running session: grove serve exits (130).
 *
 * Run `npm run build` first (`npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as NodePath from "node:path"
import { Events, Logged, SessionEvent } from "../src/Domain.js"
import * as SessionState from "../src/SessionState.js"
import * as SqlStore from "../src/SqlStore.js"
import * as Store from "../src/Store.js"
import { eta } from "../src/view/Live.js"
import * as Cli from "./support/cli.js"
import { type EmptyRepo, makeEmptyRepo } from "./support/repo.js"

const token = "live-events-test-token-0123456789"
const secret = "s3cr3t-value-in-env-4711"

// -----------------------------------------------------------------------------
// clients: SSE and WebSocket, as a browser would connect
// -----------------------------------------------------------------------------

interface Frame {
  readonly id: string | undefined
  readonly event: string | undefined
  readonly data: string
}

interface SseClient {
  readonly status: number
  readonly frames: () => ReadonlyArray<Frame>
  readonly pings: () => number
  /** the raw text received so far */
  readonly raw: () => string
  /** resolves when the server ended the response */
  readonly ended: Effect.Effect<void>
  readonly close: Effect.Effect<void>
}

/** parses SSE text into frames; returns what is left of an incomplete one */
const parseSse = (text: string, onFrame: (f: Frame) => void, onComment: () => void): string => {
  let rest = text
  let cut = rest.indexOf("\n\n")
  while (cut !== -1) {
    const block = rest.slice(0, cut)
    rest = rest.slice(cut + 2)
    cut = rest.indexOf("\n\n")
    let id: string | undefined
    let event: string | undefined
    const data: Array<string> = []
    let comment = false
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) comment = true
      else if (line.startsWith("id: ")) id = line.slice(4)
      else if (line.startsWith("event: ")) event = line.slice(7)
      else if (line.startsWith("data: ")) data.push(line.slice(6))
    }
    if (data.length > 0 || event !== undefined) onFrame({ id, event, data: data.join("\n") })
    else if (comment) onComment()
  }
  return rest
}

const sse = (port: number, path: string, headers: Record<string, string>): Effect.Effect<SseClient, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const ended = yield* Deferred.make<void>()
      return yield* Effect.async<SseClient, Error>((resume) => {
        const frames: Array<Frame> = []
        let pings = 0
        let raw = ""
        let pending = ""
        const req = Http.request({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
          res.setEncoding("utf8")
          res.on("data", (s: string) => {
            raw += s
            pending = parseSse(pending + s, (f) => frames.push(f), () => pings++)
          })
          const end = () => Deferred.unsafeDone(ended, Effect.void)
          res.on("end", end)
          res.on("close", end)
          res.on("error", end)
          resume(Effect.succeed({
            status: res.statusCode ?? 0,
            frames: () => frames,
            pings: () => pings,
            raw: () => raw,
            ended: Deferred.await(ended),
            close: Effect.sync(() => void req.destroy())
          }))
        })
        req.on("error", (e) => resume(Effect.fail(e)))
        req.end()
      })
    }),
    (client) => client.close
  )

interface WsClient {
  readonly _tag: "Open"
  readonly messages: () => ReadonlyArray<string>
  readonly closeCode: () => number | undefined
  readonly ended: Effect.Effect<void>
  readonly close: Effect.Effect<void>
}

interface WsRefused {
  readonly _tag: "Refused"
  readonly status: number
  readonly body: string
}

/** a minimal RFC 6455 client: the handshake, then the server's (unmasked) text and close frames */
const ws = (port: number, path: string, headers: Record<string, string>): Effect.Effect<WsClient | WsRefused, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const ended = yield* Deferred.make<void>()
      return yield* Effect.async<WsClient | WsRefused, Error>((resume) => {
        const key = Crypto.randomBytes(16).toString("base64")
        const req = Http.request({
          host: "127.0.0.1",
          port,
          path,
          agent: false,
          headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": key, ...headers }
        })
        req.on("upgrade", (res, socket: Net.Socket, head: Buffer) => {
          const accept = Crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64")
          if (res.headers["sec-websocket-accept"] !== accept) {
            socket.destroy()
            return resume(Effect.fail(new Error("bad Sec-WebSocket-Accept")))
          }
          const messages: Array<string> = []
          let closeCode: number | undefined
          let buffer = head
          const read = () => {
            for (;;) {
              if (buffer.length < 2) return
              const opcode = buffer[0]! & 0x0f
              let length = buffer[1]! & 0x7f
              let offset = 2
              if (length === 126) {
                if (buffer.length < 4) return
                length = buffer.readUInt16BE(2)
                offset = 4
              } else if (length === 127) {
                if (buffer.length < 10) return
                length = Number(buffer.readBigUInt64BE(2))
                offset = 10
              }
              if (buffer.length < offset + length) return
              const payload = buffer.subarray(offset, offset + length)
              buffer = buffer.subarray(offset + length)
              if (opcode === 1) messages.push(payload.toString("utf8"))
              else if (opcode === 8) {
                closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
                socket.end()
              }
            }
          }
          socket.on("data", (chunk: Buffer) => {
            buffer = Buffer.concat([buffer, chunk])
            read()
          })
          socket.on("close", () => Deferred.unsafeDone(ended, Effect.void))
          socket.on("error", () => Deferred.unsafeDone(ended, Effect.void))
          read()
          resume(Effect.succeed({
            _tag: "Open",
            messages: () => messages,
            closeCode: () => closeCode,
            ended: Deferred.await(ended),
            close: Effect.sync(() => void socket.destroy())
          }))
        })
        req.on("response", (res) => {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (s: string) => (body += s))
          res.on("end", () => resume(Effect.succeed({ _tag: "Refused", status: res.statusCode ?? 0, body })))
        })
        req.on("error", (e) => resume(Effect.fail(e)))
        req.end()
      })
    }),
    (client) => client._tag === "Open" ? client.close : Effect.void
  )

const openWs = (client: WsClient | WsRefused): WsClient => {
  if (client._tag === "Refused") assert.fail(`WebSocket refused: ${client.status} ${client.body}`)
  return client as WsClient
}

const waitUntil = (what: string, check: () => boolean, within: `${number} seconds` = "60 seconds") =>
  Cli.waitFor(what, Effect.sync(check), { within })

// -----------------------------------------------------------------------------
// the fixture: grove serve, then a grove run in another process, clients from the start
// -----------------------------------------------------------------------------

type Served = Cli.Served

const startServe = (repo: EmptyRepo) => Cli.startServe(repo.root, [], { GROVE_TOKEN: token })

const plan = (name: string, front: string, script: string) => `---\nid: ${name}\n${front}---\n# ${name}\n\n\`\`\`sh\n${script}\n\`\`\`\n`

interface Scenario {
  readonly repo: EmptyRepo
  readonly serve: Served
  readonly dbFile: string
  readonly sessionId: string
  /** what the store holds at the end, read directly */
  readonly stored: ReadonlyArray<Logged>
  readonly finalState: SessionState.SessionState
  /** SSE from the start (`?after=0`) */
  readonly fromStart: ReadonlyArray<Frame>
  /** SSE that dropped after `droppedAt` and came back with Last-Event-ID */
  readonly beforeDrop: ReadonlyArray<Frame>
  readonly afterDrop: ReadonlyArray<Frame>
  readonly droppedAt: number
  /** SSE without Last-Event-ID once the session had run a while */
  readonly late: ReadonlyArray<Frame>
  /** WebSocket `?after=0`, and one without `after` */
  readonly wsFromStart: ReadonlyArray<string>
  readonly wsFromStartClose: number | undefined
  readonly wsSnapshot: ReadonlyArray<string>
  /** every byte every client received */
  readonly everything: string
}

class Fixture extends Context.Tag("test/LiveServerCli/Fixture")<Fixture, Scenario>() {}

const seqOf = (f: Frame) => Number(f.id)

const FixtureLive = Layer.scoped(
  Fixture,
  Effect.gen(function*() {
    const repo = yield* makeEmptyRepo("grove-live-")
    const plans = NodePath.join(repo.root, "plans")
    Fs.mkdirSync(plans)
    for (let i = 1; i <= 6; i++) Fs.writeFileSync(NodePath.join(plans, `pass${i}.md`), plan(`pass${i}`, "", `sleep 0.${i}; echo pass ${i}`))
    Fs.writeFileSync(NodePath.join(plans, "fails.md"), plan("fails", "retries: 1\n", "echo failing; exit 3"))
    Fs.writeFileSync(NodePath.join(plans, "flaky.md"), plan("flaky", "retries: 1\n", "[ \"$GROVE_ATTEMPT\" = 2 ]"))
    Fs.writeFileSync(
      NodePath.join(plans, "secret.md"),
      plan("secret", `env: { API_TOKEN: ${secret} }\nsecretEnv: [API_TOKEN]\n`, "sleep 0.3; echo \"the token is $API_TOKEN\"")
    )
    const serve = yield* startServe(repo)
    const auth = { authorization: `Bearer ${token}` }
    const run = yield* Cli.spawn(["run", "--workers", "2", ...Fs.readdirSync(plans).sort().map((p) => `plans/${p}`)], { cwd: repo.root })
    yield* waitUntil("grove run's session id", () => Cli.sessionId(run.stdout()) !== undefined)
    const sessionId = Cli.sessionId(run.stdout())!
    const events = `/api/v1/sessions/${sessionId}/events`
    const fromStart = yield* sse(serve.port, `${events}?after=0`, auth)
    const dropping = yield* sse(serve.port, `${events}?after=0`, auth)
    const wsFromStart = openWs(yield* ws(serve.port, `/api/v1/sessions/${sessionId}/ws?after=0`, auth))
    const wsSnapshot = openWs(yield* ws(serve.port, `/api/v1/sessions/${sessionId}/ws`, auth))
    // the dropping client goes away after a few events, and comes back with the last id it saw
    yield* waitUntil("5 events", () => dropping.frames().length >= 5)
    yield* dropping.close
    const beforeDrop = [...dropping.frames()]
    const droppedAt = seqOf(beforeDrop[beforeDrop.length - 1]!)
    const resumed = yield* sse(serve.port, events, { ...auth, "last-event-id": String(droppedAt) })
    // a late client, once the session has run a while
    yield* waitUntil("12 events", () => fromStart.frames().length >= 12)
    const late = yield* sse(serve.port, events, auth)
    const outcome = yield* run.exit
    assert.strictEqual(outcome.code, 1, `grove run: ${outcome.stdout}\n${outcome.stderr}`)
    for (const client of [fromStart, resumed, late]) {
      yield* client.ended.pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("an SSE stream did not end") }))
    }
    for (const client of [wsFromStart, wsSnapshot]) {
      yield* client.ended.pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("a WebSocket did not close") }))
    }
    const dbFile = NodePath.join(repo.commonDir, "grove", "grove.db")
    const { finalState, stored } = yield* Effect.scoped(Effect.gen(function*() {
      const store = Context.get(yield* Layer.build(SqlStore.layer({ filename: dbFile })), Store.Store)
      const stored = Chunk.toReadonlyArray(yield* Stream.runCollect(Store.eventStream(store, sessionId)))
      const finalState = Option.getOrThrow(yield* Store.stateOf(store, sessionId))
      return { stored, finalState }
    }))
    return {
      repo,
      serve,
      dbFile,
      sessionId,
      stored,
      finalState,
      fromStart: fromStart.frames(),
      beforeDrop,
      afterDrop: resumed.frames(),
      droppedAt,
      late: late.frames(),
      wsFromStart: wsFromStart.messages(),
      wsFromStartClose: wsFromStart.closeCode(),
      wsSnapshot: wsSnapshot.messages(),
      everything: [fromStart.raw(), dropping.raw(), resumed.raw(), late.raw(), ...wsFromStart.messages(), ...wsSnapshot.messages()].join("\n")
    } satisfies Scenario
  })
).pipe(Layer.provide(NodeContext.layer))

const decodeEvent = Schema.decodeUnknownSync(SessionEvent)
const encodeEvent = Schema.encodeSync(SessionEvent)

const seqs = (frames: ReadonlyArray<Frame>) => frames.map(seqOf)
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)

/** the encoded snapshot of a state, to compare two states */
const json = (state: SessionState.SessionState) => JSON.stringify(SessionState.encodeSnapshot(state))

layer(FixtureLive, { timeout: "180 seconds", excludeTestServices: true })("grove serve: live events of a grove run in another process", (it) => {
  it.effect("a client from the start sees every event 1..N once, in order, ending with SessionFinished, as the store holds them", () =>
    Effect.gen(function*() {
      const fx = yield* Fixture
      const n = fx.stored.length
      assert.isAbove(n, 30)
      assert.deepStrictEqual(seqs(fx.fromStart), range(1, n))
      assert.strictEqual(fx.fromStart[n - 1]!.event, "SessionFinished")
      fx.fromStart.forEach((frame, i) => {
        const logged = fx.stored[i]!
        assert.strictEqual(frame.event, logged.event._tag)
        // the frame's data is the stored event, encoded with the SessionEvent Schema
        assert.deepStrictEqual(JSON.parse(frame.data), encodeEvent(logged.event))
      })
      // the session had retries and failures: the stream carried them
      const tags = new Set(fx.fromStart.map((f) => f.event))
      for (const tag of ["SessionStarted", "TestQueued", "AttemptStarted", "AttemptFinished", "RetryScheduled", "TestFinished"]) {
        assert.isTrue(tags.has(tag), `no ${tag} frame`)
      }
    }))

  it.effect("a client that drops and reconnects with Last-Event-ID sees exactly the events after it", () =>
    Effect.gen(function*() {
      const fx = yield* Fixture
      assert.deepStrictEqual(seqs(fx.beforeDrop), range(1, fx.droppedAt))
      assert.notInclude(fx.afterDrop.map((f) => f.event), "snapshot")
      assert.deepStrictEqual(seqs(fx.afterDrop), range(fx.droppedAt + 1, fx.stored.length))
    }))

  it.effect("a late client gets a snapshot, then exactly the events after it; folding them gives the store's final state", () =>
    Effect.gen(function*() {
      const fx = yield* Fixture
      const [first, ...rest] = fx.late
      assert.strictEqual(first?.event, "snapshot")
      const snapshot = JSON.parse(first!.data)
      assert.strictEqual(String(snapshot.seq), first!.id)
      assert.isAtLeast(snapshot.seq, 12)
      assert.deepStrictEqual(seqs(rest), range(snapshot.seq + 1, fx.stored.length))
      const start = SessionState.decodeSnapshot(snapshot.state)
      assert.strictEqual(start.seq, snapshot.seq)
      // the time left when it was taken: null exactly when nothing was known (whatever the time), else ≥ 0
      assert.strictEqual(start.status, "RUNNING")
      assert.property(snapshot, "eta")
      assert.strictEqual(snapshot.eta === null, eta(start, Date.now()) === undefined, `eta: ${JSON.stringify(snapshot.eta)}`)
      if (snapshot.eta !== null) assert.isAtLeast(snapshot.eta.millis, 0)
      const folded = rest.reduce(
        (state, f) => SessionState.update(state, new Logged({ seq: seqOf(f), event: decodeEvent(JSON.parse(f.data)) })),
        start
      )
      assert.strictEqual(json(folded), json(fx.finalState))
      assert.strictEqual(folded.status, "PARTIAL_SUCCESS")
    }))

  it.effect("the WebSocket sends the same sequence (snapshot first without ?after) and closes with 1000 after SessionFinished", () =>
    Effect.gen(function*() {
      const fx = yield* Fixture
      const fromStart = fx.wsFromStart.map((m) => JSON.parse(m))
      assert.deepStrictEqual(fromStart.map((m) => m.id), range(1, fx.stored.length))
      assert.deepStrictEqual(
        fromStart.map((m) => [m.event, m.data]),
        fx.fromStart.map((f) => [f.event, JSON.parse(f.data)])
      )
      assert.strictEqual(fx.wsFromStartClose, 1000)
      const [snapshot, ...rest] = fx.wsSnapshot.map((m) => JSON.parse(m))
      assert.strictEqual(snapshot.event, "snapshot")
      assert.strictEqual(snapshot.id, snapshot.data.seq)
      assert.deepStrictEqual(rest.map((m) => m.id), range(snapshot.id + 1, fx.stored.length))
      const folded = rest.reduce(
        (state, m) => SessionState.update(state, new Logged({ seq: m.id, event: decodeEvent(m.data) })),
        SessionState.decodeSnapshot(snapshot.data.state)
      )
      assert.strictEqual(json(folded), json(fx.finalState))
    }))

  it.effect("no frame holds the secret value: masked in the output, left out of the stored request", () =>
    Effect.gen(function*() {
      const fx = yield* Fixture
      assert.notInclude(fx.everything, secret)
      assert.include(fx.everything, "the token is ***")
      // the plan's env held it: the stored request keeps the name, not the variable
      const queued = fx.fromStart.map((f) => JSON.parse(f.data)).find((d) => d._tag === "TestQueued" && d.test.id === "secret")
      assert.deepStrictEqual(queued.test.secretEnv, ["API_TOKEN"])
      assert.deepStrictEqual(queued.test.env, {})
    }))

  it.effect("a finished session: snapshot, then the end; resumed at its end: nothing, then the end", () =>
    Effect.scoped(Effect.gen(function*() {
      const fx = yield* Fixture
      const auth = { authorization: `Bearer ${token}` }
      const events = `/api/v1/sessions/${fx.sessionId}/events`
      const after = yield* sse(fx.serve.port, events, auth)
      yield* after.ended
      assert.strictEqual(after.status, 200)
      assert.deepStrictEqual(after.frames().map((f) => [f.event, f.id]), [["snapshot", String(fx.stored.length)]])
      assert.strictEqual(json(SessionState.decodeSnapshot(JSON.parse(after.frames()[0]!.data).state)), json(fx.finalState))
      const atEnd = yield* sse(fx.serve.port, `${events}?after=${fx.stored.length}`, auth)
      yield* atEnd.ended
      assert.deepStrictEqual(atEnd.frames(), [])
    })))

  it.effect("refuses: an unknown session 404, a bad Last-Event-ID 400, no token 401 (SSE and WebSocket), a WebSocket from another origin 403", () =>
    Effect.scoped(Effect.gen(function*() {
      const fx = yield* Fixture
      const port = fx.serve.port
      const auth = { authorization: `Bearer ${token}` }
      const unknown = yield* sse(port, "/api/v1/sessions/20261201-0000-none/events", auth)
      yield* unknown.ended
      assert.strictEqual(unknown.status, 404)
      assert.strictEqual(JSON.parse(unknown.raw())._tag, "NotFound")
      const bad = yield* sse(port, `/api/v1/sessions/${fx.sessionId}/events`, { ...auth, "last-event-id": "seven" })
      yield* bad.ended
      assert.strictEqual(bad.status, 400)
      assert.deepStrictEqual(JSON.parse(bad.raw()).issues.map((i: any) => i.where), ["last-event-id"])
      const noToken = yield* sse(port, `/api/v1/sessions/${fx.sessionId}/events`, {})
      yield* noToken.ended
      assert.strictEqual(noToken.status, 401)
      assert.strictEqual(JSON.parse(noToken.raw())._tag, "Unauthorized")

      const path = `/api/v1/sessions/${fx.sessionId}/ws`
      const wsNoToken = yield* ws(port, path, {})
      assert.strictEqual(wsNoToken._tag === "Refused" ? wsNoToken.status : 101, 401)
      const cookie = { cookie: `grove_token_${port}=${token}` }
      const crossOrigin = yield* ws(port, path, { ...cookie, origin: "http://evil.example" })
      assert.strictEqual(crossOrigin._tag === "Refused" ? crossOrigin.status : 101, 403)
      assert.strictEqual(crossOrigin._tag === "Refused" ? JSON.parse(crossOrigin.body).reason : "", "CrossOrigin")
      const wsUnknown = yield* ws(port, "/api/v1/sessions/20261201-0000-none/ws", cookie)
      assert.strictEqual(wsUnknown._tag === "Refused" ? wsUnknown.status : 101, 404)
      // from grove's own page, with the login cookie (what a browser sends): accepted
      const own = openWs(yield* ws(port, path, { ...cookie, origin: `http://127.0.0.1:${port}` }))
      yield* own.ended
      assert.strictEqual(JSON.parse(own.messages()[0]!).event, "snapshot")
      assert.strictEqual(own.closeCode(), 1000)
    })))
})

// -----------------------------------------------------------------------------
// shutdown with clients connected
// -----------------------------------------------------------------------------

describe("grove serve: shutdown with live clients", () => {
  it.scopedLive("exits 130 on SIGINT with an SSE and a WebSocket client following a running session", () =>
    Effect.gen(function*() {
      const repo = yield* makeEmptyRepo("grove-live-stop-")
      const dbFile = NodePath.join(repo.commonDir, "grove", "grove.db")
      Fs.mkdirSync(NodePath.dirname(dbFile), { recursive: true })
      // a session that runs (its grove is elsewhere): its streams stay open
      const sessionId = "20261201-1100-stop"
      yield* Effect.scoped(Effect.gen(function*() {
        const store = Context.get(yield* Layer.build(SqlStore.layer({ filename: dbFile })), Store.Store)
        yield* store.record(
          sessionId,
          Events.SessionStarted({ sessionId, baseRef: "main", baseSha: "c0ffee", workers: 1, startedAt: Date.now() }),
          { meta: { repoRoot: repo.root, pid: process.pid, config: "{}" } }
        )
      }))
      const serve = yield* startServe(repo)
      const auth = { authorization: `Bearer ${token}` }
      const events = yield* sse(serve.port, `/api/v1/sessions/${sessionId}/events`, auth)
      const socket = openWs(yield* ws(serve.port, `/api/v1/sessions/${sessionId}/ws`, auth))
      yield* waitUntil("both snapshots", () => events.frames().length === 1 && socket.messages().length === 1)
      yield* serve.process.kill("SIGINT")
      const outcome = yield* serve.process.exit.pipe(
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("grove serve still runs 10 s after SIGINT") })
      )
      assert.strictEqual(outcome.code, 130, `${outcome.stdout}\n${outcome.stderr}`)
      yield* events.ended
      yield* socket.ended
      assert.strictEqual(socket.closeCode(), 1001)
    }).pipe(Effect.provide(NodeContext.layer)), 60_000)
})
