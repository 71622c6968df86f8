/**
 * `grove runner --cluster URL`: a runner of a cluster (SPEC §10), and what `grove run
 * --cluster URL` needs to send its attempts there. The cluster's modules
 * (@effect/cluster, pg) load only when a command names a cluster.
 *
 * @since 0.3.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Path from "@effect/platform/Path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import { Git } from "../Git.js"
import { InvalidInput, Issue } from "../GroveError.js"
import * as SqlUrl from "../internal/sqlUrl.js"
import * as Signals from "../internal/signals.js"
import * as Resume from "../Resume.js"
import type * as Runner from "../Runner.js"
import type { GroveConfigTag } from "../Config.js"
import type { Session } from "../Session.js"
import * as Help from "./help.js"
import { err, integer, loadConfig, onInvalid, repo, setExit } from "./shared.js"

/**
 * `--cluster URL` (or `GROVE_CLUSTER`): the PostgreSQL database of a cluster.
 *
 * @since 0.3.0
 */
const clusterOption = (text: string) =>
  Options.text("cluster").pipe(
    Options.withPseudoName("URL"),
    Options.optional,
    Options.map(Option.orElse(() => Option.fromNullable(process.env.GROVE_CLUSTER).pipe(Option.filter((v) => v !== "")))),
    Help.option({ text, default: "GROVE_CLUSTER", example: "--cluster postgres://ci@db.internal/grove" })
  )

/** `grove runner`'s */
const cluster = clusterOption(
  "The PostgreSQL database of a grove cluster (postgres://USER:PASSWORD@HOST:5432/DATABASE), where its " +
    "runners and messages live."
)

/**
 * `grove run`'s
 *
 * @since 0.3.0
 */
export const runCluster = clusterOption(
  "Send the attempts to the runners of the grove cluster in this PostgreSQL database (started with grove " +
    "runner --cluster URL), as many at once as they have workers; it is also the store unless --db names another."
)

/** the cluster's database client; a wrong URL or a refused connection is a clear error */
const sqlLayer = (url: string): Layer.Layer<SqlClient.SqlClient, InvalidInput> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    yield* SqlUrl.parseUrl(url).pipe(Effect.mapError((e) => InvalidInput.one("--cluster", e.message)))
    const { PgClient } = yield* Effect.promise(() => import("@effect/sql-pg"))
    return PgClient.layer({
      url: Redacted.make(url),
      connectTimeout: Duration.seconds(10),
      applicationName: "grove-cluster"
    }).pipe(
      Layer.catchAll((e) =>
        Layer.fail(InvalidInput.one(
          "--cluster",
          `could not connect to the cluster's database ${SqlUrl.redact(url)}: ${e.message}; check that PostgreSQL runs there ` +
            "and accepts this user and database"
        ))
      )
    )
  }))

/** how long the cluster's database may not answer before `grove run --cluster` gives up */
const lostAfter = Duration.seconds(30)

/** how long `grove run --cluster` waits for a first runner */
const runnerWait = Duration.seconds(30)

/**
 * What `grove run --cluster URL` runs its session with: the cluster's Executor (for
 * `Runner.RemoteExecutor`) and how many workers the cluster's runners have together.
 * Waits up to 30 s for a first runner; none is a clear error.
 *
 * @since 0.3.0
 */
export const coordinator = (url: string): Effect.Effect<
  {
    readonly workers: number
    readonly runners: ReadonlyArray<{ readonly name: string; readonly workers: number }>
    readonly executor: Layer.Layer<Runner.Executor, never, Session | GroveConfigTag>
    /**
     * completes, with what to tell the user, once the cluster's database has not answered
     * for `lostAfter`: the session cannot go on (its attempts' replies live there)
     */
    readonly lost: Effect.Effect<string>
  },
  InvalidInput,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const Cluster = yield* Effect.promise(() => import("../Cluster.js"))
    const sql = yield* Layer.build(sqlLayer(url))
    const found = yield* Cluster.runners.pipe(
      Effect.provide(sql),
      Effect.filterOrFail((runners) => runners.length > 0, () => "none"),
      Effect.retry(Schedule.spaced(Duration.seconds(1))),
      Effect.timeoutOption(runnerWait),
      Effect.orElseSucceed(() => Option.none())
    )
    if (Option.isNone(found) || found.value.length === 0) {
      return yield* Effect.fail(InvalidInput.one(
        "--cluster",
        `no grove runner has joined the cluster ${SqlUrl.redact(url)} within ${Duration.format(runnerWait)}: ` +
          "start one on each machine with `grove runner --cluster URL`"
      ))
    }
    const client = yield* Layer.build(Cluster.layerClient.pipe(Layer.provide(Layer.succeedContext(sql)))).pipe(
      Effect.mapError((e) => InvalidInput.one("--cluster", `could not join the cluster as its client: ${String(e)}`))
    )
    const answers = Effect.flatMap(SqlClient.SqlClient, (client) => client`SELECT 1`).pipe(
      Effect.provide(sql),
      Effect.timeout(Duration.seconds(5)),
      Effect.isSuccess
    )
    return {
      workers: found.value.reduce((sum, r) => sum + r.workers, 0),
      runners: found.value,
      executor: Cluster.layerExecutor.pipe(Layer.provide(Layer.succeedContext(client))),
      lost: Effect.gen(function*() {
        let since: number | undefined
        while (true) {
          yield* Effect.sleep(Duration.seconds(5))
          const now = yield* Clock.currentTimeMillis
          if (yield* answers) since = undefined
          else if (since === undefined) since = now
          else if (now - since >= Duration.toMillis(lostAfter)) {
            return `grove: the cluster's database ${SqlUrl.redact(url)} has not answered for ${Duration.format(lostAfter)}: ` +
              "stopping; the session can be finished later with grove run --resume SESSION --cluster URL"
          }
        }
      })
    }
  })

