/**
 * What the engine benchmarks (B1, B6, B8) share: the instant Harness, the in-memory
 * repository they run on, and a test that runs `true`.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Domain from "../src/Domain.js"
import type * as Git from "../src/Git.js"
import * as Harness from "../src/Harness.js"

/**
 * The instant harness: every attempt passes at once with no output. It reports a
 * spawn (as the real harness does, so the store writes AttemptSpawned) with a pgid
 * above any Linux pid, like the scripted fake; unlike the fake it records nothing.
 * `onSpawn` runs at each spawn (B1's memory sampler).
 */
export const instantHarness = (onSpawn: () => void = () => {}): Layer.Layer<Harness.Harness> =>
  Layer.sync(Harness.Harness, () => {
    let n = 0
    const outcome: Harness.AttemptOutcome = { _tag: "Exited", exitCode: 0, signal: null, failedStep: undefined, tail: "", bytes: 0 }
    const spawned: Harness.Spawned = { exited: Effect.succeed(outcome), stop: Effect.succeed(outcome) }
    return Harness.Harness.of({
      spawn: (spec) => {
        onSpawn()
        return spec.onSpawn === undefined
          ? Effect.succeed(spawned)
          : Effect.as(spec.onSpawn({ pgid: Harness.memoryPgidBase + n++, startTime: "bench" }), spawned)
      }
    })
  })

/** the repository the engine benchmarks run on (in-memory Git) */
export const memoryRepo: Git.MemoryRepo = { root: "/repo", refs: { main: "c0ffee1" }, files: { c0ffee1: { "README.md": "bench" } } }

/** a test whose one step runs `true` */
export const trueTest = (id: string, name: string, options: { readonly source?: string; readonly shell?: "sh" | "bash" } = {}) =>
  new Domain.TestRequest({
    id: Domain.TestId.make(id),
    name,
    source: options.source ?? "bench",
    steps: [new Domain.Step({ shell: options.shell ?? "sh", script: "true" })],
    priority: 0,
    tags: [],
    env: {},
    secretEnv: [],
    resources: []
  })
