/**
 * grove's configuration as a service. Precedence (SPEC §2): flags > `GROVE_*`
 * environment > `grove.config.json` at the repository root > built-in defaults;
 * a plan's front matter wins for its own test.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import type { Attempt, TestRequest } from "./Domain.js"
import { InvalidInput, Issue } from "./GroveError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface GroveConfig {
  /** number of workers, and of worktrees */
  readonly workers: number
  /** how many waiting tests the queue holds before `submit` suspends */
  readonly maxQueueSize: number
  /** extra attempts after a non-passing one */
  readonly retries: number
  /** per-attempt timeout of a test that sets none */
  readonly timeout: Duration.Duration
  /** `--timeout N%`: per-test timeout as this share of the test's median duration, when known */
  readonly timeoutPercent: number | undefined
  /** where session folders of worktrees go; default `<repo>/../<repo-name>.grove` */
  readonly worktreeDir: string | undefined
  /** remove worktrees when the session ends */
  readonly cleanup: boolean
  /** keep the worktree of each failed test's last attempt */
  readonly keepFailed: boolean
  /** paths (git pathspec-like patterns) that survive cleaning between tests, e.g. node_modules */
  readonly keep: ReadonlyArray<string>
  /** commands run once in each new worktree, and again when setupInputs change */
  readonly setup: ReadonlyArray<string>
  /** files whose change between commits makes setup run again */
  readonly setupInputs: ReadonlyArray<string>
  /** how long one worktree's setup may run before it is stopped and the worktree is not used */
  readonly setupTimeout: Duration.Duration
  /**
   * keep submodules in step: initialised in new worktrees, moved to the recorded commit
   * and cleaned inside whenever a worktree is prepared, and part of its clean check
   */
  readonly submodules: boolean
  /** time between SIGTERM and SIGKILL when an attempt ends */
  readonly killGrace: Duration.Duration
  /** bytes of an attempt's log kept on disk; the rest is counted and dropped */
  readonly logCap: number
  /** bytes of an attempt's output kept in memory and in reports */
  readonly tailBytes: number
  readonly portBase: number
  readonly portsPerWorker: number
  /** stop after this many tests ended not PASSED/FLAKY; undefined = never */
  readonly maxFail: number | undefined
  /** first retry delay; doubles each retry, jittered ±20%, capped at retryCap */
  readonly retryBase: Duration.Duration
  readonly retryCap: Duration.Duration
  /** seed of the retry jitter; undefined = random */
  readonly seed: string | undefined
  /**
   * the library's hook for retries: each test's Schedule, stepped with every attempt that
   * did not pass; it alone decides whether and when the test runs again. Undefined: SPEC
   * §4's policy (`Runner.defaultRetryPolicy`). Not part of a stored snapshot.
   */
  readonly retryPolicy?: RetryPolicy | undefined
}

/**
 * A test's retry policy: a Schedule stepped once per attempt that did not pass (its
 * input). `retries` is what the test and the Config allow, less the attempts of an
 * earlier run of a resumed session (the default policy's `recurs`).
 *
 * @since 0.1.0
 * @category models
 */
export type RetryPolicy = (test: {
  readonly request: TestRequest
  readonly retries: number
  readonly config: GroveConfig
}) => Schedule.Schedule<unknown, Attempt>

/**
 * The seed's ParallelTestConfig defaults (SPEC §6).
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults: GroveConfig = {
  workers: 3,
  maxQueueSize: 100,
  retries: 2,
  timeout: Duration.minutes(30),
  timeoutPercent: undefined,
  worktreeDir: undefined,
  cleanup: true,
  keepFailed: false,
  keep: [],
  setup: [],
  setupInputs: [],
  setupTimeout: Duration.minutes(30),
  submodules: false,
  killGrace: Duration.seconds(5),
  logCap: 100 * 1024 * 1024,
  tailBytes: 64 * 1024,
  portBase: 20000,
  portsPerWorker: 100,
  maxFail: undefined,
  retryBase: Duration.seconds(1),
  retryCap: Duration.seconds(30),
  seed: undefined
}

/**
 * @since 0.1.0
 * @category tags
 */
export class GroveConfigTag extends Context.Tag("grove/Config")<GroveConfigTag, GroveConfig>() {}

