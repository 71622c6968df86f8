import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import * as Config from "../src/Config.js"
import * as Resume from "../src/Resume.js"

const issuesOf = (e: Either.Either<unknown, ReadonlyArray<{ readonly where: string; readonly message: string }>>) =>
  Either.isLeft(e) ? e.left.map((i) => `${i.where}: ${i.message}`) : []

describe("Config: one Schema for every source", () => {
  it("the same value reads the same from a flag, a variable, the file and a snapshot", () => {
    const fromText = Config.decode({ workers: "4", timeout: "90s", keepFailed: "true", keep: "node_modules, .cache" }, String)
    const fromJson = Config.decode({ workers: 4, timeout: "90s", keepFailed: true, keep: ["node_modules", ".cache"] }, String)
    for (const decoded of [fromText, fromJson]) {
      const c = Either.getOrThrow(decoded)
      assert.strictEqual(c.workers, 4)
      assert.strictEqual(Duration.toMillis(c.timeout!), 90_000)
      assert.strictEqual(c.keepFailed, true)
      assert.deepStrictEqual(c.keep, ["node_modules", ".cache"])
    }
  })

  it("timeout takes N% as a share of the median; a bare number is seconds", () => {
    assert.deepStrictEqual(Either.getOrThrow(Config.decode({ timeout: "300%" }, String)), { timeoutPercent: 300 })
    assert.strictEqual(Duration.toMillis(Either.getOrThrow(Config.decode({ timeout: 90 }, String)).timeout!), 90_000)
    assert.deepStrictEqual(issuesOf(Config.decode({ timeout: "0%" }, (k) => `--${k}`)), [
      "--timeout: a percentage must be greater than 0, e.g. 300%"
    ])
  })

  it("every bad value is an issue named the way its source names it", () => {
    assert.deepStrictEqual(issuesOf(Config.decode({ workers: 0, killGrace: "forever", cleanup: "maybe" }, (k) => `grove.config.json: ${k}`)), [
      "grove.config.json: workers: must be an integer >= 1, got 0",
      "grove.config.json: cleanup: must be true or false, got \"maybe\"",
      "grove.config.json: killGrace: expected a duration greater than zero such as 90s, 5m or 1h30m, got \"forever\""
    ])
  })

  it.effect("GROVE_* variables: errors name the variable; unrelated GROVE_ variables are not config", () =>
    Effect.gen(function*() {
      const ok = yield* Config.fromEnv({ GROVE_WORKERS: "2", GROVE_SETUP_TIMEOUT: "2m", GROVE_WORKER: "9", GROVE_PORT_BASE: "1" })
      assert.deepStrictEqual(Object.keys(ok).sort(), ["setupTimeout", "workers"])
      const bad = yield* Effect.flip(Config.fromEnv({ GROVE_KILL_GRACE: "forever", GROVE_RETRIES: "-1" }))
      assert.deepStrictEqual(bad.issues.map((i) => i.where).sort(), ["GROVE_KILL_GRACE", "GROVE_RETRIES"])
    }))

  it.effect("grove.config.json: unknown keys and bad values, all at once, with the file's path", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "grove-config-"))
      Fs.writeFileSync(NodePath.join(dir, "grove.config.json"), JSON.stringify({ workers: "two", colour: "red", setup: ["npm ci"] }))
      const e = yield* Effect.flip(Config.fromFile(dir))
      const where = e.issues.map((i) => i.where.replace(dir, "DIR"))
      assert.deepStrictEqual(where, ["DIR/grove.config.json: colour", "DIR/grove.config.json: workers"])
      Fs.writeFileSync(NodePath.join(dir, "grove.config.json"), JSON.stringify({ workers: 2, setup: ["npm ci"], setupTimeout: "10m" }))
      const c = yield* Config.fromFile(dir)
      assert.deepStrictEqual(c.setup, ["npm ci"])
      assert.strictEqual(Duration.toMinutes(c.setupTimeout!), 10)
      Fs.rmSync(dir, { recursive: true })
    }).pipe(Effect.provide(NodeContext.layer)))

  it("a stored snapshot decodes back to the config it was made from; the retry policy is not stored", () => {
    const config: Config.GroveConfig = {
      ...Config.defaults,
      workers: 5,
      timeoutPercent: 250,
      killGrace: Duration.millis(1500),
      keep: ["node_modules"],
      seed: "s",
      retryPolicy: () => {
        throw new Error("not called")
      }
    }
    const snapshot = Config.snapshot(config)
    assert.notInclude(snapshot, "retryPolicy")
    const back = { ...Config.defaults, ...Resume.configOf(snapshot) }
    const { retryPolicy: _, ...expected } = config
    assert.deepStrictEqual(back, expected)
  })
})
