/**
 * Text helpers shared by the reports and the terminal: strip ANSI escape codes,
 * replace characters XML 1.0 forbids, escape text for XML, format durations,
 * take the last lines of an output tail.
 *
 * @since 0.1.0
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"

/** how many tests' texts a streamed report joins into one piece */
export const testsPerPiece = 16

/**
 * A report streamed test by test, in pieces of `testsPerPiece` tests: one buffer and one
 * write for each piece, not one per test, and no piece so large (a page of 500 tests is
 * ≈ 1 MB) that V8 and glibc map it on its own while the session's heap is at its largest.
 */
export const inPieces = <E, R>(texts: Stream.Stream<string, E, R>): Stream.Stream<string, E, R> =>
  texts.pipe(
    Stream.rechunk(testsPerPiece),
    Stream.mapChunks((piece) => Chunk.size(piece) <= 1 ? piece : Chunk.of(Chunk.join(piece, "")))
  )

/**
 * ANSI / ECMA-48 escape sequences:
 * - CSI: `ESC [` (or the 8-bit `\x9b`) parameters, intermediates, a final byte — colours, cursor moves
 * - OSC, DCS, SOS, PM, APC: `ESC ] … BEL` or `… ESC \` (or 8-bit `\x9c`) — titles, hyperlinks
 * - the other two- and three-byte escapes (`ESC ( B`, `ESC =`, `ESC 7` …)
 */
const ansiPattern = new RegExp(
  [
    "(?:\\u001b\\[|\\u009b)[\\u0030-\\u003f]*[\\u0020-\\u002f]*[\\u0040-\\u007e]",
    "(?:\\u001b[\\]PX^_]|[\\u009d\\u0090\\u0098\\u009e\\u009f])[^\\u0007\\u001b\\u009c]*(?:\\u0007|\\u001b\\\\|\\u009c)",
    "\\u001b[\\u0020-\\u002f]*[\\u0030-\\u007e]"
  ].join("|"),
  "g"
)

/**
 * Removes ANSI escape sequences (colours, cursor movement, terminal titles,
 * hyperlinks). A lone ESC that starts no sequence is left for
 * {@link replaceXmlForbidden}.
 *
 * @since 0.1.0
 */
export const stripAnsi = (text: string): string => text.replace(ansiPattern, "")

/**
 * Characters that XML 1.0 does not allow anywhere in a document: C0 controls
 * other than tab, line feed and carriage return, lone (unpaired) surrogates,
 * U+FFFE and U+FFFF. With the `u` flag the surrogate range only matches lone
 * halves: a valid pair is one code point outside it.
 */
const xmlForbidden = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff\ufffe\uffff]/gu

/** `\uXXXX` for a code unit or a BMP character, `\u{XXXXX}` for one outside the BMP */
const escapeCodeUnit = (char: string): string => {
  const point = char.codePointAt(0)!
  return point > 0xffff ? `\\u{${point.toString(16)}}` : "\\u" + point.toString(16).padStart(4, "0")
}

/**
 * Replaces every character XML 1.0 forbids with its `\uXXXX` spelling, so the
 * reader still sees that a NUL or a BEL was there.
 *
 * @since 0.1.0
 */
export const replaceXmlForbidden = (text: string): string => text.replace(xmlForbidden, escapeCodeUnit)

const xmlTextEntities: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  "\r": "&#13;",
  "\u2028": "&#8232;",
  "\u2029": "&#8233;"
}

/**
 * Text as XML character data: every `&`, `<` and `>` escaped, whatever follows
 * it (`&nbsp;` in the text is the six characters `&nbsp;`, never an entity),
 * and a carriage return written `&#13;` so that a parser's line-end
 * normalisation does not turn it into a line feed (nor U+2028 and U+2029,
 * which XML 1.1 readers count as line ends). The text must already be free of
 * what XML forbids ({@link cleanOutput}).
 *
 * @since 0.1.0
 */
export const escapeXmlText = (text: string): string => text.replace(/[&<>\r\u2028\u2029]/g, (c) => xmlTextEntities[c]!)

const xmlAttributeEntities: Record<string, string> = {
  ...xmlTextEntities,
  "\"": "&quot;",
  "\t": "&#9;",
  "\n": "&#10;"
}

/**
 * Text as a double-quoted XML attribute value: `&`, `<`, `>` and `"` escaped,
 * and tab, line feed and carriage return written as character references, which
 * attribute-value normalisation keeps (a literal one would read back as a space).
 *
 * @since 0.1.0
 */
export const escapeXmlAttribute = (text: string): string =>
  text.replace(/[&<>"\t\n\r\u2028\u2029]/g, (c) => xmlAttributeEntities[c]!)

/**
 * What XML 1.0 allows but discourages (§2.2): DEL and the C1 controls, invisible
 * in a report, and the noncharacters U+FDD0–U+FDEF and U+xFFFE/U+xFFFF of the
 * other planes, which HTML parsers report as errors.
 */
const discouraged = /[\u007f-\u009f\ufdd0-\ufdef]|[\u{1fffe}-\u{10ffff}]/gu

/** a character outside the BMP is discouraged only when it is a plane's last two (U+xFFFE, U+xFFFF) */
const escapeDiscouraged = (char: string): string =>
  char.length === 1 || (char.codePointAt(0)! & 0xfffe) === 0xfffe ? escapeCodeUnit(char) : char

/**
 * Output as it can go into any text report: ANSI codes stripped, characters
 * XML 1.0 forbids (and those it discourages: DEL, the C1 controls, the
 * noncharacters) spelled `\uXXXX` (`\u{XXXXX}` outside the BMP).
 *
 * @since 0.1.0
 */
export const cleanOutput = (text: string): string =>
  replaceXmlForbidden(stripAnsi(text)).replace(discouraged, escapeDiscouraged)

/**
 * One line for an attribute or a table cell: cleaned, with runs of line breaks
 * and tabs turned into single spaces.
 *
 * @since 0.1.0
 */
export const oneLine = (text: string): string => cleanOutput(text).replace(/[\r\n\t]+/g, " ").trim()

/**
 * The last `count` lines of an output tail, as a terminal would show them: a
 * carriage return without a line feed (a progress bar redrawing itself) keeps
 * only what was written after it, and a trailing empty line is dropped.
 *
 * @since 0.1.0
 */
export const lastLines = (text: string, count: number): ReadonlyArray<string> => {
  const lines = text.split(/\r?\n/)
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
  const kept = count <= 0 ? [] : lines.slice(-count)
  return kept.map((line) => {
    const cr = line.lastIndexOf("\r")
    return cr === -1 ? line : line.slice(cr + 1)
  })
}

const pad2 = (n: number): string => String(n).padStart(2, "0")

/**
 * A duration for people: `850ms`, `1.2s`, `3m04s`, `1h02m03s`. Negative or
 * non-finite values read as `0ms`.
 *
 * @since 0.1.0
 */
export const formatDuration = (millis: number): string => {
  const ms = Number.isFinite(millis) && millis > 0 ? millis : 0
  if (ms < 1000) {
    const rounded = Math.round(ms)
    if (rounded < 1000) return `${rounded}ms`
  }
  const tenths = Math.round(ms / 100)
  if (tenths < 600) return `${(tenths / 10).toFixed(1)}s`
  const seconds = Math.round(ms / 1000)
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${pad2(seconds % 60)}s`
  const hours = Math.floor(seconds / 3600)
  const rest = seconds % 3600
  return `${hours}h${pad2(Math.floor(rest / 60))}m${pad2(rest % 60)}s`
}
