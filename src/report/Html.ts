/**
 * The HTML report (SPEC §7): one self-contained file that works offline — a
 * header with the session's facts and counts, a timeline with one lane per
 * worker and one bar per attempt (so idle workers and long tails show), and a
 * table of tests that filters by status, searches by id or name and expands to
 * each test's attempts, log paths and output tails.
 *
 * Safety:
 * - every row is rendered here; the page's script only toggles `hidden` and
 *   `aria-*` attributes and never turns a string into markup;
 * - everything that comes from a plan or a test's output is HTML-escaped
 *   (`& < > " '`), cleaned of ANSI codes and control characters;
 * - a Content-Security-Policy forbids every fetch (`default-src 'none'`) and
 *   allows exactly one script, the page's own, by its SHA-256 hash, so even
 *   markup that slipped through could neither load nor run anything.
 *
 * Hooks for tools and tests: `data-lane="<worker>"` on lanes,
 * `data-attempt="<test id>#<n>"`, `data-status` and `data-test` on bars,
 * `data-test` and `data-status` on each test's `<tbody>`, `data-filter` on the
 * status buttons, `data-search` on the search box.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Crypto from "node:crypto"
import type { Attempt, Report, SessionStatus, TestResult, TestStatus } from "../Domain.js"
import { cleanOutput, formatDuration, lastLines, oneLine } from "../internal/text.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** lines of output shown for each attempt; default 40 */
  readonly tailLines?: number
  /**
   * The timeline in groups of lanes, e.g. one per shard of a merged report
   * (`grove merge`): each group has its own worker lanes and the attempts of its
   * tests. Without groups (or with none), one lane per worker of the session.
   */
  readonly laneGroups?: ReadonlyArray<LaneGroup>
}

/**
 * A group of lanes in the timeline: the workers of one shard.
 *
 * @since 0.3.0
 * @category models
 */
export interface LaneGroup {
  /** e.g. `Shard 2/4` */
  readonly label: string
  /** e.g. its session id */
  readonly note?: string
  /** its worker slots, 1..workers */
  readonly workers: number
  /** the ids of the tests whose attempts ran on these workers */
  readonly tests: ReadonlyArray<string>
}

const entities: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  "\"": "&quot;",
  "'": "&#39;"
}

/**
 * Escapes text for HTML element content and quoted attribute values.
 *
 * @since 0.1.0
 */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => entities[c]!)

/** plan-provided text on one line, cleaned and escaped */
const txt = (text: string): string => escapeHtml(oneLine(text))

/** plan-provided text as a data attribute the script compares: cleaned and escaped, line breaks kept */
const attr = (text: string): string => escapeHtml(cleanOutput(text))

const maxLineLength = 2000

/**
 * Output as lines for a `<pre>`: cleaned, the last `count` lines, long lines
 * cut, escaped. An HTML parser drops a line feed right after `<pre>`, so output
 * that begins with an empty line gets one more, which the parser takes away.
 */
const tailText = (tail: string, count: number): { readonly lines: number; readonly html: string } => {
  const lines = lastLines(cleanOutput(tail), count).map((line) =>
    line.length <= maxLineLength
      ? line
      : `${line.slice(0, maxLineLength)}… [${line.length - maxLineLength} more characters]`
  )
  const text = lines.join("\n")
  return { lines: lines.length, html: (text.startsWith("\n") ? "\n" : "") + escapeHtml(text) }
}

const finite = (n: number): number => (Number.isFinite(n) && n > 0 ? n : 0)

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`

/** a percentage for CSS with at most 4 decimals */
const pct = (part: number, whole: number): string => {
  const value = whole <= 0 ? 0 : Math.min(100, Math.max(0, (part / whole) * 100))
  return `${Number(value.toFixed(4))}%`
}

const statusLabel = (status: TestStatus | SessionStatus): string => status.replaceAll("_", " ")

const statusOrder: ReadonlyArray<TestStatus> = [
  "PASSED",
  "FLAKY",
  "FAILED",
  "TIMED_OUT",
  "ERROR",
  "CANCELLED",
  "RUNNING",
  "QUEUED"
]

const utc = (dt: DateTime.Utc): string => DateTime.formatIso(dt).replace("T", " ").replace(/\.\d+Z$/, " UTC")

const millis = (dt: DateTime.Utc): number => DateTime.toEpochMillis(dt)

/** an offset on the time axis: `0`, `0.5s`, `30s`, `2m`, `2m30s`, `1h`, `1h05m` */
const axisLabel = (ms: number): string => {
  if (ms === 0) return "0"
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(3))}s`
  if (ms < 3_600_000) {
    const m = Math.floor(ms / 60_000)
    const s = Math.round((ms % 60_000) / 1000)
    return s === 0 ? `${m}m` : `${m}m${String(s).padStart(2, "0")}s`
  }
  const h = Math.floor(ms / 3_600_000)
  const m = Math.round((ms % 3_600_000) / 60_000)
  return m === 0 ? `${h}h` : `${h}h${String(m).padStart(2, "0")}m`
}

