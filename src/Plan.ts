/**
 * Markdown plans → `TestRequest`s, and the other sources of tests (`--each`,
 * `--ref` repeated), with selection by `--tag` and `--filter` (SPEC §2, §6).
 *
 * Every problem is an `Issue` naming `file:line` (or the flag), and all of them
 * are reported at once.
 *
 * Decisions the SPEC leaves open, made here:
 * - `tags`, `secretEnv` and `resources` take a list, or a single string meaning a
 *   list of one (`tags: smoke`). Duplicates in them are dropped.
 * - String-valued keys (`name`, `id`, `ref`, `cwd`, list items, `env` values) take
 *   any plain scalar verbatim as written: `ref: 0123456` is the string
 *   `"0123456"`, `env: { V: 1.10 }` is `"1.10"`, `true` is `"true"`. A key with no
 *   value (`ref:`) is an issue, not a default.
 * - The info string's first word is compared case-insensitively (`Bash` is bash).
 *   An empty ```sh block is an issue.
 * - `cwd` is normalised (`./a/b/` → `a/b`); `cwd: .` means the worktree root.
 * - A plan given twice to `load` (same resolved path) is read once.
 * - A plan outside the repository gets its file name without extension as default id.
 * - `atRefs`: a test whose front matter sets `ref` keeps it (front matter wins)
 *   and is not multiplied. One `--ref` sets the ref of the others and keeps their
 *   ids; two or more make one test per ref, id `<id>@<ref>`, name `<name> @ <ref>`.
 * - `select`: excludes (`--tag '!slow'`) always win; includes apply only when at
 *   least one is given, and then a test needs one of them; `--filter` must match
 *   as well. See {@link select}.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Mdast from "mdast"
import { fromMarkdown } from "mdast-util-from-markdown"
import { frontmatterFromMarkdown } from "mdast-util-frontmatter"
import { frontmatter } from "micromark-extension-frontmatter"
import { createHash } from "node:crypto"
import * as NodePath from "node:path"
import picomatch from "picomatch"
import * as Yaml from "yaml"
import { parseDuration } from "./Config.js"
import { staysInside, Step, TestId, TestRequest } from "./Domain.js"
import { Git, type RepoInfo } from "./Git.js"
import { type GitError, InvalidInput, Issue } from "./GroveError.js"

/**
 * A parsed plan: its test, the file it came from (as given), and the lines of the
 * front matter keys that later checks (`checkRefs`, duplicate ids) point at.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadedPlan {
  readonly request: TestRequest
  readonly file: string
  readonly lines: {
    readonly id?: number
    readonly ref?: number
    readonly cwd?: number
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ParseOptions {
  /** the file as shown in issues (`file:line`) */
  readonly file: string
  /** the default id: the plan path relative to the repository root, without extension */
  readonly id: string
  /** the test's `source`; default: `file` */
  readonly source?: string
}

/**
 * The front matter keys of a plan (SPEC §2).
 *
 * @since 0.1.0
 * @category models
 */
export const knownKeys = [
  "name",
  "id",
  "timeout",
  "retries",
  "ref",
  "priority",
  "tags",
  "env",
  "secretEnv",
  "cwd",
  "resources"
] as const

type Key = typeof knownKeys[number]

/** names other tools use for the same thing, too far from ours for the typo check */
const aliases: Record<string, Key> = {
  retry: "retries",
  attempts: "retries",
  title: "name",
  environment: "env",
  secrets: "secretEnv",
  workdir: "cwd",
  dir: "cwd",
  workingdirectory: "cwd",
  directory: "cwd",
  branch: "ref",
  commit: "ref",
  sha: "ref",
  labels: "tags",
  locks: "resources"
}

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/
const controlChars = /[\u0000-\u001f\u007f]/

type Issues = Array<Issue>
type NonEmptyIssues = Arr.NonEmptyReadonlyArray<Issue>

const fail = (issues: Issues): InvalidInput => new InvalidInput({ issues: issues as unknown as [Issue, ...Array<Issue>] })

// ---------------------------------------------------------------------------
// typo suggestions
// ---------------------------------------------------------------------------

/** optimal string alignment distance: Levenshtein plus adjacent transpositions */
const distance = (a: string, b: string): number => {
  const d: Array<Array<number>> = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

const fold = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, "")

