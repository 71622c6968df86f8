/**
 * The whole of grove wired in memory: the in-memory Git, the scripted Harness and
 * the in-memory Store around the real Orchestrator, queue, scheduler and runners.
 * Everything runs on Effect's Clock, so tests drive it with TestClock.
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as Config from "./Config.js"
import * as Git from "./Git.js"
import type { GitError, InvalidInput } from "./GroveError.js"
import * as Harness from "./Harness.js"
import * as Orchestrator from "./Orchestrator.js"
import type { Session } from "./Session.js"
import * as Store from "./Store.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** what each attempt does; default: every attempt passes at once */
  readonly script?: Harness.Script
  readonly config?: Partial<Config.GroveConfig>
  /** default: `/repo` with refs main → "c0ffee1", feature → "c0ffee2" */
  readonly repo?: Git.MemoryRepo
  readonly baseRef?: string
  /** default: a fresh in-memory store */
  readonly store?: Layer.Layer<Store.Store>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const defaultRepo: Git.MemoryRepo = {
  root: "/repo",
  refs: { main: "c0ffee1", feature: "c0ffee2" },
  files: { c0ffee1: { "README.md": "main" }, c0ffee2: { "README.md": "feature" } }
}

/**
 * An Orchestrator session in memory, with the control handles of the fakes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<
  Orchestrator.Orchestrator | Session | Git.Git | Git.GitMemory | Harness.Harness | Harness.HarnessMemory | Store.Store,
  GitError | InvalidInput
> =>
  Orchestrator.layerSession({ repo: (options.repo ?? defaultRepo).root, baseRef: options.baseRef ?? "main" }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        Config.layer({ seed: "grove", ...options.config }),
        Git.layerMemory({ repos: [options.repo ?? defaultRepo] }),
        Harness.layerMemory(options.script ?? Harness.scriptTable({})),
        options.store ?? Store.layerMemory
      )
    )
  )
