/**
 * `grove merge REPORT.json... [--report KIND:FILE]...` (SPEC §10): one report from
 * the JSON reports of the shards of one split (`grove run --shard I/N`).
 *
 * Everything is checked before anything is written, and every problem is listed at
 * once (exit 2): a file that is not a grove JSON report, reports of shards mixed
 * with reports of unsharded runs, fingerprints that differ, a shard given twice or
 * missing, a test in two reports, reports at different commits, a session that was
 * still running, and shards whose tests together are not the tests that were split.
 *
 * Reports of runs that were not sharded may be merged too (e.g. jobs split by hand):
 * grove cannot know then whether one is missing, so only the rules that need no
 * split apply (no test twice, one commit, none still running).
 *
 * The merged report is made by `Report.make` (the one fold) from the shards'
 * results, shard by shard: its start is the earliest shard's, its end the latest's,
 * its workers the shards' together; it is INTERRUPTED when a shard was. The summary
 * and the exit code are those `grove run` gives for that report.
 *
 * @since 0.3.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import type { Report, TestResult } from "../Domain.js"
import { Issue } from "../GroveError.js"
import { oneLine } from "../internal/text.js"
import * as ReportModule from "../Report.js"
import * as Html from "../report/Html.js"
import * as Json from "../report/Json.js"
import * as Shard from "../Shard.js"
import * as Plain from "../view/Plain.js"
import * as Help from "./help.js"
import { checkReports, type ReportTarget } from "./run.js"
import { err, onInvalid, out, setExit, styleOf } from "./shared.js"

const mergeOptions = {
  files: Args.text({ name: "REPORT.json" }).pipe(
    Args.repeated,
    Help.arg({
      text: "The JSON reports of the shards (grove run --shard I/N --report json:FILE), in any order.",
      example: "grove merge shard-*.json"
    })
  ),
  report: Options.text("report").pipe(
    Options.withPseudoName("KIND:FILE"),
    Options.repeated,
    Help.option({
      text: "Write the merged report to FILE; KIND is junit, json, markdown or html (one lane group per shard).",
      example: "--report junit:out/junit.xml"
    })
  )
}

/** one report file, read */
interface Loaded {
  readonly file: string
  readonly report: Report
  readonly shard: Option.Option<Json.ShardInfo>
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`
const short = (digest: string) => digest.slice(0, 12)
const label = (s: Json.ShardInfo) => `shard ${s.index}/${s.count}`
const list = (items: ReadonlyArray<string>) => items.join(", ")

/** reads one file; a problem becomes an issue naming the file */
const load = (file: string, issues: Array<Issue>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(Effect.either)
    if (text._tag === "Left") {
      const missing = text.left._tag === "SystemError" && text.left.reason === "NotFound"
      issues.push(new Issue({
        where: file,
        message: missing ? "does not exist: give the path of a shard's JSON report" : `cannot be read: ${text.left.message}`
      }))
      return Option.none<Loaded>()
    }
    const json = yield* Effect.try(() => JSON.parse(text.right) as unknown).pipe(Effect.either)
    if (json._tag === "Left") {
      const why = json.left.error instanceof Error ? json.left.error.message : String(json.left.error)
      issues.push(new Issue({ where: file, message: `is not JSON (${why}): give a report written by grove run --report json:FILE` }))
      return Option.none<Loaded>()
    }
    const decoded = yield* Json.decodeWithShard(json.right).pipe(Effect.either)
    if (decoded._tag === "Left") {
      const found = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
      const why = found.slice(0, 3).map((i) => `${i.path.length === 0 ? "expected an object with version, session, totals and tests" : `${i.path.join(".")}: ${i.message}`}`)
      issues.push(new Issue({
        where: file,
        message: `is not a grove JSON report (${why.join("; ")}${found.length > 3 ? `; and ${found.length - 3} more` : ""}): ` +
          "give a report written by grove run --report json:FILE"
      }))
      return Option.none<Loaded>()
    }
    return Option.some<Loaded>({ file, ...decoded.right })
  })

/** a test in two reports: an issue naming the first ten */
const twice = (loaded: ReadonlyArray<Loaded>): Array<Issue> => {
  const issues: Array<Issue> = []
  const seen = new Map<string, string>()
  const found: Array<string> = []
  for (const l of loaded) {
    const where = Option.match(l.shard, { onNone: () => l.file, onSome: (s) => `${l.file} (${label(s)})` })
    for (const t of l.report.tests) {
      const first = seen.get(t.id)
      if (first === undefined) seen.set(t.id, where)
      else found.push(`test ${JSON.stringify(oneLine(t.id))} is in ${first} and in ${where}`)
    }
  }
  if (found.length > 0) {
    const more = found.length - 10
    issues.push(new Issue({
      where: "tests",
      message: `${found.slice(0, 10).join("; ")}${more > 0 ? `; and ${more} more` : ""}: ` +
        (loaded.some((l) => Option.isSome(l.shard))
          ? "a test belongs to one shard of a split (was a report edited?)"
          : "a merged report holds each test once: merge reports of different tests")
    }))
  }
  return issues
}

/** every rule of the module's doc; the issues, none when the reports merge */
const check = (loaded: ReadonlyArray<Loaded>): Array<Issue> => {
  const issues: Array<Issue> = []
  const sharded = loaded.filter((l) => Option.isSome(l.shard))
  const plain = loaded.filter((l) => Option.isNone(l.shard))
  if (sharded.length > 0 && plain.length > 0) {
    for (const l of plain) {
      issues.push(new Issue({
        where: l.file,
        message: `is the report of a run without --shard, while ${list(sharded.map((s) => s.file))} are shards: merge the shards of one split only`
      }))
    }
  }
  for (const l of loaded) {
    if (l.report.session.status === "RUNNING") {
      issues.push(new Issue({
        where: l.file,
        message: `session ${l.report.session.id} was still running when this report was written: merge the report grove run writes when it ends`
      }))
    }
  }
  const shas = new Map<string, Array<string>>()
  for (const l of loaded) shas.set(l.report.session.baseSha, [...(shas.get(l.report.session.baseSha) ?? []), l.file])
  if (shas.size > 1) {
    issues.push(new Issue({
      where: list(loaded.map((l) => l.file)),
      message: `ran at different commits (${[...shas].map(([sha, files]) => `${sha.slice(0, 10)}: ${list(files)}`).join("; ")}): ` +
        "a merged report is of one commit; run every shard at the same one"
    }))
  }
  if (issues.length > 0) return issues
  if (sharded.length === 0) return twice(loaded)

  // the shards of one split
  const shards = sharded.map((l) => ({ ...l, info: Option.getOrThrow(l.shard) }))
  const byPrint = new Map<string, Array<(typeof shards)[number]>>()
  for (const s of shards) byPrint.set(s.info.fingerprint, [...(byPrint.get(s.info.fingerprint) ?? []), s])
  if (byPrint.size > 1) {
    const groups = [...byPrint.values()].map((g) => {
      const i = g[0]!.info
      return `${list(g.map((s) => `${s.file} (${label(s.info)})`))} have ${short(i.fingerprint)}… (${plural(i.total, "test")}, ` +
        `history of ${i.withHistory}: ${short(i.historyDigest)}…)`
    })
    const counts = new Set(shards.map((s) => s.info.count))
    issues.push(new Issue({
      where: list(shards.map((s) => s.file)),
      message: `the shards' fingerprints differ: ${groups.join("; ")}. ` +
        (counts.size > 1
          ? `They were split into different numbers of shards (${list([...counts].map(String))}): give every shard the same N.`
          : "They were split from different tests or history: run every shard with the same plans, options and store (--db).")
    }))
    return issues
  }
  const count = shards[0]!.info.count
  const byIndex = new Map<number, Array<string>>()
  for (const s of shards) byIndex.set(s.info.index, [...(byIndex.get(s.info.index) ?? []), s.file])
  for (const [index, files] of [...byIndex].sort((a, b) => a[0] - b[0])) {
    if (files.length > 1) {
      issues.push(new Issue({ where: list(files), message: `are all shard ${index}/${count}: give each shard's report once` }))
    }
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !byIndex.has(i))
  if (missing.length > 0) {
    const have = [...byIndex].sort((a, b) => a[0] - b[0]).map(([i, files]) => `${i}/${count} (${list(files)})`)
    issues.push(new Issue({
      where: "shards",
      message: `missing shard${missing.length === 1 ? "" : "s"} ${list(missing.map((i) => `${i}/${count}`))}: have ${list(have)}; ` +
        "give the JSON report of every shard"
    }))
  }
  if (issues.length > 0) return issues
  issues.push(...twice(loaded))
  if (issues.length > 0) return issues
  // the tests together are the tests that were split
  const ids = shards.flatMap((s) => s.report.tests.map((t) => t.id))
  const split = shards[0]!.info
  if (Shard.digests(ids, new Map(), count).testsDigest !== split.testsDigest) {
    issues.push(new Issue({
      where: "tests",
      message: `the shards hold ${plural(ids.length, "test")}, which are not the ${plural(split.total, "test")} they were split from: ` +
        "a report was edited, or written by a run that did not run its whole shard"
    }))
  }
  return issues
}