/**
 * The known key a mistyped key most likely meant, if any.
 *
 * @since 0.1.0
 * @category utils
 */
export const suggestKey = (key: string): Key | undefined => {
  const k = fold(key)
  const alias = aliases[k]
  if (alias !== undefined) return alias
  let best: Key | undefined
  let bestDistance = Infinity
  for (const known of knownKeys) {
    const dist = distance(k, fold(known))
    if (dist < bestDistance) {
      best = known
      bestDistance = dist
    }
  }
  return bestDistance <= Math.max(1, Math.floor(k.length / 3)) ? best : undefined
}

// ---------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------

const describe = (node: unknown): string => {
  if (Yaml.isSeq(node)) return "a list"
  if (Yaml.isMap(node)) return "a mapping"
  if (Yaml.isScalar(node)) {
    return node.value === null ? "nothing" : typeof node.value === "string" ? JSON.stringify(node.value) : String(node.source ?? node.value)
  }
  return "an unsupported value"
}

/** the text of a scalar as the user wrote it: strings as they are, other plain scalars verbatim */
const scalarText = (node: Yaml.Scalar): string | undefined => {
  if (typeof node.value === "string") return node.value
  if (typeof node.value === "number" || typeof node.value === "boolean" || typeof node.value === "bigint") {
    return node.type === "PLAIN" && typeof node.source === "string" ? node.source : String(node.value)
  }
  return undefined
}

const headingText = (node: Mdast.Nodes): string => {
  if ("value" in node && typeof node.value === "string" && node.type !== "html") return node.value
  if ("children" in node) return (node.children as Array<Mdast.Nodes>).map(headingText).join("")
  return ""
}

const fileStem = (file: string): string => {
  const base = NodePath.basename(file)
  const ext = NodePath.extname(base)
  return ext === "" || ext === base ? base : base.slice(0, -ext.length)
}

const stepShell = (lang: string | null | undefined): "sh" | "bash" | undefined => {
  switch (lang?.toLowerCase()) {
    case "sh":
      return "sh"
    case "bash":
    case "shell":
      return "bash"
    default:
      return undefined
  }
}

const idProblem = (id: string): string | undefined =>
  id.trim() === ""
    ? "must not be empty"
    : id.trim() !== id
    ? "must not start or end with whitespace"
    : controlChars.test(id)
    ? "must not contain control characters (newlines, tabs …)"
    : undefined

type Props = {
  -readonly [K in keyof ConstructorParameters<typeof TestRequest>[0]]?: ConstructorParameters<typeof TestRequest>[0][K]
}

