/**
 * Live events of `grove serve` (SPEC §9 "Live"): the frames of a session's
 * `GET /api/v1/sessions/:id/events` (Server-Sent Events) and `…/ws` (WebSocket), read
 * from the store as they are written — by a session of this process or by a
 * `grove run` in another process on the same store.
 *
 * How a client is fed:
 *
 * 1. A client from the start gets a **snapshot**: the session's stored events folded
 *    (`SessionState`, a page at a time), with the sequence number N it covers. A
 *    client that resumes (`Last-Event-ID: N`, or `?after=N`) gets no snapshot.
 * 2. Then the events after N, **pulled** from the store a page (`page`, default 50)
 *    at a time, each page only when the connection has taken the one before: a slow
 *    client lags behind, the server holds at most a page for it, never a queue.
 * 3. When a client has read all there is, it waits for the session's **notifier**:
 *    one per followed session (an `RcMap` entry, shared by every client of that
 *    session, released a second after the last one leaves), a `SubscriptionRef` of
 *    the highest sequence number known to be stored. Clients push it forward with
 *    what they read; its poller asks the store for one event past it every
 *    `pollFast` (50 ms) while events flow, every `pollIdle` (250 ms) once the session
 *    has been quiet for a second.
 * 4. The stream ends after `SessionFinished` when nothing follows it (a session
 *    resumed with `grove run --resume` goes on: its log continues after it), and at
 *    once for a session that had finished before the client came (snapshot, then
 *    the end). A heartbeat frame (`: ping` in SSE) goes every `heartbeat` (15 s).
 * 5. When the server closes, `closing` completes and every stream ends
 *    (`Stream.interruptWhen`), so no client holds the shutdown.
 *
 * Payloads are the store's, whose secret values were masked before they were
 * written (SPEC §4): a frame cannot hold one the store never had.
 *
 * @since 0.2.0
 */
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RcMap from "effect/RcMap"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { type Logged, SessionEvent } from "../Domain.js"
import type { StoreError } from "../GroveError.js"
import * as SessionState from "../SessionState.js"
import { stateOf, Store } from "../Store.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** between two heartbeat frames (default 15 s) */
  readonly heartbeat?: Duration.DurationInput
  /** events read from the store at once for one client (default 50) */
  readonly page?: number
  /** the notifier's poll interval while events flow (default 50 ms) … */
  readonly pollFast?: Duration.DurationInput
  /** … and once the session has been quiet for a second (default 250 ms) */
  readonly pollIdle?: Duration.DurationInput
}

/**
 * One frame of a session's live events.
 *
 * @since 0.2.0
 * @category models
 */
export type Frame =
  | { readonly _tag: "Snapshot"; readonly state: SessionState.SessionState }
  | { readonly _tag: "Event"; readonly logged: Logged }
  | { readonly _tag: "Ping" }

/**
 * Where a client starts: from a snapshot, or after the event it saw last.
 *
 * @since 0.2.0
 * @category models
 */
export type From = { readonly _tag: "Snapshot" } | { readonly _tag: "After"; readonly seq: number }

/**
 * @since 0.2.0
 * @category tags
 */
export class Live extends Context.Tag("grove/server/Live")<Live, {
  /**
   * the frames of a stored session from `from` (no heartbeats: `withHeartbeat` adds
   * them); none when the store does not hold the session
   */
  readonly frames: (sessionId: string, from: From) => Effect.Effect<Option.Option<Stream.Stream<Frame, StoreError>>, StoreError>
  /** the heartbeat interval */
  readonly heartbeat: Duration.Duration
  /** completes when the server closes */
  readonly closing: Effect.Effect<void>
  /** whether the server is closing */
  readonly stopping: Effect.Effect<boolean>
  /**
   * ends every stream (the server closes) and waits (at most a second) until every
   * stream and `track`ed sender has finished; also done when the service's scope closes
   */
  readonly close: Effect.Effect<void>
  /** counts `effect` (a sender that writes after its stream ended) as a live stream until it ends */
  readonly track: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}>() {}

const encodeEvent = Schema.encodeSync(SessionEvent)

/**
 * A frame as Server-Sent Events text (`id:`, `event:`, `data:`; a heartbeat is a comment).
 *
 * @since 0.2.0
 * @category utils
 */
export const sseText = (frame: Frame): string => {
  switch (frame._tag) {
    case "Ping":
      return ": ping\n\n"
    case "Snapshot":
      return `id: ${frame.state.seq}\nevent: snapshot\ndata: ${
        JSON.stringify({ seq: frame.state.seq, state: SessionState.encodeSnapshot(frame.state) })
      }\n\n`
    case "Event":
      return `id: ${frame.logged.seq}\nevent: ${frame.logged.event._tag}\ndata: ${JSON.stringify(encodeEvent(frame.logged.event))}\n\n`
  }
}

/**
 * A frame as a WebSocket text message, `{ "id": seq, "event": tag, "data": … }`
 * (`undefined` for a heartbeat: WebSocket has its own).
 *
 * @since 0.2.0
 * @category utils
 */
export const wsText = (frame: Frame): string | undefined => {
  switch (frame._tag) {
    case "Ping":
      return undefined
    case "Snapshot":
      return JSON.stringify({
        id: frame.state.seq,
        event: "snapshot",
        data: { seq: frame.state.seq, state: SessionState.encodeSnapshot(frame.state) }
      })
    case "Event":
      return JSON.stringify({ id: frame.logged.seq, event: frame.logged.event._tag, data: encodeEvent(frame.logged.event) })
  }
}