/**
 * Checks the values that have ranges; every problem is listed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validate = (config: GroveConfig, where: (key: keyof GroveConfig) => string = (k) => k): Effect.Effect<GroveConfig, InvalidInput> => {
  const issues: Array<Issue> = []
  const int = (key: keyof GroveConfig, min: number) => {
    const v = config[key]
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      issues.push(new Issue({ where: where(key), message: `must be an integer >= ${min}, got ${String(v)}` }))
    }
  }
  int("workers", 1)
  int("maxQueueSize", 1)
  int("retries", 0)
  int("logCap", 1)
  int("tailBytes", 1)
  int("portBase", 1)
  int("portsPerWorker", 1)
  if (config.maxFail !== undefined) int("maxFail", 1)
  if (Duration.lessThanOrEqualTo(config.timeout, Duration.zero)) {
    issues.push(new Issue({ where: where("timeout"), message: "must be greater than zero" }))
  }
  if (Duration.lessThanOrEqualTo(config.setupTimeout, Duration.zero)) {
    issues.push(new Issue({ where: where("setupTimeout"), message: "must be greater than zero" }))
  }
  if (config.timeoutPercent !== undefined && !(config.timeoutPercent > 0)) {
    issues.push(new Issue({ where: where("timeoutPercent"), message: "must be a percentage greater than zero" }))
  }
  return issues.length === 0
    ? Effect.succeed(config)
    : Effect.fail(new InvalidInput({ issues: issues as [Issue, ...Array<Issue>] }))
}

/**
 * A config of the defaults with `partial` on top.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (partial: Partial<GroveConfig> = {}): Layer.Layer<GroveConfigTag, InvalidInput> =>
  Layer.effect(GroveConfigTag, validate({ ...defaults, ...partial }))

/**
 * Parses a duration: `90s`, `5m`, `1h30m`, `250ms`; a bare number is seconds.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseDuration = (input: string | number): Either.Either<Duration.Duration, string> => {
  if (typeof input === "number") {
    return Number.isFinite(input) && input > 0
      ? Either.right(Duration.seconds(input))
      : Either.left(`expected a duration greater than zero such as 90s, 5m or 1h30m, got ${input}`)
  }
  const text = input.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return parseDuration(Number(text))
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy
  let total = 0
  let matched = 0
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const n = Number(m[1])
    total += m[2] === "h" ? n * 3_600_000 : m[2] === "m" ? n * 60_000 : m[2] === "s" ? n * 1000 : n
    matched = re.lastIndex
  }
  if (text === "" || matched !== text.length || total <= 0) {
    return Either.left(`expected a duration greater than zero such as 90s, 5m or 1h30m, got ${JSON.stringify(input)}`)
  }
  return Either.right(Duration.millis(total))
}

const durationConfig = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((s) =>
      Either.mapLeft(parseDuration(s), (message) => ConfigError.InvalidData([], message))
    )
  )

/**
 * The keys grove reads from the `GROVE_*` environment (`GROVE_WORKERS`, …), each
 * optional; described for `--help`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Partial<GroveConfig>> = Config.all({
  workers: Config.integer("WORKERS").pipe(Config.withDescription("number of workers"), Config.option),
  maxQueueSize: Config.integer("MAX_QUEUE_SIZE").pipe(Config.withDescription("waiting tests held by the queue"), Config.option),
  retries: Config.integer("RETRIES").pipe(Config.withDescription("extra attempts after a non-passing one"), Config.option),
  timeout: durationConfig("TIMEOUT").pipe(Config.withDescription("per-attempt timeout, e.g. 5m"), Config.option),
  worktreeDir: Config.string("WORKTREE_DIR").pipe(Config.withDescription("folder for session worktrees"), Config.option),
  keepFailed: Config.boolean("KEEP_FAILED").pipe(Config.withDescription("keep failed tests' worktrees"), Config.option),
  cleanup: Config.boolean("CLEANUP").pipe(Config.withDescription("remove worktrees at the end"), Config.option),
  setupTimeout: durationConfig("SETUP_TIMEOUT").pipe(Config.withDescription("time one worktree's setup may take"), Config.option),
  killGrace: durationConfig("KILL_GRACE").pipe(Config.withDescription("SIGTERM to SIGKILL delay"), Config.option),
  logCap: Config.integer("LOG_CAP").pipe(Config.withDescription("bytes of log kept per attempt"), Config.option),
  maxFail: Config.integer("MAX_FAIL").pipe(Config.withDescription("stop after N tests did not pass"), Config.option),
  seed: Config.string("SEED").pipe(Config.withDescription("seed of the retry jitter"), Config.option)
}).pipe(
  Config.map((o) => {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(o) as Array<[string, Option.Option<unknown>]>) if (Option.isSome(v)) out[k] = v.value
    return out as Partial<GroveConfig>
  }),
  Config.nested("GROVE")
)

/**
 * Reads the `GROVE_*` variables of an environment; errors name the variable.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnv = (env: Record<string, string | undefined>): Effect.Effect<Partial<GroveConfig>, InvalidInput> => {
  const map = new Map<string, string>()
  for (const [k, v] of Object.entries(env)) if (k.startsWith("GROVE_") && v !== undefined) map.set(k, v)
  return Effect.withConfigProvider(config, ConfigProvider.fromMap(map, { pathDelim: "_" })).pipe(
    Effect.mapError((e) => new InvalidInput({ issues: envIssues(e) }))
  )
}

/** one issue per variable, named as it is spelled in the environment (GROVE_KILL_GRACE) */
const envIssues = (e: ConfigError.ConfigError): [Issue, ...Array<Issue>] => {
  switch (e._op) {
    case "And":
    case "Or":
      return [...envIssues(e.left), ...envIssues(e.right)]
    default:
      return [new Issue({ where: e.path.join("_"), message: e.message })]
  }
}

