/**
 * What every grove command shares: the exit code, output, styles, common options.
 *
 * @since 0.1.0
 */
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Config from "../Config.js"
import type * as Git from "../Git.js"
import type { Issue, StoreError } from "../GroveError.js"
import type * as Harness from "../Harness.js"
import * as SqlUrl from "../internal/sqlUrl.js"
import * as Plan from "../Plan.js"
import * as SqlStore from "../SqlStore.js"
import type { Store } from "../Store.js"
import * as Help from "./help.js"
import type * as Plain from "../view/Plain.js"

/**
 * The exit code a command sets.
 *
 * @since 0.1.0
 * @category tags
 */
export class ExitCode extends Context.Tag("grove/Cli/ExitCode")<ExitCode, Ref.Ref<number>>() {}

/**
 * @since 0.1.0
 */
export const setExit = (code: number) => Effect.flatMap(ExitCode, (ref) => Ref.set(ref, code))

/**
 * @since 0.1.0
 */
export type Env =
  | FileSystem.FileSystem
  | Path.Path
  | CommandExecutor.CommandExecutor
  | Git.Git
  | Harness.Harness
  | ExitCode

/**
 * @since 0.1.0
 */
export const out = (text: string) => Effect.sync(() => void process.stdout.write(text.endsWith("\n") ? text : text + "\n"))
/**
 * @since 0.1.0
 */
export const err = (text: string) => Effect.sync(() => void process.stderr.write(text.endsWith("\n") ? text : text + "\n"))

/**
 * Colour only on a TTY and without NO_COLOR.
 *
 * @since 0.1.0
 */
export const styleOf = (stream: NodeJS.WriteStream): Plain.Style => ({
  color: stream.isTTY === true && (process.env.NO_COLOR ?? "") === ""
})

/**
 * @since 0.1.0
 */
export const repo = Options.text("repo").pipe(
  Options.withPseudoName("DIR"),
  Options.withDefault("."),
  Help.option({ text: "Use the repository that DIR is in (any folder inside it).", default: ". (the current folder)", example: "--repo ../shop" })
)
/**
 * @since 0.1.0
 */
export const db = Options.text("db").pipe(
  Options.withPseudoName("FILE"),
  Options.optional,
  Options.map(Option.orElse(() => Option.fromNullable(process.env.GROVE_DB).pipe(Option.filter((v) => v !== "")))),
  Help.option({
    text: "Keep sessions and results in the SQLite store FILE or, when FILE is a URL " +
      "postgres://USER:PASSWORD@HOST:5432/DATABASE, in that PostgreSQL database, which every machine naming it " +
      "shares (logs stay on the machine that ran the test).",
    default: "GROVE_DB, else <git-common-dir>/grove/grove.db",
    example: "--db postgres://ci@db.internal/grove"
  })
)

/**
 * The store `--db` names, as commands pass it on: a PostgreSQL URL as given, an SQLite
 * file resolved from the current folder.
 *
 * @since 0.2.0
 */
export const resolveDb = (path: Path.Path, db: string, cwd: string = process.cwd()): string =>
  SqlUrl.isUrl(db) ? db : path.resolve(cwd, db)

/**
 * The store's name for messages (a URL without its password).
 *
 * @since 0.2.0
 */
export const storeName = (db: string): string => SqlUrl.isUrl(db) ? SqlUrl.redact(db) : db

/**
 * Looks at the store without writing: an SQLite file read-only (`SqlStore.inspect`),
 * a PostgreSQL URL's syntax (connecting is the layer's business).
 *
 * @since 0.2.0
 */
export const inspectStore = (db: string): Effect.Effect<void, StoreError, FileSystem.FileSystem> =>
  SqlUrl.isUrl(db) ? Effect.asVoid(SqlUrl.parseUrl(db)) : SqlStore.inspect(db)

/**
 * Whether the store exists: an SQLite file may not yet; a PostgreSQL database is
 * assumed to (connecting says otherwise).
 *
 * @since 0.2.0
 */