/**
 * Parses one plan. Front matter keys and steps follow SPEC §2; every problem is an
 * `Issue` at `file:line`, all of them at once, in line order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parse = (text: string, options: ParseOptions): Either.Either<LoadedPlan, NonEmptyIssues> => {
  const { file } = options
  const issues: Issues = []
  const at = (line: number) => `${file}:${line}`
  const issue = (line: number, message: string) => issues.push(new Issue({ where: at(line), message }))
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text

  const tree = fromMarkdown(body, {
    extensions: [frontmatter(["yaml"])],
    mdastExtensions: [frontmatterFromMarkdown(["yaml"])]
  })

  const props: Props = {}
  const lines: { id?: number; ref?: number; cwd?: number } = {}

  const first = tree.children[0]
  if (first !== undefined && first.type === "yaml") {
    readFrontMatter(first, props, lines, issue)
  } else if (/^---[ \t]*\r?$/.test(body.split("\n", 1)[0] ?? "")) {
    issue(1, "front matter opened with --- is never closed: end it with a line of just ---")
  }

  // steps: every fenced block whose info string's first word is sh, bash or shell
  const steps: Array<Step> = []
  let heading: string | undefined
  const visit = (node: Mdast.Nodes): void => {
    if (node.type === "heading" && heading === undefined) {
      const t = headingText(node).trim()
      if (t !== "") heading = t
    }
    if (node.type === "code") {
      const shell = stepShell(node.lang)
      const line = node.position?.start.line ?? 1
      if (shell !== undefined) {
        if (node.value.trim() === "") {
          issue(line, `empty \`\`\`${node.lang} block: put the command(s) to run in it, or remove it`)
        } else {
          steps.push(new Step({ shell, script: node.value, line }))
        }
      }
    }
    if ("children" in node) for (const child of node.children as Array<Mdast.Nodes>) visit(child)
  }
  visit(tree)

  if (steps.length === 0 && !issues.some((i) => i.message.startsWith("empty ```"))) {
    issue(1, "no ```sh / ```bash block: add one, other blocks are documentation")
  }

  const id = props.id ?? options.id
  if (props.id === undefined) {
    const problem = idProblem(id)
    if (problem !== undefined) issue(1, `the default id ${JSON.stringify(id)} (from the file's path) ${problem}: set id: in the front matter`)
  }

  if (issues.length > 0) {
    const sorted = issues
      .map((i, n) => ({ i, n, line: Number(i.where.slice(file.length + 1)) }))
      .sort((a, b) => a.line - b.line || a.n - b.n)
      .map((x) => x.i)
    return Either.left(sorted as unknown as NonEmptyIssues)
  }

  const request = new TestRequest({
    ...props,
    id: TestId.make(id),
    name: props.name ?? heading ?? fileStem(file),
    source: options.source ?? file,
    steps: steps as unknown as [Step, ...Array<Step>]
  })
  return Either.right({ request, file, lines })
}

const readFrontMatter = (
  node: Mdast.Yaml,
  props: Props,
  lines: { id?: number; ref?: number; cwd?: number },
  issue: (line: number, message: string) => void
): void => {
  // the YAML text starts on the line after the opening ---
  const offset = node.position?.start.line ?? 1
  const counter = new Yaml.LineCounter()
  const doc = Yaml.parseDocument(node.value, { lineCounter: counter, prettyErrors: false, uniqueKeys: true })
  const lineAt = (pos: number | undefined) => counter.linePos(pos ?? 0).line + offset
  const lineOf = (n: unknown, fallback: number): number =>
    Yaml.isNode(n) && n.range ? lineAt(n.range[0]) : fallback

  if (doc.errors.length > 0) {
    for (const e of doc.errors) issue(lineAt(e.pos[0]), `front matter is not valid YAML: ${e.message}; fix the syntax`)
    return
  }
  const root = doc.contents
  if (root === null || (Yaml.isScalar(root) && root.value === null)) return
  if (!Yaml.isMap(root)) {
    issue(lineOf(root, offset + 1), `front matter must be a mapping of keys (name: …, timeout: …), got ${describe(root)}`)
    return
  }

  const resolve = (n: unknown): unknown => (Yaml.isAlias(n) ? n.resolve(doc) : n)

  for (const pair of root.items) {
    const keyNode = resolve(pair.key)
    const keyLine = lineOf(keyNode, offset + 1)
    if (!Yaml.isScalar(keyNode) || typeof keyNode.value !== "string") {
      issue(keyLine, `front matter keys are plain names, got ${describe(keyNode)}; known keys: ${knownKeys.join(", ")}`)
      continue
    }
    const key = keyNode.value
    const value = resolve(pair.value)
    const line = lineOf(value, keyLine)
    if (!(knownKeys as ReadonlyArray<string>).includes(key)) {
      const guess = suggestKey(key)
      issue(
        keyLine,
        guess !== undefined
          ? `unknown key ${JSON.stringify(key)}: did you mean ${guess}?`
          : `unknown key ${JSON.stringify(key)}; known keys: ${knownKeys.join(", ")}`
      )
      continue
    }
    if (value === null || value === undefined || (Yaml.isScalar(value) && value.value === null)) {
      issue(keyLine, `${key} has no value: give one, or remove the key to use the default`)
      continue
    }
    const field = key as Key

    /** a string-valued node, or an issue */
    const text = (n: unknown, what: string, nLine: number): string | undefined => {
      const r = resolve(n)
      const s = Yaml.isScalar(r) ? scalarText(r) : undefined
      if (s === undefined) issue(nLine, `${what} must be a string, got ${describe(r)}`)
      return s
    }
    /** a list of strings, or one string meaning a list of one */
    const list = (check: (s: string) => string | undefined): Array<string> | undefined => {
      const items: Array<[unknown, number]> = Yaml.isSeq(value)
        ? value.items.map((item) => [item, lineOf(resolve(item), line)])
        : Yaml.isScalar(value)
        ? [[value, line]]
        : []
      if (items.length === 0 && !Yaml.isSeq(value)) {
        issue(line, `${field} must be a list of strings such as [a, b], got ${describe(value)}`)
        return undefined
      }
      const out: Array<string> = []
      let ok = true
      for (const [item, itemLine] of items) {
        const s = text(item, `each item of ${field}`, itemLine)
        if (s === undefined) {
          ok = false
          continue
        }
        const problem = check(s)
        if (problem !== undefined) {
          issue(itemLine, `${field}: ${JSON.stringify(s)} ${problem}`)
          ok = false
        } else if (!out.includes(s)) {
          out.push(s)
        }
      }
      return ok ? out : undefined
    }
    const integer = (what: string, min: number | undefined): number | undefined => {
      const v = Yaml.isScalar(value) ? value.value : undefined
      if (typeof v !== "number" || !Number.isSafeInteger(v) || (min !== undefined && v < min)) {
        issue(line, `${field} must be ${what}, got ${describe(value)}`)
        return undefined
      }
      return v
    }

    switch (field) {
      case "name": {
        const s = text(value, "name", line)
        if (s === undefined) break
        if (s.trim() === "") issue(line, "name must not be empty: give a name, or remove the key to use the first heading")
        else props.name = s.trim()
        break
      }
      case "id": {
        const s = text(value, "id", line)
        if (s === undefined) break
        const problem = idProblem(s)
        if (problem !== undefined) issue(line, `id ${problem}, got ${JSON.stringify(s)}`)
        else {
          props.id = TestId.make(s)
          lines.id = keyLine
        }
        break
      }
      case "timeout": {
        const v = Yaml.isScalar(value) ? value.value : undefined
        if (typeof v !== "string" && typeof v !== "number") {
          issue(line, `timeout must be a duration such as 90s, 5m or 1h30m (a bare number is seconds), got ${describe(value)}`)
          break
        }
        Either.match(parseDuration(v), {
          onLeft: (message) => issue(line, `timeout: ${message}`),
          onRight: (d) => (props.timeout = d)
        })
        break
      }
      case "retries": {
        const n = integer("an integer >= 0 (extra attempts after a non-passing one)", 0)
        if (n !== undefined) props.retries = n
        break
      }
      case "priority": {
        const n = integer("an integer (higher runs earlier)", undefined)
        if (n !== undefined) props.priority = n
        break
      }
      case "ref": {
        const s = text(value, "ref", line)
        if (s === undefined) break
        if (s.trim() === "") issue(line, "ref must not be empty: name a branch, tag or commit, or remove the key to use the session's base ref")
        else {
          props.ref = s.trim()
          lines.ref = keyLine
        }
        break
      }
      case "tags": {
        const tags = list((s) =>
          s.trim() === ""
            ? "is empty"
            : s.startsWith("!")
            ? "starts with !, which --tag uses for exclusion: rename the tag"
            : undefined
        )
        if (tags !== undefined) props.tags = tags
        break
      }
      case "resources": {
        const rs = list((s) => (s.trim() === "" ? "is empty" : s.trim() !== s ? "must not start or end with whitespace" : undefined))
        if (rs !== undefined) props.resources = rs
        break
      }
      case "secretEnv": {
        const names = list((s) =>
          envName.test(s) ? undefined : "is not a valid environment variable name (letters, digits and _, not starting with a digit)"
        )
        if (names !== undefined) props.secretEnv = names
        break
      }
      case "env": {
        if (!Yaml.isMap(value)) {
          issue(line, `env must be a mapping of NAME: value, such as { NODE_ENV: test }, got ${describe(value)}`)
          break
        }
        const env: Record<string, string> = {}
        let ok = true
        for (const entry of value.items) {
          const k = resolve(entry.key)
          const kLine = lineOf(k, line)
          const name = Yaml.isScalar(k) ? scalarText(k) : undefined
          if (name === undefined || !envName.test(name)) {
            issue(
              kLine,
              `env: ${name === undefined ? describe(k) : JSON.stringify(name)} is not a valid environment variable name (letters, digits and _, not starting with a digit)`
            )
            ok = false
            continue
          }
          const v = resolve(entry.value)
          if (v === null || v === undefined || (Yaml.isScalar(v) && v.value === null)) {
            issue(kLine, `env.${name} has no value: write ${name}: "" for an empty one`)
            ok = false
            continue
          }
          const s = text(v, `env.${name}`, lineOf(v, kLine))
          if (s === undefined) ok = false
          else env[name] = s
        }
        if (ok) props.env = env
        break
      }
      case "cwd": {
        const s = text(value, "cwd", line)
        if (s === undefined) break
        if (s.trim() === "") {
          issue(line, "cwd must not be empty: give a folder relative to the repository root, or remove the key")
        } else if (NodePath.isAbsolute(s) || !staysInside(s)) {
          issue(
            line,
            `cwd ${JSON.stringify(s)} ${NodePath.isAbsolute(s) ? "is an absolute path" : "leaves the worktree"}: give a folder relative to the repository root, inside it`
          )
        } else {
          const normal = NodePath.posix.normalize(s.replaceAll("\\", "/")).replace(/\/+$/, "")
          if (normal !== "." && normal !== "") {
            props.cwd = normal
            lines.cwd = keyLine
          }
        }
        break
      }
    }
  }
}