const niceSteps = [
  1, 2, 5, 10, 20, 50, 100, 200, 500,
  1000, 2000, 5000, 10_000, 15_000, 30_000,
  60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
  3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000
]

/** a round tick step giving at most about 10 ticks over `span` */
const tickStep = (span: number): number => {
  const raw = span / 10
  for (const step of niceSteps) if (step >= raw) return step
  return Math.ceil(raw / 86_400_000) * 86_400_000
}

interface Placed {
  readonly test: TestResult
  readonly attempt: Attempt
  readonly start: number
  readonly duration: number
  /** the colour: the attempt's status, FLAKY for the passing attempt of a flaky test */
  readonly outcome: TestStatus
  /** the row inside its lane: 0 unless attempts on one worker overlap in time */
  readonly row: number
}

interface Timeline {
  readonly span: number
  readonly lanes: ReadonlyArray<number>
  readonly byLane: ReadonlyMap<number, ReadonlyArray<Placed>>
}

const timeline = (report: Report, group?: { readonly workers: number; readonly tests: ReadonlySet<string> }): Timeline => {
  const origin = millis(report.session.startedAt)
  const placed: Array<Placed> = []
  let end = report.session.completedAt === null ? 0 : finite(report.session.durationMs)
  const workers = group?.workers ?? report.session.workers
  for (const test of report.tests) {
    if (group !== undefined && !group.tests.has(test.id)) continue
    for (const attempt of test.attempts) {
      const start = finite(millis(attempt.startedAt) - origin)
      const duration = finite(attempt.durationMs)
      end = Math.max(end, start + duration)
      placed.push({
        test,
        attempt,
        start,
        duration,
        outcome: attempt.status === "PASSED" && test.status === "FLAKY" ? "FLAKY" : attempt.status,
        row: 0
      })
    }
  }
  const lanes = new Set<number>()
  for (let w = 1; w <= workers; w++) lanes.add(w)
  // an attempt on a slot outside 1..workers still gets a lane rather than vanishing
  for (const p of placed) lanes.add(p.attempt.worker)
  const byLane = new Map<number, Array<Placed>>()
  for (const p of placed) {
    const lane = byLane.get(p.attempt.worker) ?? []
    lane.push(p)
    byLane.set(p.attempt.worker, lane)
  }
  // a worker runs one attempt at a time, but a report can say otherwise (clock
  // steps, merged sessions): overlapping bars go on extra rows, none hides another
  for (const [worker, lane] of byLane) {
    lane.sort((a, b) => a.start - b.start)
    const rowEnds: Array<number> = []
    byLane.set(
      worker,
      lane.map((p) => {
        let row = rowEnds.findIndex((rowEnd) => rowEnd <= p.start)
        if (row === -1) row = rowEnds.push(0) - 1
        rowEnds[row] = p.start + p.duration
        return { ...p, row }
      })
    )
  }
  return { span: Math.max(end, 1), lanes: Array.from(lanes).sort((a, b) => a - b), byLane }
}

const outcomeLabel = (p: Placed): string =>
  p.outcome === "FLAKY" ? "PASSED on a retry (flaky)" : statusLabel(p.attempt.status)

const exitText = (a: Attempt): string =>
  a.signal !== null ? `signal ${oneLine(a.signal)}` : a.exitCode !== null ? `exit ${a.exitCode}` : "—"

const barTitle = (p: Placed): string =>
  [
    `${oneLine(p.test.id)} — attempt ${p.attempt.n} of ${p.test.attempts.length}`,
    ...(p.test.name !== p.test.id && oneLine(p.test.name).length > 0 ? [oneLine(p.test.name)] : []),
    `${outcomeLabel(p)} · ${formatDuration(p.duration)}${
      p.attempt.exitCode === null && p.attempt.signal === null ? "" : ` · ${exitText(p.attempt)}`
    }`,
    `worker ${p.attempt.worker} · started at +${formatDuration(p.start)}`
  ].map(escapeHtml).join("&#10;")

const bar = (p: Placed, span: number): string =>
  `<div class="bar s-${p.outcome}" tabindex="0" role="button" data-attempt="${attr(`${p.test.id}#${p.attempt.n}`)}"` +
  ` data-status="${p.attempt.status}" data-outcome="${p.outcome}" data-test="${attr(p.test.id)}"` +
  ` style="left:${pct(p.start, span)};width:${pct(p.duration, span)}${p.row === 0 ? "" : `;--row:${p.row}`}" title="${barTitle(p)}">` +
  `<span>${txt(p.test.id)}${p.attempt.n > 1 ? ` #${p.attempt.n}` : ""}</span></div>`

