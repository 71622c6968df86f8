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
import { Events, TestRequest } from "../src/Domain.js"
import * as Plan from "../src/Plan.js"
import { shellQuote } from "../src/Plan.js"
import * as SqlStore from "../src/SqlStore.js"
import { Store } from "../src/Store.js"
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

/**
 * A session left RUNNING by a grove that died (its pid is gone), as that grove would
 * have stored it: the requests masked by a store that knew grove's environment.
 */
const deadSession = (dbFile: string, repoRoot: string, sha: string, sessionId: string, tests: ReadonlyArray<TestRequest>) =>
  Effect.flatMap(Store, (store) =>
    Effect.gen(function*() {
      yield* store.record(
        sessionId,
        Events.SessionStarted({ sessionId, baseRef: "main", baseSha: sha, workers: 1, startedAt: Date.now() }),
        { meta: { repoRoot, pid: 99_999_999, config: "{}" } }
      )
      for (const test of tests) yield* store.record(sessionId, Events.TestQueued({ test, sha, refName: "main", expectedMs: undefined }))
      const pending = yield* store.pending(sessionId)
      // so the resume below has something to refuse or re-read
      assert.deepStrictEqual(pending.map((p) => [p.request.id, p.masked]), tests.map((t) => [t.id, ["API_TOKEN"]]))
    })).pipe(Effect.provide(SqlStore.layer({ filename: dbFile, environment: { API_TOKEN: TOKEN } })))

describe("secrets and --resume", () => {
  it.scopedLive("a test whose stored script had a secret masked runs from its plan re-read, or is refused: never with ***", () =>
    Effect.gen(function*() {
      if (!NodeFs.existsSync(bin)) return yield* Effect.die(new Error(`${bin} is missing: run \`npm run build\` first`))
      const fs = yield* FileSystem.FileSystem
      const repo = yield* makeRepo
      const dbFile = NodePath.join(repo.commonDir, "grove", "grove.db")
      const ran = NodePath.join(repo.dir, "ran")
      // passes only with the token's value in its script, not ***
      const script = `echo "$GROVE_TEST_ID" >> ${ran}; [ "$API_TOKEN" = "${TOKEN}" ]`
      yield* fs.makeDirectory(NodePath.join(repo.root, "plans"))
      const planText = (id: string) => ["---", `id: ${id}`, "retries: 0", "secretEnv: [API_TOKEN]", "---", "# checks the token", "", "```bash", script, "```", ""].join("\n")
      yield* fs.writeFileString(NodePath.join(repo.root, "plans", "deploy.md"), planText("deploy"))
      yield* fs.writeFileString(NodePath.join(repo.root, "plans", "gone.md"), planText("gone"))
      const loaded = yield* Plan.load(["plans/deploy.md", "plans/gone.md"], { repoRoot: repo.root, cwd: repo.root })
      const [deploy, gone] = loaded.map((p) => p.request) as [TestRequest, TestRequest]
      assert.strictEqual(deploy.source, "plans/deploy.md")
      const each = Plan.fromEach(`${script} # {}`, ["x"])
      assert.isTrue(each._tag === "Right")
      // the CLI gives --each tests no secretEnv (yet); a library user's may have one
      const eachTest = new TestRequest({ ...(each as { right: ReadonlyArray<TestRequest> }).right[0]!, secretEnv: ["API_TOKEN"] })

      yield* deadSession(dbFile, repo.root, repo.second, "20260101-0000-rrd1", [deploy])
      yield* deadSession(dbFile, repo.root, repo.second, "20260101-0000-rrd2", [eachTest, gone])
      yield* fs.remove(NodePath.join(repo.root, "plans", "gone.md"))
      const env = groveEnv({ API_TOKEN: TOKEN })

      // the plan is still there: read again, the test passes with the real token
      const report = NodePath.join(repo.dir, "resumed.json")
      const resumed = yield* exec(process.execPath, [bin, "run", "--resume", "20260101-0000-rrd1", "--report", `json:${report}`], { cwd: repo.root, env })
      assert.strictEqual(resumed.code, 0, resumed.stdout + resumed.stderr)
      const json = JSON.parse(yield* fs.readFileString(report))
      assert.deepStrictEqual(json.tests.map((t: { id: string; status: string }) => [t.id, t.status]), [["deploy", "PASSED"]])
      assert.deepStrictEqual(leaks(resumed.stdout + resumed.stderr), [])
      assert.strictEqual(NodeFs.readFileSync(ran, "utf8"), "deploy\n")

      // an --each test has no plan; the other's plan is gone: refused, nothing runs
      const refused = yield* exec(process.execPath, [bin, "run", "--resume", "20260101-0000-rrd2"], { cwd: repo.root, env })
      assert.strictEqual(refused.code, 2, refused.stdout + refused.stderr)
      assert.include(refused.stderr, "--resume: test x: its stored script had the value of secret API_TOKEN masked as ***")
      assert.include(refused.stderr, "an --each test has no plan file to read it again from")
      assert.include(refused.stderr, `writing "$API_TOKEN" in the command rather than the value`)
      assert.include(refused.stderr, "--resume: test gone: its stored script had the value of secret API_TOKEN masked as ***")
      assert.include(refused.stderr, "its plan file plans/gone.md cannot be read again")
      assert.include(refused.stderr, "restore plans/gone.md and resume again, or run the test afresh from its plan (grove run plans/gone.md)")
      assert.include(refused.stderr, "grove will not run *** in its place")
      assert.strictEqual(NodeFs.readFileSync(ran, "utf8"), "deploy\n", "a refused test ran")
      assert.deepStrictEqual(leaks(refused.stdout + refused.stderr), [])

      // the store still holds no secret: the resumed session's requests were masked again
      for (const f of [dbFile, `${dbFile}-wal`].filter((f) => NodeFs.existsSync(f))) {
        assert.deepStrictEqual(leaks(NodeFs.readFileSync(f)), [], f)
      }
    }).pipe(Effect.provide(NodeContext.layer)), 120_000)
})