// ---------------------------------------------------------------------------
// ids, slugs, duplicates
// ---------------------------------------------------------------------------

const slugMaxBytes = 120

/**
 * A filesystem-safe name for a test id: letters and digits of any script, `.`,
 * `_` and `-` stay; every other character becomes `_`; a leading `.` or `-`
 * becomes `_`; at most 120 bytes (longer ids are cut and get `~` + 8 hex digits of
 * the id's SHA-256, so a cut slug never equals an uncut one). Different ids may
 * share a slug (`a/b`, `a_b`): `load` and `checkIds` refuse that.
 *
 * @since 0.1.0
 * @category utils
 */
export const slug = (id: string): string => {
  let s = id.normalize("NFC").replace(/[^\p{L}\p{N}._-]/gu, "_").replace(/^[.-]/, "_")
  if (s === "") s = "_"
  if (Buffer.byteLength(s) <= slugMaxBytes) return s
  const hash = createHash("sha256").update(id).digest("hex").slice(0, 8)
  let cut = ""
  for (const ch of s) {
    if (Buffer.byteLength(cut + ch) > slugMaxBytes - 9) break
    cut += ch
  }
  return `${cut}~${hash}`
}

const duplicateIssues = (entries: ReadonlyArray<{ readonly id: string; readonly where: string }>): Issues => {
  const issues: Issues = []
  const byId = new Map<string, string>()
  const bySlug = new Map<string, { id: string; where: string }>()
  for (const { id, where } of entries) {
    const first = byId.get(id)
    if (first !== undefined) {
      issues.push(new Issue({ where, message: `duplicate id ${JSON.stringify(id)}, also the id of ${first}: give one of them its own id` }))
      continue
    }
    byId.set(id, where)
    const s = slug(id)
    const other = bySlug.get(s)
    if (other !== undefined) {
      issues.push(
        new Issue({
          where,
          message: `id ${JSON.stringify(id)} and id ${JSON.stringify(other.id)} (${other.where}) both become the file name ${JSON.stringify(s)}: change one of them`
        })
      )
      continue
    }
    bySlug.set(s, { id, where })
  }
  return issues
}

