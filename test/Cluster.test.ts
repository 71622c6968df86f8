/**
 * grove on a cluster (SPEC §10), for real: `grove runner` processes on clones of the
 * repository and `grove run --cluster` (the built binary), over a real PostgreSQL
 * (`GROVE_TEST_PG_URL`, a database per test). Needs `npm run build` (`npm test` does).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodePath from "node:path"
import * as Cli from "./support/cli.js"
import * as Pg from "./support/postgres.js"
import { git, makeRepo, type TestRepo } from "./support/repo.js"

/** a port nothing listens on now */
const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

interface Joined {
  readonly name: string
  readonly clone: string
  readonly process: Cli.Running
}

/** a clone of `repo` in its folder, and a runner on it that has joined the cluster `db` */
const startRunner = (
  repo: TestRepo,
  db: string,
  options: { readonly workers: number; readonly clone?: string; readonly port?: number; readonly env?: Record<string, string> }
): Effect.Effect<Joined, Error, Scope.Scope | NodeContext.NodeContext> =>
  Effect.gen(function*() {
    const port = options.port ?? (yield* freePort)
    const clone = options.clone ?? NodePath.join(repo.dir, `clone-${port}`)
    if (options.clone === undefined) yield* git(repo.dir, "clone", "--quiet", repo.root, clone)
    const name = `127.0.0.1:${port}`
    const process = yield* Cli.spawn(
      ["runner", "--cluster", db, "--repo", clone, "--listen", name, "--workers", String(options.workers)],
      { cwd: clone, env: options.env ?? {} }
    )
    yield* Cli.waitFor(`runner ${name} to join`, Effect.sync(() => process.stderr().includes("Ctrl-C stops")), {
      within: Duration.seconds(60),
      context: () => process.stderr()
    })
    return { name, clone, process }
  })

const show = (o: Cli.Outcome) => `exit ${o.code}\nstdout:\n${o.stdout}\nstderr:\n${o.stderr}`

interface JsonAttempt {
  readonly n: number
  readonly status: string
  readonly worktree: string
  readonly logPath: string
  readonly message?: string
}
interface JsonTest {
  readonly id: string
  readonly status: string
  readonly attempts: ReadonlyArray<JsonAttempt>
}
const readReport = (file: string) => JSON.parse(Fs.readFileSync(file, "utf8")) as { readonly tests: ReadonlyArray<JsonTest> }

/** the stored events of a session, by tag */
const storedEvents = (db: string, session: string) =>
  Effect.gen(function*() {
    const sql = yield* Pg.client(db)
    const rows = yield* sql<{ readonly payload: string }>`SELECT payload FROM events WHERE session_id = ${session} ORDER BY seq`.pipe(
      Effect.orDie
    )
    return rows.map((r) => (typeof r.payload === "string" ? JSON.parse(r.payload) : r.payload) as { readonly _tag: string })
  })

