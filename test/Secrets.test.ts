/**
 * SPEC §4 "Secrets", end to end through the BUILT binary (`npm run build` first):
 * values of `secretEnv` variables — one from grove's environment, one from the
 * plan's `env` — printed whole, split across writes, and inside a failure message,
 * appear in no view (piped stdout/stderr, a pseudo-terminal), no report (json,
 * junit, markdown, html, GITHUB_STEP_SUMMARY), no log, and not in the bytes of any
 * file grove leaves (the SQLite store and its -wal/-shm included).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { shellQuote } from "../src/Plan.js"
import { exec, groveEnv } from "./support/cli.js"
import { makeRepo } from "./support/repo.js"

const bin = NodePath.resolve(import.meta.dirname, "../dist/bin/grove.js")

/** from grove's environment */
const TOKEN = "gr0ve-S3cret-7f3a9c1e"
/** from the plan's env */
const PASSWORD = "hunter2-Pl4n-b6d0e5"
const secrets = [TOKEN, PASSWORD]

const plans: Record<string, string> = {
  "whole-and-split.md": [
    "---",
    "id: whole-and-split",
    "retries: 0",
    "secretEnv: [API_TOKEN]",
    "---",
    "# prints the token",
    "",
    "```bash",
    "echo \"token is $API_TOKEN\"",
    "```",
    "",
    "```bash",
    "printf '%s' \"${API_TOKEN:0:3}\"; sleep 0.2; printf '%s\\n' \"${API_TOKEN:3}\"",
    "```",
    "",
    "```bash",
    "# one byte per write",
    "for ((i = 0; i < ${#API_TOKEN}; i++)); do printf '%s' \"${API_TOKEN:i:1}\"; done; echo",
    "```",
    "",
    "```bash",
    "printf '%s' \"${API_TOKEN:0:4}\"  # the rest comes from the next step",
    "```",
    "",
    "```bash",
    "printf '%s\\n' \"${API_TOKEN:4}\"",
    "```",
    ""
  ].join("\n"),
  "refused.md": [
    "---",
    "id: refused",
    "retries: 1",
    "secretEnv: [API_TOKEN]",
    "---",
    "# fails with the token in its message",
    "",
    "```bash",
    "echo \"error: the server refused token $API_TOKEN (401)\" >&2",
    "exit 1",
    "```",
    ""
  ].join("\n"),
  "plan-secret.md": [
    "---",
    "id: plan-secret",
    "retries: 0",
    `env: { DB_PASSWORD: ${PASSWORD} }`,
    "secretEnv: [DB_PASSWORD]",
    "---",
    "# fails with the plan's password in its message",
    "",
    "```bash",
    "printf 'connecting with %s' \"${DB_PASSWORD:0:5}\"; sleep 0.2; printf '%s\\n' \"${DB_PASSWORD:5}\"",
    "echo \"fatal: password $DB_PASSWORD rejected\" >&2",
    "exit 2",
    "```",
    ""
  ].join("\n")
}

const leaks = (text: string | Uint8Array): ReadonlyArray<string> => {
  const buf = typeof text === "string" ? Buffer.from(text, "utf8") : Buffer.from(text)
  return secrets.filter((s) => buf.includes(Buffer.from(s, "utf8")))
}

/** every file under `dir`, recursively */
const filesUnder = (dir: string): ReadonlyArray<string> =>
  NodeFs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => NodePath.join(e.parentPath, e.name))

