/**
 * What `grove run` shows on a terminal (SPEC §6): a block of lines redrawn in
 * place — one line per worker slot (test, attempt, elapsed) and a bar with the
 * counts and an ETA — with each finished test printed above it as it ends
 * (failures with their log path), erased when the session ends so that the
 * summary that follows stands alone.
 *
 * Two parts: `render`, pure, of the session's fold (`SessionState`, the same state
 * the Orchestrator's `status` reads), and a driver (`start`) that folds an event
 * queue and redraws at most `interval` apart. The runners know nothing of either.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as HashMap from "effect/HashMap"
import * as Cause from "effect/Cause"
import * as Inspectable from "effect/Inspectable"
import * as Logger from "effect/Logger"
import { isSuccess, type Logged, type TestResult } from "../Domain.js"
import { formatDuration } from "../internal/text.js"
import * as SessionState from "../SessionState.js"
import * as Plain from "./Plain.js"

// ---------------------------------------------------------------------------
// state: the session's fold (SessionState), nothing of the view's own
// ---------------------------------------------------------------------------

/**
 * What the view knows before the first event.
 *
 * @since 0.1.0
 * @category models
 */
export interface Info {
  /** worker slots, numbered 1..workers */
  readonly workers: number
}

/**
 * The state the view starts from when it is given none: no event, `workers` slots.
 *
 * @since 0.1.0
 * @category constructors
 */
export const initial = (info: Info): SessionState.SessionState => ({
  ...SessionState.initial(),
  workers: Math.max(0, info.workers)
})

// ---------------------------------------------------------------------------
// width: what the terminal shows, not what the string holds
// ---------------------------------------------------------------------------

/** one ANSI escape sequence at the current position (CSI, OSC … or a short escape) */
const escapeAt =
  // eslint-disable-next-line no-control-regex
  /(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)|\x1b[\x20-\x2f]*[\x30-\x7e]/y

const zeroWidth = (cp: number): boolean =>
  cp < 0x20 || (cp >= 0x7f && cp < 0xa0) ||
  (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x1ab0 && cp <= 0x1aff) || (cp >= 0x1dc0 && cp <= 0x1dff) ||
  (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0xfe00 && cp <= 0xfe0f) ||
  (cp >= 0xfe20 && cp <= 0xfe2f) || cp === 0xfeff || (cp >= 0xe0100 && cp <= 0xe01ef)

