/**
 * grove's command line end to end: the BUILT binary (`node dist/bin/grove.js`, made by
 * `npm test` before vitest runs; `npm run build` first when running this file alone)
 * on real git repositories in temp folders, with real processes and signals.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Report, TestResult } from "../src/Domain.js"
import { stripAnsi } from "../src/internal/text.js"
import * as Json from "../src/report/Json.js"
import * as Cli from "./support/cli.js"
import * as Conformance from "./support/conformance.js"
import { git, makeRepo, type TestRepo } from "./support/repo.js"

type Env = NodeContext.NodeContext | Scope.Scope

/**
 * An it.live test with Node's services and a scope. The timeout is a generous
 * guard, not an assertion: every test spawns several node processes on a shared
 * 2-core machine.
 */
const live = (name: string, body: () => Effect.Effect<void, unknown, Env>, timeout = 180_000) =>
  it.live(name, () => body().pipe(Effect.scoped, Effect.provide(NodeContext.layer)), timeout)

const plan = Cli.plan
const write = Cli.writeFiles

/** a fresh test repository with plan files written (untracked) into its working tree */
const repoWith = (files: Record<string, string>) =>
  Effect.gen(function*() {
    const repo = yield* makeRepo
    yield* write(repo.root, files)
    return repo
  })

const grove = (repo: TestRepo, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Cli.run(args, { cwd: repo.root, env })

const show = (o: Cli.Outcome) => `exit ${o.code}${o.signal === null ? "" : ` (${o.signal})`}\n--- stdout\n${o.stdout}\n--- stderr\n${o.stderr}`

/** a JSON report, decoded with the library's Schema */
const readJson = (file: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.flatMap(fs.readFileString(file), Json.decode))

const byId = (report: Report): Record<string, TestResult> => Object.fromEntries(report.tests.map((t) => [t.id, t]))
const statusById = (report: Report): Record<string, string> =>
  Object.fromEntries(report.tests.map((t) => [t.id, t.status]))

/** what grove may create for a repository: session worktrees, its store and logs */
const groveFootprint = (repo: TestRepo) => [Path.join(repo.dir, "repo.grove"), Path.join(repo.commonDir, "grove")]

/** Nothing of grove's is left: no worktree folder, no store (when `store`), only the main worktree. */
const assertNothingLeft = (repo: TestRepo, what: string, options: { readonly store?: boolean; readonly also?: ReadonlyArray<string> } = {}) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const paths = [...(options.store === false ? groveFootprint(repo).slice(0, 1) : groveFootprint(repo)), ...(options.also ?? [])]
    for (const p of paths) assert.isFalse(yield* fs.exists(p), `${what}: ${p} exists`)
    assert.deepStrictEqual(yield* Cli.worktreePaths(repo.root), [repo.root], `${what}: worktrees left`)
  })

/** the first line of stdout names the session */
const assertSessionLine = (o: Cli.Outcome) => {
  const first = o.stdout.split("\n")[0] ?? ""
  assert.match(first, /^grove session \d{8}-\d{4}-[a-z0-9]+ /, show(o))
}

// bytes XML 1.0 forbids, ANSI colour, invalid UTF-8: what a real test may print
const nasty = String.raw`printf 'nasty \x00\x01\x07 \x1b[31mred\x1b[0m \xff\xfe end\n'`

// ---------------------------------------------------------------------------

