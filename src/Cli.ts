/**
 * The `grove` command line on @effect/cli. Every command returns its exit code
 * (SPEC §6): 0 all PASSED/FLAKY or NO_TESTS; 1 anything else; 2 invalid input or
 * usage; 129 SIGHUP; 130 SIGINT; 143 SIGTERM.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import type * as Terminal from "@effect/platform/Terminal"
import * as Cause from "effect/Cause"
import type * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import { runner } from "./cli/cluster.js"
import { merge } from "./cli/merge.js"
import { run } from "./cli/run.js"
import * as Help from "./cli/help.js"
import { serve } from "./cli/serve.js"
import { ExitCode, err, out, type Env } from "./cli/shared.js"
import { gc, report, sessions, show, worktrees } from "./cli/store.js"
import { validate } from "./cli/validate.js"
import * as Git from "./Git.js"
import * as Harness from "./Harness.js"
import { stripAnsi } from "./internal/text.js"

const summary = "grove runs many test plans in parallel, each in its own git worktree, and tells you what passed."
const version = "0.1.0"
const commands = [run, merge, validate, sessions, show, report, worktrees, gc, serve, runner] as const

/**
 * @since 0.1.0
 * @category commands
 */
export const root = Command.make("grove").pipe(
  Command.withDescription(summary),
  Command.withSubcommands(commands)
)

const cli = Command.run(root, { name: "grove", version })

const isHelp = (arg: string) => arg === "--help" || arg === "-h"

/**
 * grove's own help (src/cli/help.ts) for `grove`, `grove --help`, `grove --help CMD`
 * and `grove CMD ... --help`, to stdout; an unknown command with --help is a usage
 * error; undefined when the arguments ask for something else.
 */
const helpFor = (args: ReadonlyArray<string>): Effect.Effect<number> | undefined => {
  const columns = Help.width()
  const named = (name: string | undefined) => commands.find((c) => Help.nameOf(c) === name)
  const print = (text: string) => Effect.as(out(text), 0)
  const rootHelp = () => Help.renderRoot({ program: "grove", summary, version, commands, columns })
  if (args.length === 0) return print(rootHelp())
  if (isHelp(args[0]!)) {
    const command = named(args[1])
    return print(command === undefined ? rootHelp() : Help.render("grove", command, columns))
  }
  if (!args.some(isHelp)) return undefined
  const command = named(args[0])
  if (command !== undefined) return print(Help.render("grove", command, columns))
  if (args[0]!.startsWith("-")) return print(rootHelp())
  const names = commands.map((c) => Help.nameOf(c)).join(", ")
  return Effect.as(err(`grove: unknown command ${JSON.stringify(args[0])}: use one of ${names} (grove --help lists them)`), 2)
}

const plainOn = (stream: NodeJS.WriteStream) => stream.isTTY !== true || (process.env.NO_COLOR ?? "") !== ""
const strip = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? stripAnsi(a) : a))

/**
 * @effect/cli styles help and usage errors with ANSI codes whatever the stream:
 * strip them off a TTY or with NO_COLOR (SPEC §6), stdout and stderr each.
 */
const plainWhenPiped = (base: Console.Console): Console.Console => {
  const out = plainOn(process.stdout) ? strip : (args: ReadonlyArray<unknown>) => args
  const err = plainOn(process.stderr) ? strip : (args: ReadonlyArray<unknown>) => args
  return {
    ...base,
    log: (...args) => base.log(...out(args)),
    info: (...args) => base.info(...out(args)),
    error: (...args) => base.error(...err(args)),
    warn: (...args) => base.warn(...err(args)),
    unsafe: {
      ...base.unsafe,
      log: (...args) => base.unsafe.log(...out(args)),
      info: (...args) => base.unsafe.info(...out(args)),
      error: (...args) => base.unsafe.error(...err(args)),
      warn: (...args) => base.unsafe.warn(...err(args))
    }
  }
}

/**
 * A reader that goes away (`grove run | head -1`) makes writes fail with EPIPE,
 * which Node raises as an unhandled 'error' event: grove would die before it
 * stops its tests and removes its worktrees. Output to a closed stream is dropped.
 */
const dropWriteErrors = Effect.sync(() => {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listenerCount("error") === 0) stream.on("error", () => undefined)
  }
})

/**
 * The command line's one main Layer: the platform (Node's file system, paths,
 * commands, terminal), the real Git and the real Harness. Each command adds only what
 * its options choose — the store its `--db` names, the session — on top of it.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer: Layer.Layer<Exclude<Env, ExitCode> | Terminal.Terminal> = Layer.mergeAll(
  NodeContext.layer,
  Git.layer,
  Harness.layerShell
)

/**
 * Runs the command line and returns the process exit code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<number, never, Exclude<Env, ExitCode> | Terminal.Terminal> =>
  Effect.gen(function*() {
    yield* dropWriteErrors
    const help = helpFor(argv.slice(2))
    if (help !== undefined) return yield* help
    const code = yield* Ref.make(0)
    return yield* Effect.consoleWith((console) => Effect.withConsole(cli(argv), plainWhenPiped(console))).pipe(
      Effect.zipRight(Ref.get(code)),
      Effect.catchAllCause((cause) => {
        const failure = Cause.failureOption(cause)
        if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) return Effect.succeed(2)
        return Effect.as(err(`grove: internal error:\n${Cause.pretty(cause)}`), 70)
      }),
      Effect.provideService(ExitCode, code)
    )
  })
