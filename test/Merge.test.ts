/**
 * `grove run --shard I/N` and `grove merge` end to end: the BUILT binary
 * (`npm run build` first when running this file alone) on real repositories,
 * with real SQLite stores holding the history the split is made from.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Report } from "../src/Domain.js"
import * as Html from "../src/report/Html.js"
import * as Json from "../src/report/Json.js"
import * as Shard from "../src/Shard.js"
import * as Cli from "./support/cli.js"
import * as Fixture from "./golden/fixture.js"
import * as Conformance from "./support/conformance.js"
import { makeRepo, type TestRepo } from "./support/repo.js"

type Env = NodeContext.NodeContext | Scope.Scope

/** the timeout is a guard for a shared 2-core machine, not an assertion */
const live = (name: string, body: () => Effect.Effect<void, unknown, Env>, timeout = 240_000) =>
  it.live(name, () => body().pipe(Effect.scoped, Effect.provide(NodeContext.layer)), timeout)

const show = (o: Cli.Outcome) => `exit ${o.code}${o.signal === null ? "" : ` (${o.signal})`}\n--- stdout\n${o.stdout}\n--- stderr\n${o.stderr}`

/** seven plans of different lengths; plans/p4 fails */
const plans: Record<string, string> = Object.fromEntries(
  [0.6, 0.1, 0.3, 0.2, 0.5, 0.1, 0.4].map((s, i) => [
    `plans/p${i + 1}.md`,
    Cli.plan({ title: `plan ${i + 1}`, front: "retries: 0", steps: [i === 3 ? `sleep ${s}; exit 3` : `sleep ${s}`] })
  ])
)
const planFiles = Object.keys(plans).sort()
const allIds = planFiles.map((f) => f.replace(/\.md$/, ""))

interface Setup {
  readonly repo: TestRepo
  /** a file in the test's output folder */
  readonly f: (name: string) => string
  readonly grove: (args: ReadonlyArray<string>) => Effect.Effect<Cli.Outcome>
}

const setup = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const repo = yield* makeRepo
  yield* Cli.writeFiles(repo.root, plans)
  const out = Path.join(repo.dir, "out")
  yield* fs.makeDirectory(out)
  return {
    repo,
    f: (name: string) => Path.join(out, name),
    grove: (args: ReadonlyArray<string>) => Cli.run(args, { cwd: repo.root })
  } satisfies Setup
})

const readReport = (file: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.flatMap(fs.readFileString(file), (text) => Json.decodeWithShard(JSON.parse(text) as unknown)))

const runShard = (s: Setup, index: number, count: number, db: string, extra: ReadonlyArray<string> = []) =>
  s.grove(["run", ...planFiles, "--workers", "2", "--shard", `${index}/${count}`, "--db", db, "--report", `json:${s.f(`s${index}of${count}.json`)}`, ...extra])

const ids = (report: Report): Array<string> => report.tests.map((t) => t.id)
const count = (text: string, what: string) => text.split(what).length - 1

