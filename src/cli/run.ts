/**
 * `grove run`: validate everything, then run the tests of a session.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import * as Config from "../Config.js"
import type { Logged, TestRequest } from "../Domain.js"
import type { GitError, StoreError } from "../GroveError.js"
import * as Git from "../Git.js"
import { InvalidInput, Issue } from "../GroveError.js"
import * as Signals from "../internal/signals.js"
import { formatDuration } from "../internal/text.js"
import * as Orchestrator from "../Orchestrator.js"
import * as Plan from "../Plan.js"
import * as ReportModule from "../Report.js"
import * as Resume from "../Resume.js"
import * as Scheduler from "../Scheduler.js"
import * as Session from "../Session.js"
import * as SessionState from "../SessionState.js"
import * as Shard from "../Shard.js"
import * as Json from "../report/Json.js"
import type { PendingTest } from "../Store.js"
import { stateOf, Store, testStream } from "../Store.js"
import * as Live from "../view/Live.js"
import * as Plain from "../view/Plain.js"
import * as Runner from "../Runner.js"
import { coordinator, runCluster } from "./cluster.js"
import * as Help from "./help.js"
import { db, err, inspectStore, integer, loadConfig, loadPlans, onInvalid, out, repo, resolveDb, setExit, storeExists, storeLayer, storeName, styleOf } from "./shared.js"

const runOptions = {
  plans: Args.text({ name: "PLAN" }).pipe(
    Args.repeated,
    Help.arg({ text: "Markdown plan files to run; with --each, the ARGs given to CMD.", example: "grove run docs/plans/*.md" })
  ),
  each: Options.text("each").pipe(
    Options.withPseudoName("CMD"),
    Options.optional,
    Help.option({
      text: "Make one test per positional ARG from the shell command CMD, where {} is the shell-quoted ARG (appended when CMD has no {}).",
      example: "--each 'npx vitest run {}' a.test.ts b.test.ts"
    })
  ),
  workers: integer("workers").pipe(
    Options.withAlias("j"),
    Options.optional,
    Help.option({
      text: "Run N tests at once, each in its own worktree.",
      default: String(Config.defaults.workers),
      example: "--workers 6"
    })
  ),
  repo,
  ref: Options.text("ref").pipe(
    Options.withPseudoName("REF"),
    Options.repeated,
    Help.option({
      text: "Run every test at REF (a branch, tag or commit); with several, each test runs at each, as <id>@<ref>.",
      default: "HEAD",
      example: "--ref main --ref v1.2"
    })
  ),
  timeout: Options.text("timeout").pipe(
    Options.withPseudoName("DURATION"),
    Options.optional,
    Help.option({
      text: "Stop an attempt after DURATION (90s, 5m, 1h30m), or after N% of the test's median duration so far.",
      default: `${Duration.toMinutes(Config.defaults.timeout)}m`,
      example: "--timeout 10m, --timeout 300%"
    })
  ),
  retries: integer("retries").pipe(
    Options.optional,
    Help.option({
      text: "Try a test up to N more times after an attempt that did not pass.",
      default: String(Config.defaults.retries),
      example: "--retries 0"
    })
  ),
  tag: Options.text("tag").pipe(
    Options.withPseudoName("TAG"),
    Options.repeated,
    Help.option({ text: "Run only the tests with any of the given tags; !TAG excludes TAG.", example: "--tag smoke --tag '!slow'" })
  ),
  filter: Options.text("filter").pipe(
    Options.withPseudoName("GLOB"),
    Options.optional,
    Help.option({ text: "Run only the tests whose id or name matches GLOB.", example: "--filter 'api/*'" })
  ),
  worktreeDir: Options.text("worktree-dir").pipe(
    Options.withPseudoName("DIR"),
    Options.optional,
    Help.option({ text: "Make the session's worktrees in DIR, outside the repository.", default: "<repo>/../<repo-name>.grove" })
  ),
  keepFailed: Options.boolean("keep-failed").pipe(
    Help.option({ text: "Keep the worktree of each failed test's last attempt; the summary gives its path." })
  ),
  noCleanup: Options.boolean("no-cleanup").pipe(Help.option({ text: "Keep every worktree of the session when it ends." })),
  failFast: Options.boolean("fail-fast").pipe(Help.option({ text: "Stop at the first test that did not pass: --max-fail 1." })),
  maxFail: integer("max-fail").pipe(
    Options.optional,
    Help.option({
      text: "Stop once N tests did not pass (after their retries); the tests not started are CANCELLED.",
      example: "--max-fail 3"
    })
  ),
  dryRun: Options.boolean("dry-run").pipe(
    Help.option({ text: "Print the tests in the order they would start, with expected durations, and create nothing." })
  ),
  report: Options.text("report").pipe(
    Options.withPseudoName("KIND:FILE"),
    Options.repeated,
    Help.option({
      text: "Write a report to FILE; KIND is junit, json, markdown or html.",
      example: "--report junit:out/junit.xml"
    })
  ),
  db,
  cluster: runCluster,
  resume: Options.text("resume").pipe(
    Options.withPseudoName("SESSION"),
    Options.optional,
    Help.option({
      text: "Finish SESSION, whose grove died: clean up what it left and run the tests that have no result.",
      example: "--resume 20261124-0912-k3f9"
    })
  ),
  lastFailed: Options.boolean("last-failed").pipe(
    Help.option({ text: "Run the tests that did not pass in the previous session." })
  ),
  quiet: Options.boolean("quiet").pipe(Options.withAlias("q"), Help.option({ text: "Print only the summary." })),
  shard: Options.text("shard").pipe(
    Options.withPseudoName("SHARD"),
    Options.optional,
    Help.option({
      text: "SHARD is I/N: run only the I-th of N parts of the tests, split so that the parts' expected durations (the store's history) " +
        "are as even as possible; every machine makes the same split from the same tests and history. " +
        "Tests without history are spread by count. The JSON report records the split for grove merge.",
      example: "--shard 2/4"
    })
  )
}

/**
 * The options of `grove run`, parsed: what `prepare` checks. `grove serve`'s
 * `POST /api/v1/sessions` builds one from its JSON body.
 *
 * @since 0.2.0
 * @category models
 */
