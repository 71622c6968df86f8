/**
 * Headless Debian Chromium for the browser tests (playwright-core, no browser
 * download): the flags keep it off this machine's closed network (background
 * networking, component updates, sync, QUIC), the browser closes with the scope, and a
 * missing Chromium fails saying how to install it.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type Browser, chromium } from "playwright-core"

export const chromiumPath = "/usr/bin/chromium"

/** a playwright call as an Effect, its error naming what it was doing */
export const pw = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, Error> =>
  Effect.tryPromise({ try: f, catch: (cause) => new Error(`${what}: ${String(cause)}`) })

/** launches Chromium for `who` (named in the error when it is missing) */
export const launch = (who: string): Effect.Effect<Browser, Error, FileSystem.FileSystem | Scope.Scope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    if (!(yield* fs.exists(chromiumPath))) {
      return yield* Effect.fail(
        new Error(`Chromium is missing at ${chromiumPath}; ${who} needs it: install Debian's chromium: apt-get install chromium`)
      )
    }
    return yield* Effect.acquireRelease(
      pw(`launching Chromium at ${chromiumPath}`, () =>
        chromium.launch({
          executablePath: chromiumPath,
          headless: true,
          // a start, not a measure: with the suite's other files busy on a 2-core machine
          // Chromium once took longer than 15 s to come up
          timeout: 60_000,
          args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync"
          ]
        })),
      (browser) => Effect.promise(() => browser.close())
    )
  })