describe("the shard field of the JSON report, and the HTML lane groups", () => {
  const shard = new Json.ShardInfo({
    index: 2,
    count: 3,
    fingerprint: "f".repeat(64),
    testsDigest: "t".repeat(64),
    historyDigest: "h".repeat(64),
    total: 20,
    withHistory: 18,
    expectedMs: 1234.5
  })

  it.effect("is written before the tests, the same whole or streamed, and read back", () =>
    Effect.gen(function*() {
      const whole = Json.render(Fixture.report, shard)
      const streamed = Chunk.join(yield* Stream.runCollect(Json.renderStream({ ...Fixture.report, shard }, Stream.fromIterable(Fixture.report.tests))), "")
      assert.strictEqual(streamed, whole)
      assert.deepStrictEqual(Object.keys(JSON.parse(whole) as object), ["version", "session", "totals", "shard", "tests"])
      const back = yield* Json.decodeWithShard(JSON.parse(whole) as unknown)
      assert.deepStrictEqual(back.shard, Option.some(shard))
      assert.deepStrictEqual(back.report, Fixture.report)
      // without a shard: the report as it always was
      assert.strictEqual(Json.render(Fixture.report), Json.render(Fixture.report, undefined))
      assert.notInclude(Json.render(Fixture.report), "shard")
      assert.deepStrictEqual((yield* Json.decodeWithShard(JSON.parse(Json.render(Fixture.report)) as unknown)).shard, Option.none())
    }))

  it("draws one group of worker lanes per shard, each with its own tests' attempts", () => {
    const tests = Fixture.report.tests.map((t) => t.id as string)
    const groups = [
      { label: "Shard 1/2", note: "session a", workers: 2, tests: tests.slice(0, 3) },
      { label: "Shard 2/2", note: "session b", workers: 1, tests: tests.slice(3) }
    ]
    const html = Html.render(Fixture.report, { laneGroups: groups })
    const timeline = html.slice(0, html.indexOf("<div class=\"tl-axis\""))
    const parts = timeline.split(/<div class="lane-group" data-lane-group="\d+">/).slice(1)
    assert.strictEqual(parts.length, 2)
    groups.forEach((g, i) => {
      const part = parts[i]!
      assert.include(part, `<b>${g.label}</b><small>${g.note} · `)
      assert.strictEqual(count(part, "data-lane=\""), g.workers + count(part, "outside 1.."), `lanes of ${g.label}`)
      const bars = [...part.matchAll(/data-test="([^"]*)"/g)].map((m) => m[1])
      for (const id of new Set(bars)) assert.include(g.tests.map((t) => Html.escapeHtml(t)), id, `${id} drawn in ${g.label}`)
      const attempts = Fixture.report.tests.filter((t) => g.tests.includes(t.id)).reduce((n, t) => n + t.attempts.length, 0)
      assert.strictEqual(count(part, "data-attempt="), attempts, g.label)
    })
    // tests in no group are drawn too, in a group of their own
    const partial = Html.render(Fixture.report, { laneGroups: groups.slice(0, 1) })
    assert.include(partial, "<b>Other tests</b>")
    const others = partial.slice(partial.indexOf("<b>Other tests</b>"), partial.indexOf("<div class=\"tl-axis\""))
    assert.notInclude(others, "outside 1..", "the other tests' group has the lanes of the workers they ran on")
    assert.strictEqual(count(partial, "data-attempt="), count(Html.render(Fixture.report), "data-attempt="))
    // no groups: the page without group markup or style
    assert.strictEqual(Html.render(Fixture.report, { laneGroups: [] }), Html.render(Fixture.report))
    assert.notInclude(Html.render(Fixture.report), "lane-group")
  })
})