const wide = (cp: number): boolean =>
  (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
  (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) ||
  (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
  (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd)

const charWidth = (cp: number): number => (zeroWidth(cp) ? 0 : wide(cp) ? 2 : 1)

type Token = { readonly escape: true; readonly text: string } | { readonly escape: false; readonly text: string; readonly width: number }

const tokens = function*(text: string): Generator<Token> {
  let i = 0
  while (i < text.length) {
    escapeAt.lastIndex = i
    const m = escapeAt.exec(text)
    if (m !== null && m[0].length > 0) {
      yield { escape: true, text: m[0] }
      i += m[0].length
      continue
    }
    const cp = text.codePointAt(i)!
    const ch = String.fromCodePoint(cp)
    yield { escape: false, text: ch, width: charWidth(cp) }
    i += ch.length
  }
}

/**
 * Columns `text` takes on a terminal: escape sequences take none, East Asian wide
 * characters and emoji two, combining marks none.
 *
 * @since 0.1.0
 * @category utils
 */
export const visibleWidth = (text: string): number => {
  let width = 0
  for (const t of tokens(text)) if (!t.escape) width += t.width
  return width
}

/**
 * `text` cut to at most `width` columns, with `…` where it was cut. Escape
 * sequences are kept (they take no room) and a cut coloured line ends with a reset,
 * so a colour never bleeds into the next line.
 *
 * @since 0.1.0
 * @category utils
 */
export const truncate = (text: string, width: number): string => {
  if (visibleWidth(text) <= width) return text
  if (width <= 0) return ""
  let out = ""
  let used = 0
  let escaped = false
  for (const t of tokens(text)) {
    if (t.escape) {
      out += t.text
      escaped = true
      continue
    }
    if (used + t.width > width - 1) break
    out += t.text
    used += t.width
  }
  return out + "…" + (escaped ? "\x1b[0m" : "")
}

/** plain `text` cut from the start to `width` columns: the end of an id tells tests apart */
const truncateStart = (text: string, width: number): string => {
  if (visibleWidth(text) <= width) return text
  if (width <= 0) return ""
  const chars = [...tokens(text)].filter((t): t is Extract<Token, { escape: false }> => !t.escape)
  let out = ""
  let used = 0
  for (let i = chars.length - 1; i >= 0; i--) {
    const c = chars[i]!
    if (used + c.width > width - 1) break
    out = c.text + out
    used += c.width
  }
  return "…" + out
}

// ---------------------------------------------------------------------------
// render
// ---------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface RenderOptions {
  /** columns available: no line is wider */
  readonly width: number
  /** the current time, in the Clock's milliseconds (as `startedAt` of the events) */
  readonly now: number
  readonly color: boolean
  /** lines available: the block is never taller (busy workers are shown first) */
  readonly height?: number | undefined
}

/**
 * A time left for people, rounded to what an estimate can promise: `<1s`, `42s`,
 * `3m05s`, `1h20m`.
 *
 * @since 0.1.0
 * @category utils
 */
export const formatEta = (millis: number): string => {
  if (!(millis >= 1000)) return "<1s"
  const seconds = Math.round(millis / 1000)
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`
  const minutes = Math.round(seconds / 60)
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`
}

/**
 * How many tests must have finished before their mean duration stands in for the
 * durations history does not know.
 *
 * @since 0.2.0
 */
export const estimateAfter = 3

/**
 * The time left: the expected durations of waiting tests, plus what running tests
 * have left of theirs, spread over the workers, and never less than the longest of
 * them (SPEC §4, lower bound of a session). Tests without history count as the mean
 * of those with history; when none has history, as the mean duration of the tests
 * finished so far once `estimateAfter` have (then `estimate` is true). `undefined`
 * when nothing is known yet; `0` when nothing remains.
 *
 * @since 0.1.0
 * @category utils
 */
export const eta = (
  state: SessionState.SessionState,
  now: number
): { readonly millis: number; readonly estimate: boolean } | undefined => {
  /** what a test expected to take `expectedMs` has left, started at `startedAt` if it runs */
  const left = (expectedMs: number, startedAt: number | undefined) =>
    startedAt === undefined ? expectedMs : Math.max(0, expectedMs - (now - startedAt))
  /** the time left of these remaining tests spread over the workers, never below the longest */
  const spread = (lefts: ReadonlyArray<number>) => {
    let sum = 0
    let longest = 0
    for (const l of lefts) {
      sum += l
      if (l > longest) longest = l
    }
    return Math.max(sum / Math.max(1, state.workers), longest)
  }
  const remaining: Array<readonly [expectedMs: number | undefined, startedAt: number | undefined]> = []
  for (const w of HashMap.values(state.waiting)) remaining.push([w.expectedMs, undefined])
  for (const r of HashMap.values(state.running)) remaining.push([r.expectedMs, r.active ? r.startedAt : undefined])
  if (remaining.length === 0) return { millis: 0, estimate: false }
  const known = remaining.flatMap(([expectedMs, startedAt]) => expectedMs === undefined ? [] : [left(expectedMs, startedAt)])
  if (known.length > 0) {
    const mean = known.reduce((a, b) => a + b, 0) / known.length
    return { millis: spread([...known, ...Array.from({ length: remaining.length - known.length }, () => mean)]), estimate: false }
  }
  if (state.finishedCount < estimateAfter) return undefined
  const mean = state.finishedMs / state.finishedCount
  return { millis: spread(remaining.map(([, startedAt]) => left(mean, startedAt))), estimate: true }
}

const label = (slots: ReadonlyArray<unknown>, slot: number): string => `w${slot}`.padEnd(`w${slots.length}`.length)

const slotLine = (slots: ReadonlyArray<SessionState.Running | undefined>, slot: number, options: RenderOptions): string => {
  const style: Plain.Style = { color: options.color }
  const s = slots[slot - 1]
  const head = `${label(slots, slot)}  `
  if (s === undefined) return Plain.paint(style, "dim", `${head}idle`)
  const tail = `  attempt ${s.n}  ${formatDuration(Math.max(0, options.now - s.startedAt))}`
  const room = options.width - visibleWidth(head) - visibleWidth(tail)
  const id = Plain.safe(s.testId)
  if (room < 8) return truncate(`${head}${id}${tail}`, options.width)
  return `${head}${Plain.paint(style, "bold", truncateStart(id, room))}${Plain.paint(style, "dim", tail)}`
}

const barLine = (state: SessionState.SessionState, options: RenderOptions): string => {
  const style: Plain.Style = { color: options.color }
  const c = state.counts
  const waiting = HashMap.size(state.waiting)
  const running = HashMap.size(state.running)
  const failed = c.failed + c.timedOut + c.error
  const done = c.total - waiting - running
  const remaining = eta(state, options.now)
  const parts = [
    `${done}/${c.total}`,
    Plain.paint(style, "green", `${c.passed} passed`),
    c.flaky > 0 ? Plain.paint(style, "yellow", `${c.flaky} flaky`) : undefined,
    failed > 0 ? Plain.paint(style, "red", `${failed} failed`) : `${failed} failed`,
    c.cancelled > 0 ? `${c.cancelled} cancelled` : undefined,
    `${running} running`,
    `${waiting} waiting`,
    waiting + running === 0
      ? undefined
      : remaining === undefined
      ? "ETA unknown"
      : `ETA ${remaining.estimate ? "~" : ""}${formatEta(remaining.millis)}`
  ].filter((p): p is string => p !== undefined)
  const counts = parts.join("  ")
  // the bar takes what the counts leave, up to 24 columns; none below 5
  const barWidth = Math.min(24, options.width - visibleWidth(counts) - 3)
  if (barWidth < 5) return truncate(counts, options.width)
  const filled = c.total === 0 ? 0 : Math.round((done / c.total) * barWidth)
  const paint = (color: "red" | "green" | "dim", text: string) => (text === "" ? "" : Plain.paint(style, color, text))
  const bar = paint(failed > 0 ? "red" : "green", "█".repeat(filled)) + paint("dim", "░".repeat(barWidth - filled))
  return truncate(`[${bar}] ${counts}`, options.width)
}

/**
 * The lines of the live block: one per worker slot, then the bar. Each line fits
 * in `width` columns; with `height`, the block does too (idle slots go first,
 * then a line says how many are not shown).
 *
 * @since 0.1.0
 * @category constructors
 */
export const render = (state: SessionState.SessionState, options: RenderOptions): Array<string> => {
  const width = Math.max(1, Math.floor(options.width))
  const o = { ...options, width }
  const slots = SessionState.slots(state)
  const all = slots.map((_, i) => i + 1)
  const room = options.height === undefined ? all.length : Math.max(0, Math.floor(options.height) - 1)
  let shown = all
  const lines: Array<string> = []
  if (all.length > room) {
    const busy = all.filter((slot) => slots[slot - 1] !== undefined)
    shown = busy.slice(0, Math.max(0, room - 1))
    const hidden = all.length - shown.length
    const hiddenBusy = busy.length - shown.length
    for (const slot of shown) lines.push(truncate(slotLine(slots, slot, o), width))
    if (room > 0) lines.push(truncate(`… ${hidden} more worker${hidden === 1 ? "" : "s"} (${hiddenBusy} busy)`, width))
  } else {
    for (const slot of shown) lines.push(truncate(slotLine(slots, slot, o), width))
  }
  lines.push(barLine(state, o))
  return lines
}

/**
 * What is printed above the block when a test finishes: the plain line, and for a
 * test that did not pass the log of its last failing attempt.
 *
 * @since 0.1.0
 * @category constructors
 */
export const finishedLines = (style: Plain.Style, result: TestResult): Array<string> => {
  const lines = [Plain.testLine(style, result)]
  if (!isSuccess(result.status) && result.status !== "CANCELLED") {
    const failing = [...result.attempts].reverse().find((a) => a.status !== "PASSED" && a.logPath !== "")
    if (failing !== undefined) lines.push(`  log: ${failing.logPath}`)
  }
  return lines
}

// ---------------------------------------------------------------------------
// driver
// ---------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @internal
 */
export const HIDE_CURSOR = "\x1b[?25l"
/**
 * @since 0.1.0
 * @internal
 */
export const SHOW_CURSOR = "\x1b[?25h"
/**
 * @since 0.1.0
 * @internal
 */
export const CLEAR_DOWN = "\x1b[J"

/**
 * The rows that lines of these visible widths, each ended by a newline, take on a
 * terminal `columns` wide. A line wider than the terminal wraps onto more than one
 * row: a block drawn at one width takes more rows once the terminal is narrower
 * (terminals reflow the lines they hold when resized).
 *
 * @since 0.2.0
 * @category utils
 */
export const rowsOf = (widths: ReadonlyArray<number>, columns: number): number => {
  const c = Math.max(1, Math.floor(columns))
  return widths.reduce((rows, width) => rows + Math.max(1, Math.ceil(width / c)), 0)
}

/** back to the first column of the row `rows` above, then clear from there down */
const erase = (rows: number): string => (rows > 0 ? `\r\x1b[${rows}A${CLEAR_DOWN}` : "")

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly info: Info
  readonly color: boolean
  /** writes to the terminal; one call per frame */
  readonly write: (text: string) => void
  /** the terminal's size, read again for every frame (a resized terminal needs no signal) */
  readonly size: () => { readonly columns?: number | undefined; readonly rows?: number | undefined }
  /** the shortest time between two frames; default 100 millis (10 frames per second) */
  readonly interval?: Duration.DurationInput
  /** where `log` writes once the view has ended (one call per message); default stderr */
  readonly fallback?: (text: string) => void
}

