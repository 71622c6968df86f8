/**
 * The sessions `grove serve` runs itself (started through its API): each is one
 * Orchestrator scope inside a fiber of this service's scope, so that they belong to
 * the server: when the server's scope closes (a signal to `grove serve`), each is
 * stopped as `grove run` stops on a signal — no test starts any more, running attempts
 * get the kill grace period, the session ends INTERRUPTED — and the close waits until
 * each has recorded its end and removed its worktrees.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Config from "../Config.js"
import type { TestRequest } from "../Domain.js"
import * as Git from "../Git.js"
import type { GitError, InvalidInput } from "../GroveError.js"
import * as Harness from "../Harness.js"
import * as Orchestrator from "../Orchestrator.js"
import { Store } from "../Store.js"

/**
 * What a session started through the API runs.
 *
 * @since 0.2.0
 * @category models
 */
export interface Work {
  readonly repo: Git.RepoInfo
  readonly config: Config.GroveConfig
  readonly tests: ReadonlyArray<TestRequest>
  /** a re-run: the session it runs the tests of again, recorded in its stored config as `rerunOf` */
  readonly rerunOf?: string | undefined
}

/**
 * A session this server runs.
 *
 * @since 0.2.0
 * @category models
 */
export interface Running {
  readonly id: string
  /** its kill grace period: how long a graceful stop may take */
  readonly killGrace: Duration.Duration
}

/**
 * @since 0.2.0
 * @category tags
 */
export class ApiSessions extends Context.Tag("grove/server/ApiSessions")<ApiSessions, {
  /** the store file the server serves (what `grove run` would be given as --db) */
  readonly dbFile: string
  /**
   * Starts a session in the background and returns once it is recorded in the
   * store (its id is then readable by every endpoint).
   */
  readonly start: (work: Work) => Effect.Effect<Orchestrator.Orchestrator["Type"]["session"], GitError | InvalidInput>
  /**
   * Stops a session of this server's (false when it runs none by that id): as
   * `grove run`'s first signal, or its second with `immediate`.
   */
  readonly cancel: (id: string, options: { readonly immediate: boolean }) => Effect.Effect<boolean>
  /** stops every session of this server's */
  readonly stopAll: (options: { readonly immediate: boolean }) => Effect.Effect<void>
  /** the sessions this server runs now */
  readonly running: Effect.Effect<ReadonlyArray<Running>>
}>() {}

/**
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  options: { readonly dbFile: string }
): Effect.Effect<ApiSessions["Type"], never, Store | Git.Git | Harness.Harness | Scope.Scope> =>
  Effect.gen(function*() {
    // the server's Git, Harness and store: each session runs on them
    const services = yield* Effect.context<Store | Git.Git | Harness.Harness>()
    const scope = yield* Effect.scope
    // the sessions' fibers live in a scope of their own, closed after the finalizer below
    // has stopped them and waited for them (a finalizer added later runs first)
    const fibers = yield* FiberSet.make<void, never>().pipe(
      Scope.extend(yield* Scope.fork(scope, ExecutionStrategy.sequential))
    )
    const live = new Map<string, { readonly orchestrator: Orchestrator.Orchestrator["Type"]; readonly killGrace: Duration.Duration }>()

    const stopAll = (stop: { readonly immediate: boolean }) =>
      Effect.forEach([...live.values()], (s) => s.orchestrator.stop({ interrupted: true, immediate: stop.immediate }), {
        discard: true
      })

    yield* Effect.addFinalizer(() => Effect.zipRight(stopAll({ immediate: false }), FiberSet.awaitEmpty(fibers)))

    const start = (work: Work) =>
      Effect.gen(function*() {
        const ready = yield* Deferred.make<Orchestrator.Orchestrator["Type"], GitError | InvalidInput>()
        // a re-run names the session it came from in its SessionStarted event
        const session = Orchestrator.layerSession({ repo: work.repo.root, baseRef: "HEAD", rerunOf: work.rerunOf }).pipe(
          Layer.provide(Layer.merge(Config.layer(work.config), Layer.succeedContext(services)))
        )
        // known once the session is recorded; forgotten once its scope has closed (its end recorded)
        let id: string | undefined
        const run = Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(session)
          const orchestrator = Context.get(context, Orchestrator.Orchestrator)
          id = orchestrator.session.id
          live.set(id, { orchestrator, killGrace: work.config.killGrace })
          yield* Deferred.succeed(ready, orchestrator)
          yield* orchestrator.submitBatch(work.tests).pipe(
            Effect.catchAll((e) => Effect.logWarning(`grove serve: session ${id} could not queue its tests: ${e.message}`))
          )
          yield* orchestrator.awaitIdle
        })).pipe(
          Effect.ensuring(Effect.sync(() => id !== undefined && live.delete(id))),
          Effect.onExit((exit) => Exit.isFailure(exit) ? Deferred.failCause(ready, exit.cause) : Effect.void),
          Effect.catchAllCause((cause) => Effect.logError("grove serve: an API-started session failed", cause))
        )
        yield* FiberSet.run(fibers, run)
        return (yield* Deferred.await(ready)).session
      })

    return ApiSessions.of({
      dbFile: options.dbFile,
      start,
      cancel: (id, { immediate }) =>
        Effect.suspend(() => {
          const session = live.get(id)
          return session === undefined
            ? Effect.succeed(false)
            : Effect.as(session.orchestrator.stop({ interrupted: true, immediate }), true)
        }),
      stopAll,
      running: Effect.sync(() => [...live].map(([id, s]) => ({ id, killGrace: s.killGrace })))
    })
  })

/**
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: { readonly dbFile: string }): Layer.Layer<ApiSessions, never, Store | Git.Git | Harness.Harness> =>
  Layer.scoped(ApiSessions, make(options))
