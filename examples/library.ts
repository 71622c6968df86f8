/**
 * grove as a library: compose the Orchestrator with its Layers and run a few tests
 * on a throwaway repository. Run it with `npx vite-node examples/library-main.ts`.
 *
 * One Orchestrator scope is one session: the worktrees exist while the scope is
 * open and are removed when it closes, however it closes.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Config, Domain, Git, Harness, Orchestrator, Store } from "../src/index.js"

/** a throwaway repository with one commit */
export const makeThrowawayRepo = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-example-"))
    const repo = Path.join(dir, "shop")
    Fs.mkdirSync(repo)
    Fs.writeFileSync(Path.join(repo, "prices.txt"), "3\n4\n")
    const git = (...args: Array<string>) =>
      execFileSync("git", ["-c", "user.name=example", "-c", "user.email=example@example.invalid", ...args], { cwd: repo, stdio: "ignore" })
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "shop")
    return { dir, repo }
  }),
  ({ dir }) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const step = (script: string) => new Domain.Step({ shell: "bash", script })

/** the tests: plain values, checked by their Schema */
export const tests = [
  new Domain.TestRequest({
    id: Domain.TestId.make("sum"),
    name: "prices add up",
    source: "examples/library.ts",
    steps: [step("test $(( $(paste -sd+ prices.txt) )) = 7")]
  }),
  new Domain.TestRequest({
    id: Domain.TestId.make("scratch"),
    name: "a test may write anywhere in its worktree",
    source: "examples/library.ts",
    steps: [step("echo scratch > scratch.txt"), step("test -f scratch.txt")]
  }),
  new Domain.TestRequest({
    id: Domain.TestId.make("slow"),
    name: "times out",
    source: "examples/library.ts",
    steps: [step("sleep 30")],
    timeout: Duration.seconds(1),
    retries: 0
  })
]

/** one session: prints events as they come and returns the report */
export const program = Effect.gen(function*() {
  const { repo } = yield* makeThrowawayRepo
  const session = Orchestrator.layerSession({ repo }).pipe(
    Layer.provide(Layer.mergeAll(
      Config.layer({ workers: 2, killGrace: Duration.millis(500) }),
      Git.layer,
      Harness.layerShell,
      Store.layerMemory
    ))
  )
  return yield* Effect.scoped(Effect.gen(function*() {
    const orchestrator = yield* Orchestrator.Orchestrator
    yield* orchestrator.events.pipe(
      Stream.runForEach(({ event }) =>
        event._tag === "TestFinished" ? Effect.log(`${event.result.status} ${event.result.id}`) : Effect.void
      ),
      Effect.forkScoped
    )
    return yield* orchestrator.runTests(tests)
  })).pipe(Effect.provide(session))
}).pipe(Effect.scoped, Effect.provide(NodeContext.layer))