/** the lanes of one timeline: a row per worker, a bar per attempt */
const laneRows = ({ byLane, lanes }: Timeline, span: number, workers: number): Array<string> =>
  lanes.map((lane) => {
    const placed = byLane.get(lane) ?? []
    const busy = placed.reduce((sum, p) => sum + p.duration, 0)
    const extra = lane < 1 || lane > workers
    const note = placed.length === 0
      ? "idle"
      : `${plural(placed.length, "attempt")} · ${Math.round((Math.min(busy, span) / span) * 100)}% busy`
    const rowCount = placed.reduce((n, p) => Math.max(n, p.row + 1), 1)
    return `<div class="lane${placed.length === 0 ? " idle" : ""}" data-lane="${lane}"${
      rowCount === 1 ? "" : ` style="--rows:${rowCount}"`
    }>` +
      `<div class="lane-label"><b>Worker ${lane}</b><small>${extra ? "outside 1.." + workers + " · " : ""}${note}</small></div>` +
      `<div class="lane-track">${placed.map((p) => bar(p, span)).join("")}</div></div>`
  })

/** the lane groups, and one more for the tests in none of them */
const groupsOf = (report: Report, groups: ReadonlyArray<LaneGroup>): ReadonlyArray<LaneGroup> => {
  const grouped = new Set(groups.flatMap((g) => g.tests))
  const others = report.tests.filter((t) => !grouped.has(t.id))
  const workers = Math.max(0, ...others.flatMap((t) => t.attempts.map((a) => a.worker)))
  return others.length === 0
    ? groups
    : [...groups, { label: "Other tests", workers, tests: others.map((t) => t.id) }]
}

const renderGroups = (report: Report, groups: ReadonlyArray<LaneGroup>, span: number): string =>
  groupsOf(report, groups).map((g, i) => {
    const t = timeline(report, { workers: g.workers, tests: new Set(g.tests) })
    const note = [g.note, plural(g.workers, "worker"), plural(g.tests.length, "test")].filter((n) => n !== undefined)
    return `<div class="lane-group" data-lane-group="${i + 1}">` +
      `<div class="group-label"><b>${txt(g.label)}</b><small>${note.map(txt).join(" · ")}</small></div>\n` +
      `${laneRows(t, span, g.workers).join("\n")}</div>`
  }).join("\n")

const renderTimeline = (report: Report, groups?: ReadonlyArray<LaneGroup>): string => {
  const all = timeline(report)
  const { byLane, span } = all
  const step = tickStep(span)
  const ticks: Array<number> = []
  for (let t = 0; t <= span; t += step) ticks.push(t)
  const grid = ticks.map((t) => `<span style="left:${pct(t, span)}"></span>`).join("")
  const labels = ticks
    .map((t) => `<span class="tick" style="left:${pct(t, span)}">${axisLabel(t)}</span>`)
    .join("")
  const grouped = groups !== undefined && groups.length > 0
  const rows = grouped ? renderGroups(report, groups, span) : laneRows(all, span, report.session.workers).join("\n")
  const present = new Set(Array.from(byLane.values()).flat().map((p) => p.outcome))
  const legend = statusOrder.filter((s) => present.has(s))
    .map((s) =>
      `<span><i class="swatch s-${s}"></i>${s === "FLAKY" ? "passed on retry" : statusLabel(s).toLowerCase()}</span>`
    )
    .join("")
  return `<section class="card" aria-labelledby="timeline-h">
<div class="section-head"><h2 id="timeline-h">Timeline</h2><div class="legend">${legend}</div></div>
<p class="hint">${
    grouped
      ? "One group of lanes per shard, one lane per worker of that shard, one bar per attempt, placed by when it started after the first shard began."
      : "One lane per worker, one bar per attempt, placed by when it started after the session began."
  } Hover a bar for details; click it to open its test.</p>
<div class="tl">
<div class="tl-rows"><div class="tl-grid" aria-hidden="true">${grid}</div>
${rows}
</div>
<div class="tl-axis" aria-hidden="true"><div class="lane-label"></div><div class="lane-track">${labels}</div></div>
</div>
</section>`
}

const badge = (status: TestStatus | SessionStatus, cls = ""): string =>
  `<span class="badge s-${status}${cls}">${statusLabel(status)}</span>`

const dots = (test: TestResult): string =>
  [...test.attempts]
    .sort((a, b) => a.n - b.n)
    .map((a) =>
      `<i class="dot s-${a.status === "PASSED" && test.status === "FLAKY" ? "FLAKY" : a.status}" title="attempt ${a.n}: ${
        statusLabel(a.status)
      }"></i>`
    )
    .join("")