export type RunOptions = {
  readonly [K in keyof typeof runOptions]: (typeof runOptions)[K] extends Options.Options<infer A> ? A
    : (typeof runOptions)[K] extends Args.Args<infer A> ? A
    : never
}

// ---------------------------------------------------------------------------
// validation: everything is checked before anything is created
// ---------------------------------------------------------------------------

/**
 * A checked `--report KIND:FILE`: the file's folder exists and can be written.
 *
 * @since 0.3.0
 * @category models
 */
export interface ReportTarget {
  readonly kind: ReportModule.ReportKind
  readonly file: string
}

const reportKinds: ReadonlyArray<ReportModule.ReportKind> = ["junit", "json", "markdown", "html"]

/**
 * Checks `--report KIND:FILE` values (also `grove merge`'s), adding an issue per bad one.
 *
 * @since 0.3.0
 */
export const checkReports = (specs: ReadonlyArray<string>, issues: Array<Issue>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const targets: Array<ReportTarget> = []
    for (const spec of specs) {
      const i = spec.indexOf(":")
      const kind = i === -1 ? spec : spec.slice(0, i)
      const file = i === -1 ? "" : spec.slice(i + 1)
      if (!reportKinds.includes(kind as ReportModule.ReportKind)) {
        issues.push(new Issue({ where: `--report ${spec}`, message: `unknown report kind ${JSON.stringify(kind)}: use junit, json, markdown or html, as KIND:FILE` }))
        continue
      }
      if (file === "") {
        issues.push(new Issue({ where: `--report ${spec}`, message: `no file: write it as ${kind}:FILE, e.g. ${kind}:out/report` }))
        continue
      }
      const abs = path.resolve(file)
      const dir = path.dirname(abs)
      const info = yield* fs.stat(dir).pipe(Effect.option)
      if (Option.isNone(info) || info.value.type !== "Directory") {
        issues.push(new Issue({ where: `--report ${spec}`, message: `folder ${dir} does not exist: create it first` }))
        continue
      }
      const target = yield* fs.stat(abs).pipe(Effect.option)
      if (Option.isSome(target) && target.value.type === "Directory") {
        issues.push(new Issue({ where: `--report ${spec}`, message: `${abs} is a folder: name a file` }))
        continue
      }
      const writable = yield* fs.access(Option.isSome(target) ? abs : dir, { writable: true }).pipe(Effect.isSuccess)
      if (!writable) {
        issues.push(new Issue({ where: `--report ${spec}`, message: `cannot write in ${dir}: check its permissions` }))
        continue
      }
      targets.push({ kind: kind as ReportModule.ReportKind, file: abs })
    }
    return targets
  })

/** the flag that sets each config key, for the messages of `Config.decode` */
const flagOf: Readonly<Record<string, string>> = {
  workers: "--workers",
  retries: "--retries",
  maxFail: "--max-fail",
  timeout: "--timeout",
  worktreeDir: "--worktree-dir",
  keepFailed: "--keep-failed",
  cleanup: "--no-cleanup"
}

/**
 * What `prepare` found valid: the repository, the config, the tests, the store.
 *
 * @since 0.2.0
 * @category models
 */
