/**
 * Live events of `grove serve` (SPEC §9 "Live"): the frames of a session's
 * `GET /api/v1/sessions/:id/events` (Server-Sent Events) and `…/ws` (WebSocket), read
 * from the store as they are written — by a session of this process or by a
 * `grove run` in another process on the same store.
 *
 * How a client is fed:
 *
 * 1. A client from the start gets a **snapshot**: the session's stored events folded
 *    (`SessionState`, a page at a time), with the sequence number N it covers and
 *    the time left then (the terminal's and the dashboard's ETA, on the Clock the
 *    events' times are on). A client that resumes (`Last-Event-ID: N`, or `?after=N`)
 *    gets no snapshot.
 * 2. Then the events after N, **pulled** from the store a page (`page`, default 50)
 *    at a time, each page only when the connection has taken the one before: a slow
 *    client lags behind, the server holds at most a page for it, never a queue.
 * 3. Every followed session has one **entry** (an `RcMap` entry, shared by all its
 *    clients, released a second after the last one leaves): the highest sequence
 *    number known to be stored, the clients waiting beyond it, and a **window** of its
 *    recent frames, each event read and encoded once for all (a contiguous run, at
 *    most 4 MiB of text; a client behind it reads the store itself). While someone
 *    waits, the entry's poller reads the page after the last known event into the
 *    window every `pollFast` (50 ms) while events flow, every `pollIdle` (250 ms)
 *    once the session has been quiet for a second, and wakes the waiters.
 * 4. The stream ends after `SessionFinished` when nothing follows it (a session
 *    resumed with `grove run --resume` goes on: its log continues after it), and at
 *    once for a session that had finished before the client came (snapshot, then
 *    the end). The entry wakes its waiting clients with a heartbeat frame (`: ping`
 *    in SSE) every `heartbeat` (15 s).
 * 5. When the server closes, `closing` completes and every stream ends at its next
 *    step: waiting clients are woken at once. (Not `Stream.interruptWhen`: it races
 *    every element, ≈ 70 µs each here, times every client.) A client whose write
 *    blocks is cut by the server's drain.
 *
 * Payloads are the store's, whose secret values were masked before they were
 * written (SPEC §4): a frame cannot hold one the store never had.
 *
 * @since 0.2.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
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
import { eta } from "../view/Live.js"

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
  | {
    readonly _tag: "Snapshot"
    readonly state: SessionState.SessionState
    /**
     * the time left when the snapshot was taken (`view/Live.ts`'s `eta`, as the terminal
     * and the dashboard show it): `undefined` while nothing is known yet
     */
    readonly eta: { readonly millis: number; readonly estimate: boolean } | undefined
  }
  | {
    readonly _tag: "Event"
    readonly seq: number
    /** the event's `_tag` */
    readonly event: SessionEvent["_tag"]
    /** the event encoded with the `SessionEvent` Schema, as JSON text */
    readonly data: string
  }
  | { readonly _tag: "Ping" }

/**
 * @since 0.2.0
 * @category models
 */
export type EventFrame = Extract<Frame, { readonly _tag: "Event" }>

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
   * the frames of a stored session from `from`, a heartbeat after every `heartbeat`
   * without a frame; none when the store does not hold the session
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

/** a snapshot frame's `data`: `{ seq, state, eta }`, `eta` `{ millis, estimate }` or null while unknown */
const snapshotData = (frame: Extract<Frame, { readonly _tag: "Snapshot" }>) => ({
  seq: frame.state.seq,
  state: SessionState.encodeSnapshot(frame.state),
  eta: frame.eta ?? null
})

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
      return `id: ${frame.state.seq}\nevent: snapshot\ndata: ${JSON.stringify(snapshotData(frame))}\n\n`
    case "Event":
      return `id: ${frame.seq}\nevent: ${frame.event}\ndata: ${frame.data}\n\n`
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
      return JSON.stringify({ id: frame.state.seq, event: "snapshot", data: snapshotData(frame) })
    case "Event":
      return `{"id":${frame.seq},"event":${JSON.stringify(frame.event)},"data":${frame.data}}`
  }
}

/**
 * An event as a frame: encoded once, whoever reads it.
 *
 * @since 0.2.0
 * @category constructors
 */
export const eventFrame = (logged: Logged): EventFrame => ({
  _tag: "Event",
  seq: logged.seq,
  event: logged.event._tag,
  data: JSON.stringify(encodeEvent(logged.event))
})

const ping: Frame = { _tag: "Ping" }