const stderrLine = (text: string): void => void process.stderr.write(text.endsWith("\n") ? text : text + "\n")

/**
 * The live view of `stdout` on a TTY.
 *
 * @since 0.1.0
 * @category constructors
 */
export const stdoutOptions = (info: Info, color: boolean): Options => ({
  info,
  color,
  write: (text) => void process.stdout.write(text),
  size: () => windowSize(process.stdout),
  fallback: stderrLine
})

/**
 * The terminal's size asked of it now (TIOCGWINSZ, as Node does on SIGWINCH).
 * `columns` and `rows` change only once Node has handled the SIGWINCH, which a busy
 * event loop (a synchronous store write waiting out a lock) delays past the next
 * frame: erased at the old width, a narrowed block would leave rows behind.
 */
const windowSize = (stream: NodeJS.WriteStream): { readonly columns?: number | undefined; readonly rows?: number | undefined } => {
  const handle = (stream as { _handle?: { getWindowSize?: (size: [number, number]) => number } })._handle
  const size: [number, number] = [0, 0]
  if (typeof handle?.getWindowSize === "function" && handle.getWindowSize(size) === 0 && size[0] > 0) {
    return { columns: size[0], rows: size[1] }
  }
  return { columns: stream.columns, rows: stream.rows }
}

/**
 * The running live view.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handle {
  /**
   * Prints `text` above the block at once (and redraws the block below it); once
   * the view has ended, prints it plainly. Anything else written to the terminal
   * while the view is live would be erased with the block, or leave a stale copy
   * of it: messages go through here.
   */
  readonly print: (text: string) => Effect.Effect<void>
  /**
   * `print` for a Logger, which cannot wait: `text` goes above the block with the
   * next frame (at most `interval` later, or at the end); once the view has ended,
   * to `fallback` at once. Nothing given here is lost.
   */
  readonly log: (text: string) => void
}