/**
 * The frames with a heartbeat every `interval`, ending with them.
 *
 * @since 0.2.0
 * @category utils
 */
export const withHeartbeat = <E, R>(frames: Stream.Stream<Frame, E, R>, interval: Duration.DurationInput) =>
  Stream.merge(
    frames,
    Stream.repeatEffect(Effect.as(Effect.sleep(interval), { _tag: "Ping" } as Frame)),
    { haltStrategy: "left" }
  )

/** how many quiet polls at `pollFast` before the poller slows to `pollIdle` (about a second) */
const quietPollsBeforeIdle = 20

/**
 * The Live service over the `Store`; `closing` completes when its scope closes.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const store = yield* Store
    const page = Math.max(1, options.page ?? 50)
    const fast = Duration.decode(options.pollFast ?? "50 millis")
    const idle = Duration.decode(options.pollIdle ?? "250 millis")
    const closing = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() => Deferred.succeed(closing, undefined))
    // streams and senders that have not finished yet
    const active = yield* SubscriptionRef.make(0)
    const track = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(SubscriptionRef.update(active, (n) => n + 1), () => effect, () => SubscriptionRef.update(active, (n) => n - 1))
    const close = Deferred.succeed(closing, undefined).pipe(
      Effect.zipRight(active.changes.pipe(Stream.filter((n) => n <= 0), Stream.take(1), Stream.runDrain)),
      Effect.timeout("1 second"),
      Effect.ignore
    )

    // one notifier per followed session: the highest sequence number known to be stored
    const notifiers = yield* RcMap.make({
      idleTimeToLive: "1 second",
      lookup: (sessionId: string) =>
        Effect.gen(function*() {
          const known = yield* SubscriptionRef.make(0)
          const poll = (quiet: number): Effect.Effect<never> =>
            Effect.gen(function*() {
              const after = yield* SubscriptionRef.get(known)
              const next = yield* store.events(sessionId, { after, limit: 1 }).pipe(
                Effect.catchAll((e) => Effect.as(Effect.logWarning(`grove serve: reading events of ${sessionId}: ${e.message}`), []))
              )
              const found = next[0]
              if (found !== undefined) yield* SubscriptionRef.update(known, (s) => Math.max(s, found.seq))
              const quietNow = found === undefined ? quiet + 1 : 0
              yield* Effect.sleep(quietNow >= quietPollsBeforeIdle ? idle : fast)
              return yield* poll(quietNow)
            })
          yield* Effect.forkScoped(poll(0))
          return known
        })
    })

    /** the events after `after`, a page at a time, as the client takes them */
    const follow = (sessionId: string, after: number, finished: boolean): Stream.Stream<Frame, StoreError> =>
      Stream.unwrapScoped(Effect.map(RcMap.get(notifiers, sessionId), (known) =>
        Stream.paginateChunkEffect({ cursor: after, finished }, (at) =>
          Effect.gen(function*() {
            const read = yield* store.events(sessionId, { after: at.cursor, limit: page })
            const last = read[read.length - 1]
            if (last !== undefined) {
              yield* SubscriptionRef.update(known, (s) => Math.max(s, last.seq))
              return [
                read.map((logged): Frame => ({ _tag: "Event", logged })),
                Option.some({ cursor: last.seq, finished: last.event._tag === "SessionFinished" })
              ] as const
            }
            // nothing after the end of a finished session: done
            if (at.finished) return [[], Option.none()] as const
            yield* known.changes.pipe(Stream.filter((s) => s > at.cursor), Stream.take(1), Stream.runDrain)
            return [[], Option.some(at)] as const
          }).pipe(Effect.map(([frames, next]) => [Chunk.unsafeFromArray(frames as Array<Frame>), next] as const))
        )))

    const frames = (sessionId: string, from: From) =>
      Effect.gen(function*() {
        if (from._tag === "Snapshot") {
          const state = yield* stateOf(store, sessionId)
          if (Option.isNone(state)) return Option.none()
          const snapshot = Stream.succeed<Frame>({ _tag: "Snapshot", state: state.value })
          return Option.some(
            state.value.status === "RUNNING"
              ? Stream.concat(snapshot, follow(sessionId, state.value.seq, false))
              : snapshot
          )
        }
        const summary = yield* store.requireSession(sessionId).pipe(
          Effect.map(Option.some),
          Effect.catchIf((e) => e.reason === "UnknownSession", () => Effect.succeed(Option.none()))
        )
        return Option.map(summary, (s) => follow(sessionId, from.seq, s.status !== "RUNNING"))
      }).pipe(
        Effect.map(Option.map((stream) =>
          Stream.unwrapScoped(Effect.as(
            Effect.acquireRelease(SubscriptionRef.update(active, (n) => n + 1), () => SubscriptionRef.update(active, (n) => n - 1)),
            Stream.interruptWhen(stream, Deferred.await(closing))
          ))
        ))
      )

    return Live.of({ frames, heartbeat: Duration.decode(options.heartbeat ?? "15 seconds"), closing: Deferred.await(closing),
      stopping: Deferred.isDone(closing),
      close,
      track
    })
  })

/**
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Live, never, Store> => Layer.scoped(Live, make(options))
