/**
 * grove on more than one machine, dynamically (SPEC §10): runners that join an
 * @effect/cluster whose runners and messages live in a PostgreSQL database, and the
 * Executor a coordinator (`grove run --cluster`) sends its attempts through.
 *
 * The protocol is one entity, `GroveAttempt`, addressed by hash of its id like every
 * cluster entity. An attempt goes to a runner with a free worker in two steps:
 *
 * 1. `Claim` (not persisted, answered at once): the runner that owns the id's shard
 *    reserves a free worker for it, or answers `Busy`. A busy answer sends the claim
 *    again under another id (a salt), which hashes to another shard — so the
 *    coordinator finds a free worker in about as many tries as there are runners,
 *    while never more attempts are in flight than the cluster has workers.
 * 2. `Run` (persisted, keyed by the id): the runner runs the attempt in a worktree of
 *    its own clone with the same Harness and deadline as a local run, and answers with
 *    what it saw. Persisted, it survives its runner: when a runner dies mid-attempt,
 *    its shards move to a survivor once their locks expire, and the message is
 *    delivered there — the attempt runs again with the same number (`Relocated`).
 *
 * The attempt's log then comes back with `Log` (a stream, not persisted) into the
 * coordinator's log folder. Messages never carry secret values: a runner takes them
 * from its own environment (SPEC §4).
 *
 * @since 0.3.0
 */
import * as ClusterRunner from "@effect/cluster/Runner"
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import type * as Sharding from "@effect/cluster/Sharding"
import type * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import * as Rpc from "@effect/rpc/Rpc"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as RcMap from "effect/RcMap"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { type GroveConfig, GroveConfigTag } from "./Config.js"
import { TestRequest } from "./Domain.js"
import { Git, type RepoInfo } from "./Git.js"
import { HarnessError } from "./GroveError.js"
import * as Harness from "./Harness.js"
import * as ProcessTree from "./internal/processTree.js"
import * as Runner from "./Runner.js"
import { Session } from "./Session.js"
import * as SessionModule from "./Session.js"
import { secretValues } from "./Store.js"
import * as WorktreePool from "./WorktreePool.js"

// -----------------------------------------------------------------------------
// protocol
// -----------------------------------------------------------------------------

/**
 * One attempt as it travels to a runner: the test with its secret values left out,
 * and what the coordinator's Config says of its run.
 *
 * @since 0.3.0
 * @category models
 */
export class RunPayload extends Schema.Class<RunPayload>("grove/RunPayload")({
  /** the entity id the attempt was claimed under: the message's primary key */
  id: Schema.String,
  session: Schema.String,
  /** the session's base commit: the runner's pool for the session starts there */
  baseSha: Schema.String,
  sha: Schema.String,
  test: TestRequest,
  n: Schema.Int,
  timeoutMs: Schema.Number,
  logCap: Schema.Number,
  tailBytes: Schema.Number,
  killGraceMs: Schema.Number
}) {}

/**
 * What a runner saw of an attempt. `error`: it could not run (no worktree, the commit
 * missing from the runner's clone, a Harness failure).
 *
 * @since 0.3.0
 * @category models
 */
export class RunResult extends Schema.Class<RunResult>("grove/RunResult")({
  /** the runner's name (`host:port`) */
  runner: Schema.String,
  /** `runner:path` of the worktree it ran in */
  worktree: Schema.String,
  timedOut: Schema.Boolean,
  exitCode: Schema.NullOr(Schema.Int),
  signal: Schema.NullOr(Schema.String),
  tail: Schema.String,
  bytes: Schema.Number,
  failedStep: Schema.optional(Schema.Int),
  error: Schema.optional(Schema.String)
}) {}

/**
 * A runner's answer to a claim.
 *
 * @since 0.3.0
 * @category models
 */