const attemptRow = (a: Attempt, origin: number): string =>
  `<tr><td class="num">${a.n}</td><td>${badge(a.status)}</td><td class="num">${a.worker}</td>` +
  `<td class="num">+${formatDuration(finite(millis(a.startedAt) - origin))}</td>` +
  `<td class="num">${formatDuration(a.durationMs)}</td><td>${escapeHtml(exitText(a))}</td>` +
  `<td><code class="path" data-log>${txt(a.logPath)}</code><div class="sub">worktree <code class="path">${
    txt(a.worktree)
  }</code></div>${a.message === undefined ? "" : `<div class="message">${txt(a.message)}</div>`}</td></tr>`

const outputBlock = (a: Attempt, open: boolean, tailLines: number): string => {
  const tail = tailText(a.tail, tailLines)
  const summary = tail.lines === 0
    ? `Attempt ${a.n} printed nothing`
    : `Output of attempt ${a.n} · last ${plural(tail.lines, "line")}`
  return tail.lines === 0
    ? `<p class="no-output">${summary}.</p>`
    : `<details class="output"${open ? " open" : ""}><summary>${summary}</summary><pre class="tail" data-tail="${a.n}">${tail.html}</pre></details>`
}

const details = (test: TestResult, origin: number, tailLines: number): string => {
  const attempts = [...test.attempts].sort((a, b) => a.n - b.n)
  const facts = [
    ["Source", `<code class="path">${txt(test.source)}</code>`],
    ["Ref", `<code>${txt(test.ref)}</code>`],
    ...(test.keptWorktree === undefined ? [] : [["Kept worktree", `<code class="path">${txt(test.keptWorktree)}</code>`]]),
    ...(test.flakiness === undefined ? [] : [["Flaky recently", `${Math.round(test.flakiness * 100)}% of sessions`]])
  ].map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")
  const name = oneLine(test.name).length > 0 && test.name !== test.id
    ? `<p class="full-name">${escapeHtml(cleanOutput(test.name))}</p>`
    : ""
  if (attempts.length === 0) {
    return `${name}<dl class="facts">${facts}</dl><p class="no-output">No attempt ran.</p>`
  }
  const failing = test.status !== "PASSED" && test.status !== "FLAKY"
  const outputs = attempts
    .map((a, i) => ({ a, open: i === attempts.length - 1 && failing }))
    .reverse()
    .map(({ a, open }) => outputBlock(a, open, tailLines))
    .join("")
  return `${name}<dl class="facts">${facts}</dl>
<table class="attempts"><thead><tr><th class="num">#</th><th>Status</th><th class="num">Worker</th><th class="num">Started</th><th class="num">Duration</th><th>Exit</th><th>Log</th></tr></thead>
<tbody>${attempts.map((a) => attemptRow(a, origin)).join("")}</tbody></table>
${outputs}`
}

const testBody = (test: TestResult, index: number, origin: number, tailLines: number): string => {
  const key = escapeHtml(`${oneLine(test.id)}\n${oneLine(test.name)}`.toLowerCase())
  const detailId = `test-${index}-detail`
  return `<tbody class="test" data-test="${attr(test.id)}" data-status="${test.status}" data-key="${key}">
<tr class="test-row"><td class="toggle"><button type="button" class="expand" aria-expanded="false" aria-controls="${detailId}" aria-label="Show attempts and output"></button></td>
<td>${badge(test.status)}</td><td class="id"><code data-field="id">${txt(test.id)}</code></td><td class="name" data-field="name">${
    txt(test.name)
  }</td><td class="source"><code class="path">${txt(test.source)}</code></td><td class="num">${
    formatDuration(test.durationMs)
  }</td><td class="attempts-cell"><span class="dots">${dots(test)}</span><span class="n-attempts">${test.attempts.length}</span></td></tr>
<tr class="detail" id="${detailId}" hidden><td colspan="7"><div class="detail-body">${details(test, origin, tailLines)}</div></td></tr>
</tbody>`
}

const renderTests = (report: Report, tailLines: number): string => {
  const origin = millis(report.session.startedAt)
  const counts = new Map<TestStatus, number>()
  for (const t of report.tests) counts.set(t.status, (counts.get(t.status) ?? 0) + 1)
  const filters = [
    `<button type="button" class="filter" data-filter="ALL" aria-pressed="true">All <b>${report.tests.length}</b></button>`,
    ...statusOrder.filter((s) => counts.has(s)).map((s) =>
      `<button type="button" class="filter" data-filter="${s}" aria-pressed="false"><i class="swatch s-${s}"></i>${
        statusLabel(s)
      } <b>${counts.get(s)}</b></button>`
    )
  ].join("")
  return `<section class="card" aria-labelledby="tests-h">
<div class="section-head"><h2 id="tests-h">Tests</h2><span class="shown" data-shown aria-live="polite">${
    plural(report.tests.length, "test")
  }</span></div>
<div class="toolbar"><div class="filters" role="group" aria-label="Filter by status">${filters}</div>
<input type="search" class="search" data-search placeholder="Search id or name…" aria-label="Search tests by id or name" autocomplete="off" spellcheck="false"></div>
<div class="table-wrap"><table class="tests">
<thead><tr><th class="toggle"><span class="sr">Expand</span></th><th>Status</th><th>ID</th><th>Name</th><th>Source</th><th class="num">Duration</th><th>Attempts</th></tr></thead>
${report.tests.map((t, i) => testBody(t, i, origin, tailLines)).join("\n")}
<tbody data-empty${report.tests.length === 0 ? "" : " hidden"}><tr><td colspan="7" class="empty">${
    report.tests.length === 0 ? "This session has no tests." : "No test matches the filter."
  }</td></tr></tbody>
</table></div>
</section>`
}

