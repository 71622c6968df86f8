/**
 * PostgreSQL store URLs, without the driver: what `--db` / `GROVE_DB` names (a URL or an
 * SQLite file), the URL checked before anything connects, and its password kept out of
 * messages. The CLI reads these at start; `PgStore` (and pg) load only for a URL.
 *
 * @since 0.2.0
 * @internal
 */
import * as Effect from "effect/Effect"
import { StoreError } from "../GroveError.js"

/**
 * Whether `db` (a `--db` value or `GROVE_DB`) names a PostgreSQL store rather than an
 * SQLite file: it starts with `postgres://` or `postgresql://`.
 *
 * @since 0.2.0
 * @category utils
 */
export const isUrl = (db: string): boolean => /^postgres(ql)?:\/\//i.test(db)

/**
 * The URL with its password replaced by `***`, for messages.
 *
 * @since 0.2.0
 * @category utils
 */
export const redact = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password === "") return url
    parsed.password = "***"
    return parsed.toString().replace("%2A%2A%2A", "***")
  } catch {
    // not a URL: hide whatever sits between "//user:" and "@"
    return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@]*@/i, "$1***@")
  }
}

const example = "postgres://USER:PASSWORD@HOST:5432/DATABASE"

const badUrl = (url: string, why: string) =>
  new StoreError({
    reason: "Open",
    detail: `${redact(url)} is not a PostgreSQL URL grove can use: ${why}; write it as ${example} ` +
      "(or pass --db with an SQLite file); nothing was created"
  })

/**
 * Checks a store URL without connecting: scheme `postgres:` or `postgresql:`, a host,
 * a port that is a number when given, at most one database name in the path.
 *
 * @since 0.2.0
 * @category utils
 */
export const parseUrl = (url: string): Effect.Effect<URL, StoreError> =>
  Effect.gen(function*() {
    if (!isUrl(url)) return yield* Effect.fail(badUrl(url, "it does not start with postgres:// or postgresql://"))
    const parsed = yield* Effect.try({
      try: () => new URL(url),
      catch: () =>
        badUrl(
          url,
          // host:port after the optional user:password@, with a port that is not digits
          /^[a-z]+:\/\/(?:[^@/?#]*@)?[^:/?#]*:[^/?#]*[^\d/?#]/i.test(url)
            ? "its port is not a number"
            : "it does not parse as a URL (a character in the user name or password may need percent-encoding)"
        )
    })
    if (parsed.hostname === "") return yield* Effect.fail(badUrl(url, "it names no host"))
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""))
    if (database.includes("/")) return yield* Effect.fail(badUrl(url, `its path ${JSON.stringify(parsed.pathname)} is not one database name`))
    return parsed
  })

