/**
 * Conformance of grove's JUnit reports to Maven Surefire's XSD (SPEC §7).
 *
 * The XSD is a public file kept outside the repository: the tests look for it at
 * `GROVE_SUREFIRE_XSD`, then at `../shared/schemas/` beside the repository's root.
 * Where neither exists (a fresh clone elsewhere), a conformance test is reported as
 * skipped with the reason, so `npm test` on a clone stays green; CI sets
 * `GROVE_REQUIRE_CONFORMANCE=1`, which turns that skip into a failure.
 *
 * The lookup runs when the test file is collected (a file's existence, read
 * synchronously): a test is registered either as the real check or as one that
 * skips (or fails) with the reason, so vitest's own skip carries the note to the
 * reporter ("↓ name [reason]").
 */
import type { Vitest } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { it, type TestContext } from "vitest"
import { validateXML } from "xmllint-wasm"
import { projectRoot } from "./cli.js"

/** the XSD's file name, in `../shared/schemas/` or wherever `GROVE_SUREFIRE_XSD` points */
export const xsdName = "surefire-test-report-3.0.xsd"

/** what the conformance tests do: validate with the XSD at `path`, skip, or fail, with the reason */
export type Decision =
  | { readonly _tag: "Validate"; readonly path: string }
  | { readonly _tag: "Skip"; readonly reason: string }
  | { readonly _tag: "Fail"; readonly reason: string }

/**
 * Where the XSD is, for a repository at `repoRoot` and an environment `env`:
 * `GROVE_SUREFIRE_XSD` when it names an existing file, else `<repoRoot>/../shared/schemas/`.
 * Without either: skip, or fail when `GROVE_REQUIRE_CONFORMANCE=1`.
 */
export const decide = (options: {
  readonly repoRoot: string
  readonly env: Readonly<Record<string, string | undefined>>
}): Decision => {
  const fromEnv = options.env.GROVE_SUREFIRE_XSD
  const candidates = [
    ...(fromEnv === undefined || fromEnv === "" ? [] : [{ path: Path.resolve(fromEnv), what: "GROVE_SUREFIRE_XSD" }]),
    { path: Path.resolve(options.repoRoot, "..", "shared", "schemas", xsdName), what: "../shared/schemas" }
  ]
  const found = candidates.find((c) => Fs.existsSync(c.path))
  if (found !== undefined) return { _tag: "Validate", path: found.path }
  const tried = candidates.map((c) => `${c.path} (${c.what})`).join(" nor ")
  const reason = `Surefire XSD conformance not checked: no ${xsdName} at ${tried}; set GROVE_SUREFIRE_XSD to the file to check it`
  return options.env.GROVE_REQUIRE_CONFORMANCE === "1"
    ? { _tag: "Fail", reason: `${reason} (GROVE_REQUIRE_CONFORMANCE=1 requires it)` }
    : { _tag: "Skip", reason }
}

/** the decision for this repository and this process's environment */
export const decision: Decision = decide({ repoRoot: projectRoot, env: process.env })

/** what xmllint says of a document */
export interface Validation {
  readonly valid: boolean
  readonly errors: ReadonlyArray<string>
}

/** validates XML against the XSD at `path` */
export type Validate = (xml: string) => Effect.Effect<Validation>

/** a validator with the XSD at `xsdPath` (read once, on first use) */
export const validator = (xsdPath: string): Validate => {
  let schema: string | undefined
  return (xml) =>
    Effect.promise(() => {
      schema ??= Fs.readFileSync(xsdPath, "utf8")
      return validateXML({
        xml: { fileName: "report.xml", contents: xml },
        schema: { fileName: Path.basename(xsdPath), contents: schema }
      })
    }).pipe(Effect.map((outcome) => ({ valid: outcome.valid, errors: outcome.errors.map((e) => e.rawMessage) })))
}

/** a test registrar of @effect/vitest's (`it.effect`, `it.live`, `it.scoped`…) */
export type Tester<R> = Vitest.Test<R>

/**
 * Registers a conformance test: with the XSD, `tester(name, () => body(validate))`;
 * without it, a test that skips with the reason (or fails with it when
 * `GROVE_REQUIRE_CONFORMANCE=1`). `given` is the decision to follow (this process's by default);
 * `register` registers the skipping or failing test (vitest's `it` by default).
 */
export const test = <R>(
  tester: Tester<R>,
  name: string,
  body: (validate: Validate) => Effect.Effect<void, unknown, R>,
  options: {
    readonly timeout?: number
    readonly given?: Decision
    readonly register?: (name: string, fn: (ctx: TestContext) => void) => void
  } = {}
): void => {
  const given = options.given ?? decision
  const register = options.register ?? it
  switch (given._tag) {
    case "Validate": {
      const validate = validator(given.path)
      return tester(name, () => body(validate), options.timeout)
    }
    case "Skip":
      return register(name, (ctx) => ctx.skip(given.reason))
    case "Fail":
      return register(name, () => {
        throw new Error(given.reason)
      })
  }
}