export interface Prepared {
  readonly repo: Git.RepoInfo
  readonly config: Config.GroveConfig
  readonly tests: ReadonlyArray<TestRequest>
  readonly reports: ReadonlyArray<ReportTarget>
  readonly dbFile: string
  /** --shard I/N */
  readonly shard: Shard.Spec | undefined
  /** the config without the flags (file and environment over the defaults), and the flags */
  readonly configSources: { readonly base: Partial<Config.GroveConfig>; readonly flags: Partial<Config.GroveConfig> }
}

/**
 * Checks every option and plan of `grove run` and lists every problem at once.
 * Relative paths (plans, `--repo`, `--worktree-dir`) are taken from `cwd`: the
 * current folder for the CLI, the served repository for `grove serve`. Creates nothing.
 *
 * @since 0.2.0
 * @category constructors
 */
export const prepare = (
  o: RunOptions,
  cwd: string = process.cwd()
): Effect.Effect<Prepared, InvalidInput, FileSystem.FileSystem | Path.Path | Git.Git> =>
  Effect.gen(function*() {
    const git = yield* Git.Git
    const path = yield* Path.Path
    const issues: Array<Issue> = []
    const flags: { -readonly [K in keyof Config.GroveConfig]?: Config.GroveConfig[K] } = {}

    // the flags decode through the one config Schema, as the file, the variables and a stored snapshot do
    const raw: Record<string, unknown> = {}
    if (Option.isSome(o.workers)) raw.workers = o.workers.value
    if (Option.isSome(o.retries)) raw.retries = o.retries.value
    if (Option.isSome(o.maxFail)) raw.maxFail = o.maxFail.value
    if (o.failFast) {
      if (Option.isSome(o.maxFail)) issues.push(new Issue({ where: "--fail-fast", message: "means --max-fail 1: give one of the two" }))
      raw.maxFail = 1
    }
    if (Option.isSome(o.timeout)) raw.timeout = o.timeout.value
    if (Option.isSome(o.worktreeDir)) raw.worktreeDir = path.resolve(cwd, o.worktreeDir.value)
    if (o.keepFailed) raw.keepFailed = true
    if (o.noCleanup) raw.cleanup = false
    Either.match(Config.decode(raw, (key) => flagOf[key] ?? key), {
      onLeft: (problems) => issues.push(...problems),
      onRight: (decoded) => Object.assign(flags, decoded)
    })
    if (Option.isSome(o.resume) && o.lastFailed) {
      issues.push(new Issue({ where: "--resume", message: "cannot be combined with --last-failed: give one" }))
    }
    const fromStore = Option.isSome(o.resume) || o.lastFailed
    if (fromStore) {
      const flag = Option.isSome(o.resume) ? "--resume" : "--last-failed"
      const what = Option.isSome(o.resume) ? "the session's own tests" : "the tests of the previous session"
      if (o.plans.length > 0 || Option.isSome(o.each)) {
        issues.push(new Issue({ where: flag, message: `runs ${what}: give no plans or --each` }))
      }
      if (o.ref.length > 0) issues.push(new Issue({ where: "--ref", message: `does not apply to ${flag}, which runs ${what} at their refs` }))
      if (Option.isSome(o.resume) && (o.tag.length > 0 || Option.isSome(o.filter))) {
        issues.push(new Issue({ where: o.tag.length > 0 ? "--tag" : "--filter", message: "does not apply to --resume, which runs every test the session has left" }))
      }
    }
    if (Option.isNone(o.each) && o.plans.length === 0 && !fromStore) {
      issues.push(new Issue({ where: "grove run", message: "no tests: give plan files (grove run docs/plans/*.md) or --each CMD ARG..." }))
    }
    if (Option.isSome(o.each) && o.plans.length === 0) {
      issues.push(new Issue({ where: "--each", message: "no ARG: give the arguments after the options, e.g. --each 'npm test -- {}' test/a.js test/b.js" }))
    }
    const reports = yield* checkReports(o.report, issues)
    const shard = Option.isNone(o.shard) ? undefined : Either.match(Shard.parse(o.shard.value), {
      onLeft: (message) => void issues.push(new Issue({ where: "--shard", message })),
      onRight: (spec) => spec
    })
    if (Option.isSome(o.shard) && fromStore) {
      issues.push(new Issue({
        where: "--shard",
        message: `cannot be combined with ${Option.isSome(o.resume) ? "--resume" : "--last-failed"}: a shard is a part of the tests given as plans or --each`
      }))
    }

    const repoInfo = yield* git.repoInfo(path.resolve(cwd, o.repo)).pipe(
      Effect.catchAll((e) => {
        issues.push(new Issue({ where: "--repo", message: `${path.resolve(cwd, o.repo)}: ${e.message}` }))
        return Effect.succeed(undefined)
      })
    )

    // config: flags > GROVE_* environment > grove.config.json > defaults
    const { config, file: fileConfig, env: envConfig } = yield* loadConfig(repoInfo?.root, flags, issues)
    if (repoInfo !== undefined) {
      // refused here, not when the session starts: bad input creates nothing (not even the store)
      yield* Session.worktreeRoot(repoInfo, config.worktreeDir).pipe(
        Effect.catchAll((e) =>
          Effect.sync(() => void issues.push(new Issue({ where: Option.isSome(o.worktreeDir) ? "--worktree-dir" : "worktreeDir", message: e.message })))
        )
      )
    }

    let tests: ReadonlyArray<TestRequest> = []
    if (Option.isSome(o.each)) {
      Either.match(Plan.fromEach(o.each.value, o.plans), {
        onLeft: (e) => issues.push(...e.issues),
        onRight: (requests) => (tests = requests)
      })
    } else if (o.plans.length > 0) {
      const { issues: planIssues, plans: loaded } = yield* loadPlans(o.plans, { repoRoot: repoInfo?.root ?? cwd, cwd })
      issues.push(...planIssues)
      if (repoInfo !== undefined && loaded.length > 0) {
        yield* Plan.checkRefs(loaded, { repo: repoInfo, baseRef: "HEAD" }).pipe(
          Effect.catchAll((e) => Effect.sync(() => void issues.push(...(e._tag === "InvalidInput" ? e.issues : [new Issue({ where: "git", message: e.message })]))))
        )
      }
      tests = loaded.map((p) => p.request)
    }
    if (repoInfo !== undefined) {
      for (const ref of new Set(o.ref)) {
        yield* git.resolveRef(repoInfo, ref).pipe(
          Effect.catchAll((e) => Effect.sync(() => void issues.push(new Issue({ where: `--ref ${ref}`, message: e.message }))))
        )
      }
    }
    Either.match(Plan.atRefs(tests, o.ref), { onLeft: (e) => issues.push(...e.issues), onRight: (t) => (tests = t) })
    Either.match(Plan.select(tests, { tags: o.tag, filter: Option.getOrUndefined(o.filter) }), {
      onLeft: (e) => issues.push(...e.issues),
      onRight: (t) => (tests = t)
    })

    // the store is looked at read-only: a file that is not grove's is refused untouched
    // a cluster's database is also the store unless --db names another (SPEC §10)
    const dbFile = Option.isSome(o.db)
      ? resolveDb(path, o.db.value, cwd)
      : Option.isSome(o.cluster)
      ? o.cluster.value
      : repoInfo === undefined
      ? undefined
      : path.join(repoInfo.commonDir, "grove", "grove.db")
    if (dbFile !== undefined) {
      yield* inspectStore(dbFile).pipe(
        Effect.catchAll((e) => Effect.sync(() => void issues.push(new Issue({ where: Option.isSome(o.db) ? "--db" : "store", message: e.message }))))
      )
    }

    if (issues.length > 0 || repoInfo === undefined || dbFile === undefined) {
      return yield* Effect.fail(new InvalidInput({ issues: (issues.length > 0 ? issues : [new Issue({ where: "--repo", message: "not a repository" })]) as [Issue, ...Array<Issue>] }))
    }
    return { repo: repoInfo, config, tests, reports, dbFile, shard, configSources: { base: { ...fileConfig, ...envConfig }, flags } }
  })

