/**
 * The JSON report (SPEC §7): the report encoded by its Schema, ISO 8601 times,
 * milliseconds, 2-space indent.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Report, SessionInfo, TestResult, Totals } from "../Domain.js"

const encode = Schema.encodeSync(Report)

/**
 * The JSON text of a report, ending with a newline.
 *
 * @since 0.1.0
 */
export const render = (report: Report): string => JSON.stringify(encode(report), null, 2) + "\n"

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
  head: { readonly session: SessionInfo; readonly totals: Totals },
  tests: Stream.Stream<TestResult, E, R>
): Stream.Stream<string, E, R> => {
  const top = JSON.stringify({ version: 1, session: encodeSession(head.session), totals: encodeTotals(head.totals) }, null, 2)
  return Stream.suspend(() => {
  let first = true
  return Stream.make(top.slice(0, top.length - 2) + ",\n  \"tests\": [").pipe(
    Stream.concat(Stream.map(tests, (test) => {
      const text = (first ? "\n    " : ",\n    ") + JSON.stringify(encodeTest(test), null, 2).replaceAll("\n", "\n    ")
      first = false
      return text
    })),
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
