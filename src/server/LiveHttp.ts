/**
 * The HTTP side of live events (`server/Live.ts` makes the frames): the handlers of
 * `GET /api/v1/sessions/:id/events` (Server-Sent Events) and `GET …/ws` (WebSocket).
 *
 * Both pull their frames: an SSE response is written a chunk at a time, the next
 * only once Node has taken the last (`drain`); the WebSocket sender waits while more
 * than `wsHighWater` bytes are queued on its socket. A client that stops reading
 * stops its stream; it does not grow grove's memory.
 *
 * The security gate (`Server.ts`) has already checked Host, Origin (a WebSocket
 * upgrade from another origin is refused with 403) and the token (header or cookie:
 * browsers' EventSource and WebSocket cannot send headers).
 *
 * @since 0.2.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Api from "../Api.js"
import type { StoreError } from "../GroveError.js"
import { type From, Live, sseText, wsText } from "./Live.js"

/** bytes queued on a WebSocket's connection above which its sender waits */
const wsHighWater = 1024 * 1024

const notFound = (id: string) =>
  new Api.NotFound({ what: "session", subject: id, message: `there is no session ${JSON.stringify(id)} in this store` })

const serverError = (e: StoreError) => new Api.ServerError({ message: e.message })

const fromOf = (after: number | undefined): From => after === undefined ? { _tag: "Snapshot" } : { _tag: "After", seq: after }

const framesOf = (id: string, from: From) =>
  Effect.flatMap(Live, (live) => live.frames(id, from)).pipe(
    Effect.mapError(serverError),
    Effect.flatMap(Option.match({ onNone: () => Effect.fail(notFound(id)), onSome: Effect.succeed }))
  )

/**
 * `GET /api/v1/sessions/:id/events`: `Last-Event-ID` (or `?after=`) resumes.
 *
 * @since 0.2.0
 * @category handlers
 */
export const events = (id: string, lastEventId: number | undefined, after: number | undefined) =>
  Effect.gen(function*() {
    const frames = yield* framesOf(id, fromOf(lastEventId ?? after))
    return HttpServerResponse.stream(
      // a comment first: Node sends the headers with the first write, and a client resuming a
      // quiet session (?after=, no event yet) must see the stream open now, not at the next event
      Stream.concat(
        Stream.succeed(": grove\n\n"),
        // a page of frames is one write
        frames.pipe(Stream.mapChunks((page) => Chunk.of(Chunk.join(Chunk.map(page, sseText), ""))))
      ).pipe(Stream.encodeText),
      {
        contentType: "text/event-stream; charset=utf-8",
        // no proxy may buffer the stream
        headers: { "x-accel-buffering": "no", connection: "keep-alive" }
      }
    )
  })

/**
 * `GET /api/v1/sessions/:id/ws` with `Upgrade: websocket`: the same frames as text
 * messages; closed with 1000 after the session's end, 1001 when grove serve stops.
 *
 * @since 0.2.0
 * @category handlers
 */
export const ws = (id: string, after: number | undefined) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if ((request.headers["upgrade"] ?? "").toLowerCase() !== "websocket") {
      return yield* Effect.fail(
        new Api.BadRequest({
          message: "this endpoint is a WebSocket: send the request with `Upgrade: websocket` (new WebSocket(url) in a browser)",
          issues: [new Api.RequestIssue({ where: "Upgrade", message: "expected websocket" })]
        })
      )
    }
    const live = yield* Live
    // before the upgrade, so that an unknown session is a 404 rather than an empty socket
    const frames = yield* framesOf(id, fromOf(after))
    const connection = NodeHttpServerRequest.toIncomingMessage(request).socket
    const room: Effect.Effect<void> = Effect.suspend(() =>
      connection.writableLength <= wsHighWater || connection.destroyed
        ? Effect.void
        : Effect.zipRight(Effect.sleep("20 millis"), room)
    )
    yield* Effect.scoped(Effect.gen(function*() {
      const socket = yield* request.upgrade
      const write = yield* socket.writer
      const scope = yield* Effect.scope
      const send = frames.pipe(
        Stream.runForEach((frame) => {
          const text = wsText(frame)
          return text === undefined ? Effect.void : Effect.zipRight(room, write(text))
        }),
        Effect.zipRight(live.stopping),
        Effect.flatMap((stopping) =>
          write(stopping ? new Socket.CloseEvent(1001, "grove serve stops") : new Socket.CloseEvent(1000, "session finished"))
        ),
        Effect.ignore,
        live.track
      )
      // the first frame goes once the socket is open: a write before `runRaw` would wait forever
      yield* socket.runRaw(() => Effect.void, { onOpen: Effect.asVoid(Effect.forkIn(send, scope)) }).pipe(
        Effect.catchAll(() => Effect.void)
      )
    }))
    return HttpServerResponse.empty()
  }).pipe(Effect.catchTag("RequestError", (e) => Effect.fail(new Api.ServerError({ message: `WebSocket upgrade failed: ${e.message}` }))))
