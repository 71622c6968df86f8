/**
 * `grove --help` and `grove CMD --help` read like git's (SPEC §6), checked on the
 * BUILT binary with stdout piped (so 80 columns; `npm run build` first when
 * running this file alone). What each command parses comes from @effect/cli's own
 * usage of the command tree, not from grove's help module, so an option added
 * without help, or shown twice, fails here.
 */
import * as Command from "@effect/cli/Command"
import * as CommandDescriptor from "@effect/cli/CommandDescriptor"
import type * as Usage from "@effect/cli/Usage"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import { root } from "../src/Cli.js"
import * as Cli from "./support/cli.js"

/** @effect/cli's descriptions of a value's type, and its other boilerplate */
const generic = [
  "A user-defined piece of text",
  "A true or false value",
  "An integer",
  "A floating point number",
  "One of the following",
  "A date without a time-zone",
  "An existing file",
  "This setting is optional",
  "This option may be repeated",
  "This argument may be repeated",
  "--completions",
  "--wizard",
  "--log-level"
]

/** the commands grove parses, by name */
const subcommands = Array.from(HashMap.entries(Command.getSubcommands(root)))

interface Parsed {
  /** the flags, e.g. ["-j", "--workers"] */
  readonly names: ReadonlyArray<string>
  readonly value: Option.Option<string>
}

/** the options in @effect/cli's usage of a command (not its own name, not positional arguments) */
const optionsOf = (usage: Usage.Usage): Array<Parsed> => {
  switch (usage._tag) {
    case "Named":
      return usage.names.every((n) => n.startsWith("-")) ? [{ names: usage.names, value: usage.acceptedValues }] : []
    case "Optional":
    case "Repeated":
      return optionsOf(usage.usage)
    case "Concat":
    case "Alternation":
      return [...optionsOf(usage.left), ...optionsOf(usage.right)]
    default:
      return []
  }
}

const help = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const o = yield* Cli.run(args, { cwd: Cli.projectRoot })
    const where = `grove ${args.join(" ")}:\n${o.stdout}\n--- stderr\n${o.stderr}`
    assert.strictEqual(o.code, 0, where)
    assert.strictEqual(o.stderr, "", where)
    return { text: o.stdout, lines: o.stdout.replace(/\n$/, "").split("\n"), where }
  })

/** what a help text must never do: lines over 80 columns, @effect/cli's generic words, escape codes */
const assertReadable = (h: { readonly text: string; readonly lines: ReadonlyArray<string>; readonly where: string }) => {
  for (const line of h.lines) assert.isAtMost(line.length, 80, `a line over 80 columns: ${JSON.stringify(line)}\n${h.where}`)
  for (const phrase of generic) assert.notInclude(h.text, phrase, h.where)
  assert.notInclude(h.text, "\u001b", h.where)
}

/** the lines of a section ("Options:") up to the next blank line */
const section = (lines: ReadonlyArray<string>, title: string): ReadonlyArray<string> => {
  const start = lines.indexOf(title)
  if (start === -1) return []
  const end = lines.indexOf("", start)
  return lines.slice(start + 1, end === -1 ? undefined : end)
}

/** a section's entries: a spec at 2 columns, its text after 2+ spaces or on the lines below at 24 */
const entries = (lines: ReadonlyArray<string>) => {
  const found: Array<{ spec: string; text: string }> = []
  for (const line of lines) {
    const head = /^ {2}(\S(?:\S| (?! ))*)(?: {2,}(.*))?$/.exec(line)
    if (head !== null) found.push({ spec: head[1]!, text: head[2] ?? "" })
    else if (/^ {3,}\S/.test(line) && found.length > 0) found[found.length - 1]!.text = (found[found.length - 1]!.text + " " + line.trim()).trim()
    else assert.fail(`not an entry: ${JSON.stringify(line)}`)
  }
  return found
}

describe("grove --help (built binary, piped)", () => {
  it.live("lists every command on one line of its own with one sentence", () =>
    Effect.gen(function*() {
      for (const args of [["--help"], ["-h"], []]) {
        const h = yield* help(args)
        assertReadable(h)
        const commands = section(h.lines, "Commands:")
        assert.strictEqual(commands.length, subcommands.length, `one line per command:\n${h.where}`)
        for (const [name] of subcommands) {
          const lines = commands.filter((l) => l.startsWith(`  ${name} `))
          assert.strictEqual(lines.length, 1, `${name} on one line:\n${h.where}`)
          assert.match(lines[0]!, new RegExp(`^  ${name} {2,}[A-Z][^.]*[^ .]\\.$`), `${name}: one sentence:\n${h.where}`)
        }
        assert.include(h.text, "--help")
        assert.include(h.text, "--version")
      }
      const unknown = yield* Cli.run(["bogus", "--help"], { cwd: Cli.projectRoot })
      assert.strictEqual(unknown.code, 2, unknown.stderr)
      assert.match(unknown.stderr, /unknown command "bogus": use one of run, /)
    }), 60_000)

  for (const [name, descriptor] of subcommands) {
    it.live(`grove ${name} --help: every option once, with its value's name and a sentence`, () =>
      Effect.gen(function*() {
        const parsed = optionsOf(CommandDescriptor.getUsage(descriptor))
        assert.isAbove(parsed.length, 0)
        for (const args of [[name, "--help"], [name, "-h"], ["--help", name]]) {
          const h = yield* help(args)
          assertReadable(h)
          assert.match(h.lines[0]!, new RegExp(`^usage: grove ${name}\\b`), h.where)
          const options = entries(section(h.lines, "Options:"))
          const shown = options.map((o) => o.spec.split(" ")[0]!.replace(/,$/, ""))
          for (const option of parsed) {
            const long = option.names.find((n) => n.startsWith("--"))!
            const matching = options.filter((o) => o.spec.split(/,? /).includes(long))
            assert.strictEqual(matching.length, 1, `${long} shown once in Options:\n${h.where}`)
            const entry = matching[0]!
            const words = entry.spec.split(/,? /)
            for (const n of option.names) assert.include(words, n, `${long}: ${n} in ${entry.spec}`)
            const value = words.filter((w) => !w.startsWith("-"))
            if (Option.isSome(option.value)) {
              assert.strictEqual(value.length, 1, `${long} names its value: ${entry.spec}`)
              assert.match(value[0]!, /^(?:[A-Z][A-Z_]*(?::[A-Z][A-Z_]*)?|[a-z]+(?:\|[a-z]+)+)$/, `${long}: value name ${value[0]}`)
            } else {
              assert.strictEqual(value.length, 0, `${long} takes no value: ${entry.spec}`)
            }
            assert.match(entry.text, /^[A-Z][^]*\.(?: |$)/, `${long}: a sentence, got ${JSON.stringify(entry.text)}`)
          }
          // nothing but what grove parses, and --help
          assert.sameMembers(shown, [...parsed.map((o) => o.names[0]!), "-h"], h.where)
        }
      }), 60_000)
  }
})
