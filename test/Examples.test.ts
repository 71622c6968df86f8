import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { program } from "../examples/library.js"

describe("examples/library.ts", () => {
  it.live("composes the Orchestrator with its layers and runs tests on a throwaway repository", () =>
    Effect.gen(function*() {
      const report = yield* program
      const status = Object.fromEntries(report.tests.map((t) => [t.id, t.status]))
      assert.deepStrictEqual(status, { sum: "PASSED", scratch: "PASSED", slow: "TIMED_OUT" })
      assert.strictEqual(report.session.status, "PARTIAL_SUCCESS")
    }))
})