export const storeExists = (db: string): Effect.Effect<boolean, never, FileSystem.FileSystem> =>
  SqlUrl.isUrl(db)
    ? Effect.succeed(true)
    : Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(db)).pipe(Effect.orElseSucceed(() => false))

/**
 * Where every command's store layer is chosen: the PostgreSQL store for a
 * `postgres://`/`postgresql://` URL (its driver loaded only then), else the SQLite file.
 *
 * @since 0.2.0
 */
export const storeLayer = (db: string): Layer.Layer<Store, StoreError, FileSystem.FileSystem | Path.Path> =>
  SqlUrl.isUrl(db)
    ? Layer.unwrapEffect(Effect.map(Effect.promise(() => import("../PgStore.js")), (PgStore) => PgStore.layer({ url: db })))
    : SqlStore.layer({ filename: db })

/**
 * Maps input errors to exit code 2 with their message, anything else to 1.
 *
 * @since 0.1.0
 */
export const onInvalid = <A, R>(self: Effect.Effect<number, A, R>) =>
  self.pipe(
    Effect.catchAll((e) => {
      const error = e as unknown as { _tag?: string; message?: string }
      const code = error._tag === "InvalidInput" || error._tag === "GitError" || error._tag === "StoreError" ? 2 : 1
      return Effect.as(err(`grove: ${error.message ?? String(e)}`), code)
    })
  )


/**
 * An integer option whose parse error names the flag (`Options.integer` says only
 * "'x' is not a integer"). Shown as `--NAME N` in the help.
 *
 * @since 0.1.0
 */
export const integer = (name: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("N"),
    Options.mapEffect((text) =>
      /^\s*[-+]?\d+\s*$/.test(text)
        ? Effect.succeed(Number(text))
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name}: expected a whole number such as 4, got ${JSON.stringify(text)}`)))
    )
  )

/**
 * `Plan.load`, listing every problem at once: when some plans do not load, the
 * ones that load on their own are returned too, so that their refs and `cwd` are
 * still checked (SPEC §2: all errors at once).
 *
 * @since 0.1.0
 */
export const loadPlans = (
  files: ReadonlyArray<string>,
  options: { readonly repoRoot: string; readonly cwd: string }
): Effect.Effect<
  { readonly plans: ReadonlyArray<Plan.LoadedPlan>; readonly issues: ReadonlyArray<Issue> },
  never,
  FileSystem.FileSystem | Path.Path
> =>
  Plan.load(files, options).pipe(
    Effect.map((plans) => ({ plans, issues: [] })),
    Effect.catchAll((e) =>
      Effect.forEach(files, (file) => Effect.option(Plan.load([file], options)), { concurrency: 8 }).pipe(
        Effect.map((alone) => ({ plans: alone.flatMap((p) => (p._tag === "Some" ? p.value : [])), issues: e.issues }))
      )
    )
  )

/**
 * A command's Config: flags > `GROVE_*` environment > the repository's grove.config.json
 * > defaults. Every bad value is added to `issues` (the defaults stand in for it); the
 * file's and the environment's parts are returned too, for a stored snapshot.
 *
 * @since 0.3.0
 */
export const loadConfig = (
  repoRoot: string | undefined,
  flags: Partial<Config.GroveConfig>,
  issues: Array<Issue>
): Effect.Effect<
  { readonly config: Config.GroveConfig; readonly file: Partial<Config.GroveConfig>; readonly env: Partial<Config.GroveConfig> },
  never,
  FileSystem.FileSystem | Path.Path
> =>
  Effect.gen(function*() {
    const collect = <A>(fallback: A) => (e: { readonly issues: ReadonlyArray<Issue> }) =>
      Effect.sync(() => (issues.push(...e.issues), fallback))
    const file = repoRoot === undefined ? {} : yield* Config.fromFile(repoRoot).pipe(Effect.catchAll(collect({})))
    const env = yield* Config.fromEnv(process.env).pipe(Effect.catchAll(collect({})))
    const config = yield* Config.validate({ ...Config.defaults, ...file, ...env, ...flags }, (k) => `config ${k}`).pipe(
      Effect.catchAll(collect(Config.defaults))
    )
    return { config, file, env }
  })