describe("secrets", () => {
  it.scopedLive("appear in no view, no report, no log and not in the store", () =>
    Effect.gen(function*() {
      if (!NodeFs.existsSync(bin)) return yield* Effect.die(new Error(`${bin} is missing: run \`npm run build\` first`))
      const fs = yield* FileSystem.FileSystem
      const repo = yield* makeRepo
      const plansDir = NodePath.join(repo.dir, "plans") // outside the repository: the plan file holds a secret on purpose
      const out = NodePath.join(repo.dir, "out")
      yield* fs.makeDirectory(plansDir)
      yield* fs.makeDirectory(out)
      for (const [name, text] of Object.entries(plans)) yield* fs.writeFileString(NodePath.join(plansDir, name), text)
      const stepSummary = NodePath.join(out, "step-summary.md")
      const env = groveEnv({ API_TOKEN: TOKEN, GITHUB_STEP_SUMMARY: stepSummary })
      const planArgs = Object.keys(plans).map((name) => NodePath.join(plansDir, name))
      const reports = (tag: string) =>
        ["json", "junit", "markdown", "html"].flatMap((kind) => ["--report", `${kind}:${NodePath.join(out, `${tag}.${kind}`)}`])

      // piped
      const piped = yield* exec(process.execPath, [bin, "run", ...planArgs, "--workers", "2", ...reports("piped")], { cwd: repo.root, env })
      assert.strictEqual(piped.code, 1, piped.stdout + piped.stderr)
      assert.deepStrictEqual(leaks(piped.stdout), [], "plain stdout")
      assert.deepStrictEqual(leaks(piped.stderr), [], "stderr")
      // the failure messages are there, masked
      assert.include(piped.stdout, "error: the server refused token *** (401)")
      assert.include(piped.stdout, "fatal: password *** rejected")

      // on a pseudo-terminal (the live view)
      const command = `stty cols 120 rows 40; exec ${[process.execPath, bin, "run", ...planArgs, "--workers", "2", ...reports("tty")].map(shellQuote).join(" ")}`
      const tty = yield* exec("script", ["-qfec", command, "/dev/null"], { cwd: repo.root, env })
      assert.strictEqual(tty.code, 1, tty.stdout)
      assert.include(tty.stdout, "\x1b[?25l", "not the live view")
      assert.deepStrictEqual(leaks(tty.stdout), [], "terminal")
      assert.include(tty.stdout, "refused token *** (401)")

      // reports of both runs and the step summary
      for (const tag of ["piped", "tty"]) {
        for (const kind of ["json", "junit", "markdown", "html"]) {
          const file = NodePath.join(out, `${tag}.${kind}`)
          const text = yield* fs.readFileString(file)
          assert.deepStrictEqual(leaks(text), [], file)
          assert.include(text, "***", `${file} holds no masked output: nothing was checked`)
        }
      }
      const summary = yield* fs.readFileString(stepSummary)
      assert.deepStrictEqual(leaks(summary), [], "GITHUB_STEP_SUMMARY")
      assert.include(summary, "***")

      // every file grove left: logs, the store and its -wal/-shm, worktrees if any
      const groveDir = NodePath.join(repo.commonDir, "grove")
      const files = filesUnder(repo.dir).filter((f) => !f.startsWith(plansDir + NodePath.sep))
      const logs = files.filter((f) => f.endsWith(".log"))
      // 2 runs × (1 + 2 + 1) attempts
      assert.strictEqual(logs.length, 8, logs.join("\n"))
      assert.isTrue(files.includes(NodePath.join(groveDir, "grove.db")))
      for (const file of files) assert.deepStrictEqual(leaks(NodeFs.readFileSync(file)), [], file)
      const log = (name: string) => logs.filter((f) => NodePath.basename(f).startsWith(name)).map((f) => NodeFs.readFileSync(f, "utf8"))
      for (const text of log("whole-and-split")) assert.strictEqual(text, "token is ***\n***\n***\n***\n")
      for (const text of log("refused")) assert.strictEqual(text, "error: the server refused token *** (401)\n")
      for (const text of log("plan-secret")) assert.strictEqual(text, "connecting with ***\nfatal: password *** rejected\n")
      // the store holds the masked output (so its bytes were worth searching)
      const store = Buffer.concat(files.filter((f) => f.startsWith(NodePath.join(groveDir, "grove.db"))).map((f) => NodeFs.readFileSync(f)))
      assert.isTrue(store.includes(Buffer.from("refused token *** (401)")), "the store has no tail")
    }).pipe(Effect.provide(NodeContext.layer)), 200_000)
})