const renderHeader = (report: Report): string => {
  const { session, totals } = report
  const duration = session.completedAt === null ? "not finished" : formatDuration(session.durationMs)
  const succeeded = totals.passed + totals.flaky
  const cards = ([
    ["Total", totals.total, ""],
    ["Passed", totals.passed, "PASSED"],
    ["Flaky", totals.flaky, "FLAKY"],
    ["Failed", totals.failed, "FAILED"],
    ["Timed out", totals.timedOut, "TIMED_OUT"],
    ["Error", totals.error, "ERROR"],
    ["Cancelled", totals.cancelled, "CANCELLED"]
  ] as const).map(([label, n, s]) =>
    `<div class="count${s === "" ? "" : ` c-${s}`}${n === 0 && s !== "" ? " zero" : ""}"><b>${n}</b><span>${label}</span></div>`
  ).join("")
  const segments = ([
    ["PASSED", totals.passed],
    ["FLAKY", totals.flaky],
    ["FAILED", totals.failed],
    ["TIMED_OUT", totals.timedOut],
    ["ERROR", totals.error],
    ["CANCELLED", totals.cancelled]
  ] as const).filter(([, n]) => n > 0).map(([s, n]) =>
    `<i class="s-${s}" style="width:${pct(n, totals.total)}" title="${statusLabel(s)}: ${n}"></i>`
  ).join("")
  const meta = [
    ["Session", `<code>${txt(session.id)}</code>`],
    ["Started", utc(session.startedAt)],
    ["Finished", session.completedAt === null ? "—" : utc(session.completedAt)],
    ["Duration", duration],
    ["Workers", String(session.workers)],
    [
      "Base",
      `<code>${txt(session.baseRef)}</code> at <code title="${txt(session.baseSha)}">${txt(session.baseSha.slice(0, 12))}</code>`
    ]
  ].map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join("")
  return `<header class="card head">
<div class="title"><h1>grove <span>session report</span></h1>${badge(session.status, " big")}</div>
<dl class="meta">${meta}</dl>
<div class="summary"><div class="rate"><b>${totals.successRate}%</b><span>${succeeded} of ${
    plural(totals.total, "test")
  } succeeded</span></div><div class="counts">${cards}</div></div>
<div class="stack" aria-hidden="true">${segments}</div>
</header>`
}

