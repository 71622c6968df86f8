/**
 * The dashboard of `grove serve` (SPEC §9 "Dashboard"), browser code: one page,
 * routed by its hash so a view can be shared as a link —
 *
 * - `#/` the sessions, newest first, with a status filter;
 * - `#/sessions/ID` one session, live: its fold (`SessionState`) starts from the
 *   snapshot of `GET /api/v1/sessions/ID/events` and goes on with each event, with
 *   the project's own Schemas and reducer (`SessionState.decodeSnapshot`,
 *   `SessionEvent`, `SessionState.update`), reconnecting with `?after=SEQ`;
 * - `#/sessions/ID/tests/TEST` the same, with one test open: its attempts side by
 *   side, its log by byte ranges, its durations over recent sessions.
 *
 * What the page holds is bounded: the fold (running and waiting tests), at most
 * `keptTests` finished tests and `keptBars` bars, and at most `logCap` bytes of one
 * log. Text from the API is always set as text (`textContent`), never as markup.
 *
 * Bundled by `scripts/bundle.mjs` (esbuild, platform browser) into
 * `dashboard/app.js` and `app.css`, which `server/dashboard.ts` serves.
 */
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Logged, SessionEvent, type TestResult as TestResultType, TestResult, type TestStatus } from "../Domain.js"
import * as SessionState from "../SessionState.js"
import { eta, formatEta } from "../view/Live.js"
import "./style.css"

// -----------------------------------------------------------------------------
// limits
// -----------------------------------------------------------------------------

/** finished tests the page keeps (the newest); the rest are in the store */
const keptTests = 500
/** attempt bars the lanes keep (the newest) */
const keptBars = 2000
/** rows of a table shown at once */
const shownRows = 200
/** waiting tests listed */
const shownWaiting = 50
/** one range of a log */
const logChunk = 64 * 1024
/** the most of one log the page holds */
const logCap = 4 * 1024 * 1024
/** sessions whose result for a test make its duration history */
const historySessions = 10

// -----------------------------------------------------------------------------
// DOM helpers
// -----------------------------------------------------------------------------

type Child = Node | string | null | undefined | false
type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>

/** an element with attributes (`on*` are listeners) and children (strings become text) */
const h = (tag: string, attrs: Attrs = {}, ...children: ReadonlyArray<Child | ReadonlyArray<Child>>): HTMLElement => {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    if (typeof v === "function") el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? "" : String(v))
  }
  append(el, children)
  return el
}

const append = (el: Element, children: ReadonlyArray<Child | ReadonlyArray<Child>>) => {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue
    el.append(typeof c === "string" ? document.createTextNode(c) : c)
  }
}

const svgNs = "http://www.w3.org/2000/svg"
const s = (tag: string, attrs: Record<string, string | number>, ...children: ReadonlyArray<Node>): SVGElement => {
  const el = document.createElementNS(svgNs, tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  el.append(...children)
  return el
}

const badge = (status: string, big = false) => h("span", { class: `badge s-${status}${big ? " big" : ""}` }, status.replace("_", " "))

const duration = (ms: number): string => {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const secs = ms / 1000
  if (secs < 60) return `${secs.toFixed(1)}s`
  const m = Math.floor(secs / 60)
  if (m < 60) return `${m}m${String(Math.round(secs % 60)).padStart(2, "0")}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
}

const when = (epochMillis: number) => new Date(epochMillis).toLocaleString()

const $ = (id: string): HTMLElement => {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`the page has no #${id}`)
  return el
}

// -----------------------------------------------------------------------------
// the API
// -----------------------------------------------------------------------------

const api = "/api/v1"

/** an error answer of the API: its status and its `message` */
class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

const failure = async (response: Response): Promise<ApiError> => {
  const text = await response.text()
  try {
    const body = JSON.parse(text) as { readonly message?: unknown; readonly _tag?: unknown }
    if (typeof body.message === "string") return new ApiError(response.status, body.message)
  } catch {
    // not JSON: the text itself
  }
  return new ApiError(response.status, `${response.status} ${response.statusText}${text === "" ? "" : `: ${text.slice(0, 200)}`}`)
}

/** a GET of `url`; a reply other than 2xx is thrown as the API's error */
const get = async (url: string): Promise<Response> => {
  const response = await fetch(url, { headers: { accept: "application/json" } })
  if (!response.ok) throw await failure(response)
  return response
}

const getJson = async (path: string): Promise<unknown> => (await get(api + path)).json()

const postJson = async (path: string, body: unknown): Promise<unknown> => {
  const response = await fetch(api + path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body)
  })
  if (!response.ok) throw await failure(response)
  return response.json()
}

