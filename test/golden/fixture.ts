/**
 * A deterministic report holding every final status, with output tails full of
 * what XML forbids and what Markdown could misread. Shared by the report tests.
 */
import * as DateTime from "effect/DateTime"
import { Attempt, type TestStatus, TestResult } from "../../src/Domain.js"
import * as Report from "../../src/Report.js"

export const startedAt = Date.UTC(2026, 10, 24, 9, 12, 0)
const logDir = "/repo/.git/grove/sessions/20261124-0912-k3f9/logs"

export const attempt = (
  id: string,
  n: number,
  status: TestStatus,
  fields: Partial<{
    exitCode: number | null
    signal: string | null
    tail: string
    durationMs: number
    worker: number
    message: string
  }> = {}
): Attempt =>
  new Attempt({
    n,
    status,
    exitCode: fields.exitCode === undefined ? (status === "PASSED" ? 0 : status === "FAILED" ? 1 : null) : fields.exitCode,
    signal: fields.signal ?? null,
    worker: fields.worker ?? n,
    worktree: `/repo.grove/20261124-0912-k3f9/w${fields.worker ?? n}`,
    startedAt: DateTime.unsafeMake(startedAt + n * 10_000),
    durationMs: fields.durationMs ?? 1234,
    logPath: `${logDir}/${id.replace(/[^A-Za-z0-9._-]/g, "_")}-0badc0de.${n}.log`,
    tail: fields.tail ?? "",
    ...(fields.message === undefined ? {} : { message: fields.message })
  })

export const result = (
  id: string,
  status: TestStatus,
  attempts: ReadonlyArray<Attempt>,
  extra: Partial<{ name: string; source: string; keptWorktree: string; flakiness: number }> = {}
): TestResult =>
  new TestResult({
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

/** ANSI colours, NUL, BEL, lone surrogates, U+FFFE, a CDATA closer, markup */
export const nastyTail = "compiling\n\u001b[31mError:\u001b[0m expected 1 got 2\u0000\u0007 bell\n" +
  "lone \ud800 high, lone \udc00 low, pair \ud83d\ude00, \ufffe\uffff\n" +
  "\u001b]0;window title\u0007\u001b[2K\u001b[1Gprogress 50%\rprogress 100%\n" +
  "]]> <tag attr=\"x\"> & done\n"

export const results: ReadonlyArray<TestResult> = [
  result("unit", "PASSED", [attempt("unit", 1, "PASSED", { tail: "ok\n" })], { name: "Unit tests" }),
  result("checkout", "FAILED", [
    attempt("checkout", 1, "TIMED_OUT", { tail: "hanging…\n", signal: "SIGTERM", durationMs: 30_000 }),
    attempt("checkout", 2, "FAILED", { tail: "first failure\n" + nastyTail }),
    attempt("checkout", 3, "FAILED", {
      tail: Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join("\n") + "\n" + nastyTail
    })
  ], {
    name: "Checkout | <b>flow</b> *now*\nsecond line # [link](http://x)",
    keptWorktree: "/repo.grove/20261124-0912-k3f9/w3"
  }),
  result("login", "FLAKY", [
    attempt("login", 1, "FAILED", { tail: "\u001b[33mflaky\u001b[0m assertion\u0000\n" }),
    attempt("login", 2, "ERROR", { exitCode: null, message: "setup failed: npm ci exited 1", tail: "npm ERR!\n" }),
    attempt("login", 3, "PASSED", { tail: "ok\n" })
  ], { flakiness: 0.25 }),
  result("slow", "TIMED_OUT", [
    attempt("slow", 1, "FAILED", { tail: "boom\n" }),
    attempt("slow", 2, "TIMED_OUT", {
      exitCode: null,
      signal: "SIGKILL",
      durationMs: 300_000,
      tail: "a fence inside the tail:\n```\nnot code\n````\n# not a heading\n"
    })
  ]),
  result("api`pipe|x", "ERROR", [
    attempt("api`pipe|x", 1, "ERROR", { exitCode: null, message: "could not prepare worktree\nreset failed", tail: "" })
  ], { source: "--each", name: "api" }),
  result("deploy", "CANCELLED", [
    attempt("deploy", 1, "FAILED", { tail: "nope\n" }),
    attempt("deploy", 2, "CANCELLED", { exitCode: null, signal: "SIGTERM", tail: "partial\n" })
  ]),
  result("later", "CANCELLED", [])
]

export const info: Report.Info = {
  id: "20261124-0912-k3f9",
  startedAt,
  completedAt: startedAt + 184_000,
  baseRef: "main",
  baseSha: "0123456789abcdef0123456789abcdef01234567",
  workers: 3,
  interrupted: false
}

export const report = Report.make(info, results)
