/**
 * The live view of the BUILT binary (`npm run build` first) on a real pseudo-terminal:
 * tmux is the terminal (its final screen is what a user sees when grove is done),
 * util-linux `script` inside it records the raw bytes grove wrote. The same run
 * piped has no escape code at all.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { stripAnsi } from "../src/internal/text.js"
import * as Live from "../src/view/Live.js"
import { shellQuote } from "../src/Plan.js"
import { exec, groveEnv } from "./support/cli.js"
import { makeRepo } from "./support/repo.js"

const bin = NodePath.resolve(import.meta.dirname, "../dist/bin/grove.js")
const built = NodePath.resolve(import.meta.dirname, "../dist/src/view/Live.js")

const plan = (name: string, script: string) => `---\nretries: 0\n---\n# ${name}\n\n\`\`\`bash\n${script}\n\`\`\`\n`

/** a repository with three plans: two pass, one fails */
const setup = Effect.gen(function*() {
  if (!NodeFs.existsSync(bin) || !NodeFs.existsSync(built)) {
    return yield* Effect.die(new Error(`${bin} (with the live view) is missing: run \`npm run build\` first`))
  }
  const repo = yield* makeRepo
  const fs = yield* FileSystem.FileSystem
  yield* fs.makeDirectory(NodePath.join(repo.root, "plans"))
  yield* fs.writeFileString(NodePath.join(repo.root, "plans", "ok-one.md"), plan("ok one", "sleep 0.6; echo one"))
  yield* fs.writeFileString(NodePath.join(repo.root, "plans", "ok-two.md"), plan("ok two", "sleep 0.9; echo two"))
  yield* fs.writeFileString(NodePath.join(repo.root, "plans", "broken.md"), plan("broken", "sleep 0.3; echo 'it broke' >&2; exit 3"))
  const args = ["run", "plans/ok-one.md", "plans/ok-two.md", "plans/broken.md", "--workers", "2"]
  return { repo, args }
})

const ids = ["plans/ok-one", "plans/ok-two", "plans/broken"]
const countsLine = /PARTIAL_SUCCESS {2}2 passed, 1 failed {2}of 3 in \S+ {2}session \d{8}-\d{4}-[a-z0-9]+/

/**
 * a terminal of `columns` × `rows` (tmux) running `command` under `script`; its final screen and the raw bytes;
 * `meanwhile` runs in the background beside it, with `$TMUX_SOCKET` naming the terminal's socket
 */
const inTerminal = (dir: string, command: string, env: Record<string, string>, size: { columns: number; rows: number }, meanwhile = "") =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const socket = NodePath.join(dir, "tmux.sock")
    const raw = NodePath.join(dir, "raw.typescript")
    const exitFile = NodePath.join(dir, "exit")
    const tmux = (...args: Array<string>) => exec("tmux", ["-S", socket, "-f", "/dev/null", ...args], { cwd: dir, env })
    const inner = (meanwhile === "" ? "" : `(TMUX_SOCKET=${shellQuote(socket)}; ${meanwhile}) & `) + `script -qfec ${shellQuote(command)} ${shellQuote(raw)}; echo $? > ${shellQuote(exitFile)}; ` +
      `tmux -S ${shellQuote(socket)} wait-for -S grove-done; sleep 600`
    yield* Effect.acquireRelease(
      tmux("new-session", "-d", "-s", "grove", "-x", String(size.columns), "-y", String(size.rows), inner),
      () => Effect.ignore(tmux("kill-server"))
    )
    // waiting for an OS process (the binary under test), with a deadline
    yield* tmux("wait-for", "grove-done").pipe(Effect.timeoutFail({ duration: "100 seconds", onTimeout: () => new Error("grove did not finish in 100s") }))
    const screen = yield* tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "grove")
    const visible = yield* tmux("capture-pane", "-p", "-J", "-t", "grove")
    return {
      screen: screen.stdout.split("\n").map((l) => l.trimEnd()),
      /** the screen without the history scrolled off it */
      visible: visible.stdout.split("\n").map((l) => l.trimEnd()),
      raw: yield* fs.readFileString(raw),
      exitCode: Number((yield* fs.readFileString(exitFile)).trim())
    }
  })