// ---------------------------------------------------------------------------
// grove run
// ---------------------------------------------------------------------------

/**
 * Writes the report files of a session whose folded state is `state` and whose tests
 * are in the store. JSON and JUnit are streamed from the store test by test; the other kinds,
 * and a Markdown summary for `GITHUB_STEP_SUMMARY`, need the whole report, which is
 * read only when one of them is asked for.
 */
const writeReports = (state: SessionState.SessionState, targets: ReadonlyArray<ReportTarget>, shard?: Json.ShardInfo) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const store = yield* Store
    const summaryFile = process.env.GITHUB_STEP_SUMMARY
    const wantsSummary = summaryFile !== undefined && summaryFile !== ""
    const head = ReportModule.fromState(state, [])
    const tests = testStream(store, state.sessionId)
    const streamed = (kind: ReportModule.ReportKind) =>
      kind === "json" && shard !== undefined
        ? Option.some(Json.renderStream({ ...head, shard }, tests))
        : ReportModule.renderStream(kind, head, tests)
    const whole = targets.some((t) => Option.isNone(streamed(t.kind))) || wantsSummary
      ? Option.some(yield* Effect.map(Stream.runCollect(tests), (all) => ReportModule.fromState(state, Chunk.toReadonlyArray(all))))
      : Option.none()
    for (const target of targets) {
      const written: Effect.Effect<void, { readonly message: string }> = Option.match(streamed(target.kind), {
        onSome: (text) => Stream.run(Stream.encodeText(text), fs.sink(target.file)),
        onNone: () =>
          Effect.flatMap(ReportModule.render(target.kind, Option.getOrThrow(whole)), (text) => fs.writeFileString(target.file, text))
      })
      yield* written.pipe(
        Effect.tapError((e) => err(`grove: could not write ${target.file}: ${e.message}`)),
        Effect.ignore
      )
    }
    if (wantsSummary && Option.isSome(whole)) {
      const md = yield* ReportModule.render("markdown", whole.value)
      yield* fs.writeFileString(summaryFile, md + "\n", { flag: "a" }).pipe(
        Effect.tapError((e) => err(`grove: could not append to GITHUB_STEP_SUMMARY: ${e.message}`)),
        Effect.ignore
      )
    }
  }).pipe(Effect.catchAll((e) => err(`grove: ${e.message}`)))