const requestWhere = (r: TestRequest): string => r.source

/**
 * Refuses duplicate ids, also ids that share a `slug`, in any list of requests
 * (plans, `--each`, `atRefs` output, a library user's own). Issues name each
 * request's `source`.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkIds = (
  requests: ReadonlyArray<TestRequest>
): Either.Either<ReadonlyArray<TestRequest>, InvalidInput> => {
  const issues = duplicateIssues(requests.map((r) => ({ id: r.id, where: requestWhere(r) })))
  return issues.length === 0 ? Either.right(requests) : Either.left(fail(issues))
}

// ---------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------

const withoutExtension = (p: string): string => {
  const ext = NodePath.posix.extname(p)
  return ext === "" || NodePath.posix.basename(p) === ext ? p : p.slice(0, -ext.length)
}

/**
 * Reads and parses plan files (paths relative to `cwd`, or absolute) and refuses
 * duplicate ids, also after slugging. Default id: the path relative to `repoRoot`
 * without extension (`docs/plans/checkout`); `source`: the path relative to
 * `repoRoot`. Fails with every issue of every file at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (
  files: ReadonlyArray<string>,
  options: { readonly repoRoot: string; readonly cwd: string }
): Effect.Effect<ReadonlyArray<LoadedPlan>, InvalidInput, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const real = (p: string) => fs.realPath(p).pipe(Effect.orElseSucceed(() => p))
    const repoRoot = yield* real(path.resolve(options.cwd, options.repoRoot))

    const seen = new Set<string>()
    const unique: Array<{ file: string; abs: string }> = []
    for (const file of files) {
      const abs = path.resolve(options.cwd, file)
      if (seen.has(abs)) continue
      seen.add(abs)
      unique.push({ file, abs })
    }

    const results = yield* Effect.forEach(unique, ({ abs, file }) =>
      Effect.gen(function*() {
        const info = yield* fs.stat(abs).pipe(Effect.either)
        if (Either.isLeft(info)) {
          const e = info.left
          const message = e._tag === "SystemError" && e.reason === "NotFound"
            ? `no such plan file (looked for ${abs}): check the path`
            : `cannot read the plan file: ${e.message}`
          return Either.left<Issues>([new Issue({ where: file, message })])
        }
        if (info.right.type === "Directory") {
          return Either.left<Issues>([
            new Issue({ where: file, message: `is a folder, not a plan: pass the plan files in it, e.g. ${path.join(file, "*.md")}` })
          ])
        }
        const text = yield* fs.readFileString(abs).pipe(Effect.either)
        if (Either.isLeft(text)) {
          return Either.left<Issues>([new Issue({ where: file, message: `cannot read the plan file: ${text.left.message}` })])
        }
        const dir = yield* real(path.dirname(abs))
        const rel = path.relative(repoRoot, path.join(dir, path.basename(abs))).split(path.sep).join("/")
        const inside = rel !== "" && staysInside(rel)
        const id = inside ? withoutExtension(rel) : fileStem(abs)
        return Either.mapLeft(
          parse(text.right, { file, id, source: inside ? rel : abs }),
          (issues): Issues => [...issues]
        )
      }), { concurrency: 8 })

    const issues: Issues = []
    const plans: Array<LoadedPlan> = []
    for (const r of results) {
      if (Either.isLeft(r)) issues.push(...r.left)
      else plans.push(r.right)
    }
    issues.push(...duplicateIssues(plans.map((p) => ({ id: p.request.id, where: `${p.file}:${p.lines.id ?? 1}` }))))
    if (issues.length > 0) return yield* Effect.fail(fail(issues))
    return plans
  })

// ---------------------------------------------------------------------------
// refs
// ---------------------------------------------------------------------------

const isLoadedPlan = (p: LoadedPlan | TestRequest): p is LoadedPlan => !(p instanceof TestRequest)

/**
 * Checks, with the `Git` service, that every test's `ref` resolves (issue at the
 * plan's `ref:` line) and that its `cwd` exists at that ref (issue at the `cwd:`
 * line); tests without a ref use `baseRef`. A bare `TestRequest` (e.g. from
 * `--each`) has no lines: its ref issue names `--ref`, its cwd issue its source.
 * Returns the commit each test runs at, by id. Every issue at once; errors of
 * git itself while looking up a path are not input problems and fail as GitError.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkRefs = (
  plans: ReadonlyArray<LoadedPlan | TestRequest>,
  options: {
    readonly repo: RepoInfo
    readonly baseRef: string
    /** where an unresolvable base ref is reported; default `--ref` */
    readonly baseRefWhere?: string
  }
): Effect.Effect<ReadonlyMap<TestId, string>, InvalidInput | GitError, Git> =>
  Effect.gen(function*() {
    const git = yield* Git
    const entries = plans.map((p) => isLoadedPlan(p) ? p : { request: p, file: undefined, lines: {} as LoadedPlan["lines"] })

    const refs = Arr.dedupe([options.baseRef, ...entries.flatMap((e) => e.request.ref === undefined ? [] : [e.request.ref])])
    const resolved = new Map(
      yield* Effect.forEach(refs, (ref) => git.resolveRef(options.repo, ref).pipe(Effect.either, Effect.map((r) => [ref, r] as const)), {
        concurrency: 4
      })
    )

    const issues: Issues = []
    const base = resolved.get(options.baseRef)!
    if (Either.isLeft(base)) issues.push(new Issue({ where: options.baseRefWhere ?? "--ref", message: base.left.message }))

    // one check per test, in the tests' order: a ref that does not resolve, or a cwd to look up
    const shas = new Map<TestId, string>()
    const checks: Array<Issue | { sha: string; cwd: string; where: string; refLabel: string }> = []
    for (const e of entries) {
      const { request } = e
      const own = request.ref !== undefined
      const ref = request.ref ?? options.baseRef
      const r = resolved.get(ref)!
      if (Either.isLeft(r)) {
        if (own) checks.push(new Issue({ where: e.file !== undefined ? `${e.file}:${e.lines.ref ?? 1}` : "--ref", message: r.left.message }))
        continue
      }
      shas.set(request.id, r.right)
      if (request.cwd !== undefined) {
        checks.push({
          sha: r.right,
          cwd: request.cwd,
          where: e.file !== undefined ? `${e.file}:${e.lines.cwd ?? 1}` : request.source,
          refLabel: `${own ? "ref" : "the base ref"} ${ref} (${r.right.slice(0, 7)})`
        })
      }
    }

    const key = (c: { sha: string; cwd: string }) => `${c.sha}\u0000${c.cwd}`
    const lookups = Arr.dedupeWith(
      checks.flatMap((c) => (c instanceof Issue ? [] : [c])),
      (a, b) => key(a) === key(b)
    )
    const exists = new Map(
      yield* Effect.forEach(lookups, (c) =>
        git.pathExistsAt(options.repo, c.sha, c.cwd).pipe(Effect.map((b) => [key(c), b] as const)), { concurrency: 4 })
    )
    for (const c of checks) {
      if (c instanceof Issue) issues.push(c)
      else if (exists.get(key(c)) !== true) {
        issues.push(
          new Issue({
            where: c.where,
            message: `cwd ${JSON.stringify(c.cwd)} does not exist at ${c.refLabel}: fix the path (relative to the repository root) or commit the folder`
          })
        )
      }
    }
    if (issues.length > 0) return yield* Effect.fail(fail(issues))
    return shas
  })

