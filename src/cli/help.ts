/**
 * grove's `--help`, read like git's (SPEC §6): commands one a line with a sentence;
 * each option once, with its value's name, its default, a sentence and an example;
 * wrapped to the terminal's width (80 columns off a TTY).
 *
 * @effect/cli's own help prints a type description for every option ("A
 * user-defined piece of text."), its built-in options, and a command list on lines
 * as long as every usage together, none of which a renderer option changes. So
 * grove renders its own help from the same definitions the parser uses: an
 * option's flags, aliases, value name and repetition come from @effect/cli's
 * `Options.getUsage`; its sentence, default and example are attached to that very
 * `Options` value with `option(...)`, and a command's with `command(config, ...)`
 * over the same config record `Command.make` takes. An option without a sentence
 * is a defect the help test finds, not a line of a hand-kept list.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type * as Usage from "@effect/cli/Usage"
import * as HashSet from "effect/HashSet"
import * as Option from "effect/Option"

/**
 * What the help says of an option or argument besides its flags and value name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Doc {
  /** one sentence: what it does */
  readonly text: string
  /** the default, as the user would type it */
  readonly default?: string
  /** an example of its use */
  readonly example?: string
}

/**
 * What the help says of a command.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandDoc {
  /** one sentence, for `grove --help`'s list of commands */
  readonly summary: string
  /** more, for the command's own help */
  readonly description?: string
  readonly examples?: ReadonlyArray<string>
}

const docs = new WeakMap<object, Doc>()

interface Registered {
  readonly name: string
  readonly config: Readonly<Record<string, unknown>>
  readonly doc: CommandDoc
}

const commands = new WeakMap<object, Registered>()

/**
 * Documents an option (last in its pipe): sets @effect/cli's description too.
 *
 * @since 0.1.0
 * @category combinators
 */
export const option = (doc: Doc) => <A>(self: Options.Options<A>): Options.Options<A> => {
  const described = Options.withDescription(self, doc.text)
  docs.set(described, doc)
  return described
}

/**
 * Documents a positional argument (last in its pipe).
 *
 * @since 0.1.0
 * @category combinators
 */
export const arg = (doc: Doc) => <A>(self: Args.Args<A>): Args.Args<A> => {
  const described = Args.withDescription(self, doc.text)
  docs.set(described, doc)
  return described
}

/**
 * Documents a command: `config` is the record given to `Command.make`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const command = (config: Readonly<Record<string, unknown>>, doc: CommandDoc) =>
<Name extends string, R, E, A>(self: Command.Command<Name, R, E, A>): Command.Command<Name, R, E, A> => {
  const described = Command.withDescription(self, doc.summary)
  const name = HashSet.values(Command.getNames(self)).next().value as string
  commands.set(described, { name, config, doc })
  return described
}

// ---------------------------------------------------------------------------
// what the parser knows

interface Entry {
  /** `-j, --workers N`, `PLAN...` */
  readonly spec: string
  /** how the usage line shows it when it is required (`--format junit|json`), else undefined */
  readonly required?: string
  /** the sentences: text, default, repeatable, example */
  readonly lines: ReadonlyArray<string>
}

/** the flags, the value and whether it repeats, from @effect/cli's usage of one option or argument */
const usageOf = (usage: Usage.Usage): { names: ReadonlyArray<string>; value: Option.Option<string>; repeated: boolean; optional: boolean } => {
  switch (usage._tag) {
    case "Named":
      return { names: usage.names, value: usage.acceptedValues, repeated: false, optional: false }
    case "Optional":
      return { ...usageOf(usage.usage), optional: true }
    case "Repeated":
      return { ...usageOf(usage.usage), repeated: true }
    default:
      throw new Error(`grove help: an option of shape ${usage._tag} (one option per config key)`)
  }
}

/** `junit | json` as `junit|json` */
const valueName = (value: string) => value.replace(/ \| /g, "|")

/** kept on one line by `wrap` */
const unbreakable = (text: string) => text.replace(/ /g, "\u00a0")

const sentences = (doc: Doc, repeated: boolean): ReadonlyArray<string> => [
  doc.text + (doc.default === undefined ? "" : ` ${unbreakable(`Default: ${doc.default}.`)}`) + (repeated ? " Repeatable." : ""),
  ...(doc.example === undefined ? [] : [`Example: ${doc.example}`])
]

const docOf = (value: object, what: string): Doc => {
  const doc = docs.get(value)
  if (doc === undefined) throw new Error(`grove help: ${what} has no help (document it with Help.option / Help.arg)`)
  return doc
}

const entries = (config: Readonly<Record<string, unknown>>) => {
  const options: Array<Entry> = []
  const args: Array<Entry & { readonly usage: string }> = []
  for (const [key, value] of Object.entries(config)) {
    if (Options.isOptions(value)) {
      const u = usageOf(Options.getUsage(value))
      const doc = docOf(value, `option ${u.names.join(", ")}`)
      const spec = u.names.join(", ") + Option.match(u.value, { onNone: () => "", onSome: (v) => ` ${valueName(v)}` })
      const required = u.optional || u.repeated ? undefined : spec.replace(/^-\w, /, "")
      options.push({ spec, lines: sentences(doc, u.repeated), ...(required === undefined ? {} : { required }) })
    } else if (Args.isArgs(value)) {
      const u = usageOf(Args.getUsage(value))
      const name = (u.names[0] ?? key).replace(/^<|>$/g, "") + (u.repeated ? "..." : "")
      const doc = docOf(value, `argument ${name}`)
      const optional = u.optional || (u.repeated && Args.getMinSize(value) === 0)
      args.push({ spec: name, lines: sentences(doc, false), usage: optional ? `[${name}]` : name })
    }
  }
  return { options, args }
}