const SessionRow = Schema.Struct({
  id: Schema.String,
  status: Schema.String,
  startedAt: Schema.Number,
  completedAt: Schema.UndefinedOr(Schema.Number),
  total: Schema.Int,
  passed: Schema.Int,
  notPassed: Schema.Int
})
const decodeSessions = Schema.decodeUnknownSync(Schema.Array(SessionRow))
const decodeTests = Schema.decodeUnknownSync(Schema.Array(TestResult))
const decodeTest = Schema.decodeUnknownSync(TestResult)
const decodeEvent = Schema.decodeUnknownSync(SessionEvent)
const decodeHistory = Schema.decodeUnknownSync(Schema.Struct({
  testId: Schema.String,
  history: Schema.Struct({
    expectedMs: Schema.UndefinedOr(Schema.Number),
    flakiness: Schema.UndefinedOr(Schema.Number),
    recent: Schema.optional(Schema.Array(Schema.String))
  })
}))
const decodeAccepted = Schema.decodeUnknownSync(Schema.Struct({ id: Schema.String }))

const enc = encodeURIComponent

// -----------------------------------------------------------------------------
// routing
// -----------------------------------------------------------------------------

type Route =
  | { readonly _tag: "Sessions" }
  | { readonly _tag: "Session"; readonly id: string; readonly test: string | undefined }

const routeOf = (hash: string): Route => {
  const m = /^#\/sessions\/([^/]+)(?:\/tests\/(.+))?$/.exec(hash)
  if (m === null) return { _tag: "Sessions" }
  return { _tag: "Session", id: decodeURIComponent(m[1]!), test: m[2] === undefined ? undefined : decodeURIComponent(m[2]) }
}

const sessionHref = (id: string) => `#/sessions/${enc(id)}`
const testHref = (id: string, test: string) => `${sessionHref(id)}/tests/${enc(test)}`

/** what the current view must undo when the route changes */
let leave: () => void = () => {}
let current: { readonly id: string; readonly view: SessionView } | undefined

const route = () => {
  const r = routeOf(location.hash)
  if (r._tag === "Session" && current !== undefined && current.id === r.id) {
    current.view.openTest(r.test)
    return
  }
  leave()
  leave = () => {}
  current = undefined
  const root = $("app")
  root.replaceChildren()
  if (r._tag === "Sessions") {
    leave = sessionsPage(root)
  } else {
    const view = new SessionView(root, r.id)
    current = { id: r.id, view }
    view.openTest(r.test)
    leave = () => view.close()
  }
}

// -----------------------------------------------------------------------------
// the sessions list
// -----------------------------------------------------------------------------

const sessionStatuses = ["RUNNING", "COMPLETE", "PARTIAL_SUCCESS", "FAILED", "INTERRUPTED", "NO_TESTS"] as const

const sessionsPage = (root: HTMLElement): () => void => {
  const params = new URLSearchParams(location.search)
  let status = params.get("status") ?? ""
  const body = h("tbody")
  const error = h("p", { class: "error", role: "alert", hidden: true })
  const select = h(
    "select",
    {
      id: "status-filter",
      "aria-label": "status",
      onchange: (e) => {
        status = (e.target as HTMLSelectElement).value
        void load()
      }
    },
    h("option", { value: "" }, "every status"),
    sessionStatuses.map((st) => h("option", { value: st }, st.replace("_", " ")))
  ) as HTMLSelectElement
  select.value = status
  root.append(
    header([]),
    h(
      "section",
      { class: "card" },
      h("div", { class: "section-head" }, h("h2", {}, "Sessions"), h("label", { class: "hint" }, "Status ", select)),
      error,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "sessions" },
          h(
            "thead",
            {},
            h("tr", {}, h("th", {}, "Session"), h("th", {}, "Status"), h("th", {}, "Started"), h("th", { class: "num" }, "Duration"),
              h("th", { class: "num" }, "Tests"), h("th", { class: "num" }, "Passed"), h("th", { class: "num" }, "Not passed"))
          ),
          body
        )
      )
    )
  )
  const load = async () => {
    try {
      const list = decodeSessions(await getJson(`/sessions?limit=50${status === "" ? "" : `&status=${enc(status)}`}`))
      error.hidden = true
      body.replaceChildren(
        ...(list.length === 0
          ? [h("tr", {}, h("td", { colspan: 7, class: "empty" }, status === "" ? "No sessions in this store yet." : `No ${status} session.`))]
          : list.map((row) =>
            h(
              "tr",
              { "data-session": row.id },
              h("td", {}, h("a", { href: sessionHref(row.id) }, h("code", {}, row.id))),
              h("td", {}, badge(row.status)),
              h("td", {}, when(row.startedAt)),
              h("td", { class: "num" }, row.completedAt === undefined ? "…" : duration(row.completedAt - row.startedAt)),
              h("td", { class: "num" }, String(row.total)),
              h("td", { class: "num" }, String(row.passed)),
              h("td", { class: "num" }, String(row.notPassed))
            )
          ))
      )
    } catch (e) {
      showError(error, e)
    }
  }
  void load()
  const timer = setInterval(() => void load(), 5000)
  return () => clearInterval(timer)
}

const header = (extra: ReadonlyArray<Child>) =>
  h("header", { class: "top" }, h("a", { href: "#/", class: "brand" }, "grove"), h("span", { class: "muted" }, "serve"), ...extra)

const showError = (el: HTMLElement, e: unknown) => {
  el.hidden = false
  el.className = "error"
  el.textContent = e instanceof Error ? e.message : String(e)
}

// -----------------------------------------------------------------------------
// one session, live
// -----------------------------------------------------------------------------

