/**
 * grove's configuration as a service. Precedence (SPEC §2): flags > `GROVE_*`
 * environment > `grove.config.json` at the repository root > built-in defaults;
 * a plan's front matter wins for its own test.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import type * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
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

// -----------------------------------------------------------------------------
// the one config Schema: flags, GROVE_* variables, grove.config.json and the
// snapshot a session is stored with all decode through `Input`
// -----------------------------------------------------------------------------

/** a value of the Schema's source side, which each source gives in its own form */
const lenient = <A, I>(
  to: Schema.Schema<A, I>,
  parse: (input: unknown) => Either.Either<A, string>,
  encode: (value: A) => unknown
) =>
  Schema.transformOrFail(Schema.Unknown, Schema.typeSchema(to), {
    strict: true,
    decode: (input, _, ast) =>
      Either.match(parse(input), {
        onLeft: (message) => ParseResult.fail(new ParseResult.Type(ast, input, message)),
        onRight: ParseResult.succeed
      }),
    encode: (value) => ParseResult.succeed(encode(value))
  })

const shown = (input: unknown) => JSON.stringify(input) ?? String(input)

/** an integer ≥ `min`, from a number (JSON) or its text (a variable, a flag) */
const Int = (min: number) =>
  lenient(Schema.Number, (input) => {
    const n = typeof input === "string" && /^\s*-?\d+\s*$/.test(input) ? Number(input) : input
    return typeof n === "number" && Number.isInteger(n) && n >= min
      ? Either.right(n)
      : Either.left(`must be an integer >= ${min}, got ${shown(input)}`)
  }, (n) => n)

/** a duration as people write it (90s, 5m, 1h30m, 250ms; a bare number is seconds) */
const DurationInput = lenient(Schema.DurationFromSelf, (input) =>
  typeof input === "string" || typeof input === "number"
    ? parseDuration(input)
    : Either.left(`expected a duration greater than zero such as 90s, 5m or 1h30m, got ${shown(input)}`), (d) => `${Duration.toMillis(d)}ms`)

/** a per-attempt timeout: a duration, or `N%` of the test's median duration so far */
const TimeoutInput = lenient(
  Schema.Union(Schema.DurationFromSelf, Schema.Struct({ percent: Schema.Number })),
  (input) => {
    const percent = typeof input === "string" ? /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(input) : null
    if (percent !== null) {
      const n = Number(percent[1])
      return n > 0 ? Either.right({ percent: n }) : Either.left("a percentage must be greater than 0, e.g. 300%")
    }
    return typeof input === "string" || typeof input === "number"
      ? Either.mapLeft(parseDuration(input), (m) => `${m}, or a share of the median such as 300%`)
      : Either.left(`expected a duration such as 5m or a share of the median such as 300%, got ${shown(input)}`)
  },
  (t) => Duration.isDuration(t) ? `${Duration.toMillis(t)}ms` : `${t.percent}%`
)

const Bool = lenient(Schema.Boolean, (input) =>
  typeof input === "boolean"
    ? Either.right(input)
    : input === "true" || input === "1"
    ? Either.right(true)
    : input === "false" || input === "0"
    ? Either.right(false)
    : Either.left(`must be true or false, got ${shown(input)}`), (b) => b)

const Text = lenient(Schema.String, (input) =>
  typeof input === "string" ? Either.right(input) : Either.left(`must be a string, got ${shown(input)}`), (t) => t)

/** a list of strings: a JSON list, or comma-separated text */
const Texts = lenient(Schema.Array(Schema.String), (input) =>
  Array.isArray(input) && input.every((x) => typeof x === "string")
    ? Either.right(input as ReadonlyArray<string>)
    : typeof input === "string"
    ? Either.right(input.split(",").map((x) => x.trim()).filter((x) => x !== ""))
    : Either.left(`must be a list of strings, got ${shown(input)}`), (l) => l)

const Share = lenient(Schema.Number, (input) => {
  const n = typeof input === "string" ? Number(input) : input
  return typeof n === "number" && n > 0 ? Either.right(n) : Either.left(`must be a percentage greater than zero, got ${shown(input)}`)
}, (n) => n)