describe.concurrent("grove CLI (built binary, real repositories)", () => {
  // -------------------------------------------------------------------------
  // validation

  /** a repository with one plan per validation case, and a folder for reports */
  const invalidRepo = Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const repo = yield* repoWith({
      "plans/ok.md": plan({ steps: ["echo ok"] }),
      "plans/unknown-key.md": plan({ front: "retries: 1\ncolour: red", steps: ["echo x"] }),
      "plans/bad-duration.md": plan({ front: "timeout: 5 minutes", steps: ["echo x"] }),
      "plans/negative-retries.md": plan({ front: "tags: [a]\nretries: -1", steps: ["echo x"] }),
      "plans/no-step.md": "# only documentation\n\n```js\nconsole.log(1)\n```\n",
      "plans/dup-a.md": plan({ front: "id: same", steps: ["echo a"] }),
      "plans/dup-b.md": plan({ front: "name: b\nid: same", steps: ["echo b"] }),
      "plans/broken-yaml.md": plan({ front: "tags: [smoke\nretries: 1", steps: ["echo x"] }),
      "plans/unknown-ref.md": plan({ front: "ref: no-such-branch", steps: ["echo x"] }),
      "plans/cwd-escapes.md": plan({ front: "cwd: ../../etc", steps: ["pwd"] })
    })
    const out = Path.join(repo.dir, "out")
    yield* fs.makeDirectory(out)
    return { repo, out, report: Path.join(out, "report.json") }
  })

  interface InvalidCase {
    readonly name: string
    readonly args: ReadonlyArray<string>
    readonly env?: Record<string, string>
    readonly expect: ReadonlyArray<RegExp>
  }

  /** runs each case (with a valid --report that must not be written): exit 2, the messages, nothing created */
  const assertInvalid = (repo: TestRepo, report: string, cases: ReadonlyArray<InvalidCase>, also: ReadonlyArray<string> = []) =>
    Effect.gen(function*() {
      const outcomes = yield* Effect.forEach(
        cases,
        (c) => Effect.map(grove(repo, ["run", ...c.args, "--report", `json:${report}`], c.env), (o) => ({ c, o })),
        { concurrency: 2 }
      )
      for (const { c, o } of outcomes) {
        assert.strictEqual(o.code, 2, `${c.name}: ${show(o)}`)
        for (const re of c.expect) assert.match(o.stderr, re, `${c.name}: ${show(o)}`)
        assert.notInclude(o.stdout, "grove session", `${c.name}: a session line for a run that never started`)
      }
      yield* assertNothingLeft(repo, "after the invalid runs", { also: [report, ...also] })
    })

  live("every invalid plan exits 2 naming file:line, and creates nothing; several problems are listed at once", () =>
    Effect.gen(function*() {
      const { repo, report } = yield* invalidRepo
      yield* assertInvalid(repo, report, [
        { name: "unknown key", args: ["plans/unknown-key.md"], expect: [/plans\/unknown-key\.md:3\b.*colour/] },
        { name: "bad duration", args: ["plans/bad-duration.md"], expect: [/plans\/bad-duration\.md:2\b.*timeout/] },
        { name: "negative retries", args: ["plans/negative-retries.md"], expect: [/plans\/negative-retries\.md:3\b.*retries/] },
        { name: "no step", args: ["plans/no-step.md"], expect: [/plans\/no-step\.md:\d+\b.*(sh|bash)/] },
        {
          name: "duplicate ids",
          args: ["plans/dup-a.md", "plans/dup-b.md"],
          expect: [/plans\/dup-b\.md:3\b.*"same".*plans\/dup-a\.md:2\b/]
        },
        { name: "broken YAML", args: ["plans/broken-yaml.md"], expect: [/plans\/broken-yaml\.md:\d+\b/] },
        { name: "unknown ref in a plan", args: ["plans/unknown-ref.md"], expect: [/plans\/unknown-ref\.md:2\b.*no-such-branch/] },
        { name: "cwd escaping the worktree", args: ["plans/cwd-escapes.md"], expect: [/plans\/cwd-escapes\.md:2\b.*cwd/] },
        { name: "missing plan file", args: ["plans/missing.md"], expect: [/plans\/missing\.md\b/] },
        {
          name: "several problems at once",
          args: ["plans/unknown-key.md", "plans/bad-duration.md", "plans/missing.md", "plans/unknown-ref.md", "--workers", "0", "--report", "pdf:x"],
          expect: [
            /plans\/unknown-key\.md:3\b/,
            /plans\/bad-duration\.md:2\b/,
            /plans\/missing\.md\b/,
            // refs are checked even though other plans do not parse
            /plans\/unknown-ref\.md:2\b/,
            /--workers\b/,
            /--report pdf:x\b/,
            /\b6 problems\b/
          ]
        }
      ])
      // grove validate: the same checks, nothing run, nothing created
      const checked = yield* grove(repo, ["validate", "plans/ok.md", "plans/unknown-ref.md", "plans/negative-retries.md"])
      assert.strictEqual(checked.code, 2, show(checked))
      assert.match(checked.stderr, /plans\/unknown-ref\.md:2\b/)
      assert.match(checked.stderr, /plans\/negative-retries\.md:3\b/)
      yield* assertNothingLeft(repo, "after grove validate")
    }), 240_000)

  live("every invalid option exits 2 naming the flag or variable, and creates nothing", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { out, repo, report } = yield* invalidRepo
      const notRepo = Path.join(repo.dir, "not-a-repo")
      yield* fs.makeDirectory(notRepo)
      yield* assertInvalid(repo, report, [
        { name: "unknown ref in --ref", args: ["plans/ok.md", "--ref", "no-such-ref"], expect: [/--ref no-such-ref\b/] },
        { name: "--workers 0", args: ["plans/ok.md", "--workers", "0"], expect: [/--workers\b/] },
        { name: "--workers not a number", args: ["plans/ok.md", "--workers", "many"], expect: [/--workers\b.*many/] },
        { name: "--repo not a repository", args: ["plans/ok.md", "--repo", notRepo], expect: [/--repo\b.*not-a-repo/] },
        {
          name: "report folder missing",
          args: ["plans/ok.md", "--report", `junit:${Path.join(repo.dir, "missing", "junit.xml")}`],
          expect: [/--report junit:\S*missing\S*:/]
        },
        { name: "unknown report kind", args: ["plans/ok.md", "--report", `pdf:${Path.join(out, "r.pdf")}`], expect: [/--report pdf:/] },
        { name: "bad GROVE_ variable", args: ["plans/ok.md"], env: { GROVE_KILL_GRACE: "forever" }, expect: [/GROVE_KILL_GRACE: .*forever/] },
        {
          name: "--worktree-dir inside the repository",
          args: ["plans/ok.md", "--worktree-dir", Path.join(repo.root, "inside")],
          expect: [/--worktree-dir: .*inside the repository/]
        }
      ], [Path.join(out, "r.pdf"), Path.join(repo.root, "inside")])
      assert.deepStrictEqual(yield* fs.readDirectory(notRepo), [], "something was created in the --repo folder")
    }), 240_000)

  live("exit codes: 1 on a failure, 0 with a warning when nothing matches, 0 when all pass also with stdout closed early", () =>
    Effect.gen(function*() {
      const repo = yield* repoWith({
        "plans/pass.md": plan({ steps: ["echo pass"] }),
        "plans/slow-pass.md": plan({ steps: ["sleep 1", "echo pass"] }),
        "plans/fail.md": plan({ front: "retries: 0", steps: ["echo about to fail", "exit 3"] })
      })
      // `grove run | head -1`: the reader goes away after the session line; grove must not die of EPIPE
      const headOne = Effect.gen(function*() {
        const proc = yield* Cli.spawn(["run", "plans/pass.md", "plans/slow-pass.md", "--workers", "2"], { cwd: repo.root })
        yield* Cli.waitFor("the session line", Effect.sync(() => Cli.sessionId(proc.stdout()) !== undefined))
        yield* proc.closeStdout
        return yield* proc.exit
      }).pipe(Effect.scoped)
      const [fail, none, closed] = yield* Effect.all([
        grove(repo, ["run", "plans/pass.md", "plans/fail.md", "--workers", "2"]),
        grove(repo, ["run", "plans/pass.md", "plans/fail.md", "--tag", "no-such-tag"]),
        headOne
      ], { concurrency: "unbounded" })

      assert.strictEqual(closed.code, 0, show(closed))

      assert.strictEqual(fail.code, 1, show(fail))
      assertSessionLine(fail)
      assert.match(fail.stdout, /^FAILED\s+plans\/fail\b/m, show(fail))
      assert.match(fail.stdout, /^PARTIAL_SUCCESS\b/m, show(fail))

      assert.strictEqual(none.code, 0, show(none))
      assert.match(none.stderr, /warning: no test matched/, show(none))
      assert.match(none.stdout, /^NO_TESTS\b/m)

      // every run cleans up its worktrees (the store and logs stay)
      yield* assertNothingLeft(repo, "after three runs", { store: false })
    }))

  // -------------------------------------------------------------------------
  // signals

  /**
   * Two long tests on two workers; each step touches a file, then sleeps (one of
   * them also leaves a process that escapes the group with setsid). Waits for
   * the session line and both tests running, then signals.
   */
  const interrupted = (options: {
    readonly signals: ReadonlyArray<NodeJS.Signals>
    readonly trapTerm: boolean
    /** a --worktree-dir (relative to the temp folder) instead of the default */
    readonly worktreeDir?: string
    /**
     * "closed": the test closes grove's stdout and stderr pipes before the first
     * signal (every later write fails with EPIPE). "pty": grove runs on a terminal
     * that the test closes instead of signalling (the kernel sends SIGHUP, writes
     * fail with EIO); `signals` must then be ["SIGHUP"].
     */
    readonly output?: "pipe" | "closed" | "pty"
  }) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const trap = options.trapTerm ? "trap '' TERM\n" : ""
      const repo = yield* repoWith({
        "plans/long-a.md": plan({ steps: [`${trap}touch "$MARKS/a"\nsleep 1000`] }),
        "plans/long-b.md": plan({ steps: [`${trap}setsid sleep 1000 &\ntouch "$MARKS/b"\nsleep 1000`] })
      })
      const marks = Path.join(repo.dir, "marks")
      yield* fs.makeDirectory(marks)
      yield* fs.makeDirectory(Path.join(repo.dir, "out"))
      const jsonFile = Path.join(repo.dir, "out", "report.json")
      const env: Record<string, string> = { MARKS: marks, ...(options.trapTerm ? { GROVE_KILL_GRACE: "120s" } : {}) }
      const worktreeDir = options.worktreeDir === undefined ? undefined : Path.join(repo.dir, options.worktreeDir)
      const output = options.output ?? "pipe"
      const args = [
        "run",
        "plans/long-a.md",
        "plans/long-b.md",
        "--workers",
        "2",
        "--retries",
        "0",
        "--report",
        `json:${jsonFile}`,
        ...(worktreeDir === undefined ? [] : ["--worktree-dir", worktreeDir])
      ]
      const proc: Cli.Running & { readonly hangUp?: Effect.Effect<void> } = output === "pty"
        ? yield* Cli.spawnOnPty(args, { cwd: repo.root, env })
        : yield* Cli.spawn(args, { cwd: repo.root, env })
      const context = () => `stdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`
      const sessionOf = () => Cli.sessionId(stripAnsi(proc.stdout()))
      yield* Cli.waitFor("the session line", Effect.sync(() => sessionOf() !== undefined), { context })
      const session = sessionOf()!
      yield* Cli.waitFor("both tests to start", Effect.map(fs.readDirectory(marks), (m) => m.length === 2), { context })
      const running = yield* Cli.processesWithEnv(`GROVE_SESSION=${session}`)
      assert.isAtLeast(running.length, 3, "the scan sees the run's processes (two sleeps and the escaped one)")
      if (worktreeDir !== undefined) assert.isTrue(yield* fs.exists(Path.join(worktreeDir, session)), "--worktree-dir is not used")

      const [first, ...more] = options.signals
      if (output === "closed") yield* Effect.zipRight(proc.closeStdout, proc.closeStderr)
      const t0 = yield* Clock.currentTimeMillis
      yield* proc.hangUp ?? proc.kill(first!)
      for (const signal of more) {
        // during the grace period: grove said it is stopping and still runs
        yield* Cli.waitFor("grove to start stopping", Effect.sync(() => /stopping/.test(proc.stderr())), { context })
        yield* proc.kill(signal)
      }
      const outcome = yield* proc.exit
      const elapsed = (yield* Clock.currentTimeMillis) - t0

      // nothing of the run remains: processes, worktrees, the worktree folder
      const left = yield* Cli.processesWithEnv(`GROVE_SESSION=${session}`)
      assert.deepStrictEqual(left, [], "processes of the run are left")
      yield* assertNothingLeft(repo, `after ${options.signals.join(", ")}`, {
        store: false,
        also: worktreeDir === undefined ? [] : [Path.join(worktreeDir, session)]
      })

      // what was known is recorded: the report says INTERRUPTED, the tests CANCELLED
      if (output === "pipe") {
        assertSessionLine(outcome)
        assert.match(outcome.stdout, /^INTERRUPTED\b/m, show(outcome))
      }
      const report = yield* readJson(jsonFile)
      assert.strictEqual(report.session.status, "INTERRUPTED")
      assert.deepStrictEqual(statusById(report), { "plans/long-a": "CANCELLED", "plans/long-b": "CANCELLED" })
      return { outcome, elapsed, repo, session }
    })

  live("the session line names the branch HEAD is on (main at SHA), and says HEAD SHA only when detached", () =>
    Effect.gen(function*() {
      const repo = yield* repoWith({ "plans/ok.md": plan({ steps: ["echo ok"] }) })
      const sha = repo.second.slice(0, 10)
      const onMain = yield* grove(repo, ["run", "plans/ok.md", "--quiet"])
      assert.strictEqual(onMain.code, 0, show(onMain))
      assertSessionLine(onMain)
      assert.match(onMain.stdout.split("\n")[0]!, new RegExp(`  main at ${sha}$`), show(onMain))
      yield* git(repo.root, "checkout", "--quiet", "--detach", "main")
      const detached = yield* grove(repo, ["run", "plans/ok.md", "--quiet"])
      assert.strictEqual(detached.code, 0, show(detached))
      assertSessionLine(detached)
      assert.match(detached.stdout.split("\n")[0]!, new RegExp(`  HEAD ${sha}$`), show(detached))
    }))

  live("SIGINT mid-run exits 130 and leaves no process and no worktree", () =>
    Effect.gen(function*() {
      const { outcome } = yield* interrupted({ signals: ["SIGINT"], trapTerm: false })
      assert.strictEqual(outcome.code, 130, show(outcome))
      assert.match(outcome.stderr, /SIGINT: stopping/)
    }))

  live("SIGTERM mid-run exits 143 and leaves no process and no worktree (--worktree-dir)", () =>
    Effect.gen(function*() {
      const { outcome } = yield* interrupted({ signals: ["SIGTERM"], trapTerm: false, worktreeDir: "elsewhere" })
      assert.strictEqual(outcome.code, 143, show(outcome))
      assert.match(outcome.stderr, /SIGTERM: stopping/)
    }))

  /** the stored session, as `grove sessions --json` lists it */
  const storedStatus = (repo: TestRepo, session: string) =>
    Effect.gen(function*() {
      const listed = yield* grove(repo, ["sessions", "--json"])
      assert.strictEqual(listed.code, 0, show(listed))
      const rows = JSON.parse(listed.stdout) as ReadonlyArray<{ readonly id: string; readonly status: string }>
      return rows.find((r) => r.id === session)?.status
    })

  live("SIGHUP mid-run (the terminal went away) exits 129, records the session INTERRUPTED and leaves no process and no worktree", () =>
    Effect.gen(function*() {
      const { outcome, repo, session } = yield* interrupted({ signals: ["SIGHUP"], trapTerm: false })
      assert.strictEqual(outcome.code, 129, show(outcome))
      assert.match(outcome.stderr, /SIGHUP: stopping/)
      assert.strictEqual(yield* storedStatus(repo, session), "INTERRUPTED")
    }))

  live("SIGHUP after grove's stdout and stderr pipes were closed (EPIPE on every write) still cleans up and exits 129", () =>
    Effect.gen(function*() {
      const { outcome, repo, session } = yield* interrupted({ signals: ["SIGHUP"], trapTerm: false, output: "closed" })
      assert.strictEqual(outcome.code, 129, show(outcome))
      assert.strictEqual(yield* storedStatus(repo, session), "INTERRUPTED")
    }))

  it.live.skipIf(Cli.python3 === undefined)("a terminal that goes away under the live view (SIGHUP, EIO on every write) still cleans up and exits 129", () =>
    Effect.gen(function*() {
      const { outcome, repo, session } = yield* interrupted({ signals: ["SIGHUP"], trapTerm: false, output: "pty" })
      assert.strictEqual(outcome.code, 129, show(outcome))
      assert.strictEqual(yield* storedStatus(repo, session), "INTERRUPTED")
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), 180_000)

  live("a second SIGINT skips the 120s grace period of tests that ignore SIGTERM, exits 130 and still cleans up", () =>
    Effect.gen(function*() {
      const { elapsed, outcome } = yield* interrupted({ signals: ["SIGINT", "SIGINT"], trapTerm: true })
      assert.strictEqual(outcome.code, 130, show(outcome))
      assert.match(outcome.stderr, /SIGINT again/)
      // only the second signal can end it before the grace period: generous bound
      assert.isBelow(elapsed, 60_000, "grove waited out the grace period")
    }))

  // -------------------------------------------------------------------------
  // reports

  /** a mixed run (passed, failed, flaky, timed out) and one stopped by --max-fail, each with JUnit and JSON reports, made once for the tests below */
  class ReportRuns extends Context.Tag("test/Cli/ReportRuns")<ReportRuns, {
    readonly repo: TestRepo
    readonly mixed: Cli.Outcome
    readonly stopped: Cli.Outcome
    /** a report's path */
    readonly file: (name: string) => string
  }>() {}

  const reportRuns = Layer.scoped(
    ReportRuns,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const repo = yield* repoWith({
        "plans/passed.md": plan({ steps: [nasty] }),
        "plans/failed.md": plan({ front: "retries: 1", steps: [`${nasty}\nexit 1`] }),
        "plans/flaky.md": plan({ front: "retries: 2", steps: [`${nasty}\nif [ "$GROVE_ATTEMPT" = 1 ]; then exit 1; fi`] }),
        "plans/timed-out.md": plan({ front: "timeout: 1s\nretries: 1", steps: [`${nasty}\nsleep 30`] }),
        // --max-fail 1, one worker: the failure goes first, the others wait behind it
        "stop/first.md": plan({ front: "priority: 10\nretries: 0", steps: [`${nasty}\nexit 1`] }),
        "stop/queued-a.md": plan({ steps: ["echo never"] }),
        "stop/queued-b.md": plan({ steps: ["echo never"] })
      })
      const out = Path.join(repo.dir, "out")
      yield* fs.makeDirectory(out)
      const file = (name: string) => Path.join(out, name)
      const [mixed, stopped] = yield* Effect.all([
        grove(repo, [
          "run",
          "plans/passed.md",
          "plans/failed.md",
          "plans/flaky.md",
          "plans/timed-out.md",
          "--workers",
          "2",
          "--report",
          `junit:${file("mixed.xml")}`,
          "--report",
          `json:${file("mixed.json")}`
        ]),
        grove(repo, [
          "run",
          "stop/first.md",
          "stop/queued-a.md",
          "stop/queued-b.md",
          "--workers",
          "1",
          "--max-fail",
          "1",
          "--report",
          `junit:${file("stopped.xml")}`,
          "--report",
          `json:${file("stopped.json")}`
        ])
      ], { concurrency: "unbounded" })
      return { repo, mixed, stopped, file }
    })
  ).pipe(Layer.provideMerge(NodeContext.layer))

  layer(reportRuns, { excludeTestServices: true, timeout: "180 seconds" })("reports of real runs", (it) => {
    it.effect("JUnit holds every element for passed, failed, flaky, timed-out and cancelled tests printing forbidden bytes; JSON decodes", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const { file: f, mixed, repo, stopped } = yield* ReportRuns
        assert.strictEqual(mixed.code, 1, show(mixed))
        assert.strictEqual(stopped.code, 1, show(stopped))
        for (const [o, file] of [[mixed, "mixed.json"], [stopped, "stopped.json"], [mixed, "mixed.xml"], [stopped, "stopped.xml"]] as const) {
          assert.isTrue(Fs.existsSync(f(file)), `${file} was not written:\n${show(o)}`)
        }

        const mixedReport = yield* readJson(f("mixed.json"))
        assert.deepStrictEqual(statusById(mixedReport), {
          "plans/passed": "PASSED",
          "plans/failed": "FAILED",
          "plans/flaky": "FLAKY",
          "plans/timed-out": "TIMED_OUT"
        })
        assert.strictEqual(mixedReport.session.status, "PARTIAL_SUCCESS")
        assert.strictEqual(byId(mixedReport)["plans/failed"]!.attempts.length, 2)
        const stoppedReport = yield* readJson(f("stopped.json"))
        assert.deepStrictEqual(statusById(stoppedReport), {
          "stop/first": "FAILED",
          "stop/queued-a": "CANCELLED",
          "stop/queued-b": "CANCELLED"
        })

        for (const name of ["mixed.xml", "stopped.xml"]) {
          const xml = yield* fs.readFileString(f(name))
          assert.notInclude(xml, "\u001b", `${name} holds an escape`)
          assert.notInclude(xml, "[31m", `${name} holds an ANSI code`)
          assert.include(xml, "nasty", `${name} lost the output`)
        }
        const mixedXml = yield* fs.readFileString(f("mixed.xml"))
        for (const element of ["<failure", "<rerunFailure", "<flakyFailure", "<error", "<rerunError"]) {
          assert.include(mixedXml, element)
        }
        assert.include(yield* fs.readFileString(f("stopped.xml")), "<skipped")
        yield* assertNothingLeft(repo, "after the report runs", { store: false })
      }))

    Conformance.test(it.effect, "JUnit of those runs validates against the Surefire XSD", (validate) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const { file: f, mixed, stopped } = yield* ReportRuns
        for (const [o, name] of [[mixed, "mixed.xml"], [stopped, "stopped.xml"]] as const) {
          assert.isTrue(Fs.existsSync(f(name)), `${name} was not written:\n${show(o)}`)
          const xml = yield* fs.readFileString(f(name))
          const outcome = yield* validate(xml)
          assert.isTrue(outcome.valid, `${name} is not valid: ${outcome.errors.join("\n")}\n${xml}`)
        }
      }))
  })

  // -------------------------------------------------------------------------
  // sources and selection

  live("--each makes one test per ARG, with {} replaced by the quoted ARG, or the ARG appended", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const repo = yield* makeRepo
      yield* write(repo.root, { "docs/with space.txt": "spaced content\n" })
      yield* git(repo.root, "add", "--all")
      yield* git(repo.root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "spaced")
      const out = Path.join(repo.dir, "out")
      yield* fs.makeDirectory(out)
      const [braces, appended] = yield* Effect.all([
        grove(repo, ["run", "--each", "echo start; cat {}", "--workers", "2", "--report", `json:${out}/braces.json`, "src/app.txt", "docs/with space.txt"]),
        grove(repo, ["run", "--each", "cat", "--report", `json:${out}/appended.json`, "README.md"])
      ], { concurrency: "unbounded" })
      assert.strictEqual(braces.code, 0, show(braces))
      assert.strictEqual(appended.code, 0, show(appended))
      const b = byId(yield* readJson(`${out}/braces.json`))
      assert.sameMembers(Object.keys(b), ["src/app.txt", "docs/with space.txt"])
      assert.include(b["src/app.txt"]!.attempts[0]!.tail, "start\nv2")
      assert.include(b["docs/with space.txt"]!.attempts[0]!.tail, "spaced content")
      const a = byId(yield* readJson(`${out}/appended.json`))
      assert.deepStrictEqual(Object.keys(a), ["README.md"])
      assert.include(a["README.md"]!.attempts[0]!.tail, "# test repository")
      yield* assertNothingLeft(repo, "after --each", { store: false })
    }))

  live("--ref A --ref B runs each test at both refs, each seeing its ref's files", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      // main: src/app.txt v2, no feature.txt; feature: src/app.txt v1 and feature.txt
      const repo = yield* repoWith({
        "plans/show.md": plan({ steps: ["echo \"app=$(cat src/app.txt) feature=$(cat feature.txt 2>/dev/null || echo none)\""] })
      })
      yield* fs.makeDirectory(Path.join(repo.dir, "out"))
      const json = Path.join(repo.dir, "out", "refs.json")
      const o = yield* grove(repo, ["run", "plans/show.md", "--ref", "main", "--ref", "feature", "--workers", "2", "--report", `json:${json}`])
      assert.strictEqual(o.code, 0, show(o))
      assertSessionLine(o)
      assert.match(o.stdout, /^COMPLETE\b/m)
      const tests = byId(yield* readJson(json))
      assert.sameMembers(Object.keys(tests), ["plans/show@main", "plans/show@feature"])
      assert.include(tests["plans/show@main"]!.attempts[0]!.tail, "app=v2 feature=none")
      assert.include(tests["plans/show@feature"]!.attempts[0]!.tail, "app=v1 feature=feature")
      assert.strictEqual(tests["plans/show@main"]!.ref, "main")
      assert.strictEqual(tests["plans/show@feature"]!.ref, "feature")
      assert.match(o.stdout, /^PASSED\s+plans\/show@main\b/m)
      assert.match(o.stdout, /^PASSED\s+plans\/show@feature\b/m)
      yield* assertNothingLeft(repo, "after --ref", { store: false })
    }))

  live("--dry-run prints the start order and creates nothing; --tag and --filter select as documented", () =>
    Effect.gen(function*() {
      const repo = yield* repoWith({
        "plans/api/checkout.md": plan({ front: "priority: 1\ntags: [smoke]", steps: ["echo"] }),
        "plans/api/cart.md": plan({ front: "priority: 5\ntags: [smoke, slow]", steps: ["echo"] }),
        "plans/ui/login.md": plan({ front: "priority: 10\ntags: [ui]\nname: Login page", steps: ["echo"] }),
        "plans/report.md": plan({ steps: ["echo"] })
      })
      const all = ["plans/report.md", "plans/api/checkout.md", "plans/ui/login.md", "plans/api/cart.md"]
      const dry = (...args: Array<string>) =>
        Effect.map(grove(repo, ["run", ...all, "--dry-run", ...args]), (o) => {
          assert.strictEqual(o.code, 0, show(o))
          assert.notInclude(o.stdout, "grove session")
          return o.stdout.split("\n").filter((l) => l.startsWith("  ")).map((l) => l.trim().split(/\s+/)[0])
        })
      const [order, tags, filter] = yield* Effect.all([
        dry(),
        // any include selects, an exclude always wins
        dry("--tag", "smoke", "--tag", "ui", "--tag", "!slow"),
        // a glob without / also matches the last segment of an id (check*); names match too (Login*)
        dry("--filter", "{check*,Login*}")
      ], { concurrency: 3 })
      // priority first; equal priority keeps submission order
      assert.deepStrictEqual(order, ["plans/ui/login", "plans/api/cart", "plans/api/checkout", "plans/report"])
      assert.deepStrictEqual(tags, ["plans/ui/login", "plans/api/checkout"])
      assert.deepStrictEqual(filter, ["plans/ui/login", "plans/api/checkout"])
      yield* assertNothingLeft(repo, "after --dry-run")
    }))

  // -------------------------------------------------------------------------
  // output

  live("off a TTY no escape codes; the summary lists failures first with each attempt's log; --keep-failed keeps its worktree", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const plans = {
        "plans/a-pass.md": plan({ steps: [`printf '\\x1b[32mgreen\\x1b[0m\\n'`] }),
        "plans/b-flaky.md": plan({ front: "retries: 1", steps: [`if [ "$GROVE_ATTEMPT" = 1 ]; then exit 1; fi`] }),
        "plans/c-fail.md": plan({
          front: "retries: 1",
          steps: [`echo "attempt $GROVE_ATTEMPT says boom"\n${nasty}\necho "attempt $GROVE_ATTEMPT" > left-behind.txt\nexit 4`]
        })
      }
      const repo = yield* repoWith(plans)
      const o = yield* grove(repo, ["run", ...Object.keys(plans), "--workers", "2", "--keep-failed"])
      assert.strictEqual(o.code, 1, show(o))
      assertSessionLine(o)
      assert.notInclude(o.stdout, "\u001b", `escape code in stdout: ${JSON.stringify(o.stdout)}`)
      const failures = o.stdout.indexOf("Failures (1)")
      const flaky = o.stdout.indexOf("Flaky (1)")
      const last = o.stdout.search(/^PARTIAL_SUCCESS\b/m)
      const lastTestLine = o.stdout.search(/^FAILED\s+plans\/c-fail\s/m)
      assert.isTrue(lastTestLine > 0 && lastTestLine < failures && failures < flaky && flaky < last, show(o))
      const logs = [...o.stdout.slice(failures, flaky).matchAll(/^ {4}log: (.+)$/gm)].map((m) => m[1]!)
      assert.strictEqual(logs.length, 2, `a log line per failing attempt:\n${o.stdout}`)
      for (const [i, log] of logs.entries()) {
        assert.match(o.stdout, new RegExp(`attempt ${i + 1}: FAILED`))
        assert.isTrue(yield* fs.exists(log), `log ${log} is missing`)
        assert.include(yield* fs.readFileString(log), `attempt ${i + 1} says boom`)
      }
      assert.match(o.stdout, /\| attempt 2 says boom/, "the last lines of the failing attempt")
      assert.match(o.stdout.slice(flaky, last), /^ {4}attempt 1 log: \S+b-flaky\S*\.1\.log$/m, "the flaky test's failed attempt has its log path")

      // --keep-failed: the worktree of the failed test's last attempt stays, as it was left; the others go
      const kept = /^ {4}worktree kept: (.+)$/m.exec(o.stdout)?.[1]
      assert.isDefined(kept, show(o))
      assert.deepStrictEqual(yield* Cli.worktreePaths(repo.root), [repo.root, kept!])
      assert.strictEqual(yield* fs.readFileString(Path.join(kept!, "left-behind.txt")), "attempt 2\n")
      yield* Cli.removeWorktrees(repo.root, [kept!])
    }))

  it.live.skipIf(!Fs.existsSync("/usr/bin/script"))("on a TTY grove colours its output, and NO_COLOR turns the colours off", () =>
    Effect.gen(function*() {
      const repo = yield* repoWith({ "plans/ok.md": plan({ steps: ["echo ok"] }) })
      const [colored, noColor] = yield* Effect.all([
        Cli.runOnTty(["run", "plans/ok.md", "--workers", "1"], { cwd: repo.root }),
        Cli.runOnTty(["run", "plans/ok.md", "--workers", "1"], { cwd: repo.root, env: { NO_COLOR: "1" } })
      ], { concurrency: "unbounded" })
      assert.strictEqual(colored.code, 0, show(colored))
      assert.strictEqual(noColor.code, 0, show(noColor))
      const sgr = /\u001b\[[0-9;]*m/
      assert.match(colored.stdout, sgr, "no colour on a TTY: this test would prove nothing")
      assert.notMatch(noColor.stdout, sgr, `colour with NO_COLOR: ${JSON.stringify(noColor.stdout)}`)
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)), 180_000)

  live("--no-cleanup keeps every worktree of the session", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const repo = yield* repoWith({
        "plans/pass.md": plan({ steps: ["echo pass > left-behind.txt"] }),
        "plans/fail.md": plan({ front: "retries: 0", steps: ["echo fail > left-behind.txt", "exit 1"] })
      })
      yield* fs.makeDirectory(Path.join(repo.dir, "out"))
      const json = Path.join(repo.dir, "out", "all.json")
      const o = yield* grove(repo, ["run", "plans/pass.md", "plans/fail.md", "--workers", "2", "--no-cleanup", "--report", `json:${json}`])
      assert.strictEqual(o.code, 1, show(o))
      const used = [...new Set((yield* readJson(json)).tests.flatMap((t) => t.attempts.map((a) => a.worktree)))]
      assert.isAtLeast(used.length, 1)
      // the pool makes worktrees as workers need them: one may exist that no attempt ended up on
      const kept = (yield* Cli.worktreePaths(repo.root)).slice(1)
      for (const p of used) assert.include(kept, p, "every worktree a test ran in is kept")
      const sessionDir = Path.dirname(used[0]!)
      for (const p of kept) assert.strictEqual(Path.dirname(p), sessionDir, `${p} is not a worktree of the session`)
      for (const p of used) assert.isTrue(yield* fs.exists(Path.join(p, "left-behind.txt")), `${p} was cleaned`)
      yield* Cli.removeWorktrees(repo.root, kept)
    }))

  live("grove run --help mentions every option", () =>
    Effect.gen(function*() {
      const help = yield* Cli.run(["run", "--help"], { cwd: Cli.projectRoot })
      assert.strictEqual(help.code, 0, show(help))
      // SPEC §6
      const options = [
        "--each", "--workers", "--repo", "--ref", "--timeout", "--retries", "--tag", "--filter", "--worktree-dir",
        "--keep-failed", "--no-cleanup", "--fail-fast", "--max-fail", "--dry-run", "--report", "--db", "--resume",
        "--last-failed", "--quiet"
      ]
      for (const option of options) assert.match(help.stdout, new RegExp(`${option}\\b`), `--help does not mention ${option}`)
      assert.notInclude(help.stdout, "\u001b", "escape codes in --help off a TTY")
    }))
})