/**
 * Prints the summary of a session from its folded state, streaming the tests it
 * names from the store: failures first (each failing attempt with its log), the flaky
 * tests, the cancelled ones, then the counts.
 */
const printSummary = (style: Plain.Style, state: SessionState.SessionState) =>
  Effect.flatMap(Store, (store) =>
    Stream.runForEach(
      Plain.summary(style, ReportModule.fromState(state, []), (statuses) => testStream(store, state.sessionId, statuses)),
      out
    )).pipe(Effect.catchAll((e) => err(`grove: could not read the summary from the store: ${e.message}`)))

// ---------------------------------------------------------------------------
// --shard I/N
// ---------------------------------------------------------------------------

/**
 * The tests of this shard (in the order given) and what its JSON report records,
 * from the expected durations the store's history gives; says on stderr which part
 * this is, and loudly when there is no history to balance by.
 */
const pickShard = (
  spec: Shard.Spec,
  tests: ReadonlyArray<TestRequest>,
  expected: ReadonlyMap<string, number>,
  dbFile: string
) =>
  Effect.gen(function*() {
    const split = Shard.split(tests.map((t) => t.id), expected, spec.count)
    const part = split.parts[spec.index - 1]!
    const label = `shard ${spec.index}/${spec.count}`
    const mine = `${plural(part.ids.length, "test")} of ${split.total}`
    if (split.withHistory === 0) {
      yield* err(`grove: warning: ${label}: no history in ${dbFile}; split by count (${mine})`)
    } else {
      const unknown = split.total - split.withHistory
      yield* err(
        `grove: ${label}: ${mine}, expected ${formatDuration(part.expectedMs)}` +
          (part.unknown === 0 ? "" : ` + ${plural(part.unknown, "test")} without history`) +
          ` (history in ${dbFile} for ${split.withHistory} of ${split.total}` +
          (unknown === 0 ? "" : `; the ${unknown} without it ${unknown === 1 ? "is" : "are"} spread by count`) + ")"
      )
    }
    const keep = new Set(part.ids)
    return {
      tests: tests.filter((t) => keep.has(t.id)),
      info: new Json.ShardInfo({
        index: spec.index,
        count: spec.count,
        fingerprint: split.fingerprint,
        testsDigest: split.testsDigest,
        historyDigest: split.historyDigest,
        total: split.total,
        withHistory: split.withHistory,
        expectedMs: part.expectedMs
      }, true)
    }
  })

/** the expected durations of `tests` in the store (median of recent PASSED/FLAKY runs) */
const expectedOf = (tests: ReadonlyArray<TestRequest>) =>
  Effect.flatMap(Store, (store) => store.history(tests.map((t) => t.id))).pipe(
    Effect.map((history) => {
      const expected = new Map<string, number>()
      for (const [id, h] of history) if (h.expectedMs !== undefined) expected.set(id, h.expectedMs)
      return expected
    })
  )

/**
 * What a dry run lists: the tests, or what --resume / --last-failed would run, with
 * the store's expected durations. The store is only read, and only when it exists.
 */
const dryRunTests = (o: RunOptions, p: Prepared) =>
  Effect.gen(function*() {
    const exists = yield* storeExists(p.dbFile)
    if (!exists) {
      if (Option.isSome(o.resume)) {
        return yield* Effect.fail(InvalidInput.one("--resume", `there is no session ${JSON.stringify(o.resume.value)}: the store ${p.dbFile} does not exist`))
      }
      return { tests: p.tests, expected: new Map<string, number>() }
    }
    return yield* Effect.gen(function*() {
      const store = yield* Store
      let tests = p.tests
      if (Option.isSome(o.resume)) tests = (yield* store.pending(o.resume.value)).map((t) => t.request)
      if (o.lastFailed) {
        const last = yield* store.lastFailedTests(p.repo.root)
        tests = Option.match(last, { onNone: () => [], onSome: (l) => l.tests.map((t) => t.request) })
        const selected = Plan.select(tests, { tags: o.tag, filter: Option.getOrUndefined(o.filter) })
        if (Either.isLeft(selected)) return yield* Effect.fail(selected.left)
        tests = selected.right
      }
      const history = yield* store.history(tests.map((t) => t.id))
      const expected = new Map<string, number>()
      for (const [id, h] of history) if (h.expectedMs !== undefined) expected.set(id, h.expectedMs)
      return { tests, expected }
    }).pipe(Effect.provide(storeLayer(p.dbFile)))
  })

