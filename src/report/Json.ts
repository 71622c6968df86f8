/**
 * The JSON report (SPEC §7): the report encoded by its Schema, ISO 8601 times,
 * milliseconds, 2-space indent.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { Report } from "../Domain.js"

const encode = Schema.encodeSync(Report)

/**
 * The JSON text of a report, ending with a newline.
 *
 * @since 0.1.0
 */
export const render = (report: Report): string => JSON.stringify(encode(report), null, 2) + "\n"

const ReportFromJson = Schema.parseJson(Report)

/**
 * Reads a JSON report back. Text that is not JSON, or JSON that is not a
 * version 1 report, fails with a ParseError saying where.
 *
 * @since 0.1.0
 */
export const decode = (text: string): Effect.Effect<Report, ParseResult.ParseError> =>
  Schema.decodeUnknown(ReportFromJson)(text)