export const Claimed = Schema.Union(
  Schema.TaggedStruct("Claimed", { runner: Schema.String, slot: Schema.Int }),
  Schema.TaggedStruct("Busy", { runner: Schema.String })
)

/**
 * The entity every attempt is sent to.
 *
 * @since 0.3.0
 * @category entities
 */
export const GroveAttempt = Entity.make("GroveAttempt", [
  Rpc.make("Claim", { payload: { id: Schema.String }, success: Claimed }),
  Rpc.make("Run", { payload: RunPayload.fields, success: RunResult, primaryKey: (p) => p.id }).annotate(
    ClusterSchema.Persisted,
    true
  ),
  Rpc.make("Log", { payload: { id: Schema.String }, success: Schema.Uint8ArrayFromSelf, stream: true })
])

/**
 * The cluster's timings, the same on every runner and coordinator: a dead runner's
 * shards move to a survivor about 5 s after it died (the library's defaults take
 * ~35 s), messages are polled every second.
 *
 * @since 0.3.0
 * @category constructors
 */
export const sharding: Partial<ShardingConfig.ShardingConfig["Type"]> = {
  shardsPerGroup: 60,
  shardLockRefreshInterval: Duration.seconds(1),
  shardLockExpiration: Duration.seconds(4),
  refreshAssignmentsInterval: Duration.seconds(1),
  entityMessagePollInterval: Duration.seconds(1),
  entityReplyPollInterval: Duration.millis(50),
  runnerHealthCheckInterval: Duration.seconds(2),
  entityMaxIdleTime: Duration.seconds(30)
}

/** `claim`s wait this long for their Run before the reserved worker is free again */
const claimHold = Duration.seconds(30)

// -----------------------------------------------------------------------------
// runner
// -----------------------------------------------------------------------------

/**
 * @since 0.3.0
 * @category models
 */
export interface RunnerOptions {
  /** the runner's clone */
  readonly repo: RepoInfo
  /** the address other cluster members reach it at */
  readonly host: string
  readonly port: number
  /** the address it listens on, when not `host` (e.g. 0.0.0.0) */
  readonly listenHost?: string | undefined
  /** the runner's Config: its workers, worktree folder, keep patterns, setup */
  readonly config: GroveConfig
}

/** what a runner keeps of one coordinator's session: its facts here and its worktree pool */
interface SessionHere {
  readonly session: SessionModule.SessionInfo
  readonly pool: WorktreePool.WorktreePool["Type"]
  /** where its attempts' logs wait to be fetched */
  readonly logDir: string
}

/** a worker reserved by a claim, until its Run takes it or the hold runs out */
interface Reservation {
  readonly slot: number
  readonly expiry: Fiber.RuntimeFiber<void>
}

/**
 * The handlers of `GroveAttempt` on a runner: `workers` worker slots, one worktree
 * pool per coordinator session (closed a minute after its last attempt), attempts run
 * with the Harness under the deadline the coordinator gave; each attempt's log stays
 * here until the coordinator has fetched it. Made once per runner, in its scope: the
 * cluster builds an entity's handlers per entity id, so what the attempts share lives
 * here, not in them.
 */