Pg.describePg("grove on a cluster", (url) => {
  it.scopedLive("runs a session's attempts on the runners, with their logs back here and secret values from each runner", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const db = yield* Pg.freshDatabase(url)
      yield* Cli.writeFiles(repo.root, {
        ...Object.fromEntries([1, 2, 3, 4].map((i) => [
          `plans/t${i}.md`,
          Cli.plan({ title: `t${i}`, steps: [`echo "out of $GROVE_TEST_ID"; sleep 1; test -f README.md`] })
        ])),
        "plans/secret.md": Cli.plan({
          front: "env:\n  TOKEN: plan-value\nsecretEnv: [TOKEN]",
          title: "secret",
          steps: [`test "$TOKEN" = runner-value && echo "token checked"`]
        })
      })
      yield* git(repo.root, "add", "--all")
      yield* git(repo.root, "commit", "--quiet", "-m", "plans")
      // one worker each: two attempts at once are on two runners
      const a = yield* startRunner(repo, db, { workers: 1, env: { TOKEN: "runner-value" } })
      const b = yield* startRunner(repo, db, { workers: 1, env: { TOKEN: "runner-value" } })
      const out = NodePath.join(repo.dir, "report.json")
      const o = yield* Cli.run(["run", "plans/t1.md", "plans/t2.md", "plans/t3.md", "plans/t4.md", "plans/secret.md", "--cluster", db, "--report", `json:${out}`], {
        cwd: repo.root
      })
      assert.strictEqual(o.code, 0, show(o))
      assert.include(o.stderr, "cluster of 2 runners", show(o))
      assert.include(o.stdout, "on 2 workers", show(o))
      const report = readReport(out)
      assert.strictEqual(report.tests.length, 5)
      const runnersUsed = new Set<string>()
      for (const test of report.tests) {
        assert.strictEqual(test.status, "PASSED", JSON.stringify(test))
        assert.strictEqual(test.attempts.length, 1)
        const attempt = test.attempts[0]!
        const runner = [a, b].find((r) => attempt.worktree.startsWith(`${r.name}:${r.clone}.grove/`))
        assert.isDefined(runner, `attempt ran in ${attempt.worktree}`)
        runnersUsed.add(runner!.name)
        // the log came back to this machine's session folder
        assert.isTrue(attempt.logPath.startsWith(NodePath.join(repo.commonDir, "grove", "sessions")), attempt.logPath)
        const log = Fs.readFileSync(attempt.logPath, "utf8")
        assert.include(log, test.id === "plans/secret" ? "token checked" : `out of ${test.id}`)
      }
      assert.strictEqual(runnersUsed.size, 2, "both runners ran attempts")
      // no message to a runner carried the plan's secret value
      const sql = yield* Pg.client(db)
      const leaked = yield* sql<{ readonly n: number }>`SELECT COUNT(*)::int AS n FROM cluster_messages
        WHERE payload::text LIKE ${"%plan-value%"}`.pipe(Effect.orDie)
      assert.strictEqual(leaked[0]!.n, 0)
      // the store is the cluster's database: grove show reads the session from there
      const session = Cli.sessionId(o.stdout)!
      const shown = yield* Cli.run(["show", session, "--db", db, "--json"], { cwd: repo.root })
      assert.strictEqual(shown.code, 0, show(shown))
      assert.strictEqual((JSON.parse(shown.stdout) as { tests: Array<unknown> }).tests.length, 5)
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 180_000 })

  it.scopedLive("a runner SIGKILLed mid-attempt: the attempt runs again on another runner with its number, and a restarted runner reaps what it left", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const db = yield* Pg.freshDatabase(url)
      yield* Cli.writeFiles(repo.root, {
        "plans/slow.md": Cli.plan({ title: "slow", steps: ["echo started; sleep 6; echo done"] })
      })
      yield* git(repo.root, "add", "--all")
      yield* git(repo.root, "commit", "--quiet", "-m", "plans")
      const a = yield* startRunner(repo, db, { workers: 1 })
      const b = yield* startRunner(repo, db, { workers: 1 })
      const junit = NodePath.join(repo.dir, "junit.xml")
      const out = NodePath.join(repo.dir, "report.json")
      const run = yield* Cli.spawn(["run", "plans/slow.md", "--cluster", db, "--report", `json:${out}`, "--report", `junit:${junit}`], {
        cwd: repo.root
      })
      // the runner the attempt went to: the one whose name its processes carry
      let holder: Joined | undefined
      yield* Cli.waitFor("the attempt to start on a runner", Effect.gen(function*() {
        for (const r of [a, b]) {
          if ((yield* Cli.processesWithEnv(`GROVE_RUNNER=${r.name}`)).length > 0) holder = r
        }
        return holder !== undefined
      }), { within: Duration.seconds(60), context: () => run.stdout() + run.stderr() })
      const other = holder === a ? b : a
      yield* holder!.process.kill("SIGKILL")
      yield* holder!.process.exit
      const o = yield* run.exit
      assert.strictEqual(o.code, 0, show(o))
      const test = readReport(out).tests[0]!
      assert.strictEqual(test.status, "PASSED")
      assert.deepStrictEqual(test.attempts.map((t) => [t.n, t.status]), [[1, "PASSED"]])
      assert.isTrue(test.attempts[0]!.worktree.startsWith(`${other.name}:`), test.attempts[0]!.worktree)
      const events = yield* storedEvents(db, Cli.sessionId(o.stdout)!)
      const relocated = events.filter((e) => e._tag === "Relocated") as unknown as Array<{ from: string; to: string; n: number }>
      assert.strictEqual(relocated.length, 1, JSON.stringify(events.map((e) => e._tag)))
      assert.isTrue(relocated[0]!.from.startsWith(`${holder!.name}:`) && relocated[0]!.to.startsWith(`${other.name}:`))
      assert.strictEqual(relocated[0]!.n, 1)
      assert.strictEqual(events.filter((e) => e._tag === "TestFinished").length, 1)
      assert.notInclude(Fs.readFileSync(junit, "utf8"), "rerunError")
      // the dead runner's attempt still runs on its machine until a runner restarts there
      const orphans = yield* Cli.processesWithEnv(`GROVE_RUNNER=${holder!.name}`)
      const port = Number(holder!.name.split(":")[1])
      const restarted = yield* startRunner(repo, db, { workers: 1, clone: holder!.clone, port })
      if (orphans.length > 0) assert.include(restarted.process.stderr(), "a stopped runner", restarted.process.stderr())
      assert.deepStrictEqual(yield* Cli.processesWithEnv(`GROVE_RUNNER=${holder!.name}`), [])
      // and its predecessor's worktrees are gone
      const left = (yield* Cli.worktreePaths(holder!.clone)).slice(1)
      assert.deepStrictEqual(left, [])
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 180_000 })

  it.scopedLive("the coordinator SIGKILLed: --resume --cluster finishes the session, and no finished attempt runs again", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const db = yield* Pg.freshDatabase(url)
      // each test counts its runs in a file outside the worktrees
      const runs = NodePath.join(repo.dir, "runs")
      Fs.mkdirSync(runs)
      yield* Cli.writeFiles(repo.root, {
        "plans/fast.md": Cli.plan({ title: "fast", steps: [`echo x >> ${runs}/fast`] }),
        "plans/slow.md": Cli.plan({ title: "slow", steps: [`echo x >> ${runs}/slow; sleep 4`] })
      })
      yield* git(repo.root, "add", "--all")
      yield* git(repo.root, "commit", "--quiet", "-m", "plans")
      yield* startRunner(repo, db, { workers: 2 })
      const first = yield* Cli.spawn(["run", "plans/fast.md", "plans/slow.md", "--cluster", db], { cwd: repo.root })
      yield* Cli.waitFor("fast to finish and slow to run", Effect.sync(() =>
        first.stdout().includes("PASSED    plans/fast") && Fs.existsSync(NodePath.join(runs, "slow"))), {
        within: Duration.seconds(60),
        context: () => first.stdout() + first.stderr()
      })
      yield* first.kill("SIGKILL")
      yield* first.exit
      const session = Cli.sessionId(first.stdout())!
      const out = NodePath.join(repo.dir, "report.json")
      const o = yield* Cli.run(["run", "--resume", session, "--cluster", db, "--report", `json:${out}`], { cwd: repo.root })
      assert.strictEqual(o.code, 0, show(o))
      const report = readReport(out)
      assert.deepStrictEqual(report.tests.map((t) => [t.id, t.status]).sort(), [["plans/fast", "PASSED"], ["plans/slow", "PASSED"]])
      assert.strictEqual(Fs.readFileSync(NodePath.join(runs, "fast"), "utf8"), "x\n", "fast ran once")
      const events = yield* storedEvents(db, session)
      assert.strictEqual(events.filter((e) => e._tag === "TestFinished").length, 2)
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 180_000 })

  it.scopedLive("PostgreSQL restarted mid-session (down 5 s): runners and coordinator reconnect, and every test ends with its one result", () =>
    Effect.gen(function*() {
      // a server of this test's own, to restart
      const script = NodePath.join(Cli.projectRoot, "scripts", "pg-temp.sh")
      const started = yield* Cli.exec("bash", [script, "start"], { cwd: Cli.projectRoot, env: Cli.groveEnv() })
      assert.strictEqual(started.code, 0, started.stderr)
      const own = Object.fromEntries([...started.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]))
      yield* Effect.addFinalizer(() => Effect.ignore(Cli.exec("bash", [script, "stop", own.GROVE_PG_TEMP_DIR!], { cwd: Cli.projectRoot, env: Cli.groveEnv() })))
      const db = own.GROVE_TEST_PG_URL!
      const repo = yield* makeRepo
      yield* Cli.writeFiles(repo.root, Object.fromEntries([1, 2, 3].map((i) => [
        `plans/p${i}.md`,
        Cli.plan({ title: `p${i}`, steps: ["sleep 4; echo done"] })
      ])))
      yield* git(repo.root, "add", "--all")
      yield* git(repo.root, "commit", "--quiet", "-m", "plans")
      yield* startRunner(repo, db, { workers: 2 })
      yield* startRunner(repo, db, { workers: 2 })
      const out = NodePath.join(repo.dir, "report.json")
      const run = yield* Cli.spawn(["run", "plans/p1.md", "plans/p2.md", "plans/p3.md", "--cluster", db, "--report", `json:${out}`], { cwd: repo.root })
      yield* Cli.waitFor("the attempts to run", Effect.map(Cli.processesWithEnv("GROVE_TEST_ID=plans/p3"), (p) => p.length > 0), {
        within: Duration.seconds(60),
        context: () => run.stdout() + run.stderr()
      })
      const restarted = yield* Cli.exec("bash", [script, "restart", own.GROVE_PG_TEMP_DIR!, "5"], { cwd: Cli.projectRoot, env: Cli.groveEnv() })
      assert.strictEqual(restarted.code, 0, restarted.stderr)
      const o = yield* run.exit
      assert.strictEqual(o.code, 0, show(o))
      const tests = readReport(out).tests
      assert.deepStrictEqual(tests.map((t) => [t.id, t.status, t.attempts.length]).sort(), [
        ["plans/p1", "PASSED", 1],
        ["plans/p2", "PASSED", 1],
        ["plans/p3", "PASSED", 1]
      ])
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 180_000 })

  it.scopedLive("a runner whose clone lacks the session's commit: the attempt ends ERROR saying so, and the session goes on", () =>
    Effect.gen(function*() {
      const repo = yield* makeRepo
      const db = yield* Pg.freshDatabase(url)
      yield* startRunner(repo, db, { workers: 1 })
      // committed after the runner's clone was made
      yield* Cli.writeFiles(repo.root, { "plans/new.md": Cli.plan({ title: "new", steps: ["true"] }) })
      yield* git(repo.root, "add", "--all")
      yield* git(repo.root, "commit", "--quiet", "-m", "new")
      const head = yield* git(repo.root, "rev-parse", "HEAD")
      const out = NodePath.join(repo.dir, "report.json")
      const o = yield* Cli.run(["run", "plans/new.md", "--cluster", db, "--retries", "0", "--report", `json:${out}`], { cwd: repo.root })
      assert.strictEqual(o.code, 1, show(o))
      const test = readReport(out).tests[0]!
      assert.strictEqual(test.status, "ERROR")
      assert.include(test.attempts[0]!.message, `lacks commit ${head.slice(0, 12)}`)
      assert.include(test.attempts[0]!.message, "fetch it")
    }).pipe(Effect.provide(NodeContext.layer)), { timeout: 120_000 })
})