interface Bar {
  readonly testId: string
  readonly n: number
  readonly worker: number
  readonly start: number
  /** undefined while it runs */
  readonly durationMs: number | undefined
  readonly status: TestStatus
}

const eventTags = [
  "SessionStarted",
  "TestQueued",
  "AttemptStarted",
  "AttemptSpawned",
  "Relocated",
  "AttemptFinished",
  "RetryScheduled",
  "TestFinished",
  "SessionFinished"
] as const satisfies ReadonlyArray<SessionEvent["_tag"]>

type Filter = "all" | "failed" | "flaky"

const notPassed = (status: TestStatus) => status === "FAILED" || status === "TIMED_OUT" || status === "ERROR" || status === "CANCELLED"

/** a Map that forgets its oldest entries past `cap` */
const capped = <K, V>(map: Map<K, V>, key: K, value: V, cap: number) => {
  map.delete(key)
  map.set(key, value)
  while (map.size > cap) map.delete(map.keys().next().value as K)
}

class SessionView {
  private state: SessionState.SessionState | undefined
  private source: EventSource | undefined
  private retryMs = 500
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private readonly tick: ReturnType<typeof setInterval>
  private closed = false
  private dirty = true
  private readonly tests = new Map<string, TestResultType>()
  private readonly bars = new Map<string, Bar>()
  /** tags of the tests whose TestQueued the page saw */
  private readonly tags = new Map<string, ReadonlyArray<string>>()
  private filter: Filter = "all"
  private tag = ""
  private text = ""
  private openId: string | undefined
  private cancelClicks = 0
  private readonly el: {
    readonly title: HTMLElement
    readonly meta: HTMLElement
    readonly counts: HTMLElement
    readonly lanes: HTMLElement
    readonly queue: HTMLElement
    readonly failures: HTMLElement
    readonly table: HTMLElement
    readonly shown: HTMLElement
    readonly tagSelect: HTMLSelectElement
    readonly detail: HTMLElement
    readonly message: HTMLElement
    readonly live: HTMLElement
    readonly cancel: HTMLButtonElement
    readonly cancelNow: HTMLButtonElement
    readonly rerun: HTMLButtonElement
  }