/**
 * The config as its sources give it, every key optional: what each key accepts and
 * how a bad value is told. `timeout` takes a duration or `N%` (decoded to
 * `timeoutPercent`); durations are encoded as `<ms>ms`, so a stored snapshot decodes
 * the same way.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Input = Schema.Struct({
  workers: Schema.optionalWith(Int(1), { exact: true }),
  maxQueueSize: Schema.optionalWith(Int(1), { exact: true }),
  retries: Schema.optionalWith(Int(0), { exact: true }),
  timeout: Schema.optionalWith(TimeoutInput, { exact: true }),
  timeoutPercent: Schema.optionalWith(Share, { exact: true }),
  worktreeDir: Schema.optionalWith(Text, { exact: true }),
  cleanup: Schema.optionalWith(Bool, { exact: true }),
  keepFailed: Schema.optionalWith(Bool, { exact: true }),
  keep: Schema.optionalWith(Texts, { exact: true }),
  setup: Schema.optionalWith(Texts, { exact: true }),
  setupInputs: Schema.optionalWith(Texts, { exact: true }),
  setupTimeout: Schema.optionalWith(DurationInput, { exact: true }),
  submodules: Schema.optionalWith(Bool, { exact: true }),
  killGrace: Schema.optionalWith(DurationInput, { exact: true }),
  logCap: Schema.optionalWith(Int(1), { exact: true }),
  tailBytes: Schema.optionalWith(Int(1), { exact: true }),
  portBase: Schema.optionalWith(Int(1), { exact: true }),
  portsPerWorker: Schema.optionalWith(Int(1), { exact: true }),
  maxFail: Schema.optionalWith(Int(1), { exact: true }),
  retryBase: Schema.optionalWith(DurationInput, { exact: true }),
  retryCap: Schema.optionalWith(DurationInput, { exact: true }),
  seed: Schema.optionalWith(Text, { exact: true })
})

/**
 * The keys of `Input`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const keys: ReadonlyArray<keyof typeof Input.fields> = Object.keys(Input.fields) as Array<keyof typeof Input.fields>

const decodeInput = Schema.decodeUnknownEither(Input, { errors: "all", onExcessProperty: "ignore" })
const encodeInput = Schema.encodeSync(Input)

/**
 * Decodes a source's raw values through `Input`; every problem is an issue named by
 * `where(key)` (`--workers`, `GROVE_KILL_GRACE`, `grove.config.json: timeout`).
 * Keys `Input` does not know are ignored here: a source that refuses them says so itself.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (
  raw: Readonly<Record<string, unknown>>,
  where: (key: string) => string
): Either.Either<Partial<GroveConfig>, [Issue, ...Array<Issue>]> =>
  Either.match(decodeInput(raw), {
    onLeft: (error) => {
      const issues = ParseResult.ArrayFormatter.formatErrorSync(error).map((e) =>
        new Issue({ where: e.path.length === 0 ? where("") : where(String(e.path[0])), message: e.message })
      )
      return Either.left((issues.length > 0 ? issues : [new Issue({ where: where(""), message: "invalid" })]) as [Issue, ...Array<Issue>])
    },
    onRight: ({ timeout, ...rest }) => {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(rest)) if (v !== undefined) out[k] = v
      if (timeout !== undefined) {
        if (Duration.isDuration(timeout)) out.timeout = timeout
        else out.timeoutPercent = timeout.percent
      }
      return Either.right(out as Partial<GroveConfig>)
    }
  })

/**
 * The config as it is stored with a session (SessionStarted), in `Input`'s encoded
 * form: what `--resume` decodes again. The retry policy, a function, is not stored.
 *
 * @since 0.1.0
 * @category constructors
 */
export const snapshot = (config: GroveConfig): string => {
  const { retryPolicy: _, timeoutPercent, ...rest } = config
  const fields: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) fields[k] = v
  return JSON.stringify({ ...encodeInput(fields as typeof Input.Type), ...(timeoutPercent === undefined ? {} : { timeoutPercent }) })
}

/** the GROVE_* variables and the keys they set */
const envKeys: ReadonlyArray<readonly [variable: string, key: keyof typeof Input.fields]> = [
  ["GROVE_WORKERS", "workers"],
  ["GROVE_MAX_QUEUE_SIZE", "maxQueueSize"],
  ["GROVE_RETRIES", "retries"],
  ["GROVE_TIMEOUT", "timeout"],
  ["GROVE_WORKTREE_DIR", "worktreeDir"],
  ["GROVE_KEEP_FAILED", "keepFailed"],
  ["GROVE_CLEANUP", "cleanup"],
  ["GROVE_SETUP_TIMEOUT", "setupTimeout"],
  ["GROVE_KILL_GRACE", "killGrace"],
  ["GROVE_LOG_CAP", "logCap"],
  ["GROVE_MAX_FAIL", "maxFail"],
  ["GROVE_SEED", "seed"]
]

/**
 * Reads the `GROVE_*` variables of an environment through `Input`; errors name the variable.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnv = (env: Record<string, string | undefined>): Effect.Effect<Partial<GroveConfig>, InvalidInput> => {
  const raw: Record<string, unknown> = {}
  const variableOf: Record<string, string> = {}
  for (const [variable, key] of envKeys) {
    const value = env[variable]
    variableOf[key] = variable
    if (value !== undefined) raw[key] = value
  }
  return Either.match(decode(raw, (key) => variableOf[key] ?? key), {
    onLeft: (issues) => Effect.fail(new InvalidInput({ issues })),
    onRight: Effect.succeed
  })
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
    const unknown = Object.keys(json).filter((key) => !(keys as ReadonlyArray<string>).includes(key))
      .map((key) => new Issue({ where: `${file}: ${key}`, message: `unknown key; known keys: ${keys.join(", ")}` }))
    const decoded = decode(json as Record<string, unknown>, (key) => `${file}: ${key}`)
    const issues = [...unknown, ...(Either.isLeft(decoded) ? decoded.left : [])]
    if (issues.length > 0) return yield* Effect.fail(new InvalidInput({ issues: issues as [Issue, ...Array<Issue>] }))
    return Either.getOrThrow(decoded)
  })