const dryRun = (prepared: Prepared, expected: ReadonlyMap<string, number> = new Map()) =>
  Effect.gen(function*() {
    const order = Scheduler.make(Scheduler.longestFirstOrder)
    const entries = prepared.tests.map((request, seq) => ({
      seq,
      priority: request.priority,
      expectedMs: expected.get(request.id),
      retry: false,
      resources: request.resources,
      request
    }))
    const sorted = [...entries].sort(order.order)
    yield* out(`grove dry run: ${sorted.length} test${sorted.length === 1 ? "" : "s"} on ${prepared.config.workers} worker${prepared.config.workers === 1 ? "" : "s"}, in start order`)
    for (const e of sorted) {
      const r = e.request
      const bits = [
        r.priority !== 0 ? `priority ${r.priority}` : undefined,
        r.ref !== undefined ? `ref ${r.ref}` : undefined,
        r.resources.length > 0 ? `resources ${r.resources.join(",")}` : undefined,
        `expected ${e.expectedMs === undefined ? "unknown" : formatDuration(e.expectedMs)}`
      ].filter((b) => b !== undefined)
      yield* out(`  ${Plain.safe(r.id)}  ${bits.join("  ")}`)
    }
    return 0
  })

/**
 * What a session runs: new tests, and (for --resume) the tests a dead run left, in
 * the session `id`. `done` is the stored report of a resumed session that has nothing
 * left to run.
 */
interface Work {
  readonly config: Config.GroveConfig
  readonly id: string | undefined
  readonly tests: ReadonlyArray<TestRequest>
  readonly pending: ReadonlyArray<PendingTest>
  readonly done: Option.Option<SessionState.SessionState>
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

/**
 * Reads what --resume and --last-failed run from the store, reaps what a dead run of
 * the resumed session left, and reclaims the worktrees of dead grove runs.
 */
const workOf = (o: RunOptions, p: Prepared): Effect.Effect<Work, InvalidInput | StoreError | GitError, Store | Git.Git | FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const store = yield* Store
    let work: Work = { config: p.config, id: undefined, tests: p.tests, pending: [], done: Option.none() }
    if (Option.isSome(o.resume)) {
      const id = o.resume.value
      yield* store.requireSession(id)
      // the session goes on with the config it was recorded with, under the flags given now
      const recorded = Resume.configOf(yield* store.sessionConfig(id))
      const { base, flags } = p.configSources
      const config = yield* Config.validate({ ...Config.defaults, ...base, ...recorded, ...flags }, (k) => `config ${k}`)
      const prepared = yield* Resume.prepare(p.repo, id, { grace: config.killGrace })
      // a test whose stored script had a secret masked out runs from its plan re-read, or not at all
      const resumed = { ...prepared, pending: yield* Resume.unmask(p.repo.root, prepared.pending) }
      const did = Resume.summarize(resumed)
      yield* err(
        `grove: resuming session ${id} (${resumed.session.status}): ` +
          (did === undefined ? "" : `${did}; `) + `${plural(resumed.pending.length, "test")} left to run`
      )
      const done = resumed.pending.length === 0 && resumed.session.status !== "RUNNING"
        ? yield* stateOf(store, id)
        : Option.none()
      work = { config, id, tests: [], pending: resumed.pending, done }
    } else if (o.lastFailed) {
      const last = yield* store.lastFailedTests(p.repo.root)
      if (Option.isNone(last)) {
        return yield* Effect.fail(InvalidInput.one(
          "--last-failed",
          `the store ${storeName(p.dbFile)} holds no finished session of ${p.repo.root}: run grove without --last-failed first`
        ))
      }
      // a test whose stored script had a secret masked runs from its plan read again, never with ***
      const unmasked = yield* Resume.unmask(p.repo.root, last.value.tests, "--last-failed")
      const selected = Plan.select(unmasked.map((t) => t.request), {
        tags: o.tag,
        filter: Option.getOrUndefined(o.filter)
      })
      if (Either.isLeft(selected)) return yield* Effect.fail(selected.left)
      yield* err(
        `grove: --last-failed: ${plural(last.value.tests.length, "test")} did not pass in session ${last.value.sessionId}` +
          (selected.right.length === last.value.tests.length ? "" : `, ${selected.right.length} selected`)
      )
      work = { ...work, tests: selected.right }
    }
    // a plain run (and a resumed one) takes back the worktrees of grove runs that died
    const reclaimed = yield* Resume.reclaim(p.repo).pipe(
      Effect.catchAll((e) => Effect.as(err(`grove: warning: could not list worktrees to reclaim: ${e.message}`), undefined))
    )
    if (reclaimed !== undefined) {
      if (reclaimed.removed.length > 0) {
        const sessions = [...new Set(reclaimed.removed.map((w) => w.session))]
        yield* err(`grove: removed ${plural(reclaimed.removed.length, "worktree")} left by dead grove runs (session ${sessions.join(", ")})`)
      }
      for (const { error, worktree } of reclaimed.failed) {
        yield* err(`grove: warning: could not remove worktree ${worktree.path} of dead session ${worktree.session}: ${error.message}`)
      }
    }
    return work
  })