const css = `
:root{color-scheme:light dark;--bg:#f6f8fa;--card:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#eef1f4;--grid:#e4e8ec;--focus:#0969da;--bar-fg:#fff;--bar-shadow:rgba(0,0,0,.35);
--PASSED:#1a7f37;--FLAKY:#bf8700;--FAILED:#cf222e;--TIMED_OUT:#bc4c00;--ERROR:#8250df;--CANCELLED:#6e7781;--RUNNING:#0969da;--QUEUED:#afb8c1;
--PASSED-bg:#dafbe1;--FLAKY-bg:#fff8c5;--FAILED-bg:#ffebe9;--TIMED_OUT-bg:#fff1e5;--ERROR-bg:#fbefff;--CANCELLED-bg:#eaeef2;--RUNNING-bg:#ddf4ff;--QUEUED-bg:#f6f8fa;
--mono:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#151b23;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--soft:#212830;--grid:#262c36;--focus:#4493f8;--bar-fg:#0d1117;--bar-shadow:transparent;
--PASSED:#3fb950;--FLAKY:#d29922;--FAILED:#f85149;--TIMED_OUT:#db6d28;--ERROR:#ab7df8;--CANCELLED:#8b949e;--RUNNING:#4493f8;--QUEUED:#656c76;
--PASSED-bg:#12261e;--FLAKY-bg:#272115;--FAILED-bg:#2d1517;--TIMED_OUT-bg:#2d1d12;--ERROR-bg:#231a36;--CANCELLED-bg:#21262d;--RUNNING-bg:#121d2f;--QUEUED-bg:#161b22}}
*{box-sizing:border-box}[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
main{max-width:1440px;margin:0 auto;padding:24px}
code,pre{font-family:var(--mono);font-size:12.5px}
h1,h2{margin:0;font-weight:600}h1{font-size:22px}h1 span{color:var(--muted);font-weight:400}h2{font-size:17px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:20px 24px;margin-bottom:20px}
.title{display:flex;align-items:center;justify-content:space-between;gap:16px}
.meta{display:flex;flex-wrap:wrap;gap:8px 32px;margin:14px 0 18px}.meta div{min-width:0}
.meta dt{color:var(--muted);font-size:12px}.meta dd{margin:0;font-weight:500}
.summary{display:flex;align-items:stretch;gap:16px;flex-wrap:wrap}
.rate{display:flex;flex-direction:column;justify-content:center;padding-right:20px;border-right:1px solid var(--line);min-width:170px}
.rate b{font-size:28px;line-height:1.1}.rate span{color:var(--muted);font-size:12.5px}
.counts{display:flex;gap:10px;flex-wrap:wrap}
.count{min-width:92px;padding:8px 12px;border-radius:8px;background:var(--soft);border-left:4px solid var(--line)}
.count b{display:block;font-size:20px;line-height:1.2}.count span{color:var(--muted);font-size:12px}
.count.zero{opacity:.55}
.c-PASSED{border-left-color:var(--PASSED)}.c-FLAKY{border-left-color:var(--FLAKY)}.c-FAILED{border-left-color:var(--FAILED)}
.c-TIMED_OUT{border-left-color:var(--TIMED_OUT)}.c-ERROR{border-left-color:var(--ERROR)}.c-CANCELLED{border-left-color:var(--CANCELLED)}
.stack{display:flex;height:8px;border-radius:4px;overflow:hidden;margin-top:18px;background:var(--soft)}.stack i{display:block;height:100%}
.stack .s-PASSED{background:var(--PASSED)}.stack .s-FLAKY{background:var(--FLAKY)}.stack .s-FAILED{background:var(--FAILED)}
.stack .s-TIMED_OUT{background:var(--TIMED_OUT)}.stack .s-ERROR{background:var(--ERROR)}.stack .s-CANCELLED{background:var(--CANCELLED)}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11.5px;font-weight:600;letter-spacing:.02em;white-space:nowrap;border:1px solid currentColor}
.badge.big{font-size:13px;padding:3px 12px}
.badge.s-PASSED,.badge.s-COMPLETE{color:var(--PASSED);background:var(--PASSED-bg)}
.badge.s-FLAKY,.badge.s-PARTIAL_SUCCESS{color:var(--FLAKY);background:var(--FLAKY-bg)}
.badge.s-FAILED{color:var(--FAILED);background:var(--FAILED-bg)}
.badge.s-TIMED_OUT{color:var(--TIMED_OUT);background:var(--TIMED_OUT-bg)}
.badge.s-ERROR{color:var(--ERROR);background:var(--ERROR-bg)}
.badge.s-CANCELLED,.badge.s-INTERRUPTED,.badge.s-NO_TESTS{color:var(--CANCELLED);background:var(--CANCELLED-bg)}
.badge.s-RUNNING{color:var(--RUNNING);background:var(--RUNNING-bg)}.badge.s-QUEUED{color:var(--muted);background:var(--QUEUED-bg)}
.section-head{display:flex;align-items:center;justify-content:space-between;gap:16px;flex-wrap:wrap}
.hint{color:var(--muted);margin:6px 0 14px;font-size:12.5px}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted)}.legend span{display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:3px}
.swatch.s-PASSED,.bar.s-PASSED,.dot.s-PASSED{background:var(--PASSED)}.swatch.s-FLAKY,.bar.s-FLAKY,.dot.s-FLAKY{background:var(--FLAKY)}
.swatch.s-FAILED,.bar.s-FAILED,.dot.s-FAILED{background:var(--FAILED)}.swatch.s-TIMED_OUT,.bar.s-TIMED_OUT,.dot.s-TIMED_OUT{background:var(--TIMED_OUT)}
.swatch.s-ERROR,.bar.s-ERROR,.dot.s-ERROR{background:var(--ERROR)}.swatch.s-CANCELLED,.bar.s-CANCELLED,.dot.s-CANCELLED{background:var(--CANCELLED)}
.swatch.s-RUNNING,.bar.s-RUNNING,.dot.s-RUNNING{background:var(--RUNNING)}.swatch.s-QUEUED,.bar.s-QUEUED,.dot.s-QUEUED{background:var(--QUEUED)}
.bar.s-FLAKY{background:repeating-linear-gradient(135deg,var(--FLAKY) 0 6px,color-mix(in srgb,var(--FLAKY) 80%,#000) 6px 12px)}
.bar.s-CANCELLED{background:repeating-linear-gradient(135deg,var(--CANCELLED) 0 6px,color-mix(in srgb,var(--CANCELLED) 75%,#fff) 6px 12px)}
.tl{--label:150px}
.tl-rows{position:relative;border:1px solid var(--line);border-radius:8px;overflow:hidden}
.tl-grid{position:absolute;top:0;bottom:0;left:var(--label);right:28px;pointer-events:none}
.tl-grid span{position:absolute;top:0;bottom:0;border-left:1px dashed var(--grid)}
.lane{--rows:1;display:flex;min-height:calc(12px + var(--rows) * 24px - 2px);border-top:1px solid var(--line)}.lane:first-of-type{border-top:0}
.lane:nth-of-type(even){background:color-mix(in srgb,var(--soft) 45%,transparent)}
.lane-label{flex:0 0 var(--label);padding:4px 12px;display:flex;flex-direction:column;justify-content:center;border-right:1px solid var(--line);line-height:1.25}
.lane-label b{font-size:12.5px;font-weight:600}.lane-label small{color:var(--muted);font-size:11px}
.lane.idle .lane-label small{color:var(--FLAKY);font-weight:600}
.lane-track{position:relative;flex:1;min-width:0;margin-right:28px}
.bar{--row:0;position:absolute;top:calc(6px + var(--row) * 24px);height:22px;min-width:3px;border-radius:4px;color:var(--bar-fg);font-size:11px;line-height:22px;overflow:hidden;cursor:pointer;
box-shadow:inset 0 0 0 1px rgba(0,0,0,.15);outline-offset:1px}
.bar span{display:block;padding:0 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;text-shadow:0 1px 1px var(--bar-shadow)}
.bar:hover,.bar:focus-visible{filter:brightness(1.12);z-index:2;outline:2px solid var(--focus)}
.tl-axis{display:flex;height:22px}.tl-axis .lane-label{border-right:0}
.tick{position:absolute;top:3px;transform:translateX(-50%);font-size:11px;color:var(--muted);white-space:nowrap;font-variant-numeric:tabular-nums}
.tick:first-child{transform:none}
.toolbar{display:flex;gap:12px;align-items:center;justify-content:space-between;flex-wrap:wrap;margin:12px 0 14px}
.filters{display:flex;gap:6px;flex-wrap:wrap}
.filter{font:inherit;font-size:12.5px;display:inline-flex;align-items:center;gap:6px;padding:4px 10px;border-radius:999px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
.filter b{font-weight:600;color:var(--muted)}
.filter:hover{background:var(--soft)}.filter[aria-pressed=true]{background:var(--fg);color:var(--card);border-color:var(--fg)}.filter[aria-pressed=true] b{color:inherit}
.filter:focus-visible,.search:focus-visible,.expand:focus-visible{outline:2px solid var(--focus);outline-offset:1px}
.search{font:inherit;width:280px;max-width:100%;padding:6px 10px;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg)}
.shown{color:var(--muted);font-size:12.5px}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-size:12px;font-weight:600;color:var(--muted);padding:8px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:8px 10px;vertical-align:top}
.tests>tbody.test{border-top:1px solid var(--line)}
.test-row{cursor:pointer}.test-row:hover{background:var(--soft)}
.test.open .test-row{background:var(--soft)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.id code{font-weight:600;overflow-wrap:anywhere}td.name{overflow-wrap:anywhere;max-width:380px}
td.source code{color:var(--muted);overflow-wrap:anywhere}
.toggle{width:28px;padding-right:0}
.expand{width:22px;height:22px;border:0;border-radius:4px;background:transparent;color:var(--muted);cursor:pointer;padding:0;font:inherit}
.expand::before{content:"";display:inline-block;border:5px solid transparent;border-left:7px solid currentColor;border-right:0;transform-origin:3px 5px;transition:transform .12s}
.expand[aria-expanded=true]::before{transform:rotate(90deg)}
.expand:hover{background:var(--line)}
.attempts-cell{white-space:nowrap}.dots{display:inline-flex;gap:3px;vertical-align:middle;margin-right:6px}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%}
.n-attempts{color:var(--muted);font-size:12px;font-variant-numeric:tabular-nums}
tr.detail>td{padding:0 10px 16px 38px;background:var(--soft)}
.detail-body{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px}
.full-name{margin:0 0 8px;font-weight:500;white-space:pre-wrap;overflow-wrap:anywhere}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 12px;font-size:12.5px}.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
.attempts th,.attempts td{padding:5px 8px;font-size:12.5px}.attempts td{border-top:1px solid var(--line)}
.path{overflow-wrap:anywhere}.sub{color:var(--muted);font-size:11.5px}.message{margin-top:3px;color:var(--ERROR);font-weight:500}
.output{margin-top:12px}.output summary{cursor:pointer;font-weight:500;font-size:12.5px;color:var(--muted)}
.tail{margin:6px 0 0;padding:10px 12px;max-height:420px;overflow:auto;background:#0d1117;color:#e6edf3;border-radius:6px;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.45}
.no-output{color:var(--muted);font-style:italic;margin:10px 0 0;font-size:12.5px}
.empty{text-align:center;color:var(--muted);padding:24px}
.flash .test-row{animation:flash 1.2s ease-out}@keyframes flash{from{background:color-mix(in srgb,var(--focus) 30%,transparent)}}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
footer{color:var(--muted);font-size:12px;text-align:center;padding:4px 0 24px}
`.trim()