/**
 * What a log line prints: its message (the parts separated by spaces) and, when it
 * has one, its cause below it, without control characters (a store's error message
 * cannot move the cursor).
 *
 * @since 0.2.0
 * @category utils
 */
export const logText = (options: Logger.Logger.Options<unknown>): string => {
  const parts = Array.isArray(options.message) ? options.message : [options.message]
  const message = parts
    .map((part) => (typeof part === "string" ? part : part instanceof Error ? part.message : Inspectable.toStringUnknown(part)))
    .join(" ")
  const text = Cause.isEmpty(options.cause) ? message : `${message}\n${Cause.pretty(options.cause)}`
  return text.split("\n").map(Plain.safe).join("\n")
}

/**
 * A Logger that writes every log line (`logText`) to `to()`, the target at the time
 * of the log: a live view's `log` while the view is up, stderr otherwise. Installed
 * for a whole run, it also reaches the fibers forked before the view started.
 *
 * @since 0.2.0
 * @category constructors
 */
export const logger = (to: () => (text: string) => void): Logger.Logger<unknown, void> =>
  Logger.make((options) => to()(logText(options)))

/**
 * Shows the live view until the scope closes. Every frame drains the queue, folds
 * the events, and writes — in one write — the erase of the previous block, the
 * lines of the tests that finished, and the new block; frames are `interval`
 * apart. The cursor is hidden meanwhile. Closing the scope (also by interruption)
 * drains what is left, prints its lines, erases the block and shows the cursor:
 * what is printed next starts where the block was.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (
  events: Queue.Dequeue<Logged>,
  options: Options,
  from?: SessionState.SessionState
): Effect.Effect<Handle, never, Scope.Scope> =>
  Effect.gen(function*() {
    const style: Plain.Style = { color: options.color }
    // the visible width of each line of the block on screen: the rows it takes depend on the width now
    const view = yield* Ref.make({ state: from ?? initial(options.info), widths: [] as ReadonlyArray<number>, block: "", ended: false })
    // what `log` was given since the last frame; `closed` once the last frame has taken it
    const logged: Array<string> = []
    let closed = false
    const fallback = options.fallback ?? stderrLine
    const takeLogged = (last: boolean) =>
      Effect.sync(() => {
        if (last) closed = true
        return logged.splice(0).flatMap((text) => text.replace(/\n$/, "").split("\n"))
      })
    // frames come from the loop, from `print` and from the end: one at a time
    const lock = yield* Effect.makeSemaphore(1)

    const frame = (last: boolean, extra: ReadonlyArray<string> = []) =>
      Effect.gen(function*() {
        const current = yield* Ref.get(view)
        if (current.ended) {
          if (extra.length > 0) options.write(extra.map((l) => l + "\n").join(""))
          return
        }
        const batch = yield* Queue.takeAll(events)
        const now = yield* Clock.currentTimeMillis
        let state = current.state
        const above: Array<string> = []
        for (const logged of batch) {
          // the state it started from may already cover the first events of the queue
          if (logged.seq <= state.seq) continue
          state = SessionState.update(state, logged)
          if (logged.event._tag === "TestFinished") above.push(...finishedLines(style, logged.event.result))
        }
        above.push(...(yield* takeLogged(last)), ...extra)
        const size = options.size()
        const columns = size.columns !== undefined && size.columns > 0 ? size.columns : 80
        const rows = size.rows !== undefined && size.rows > 1 ? size.rows : undefined
        // the last column stays free: a full line leaves some terminals in a pending wrap
        const lines = last ? [] : render(state, { width: Math.max(1, columns - 1), now, color: options.color, height: rows === undefined ? undefined : rows - 1 })
        const block = lines.map((l) => l + "\n").join("")
        yield* Ref.set(view, { state, widths: lines.map(visibleWidth), block, ended: last })
        if (!last && above.length === 0 && block === current.block) return
        options.write(erase(rowsOf(current.widths, columns)) + above.map((l) => l + "\n").join("") + block + (last ? SHOW_CURSOR : ""))
      }).pipe(lock.withPermits(1), Effect.uninterruptible)

    yield* Effect.acquireRelease(Effect.sync(() => options.write(HIDE_CURSOR)), () => frame(true))
    yield* Effect.forkScoped(Effect.repeat(frame(false), Schedule.spaced(options.interval ?? Duration.millis(100))))
    return {
      print: (text: string) => frame(false, text.replace(/\n$/, "").split("\n")),
      log: (text: string) => {
        if (closed) fallback(text)
        else logged.push(text)
      }
    }
  })