const fileKeys: Record<string, (v: unknown) => Either.Either<unknown, string>> = {
  workers: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  maxQueueSize: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  retries: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  timeout: (v) => typeof v === "string" || typeof v === "number" ? parseDuration(v) : Either.left("must be a duration"),
  killGrace: (v) => typeof v === "string" || typeof v === "number" ? parseDuration(v) : Either.left("must be a duration"),
  setupTimeout: (v) => typeof v === "string" || typeof v === "number" ? parseDuration(v) : Either.left("must be a duration"),
  worktreeDir: (v) => typeof v === "string" ? Either.right(v) : Either.left("must be a string"),
  cleanup: (v) => typeof v === "boolean" ? Either.right(v) : Either.left("must be true or false"),
  keepFailed: (v) => typeof v === "boolean" ? Either.right(v) : Either.left("must be true or false"),
  submodules: (v) => typeof v === "boolean" ? Either.right(v) : Either.left("must be true or false"),
  keep: (v) => Array.isArray(v) && v.every((x) => typeof x === "string") ? Either.right(v) : Either.left("must be a list of strings"),
  setup: (v) => Array.isArray(v) && v.every((x) => typeof x === "string") ? Either.right(v) : Either.left("must be a list of strings"),
  setupInputs: (v) => Array.isArray(v) && v.every((x) => typeof x === "string") ? Either.right(v) : Either.left("must be a list of strings"),
  logCap: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  tailBytes: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  portBase: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  portsPerWorker: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  maxFail: (v) => Number.isInteger(v) ? Either.right(v) : Either.left("must be an integer"),
  seed: (v) => typeof v === "string" ? Either.right(v) : Either.left("must be a string")
}

/**
 * Reads `grove.config.json` in `dir` when it exists; every problem names the file.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromFile = (dir: string): Effect.Effect<Partial<GroveConfig>, InvalidInput, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = path.join(dir, "grove.config.json")
    const exists = yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false))
    if (!exists) return {}
    const text = yield* fs.readFileString(file).pipe(
      Effect.mapError((e) => InvalidInput.one(file, `cannot read: ${e.message}`))
    )
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => InvalidInput.one(file, `is not valid JSON: ${(e as Error).message}`)
    })
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* Effect.fail(InvalidInput.one(file, "must hold a JSON object"))
    }
    const issues: Array<Issue> = []
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(json)) {
      const check = fileKeys[key]
      if (check === undefined) {
        issues.push(new Issue({ where: `${file}: ${key}`, message: `unknown key; known keys: ${Object.keys(fileKeys).join(", ")}` }))
        continue
      }
      Either.match(check(value), {
        onLeft: (message) => issues.push(new Issue({ where: `${file}: ${key}`, message })),
        onRight: (v) => (out[key] = v)
      })
    }
    if (issues.length > 0) return yield* Effect.fail(new InvalidInput({ issues: issues as [Issue, ...Array<Issue>] }))
    return out as Partial<GroveConfig>
  })
