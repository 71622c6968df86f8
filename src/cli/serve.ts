/**
 * `grove serve`: the HTTP API over one repository's store (SPEC §9), with the live
 * events of its sessions (`server/Live.ts`).
 *
 * The server's modules (`Server.ts`, `@effect/platform`'s HttpApi, swagger-ui's
 * 2 MB) are loaded with a dynamic `import()` when the command runs, so that every
 * other command starts as fast as before (the bundle splits them into their own
 * chunk).
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { InvalidInput, Issue } from "../GroveError.js"
import * as Signals from "../internal/signals.js"
import { ApiSessions, layer as apiSessionsLayer } from "../server/sessions.js"
import * as Help from "./help.js"
import { locate } from "./store.js"
import { db, err, integer, onInvalid, out, repo, setExit, storeLayer, storeName } from "./shared.js"

/** grove's version (as `grove --version` prints it) */
const version = "0.1.0"

/** the port `grove serve` listens on unless told */
const defaultPort = 7707

/** how long the server may take to close before grove exits anyway */
const closeBound = Duration.seconds(2)

/**
 * How long to wait for the close when sessions started through the API run: the
 * longest kill grace period of theirs, plus `closeBound` (SPEC §9: within the grace
 * period + 3 s).
 */
const closeBoundWith = (running: ReadonlyArray<{ readonly killGrace: Duration.Duration }>) =>
  Duration.sum(running.reduce((longest, s) => Duration.max(longest, s.killGrace), Duration.zero), closeBound)

const serveOptions = {
  host: Options.text("host").pipe(
    Options.withPseudoName("H"),
    Options.withDefault("127.0.0.1"),
    Help.option({
      text: "The address to listen on; another than this machine's must be named.",
      default: "127.0.0.1",
      example: "--host 0.0.0.0"
    })
  ),
  port: integer("port").pipe(
    Options.withPseudoName("P"),
    Options.withDefault(defaultPort),
    Help.option({ text: "The TCP port; 0 picks a free one, printed on the first line.", default: String(defaultPort), example: "--port 0" })
  ),
  token: Options.text("token").pipe(
    Options.withPseudoName("T"),
    Options.optional,
    Help.option({
      text: "The token every request but /api/v1/health must carry.",
      default: "GROVE_TOKEN, else a random one printed in the login URL"
    })
  ),
  allowedHost: Options.text("allowed-host").pipe(
    Options.withPseudoName("H"),
    Options.repeated,
    Help.option({
      text: "Another name clients may use in the Host header, besides --host and the loopback names.",
      example: "--allowed-host ci-box.lan"
    })
  ),
  repo,
  db
}

const validate = (o: {
  readonly host: string
  readonly port: number
  readonly token: Option.Option<string>
  readonly allowedHost: ReadonlyArray<string>
}) => {
  const issues: Array<Issue> = []
  if (!Number.isSafeInteger(o.port) || o.port < 0 || o.port > 65535) {
    issues.push(new Issue({ where: "--port", message: `must be 0 to 65535, got ${o.port}` }))
  }
  if (o.host.trim() === "") issues.push(new Issue({ where: "--host", message: "must name an address, e.g. 127.0.0.1" }))
  for (const name of o.allowedHost) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d+)?$/.test(name)) {
      issues.push(new Issue({ where: `--allowed-host ${name}`, message: "expected a host name or address, optionally with :PORT" }))
    }
  }
  const given = Option.orElse(o.token, () => Option.fromNullable(process.env.GROVE_TOKEN).pipe(Option.filter((t) => t !== "")))
  const where = Option.isSome(o.token) ? "--token" : "GROVE_TOKEN"
  if (Option.isSome(given) && !/^[\x21-\x7e]+$/.test(given.value)) {
    issues.push(new Issue({ where, message: "the token must be printable ASCII without spaces" }))
  }
  return issues.length > 0
    ? Effect.fail(new InvalidInput({ issues: issues as [Issue, ...Array<Issue>] }))
    : Effect.succeed({ given, where })
}

/**
 * `grove serve [--host H] [--port P] [--token T] [--allowed-host H]... [--repo DIR] [--db FILE]`.
 *
 * @since 0.1.0
 * @category commands
 */
