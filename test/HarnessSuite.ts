/**
 * The contract every `Harness` keeps, the real one (processes) and the scripted fake
 * alike (as `StoreSuite` is for the stores): `suite(name, implementation)` runs it.
 *
 * An attempt is described as a program of abstract steps (print, print a variable,
 * exit, hang); each implementation turns it into what it runs — bash steps for the
 * real Harness, a `Scripted` answer for the fake. What the contract checks is what
 * the Runner relies on: exit codes and the failing step, output bytes, the tail and
 * the log cap, secrets masked, the GROVE_* environment, a deadline that stops the
 * attempt with what it showed, and interruption ending it. Process-tree kills and
 * escapees are the real Harness's own tests (test/Harness.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { Step } from "../src/Domain.js"
import * as Harness from "../src/Harness.js"

/** one step of an attempt's program */
export type ProgramStep =
  | { readonly _tag: "Print"; readonly text: string }
  | { readonly _tag: "PrintEnv"; readonly name: string }
  | { readonly _tag: "Exit"; readonly code: number }
  | { readonly _tag: "Hang" }

export const Print = (text: string): ProgramStep => ({ _tag: "Print", text })
export const PrintEnv = (name: string): ProgramStep => ({ _tag: "PrintEnv", name })
export const Exit = (code: number): ProgramStep => ({ _tag: "Exit", code })
export const Hang: ProgramStep = { _tag: "Hang" }

/** a Harness and how to drive and observe it */
export interface Implementation {
  readonly layer: Layer.Layer<Harness.Harness>
  /**
   * the steps of an attempt of test `testId` that runs `program`, one Step per
   * program step (registers the program where the implementation needs it)
   */
  readonly prepare: (testId: string, program: ReadonlyArray<ProgramStep>) => Effect.Effect<ReadonlyArray<Step>>
  /** a folder attempts may run in, with room for their logs */
  readonly workDir: Effect.Effect<string, never, Scope.Scope>
  /** what the attempt wrote to its log */
  readonly log: (spec: Harness.AttemptSpec) => Effect.Effect<string, never, Harness.Harness>
  /** whether anything of the attempt still runs */
  readonly alive: (spec: Harness.AttemptSpec) => Effect.Effect<boolean, never, Harness.Harness>
}

let counter = 0

export const suite = (name: string, impl: Implementation): void => {
  describe(`Harness contract: ${name}`, () => {
    const spec = (program: ReadonlyArray<ProgramStep>, over: Partial<Harness.AttemptSpec> = {}) =>
      Effect.gen(function*() {
        const dir = yield* impl.workDir
        const testId = `contract-${++counter}`
        const steps = yield* impl.prepare(testId, program)
        return {
          testId,
          attempt: 1,
          attemptKey: `contract-${process.pid}-${counter}-${Math.random().toString(36).slice(2)}`,
          steps: steps as [Step, ...Array<Step>],
          cwd: dir,
          env: { GROVE_TEST_ID: testId },
          secrets: [],
          logPath: `${dir}/logs/${testId}.1.log`,
          logCap: 1_000_000,
          tailBytes: 4096,
          killGrace: Duration.millis(500),
          ...over
        } satisfies Harness.AttemptSpec
      })
    const run = (s: Harness.AttemptSpec, timeout: Duration.DurationInput = "30 seconds") =>
      Effect.flatMap(Harness.Harness, (h) => Harness.runWithin(h, s, Duration.decode(timeout)))
    const test = (title: string, body: Effect.Effect<void, unknown, Harness.Harness | Scope.Scope>) =>
      it.scopedLive(title, () => body.pipe(Effect.provide(impl.layer)), 30_000)

    test(
      "steps run in order; all passing exits 0 with what they printed",
      Effect.gen(function*() {
        const s = yield* spec([Print("one\n"), Print("two\n")])
        const outcome = yield* run(s)
        assert.deepStrictEqual(
          { ...outcome },
          { _tag: "Exited", exitCode: 0, signal: null, failedStep: undefined, tail: "one\ntwo\n", bytes: 8 }
        )
        assert.strictEqual(yield* impl.log(s), "one\ntwo\n")
      })
    )

    test(
      "the first failing step ends the attempt with its code and index; later steps do not run",
      Effect.gen(function*() {
        const s = yield* spec([Print("before\n"), Exit(3), Print("never\n")])
        const outcome = yield* run(s)
        assert.strictEqual(outcome._tag, "Exited")
        assert.strictEqual(outcome.exitCode, 3)
        assert.strictEqual(outcome.failedStep, 1)
        assert.strictEqual(outcome.tail, "before\n")
      })
    )

    test(
      "the tail keeps the last tailBytes; bytes counts all of them",
      Effect.gen(function*() {
        const s = yield* spec([Print("x".repeat(90) + "0123456789")], { tailBytes: 10 })
        const outcome = yield* run(s)
        assert.strictEqual(outcome.tail, "0123456789")
        assert.strictEqual(outcome.bytes, 100)
      })
    )

    test(
      "the log keeps logCap bytes and says how many more were dropped",
      Effect.gen(function*() {
        const s = yield* spec([Print("a".repeat(100))], { logCap: 30 })
        const outcome = yield* run(s)
        assert.strictEqual(outcome.bytes, 100)
        assert.strictEqual(yield* impl.log(s), "a".repeat(30) + Harness.droppedMarker(30, 70))
      })
    )

    test(
      "secret values are masked in the tail and the log",
      Effect.gen(function*() {
        const s = yield* spec([Print("token=hunter2-secret!\n")], { secrets: ["hunter2-secret"] })
        const outcome = yield* run(s)
        assert.strictEqual(outcome.tail, "token=***!\n")
        assert.strictEqual(yield* impl.log(s), "token=***!\n")
      })
    )

    test(
      "the steps see the attempt's environment (GROVE_* variables)",
      Effect.gen(function*() {
        const s0 = yield* spec([PrintEnv("GROVE_TEST_ID"), PrintEnv("GROVE_WORKER")])
        const s = { ...s0, env: { ...s0.env, GROVE_WORKER: "7" } }
        const outcome = yield* run(s)
        assert.strictEqual(outcome.tail, `${s.testId}7`)
      })
    )

    test(
      "a deadline stops the attempt: TimedOut with its tail and the step that was running, nothing left",
      Effect.gen(function*() {
        const s = yield* spec([Print("started\n"), Hang, Print("never\n")])
        const outcome = yield* run(s, "300 millis")
        assert.strictEqual(outcome._tag, "TimedOut")
        assert.strictEqual(outcome.exitCode, null)
        assert.strictEqual(outcome.failedStep, 1)
        assert.strictEqual(outcome.tail, "started\n")
        assert.isFalse(yield* impl.alive(s))
      })
    )

    test(
      "interrupting the attempt ends it: nothing of it runs afterwards",
      Effect.gen(function*() {
        const s = yield* spec([Hang])
        const fiber = yield* Effect.fork(run(s))
        yield* Effect.sleep("200 millis")
        assert.isTrue(yield* impl.alive(s), "it runs before the interruption")
        yield* Fiber.interrupt(fiber)
        assert.isFalse(yield* impl.alive(s))
      })
    )
  })
}