/** why a waiting follower wakes: an event beyond it is known, its heartbeat is due, the server closes */
type Wake = "new" | "ping" | "closed"

/**
 * A followed session: `latest`, the highest sequence number known to be stored (what
 * its clients read, and what its poller finds); the followers waiting beyond it; the
 * window of its recent frames.
 */
interface Entry {
  latest: number
  readonly waiting: () => number
  /** wakes every waiting follower */
  readonly wake: (why: Wake) => void
  readonly advance: (seq: number) => void
  /** until an event after `cursor` is known to be stored (`new`), a heartbeat is due, or the server closes */
  readonly beyond: (cursor: number) => Effect.Effect<Wake>
  readonly window: (cursor: number) => Effect.Effect<ReadonlyArray<EventFrame>, StoreError>
}

/** text kept in a session's window of recent frames, at most (the frames of a page may go over) */
const windowBytes = 4 * 1024 * 1024

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
    // the followed sessions, to wake their waiters when the server closes
    const entries = new Set<Entry>()
    let isClosed = false
    const shut = Effect.zipRight(
      Deferred.succeed(closing, undefined),
      Effect.sync(() => {
        isClosed = true
        entries.forEach((e) => e.wake("closed"))
      })
    )
    yield* Effect.addFinalizer(() => shut)
    // streams and senders that have not finished yet
    const active = yield* SubscriptionRef.make(0)
    const track = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(SubscriptionRef.update(active, (n) => n + 1), () => effect, () => SubscriptionRef.update(active, (n) => n - 1))
    const close = shut.pipe(
      Effect.zipRight(active.changes.pipe(Stream.filter((n) => n <= 0), Stream.take(1), Stream.runDrain)),
      Effect.timeout("1 second"),
      Effect.ignore
    )

    /**
     * The recent frames of a session, shared by its followers: the clients that are
     * caught up all ask for the page after the same event; one reads it from the store
     * (and encodes it), the others take it from here. A contiguous run of sequence
     * numbers, trimmed from the front to `windowBytes` of text; a client behind it
     * reads the store itself.
     */
    const makeWindow = (sessionId: string) => {
      let frames: Array<EventFrame> = []
      let bytes = 0
      const lock = Effect.unsafeMakeSemaphore(1)
      const slice = (cursor: number): Array<EventFrame> | undefined => {
        const first = frames[0]
        if (first === undefined || cursor + 1 < first.seq || cursor >= frames[frames.length - 1]!.seq) return undefined
        // contiguous: the frame after `cursor` is at index cursor + 1 - first.seq
        return frames.slice(cursor + 1 - first.seq, cursor + 1 - first.seq + page)
      }
      const keep = (read: ReadonlyArray<EventFrame>, cursor: number) => {
        if (!read.every((f, i) => f.seq === cursor + 1 + i)) return
        const last = frames[frames.length - 1]
        if (last === undefined || last.seq !== cursor) {
          frames = []
          bytes = 0
        }
        for (const f of read) {
          frames.push(f)
          bytes += f.data.length
        }
        let drop = 0
        while (bytes > windowBytes && drop < frames.length - read.length) bytes -= frames[drop++]!.data.length
        if (drop > 0) frames = frames.slice(drop)
      }
      const fromStore = (cursor: number) =>
        Effect.map(store.events(sessionId, { after: cursor, limit: page }), (read) => read.map(eventFrame))
      /** up to `page` frames after `cursor` */
      return (cursor: number): Effect.Effect<ReadonlyArray<EventFrame>, StoreError> =>
        Effect.suspend(() => {
          const cached = slice(cursor)
          if (cached !== undefined) return Effect.succeed(cached)
          const first = frames[0]
          // behind the window: the store, alone
          if (first !== undefined && cursor + 1 < first.seq) return fromStore(cursor)
          return lock.withPermits(1)(Effect.suspend(() => {
            const meanwhile = slice(cursor)
            if (meanwhile !== undefined) return Effect.succeed(meanwhile)
            return Effect.tap(fromStore(cursor), (read) => keep(read, cursor))
          }))
        })
    }

    const heartbeat = Duration.decode(options.heartbeat ?? "15 seconds")

    // one entry per followed session, shared by its followers
    const sessions = yield* RcMap.make({
      idleTimeToLive: "1 second",
      lookup: (sessionId: string) =>
        Effect.gen(function*() {
          const entry = makeEntry(sessionId)
          yield* Effect.acquireRelease(Effect.sync(() => entries.add(entry)), () => Effect.sync(() => entries.delete(entry)))
          yield* Effect.forkScoped(poller(entry))
          yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(heartbeat), Effect.sync(() => entry.wake("ping")))))
          return entry
        })
    })

    /** the events after `after`, a page at a time, as the client takes them */
    const follow = (sessionId: string, after: number, finished: boolean): Stream.Stream<Frame, StoreError> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const entry = yield* RcMap.get(sessions, sessionId)
        // a client that resumes after event N tells the entry that N exists, once the store says so
        if (after > entry.latest) {
          const at = yield* store.events(sessionId, { after: after - 1, limit: 1 })
          if (at[0]?.seq === after) entry.advance(after)
        }
        // `looked`: the last read ended short of a page; then it reads again only when something new is known
        return Stream.paginateChunkEffect({ cursor: after, finished, looked: false }, (at) =>
          Effect.gen(function*() {
            if (isClosed) return [[], Option.none()] as const
            if (!at.looked || entry.latest > at.cursor) {
              const read = yield* entry.window(at.cursor)
              const last = read[read.length - 1]
              if (last !== undefined) {
                entry.advance(last.seq)
                // a full page: there may be more already
                return [
                  read,
                  Option.some({ cursor: last.seq, finished: last.event === "SessionFinished", looked: read.length < page })
                ] as const
              }
            }
            // nothing after the end of a finished session: done
            if (at.finished) return [[], Option.none()] as const
            const woken = yield* entry.beyond(at.cursor)
            if (woken === "closed") return [[], Option.none()] as const
            return [woken === "ping" ? [ping] : [], Option.some({ ...at, looked: true })] as const
          }).pipe(Effect.map(([frames, next]) => [Chunk.unsafeFromArray(frames as Array<Frame>), next] as const))
        )
      }))

    /**
     * A followed session: `latest`, the highest sequence number known to be stored
     * (what clients read, and what the poller finds), with a signal for those who
     * wait beyond it; and the window of its recent frames.
     */
    const makeEntry = (sessionId: string): Entry => {
      const waiters = new Set<(why: Wake) => void>()
      const entry: Entry = {
        latest: 0,
        waiting: () => waiters.size,
        wake: (why) => {
          const woken = [...waiters]
          waiters.clear()
          woken.forEach((w) => w(why))
        },
        advance: (seq) => {
          if (seq <= entry.latest) return
          entry.latest = seq
          entry.wake("new")
        },
        beyond: (cursor) =>
          !isClosed
            ? entry.latest > cursor
              ? Effect.succeed("new")
              : Effect.async<Wake>((resume) => {
                const waiter = (why: Wake) => resume(Effect.succeed(why))
                waiters.add(waiter)
                return Effect.sync(() => void waiters.delete(waiter))
              })
            : Effect.succeed("closed"),
        window: makeWindow(sessionId)
      }
      return entry
    }

    /**
     * Finds new events while clients wait for them: reads the page after `latest`
     * into the window (so the woken clients take it from there) every `pollFast`
     * while events flow, every `pollIdle` once the session has been quiet for a
     * second; at once again after a full page. Nobody waiting: no read.
     */
    const poller = (entry: Entry) => {
      const loop = (quiet: number): Effect.Effect<never> =>
        Effect.gen(function*() {
          if (entry.waiting() === 0) {
            yield* Effect.sleep(fast)
            return yield* loop(quiet)
          }
          const read = yield* entry.window(entry.latest).pipe(
            Effect.catchAll((e) => Effect.as(Effect.logWarning(`grove serve: reading events: ${e.message}`), []))
          )
          const last = read[read.length - 1]
          if (last !== undefined) entry.advance(last.seq)
          const quietNow = last === undefined ? quiet + 1 : 0
          if (read.length < page) yield* Effect.sleep(quietNow >= quietPollsBeforeIdle ? idle : fast)
          return yield* loop(quietNow)
        })
      return loop(0)
    }

    const frames = (sessionId: string, from: From) =>
      Effect.gen(function*() {
        if (from._tag === "Snapshot") {
          const state = yield* stateOf(store, sessionId)
          if (Option.isNone(state)) return Option.none()
          // on the Clock the events' times are on (a session's `startedAt` and its attempts')
          const now = yield* Clock.currentTimeMillis
          const left = state.value.status === "RUNNING" ? eta(state.value, now) : { millis: 0, estimate: false }
          const snapshot = Stream.succeed<Frame>({ _tag: "Snapshot", state: state.value, eta: left })
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
            stream
          ))
        ))
      )

    return Live.of({ frames, heartbeat, closing: Deferred.await(closing),
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