// ---------------------------------------------------------------------------
// --each, --ref, selection
// ---------------------------------------------------------------------------

/**
 * Quotes a word for `sh`/`bash`: left as it is when it only has characters the
 * shell does not interpret, else in single quotes (`'` written as `'\''`).
 *
 * @since 0.1.0
 * @category utils
 */
export const shellQuote = (word: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`

/**
 * `grove run --each CMD ARG...`: one test per ARG, like GNU parallel. Every `{}`
 * in CMD becomes the shell-quoted ARG; without `{}` the quoted ARG is appended
 * after a space. id and name = the ARG, source `--each`, one step run by `shell`
 * (default bash). An absolute ARG, an empty one, and duplicate ARGs (also after
 * slugging) are issues at `--each`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEach = (
  cmd: string,
  args: ReadonlyArray<string>,
  options: { readonly shell?: "bash" | "sh" } = {}
): Either.Either<ReadonlyArray<TestRequest>, InvalidInput> => {
  const issues: Issues = []
  const where = "--each"
  if (cmd.trim() === "") issues.push(new Issue({ where, message: "CMD is empty: give the command to run for each ARG, e.g. --each 'npx vitest run {}' test/*.ts" }))
  const ok: Array<string> = []
  for (const arg of args) {
    if (NodePath.isAbsolute(arg)) {
      issues.push(
        new Issue({
          where,
          message: `ARG ${JSON.stringify(arg)} is an absolute path, which would reach into the main checkout instead of the test's worktree; give paths relative to the repository root`
        })
      )
    } else if (idProblem(arg) !== undefined) {
      issues.push(new Issue({ where, message: `ARG ${JSON.stringify(arg)} ${idProblem(arg)}: each ARG becomes a test id` }))
    } else {
      ok.push(arg)
    }
  }
  issues.push(...duplicateIssues(ok.map((id) => ({ id, where }))))
  if (issues.length > 0) return Either.left(fail(issues))
  const shell = options.shell ?? "bash"
  return Either.right(ok.map((arg) => {
    const quoted = shellQuote(arg)
    const script = cmd.includes("{}") ? cmd.replaceAll("{}", quoted) : `${cmd} ${quoted}`
    return new TestRequest({ id: TestId.make(arg), name: arg, source: "--each", steps: [new Step({ shell, script })] })
  }))
}