/** the merged report, by the one fold, and one HTML lane group per report */
const merged = (loaded: ReadonlyArray<Loaded>) => {
  const ordered = [...loaded].sort((a, b) =>
    Option.match(a.shard, { onNone: () => 0, onSome: (s) => s.index }) - Option.match(b.shard, { onNone: () => 0, onSome: (s) => s.index })
  )
  const sessions = ordered.map((l) => l.report.session)
  const millis = (d: DateTime.Utc) => DateTime.toEpochMillis(d)
  const refs = [...new Set(sessions.map((s) => s.baseRef))]
  const results: Array<TestResult> = ordered.flatMap((l) => l.report.tests)
  const id = "merge-" + short(Crypto.createHash("sha256").update(JSON.stringify(sessions.map((s) => s.id)), "utf8").digest("hex"))
  const report = ReportModule.make({
    id,
    startedAt: sessions.length === 0 ? 0 : Math.min(...sessions.map((s) => millis(s.startedAt))),
    completedAt: sessions.length === 0 ? 0 : Math.max(...sessions.map((s) => millis(s.completedAt ?? s.startedAt))),
    baseRef: refs.join(","),
    baseSha: sessions[0]?.baseSha ?? "",
    workers: sessions.reduce((n, s) => n + s.workers, 0),
    interrupted: sessions.some((s) => s.status === "INTERRUPTED")
  }, results)
  const laneGroups: Array<Html.LaneGroup> = ordered.map((l) => ({
    label: Option.match(l.shard, { onNone: () => l.file, onSome: (s) => `Shard ${s.index}/${s.count}` }),
    note: `session ${l.report.session.id}`,
    workers: l.report.session.workers,
    tests: l.report.tests.map((t) => t.id)
  }))
  return { report, laneGroups, ordered }
}