describe("grove run --shard and grove merge (built binary, real repositories)", () => {
  live("three shards by history run every test once; their merge counts what an unsharded run counts", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const s = yield* setup
      // the unsharded run: the reference, and the history every shard reads (p4 fails: it has none)
      const full = yield* s.grove(["run", ...planFiles, "--workers", "2", "--db", s.f("base.db"), "--report", `json:${s.f("full.json")}`, "--report", `junit:${s.f("full.xml")}`])
      assert.strictEqual(full.code, 1, show(full))
      const reference = (yield* readReport(s.f("full.json"))).report

      // every CI machine restores the same store
      const shards = []
      for (const i of [1, 2, 3]) {
        yield* fs.copyFile(s.f("base.db"), s.f(`m${i}.db`))
        const o = yield* runShard(s, i, 3, s.f(`m${i}.db`))
        assert.include([0, 1], o.code, show(o))
        const first = o.stderr.split("\n")[0] ?? ""
        assert.match(first, new RegExp(`^grove: shard ${i}/3: \\d+ tests? of 7, expected \\S+( \\+ 1 test without history)? \\(history in .*m${i}\\.db for 6 of 7; the 1 without it is spread by count\\)$`), show(o))
        assert.match(o.stdout.split("\n")[0] ?? "", /^grove session /, show(o))
        shards.push(yield* readReport(s.f(`s${i}of3.json`)))
      }
      const infos = shards.map((r) => r.shard._tag === "Some" ? r.shard.value : assert.fail("a shard's report has no shard field"))
      assert.deepStrictEqual(infos.map((i) => [i.index, i.count, i.total, i.withHistory]), [[1, 3, 7, 6], [2, 3, 7, 6], [3, 3, 7, 6]])
      assert.strictEqual(new Set(infos.map((i) => i.fingerprint)).size, 1, "one split, one fingerprint")
      // every test in exactly one shard
      const all = shards.flatMap((r) => ids(r.report))
      assert.deepStrictEqual([...all].sort(), allIds)
      // the split is the one of the history: one run, so each passing test's duration in it
      const durations = new Map(reference.tests.filter((t) => t.status === "PASSED").map((t) => [t.id as string, t.durationMs]))
      const expected = Shard.split(allIds, durations, 3)
      assert.deepStrictEqual(shards.map((r) => [...ids(r.report)].sort()), expected.parts.map((p) => p.ids))
      assert.deepStrictEqual(infos.map((i) => i.expectedMs), expected.parts.map((p) => p.expectedMs))
      assert.strictEqual(infos[0]!.fingerprint, expected.fingerprint)

      const merged = yield* s.grove([
        "merge", s.f("s3of3.json"), s.f("s1of3.json"), s.f("s2of3.json"),
        "--report", `json:${s.f("merged.json")}`, "--report", `junit:${s.f("merged.xml")}`, "--report", `html:${s.f("merged.html")}`
      ])
      assert.strictEqual(merged.code, full.code, `the same exit code as the unsharded run\n${show(merged)}`)
      assert.match(merged.stdout, /^grove merge: 3 shards of split [0-9a-f]{12} \(sessions .*\): 7 tests\n/, show(merged))
      assert.include(merged.stdout, "plans/p4", "the summary names the failure")
      assert.include(merged.stdout, "PARTIAL_SUCCESS", show(merged))

      const report = (yield* readReport(s.f("merged.json")))
      assert.isTrue(report.shard._tag === "None", "the merged report is not a shard")
      assert.deepStrictEqual([...ids(report.report)].sort(), allIds)
      assert.deepStrictEqual(ids(report.report), shards.flatMap((r) => ids(r.report)), "shard by shard, in index order")
      const { successRate: _a, ...mergedCounts } = report.report.totals
      const { successRate: _b, ...referenceCounts } = reference.totals
      assert.deepStrictEqual(mergedCounts, referenceCounts)
      assert.strictEqual(report.report.totals.successRate, reference.totals.successRate)
      assert.strictEqual(report.report.session.status, reference.session.status)
      assert.strictEqual(report.report.session.workers, 6)
      assert.strictEqual(report.report.session.baseSha, reference.session.baseSha)
      for (const t of report.report.tests) {
        assert.strictEqual(t.status, reference.tests.find((r) => r.id === t.id)?.status, t.id)
      }

      const xml = yield* fs.readFileString(s.f("merged.xml"))
      const fullXml = yield* fs.readFileString(s.f("full.xml"))
      assert.strictEqual(count(xml, "<testcase "), 7)
      for (const id of allIds) assert.strictEqual(count(xml, `name="${id}"`), 1, id)
      assert.match(xml, /<testsuite [^>]*tests="7" failures="1" errors="0" skipped="0"/)
      assert.strictEqual(count(xml, "<failure"), count(fullXml, "<failure"))
      if (Conformance.decision._tag === "Validate") {
        const outcome = yield* Conformance.validator(Conformance.decision.path)(xml)
        assert.isTrue(outcome.valid, outcome.errors.join("\n"))
      }

      const html = yield* fs.readFileString(s.f("merged.html"))
      assert.strictEqual(count(html, "data-lane-group="), 3)
      for (const i of [1, 2, 3]) assert.include(html, `<b>Shard ${i}/3</b>`)
      assert.strictEqual(count(html, "data-attempt="), 7)
      assert.notInclude(yield* fs.readFileString(s.f("full.json")), "\"shard\"", "an unsharded report has no shard field")
    }))

  live("without history the split is by count and says so first; merge refuses what does not fold, naming the files, writing nothing", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const s = yield* setup
      const sizes: Array<number> = []
      for (const i of [1, 2, 3]) {
        const db = s.f(`fresh${i}.db`)
        const o = yield* runShard(s, i, 3, db, ["--quiet"])
        const first = o.stderr.split("\n")[0] ?? ""
        assert.strictEqual(first.startsWith(`grove: warning: shard ${i}/3: no history in ${db}; split by count`), true, show(o))
        sizes.push((yield* readReport(s.f(`s${i}of3.json`))).report.tests.length)
      }
      assert.deepStrictEqual(sizes, [3, 2, 2])
      const [s1, s2, s3] = [1, 2, 3].map((i) => s.f(`s${i}of3.json`))

      const out = s.f("out.json")
      const refused = (args: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const o = yield* s.grove(["merge", ...args, "--report", `json:${out}`])
          assert.strictEqual(o.code, 2, show(o))
          assert.match(o.stderr, /^grove merge: \d+ problems? found, nothing was written:\n/, show(o))
          assert.isFalse(Fs.existsSync(out), `a refused merge wrote ${out}`)
          return o.stderr
        })

      // a missing shard
      const missing = yield* refused([s1!, s3!])
      assert.include(missing, "missing shard 2/3")
      assert.include(missing, `1/3 (${s1})`)
      assert.include(missing, `3/3 (${s3})`)

      // a shard twice, under another name
      yield* fs.copyFile(s2!, s.f("again.json"))
      const duplicate = yield* refused([s1!, s2!, s.f("again.json"), s3!])
      assert.include(duplicate, `${s2}, ${s.f("again.json")}: are all shard 2/3`)

      // the same file twice
      assert.include(yield* refused([s1!, s2!, s2!, s3!]), `${s2}: is given twice`)

      // a shard of another N
      const other = yield* runShard(s, 1, 2, s.f("fresh-n2.db"), ["--quiet"])
      assert.include([0, 1], other.code, show(other))
      const otherN = yield* refused([s.f("s1of2.json"), s2!, s3!])
      assert.include(otherN, "fingerprints differ")
      assert.include(otherN, `${s.f("s1of2.json")} (shard 1/2)`)
      assert.include(otherN, "different numbers of shards")

      // a shard split from other history
      const base = yield* s.grove(["run", ...planFiles, "--db", s.f("base.db"), "--quiet"])
      assert.include([0, 1], base.code, show(base))
      yield* fs.copyFile(s.f("base.db"), s.f("hist.db"))
      yield* fs.makeDirectory(s.f("hist"))
      const withHistory = yield* s.grove(["run", ...planFiles, "--shard", "2/3", "--db", s.f("hist.db"), "--report", `json:${s.f("hist/s2.json")}`, "--quiet"])
      assert.include([0, 1], withHistory.code, show(withHistory))
      const otherHistory = yield* refused([s1!, s.f("hist/s2.json"), s3!])
      assert.include(otherHistory, "fingerprints differ")
      assert.include(otherHistory, "different tests or history")

      // a test in two shards (an edited report)
      const one = JSON.parse(yield* fs.readFileString(s1!)) as { tests: Array<{ id: string }> }
      const two = JSON.parse(yield* fs.readFileString(s2!)) as { tests: Array<unknown> }
      two.tests.push(one.tests[0]!)
      yield* fs.writeFileString(s.f("edited.json"), JSON.stringify(two))
      const inTwo = yield* refused([s1!, s.f("edited.json"), s3!])
      assert.include(inTwo, `test "${one.tests[0]!.id}" is in ${s1} (shard 1/3) and in ${s.f("edited.json")} (shard 2/3)`)

      // files that are not grove JSON reports
      yield* fs.writeFileString(s.f("notes.txt"), "hello\n")
      yield* fs.writeFileString(s.f("other.json"), JSON.stringify({ version: 1, session: { id: "x" } }))
      const notReports = yield* refused([s1!, s.f("notes.txt"), s.f("other.json"), s.f("nowhere.json")])
      assert.include(notReports, `${s.f("notes.txt")}: is not JSON`)
      assert.include(notReports, `${s.f("other.json")}: is not a grove JSON report (session.status: is missing)`)
      assert.include(notReports, `${s.f("nowhere.json")}: does not exist`)

      // a report of an unsharded run among shards
      yield* fs.makeDirectory(s.f("plain"))
      const plain = yield* s.grove(["run", "plans/p2.md", "--db", s.f("plain.db"), "--report", `json:${s.f("plain/p2.json")}`, "--quiet"])
      assert.strictEqual(plain.code, 0, show(plain))
      assert.include(yield* refused([s1!, s2!, s3!, s.f("plain/p2.json")]), `${s.f("plain/p2.json")}: is the report of a run without --shard`)

      // and the three shards do merge
      const ok = yield* s.grove(["merge", s1!, s2!, s3!, "--report", `json:${out}`])
      assert.strictEqual(ok.code, 1, show(ok))
      assert.deepStrictEqual([...ids((yield* readReport(out)).report)].sort(), allIds)
    }))

  live("reports of runs without --shard merge when no test is in two of them", () =>
    Effect.gen(function*() {
      const s = yield* setup
      const a = yield* s.grove(["run", "plans/p1.md", "plans/p2.md", "--db", s.f("a.db"), "--report", `json:${s.f("a.json")}`, "--quiet"])
      const b = yield* s.grove(["run", "plans/p3.md", "--db", s.f("b.db"), "--report", `json:${s.f("b.json")}`, "--quiet"])
      assert.strictEqual(a.code, 0, show(a))
      assert.strictEqual(b.code, 0, show(b))
      const o = yield* s.grove(["merge", s.f("a.json"), s.f("b.json"), "--report", `json:${s.f("ab.json")}`, "--report", `html:${s.f("ab.html")}`])
      assert.strictEqual(o.code, 0, show(o))
      assert.match(o.stdout, /^grove merge: 2 reports \(sessions .*\): 3 tests/, show(o))
      const merged = (yield* readReport(s.f("ab.json"))).report
      assert.deepStrictEqual(ids(merged), ["plans/p1", "plans/p2", "plans/p3"])
      assert.strictEqual(merged.session.status, "COMPLETE")
      assert.strictEqual(merged.totals.passed, 3)
      const html = Fs.readFileSync(s.f("ab.html"), "utf8")
      assert.strictEqual(count(html, "data-lane-group="), 2)

      const again = yield* s.grove(["merge", s.f("a.json"), s.f("ab.json")])
      assert.strictEqual(again.code, 2, show(again))
      assert.include(again.stderr, `test "plans/p1" is in ${s.f("a.json")} and in ${s.f("ab.json")}`)
      assert.include(again.stderr, "merge reports of different tests")
    }))

  live("a bad --shard is a flag error naming --shard and the form I/N, and creates nothing", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const s = yield* setup
      for (const bad of ["0/3", "4/3", "a/b", "3"]) {
        const o = yield* s.grove(["run", ...planFiles, "--shard", bad, "--report", `json:${s.f("never.json")}`])
        assert.strictEqual(o.code, 2, show(o))
        assert.include(o.stderr, `--shard: `, show(o))
        assert.include(o.stderr, `I/N`, show(o))
        assert.include(o.stderr, JSON.stringify(bad), show(o))
        assert.strictEqual(o.stdout, "", show(o))
      }
      const resumed = yield* s.grove(["run", "--last-failed", "--shard", "1/2"])
      assert.strictEqual(resumed.code, 2, show(resumed))
      assert.include(resumed.stderr, "--shard: cannot be combined with --last-failed")
      assert.isFalse(yield* fs.exists(s.f("never.json")))
      assert.isFalse(yield* fs.exists(Path.join(s.repo.commonDir, "grove")), "no store")
      assert.isFalse(yield* fs.exists(Path.join(s.repo.dir, "repo.grove")), "no worktree folder")
      assert.deepStrictEqual(yield* Cli.worktreePaths(s.repo.root), [s.repo.root])
    }))

  live("a dry run lists the shard's tests only", () =>
    Effect.gen(function*() {
      const s = yield* setup
      const o = yield* s.grove(["run", ...planFiles, "--shard", "2/3", "--dry-run", "--db", s.f("none.db")])
      assert.strictEqual(o.code, 0, show(o))
      assert.match(o.stderr, /^grove: warning: shard 2\/3: no history in .*none\.db; split by count \(2 tests of 7\)/, show(o))
      assert.match(o.stdout, /^grove dry run: 2 tests on /, show(o))
      // by count in id order: p2 and p5 are the second shard's
      assert.include(o.stdout, "plans/p2")
      assert.include(o.stdout, "plans/p5")
      assert.isFalse(Fs.existsSync(s.f("none.db")), "a dry run creates no store")
    }))
})
