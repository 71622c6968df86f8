/**
 * A real PostgreSQL for the tests of the Postgres store.
 *
 * The server is `GROVE_TEST_PG_URL` (`scripts/pg-temp.sh start` makes a throwaway one and
 * prints it; `.ci/run` does that). Every test gets a database of its own
 * (`freshDatabase`), dropped when its scope closes, so runs and tests never see each
 * other's rows. Without the variable the tests are reported as skipped with the reason;
 * with `GROVE_REQUIRE_PG=1` (CI) they fail instead.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import { describe, it } from "vitest"

/** run against the server at `url`, skip, or fail, with the reason */
export type Decision =
  | { readonly _tag: "Run"; readonly url: string }
  | { readonly _tag: "Skip"; readonly reason: string }
  | { readonly _tag: "Fail"; readonly reason: string }

export const decide = (env: Readonly<Record<string, string | undefined>>): Decision => {
  const url = env.GROVE_TEST_PG_URL ?? ""
  if (url !== "") return { _tag: "Run", url }
  const reason = "PostgreSQL tests not run: GROVE_TEST_PG_URL is not set; " +
    "run `eval \"$(scripts/pg-temp.sh start)\"` first (see README, Testing)"
  return env.GROVE_REQUIRE_PG === "1"
    ? { _tag: "Fail", reason: `${reason} (GROVE_REQUIRE_PG=1 requires them)` }
    : { _tag: "Skip", reason }
}

export const decision: Decision = decide(process.env)

/**
 * `describe(name)` whose `body` registers the tests with the server's URL; without a
 * server, one test that skips (or fails) with the reason.
 */
export const describePg = (name: string, body: (url: string) => void): void =>
  void describe(name, () => {
    switch (decision._tag) {
      case "Run":
        return body(decision.url)
      case "Skip": {
        const reason = decision.reason
        return it("runs against a real PostgreSQL", (ctx) => ctx.skip(reason))
      }
      case "Fail": {
        const reason = decision.reason
        return it("runs against a real PostgreSQL", () => {
          throw new Error(reason)
        })
      }
    }
  })

/** a client of the server at `url`, closed with the scope */
export const client = (url: string): Effect.Effect<SqlClient.SqlClient, never, Scope.Scope> =>
  Effect.map(
    Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 })).pipe(Effect.orDie),
    Context.get(SqlClient.SqlClient)
  )

/** `url` with another database */
export const withDatabase = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/**
 * A new, empty database on the server of `url`; its URL. Dropped (with whatever
 * connections it still has) when the scope closes.
 */
export const freshDatabase = (url: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    const admin = yield* client(url)
    const name = `grove_test_${Crypto.randomBytes(6).toString("hex")}`
    yield* Effect.acquireRelease(
      admin.unsafe(`CREATE DATABASE ${name}`).pipe(Effect.orDie),
      () => admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.orDie)
    )
    return withDatabase(url, name)
  })