const runTests = (o: RunOptions) =>
  Effect.gen(function*() {
    const signals = yield* Signals.listen
    const firstSignal = yield* Deferred.make<Signals.Signal>()
    const orchestrator = yield* Ref.make(Option.none<Orchestrator.Orchestrator["Type"]>())
    // Where grove's messages (signal notices) and logs (store warnings …) go: stderr, and above
    // the live view while it is on screen. The logger replaces the default one for the whole
    // run, so that fibers forked before the view started log through it too; a Logger cannot
    // wait, so it reads the route as it is.
    const toStderr = (text: string): void => void process.stderr.write(text.endsWith("\n") ? text : text + "\n")
    const route = { print: err, log: toStderr }
    yield* Effect.locallyScopedWith(FiberRef.currentLoggers, (loggers) =>
      HashSet.add(HashSet.remove(loggers, Logger.defaultLogger), Live.logger(() => route.log)))
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      const signal = yield* Queue.take(signals)
      const first = yield* Deferred.succeed(firstSignal, signal)
      const orch = yield* Ref.get(orchestrator)
      const say = route.print
      if (first) yield* say(`grove: ${signal}: stopping, terminating running tests (again to skip the grace period)`)
      else yield* say(`grove: ${signal} again: killing running tests now, then cleaning up`)
      if (Option.isSome(orch)) yield* orch.value.stop({ interrupted: true, immediate: !first })
    })))

    const prepared = yield* Effect.raceFirst(
      prepare(o).pipe(Effect.map(Option.some)),
      Deferred.await(firstSignal).pipe(Effect.as(Option.none()))
    )
    if (Option.isNone(prepared)) return Signals.exitCodeOf(yield* Deferred.await(firstSignal))
    if (o.dryRun) {
      const listed = yield* dryRunTests(o, prepared.value)
      const spec = prepared.value.shard
      const tests = spec === undefined
        ? listed.tests
        : (yield* pickShard(spec, listed.tests, listed.expected, prepared.value.dbFile)).tests
      return yield* dryRun({ ...prepared.value, tests }, listed.expected)
    }

    const style = styleOf(process.stdout)
    const p0 = prepared.value
    if ((Option.isSome(o.resume) || o.lastFailed) && !(yield* storeExists(p0.dbFile))) {
      return yield* Effect.fail(InvalidInput.one(
        Option.isSome(o.resume) ? "--resume" : "--last-failed",
        Option.isSome(o.resume)
          ? `there is no session ${JSON.stringify(o.resume.value)}: the store ${p0.dbFile} does not exist; pass --db with the store that holds it`
          : `the store ${p0.dbFile} does not exist, so there is no previous session: run grove without --last-failed first`
      ))
    }
    // from here on the session's store is in the context, opened once for the whole run
    return yield* Effect.gen(function*() {
    const shard = p0.shard === undefined
      ? undefined
      : yield* Effect.flatMap(expectedOf(p0.tests), (expected) => pickShard(p0.shard!, p0.tests, expected, p0.dbFile))
    const work = yield* workOf(o, shard === undefined ? p0 : { ...p0, tests: shard.tests })
    // on a cluster: as many workers as its runners have together (at most --workers)
    const remote = Option.isNone(o.cluster) ? undefined : yield* coordinator(o.cluster.value)
    const workers = remote === undefined
      ? work.config.workers
      : Math.min(remote.workers, p0.configSources.flags.workers ?? remote.workers)
    if (remote !== undefined) {
      yield* err(
        `grove: cluster of ${remote.runners.length} runner${remote.runners.length === 1 ? "" : "s"} ` +
          `(${remote.runners.map((r) => `${r.name} ×${r.workers}`).join(", ")}): ${workers} worker${workers === 1 ? "" : "s"}`
      )
    }
    const p: Prepared = { ...p0, config: { ...work.config, workers } }
    if (Option.isSome(work.done)) {
      const done = work.done.value
      const cancelled = done.counts.cancelled
      yield* err(
        `grove: session ${done.sessionId} has no test left to run` +
          (cancelled === 0 ? "" : ` (its ${cancelled} CANCELLED test${cancelled === 1 ? "" : "s"} stay so: --last-failed runs them again)`)
      )
      yield* printSummary(style, done)
      yield* writeReports(done, p.reports)
      return ReportModule.exitCode(ReportModule.fromState(done, []))
    }
    const count = work.tests.length + work.pending.length
    const runWork = (orch: Orchestrator.Orchestrator["Type"]) =>
      Effect.zipRight(Effect.zipRight(orch.submitPending(work.pending), orch.submitBatch(work.tests)), orch.awaitIdle)
    // the session over the CLI's Git and Harness (Cli.layer) and the store opened above
    const live = Orchestrator.layerSession({ repo: p.repo.root, baseRef: "HEAD", id: work.id }).pipe(
      Layer.provide(Config.layer(p.config)),
      Layer.provide(Layer.succeed(Runner.RemoteExecutor, Option.fromNullable(remote?.executor)))
    )
    const final = yield* Ref.make(Option.none<Effect.Effect<SessionState.SessionState>>())
    yield* Effect.scoped(Effect.gen(function*() {
      const orch = yield* Orchestrator.Orchestrator
      yield* Ref.set(orchestrator, Option.some(orch))
      yield* Ref.set(final, Option.some(orch.state))
      const events = yield* orch.subscribe
      // what the view starts from: the events after it are in the subscription
      const snapshot = yield* orch.state
      yield* out(Plain.sessionLine(style, {
        id: orch.session.id,
        tests: count,
        workers: p.config.workers,
        baseRef: orch.session.baseRef,
        baseSha: orch.session.baseSha,
        baseBranch: orch.session.baseBranch
      }))
      if (yield* Deferred.isDone(firstSignal)) yield* orch.stop({ interrupted: true })
      // a cluster whose database is gone: stop with a clear message, the session stays resumable
      if (remote !== undefined) {
        yield* Effect.forkScoped(Effect.flatMap(remote.lost, (message) => Effect.zipRight(err(message), orch.stop({ interrupted: true }))))
      }
      if (count === 0 && work.id === undefined) yield* err("grove: warning: no test matched; nothing to run")
      // on a terminal: the live view, erased when its scope closes (also on interruption)
      if (!o.quiet && process.stdout.isTTY === true && process.env.TERM !== "dumb") {
        return yield* Effect.scoped(Effect.gen(function*() {
          const view = yield* Live.start(events, Live.stdoutOptions({ workers: p.config.workers }, style.color), snapshot)
          yield* Effect.acquireRelease(
            Effect.sync(() => Object.assign(route, { print: view.print, log: view.log })),
            () => Effect.sync(() => Object.assign(route, { print: err, log: toStderr }))
          )
          return yield* runWork(orch)
        }))
      }
      // an event taken is printed even when the printer is interrupted right after the take
      const print = ({ event }: Logged) =>
        event._tag === "TestFinished" && !o.quiet ? out(Plain.testLine(style, event.result)) : Effect.void
      const printer = yield* Effect.fork(Effect.forever(Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(Queue.take(events)), print)
      )))
      const state = yield* runWork(orch)
      // print what the printer has not reached yet, in order
      yield* Fiber.interrupt(printer)
      for (const logged of yield* Queue.takeAll(events)) yield* print(logged)
      return state
    }).pipe(Effect.provide(live))).pipe(Effect.provide(Scheduler.layer))

    // the session has ended (SessionFinished is in the fold): its summary and reports
    const state = yield* Effect.flatMap(Ref.get(final), Option.getOrThrow)
    yield* printSummary(style, state)
    yield* writeReports(state, p.reports, shard?.info)
    const signal = yield* Deferred.poll(firstSignal)
    if (Option.isSome(signal)) return Signals.exitCodeOf(yield* signal.value)
    return ReportModule.exitCode(ReportModule.fromState(state, []))
    }).pipe(Effect.provide(storeLayer(p0.dbFile)))
  })

/**
 * @since 0.1.0
 * @category commands
 */
export const run = Command.make("run", runOptions, (o) =>
  Effect.scoped(runTests(o)).pipe(onInvalid, Effect.flatMap(setExit))).pipe(
    Help.command(runOptions, {
      summary: "Run test plans in parallel, each test in its own git worktree.",
      description: "Prints the session id first, a line per finished test, then a summary with the failures first. " +
        "Exits 0 when every test PASSED or was FLAKY (or none was selected), 1 otherwise, 2 on invalid input.",
      examples: [
        "grove run docs/plans/*.md --workers 4 --report junit:out/junit.xml",
        "grove run --each 'npx vitest run {}' test/*.test.ts --retries 0",
        "grove run --last-failed",
        "grove run docs/plans/*.md --shard 2/4 --report json:shard-2.json   (then: grove merge shard-*.json)"
      ]
    })
  )

