/**
 * Runs examples/library.ts: `npx vite-node examples/library-main.ts`.
 */
import * as Effect from "effect/Effect"
import { program } from "./library.js"

Effect.runPromise(program).then((report) => {
  console.log(`${report.session.status}: ${report.totals.passed} passed, ${report.totals.timedOut} timed out`)
})
