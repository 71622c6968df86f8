/**
 * The JSON report (SPEC §7): the report encoded by its Schema, ISO 8601 times,
 * milliseconds, 2-space indent.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Report, SessionInfo, TestResult, Totals } from "../Domain.js"
import { inPieces } from "../internal/text.js"

/**
 * What the JSON report of one shard (`grove run --shard I/N`, SPEC §10) records of
 * the split it ran: its part, and the digests of the split's inputs, which
 * `grove merge` compares. Absent from the report of a run that was not sharded.
 *
 * @since 0.3.0
 * @category models
 */
export class ShardInfo extends Schema.Class<ShardInfo>("ShardInfo")({
  /** 1-based */
  index: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  count: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  /** digest of the sorted test ids, the durations used and count (`Shard.digests`) */
  fingerprint: Schema.String,
  testsDigest: Schema.String,
  historyDigest: Schema.String,
  /** tests split over all the shards, and how many of them had history */
  total: Schema.Int,
  withHistory: Schema.Int,
  /** this shard's expected duration: the sum of its tests' history, in ms */
  expectedMs: Schema.Number
}) {}

const encode = Schema.encodeSync(Report)
const encodeShard = Schema.encodeSync(ShardInfo)

/**
 * The JSON text of a report, ending with a newline; with `shard`, the report of
 * that shard (a `shard` field before the tests).
 *
 * @since 0.1.0
 */
export const render = (report: Report, shard?: ShardInfo): string => {
  if (shard === undefined) return JSON.stringify(encode(report), null, 2) + "\n"
  const { session, tests, totals, version } = encode(report)
  return JSON.stringify({ version, session, totals, shard: encodeShard(shard), tests }, null, 2) + "\n"
}

const encodeTest = Schema.encodeSync(TestResult)
const encodeSession = Schema.encodeSync(SessionInfo)
const encodeTotals = Schema.encodeSync(Totals)

/**
 * The JSON text of a report whose tests come as a stream, in pieces: the same text
 * `render` makes of the whole report, without holding its tests.
 *
 * @since 0.2.0
 */
export const renderStream = <E, R>(
  head: { readonly session: SessionInfo; readonly totals: Totals; readonly shard?: ShardInfo | undefined },
  tests: Stream.Stream<TestResult, E, R>
): Stream.Stream<string, E, R> => {
  const top = JSON.stringify({
    version: 1,
    session: encodeSession(head.session),
    totals: encodeTotals(head.totals),
    ...(head.shard === undefined ? {} : { shard: encodeShard(head.shard) })
  }, null, 2)
  return Stream.suspend(() => {
  let first = true
  return Stream.make(top.slice(0, top.length - 2) + ",\n  \"tests\": [").pipe(
    Stream.concat(Stream.map(tests, (test) => {
      const text = (first ? "\n    " : ",\n    ") + JSON.stringify(encodeTest(test), null, 2).replaceAll("\n", "\n    ")
      first = false
      return text
    }).pipe(inPieces)),
    Stream.concat(Stream.suspend(() => Stream.make(first ? "]\n}\n" : "\n  ]\n}\n")))
  )
  })
}

const ReportFromJson = Schema.parseJson(Report)

/**
 * Reads a JSON report back. Text that is not JSON, or JSON that is not a
 * version 1 report, fails with a ParseError saying where.
 *
 * @since 0.1.0
 */
export const decode = (text: string): Effect.Effect<Report, ParseResult.ParseError> =>
  Schema.decodeUnknown(ReportFromJson)(text)

const ShardReport = Schema.Struct({ ...Report.fields, shard: Schema.optional(ShardInfo) })

/**
 * Reads a parsed JSON report back with the shard it records, if any (for
 * `grove merge`); a value that is not a version 1 report fails saying where.
 *
 * @since 0.3.0
 */
export const decodeWithShard = (
  json: unknown
): Effect.Effect<{ readonly report: Report; readonly shard: Option.Option<ShardInfo> }, ParseResult.ParseError> =>
  Effect.map(Schema.decodeUnknown(ShardReport)(json), ({ shard, ...report }) => ({
    report: new Report(report, true),
    shard: Option.fromNullable(shard)
  }))