describe("grove run on a terminal", () => {
  it.scopedLive("redraws a live block in place, then leaves the complete summary on the screen; piped, no escape code", () =>
    Effect.gen(function*() {
      const { args, repo } = yield* setup
      const env = groveEnv()
      const command = `cd ${shellQuote(repo.root)} && exec ${shellQuote(process.execPath)} ${shellQuote(bin)} ${args.map(shellQuote).join(" ")}`
      const { exitCode, raw, screen } = yield* inTerminal(repo.dir, command, env, { columns: 72, rows: 50 })
      assert.strictEqual(exitCode, 1, raw)

      // the raw stream: the cursor hidden while live, the block redrawn by moving up and clearing down
      const hide = raw.lastIndexOf(Live.HIDE_CURSOR)
      const show = raw.lastIndexOf(Live.SHOW_CURSOR)
      assert.isAbove(hide, -1, "the cursor was never hidden")
      assert.isAbove(show, hide, "the cursor was not shown again")
      const redraws = raw.match(/\r\x1b\[\d+A\x1b\[J/g) ?? []
      assert.isAtLeast(redraws.length, 3, "the block was not redrawn in place")
      // block lines never wider than the terminal (71 columns: the last one stays free)
      const blockLines = raw.split(/\r?\n|\x1b\[J/).filter((l) => / attempt \d+ {2}|\d+ waiting/.test(l))
      assert.isAbove(blockLines.length, 0)
      for (const line of blockLines) assert.isAtMost(Live.visibleWidth(line.replace(/^\r\x1b\[\d+A/, "")), 71, JSON.stringify(line))
      // the summary comes after the block is gone
      const after = stripAnsi(raw.slice(show))
      assert.include(after, "Failures (1)")
      assert.match(after, countsLine)

      // the final screen: session line, a line per finished test, the summary; no trace of the block
      const lines = screen.filter((l) => l !== "")
      assert.match(lines[0]!, /^grove session \d{8}-\d{4}-[a-z0-9]+ {2}3 tests on 2 workers/)
      for (const id of ids) {
        assert.isTrue(lines.some((l) => new RegExp(`^(PASSED|FAILED) +${id} {2}`).test(l)), `no line for ${id}:\n${lines.join("\n")}`)
      }
      const failed = lines.findIndex((l) => /^FAILED +plans\/broken {2}\d/.test(l))
      assert.match(lines[failed + 1]!, /^ {2}log: \//)
      assert.include(lines, "Failures (1)")
      assert.isTrue(lines.some((l) => l.startsWith("  attempt 1: FAILED step 1 of 1 exited with 3")))
      assert.include(lines, "    | it broke")
      assert.match(lines.at(-1)!, countsLine)
      for (const l of lines) assert.notMatch(l, /^w\d+ |\bidle$| waiting\b| running\b|█|░/, `a block line stayed on the screen:\n${lines.join("\n")}`)

      // the same run piped: plain lines, not one escape code
      const piped = yield* exec(process.execPath, [bin, ...args], { cwd: repo.root, env })
      assert.strictEqual(piped.code, 1, piped.stderr)
      assert.notInclude(piped.stdout + piped.stderr, "\x1b")
      const plainLines = piped.stdout.split("\n")
      for (const id of ids) assert.isTrue(plainLines.some((l) => new RegExp(`^(PASSED|FAILED) +${id} {2}`).test(l)), id)
      assert.match(plainLines.filter((l) => l !== "").at(-1)!, countsLine)
    }).pipe(Effect.provide(NodeContext.layer)), 200_000)

  it.scopedLive("NO_COLOR: still redrawn in place, without a colour; --quiet: only the summary", () =>
    Effect.gen(function*() {
      const { args, repo } = yield* setup
      const command = `stty cols 60 rows 30; exec ${shellQuote(process.execPath)} ${shellQuote(bin)} ${args.map(shellQuote).join(" ")}`
      const run = (extra: Record<string, string>, more: ReadonlyArray<string> = []) =>
        exec("script", ["-qfec", command + more.map((a) => " " + shellQuote(a)).join(""), "/dev/null"], { cwd: repo.root, env: groveEnv(extra) })
      const noColor = yield* run({ NO_COLOR: "1" })
      assert.strictEqual(noColor.code, 1, noColor.stdout)
      assert.match(noColor.stdout, /\r\x1b\[\d+A\x1b\[J/)
      assert.notMatch(noColor.stdout, /\x1b\[[\d;]*m/, "a colour code with NO_COLOR")
      assert.include(noColor.stdout, "[?25h")

      const quiet = yield* run({}, ["--quiet"])
      assert.strictEqual(quiet.code, 1, quiet.stdout)
      assert.notInclude(quiet.stdout, Live.HIDE_CURSOR)
      assert.notMatch(quiet.stdout, /\x1b\[\d+A/)
      const text = stripAnsi(quiet.stdout).split(/\r?\n/)
      assert.isFalse(text.some((l) => /^PASSED/.test(l)), "--quiet printed a passed test")
      assert.match(text.filter((l) => l !== "").at(-1)!, countsLine)
    }).pipe(Effect.provide(NodeContext.layer)), 200_000)

  it.scopedLive("a store warning goes above the block, and a terminal narrowed mid-run leaves no stale row of it", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const fs = yield* FileSystem.FileSystem
      const db = NodePath.join(repo.dir, "grove.db")
      yield* fs.makeDirectory(NodePath.join(repo.root, "plans"))
      // holds the store for longer than twice its busy timeout (10s): grove's next write of an event
      // fails with a warning. Twice: a write of several events that fails is tried again one event at
      // a time (so the error names its event), and with a lock of 12 s that second try, 10 s later,
      // got through — no warning whenever the first write after the lock held two events
      const lock = `(echo '.timeout 5000'; echo 'BEGIN EXCLUSIVE;'; sleep 25; echo 'COMMIT;') | sqlite3 ${shellQuote(db)}`
      const plans = {
        "holds-the-store-of-the-session-locked": lock,
        "passes-after-one-second-with-a-long-name": "sleep 1",
        "passes-after-three-seconds-with-a-long-name": "sleep 3"
      }
      for (const [name, script] of Object.entries(plans)) {
        yield* fs.writeFileString(NodePath.join(repo.root, "plans", `${name}.md`), plan(name, script))
      }
      const args = ["run", ...Object.keys(plans).map((n) => `plans/${n}.md`), "--workers", "3", "--db", db]
      const command = `cd ${shellQuote(repo.root)} && exec ${shellQuote(process.execPath)} ${shellQuote(bin)} ${args.map(shellQuote).join(" ")}`
      // 100 columns, narrowed to 42 two seconds in: the block's lines, drawn at 100, wrap
      const narrow = `sleep 2; tmux -S "$TMUX_SOCKET" resize-window -t grove -x 42`
      const { exitCode, raw, screen, visible } = yield* inTerminal(repo.dir, command, groveEnv(), { columns: 100, rows: 40 }, narrow)
      assert.strictEqual(exitCode, 0, raw)
      assert.include(raw, "grove store: ", "no store warning was provoked")

      // What the terminal shows: no row of the block. Narrowing, tmux reflows the lines and keeps the
      // cursor's row: what no longer fits above it goes to the history, out of the cursor's reach
      // (and out of this check); the rows still on the screen are erased.
      const shown = visible.filter((l) => l !== "")
      for (const l of shown) {
        assert.notMatch(l, /^w\d+ |\bidle$| waiting\b| running\b|attempt \d+ {2}\d|█|░|ETA /, `a block row stayed on the screen:\n${shown.join("\n")}`)
      }
      // the warning is a line of its own above where the block was, not a fragment inside it
      const lines = screen.filter((l) => l !== "")
      const text = lines.join("\n")
      const warning = lines.findIndex((l) => l.startsWith("grove store: "))
      assert.isAbove(warning, 0, text)
      assert.include(lines[warning]!, "database is locked", text)
      assert.isTrue(shown.some((l) => l.startsWith("grove store: ")), shown.join("\n"))
      assert.match(lines[0]!, /^grove session \d{8}-\d{4}-[a-z0-9]+ {2}3 tests on 3 workers/)
      for (const name of Object.keys(plans)) assert.isTrue(lines.some((l) => new RegExp(`^PASSED +plans/${name} {2}`).test(l)), `${name}:\n${text}`)
      assert.match(lines.at(-1)!, /^COMPLETE {2}3 passed {2}of 3 in /)
    }).pipe(Effect.provide(NodeContext.layer)), 200_000)
})
