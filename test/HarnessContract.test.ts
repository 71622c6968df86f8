/**
 * The real Harness and the scripted fake pass the same contract (test/HarnessSuite.ts).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import { Step } from "../src/Domain.js"
import * as Harness from "../src/Harness.js"
import * as ProcessTree from "../src/internal/processTree.js"
import { type ProgramStep, suite } from "./HarnessSuite.js"

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "grove-contract-" }))
  .pipe(Effect.provide(NodeFileSystem.layer), Effect.orDie)

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/** a program step as a bash step */
const bash = (step: ProgramStep): Step =>
  new Step({
    shell: "bash",
    script: step._tag === "Print"
      ? `printf '%s' ${shellQuote(step.text)}`
      : step._tag === "PrintEnv"
      ? `printf '%s' "$${step.name}"`
      : step._tag === "Exit"
      ? `exit ${step.code}`
      : "sleep 1000"
  })

suite("the real Harness (processes)", {
  layer: Harness.layerShell,
  prepare: (_, program) => Effect.succeed(program.map(bash)),
  workDir: tempDir,
  log: (spec) => Effect.sync(() => Fs.readFileSync(spec.logPath, "utf8")),
  alive: (spec) => Effect.sync(() => ProcessTree.findByEnv(`GROVE_ATTEMPT_ID=${spec.attemptKey}`).length > 0)
})

/** the fake's script: the registered program's answer, as a Scripted */
const programs = new Map<string, ReadonlyArray<ProgramStep>>()
const script: Harness.Script = (spec) =>
  Effect.sync(() => {
    let output = ""
    const program = programs.get(spec.testId) ?? []
    for (const [i, step] of program.entries()) {
      switch (step._tag) {
        case "Print":
          output += step.text
          break
        case "PrintEnv":
          output += spec.env[step.name] ?? ""
          break
        case "Exit":
          if (step.code !== 0) return { exitCode: step.code, failedStep: i, output }
          break
        case "Hang":
          return { exitCode: 0, durationMs: Number.POSITIVE_INFINITY, failedStep: i, output }
      }
    }
    return { exitCode: 0, output }
  })
const memory = Effect.runSync(Harness.makeMemory(script))
const runOf = (spec: Harness.AttemptSpec) =>
  Effect.map(memory.control.runs, (runs) => runs.find((r) => r.spec.attemptKey === spec.attemptKey))

suite("the scripted fake (Harness.layerMemory)", {
  layer: Layer.succeed(Harness.Harness, memory.harness),
  prepare: (testId, program) =>
    Effect.sync(() => {
      programs.set(testId, program)
      return program.map((step) => new Step({ shell: "bash", script: step._tag }))
    }),
  workDir: Effect.succeed("/nowhere"),
  log: (spec) => Effect.map(runOf(spec), (r) => r?.log ?? ""),
  alive: (spec) => Effect.map(runOf(spec), (r) => r !== undefined && r.endedAt === undefined)
})
