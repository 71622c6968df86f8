/**
 * A report shaped like a real session for the HTML report: attempts laid out
 * on 5 workers without overlaps, worker 5 idle the whole time, every final
 * status, and one hostile test whose id, name and output try to break out of
 * the markup.
 */
import * as DateTime from "effect/DateTime"
import { Attempt, type TestStatus, TestResult } from "../../src/Domain.js"
import * as Report from "../../src/Report.js"
import { nastyTail, startedAt } from "./fixture.js"

const session = "20261124-0912-k3f9"
const logDir = `/repo/.git/grove/sessions/${session}/logs`

export const evilId = "xss<\"&'>"
export const evilName = "<img src=x onerror=alert(1)>"
export const evilTail = "about to fail\n<script>alert(2)</script>\n</script><script>alert(3)</script>\n" +
  "\u001b[31mred\u001b[0m & done\n"

interface Slot {
  readonly n: number
  readonly status: TestStatus
  readonly worker: number
  /** seconds after the session's start */
  readonly at: number
  /** seconds */
  readonly took: number
  readonly tail?: string
  readonly message?: string
  readonly exitCode?: number | null
  readonly signal?: string
}

const attempt = (id: string, s: Slot): Attempt =>
  new Attempt({
    n: s.n,
    status: s.status,
    exitCode: s.exitCode !== undefined ? s.exitCode : s.status === "PASSED" ? 0 : s.status === "FAILED" ? 1 : null,
    signal: s.signal ?? null,
    worker: s.worker,
    worktree: `/repo.grove/${session}/w${s.worker}`,
    startedAt: DateTime.unsafeMake(startedAt + s.at * 1000),
    durationMs: s.took * 1000,
    logPath: `${logDir}/${id.replace(/[^A-Za-z0-9._-]/g, "_")}-0badc0de.${s.n}.log`,
    tail: s.tail ?? "",
    ...(s.message === undefined ? {} : { message: s.message })
  })

const test = (
  id: string,
  status: TestStatus,
  slots: ReadonlyArray<Slot>,
  extra: Partial<{ name: string; source: string; flakiness: number; keptWorktree: string }> = {}
): TestResult => {
  const attempts = slots.map((s) => attempt(id, s))
  return new TestResult({
    id: id as TestResult["id"],
    name: extra.name ?? id,
    source: extra.source ?? `docs/plans/${id}.md`,
    ref: "main",
    status,
    durationMs: attempts.reduce((sum, a) => sum + a.durationMs, 0),
    attempts,
    ...(extra.keptWorktree === undefined ? {} : { keptWorktree: extra.keptWorktree }),
    ...(extra.flakiness === undefined ? {} : { flakiness: extra.flakiness })
  })
}

const lines = (n: number, prefix: string): string =>
  Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}`).join("\n") + "\n"

export const results: ReadonlyArray<TestResult> = [
  test("unit", "PASSED", [{ n: 1, status: "PASSED", worker: 1, at: 0.4, took: 21, tail: "ok 214 tests\n" }], {
    name: "Unit tests"
  }),
  test("lint", "PASSED", [{ n: 1, status: "PASSED", worker: 2, at: 0.5, took: 9.2, tail: "no problems\n" }]),
  test("checkout", "FAILED", [
    { n: 1, status: "TIMED_OUT", worker: 3, at: 0.6, took: 60, signal: "SIGTERM", tail: "waiting for stripe…\n" },
    { n: 2, status: "FAILED", worker: 2, at: 62, took: 14.5, tail: lines(12, "step") + nastyTail },
    { n: 3, status: "FAILED", worker: 1, at: 80, took: 15.1, tail: lines(60, "line") + nastyTail }
  ], { name: "Checkout flow: pay with a saved card", keptWorktree: `/repo.grove/${session}/w1` }),
  test("login", "FLAKY", [
    { n: 1, status: "FAILED", worker: 4, at: 0.7, took: 12, tail: "\u001b[33mexpected 200, got 502\u001b[0m\n" },
    { n: 2, status: "PASSED", worker: 2, at: 12.6, took: 11.4, tail: "ok\n" }
  ], { name: "Login with SSO", flakiness: 0.25 }),
  test("search-index", "PASSED", [{ n: 1, status: "PASSED", worker: 1, at: 21.8, took: 34, tail: "indexed\n" }]),
  test("api-contract", "PASSED", [{ n: 1, status: "PASSED", worker: 4, at: 13.5, took: 26.3 }], {
    name: "API contract (OpenAPI)"
  }),
  test("slow-report", "TIMED_OUT", [
    { n: 1, status: "TIMED_OUT", worker: 4, at: 41, took: 60, signal: "SIGTERM", tail: "rendering page 1…\n" },
    { n: 2, status: "TIMED_OUT", worker: 4, at: 102, took: 60, signal: "SIGKILL", tail: "rendering page 1…\n" }
  ], { name: "Monthly report export" }),
  test("migrations", "ERROR", [{
    n: 1,
    status: "ERROR",
    worker: 2,
    at: 24.6,
    took: 2.1,
    exitCode: null,
    message: "could not prepare worktree: git reset --hard failed",
    tail: "fatal: unable to write new index file\n"
  }], { source: "--each" }),
  test(evilId, "FAILED", [
    { n: 1, status: "FAILED", worker: 2, at: 27.4, took: 8, tail: evilTail },
    { n: 2, status: "FAILED", worker: 3, at: 61.5, took: 7.7, tail: evilTail }
  ], { name: evilName, source: "docs/plans/<evil>.md" }),
  test("e2e-cart", "PASSED", [{ n: 1, status: "PASSED", worker: 3, at: 70, took: 41.2, tail: "12 passing\n" }], {
    name: "E2E: cart"
  }),
  test("deploy-preview", "CANCELLED", [
    { n: 1, status: "FAILED", worker: 2, at: 36.2, took: 20, tail: "nope\n" },
    { n: 2, status: "CANCELLED", worker: 1, at: 96, took: 8, exitCode: null, signal: "SIGTERM", tail: "partial\n" }
  ]),
  test("later", "CANCELLED", [])
]

/** 5 workers: the fifth never gets a test */
export const info: Report.Info = {
  id: session,
  startedAt,
  completedAt: startedAt + 164_000,
  baseRef: "main",
  baseSha: "0123456789abcdef0123456789abcdef01234567",
  workers: 5,
  interrupted: false
}

export const report = Report.make(info, results)

export const attemptCount = results.reduce((n, t) => n + t.attempts.length, 0)