const handlers = (options: RunnerOptions) =>
  Effect.gen(function*() {
    const { config, repo } = options
    const name = `${options.host}:${options.port}`
    const git = yield* Git
    const harness = yield* Harness.Harness
    const context = yield* Effect.context<Git | Harness.Harness>()
    const scope = yield* Effect.scope
    const free = yield* Queue.bounded<number>(config.workers)
    yield* Queue.offerAll(free, Array.from({ length: config.workers }, (_, i) => i + 1))
    // one sleeping fiber for every attempt's deadline on this runner
    const deadlines = yield* Harness.makeDeadlines
    const reservations = new Map<string, Reservation>()
    /** entity id → the log of the attempt run under it, until fetched */
    const logs = new Map<string, string>()

    const sessions = yield* RcMap.make({
      lookup: (key: string) =>
        Effect.gen(function*() {
          const [id, baseSha] = key.split(" ") as [string, string]
          const session = yield* SessionModule.make({ repo: repo.root, baseRef: baseSha, id })
          // the attempts' logs wait for the coordinator in a folder of this runner's, not in the
          // session's (a coordinator on this very clone writes there); when the session is done
          // here (after its pool) the folder goes, with logs never fetched (a coordinator that died)
          const logDir = Path.join(repo.commonDir, "grove", "runners", name.replace(/[^A-Za-z0-9._-]/g, "_"), id)
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              for (const entry of logs.keys()) if (entry.startsWith(`${id}/`)) logs.delete(entry)
              Fs.rmSync(logDir, { recursive: true, force: true })
            })
          )
          const pool = yield* Effect.map(
            Layer.build(WorktreePool.layer).pipe(Effect.provideService(Session, session)),
            Context.get(WorktreePool.WorktreePool)
          )
          return { session, pool, logDir } satisfies SessionHere
        }).pipe(Effect.provide(context), Effect.provideService(GroveConfigTag, config)),
      idleTimeToLive: Duration.minutes(1)
    })

    /** the worker a claim reserved for `id`, else the next free one (a Run delivered here after its runner died) */
    const takeSlot = (id: string) =>
      Effect.suspend(() => {
        const held = reservations.get(id)
        if (held === undefined) return Queue.take(free)
        reservations.delete(id)
        return Effect.as(Fiber.interrupt(held.expiry), held.slot)
      })

    const claim = (id: string) =>
      Effect.gen(function*() {
        const slot = yield* Queue.poll(free)
        if (Option.isNone(slot)) return { _tag: "Busy", runner: name } as const
        const expiry = yield* Effect.forkIn(
          Effect.zipRight(
            Effect.sleep(claimHold),
            Effect.suspend(() => reservations.delete(id) ? Queue.offer(free, slot.value) : Effect.void)
          ),
          scope
        )
        reservations.set(id, { slot: slot.value, expiry })
        return { _tag: "Claimed", runner: name, slot: slot.value } as const
      })

    const result = (fields: Partial<RunResult> & { readonly worktree: string }) =>
      new RunResult({ runner: name, timedOut: false, exitCode: null, signal: null, tail: "", bytes: 0, ...fields })

    const run = (p: RunPayload) =>
      Effect.gen(function*() {
        const slot = yield* Effect.acquireRelease(takeSlot(p.id), (slot) => Queue.offer(free, slot))
        const known = yield* git.resolveRef(repo, p.sha).pipe(Effect.option)
        if (Option.isNone(known)) {
          return result({
            worktree: "",
            error: `runner ${name}'s clone (${repo.root}) lacks commit ${p.sha.slice(0, 12)}: fetch it there (git fetch)`
          })
        }
        const here = yield* RcMap.get(sessions, `${p.session} ${p.baseSha}`).pipe(Effect.either)
        if (Either.isLeft(here)) return result({ worktree: "", error: `runner ${name}: ${here.left.message}` })
        const { logDir, pool, session } = here.right
        const borrowed = yield* pool.borrow(p.sha).pipe(Effect.either)
        if (Either.isLeft(borrowed)) return result({ worktree: "", error: `runner ${name}: ${borrowed.left.message}` })
        const wt = borrowed.right.path
        const request = p.test
        // the secret values are this runner's own (SPEC §4)
        const own = Object.fromEntries(
          request.secretEnv.flatMap((k) => {
            const value = process.env[k]
            return value === undefined ? [] : [[k, value] as const]
          })
        )
        const logPath = Runner.logPath({ ...session, dataDir: logDir }, request.id, p.n)
        const outcome = yield* Harness.runWithin(harness, {
          testId: request.id,
          attempt: p.n,
          attemptKey: `${p.session}.${slot}.${Crypto.randomUUID()}`,
          steps: request.steps,
          cwd: Path.join(wt, request.cwd ?? ""),
          env: {
            ...Runner.attemptEnv(config, p.session, { testId: request.id, n: p.n, slot, env: { ...request.env, ...own } }, wt),
            // what a successor at this address reaps, should this runner die (`reapPredecessor`)
            GROVE_RUNNER: name
          },
          secrets: secretValues(request, process.env),
          logPath,
          logCap: p.logCap,
          tailBytes: p.tailBytes,
          killGrace: Duration.millis(p.killGraceMs)
        }, Duration.millis(p.timeoutMs)).pipe(Effect.provideService(Harness.Deadlines, deadlines), Effect.either)
        logs.set(p.id, logPath)
        const worktree = `${name}:${wt}`
        if (Either.isLeft(outcome)) return result({ worktree, error: outcome.left.message })
        const o = outcome.right
        return result({
          worktree,
          timedOut: o._tag === "TimedOut",
          exitCode: o.exitCode,
          signal: o.signal,
          tail: o.tail,
          bytes: o.bytes,
          ...(o.failedStep === undefined ? {} : { failedStep: o.failedStep })
        })
      }).pipe(
        Effect.scoped,
        Effect.catchAllDefect((defect) => Effect.succeed(result({ worktree: "", error: `runner ${name}: ${String(defect)}` })))
      )

    /** the attempt's log, then it is gone from here */
    const log = (id: string): Stream.Stream<Uint8Array> => {
      const path = logs.get(id)
      if (path === undefined) return Stream.empty
      return Stream.fromAsyncIterable(Fs.createReadStream(path, { highWaterMark: 64 * 1024 }), () => undefined).pipe(
        Stream.map((chunk) => chunk as Uint8Array),
        Stream.catchAll(() => Stream.empty),
        Stream.ensuring(Effect.sync(() => {
          logs.delete(id)
          Fs.rmSync(path, { force: true })
        }))
      )
    }

    return GroveAttempt.of({
      Claim: (envelope) => claim(envelope.payload.id),
      Run: (envelope) => run(envelope.payload),
      Log: (envelope) => log(envelope.payload.id)
    })
  })