// ---------------------------------------------------------------------------
// layout

/**
 * The words of `text` in lines (not indented) that end by column `width` when each
 * starts at column `indent`. Words are split at spaces only: a no-break space
 * (U+00A0) holds words together (unless they do not fit on a line at all), and is
 * printed as a space.
 */
const wrap = (text: string, width: number, indent: number): Array<string> => {
  const lines: Array<string> = []
  let line: Array<string> = []
  let used = indent
  // words held together that cannot fit on a line of their own are split after all
  const words = text.split(/[ \t\n]+/).filter((w) => w !== "")
    .flatMap((w) => (indent + w.length > width ? w.split("\u00a0") : [w]))
  for (const word of words) {
    if (line.length > 0 && used + 1 + word.length > width) {
      lines.push(line.join(" "))
      line = []
      used = indent
    }
    used += (line.length > 0 ? 1 : 0) + word.length
    line.push(word)
  }
  if (line.length > 0) lines.push(line.join(" "))
  return lines.map((l) => l.replace(/\u00a0/g, " "))
}

const paragraph = (text: string, width: number, indent = 0) => wrap(text, width, indent).map((l) => " ".repeat(indent) + l)

/** git's layout: the spec at 2 columns, the text at `column`, or below it when the spec is too long */
const table = (rows: ReadonlyArray<Entry>, width: number, column: number): Array<string> =>
  rows.flatMap((row) => {
    const head = `  ${row.spec}`
    const body = row.lines.flatMap((text) => paragraph(text, width, column))
    return head.length + 2 <= column
      ? [head.padEnd(column) + (body[0] ?? "").trimStart(), ...body.slice(1)]
      : [head, ...body]
  })

/**
 * The width help is wrapped to: the terminal's on a TTY, 80 columns otherwise.
 *
 * @since 0.1.0
 */
export const width = (stream: NodeJS.WriteStream = process.stdout): number =>
  stream.isTTY === true && typeof stream.columns === "number" && stream.columns > 0 ? Math.max(40, stream.columns) : 80

const helpEntry: Entry = { spec: "-h, --help", lines: ["Show this help."] }

/**
 * A command's help; a command not documented with `command` is a defect.
 *
 * @since 0.1.0
 */
export const render = (program: string, cmd: object, columns: number): string => {
  const registered = commands.get(cmd)
  if (registered === undefined) throw new Error("grove help: a command has no help (document it with Help.command)")
  const { args, options } = entries(registered.config)
  const required = options.flatMap((o) => (o.required === undefined ? [] : [o.required]))
  const usage = [
    `usage: ${program} ${registered.name}`,
    ...required.map(unbreakable),
    ...(options.length > required.length ? ["[options]"] : []),
    ...args.map((a) => a.usage)
  ].join(" ")
  const lines = [
    ...paragraph(usage, columns, 0),
    "",
    ...paragraph(registered.doc.summary + (registered.doc.description === undefined ? "" : ` ${registered.doc.description}`), columns),
    ...(args.length === 0 ? [] : ["", "Arguments:", ...table(args, columns, 24)]),
    "",
    "Options:",
    ...table([...options, helpEntry], columns, 24),
    ...(registered.doc.examples === undefined || registered.doc.examples.length === 0
      ? []
      : ["", "Examples:", ...registered.doc.examples.flatMap((e) => paragraph(e, columns, 2))])
  ]
  return lines.join("\n") + "\n"
}

/**
 * `grove --help`: what grove is, its commands one a line with their sentence.
 *
 * @since 0.1.0
 */
export const renderRoot = (options: {
  readonly program: string
  readonly summary: string
  readonly version: string
  readonly commands: ReadonlyArray<object>
  readonly columns: number
}): string => {
  const rows = options.commands.flatMap((c) => {
    const registered = commands.get(c)
    if (registered === undefined) throw new Error("grove help: a command has no help (document it with Help.command)")
    return [{ spec: registered.name, lines: [registered.doc.summary] }]
  })
  const column = Math.max(...rows.map((r) => r.spec.length)) + 5
  const lines = [
    `usage: ${options.program} <command> [options]`,
    "",
    ...paragraph(options.summary, options.columns),
    "",
    "Commands:",
    ...table(rows, options.columns, column),
    "",
    "Options:",
    ...table([helpEntry, { spec: "--version", lines: [`Print grove's version (${options.version}).`] }], options.columns, column),
    "",
    ...paragraph(`Run '${options.program} <command> --help' for a command's options.`, options.columns)
  ]
  return lines.join("\n") + "\n"
}

/**
 * The name `command` registered `cmd` under.
 *
 * @since 0.1.0
 */
export const nameOf = (cmd: object): string | undefined => commands.get(cmd)?.name