describe("secrets and --last-failed", () => {
  it.scopedLive("a failed test whose stored script had a secret masked runs again from its plan read again, never with ***", () =>
    Effect.gen(function*() {
      if (!NodeFs.existsSync(bin)) return yield* Effect.die(new Error(`${bin} is missing: run \`npm run build\` first`))
      const fs = yield* FileSystem.FileSystem
      const repo = yield* makeRepo
      const ok = NodePath.join(repo.dir, "ok")
      // fails until the file `ok` exists; passes then only with the token's value in its script, not ***
      const script = `[ -f ${ok} ] && [ "$API_TOKEN" = "${TOKEN}" ]`
      yield* fs.makeDirectory(NodePath.join(repo.root, "plans"))
      yield* fs.writeFileString(
        NodePath.join(repo.root, "plans", "deploy.md"),
        ["---", "id: deploy", "retries: 0", "secretEnv: [API_TOKEN]", "---", "# checks the token", "", "```bash", script, "```", ""].join("\n")
      )
      const env = groveEnv({ API_TOKEN: TOKEN })
      const first = yield* exec(process.execPath, [bin, "run", "plans/deploy.md"], { cwd: repo.root, env })
      assert.strictEqual(first.code, 1, first.stdout + first.stderr)
      yield* fs.writeFileString(ok, "")
      const report = NodePath.join(repo.dir, "again.json")
      const again = yield* exec(process.execPath, [bin, "run", "--last-failed", "--report", `json:${report}`], { cwd: repo.root, env })
      assert.strictEqual(again.code, 0, again.stdout + again.stderr)
      const json = JSON.parse(yield* fs.readFileString(report))
      assert.deepStrictEqual(json.tests.map((t: { id: string; status: string }) => [t.id, t.status]), [["deploy", "PASSED"]])
      assert.deepStrictEqual(leaks(again.stdout + again.stderr), [])

      // the plan is gone: refused with the reason, nothing runs
      yield* fs.remove(ok)
      const failed = yield* exec(process.execPath, [bin, "run", "plans/deploy.md"], { cwd: repo.root, env })
      assert.strictEqual(failed.code, 1, failed.stdout + failed.stderr)
      yield* fs.remove(NodePath.join(repo.root, "plans", "deploy.md"))
      const refused = yield* exec(process.execPath, [bin, "run", "--last-failed"], { cwd: repo.root, env })
      assert.strictEqual(refused.code, 2, refused.stdout + refused.stderr)
      assert.include(refused.stderr, "--last-failed: test deploy: its stored script had the value of secret API_TOKEN masked as ***")
      assert.include(refused.stderr, "restore plans/deploy.md and run --last-failed again")
      assert.deepStrictEqual(leaks(refused.stdout + refused.stderr), [])
    }).pipe(Effect.provide(NodeContext.layer)), 120_000)
})