/** a runner's start can meet another's creating the cluster's tables: tried again a few times */
const joinRetries = Schedule.exponential(Duration.millis(250)).pipe(Schedule.intersect(Schedule.recurs(5)))

/**
 * `GroveAttempt` served by a runner of this machine, over any Sharding (a cluster
 * member's, or the cluster's in-memory `TestRunner` in tests).
 *
 * @since 0.3.0
 * @category layers
 */
export const layerEntity = (
  options: RunnerOptions
): Layer.Layer<never, never, Sharding.Sharding | Git | Harness.Harness> =>
  Layer.unwrapScoped(Effect.map(handlers(options), (served) => GroveAttempt.toLayer(served, { concurrency: "unbounded" })))

/**
 * A runner: joins the cluster at `host:port` with a weight of its worker count (so a
 * runner with twice the workers owns about twice the shards) and serves
 * `GroveAttempt`. (What a dead predecessor at this address left is the CLI's to reap
 * first: `reapPredecessor`.)
 *
 * @since 0.3.0
 * @category layers
 */
export const layerRunner = (
  options: RunnerOptions
): Layer.Layer<never, unknown, SqlClient.SqlClient | Git | Harness.Harness> =>
  layerEntity(options).pipe(
    Layer.provide(NodeClusterSocket.layer({
      storage: "sql",
      shardingConfig: {
        ...sharding,
        runnerAddress: Option.some(RunnerAddress.make(options.host, options.port)),
        runnerListenAddress: Option.some(RunnerAddress.make(options.listenHost ?? options.host, options.port)),
        runnerShardWeight: options.config.workers
      }
    })),
    Layer.catchAllCause((cause) => Layer.fail(Cause.squash(cause))),
    Layer.retry(joinRetries)
  )