/**
 * `--ref` given (repeatable). A test whose own `ref` is set (front matter wins)
 * is kept as it is. With one ref, the others get it as `ref`, ids unchanged.
 * With two or more (duplicates dropped), each of the others runs once per ref:
 * id `<id>@<ref>`, name `<name> @ <ref>`, `ref` set. No refs: unchanged. An
 * empty ref and ids made twice are issues.
 *
 * @since 0.1.0
 * @category constructors
 */
export const atRefs = (
  requests: ReadonlyArray<TestRequest>,
  refs: ReadonlyArray<string>
): Either.Either<ReadonlyArray<TestRequest>, InvalidInput> => {
  if (refs.length === 0) return Either.right(requests)
  const bad = refs.filter((r) => r.trim() === "" || r.trim() !== r)
  if (bad.length > 0) {
    return Either.left(fail(bad.map((r) => new Issue({ where: "--ref", message: `${JSON.stringify(r)} is not a ref: name a branch, tag or commit` }))))
  }
  const unique = Arr.dedupe(refs)
  const out = requests.flatMap((r) =>
    r.ref !== undefined
      ? [r]
      : unique.length === 1
      ? [new TestRequest({ ...r, ref: unique[0]! })]
      : unique.map((ref) => new TestRequest({ ...r, id: TestId.make(`${r.id}@${ref}`), name: `${r.name} @ ${ref}`, ref }))
  )
  return checkIds(out)
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Selection {
  /** `--tag T` (include) and `--tag '!T'` (exclude), repeatable */
  readonly tags?: ReadonlyArray<string>
  /** `--filter GLOB` */
  readonly filter?: string | undefined
}

/**
 * Keeps the tests that `--tag` and `--filter` select, in their order. A test is
 * kept when all of these hold:
 * 1. it has none of the excluded tags (`--tag '!slow'`): excludes always win;
 * 2. when at least one include (`--tag smoke`) is given, it has at least one of
 *    them; with no include, every test passes this step;
 * 3. when `--filter` is given, the glob (picomatch, dotfiles included) matches its
 *    id or its name, or, for a pattern without `/`, the last `/`-segment of its id
 *    (`--filter 'check*'` selects `docs/plans/checkout`).
 * An empty tag, a bare `!`, or an empty filter is an issue at the flag.
 *
 * @since 0.1.0
 * @category combinators
 */
export const select = (
  requests: ReadonlyArray<TestRequest>,
  selection: Selection
): Either.Either<ReadonlyArray<TestRequest>, InvalidInput> => {
  const issues: Issues = []
  const include: Array<string> = []
  const exclude: Array<string> = []
  for (const t of selection.tags ?? []) {
    const name = t.startsWith("!") ? t.slice(1) : t
    if (name.trim() === "") issues.push(new Issue({ where: "--tag", message: `${JSON.stringify(t)} names no tag: use --tag NAME to include, --tag '!NAME' to exclude` }))
    else (t.startsWith("!") ? exclude : include).push(name)
  }
  let match: ((s: string) => boolean) | undefined
  const pattern = selection.filter
  if (pattern !== undefined) {
    if (pattern.trim() === "") issues.push(new Issue({ where: "--filter", message: "is empty: give a glob such as 'api/*' or '*checkout*'" }))
    else {
      const compiled = Either.try({ try: () => picomatch(pattern, { dot: true }), catch: (e) => String(e) })
      if (Either.isLeft(compiled)) issues.push(new Issue({ where: "--filter", message: `${JSON.stringify(pattern)} is not a valid glob: ${compiled.left}` }))
      else match = compiled.right
    }
  }
  if (issues.length > 0) return Either.left(fail(issues))
  const matches = (r: TestRequest): boolean => {
    if (match === undefined) return true
    if (match(r.id) || match(r.name)) return true
    return pattern !== undefined && !pattern.includes("/") && match(r.id.slice(r.id.lastIndexOf("/") + 1))
  }
  return Either.right(requests.filter((r) =>
    !r.tags.some((t) => exclude.includes(t)) &&
    (include.length === 0 || r.tags.some((t) => include.includes(t))) &&
    matches(r)
  ))
}