  constructor(root: HTMLElement, readonly id: string) {
    const filterButton = (f: Filter, label: string) =>
      h("button", {
        class: "filter",
        type: "button",
        "data-filter": f,
        "aria-pressed": f === this.filter ? "true" : "false",
        onclick: () => {
          this.filter = f
          for (const b of root.querySelectorAll("[data-filter]")) b.setAttribute("aria-pressed", b.getAttribute("data-filter") === f ? "true" : "false")
          this.renderTests()
        }
      }, label)
    const tagSelect = h("select", {
      id: "tag-filter",
      "aria-label": "tag",
      onchange: (e) => {
        this.tag = (e.target as HTMLSelectElement).value
        this.renderTests()
      }
    }, h("option", { value: "" }, "every tag")) as HTMLSelectElement
    const cancel = h("button", { class: "action", type: "button", id: "cancel", onclick: () => void this.cancel(false) }, "Cancel") as HTMLButtonElement
    const cancelNow = h("button", { class: "action danger", type: "button", id: "cancel-now", onclick: () => void this.cancel(true) }, "Cancel now") as HTMLButtonElement
    const rerun = h("button", { class: "action", type: "button", id: "rerun", onclick: () => void this.rerun() }, "Re-run failed") as HTMLButtonElement
    this.el = {
      title: h("h1", {}, "Session ", h("code", {}, id)),
      meta: h("dl", { class: "meta" }),
      counts: h("div", { class: "summary", id: "counts" }),
      lanes: h("div", { class: "tl-rows", id: "lanes" }),
      queue: h("div", { id: "queue" }),
      failures: h("div", { id: "failures" }),
      table: h("tbody"),
      shown: h("span", { class: "shown" }),
      tagSelect,
      detail: h("section", { class: "card", id: "detail", hidden: true }),
      message: h("p", { class: "error", role: "alert", id: "message", hidden: true }),
      live: h("span", { class: "live", id: "live" }, "connecting…"),
      cancel,
      cancelNow,
      rerun
    }
    root.append(
      header([this.el.live]),
      h(
        "section",
        { class: "card" },
        h("div", { class: "title" }, this.el.title, h("div", { class: "actions" }, cancel, cancelNow, rerun)),
        this.el.message,
        this.el.meta,
        this.el.counts
      ),
      h(
        "section",
        { class: "card tl" },
        h("div", { class: "section-head" }, h("h2", {}, "Workers"), legend()),
        h("p", { class: "hint" }, "One lane per worker, one bar per attempt, placed by when it started after the session began; a running attempt grows."),
        this.el.lanes
      ),
      h("section", { class: "card" }, h("h2", {}, "Queue"), this.el.queue),
      h("section", { class: "card" }, h("h2", {}, "Failures"), this.el.failures),
      this.el.detail,
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Finished tests"),
        h(
          "div",
          { class: "toolbar" },
          h("div", { class: "filters" }, filterButton("all", "All"), filterButton("failed", "Failed"), filterButton("flaky", "Flaky"), tagSelect),
          h("input", {
            class: "search",
            type: "search",
            id: "search",
            placeholder: "Filter by id, name or source",
            "aria-label": "filter by text",
            oninput: (e) => {
              this.text = (e.target as HTMLInputElement).value.trim().toLowerCase()
              this.renderTests()
            }
          }),
          this.el.shown
        ),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "tests" },
            h("thead", {}, h("tr", {}, h("th", {}, "Test"), h("th", {}, "Status"), h("th", { class: "num" }, "Duration"), h("th", {}, "Attempts"), h("th", {}, "Source"))),
            this.el.table
          )
        )
      )
    )
    this.connect()
    void this.loadTests()
    this.tick = setInterval(() => {
      if (this.dirty) this.render()
      else if (this.state?.status === "RUNNING") this.renderLanes()
    }, 250)
  }

  close() {
    this.closed = true
    this.source?.close()
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    clearInterval(this.tick)
  }

  // --- the live fold ----------------------------------------------------------

  private connect() {
    if (this.closed) return
    const after = this.state === undefined ? "" : `?after=${this.state.seq}`
    const source = new EventSource(`${api}/sessions/${enc(this.id)}/events${after}`)
    this.source = source
    // grove serve opens a stream at once (a comment first): one that stays closed is dropped and retried
    const watchdog = setTimeout(() => {
      if (source.readyState === EventSource.OPEN || this.closed || this.source !== source) return
      source.close()
      this.retry()
    }, 5_000)
    source.addEventListener("open", () => {
      clearTimeout(watchdog)
      this.retryMs = 500
      this.el.live.textContent = "live"
      this.el.live.className = "live on"
    })
    source.addEventListener("snapshot", (e) => {
      const frame = JSON.parse((e as MessageEvent<string>).data) as { readonly state: unknown }
      const first = this.state === undefined
      this.state = SessionState.decodeSnapshot(frame.state)
      for (const r of HashMap.values(this.state.running)) this.runningBar(r)
      if (first) this.backfill(this.state.seq)
      this.dirty = true
    })
    for (const tag of eventTags) {
      source.addEventListener(tag, (e) => {
        const m = e as MessageEvent<string>
        this.fold(new Logged({ seq: Number(m.lastEventId), event: decodeEvent(JSON.parse(m.data)) }))
      })
    }
    source.addEventListener("error", () => {
      clearTimeout(watchdog)
      source.close()
      if (this.closed) return
      if (this.state !== undefined && this.state.status !== "RUNNING") {
        this.el.live.textContent = "ended"
        this.el.live.className = "live"
        return
      }
      if (this.state === undefined) {
        // never connected: a session the store does not hold is not waited for
        getJson(`/sessions/${enc(this.id)}`).then(
          () => this.retry(),
          (e) => {
            if (e instanceof ApiError && e.status === 404) {
              showError(this.el.message, e)
              this.el.live.textContent = "no such session"
              this.el.live.className = "live off"
            } else this.retry()
          }
        )
        return
      }
      this.retry()
    })
  }

  /** the stream broke (or grove serve restarted): again, from the last event folded */
  private retry() {
    if (this.closed) return
    this.el.live.textContent = "reconnecting…"
    this.el.live.className = "live off"
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs)
    // capped low: after a restart of grove serve the page should be live again within seconds
    this.retryMs = Math.min(this.retryMs * 2, 2_000)
  }

  private fold(logged: Logged) {
    const before = this.state ?? SessionState.initial(this.id)
    if (logged.seq <= before.seq) return
    this.state = SessionState.update(before, logged)
    this.learn(logged.event)
    if (logged.event._tag === "SessionFinished") {
      this.el.live.textContent = "ended"
      this.el.live.className = "live"
    }
    this.dirty = true
  }

  /** what the page keeps of an event besides the fold: tags, bars, finished tests */
  private learn(event: SessionEvent) {
    switch (event._tag) {
      case "TestQueued":
        capped(this.tags, event.test.id, event.test.tags, 10_000)
        if (event.test.tags.some((t) => !this.knownTags.has(t))) {
          event.test.tags.forEach((t) => this.knownTags.add(t))
          this.renderTagOptions()
        }
        break
      case "AttemptStarted": {
        const r = this.state === undefined ? undefined : Option.getOrUndefined(HashMap.get(this.state.running, event.testId))
        if (r !== undefined && r.n === event.n) this.runningBar(r)
        break
      }
      case "AttemptFinished":
        this.attemptBar(event.testId, event.attempt)
        break
      case "TestFinished":
        this.addTest(event.result)
        break
      default:
        break
    }
  }

  /**
   * What came before a snapshot, for what the fold does not keep: the tests' tags
   * (in their TestQueued) and the attempts' bars. The stored events 1..`upTo` are read
   * once and the stream closed; the fold itself starts from the snapshot.
   */
  private backfill(upTo: number) {
    if (upTo === 0) return
    const source = new EventSource(`${api}/sessions/${enc(this.id)}/events?after=0`)
    const done = () => source.close()
    for (const tag of eventTags) {
      source.addEventListener(tag, (e) => {
        const m = e as MessageEvent<string>
        const seq = Number(m.lastEventId)
        if (seq > upTo || this.closed) return done()
        const event = decodeEvent(JSON.parse(m.data))
        // a running attempt's bar is the snapshot's; only ended ones come from here
        if (event._tag !== "AttemptStarted") this.learn(event)
        this.dirty = true
        if (seq === upTo) done()
      })
    }
    source.addEventListener("error", done)
  }

  private readonly knownTags = new Set<string>()

  private renderTagOptions() {
    const value = this.el.tagSelect.value
    this.el.tagSelect.replaceChildren(
      h("option", { value: "" }, "every tag"),
      ...Array.from(this.knownTags).sort().map((t) => h("option", { value: t }, t))
    )
    this.el.tagSelect.value = value
  }

  private runningBar(r: SessionState.Running) {
    if (!r.active) return
    capped(this.bars, `${r.testId}#${r.n}`, { testId: r.testId, n: r.n, worker: r.worker, start: r.startedAt, durationMs: undefined, status: "RUNNING" }, keptBars)
  }

  private attemptBar(testId: string, a: TestResultType["attempts"][number]) {
    capped(this.bars, `${testId}#${a.n}`, {
      testId,
      n: a.n,
      worker: a.worker,
      start: a.startedAt.epochMillis,
      durationMs: a.durationMs,
      status: a.status
    }, keptBars)
  }

  private addTest(result: TestResultType) {
    capped(this.tests, result.id, result, keptTests)
    for (const a of result.attempts) this.attemptBar(result.id, a)
    if (this.openId === result.id) void this.renderDetail()
  }

  private async loadTests() {
    try {
      // a page of `keptTests` at a time, each full one naming the next in its `Link` header: the
      // page holds two at most and keeps the newest `keptTests`, however many the session has
      let next: string | undefined = `${api}/sessions/${enc(this.id)}/tests?limit=${keptTests}`
      let newest: ReadonlyArray<TestResultType> = []
      while (next !== undefined) {
        const response: Response = await get(next)
        newest = [...newest, ...decodeTests(await response.json())].slice(-keptTests)
        next = /^<([^>]+)>; rel="next"$/.exec(response.headers.get("link") ?? "")?.[1]
      }
      for (const t of newest) if (!this.tests.has(t.id)) this.addTest(t)
      this.dirty = true
    } catch (e) {
      showError(this.el.message, e)
    }
  }

  // --- actions ---------------------------------------------------------------

  private async cancel(immediate: boolean) {
    // a second click on Cancel is the second signal: stop now
    this.cancelClicks++
    const now = immediate || this.cancelClicks > 1
    try {
      await postJson(`/sessions/${enc(this.id)}/cancel`, { immediate: now })
      this.note(now ? "Cancelling now: running attempts are stopped." : "Cancelling: running attempts finish, nothing new starts. Click again to stop them now.")
    } catch (e) {
      showError(this.el.message, e)
    }
  }

  private async rerun() {
    try {
      const accepted = decodeAccepted(await postJson(`/sessions/${enc(this.id)}/rerun`, {}))
      location.hash = sessionHref(accepted.id)
    } catch (e) {
      showError(this.el.message, e)
    }
  }

  private note(text: string) {
    this.el.message.hidden = false
    this.el.message.className = "note"
    this.el.message.textContent = text
  }

  // --- rendering -------------------------------------------------------------

  private render() {
    this.dirty = false
    const st = this.state
    if (st === undefined) return
    this.el.title.replaceChildren("Session ", h("code", {}, this.id), " ", badge(st.status, true))
    const running = st.status === "RUNNING"
    this.el.cancel.hidden = !running
    this.el.cancelNow.hidden = !running
    this.el.rerun.hidden = running
    const now = Date.now()
    const left = running ? eta(st, now) : undefined
    this.el.meta.replaceChildren()
    append(this.el.meta, [
      fact("Base", `${st.baseRef} @ ${st.baseSha.slice(0, 10)}`),
      fact("Workers", String(st.workers)),
      fact("Started", st.startedAt === undefined ? "–" : when(st.startedAt)),
      fact("Elapsed", duration(running && st.startedAt !== undefined ? now - st.startedAt : SessionState.durationMs(st))),
      running ? fact("ETA", left === undefined ? "unknown" : `${left.estimate ? "~" : ""}${formatEta(left.millis)}`, "eta") : null,
      st.rerunOf === undefined ? null : fact("Re-run of", h("a", { href: sessionHref(st.rerunOf) }, st.rerunOf))
    ])
    const c = st.counts
    const finished = c.passed + c.flaky + c.failed + c.timedOut + c.error + c.cancelled
    const count = (key: string, status: string, n: number, label: string) =>
      h("div", { class: `count c-${status}${n === 0 ? " zero" : ""}`, "data-count": key }, h("b", {}, String(n)), h("span", {}, label))
    this.el.counts.replaceChildren(
      h("div", { class: "rate" }, h("b", { "data-count": "done" }, `${finished} / ${c.total}`), h("span", {}, `finished · ${HashMap.size(st.running)} running · ${HashMap.size(st.waiting)} waiting`)),
      h(
        "div",
        { class: "counts" },
        count("passed", "PASSED", c.passed, "passed"),
        count("flaky", "FLAKY", c.flaky, "flaky"),
        count("failed", "FAILED", c.failed, "failed"),
        count("timedOut", "TIMED_OUT", c.timedOut, "timed out"),
        count("error", "ERROR", c.error, "error"),
        count("cancelled", "CANCELLED", c.cancelled, "cancelled")
      )
    )
    this.renderLanes()
    this.renderQueue()
    this.renderFailures()
    this.renderTests()
  }

  private renderLanes() {
    const st = this.state
    if (st === undefined) return
    const t0 = st.startedAt ?? Math.min(...Array.from(this.bars.values(), (b) => b.start))
    const now = Date.now()
    const end = st.status === "RUNNING" ? now : (st.completedAt ?? st.lastActivity ?? now)
    const span = Math.max(end - t0, 1)
    const byLane = new Map<number, Array<Bar>>()
    for (let w = 1; w <= st.workers; w++) byLane.set(w, [])
    for (const b of this.bars.values()) {
      const lane = byLane.get(b.worker) ?? []
      lane.push(b)
      byLane.set(b.worker, lane)
    }
    const slots = SessionState.slots(st)
    const rows = Array.from(byLane.keys()).sort((a, b) => a - b).map((w) => {
      const bars = byLane.get(w)!
      const busy = slots[w - 1]
      const track = h("div", { class: "lane-track" })
      for (const b of bars) {
        const ms = b.durationMs ?? Math.max(0, now - b.start)
        const bar = h(
          "a",
          {
            class: `bar s-${b.status}`,
            href: testHref(this.id, b.testId),
            "data-test": b.testId,
            "data-attempt": b.n,
            title: `${b.testId} · attempt ${b.n} · ${b.status} · ${duration(ms)}`
          },
          h("span", {}, b.testId)
        )
        // CSSOM, which the CSP allows (a style attribute it would not)
        bar.style.left = `${(Math.max(0, b.start - t0) / span) * 100}%`
        bar.style.width = `${(ms / span) * 100}%`
        track.append(bar)
      }
      return h(
        "div",
        { class: `lane${bars.length === 0 ? " idle" : ""}`, "data-lane": w },
        h("div", { class: "lane-label" }, h("b", {}, `Worker ${w}`), h("small", {}, busy === undefined ? "idle" : `${busy.testId} #${busy.n} · ${duration(now - busy.startedAt)}`)),
        track
      )
    })
    this.el.lanes.replaceChildren(...rows)
  }

  private renderQueue() {
    const st = this.state!
    const waiting = Array.from(HashMap.values(st.waiting)).sort((a, b) => Number(a.retry) - Number(b.retry) || (a.testId < b.testId ? -1 : 1))
    this.el.queue.replaceChildren(
      waiting.length === 0
        ? h("p", { class: "hint" }, st.status === "RUNNING" ? "Nothing waits: every remaining test is running." : "Nothing waits.")
        : h(
          "ul",
          { class: "queue" },
          waiting.slice(0, shownWaiting).map((w) =>
            h("li", { "data-waiting": w.testId }, h("code", {}, w.testId), w.retry ? h("span", { class: "badge s-FLAKY" }, "retry") : null,
              w.expectedMs === undefined ? null : h("span", { class: "sub" }, ` ~${duration(w.expectedMs)}`))
          ),
          waiting.length > shownWaiting ? h("li", { class: "sub" }, `and ${waiting.length - shownWaiting} more`) : null
        )
    )
  }

  private renderFailures() {
    const failed = Array.from(this.tests.values()).filter((t) => notPassed(t.status))
    this.el.failures.replaceChildren(
      failed.length === 0
        ? h("p", { class: "hint" }, "No failure so far.")
        : h(
          "div",
          { class: "failure-list" },
          failed.slice(0, 50).map((t) => {
            const last = t.attempts[t.attempts.length - 1]
            return h(
              "article",
              { class: "failure", "data-failure": t.id },
              h("div", { class: "section-head" }, h("a", { href: testHref(this.id, t.id) }, h("code", {}, t.id)), badge(t.status),
                h("span", { class: "sub" }, `${t.attempts.length} attempt${t.attempts.length === 1 ? "" : "s"} · ${duration(t.durationMs)}`)),
              last?.message === undefined ? null : h("p", { class: "message" }, last.message),
              last === undefined || last.tail === "" ? h("p", { class: "no-output" }, "no output") : h("pre", { class: "tail" }, last.tail),
              last === undefined ? null : h("button", { class: "filter", type: "button", onclick: () => this.showLog(t.id, last.n) }, "Full log")
            )
          }),
          failed.length > 50 ? h("p", { class: "hint" }, `and ${failed.length - 50} more: filter the table by Failed`) : null
        )
    )
  }

  private renderTests() {
    const all = Array.from(this.tests.values()).reverse()
    const shown = all.filter((t) => {
      if (this.filter === "failed" && !notPassed(t.status)) return false
      if (this.filter === "flaky" && t.status !== "FLAKY") return false
      if (this.tag !== "" && !(this.tags.get(t.id) ?? []).includes(this.tag)) return false
      if (this.text !== "" && !`${t.id}\n${t.name}\n${t.source}`.toLowerCase().includes(this.text)) return false
      return true
    })
    this.el.shown.textContent = `${Math.min(shown.length, shownRows)} of ${all.length} shown${all.length >= keptTests ? ` (the newest ${keptTests})` : ""}`
    this.el.table.replaceChildren(
      ...(shown.length === 0
        ? [h("tr", {}, h("td", { colspan: 5, class: "empty" }, all.length === 0 ? "No test has finished yet." : "No test matches."))]
        : shown.slice(0, shownRows).map((t) =>
          h(
            "tr",
            { class: "test-row", "data-test-row": t.id, "data-status": t.status },
            h("td", { class: "id" }, h("a", { href: testHref(this.id, t.id) }, h("code", {}, t.id)), h("div", { class: "sub" }, t.name)),
            h("td", {}, badge(t.status)),
            h("td", { class: "num" }, duration(t.durationMs)),
            h("td", { class: "attempts-cell" }, h("span", { class: "dots" }, t.attempts.map((a) => h("i", { class: `dot s-${a.status}`, title: `#${a.n} ${a.status}` }))),
              h("span", { class: "n-attempts" }, String(t.attempts.length))),
            h("td", { class: "source" }, h("code", {}, t.source))
          )
        ))
    )
  }

  // --- one test --------------------------------------------------------------

  openTest(testId: string | undefined) {
    this.openId = testId
    if (testId === undefined) {
      this.el.detail.hidden = true
      this.el.detail.replaceChildren()
      return
    }
    void this.renderDetail()
  }

  private async renderDetail() {
    const testId = this.openId
    if (testId === undefined) return
    const detail = this.el.detail
    detail.hidden = false
    let test = this.tests.get(testId)
    if (test === undefined) {
      try {
        test = decodeTest(await getJson(`/sessions/${enc(this.id)}/tests/${enc(testId)}`))
      } catch (e) {
        const running = this.state !== undefined && (HashMap.has(this.state.running, testId) || HashMap.has(this.state.waiting, testId))
        detail.replaceChildren(
          h("div", { class: "section-head" }, h("h2", {}, h("code", {}, testId)), h("a", { href: sessionHref(this.id) }, "close")),
          h("p", { class: "hint" }, running ? "This test has not finished yet." : e instanceof Error ? e.message : String(e))
        )
        return
      }
    }
    if (this.openId !== testId) return
    const t = test
    const chart = h("div", { class: "history", id: "history" }, h("p", { class: "hint" }, "loading the history…"))
    detail.replaceChildren(
      h("div", { class: "section-head" }, h("h2", {}, h("code", {}, t.id), " ", badge(t.status)), h("a", { href: sessionHref(this.id), id: "close-detail" }, "close")),
      h("p", { class: "full-name" }, t.name),
      h("h3", {}, t.attempts.length > 1 ? "Attempts, side by side" : "Attempt"),
      h(
        "div",
        { class: "side-by-side", "data-attempts": t.attempts.length },
        t.attempts.map((a) =>
          h(
            "div",
            { class: "attempt", "data-attempt-n": a.n },
            h("div", { class: "section-head" }, h("b", {}, `#${a.n}`), badge(a.status)),
            h("dl", { class: "facts" },
              h("dt", {}, "exit"), h("dd", {}, a.signal ?? (a.exitCode === null ? "–" : String(a.exitCode))),
              h("dt", {}, "worker"), h("dd", {}, String(a.worker)),
              h("dt", {}, "duration"), h("dd", {}, duration(a.durationMs)),
              h("dt", {}, "log"), h("dd", { class: "path" }, a.logPath)),
            a.message === undefined ? null : h("p", { class: "message" }, a.message),
            a.tail === "" ? h("p", { class: "no-output" }, "no output") : h("pre", { class: "tail" }, a.tail),
            h("button", { class: "filter", type: "button", "data-log": a.n, onclick: () => this.showLog(t.id, a.n) }, "Full log")
          )
        )
      ),
      h("div", { id: "log" }),
      h("h3", {}, "Duration history"),
      chart
    )
    void this.renderHistory(t.id, chart)
  }

  /** the test's duration in each of the recent sessions that ran it, and what history says */
  private async renderHistory(testId: string, into: HTMLElement) {
    try {
      const [history, sessions] = await Promise.all([
        getJson(`/tests/${enc(testId)}/history`).then(decodeHistory),
        getJson(`/sessions?limit=${historySessions}`).then(decodeSessions)
      ])
      const points: Array<{ readonly session: string; readonly ms: number; readonly status: string }> = []
      for (const row of [...sessions].reverse()) {
        if (row.id === this.id && this.tests.has(testId)) {
          const t = this.tests.get(testId)!
          points.push({ session: row.id, ms: t.durationMs, status: t.status })
          continue
        }
        try {
          const t = decodeTest(await getJson(`/sessions/${enc(row.id)}/tests/${enc(testId)}`))
          points.push({ session: row.id, ms: t.durationMs, status: t.status })
        } catch {
          // that session did not run this test
        }
      }
      const h0 = history.history
      into.replaceChildren(
        durationChart(points, h0.expectedMs),
        h("p", { class: "hint" },
          h0.expectedMs === undefined ? "No expected duration yet." : `Expected ${duration(h0.expectedMs)} (median of recent passing runs).`,
          h0.flakiness === undefined ? "" : ` Flaky in ${Math.round(h0.flakiness * 100)}% of recent runs.`)
      )
    } catch (e) {
      into.replaceChildren(h("p", { class: "hint" }, e instanceof Error ? e.message : String(e)))
    }
  }

  /** the log of one attempt, its last 64 KB first, earlier ranges on demand */
  private showLog(testId: string, n: number, tries = 0) {
    const holder = document.getElementById("log")
    const box = h("section", { class: "log-view", "data-log-of": `${testId}#${n}` })
    if (this.openId !== testId || holder === null) {
      if (this.openId !== testId) location.hash = testHref(this.id, testId)
      // the detail renders asynchronously: show the log once it has (for 5 s at most)
      if (tries < 50) setTimeout(() => this.showLog(testId, n, tries + 1), 100)
      return
    }
    holder.replaceChildren(box)
    const pre = h("pre", { class: "tail log" })
    const info = h("span", { class: "sub" })
    const earlier = h("button", { class: "filter", type: "button", id: "load-earlier", hidden: true }, "Load earlier") as HTMLButtonElement
    box.append(h("div", { class: "section-head" }, h("h3", {}, `Log of ${testId} #${n}`), info, earlier), pre)
    const url = `${api}/sessions/${enc(this.id)}/tests/${enc(testId)}/attempts/${n}/log`
    let first: number | undefined
    let held = 0
    let size = 0
    const load = async (range: string) => {
      const response = await fetch(url, { headers: { range } })
      if (response.status === 416) return { text: "", start: 0, size: 0 }
      if (!response.ok) throw await failure(response)
      const bytes = new Uint8Array(await response.arrayBuffer())
      const m = /bytes (\d+)-(\d+)\/(\d+)/.exec(response.headers.get("content-range") ?? "")
      const start = m === null ? 0 : Number(m[1])
      const total = m === null ? bytes.length : Number(m[3])
      // a range may cut a character in two: the decoder shows it as U+FFFD
      return { text: new TextDecoder().decode(bytes), start, size: total }
    }
    const show = () => {
      info.textContent = size === 0 ? "empty" : `bytes ${first}–${size - 1} of ${size}`
      earlier.hidden = first === undefined || first === 0 || held >= logCap
      if (first !== undefined && first > 0 && held >= logCap) info.textContent += ` · the page holds at most ${logCap / 1024 / 1024} MB of a log`
    }
    earlier.addEventListener("click", () => {
      if (first === undefined || first === 0) return
      const from = Math.max(0, first - logChunk)
      load(`bytes=${from}-${first - 1}`).then((part) => {
        pre.prepend(document.createTextNode(part.text))
        first = from
        held += part.text.length
        show()
      }, (e) => showError(this.el.message, e))
    })
    load(`bytes=-${logChunk}`).then((part) => {
      pre.textContent = part.text === "" ? "(empty log)" : part.text
      first = part.start
      size = part.size
      held = part.text.length
      show()
      pre.scrollTop = pre.scrollHeight
    }, (e) => {
      pre.textContent = e instanceof Error ? e.message : String(e)
    })
  }
}