/**
 * Ends what a runner that had this address on this machine left running when it
 * died: every process whose environment carries its `GROVE_RUNNER` (an attempt's
 * process tree, also what escaped its group). The number of processes found.
 *
 * @since 0.3.0
 * @category constructors
 */
export const reapPredecessor = (name: string, grace: Duration.DurationInput): Effect.Effect<number> =>
  Effect.gen(function*() {
    const entry = `GROVE_RUNNER=${name}`
    let found = 0
    while (true) {
      const first = ProcessTree.findByEnv(entry)[0]
      if (first === undefined) return found
      const done = yield* ProcessTree.terminate({ pgid: first.pid, startTime: first.startTime, envEntry: entry }, grace)
      if (done.found === 0) return found
      found += done.found
    }
  })

// -----------------------------------------------------------------------------
// coordinator
// -----------------------------------------------------------------------------

/**
 * The healthy runners of the cluster and their workers, from the cluster's own table
 * (a runner's weight is its worker count).
 *
 * @since 0.3.0
 * @category constructors
 */
export const runners: Effect.Effect<ReadonlyArray<{ readonly name: string; readonly workers: number }>, never, SqlClient.SqlClient> =
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly runner: string }>`SELECT runner FROM cluster_runners
      WHERE healthy AND last_heartbeat > NOW() - INTERVAL '10 seconds'`.pipe(
      Effect.catchAll(() => Effect.succeed([]))
    )
    return rows.flatMap((row) => {
      const decoded = Schema.decodeUnknownOption(Schema.parseJson(ClusterRunner.Runner))(row.runner)
      return Option.isSome(decoded)
        ? [{ name: `${decoded.value.address.host}:${decoded.value.address.port}`, workers: decoded.value.weight }]
        : []
    })
  })

/** what the coordinator sends of its Config with each attempt */
const payloadOf = (config: GroveConfig, session: SessionModule.SessionInfo, id: string, input: Runner.AttemptInput) => {
  const request = input.job.request
  // the plan's own secret values stay here: the runner takes its own
  const env = Object.fromEntries(Object.entries(request.env).filter(([k]) => !request.secretEnv.includes(k)))
  return new RunPayload({
    id,
    session: session.id,
    baseSha: session.baseSha,
    sha: input.job.sha,
    test: new TestRequest({ ...request, env }, { disableValidation: true }),
    n: input.n,
    timeoutMs: Duration.toMillis(input.job.timeout),
    logCap: config.logCap,
    tailBytes: config.tailBytes,
    killGraceMs: Duration.toMillis(config.killGrace)
  })
}

/** how long a stopped attempt waits for its interruption to reach its runner */
const interruptBound = Duration.seconds(10)

/** a claim that no runner answered in this long fails the attempt's preparation */
const claimTimeout = Duration.seconds(30)

/**
 * The coordinator's Executor: each attempt is claimed on a runner with a free worker,
 * run there, and its log fetched into this session's log folder.
 *
 * @since 0.3.0
 * @category constructors
 */
export const executor: Effect.Effect<
  Runner.Executor["Type"],
  never,
  Sharding.Sharding | Session | GroveConfigTag | Scope.Scope