const write = (report: Report, laneGroups: ReadonlyArray<Html.LaneGroup>, targets: ReadonlyArray<ReportTarget>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = (kind: ReportModule.ReportKind) =>
      kind === "html" ? Effect.succeed(Html.render(report, { laneGroups })) : ReportModule.render(kind, report)
    let failed = false
    for (const target of targets) {
      yield* Effect.flatMap(text(target.kind), (t) => fs.writeFileString(target.file, t)).pipe(
        Effect.tapError((e) => Effect.zipRight(err(`grove: could not write ${target.file}: ${e.message}`), Effect.sync(() => (failed = true)))),
        Effect.ignore
      )
    }
    const summaryFile = process.env.GITHUB_STEP_SUMMARY
    if (summaryFile !== undefined && summaryFile !== "") {
      yield* Effect.flatMap(ReportModule.render("markdown", report), (md) => fs.writeFileString(summaryFile, md + "\n", { flag: "a" })).pipe(
        Effect.tapError((e) => err(`grove: could not append to GITHUB_STEP_SUMMARY: ${e.message}`)),
        Effect.ignore
      )
    }
    return failed
  })

const mergeReports = (o: { readonly files: ReadonlyArray<string>; readonly report: ReadonlyArray<string> }) =>
  Effect.gen(function*() {
    const path = yield* Path.Path
    const issues: Array<Issue> = []
    if (o.files.length === 0) {
      issues.push(new Issue({ where: "grove merge", message: "no report: give the shards' JSON reports, e.g. grove merge shard-1.json shard-2.json" }))
    }
    const targets = yield* checkReports(o.report, issues)
    const inputs = new Set(o.files.map((f) => path.resolve(f)))
    for (const t of targets) {
      if (inputs.has(t.file)) issues.push(new Issue({ where: `--report ${t.kind}:${t.file}`, message: "is one of the reports to merge: write the merged report elsewhere" }))
    }
    const given = new Map<string, string>()
    for (const file of o.files) {
      const first = given.get(path.resolve(file))
      if (first !== undefined) issues.push(new Issue({ where: file, message: `is given twice (also as ${first}): give each report once` }))
      else given.set(path.resolve(file), file)
    }
    const loaded: Array<Loaded> = []
    for (const file of given.values()) {
      const one = yield* load(file, issues)
      if (Option.isSome(one)) loaded.push(one.value)
    }
    if (issues.length === 0) issues.push(...check(loaded))
    if (issues.length > 0) {
      yield* err(
        `grove merge: ${plural(issues.length, "problem")} found, nothing was written:\n` +
          issues.map((i) => `  ${i.where}: ${i.message}`).join("\n")
      )
      return 2
    }

    const { laneGroups, ordered, report } = merged(loaded)
    const style = styleOf(process.stdout)
    const first = ordered[0]?.shard
    yield* out(
      first !== undefined && Option.isSome(first)
        ? `grove merge: ${plural(ordered.length, "shard")} of split ${short(first.value.fingerprint)} ` +
          `(sessions ${list(ordered.map((l) => l.report.session.id))}): ${plural(report.tests.length, "test")}`
        : `grove merge: ${plural(ordered.length, "report")} (sessions ${list(ordered.map((l) => l.report.session.id))}): ` +
          plural(report.tests.length, "test")
    )
    if (report.tests.length === 0) yield* err("grove: warning: the reports hold no test")
    yield* Stream.runForEach(
      Plain.summary(style, report, (statuses) => Stream.fromIterable(report.tests.filter((t) => statuses.includes(t.status)))),
      out
    )
    const failed = yield* write(report, laneGroups, targets)
    return failed ? 1 : ReportModule.exitCode(report)
  })

/**
 * @since 0.3.0
 * @category commands
 */
export const merge = Command.make("merge", mergeOptions, (o) => mergeReports(o).pipe(onInvalid, Effect.flatMap(setExit))).pipe(
  Help.command(mergeOptions, {
    summary: "Merge the JSON reports of the shards of one split into one report.",
    description: "Refuses, naming the files, shards of different splits (fingerprints), a missing or repeated shard, " +
      "a test in two reports, and files that are not grove JSON reports; writes nothing then and exits 2. " +
      "Reports of runs without --shard may be merged when no test is in two of them. " +
      "Prints the summary and exits as grove run would for the merged result: 0 when every test PASSED or was FLAKY, 1 otherwise.",
    examples: [
      "grove merge shard-1.json shard-2.json shard-3.json --report junit:junit.xml --report html:report.html"
    ]
  })
)