const fact = (label: string, value: Child, key?: string) => h("div", key === undefined ? {} : { "data-fact": key }, h("dt", {}, label), h("dd", {}, value))

const legend = () =>
  h("div", { class: "legend" }, (["RUNNING", "PASSED", "FLAKY", "FAILED", "TIMED_OUT", "ERROR", "CANCELLED"] as const).map((st) =>
    h("span", {}, h("i", { class: `swatch s-${st}` }), st.replace("_", " ").toLowerCase())
  ))

/** a small bar chart: one bar per session (oldest left), its height the duration, coloured by status */
const durationChart = (points: ReadonlyArray<{ readonly session: string; readonly ms: number; readonly status: string }>, expected: number | undefined): Node => {
  if (points.length === 0) return h("p", { class: "hint" }, "No recent session ran this test.")
  const width = 320
  const height = 90
  const max = Math.max(...points.map((p) => p.ms), expected ?? 0, 1)
  const step = Math.min(width / points.length, 32)
  const bars = points.map((p, i) => {
    const bh = Math.max(2, (p.ms / max) * (height - 14))
    const rect = s("rect", { x: i * step + 2, y: height - bh, width: Math.max(2, step - 4), height: bh, class: `s-${p.status}`, "data-session": p.session })
    rect.append(s("title", {}, document.createTextNode(`${p.session}: ${duration(p.ms)} ${p.status}`)))
    return rect
  })
  const line = expected === undefined
    ? []
    : [s("line", { x1: 0, x2: width, y1: height - (expected / max) * (height - 14), y2: height - (expected / max) * (height - 14), class: "expected" })]
  return s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", role: "img", "aria-label": `durations in the last ${points.length} sessions` }, ...bars, ...line)
}

window.addEventListener("hashchange", route)
route()