> = Effect.gen(function*() {
  const client = yield* GroveAttempt.client
  const session = yield* Session
  const config = yield* GroveConfigTag
  const scope = yield* Effect.scope

  /**
   * A call to the cluster that, interrupted, waits at most `interruptBound` for the
   * interruption to reach the runner (it needs the cluster's database): a stop must
   * not hang when the database is gone. The call runs on in the executor's scope.
   */
  const bounded = <A, E>(call: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.forkIn(call, scope), (fiber) =>
        restore(Fiber.join(fiber)).pipe(
          Effect.onInterrupt(() => Fiber.interrupt(fiber).pipe(Effect.timeout(interruptBound), Effect.ignore))
        ))
    )

  /** claims under `base~salt` until a runner has a free worker; every few busy answers, a pause */
  const claim = (base: string) =>
    Effect.gen(function*() {
      for (let salt = 0;; salt++) {
        const id = `${base}~${salt}`
        const answer = yield* client(id).Claim({ id })
        if (answer._tag === "Claimed") return { id, runner: answer.runner, slot: answer.slot }
        if (salt % 4 === 3) yield* Effect.sleep(Duration.millis(50))
      }
    })

  return Runner.Executor.of({
    prepare: (job, slot) =>
      Effect.gen(function*() {
        const base = `${session.id}/${Crypto.createHash("sha256").update(job.request.id).digest("hex").slice(0, 16)}/${
          job.priorAttempts + job.attempts.length + 1
        }/${slot}`
        const claimed = yield* claim(base).pipe(
          Effect.timeoutFail({
            duration: claimTimeout,
            onTimeout: () => ({
              message: `no grove runner of the cluster took this attempt within ${Duration.format(claimTimeout)}: start one with \`grove runner --cluster URL\``
            })
          }),
          Effect.catchAllDefect((d) => Effect.fail({ message: `the cluster did not answer: ${String(d)}` })),
          Effect.catchAll((e) => Effect.fail({ message: "message" in e ? String(e.message) : String(e) }))
        )
        const started = `${claimed.runner}:w${claimed.slot}`
        return {
          worktree: started,
          keep: undefined,
          run: (input) =>
            Effect.gen(function*() {
              const r = yield* bounded(client(claimed.id).Run(payloadOf(config, session, claimed.id, input))).pipe(
                Effect.mapError((e) => new HarnessError({ reason: "Spawn", detail: `the cluster: ${e.message}` }))
              )
              yield* fetchLog(client(claimed.id).Log({ id: claimed.id }), input.logPath)
              if (r.error !== undefined) return yield* Effect.fail(new HarnessError({ reason: "Spawn", detail: r.error }))
              return {
                _tag: r.timedOut ? "TimedOut" : "Exited",
                exitCode: r.exitCode,
                signal: r.signal,
                tail: r.tail,
                bytes: r.bytes,
                failedStep: r.failedStep,
                worktree: r.worktree,
                relocated: r.runner === claimed.runner ? undefined : { from: started, to: r.worktree }
              } satisfies Runner.Ran
            })
        } satisfies Runner.Prepared
      })
  })
})

/**
 * The coordinator's Executor as a Layer over the session, for `Runner.RemoteExecutor`.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerExecutor: Layer.Layer<Runner.Executor, never, Sharding.Sharding | Session | GroveConfigTag> = Layer.scoped(
  Runner.Executor,
  executor
)

/**
 * Writes the runner's log of an attempt to `path` as it streams in; the file is made
 * with the first bytes (an attempt that never ran has no log, as on one machine).
 */
const fetchLog = (log: Stream.Stream<Uint8Array, unknown>, path: string): Effect.Effect<void> =>
  Effect.acquireUseRelease(
    Effect.sync(() => ({ fd: undefined as number | undefined })),
    (file) =>
      Stream.runForEach(log, (chunk) =>
        Effect.sync(() => {
          if (file.fd === undefined) {
            Fs.mkdirSync(Path.dirname(path), { recursive: true })
            file.fd = Fs.openSync(path, "w")
          }
          Fs.writeSync(file.fd, chunk)
        })),
    (file) => Effect.sync(() => file.fd === undefined ? undefined : Fs.closeSync(file.fd))
  ).pipe(
    Effect.catchAllCause((cause) =>
      Effect.logWarning(`grove: the log of an attempt did not arrive from its runner (${Cause.squash(cause)})`)
    )
  )

/**
 * The cluster's client for a coordinator: the Sharding of a client-only member over
 * the cluster's database.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerClient = NodeClusterSocket.layer({ storage: "sql", clientOnly: true, shardingConfig: sharding })
