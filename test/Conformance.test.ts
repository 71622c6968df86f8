/**
 * The Surefire XSD lookup of the conformance tests (test/support/conformance.ts): a
 * clone without `../shared` beside it skips them with the reason, CI's
 * `GROVE_REQUIRE_CONFORMANCE=1` fails them. Temp folders stand in for the repository.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Path from "node:path"
import type { TestContext } from "vitest"
import * as Conformance from "./support/conformance.js"

/** a temp folder with `repo/` in it (and nothing else unless `files` says so) */
const tempRepo = (files: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "grove-conformance-" })
    yield* fs.makeDirectory(Path.join(dir, "repo"))
    for (const file of files) {
      yield* fs.makeDirectory(Path.dirname(Path.join(dir, file)), { recursive: true })
      yield* fs.writeFileString(Path.join(dir, file), "<xs:schema/>")
    }
    return { dir, root: Path.join(dir, "repo") }
  }).pipe(Effect.provide(NodeFileSystem.layer))

const sharedXsd = Path.join("shared", "schemas", Conformance.xsdName)

describe("the Surefire XSD lookup", () => {
  it.scoped("GROVE_SUREFIRE_XSD at a missing file and no ../shared: skipped, saying where it looked and what to set", () =>
    Effect.gen(function*() {
      const { dir, root } = yield* tempRepo()
      const missing = Path.join(dir, "nowhere.xsd")
      const decision = Conformance.decide({ repoRoot: root, env: { GROVE_SUREFIRE_XSD: missing } })
      assert.strictEqual(decision._tag, "Skip")
      if (decision._tag !== "Skip") return
      assert.include(decision.reason, missing)
      assert.include(decision.reason, Path.join(dir, sharedXsd))
      assert.include(decision.reason, "GROVE_SUREFIRE_XSD")
      // nothing set at all: the same
      assert.strictEqual(Conformance.decide({ repoRoot: root, env: {} })._tag, "Skip")
    }))

  it.scoped("GROVE_REQUIRE_CONFORMANCE=1 turns that skip into a failure with the same reason", () =>
    Effect.gen(function*() {
      const { dir, root } = yield* tempRepo()
      const missing = Path.join(dir, "nowhere.xsd")
      const decision = Conformance.decide({
        repoRoot: root,
        env: { GROVE_SUREFIRE_XSD: missing, GROVE_REQUIRE_CONFORMANCE: "1" }
      })
      assert.strictEqual(decision._tag, "Fail")
      if (decision._tag !== "Fail") return
      assert.include(decision.reason, missing)
      assert.include(decision.reason, "GROVE_REQUIRE_CONFORMANCE=1")
    }))

  it.scoped("GROVE_SUREFIRE_XSD first, then ../shared/schemas beside the repository", () =>
    Effect.gen(function*() {
      const { dir, root } = yield* tempRepo([sharedXsd, "elsewhere/s.xsd"])
      const elsewhere = Path.join(dir, "elsewhere/s.xsd")
      const shared = Path.join(dir, sharedXsd)
      const env = { GROVE_REQUIRE_CONFORMANCE: "1" }
      assert.deepStrictEqual(Conformance.decide({ repoRoot: root, env: { ...env, GROVE_SUREFIRE_XSD: elsewhere } }), {
        _tag: "Validate",
        path: elsewhere
      })
      assert.deepStrictEqual(Conformance.decide({ repoRoot: root, env }), { _tag: "Validate", path: shared })
      assert.deepStrictEqual(
        Conformance.decide({ repoRoot: root, env: { ...env, GROVE_SUREFIRE_XSD: Path.join(dir, "gone.xsd") } }),
        { _tag: "Validate", path: shared }
      )
    }))
})

describe("a conformance test without the XSD", () => {
  const reason = "no XSD here (a stand-in reason)"

  /** registers one conformance test under `given` and runs what it registered with a context whose skip records its note */
  const register = (given: Conformance.Decision) => {
    const registered: Array<{ readonly name: string; readonly fn: (ctx: TestContext) => void }> = []
    let ranBody = false
    Conformance.test(it.effect, "a check", () => Effect.sync(() => void (ranBody = true)), {
      given,
      register: (name, fn) => void registered.push({ name, fn })
    })
    assert.strictEqual(registered.length, 1)
    assert.strictEqual(registered[0]!.name, "a check")
    let note: string | undefined
    let thrown: unknown
    const ctx = {
      skip: (n?: string) => {
        note = n
        throw new Error("skipped")
      }
    } as unknown as TestContext
    try {
      registered[0]!.fn(ctx)
    } catch (e) {
      thrown = e
    }
    return { note, thrown, ranBody }
  }

  it("is a vitest skip with the reason as its note (the reporter prints \"↓ name [reason]\")", () => {
    const { note, ranBody } = register({ _tag: "Skip", reason })
    assert.strictEqual(note, reason)
    assert.isFalse(ranBody)
  })

  it("fails with the reason when conformance is required", () => {
    const { note, thrown, ranBody } = register({ _tag: "Fail", reason })
    assert.isUndefined(note)
    assert.instanceOf(thrown, Error)
    assert.include((thrown as Error).message, reason)
    assert.isFalse(ranBody)
  })
})