export const serve = Command.make("serve", serveOptions, (o) =>
  Effect.gen(function*() {
    const { given, where: tokenFrom } = yield* validate(o)
    const located = yield* locate(o)
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const Server = yield* Effect.promise(() => import("../Server.js"))
    const token = Option.match(given, { onNone: Server.makeToken, onSome: (t) => Redacted.make(t) })
    if (Option.isSome(given) && Redacted.value(token).length < 16) {
      yield* err(`grove: warning: the token from ${tokenFrom} is short (${Redacted.value(token).length} characters); anyone on this machine can try tokens against the port`)
    }
    const layer = Server.layer({
      host: o.host,
      port: o.port,
      token,
      allowedHosts: o.allowedHost,
      repo: located.repo,
      version
    }).pipe(
      // the sessions started through the API: they run in this process, in the server's scope
      Layer.provideMerge(apiSessionsLayer({ dbFile: located.dbFile })),
      Layer.provide(storeLayer(located.dbFile)),
      Layer.provide(Layer.succeedContext(Context.make(FileSystem.FileSystem, fs).pipe(Context.add(Path.Path, path))))
    )
    const scope = yield* Scope.make()
    const signals = yield* Signals.listen.pipe(Scope.extend(scope))
    const context = yield* Layer.buildWithScope(layer, scope).pipe(
      Effect.catchAll((e) => Effect.zipRight(Scope.close(scope, Exit.void), Effect.fail(e)))
    )
    const started = Context.get(context, HttpServer.HttpServer)
    const sessions = Context.get(context, ApiSessions)
    const base = Server.baseUrl(started.address)
    yield* out(
      Option.isNone(given)
        ? `grove serve ${Server.loginUrl(started.address, token)}`
        : `grove serve ${base}/  (log in with ${base}/login?token=<the token from ${tokenFrom}>)`
    )
    yield* err(
      `grove: serving ${storeName(located.dbFile)}${Option.isSome(located.repo) ? ` of ${located.repo.value.root}` : ""}: ` +
        `API ${base}/api/v1, explorer ${base}/docs; Ctrl-C stops`
    )
    if (o.host !== "127.0.0.1" && o.host !== "localhost" && o.host !== "::1") {
      yield* err(
        `grove: warning: listening on ${o.host}, not only this machine: clients must use one of the names ` +
          "127.0.0.1, localhost, --host or --allowed-host in their URL"
      )
    }
    const signal = yield* Queue.take(signals)
    // Sessions started through the API stop as grove run stops on a signal (the first: with
    // the grace period; a second skips it but still waits for their cleanup); closing the
    // scope stops them too, and waits for them to record their end and remove their worktrees.
    const running = yield* sessions.running
    if (running.length > 0) {
      yield* err(
        `grove: ${signal}: stopping ${running.length} session${running.length === 1 ? "" : "s"} started through the API ` +
          `(${running.map((s) => s.id).join(", ")}), terminating running tests (again to skip the grace period)`
      )
      yield* sessions.stopAll({ immediate: false })
    }
    // close within the bound (open requests get the server's drain); with no API session
    // running a second signal does not wait
    const closing = yield* Effect.fork(Scope.close(scope, Exit.void).pipe(Effect.disconnect))
    yield* Effect.raceFirst(
      Effect.timeout(closing.await, closeBoundWith(running)),
      Effect.flatMap(Queue.take(signals), (again) =>
        running.length === 0 ? Effect.void : Effect.gen(function*() {
          yield* err(`grove: ${again} again: killing the running tests of the API's sessions now, then cleaning up`)
          yield* sessions.stopAll({ immediate: true })
          yield* Effect.timeout(closing.await, closeBound)
        }))
    ).pipe(Effect.ignore)
    return Signals.exitCodeOf(signal)
  }).pipe(
    Effect.catchTag("ServeError", (e) =>
      Effect.fail(InvalidInput.one(
        "--port",
        `cannot listen on ${o.host}:${o.port}: ${e.cause instanceof Error ? e.cause.message : String(e.cause)}` +
          (String(e.cause).includes("EADDRINUSE") ? "; another process uses it: pick another --port, or 0 for a free one" : "")
      ))),
    onInvalid,
    Effect.flatMap(setExit)
  )).pipe(
    Help.command(serveOptions, {
      summary: "Serve the store over HTTP: browse, follow live, start, cancel.",
      description: "Binds 127.0.0.1 unless --host names another address; every request but /api/v1/health needs the token. " +
        "The dashboard is at / (open the login URL grove prints). A session's events, also of one a grove run in another process is running, stream live from " +
        "/api/v1/sessions/ID/events (Server-Sent Events) and /api/v1/sessions/ID/ws (WebSocket). " +
        "Sessions started through the API (POST /api/v1/sessions) run in this process: Ctrl-C stops them as it stops grove run.",
      examples: ["grove serve --port 0"]
    })
  )