const runnerOptions = {
  cluster,
  workers: integer("workers").pipe(
    Options.withAlias("j"),
    Options.optional,
    Help.option({ text: "How many attempts this runner runs at once.", default: "GROVE_WORKERS, else the CPUs", example: "-j 4" })
  ),
  repo,
  listen: Options.text("listen").pipe(
    Options.withPseudoName("HOST:PORT"),
    Options.withDefault("127.0.0.1:7709"),
    Help.option({
      text: "Where the other members of the cluster reach this runner; use a name or address they can reach.",
      default: "127.0.0.1:7709",
      example: "--listen build-3.internal:7709"
    })
  )
}

const messageOf = (e: unknown): string => {
  const cause = (e as { readonly cause?: unknown }).cause
  return cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e)
}

/** whether nothing listens at `host:port` here */
const portFree = (host: string, port: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const server = Net.createServer()
    server.once("error", () => resume(Effect.succeed(false)))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resume(Effect.succeed(true))))
  })

/** `HOST:PORT` */
const parseListen = (text: string): { readonly host: string; readonly port: number } | undefined => {
  const match = /^(.+):(\d+)$/.exec(text)
  const port = Number(match?.[2])
  return match === null || !Number.isInteger(port) || port < 1 || port > 65535 ? undefined : { host: match[1]!, port }
}

/**
 * @since 0.3.0
 * @category commands
 */
export const runner = Command.make("runner", runnerOptions, (o) =>
  Effect.scoped(Effect.gen(function*() {
    const path = yield* Path.Path
    const git = yield* Git
    const issues: Array<Issue> = []
    if (Option.isNone(o.cluster)) {
      issues.push(new Issue({ where: "--cluster", message: "missing: name the cluster's PostgreSQL database (or set GROVE_CLUSTER)" }))
    }
    const listen = parseListen(o.listen)
    if (listen === undefined) issues.push(new Issue({ where: "--listen", message: `${JSON.stringify(o.listen)} is not HOST:PORT` }))
    const repoInfo = yield* git.repoInfo(path.resolve(o.repo)).pipe(
      Effect.catchAll((e) => Effect.sync(() => void issues.push(new Issue({ where: "--repo", message: `${path.resolve(o.repo)}: ${e.message}` }))))
    )
    const { config } = yield* loadConfig(repoInfo?.root, Option.isSome(o.workers) ? { workers: o.workers.value } : {}, issues)
    if (issues.length > 0 || repoInfo === undefined || listen === undefined || Option.isNone(o.cluster)) {
      return yield* Effect.fail(new InvalidInput({ issues: issues as [Issue, ...Array<Issue>] }))
    }
    const url = o.cluster.value
    // what a dead predecessor on this clone left: worktrees whose grove process is gone
    const reclaimed = yield* Resume.reclaim(repoInfo)
    if (reclaimed.removed.length > 0) {
      yield* err(`grove: removed ${reclaimed.removed.length} worktree(s) a stopped grove left in ${repoInfo.root}`)
    }
    const Cluster = yield* Effect.promise(() => import("../Cluster.js"))
    // a runner that still lives at this address keeps its port: then this one cannot join, and reaps nothing
    if (!(yield* portFree(listen.host, listen.port))) {
      return yield* Effect.fail(InvalidInput.one("--listen", `${o.listen} is in use (another runner?): pick another port`))
    }
    const reaped = yield* Cluster.reapPredecessor(`${listen.host}:${listen.port}`, config.killGrace)
    if (reaped > 0) {
      yield* err(`grove: ended ${reaped} process(es) a stopped runner at ${listen.host}:${listen.port} left running`)
    }
    const signals = yield* Signals.listen
    const joined = Cluster.layerRunner({ repo: repoInfo, host: listen.host, port: listen.port, config }).pipe(
      Layer.provide(sqlLayer(url)),
      Layer.tap(() =>
        err(
          `grove runner ${listen.host}:${listen.port}: ${config.workers} worker${config.workers === 1 ? "" : "s"} ` +
            `on ${repoInfo.root}, cluster ${SqlUrl.redact(url)}; Ctrl-C stops`
        )
      )
    )
    // runs until a signal; closing the layer leaves the cluster (its shards go to the others)
    const signal = yield* Effect.raceFirst(
      Layer.launch(joined).pipe(
        Effect.mapError((e) =>
          e instanceof InvalidInput ? e : InvalidInput.one("--listen", `could not join the cluster at ${o.listen}: ${messageOf(e)}`)
        )
      ),
      Queue.take(signals)
    )
    yield* err(`grove runner: ${signal}: stopping; attempts still running here finish first (up to 15 s), the rest go to other runners`)
    return Signals.exitCodeOf(signal)
  })).pipe(onInvalid, Effect.flatMap(setExit))).pipe(
    Help.command(runnerOptions, {
      summary: "Run the attempts of grove run --cluster in this clone's worktrees.",
      description: "Keeps a worktree pool in the clone at --repo and runs attempts with the same harness as a local run. " +
        "Secret values come from this runner's own environment. Runs until stopped.",
      examples: ["grove runner --cluster postgres://ci@db.internal/grove --listen build-3.internal:7709 -j 4"]
    })
  )