/** the lane groups of a merged report's timeline (only in such a page: other pages stay as they were) */
const groupCss = `
.lane-group{border-top:2px solid var(--line)}.tl-grid+.lane-group{border-top:0}
.group-label{position:relative;z-index:1;display:flex;gap:12px;align-items:baseline;padding:5px 12px;background:var(--soft)}
.group-label b{font-size:12.5px;font-weight:600}.group-label small{color:var(--muted);font-size:11px}
`.trim()

/**
 * The page's only script. It reads nothing but the DOM rendered above, and
 * only sets `hidden`, `aria-*`, classes and `textContent`.
 */
const script = `
(() => {
  "use strict";
  const rows = Array.from(document.querySelectorAll("tbody[data-test]"));
  const buttons = Array.from(document.querySelectorAll("button[data-filter]"));
  const search = document.querySelector("input[data-search]");
  const shown = document.querySelector("[data-shown]");
  const empty = document.querySelector("tbody[data-empty]");
  const active = new Set();
  const plural = (n) => n + (n === 1 ? " test" : " tests");
  const apply = () => {
    const query = search.value.trim().toLowerCase();
    let visible = 0;
    for (const row of rows) {
      const match = (active.size === 0 || active.has(row.dataset.status)) &&
        (query === "" || row.dataset.key.includes(query));
      row.hidden = !match;
      if (match) visible++;
    }
    for (const button of buttons) {
      const filter = button.dataset.filter;
      button.setAttribute("aria-pressed", String(filter === "ALL" ? active.size === 0 : active.has(filter)));
    }
    shown.textContent = visible === rows.length ? plural(rows.length) : visible + " of " + plural(rows.length);
    empty.hidden = visible !== 0 || rows.length === 0;
  };
  // an output tail ends with what matters: show its last lines first
  const toBottom = (root) => {
    for (const pre of root.querySelectorAll("pre.tail")) pre.scrollTop = pre.scrollHeight;
  };
  const setOpen = (row, open) => {
    const button = row.querySelector("button.expand");
    const detail = row.querySelector("tr.detail");
    button.setAttribute("aria-expanded", String(open));
    detail.hidden = !open;
    row.classList.toggle("open", open);
    if (open) toBottom(detail);
  };
  document.addEventListener("toggle", (event) => {
    if (event.target.matches("details.output") && event.target.open) toBottom(event.target);
  }, true);
  for (const button of buttons) {
    button.addEventListener("click", () => {
      const filter = button.dataset.filter;
      if (filter === "ALL") active.clear();
      else if (active.has(filter)) active.delete(filter);
      else active.add(filter);
      apply();
    });
  }
  search.addEventListener("input", apply);
  for (const row of rows) {
    row.querySelector("tr.test-row").addEventListener("click", (event) => {
      const selection = window.getSelection();
      if (selection !== null && selection.toString() !== "" && !event.target.closest("button")) return;
      setOpen(row, row.querySelector("tr.detail").hidden);
    });
    row.addEventListener("animationend", () => row.classList.remove("flash"));
  }
  const reveal = (id) => {
    const row = rows.find((r) => r.dataset.test === id);
    if (row === undefined) return;
    if (row.hidden) {
      active.clear();
      search.value = "";
      apply();
    }
    setOpen(row, true);
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
    row.scrollIntoView({ block: "center", behavior: "smooth" });
  };
  for (const bar of document.querySelectorAll("[data-attempt]")) {
    bar.addEventListener("click", () => reveal(bar.dataset.test));
    bar.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        reveal(bar.dataset.test);
      }
    });
  }
  apply();
})();
`.trim()

const scriptHash = `sha256-${Crypto.createHash("sha256").update(script, "utf8").digest("base64")}`

/**
 * The Content-Security-Policy of the page: nothing may be fetched, only the
 * page's own script (by hash) runs, styles are inline.
 *
 * @since 0.1.0
 */
export const contentSecurityPolicy =
  `default-src 'none'; script-src '${scriptHash}'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'`

/**
 * The HTML text of a report: one self-contained page, no network.
 *
 * @since 0.1.0
 */
export const render = (report: Report, options: Options = {}): string => {
  const tailLines = options.tailLines ?? 40
  const { session } = report
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="generator" content="grove">
<link rel="icon" href="data:,">
<title>grove ${txt(session.id)} · ${statusLabel(session.status)}</title>
<style>
${css}${options.laneGroups !== undefined && options.laneGroups.length > 0 ? `\n${groupCss}` : ""}
</style>
</head>
<body>
<main>
${renderHeader(report)}
${renderTimeline(report, options.laneGroups)}
${renderTests(report, tailLines)}
<footer>grove · report format ${report.version} · one self-contained file, works offline</footer>
</main>
<script>${script}</script>
</body>
</html>
`
}
