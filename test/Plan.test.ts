import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Step, TestId, TestRequest } from "../src/Domain.js"
import { Git, type RepoInfo } from "../src/Git.js"
import { GitError, type InvalidInput, type Issue } from "../src/GroveError.js"
import * as Plan from "../src/Plan.js"

const fixtures = NodePath.join(NodePath.dirname(fileURLToPath(import.meta.url)), "fixtures", "plans")

const readFixture = (name: string) => readFileSync(NodePath.join(fixtures, name), "utf8")

const ok = (text: string, file = "docs/plans/t.md", id = "docs/plans/t") => {
  const r = Plan.parse(text, { file, id })
  if (Either.isLeft(r)) assert.fail(`expected a plan, got:\n${r.left.map(String).join("\n")}`)
  return r.right
}
const bad = (text: string, file = "p.md"): Array<string> => {
  const r = Plan.parse(text, { file, id: "p" })
  if (Either.isRight(r)) assert.fail("expected issues, got a plan")
  return r.left.map(String)
}
const fm = (yaml: string) => `---\n${yaml}\n---\n\`\`\`sh\ntrue\n\`\`\`\n`

const issuesOf = (e: InvalidInput): Array<string> => e.issues.map((i: Issue) => i.toString())
const leftIssues = <A>(r: Either.Either<A, InvalidInput>): Array<string> => {
  if (Either.isRight(r)) assert.fail("expected InvalidInput")
  return issuesOf(r.left)
}
const right = <A>(r: Either.Either<A, InvalidInput>): A => {
  if (Either.isLeft(r)) assert.fail(r.left.message)
  return r.right
}

const req = (id: string, fields: Partial<{ name: string; tags: Array<string>; ref: string; cwd: string; source: string }> = {}) =>
  new TestRequest({
    id: TestId.make(id),
    name: fields.name ?? id,
    source: fields.source ?? `${id}.md`,
    steps: [new Step({ shell: "bash", script: "true" })],
    tags: fields.tags ?? [],
    ...(fields.ref === undefined ? {} : { ref: fields.ref }),
    ...(fields.cwd === undefined ? {} : { cwd: fields.cwd })
  })

describe("parse", () => {
  it("reads every front matter key of SPEC §2", () => {
    const plan = ok(readFixture("valid/checkout.md"), "valid/checkout.md", "valid/checkout")
    const r = plan.request
    assert.strictEqual(r.id, "checkout")
    assert.strictEqual(r.name, "checkout flow")
    assert.strictEqual(r.source, "valid/checkout.md")
    assert.isTrue(r.timeout !== undefined && Duration.equals(r.timeout, Duration.minutes(5)))
    assert.strictEqual(r.retries, 1)
    assert.strictEqual(r.ref, "main")
    assert.strictEqual(r.priority, 10)
    assert.deepStrictEqual(r.tags, ["smoke", "api"])
    // values stringified as written: 1.10 stays "1.10"
    assert.deepStrictEqual(r.env, { NODE_ENV: "test", PORT: "3000", DEBUG: "true", VERSION: "1.10" })
    assert.deepStrictEqual(r.secretEnv, ["API_TOKEN"])
    assert.strictEqual(r.cwd, "packages/api")
    // a single string is a list of one
    assert.deepStrictEqual(r.resources, ["postgres"])
    assert.deepStrictEqual(plan.lines, { id: 3, ref: 6, cwd: 11 })
    assert.deepStrictEqual(r.steps.map((s) => [s.shell, s.script, s.line]), [
      ["bash", "npm run start:api &", 18],
      ["sh", "npm test -- test/checkout.test.js", 22]
    ])
  })

  it("defaults: name from the first heading, id from the caller, source = file", () => {
    const plan = ok("Intro.\n\n## First *heading* `here`\n\n# Second\n\n```sh\ntrue\n```\n")
    assert.strictEqual(plan.request.name, "First heading here")
    assert.strictEqual(plan.request.id, "docs/plans/t")
    assert.strictEqual(plan.request.source, "docs/plans/t.md")
    assert.strictEqual(plan.request.timeout, undefined)
    assert.strictEqual(plan.request.retries, undefined)
    assert.strictEqual(plan.request.ref, undefined)
    assert.strictEqual(plan.request.priority, 0)
    assert.deepStrictEqual(plan.request.tags, [])
    assert.deepStrictEqual(plan.lines, {})
  })

  it("defaults: name from the file name without extension when there is no heading", () => {
    assert.strictEqual(ok("```sh\ntrue\n```\n", "docs/plans/smoke.test.md", "x").request.name, "smoke.test")
  })

  it("only sh, bash and shell blocks are steps, in order, with their lines", () => {
    const plan = ok(readFixture("valid/steps.md"))
    assert.deepStrictEqual(plan.request.steps.map((s) => [s.shell, s.script, s.line]), [
      ["bash", "echo one", 11],
      ["sh", "echo two", 17],
      ["bash", "echo three\necho still three", 21]
    ])
    assert.strictEqual(plan.request.name, "Steps in order")
  })

  it("durations: 90s, 1h30m, a bare number of seconds", () => {
    const t = (v: string) => Duration.toMillis(ok(fm(`timeout: ${v}`)).request.timeout!)
    assert.strictEqual(t("90s"), 90_000)
    assert.strictEqual(t("1h30m"), 5_400_000)
    assert.strictEqual(t("45"), 45_000)
    assert.strictEqual(t("\"2m\""), 120_000)
  })

  it("plain scalars are taken verbatim where a string is expected", () => {
    const r = ok(fm("ref: 0123456\nname: 2024\ntags: smoke")).request
    assert.strictEqual(r.ref, "0123456")
    assert.strictEqual(r.name, "2024")
    assert.deepStrictEqual(r.tags, ["smoke"])
  })

  it("empty front matter and a BOM are fine", () => {
    assert.strictEqual(ok("---\n---\n```sh\ntrue\n```\n").request.steps.length, 1)
    assert.strictEqual(ok("\uFEFF---\nid: bom\n---\n```sh\ntrue\n```\n").request.id, "bom")
  })

  it("unknown keys, with a suggestion when it is a likely typo", () => {
    assert.deepStrictEqual(bad(fm("name: x\nretires: 3\ncolour: blue\nsecret_env: [A]\nretry: 1")), [
      "p.md:3: unknown key \"retires\": did you mean retries?",
      "p.md:4: unknown key \"colour\"; known keys: name, id, timeout, retries, ref, priority, tags, env, secretEnv, cwd, resources",
      "p.md:5: unknown key \"secret_env\": did you mean secretEnv?",
      "p.md:6: unknown key \"retry\": did you mean retries?"
    ])
  })

  it("bad durations", () => {
    assert.deepStrictEqual(bad(fm("name: x\ntimeout: soon")), [
      "p.md:3: timeout: expected a duration greater than zero such as 90s, 5m or 1h30m, got \"soon\""
    ])
    assert.deepStrictEqual(bad(fm("timeout: 0")), [
      "p.md:2: timeout: expected a duration greater than zero such as 90s, 5m or 1h30m, got 0"
    ])
    assert.deepStrictEqual(bad(fm("timeout: [5m]")), [
      "p.md:2: timeout must be a duration such as 90s, 5m or 1h30m (a bare number is seconds), got a list"
    ])
  })

  it("retries and priority: integers, retries >= 0", () => {
    assert.deepStrictEqual(bad(fm("retries: -1")), ["p.md:2: retries must be an integer >= 0 (extra attempts after a non-passing one), got -1"])
    assert.deepStrictEqual(bad(fm("retries: two")), ["p.md:2: retries must be an integer >= 0 (extra attempts after a non-passing one), got \"two\""])
    assert.deepStrictEqual(bad(fm("priority: 1.5")), ["p.md:2: priority must be an integer (higher runs earlier), got 1.5"])
    assert.strictEqual(ok(fm("priority: -3\nretries: 0")).request.priority, -3)
  })

  it("no step", () => {
    assert.deepStrictEqual(bad("# Docs\n\n```js\nx()\n```\n\n    echo indented\n"), [
      "p.md:1: no ```sh / ```bash block: add one, other blocks are documentation"
    ])
    assert.deepStrictEqual(bad("# Docs\n\n```sh\n```\n"), [
      "p.md:3: empty ```sh block: put the command(s) to run in it, or remove it"
    ])
  })

  it("broken YAML names the file's line of the YAML error", () => {
    const issues = bad("---\nname: x\ntags: [a, b\ntimeout: 5m\n---\n```sh\ntrue\n```\n")
    assert.strictEqual(issues.length, 1)
    assert.match(issues[0]!, /^p\.md:4: front matter is not valid YAML: .*\]/)
    const dup = bad(fm("name: a\nid: b\nname: c"))
    assert.strictEqual(dup.length, 1)
    assert.match(dup[0]!, /^p\.md:4: front matter is not valid YAML: Map keys must be unique/)
  })

  it("front matter that is not a mapping, or never closed", () => {
    assert.deepStrictEqual(bad(fm("- a\n- b")), ["p.md:2: front matter must be a mapping of keys (name: …, timeout: …), got a list"])
    assert.deepStrictEqual(bad("---\nname: x\n\n```sh\ntrue\n```\n"), [
      "p.md:1: front matter opened with --- is never closed: end it with a line of just ---"
    ])
  })

  it("env: names must be valid, values scalars", () => {
    assert.deepStrictEqual(bad(fm("env:\n  GOOD: yes\n  1BAD: x\n  ALSO-BAD: y\n  NESTED: { a: 1 }\n  EMPTY:")), [
      "p.md:4: env: \"1BAD\" is not a valid environment variable name (letters, digits and _, not starting with a digit)",
      "p.md:5: env: \"ALSO-BAD\" is not a valid environment variable name (letters, digits and _, not starting with a digit)",
      "p.md:6: env.NESTED must be a string, got a mapping",
      "p.md:7: env.EMPTY has no value: write EMPTY: \"\" for an empty one"
    ])
    assert.deepStrictEqual(bad(fm("secretEnv: [OK, not-ok]")), [
      "p.md:2: secretEnv: \"not-ok\" is not a valid environment variable name (letters, digits and _, not starting with a digit)"
    ])
    assert.deepStrictEqual(bad(fm("env: [A]")), ["p.md:2: env must be a mapping of NAME: value, such as { NODE_ENV: test }, got a list"])
  })

  it("cwd must stay inside the worktree", () => {
    assert.deepStrictEqual(bad(fm("cwd: ../x")), [
      "p.md:2: cwd \"../x\" leaves the worktree: give a folder relative to the repository root, inside it"
    ])
    assert.deepStrictEqual(bad(fm("cwd: /abs")), [
      "p.md:2: cwd \"/abs\" is an absolute path: give a folder relative to the repository root, inside it"
    ])
    assert.deepStrictEqual(bad(fm("cwd: a/../../x")), [
      "p.md:2: cwd \"a/../../x\" leaves the worktree: give a folder relative to the repository root, inside it"
    ])
    assert.strictEqual(ok(fm("cwd: a/../b")).request.cwd, "b")
    assert.strictEqual(ok(fm("cwd: .")).request.cwd, undefined)
  })

  it("wrong types, empty values and list items, each at its own line", () => {
    assert.deepStrictEqual(
      bad(fm("name: [a]\nid: \" x\"\nref:\ntags:\n  - ok\n  - { a: 1 }\n  - '!slow'\nresources: { a: 1 }")),
      [
        "p.md:2: name must be a string, got a list",
        "p.md:3: id must not start or end with whitespace, got \" x\"",
        "p.md:4: ref has no value: give one, or remove the key to use the default",
        "p.md:7: each item of tags must be a string, got a mapping",
        "p.md:8: tags: \"!slow\" starts with !, which --tag uses for exclusion: rename the tag",
        "p.md:9: resources must be a list of strings such as [a, b], got a mapping"
      ]
    )
  })

  it("lists every problem of a plan at once, in line order", () => {
    const issues = bad("---\ntimeout: soon\nretries: -1\nfoo: 1\n---\n# nothing to run\n")
    assert.deepStrictEqual(issues.map((s) => s.slice(0, s.indexOf(": "))), ["p.md:1", "p.md:2", "p.md:3", "p.md:4"])
    assert.include(issues[0]!, "no ```sh / ```bash block")
  })
})

describe("slug", () => {
  it("is filesystem-safe and keeps letters of any script", () => {
    assert.strictEqual(Plan.slug("docs/plans/checkout"), "docs_plans_checkout")
    assert.strictEqual(Plan.slug("a b:c*?\"<>|\\d"), "a_b_c_______d")
    assert.strictEqual(Plan.slug("../x"), "_._x")
    assert.strictEqual(Plan.slug(".hidden"), "_hidden")
    assert.strictEqual(Plan.slug("-rf"), "_rf")
    assert.strictEqual(Plan.slug("テスト-1.2"), "テスト-1.2")
    assert.strictEqual(Plan.slug("x@origin/main"), "x_origin_main")
  })

  it("cuts long ids and tells them apart by a hash", () => {
    const a = Plan.slug("x".repeat(300) + "a")
    const b = Plan.slug("x".repeat(300) + "b")
    assert.notStrictEqual(a, b)
    assert.isAtMost(Buffer.byteLength(a), 120)
    assert.match(a, /^x+~[0-9a-f]{8}$/)
    assert.isAtMost(Buffer.byteLength(Plan.slug("é".repeat(200))), 120)
  })
})

describe("load", () => {
  const layer = NodeContext.layer
  const loadAt = (files: Array<string>) =>
    Plan.load(files, { repoRoot: fixtures, cwd: fixtures }).pipe(Effect.provide(layer))

  it.effect("reads plans, ids from the path relative to the repository root", () =>
    Effect.gen(function*() {
      const plans = yield* loadAt(["valid/checkout.md", "valid/steps.md", "valid/plain.md", "valid/plain.md"])
      assert.deepStrictEqual(plans.map((p) => [p.request.id, p.request.name, p.request.source, p.file]), [
        ["checkout", "checkout flow", "valid/checkout.md", "valid/checkout.md"],
        ["valid/steps", "Steps in order", "valid/steps.md", "valid/steps.md"],
        ["valid/plain", "plain", "valid/plain.md", "valid/plain.md"]
      ])
    }))

  it.effect("paths are relative to cwd; ids relative to the repository root", () =>
    Effect.gen(function*() {
      const plans = yield* Plan.load(["plain.md", NodePath.join(fixtures, "valid", "steps.md")], {
        repoRoot: fixtures,
        cwd: NodePath.join(fixtures, "valid")
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(plans.map((p) => p.request.id), ["valid/plain", "valid/steps"])
    }))

  it.effect("a plan outside the repository gets its file name as id", () =>
    Effect.gen(function*() {
      const plans = yield* Plan.load(["../valid/plain.md"], { repoRoot: NodePath.join(fixtures, "dup"), cwd: NodePath.join(fixtures, "dup") })
        .pipe(Effect.provide(layer))
      assert.strictEqual(plans[0]!.request.id, "plain")
    }))

  it.effect("every broken fixture, all problems of all files at once, with file:line", () =>
    Effect.gen(function*() {
      const files = [
        "broken/unknown-key.md",
        "broken/bad-timeout.md",
        "broken/zero-timeout.md",
        "broken/negative-retries.md",
        "broken/float-priority.md",
        "broken/no-step.md",
        "broken/broken-yaml.md",
        "broken/bad-env.md",
        "broken/cwd-up.md",
        "broken/cwd-abs.md",
        "broken/missing.md",
        "valid",
        "valid/plain.md"
      ]
      const e = yield* Effect.flip(loadAt(files))
      const where = issuesOf(e).map((s) => s.slice(0, s.indexOf(": ")))
      assert.deepStrictEqual(where, [
        "broken/unknown-key.md:3",
        "broken/unknown-key.md:4",
        "broken/bad-timeout.md:3",
        "broken/zero-timeout.md:2",
        "broken/negative-retries.md:5",
        "broken/float-priority.md:2",
        "broken/no-step.md:1",
        "broken/broken-yaml.md:4",
        "broken/bad-env.md:4",
        "broken/bad-env.md:5",
        "broken/cwd-up.md:2",
        "broken/cwd-abs.md:2",
        "broken/missing.md",
        "valid"
      ])
      const all = issuesOf(e)
      assert.include(all[0]!, "did you mean retries?")
      assert.include(all[12]!, "no such plan file")
      assert.include(all[12]!, NodePath.join(fixtures, "broken", "missing.md"))
      assert.include(all[13]!, "is a folder")
      assert.match(e.message, /^14 problems found, nothing was run:/)
    }))

  it.effect("duplicate ids, at the line of each later id", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(loadAt(["dup/a.md", "dup/b.md"]))
      assert.deepStrictEqual(issuesOf(e), [
        "dup/b.md:4: duplicate id \"same\", also the id of dup/a.md:2: give one of them its own id"
      ])
    }))

  it.effect("duplicate ids after slugging", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(loadAt(["dupslug/x.md", "dupslug/y.md"]))
      assert.deepStrictEqual(issuesOf(e), [
        "dupslug/y.md:2: id \"a_b\" and id \"a/b\" (dupslug/x.md:2) both become the file name \"a_b\": change one of them"
      ])
    }))

  it.effect("a default id colliding with a front matter id, named at line 1", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* fs.makeDirectory(NodePath.join(dir, "a"))
      yield* fs.writeFileString(NodePath.join(dir, "a", "b.md"), "```sh\ntrue\n```\n")
      yield* fs.writeFileString(NodePath.join(dir, "c.md"), "---\nid: a/b\n---\n```sh\ntrue\n```\n")
      const e = yield* Effect.flip(Plan.load(["a/b.md", "c.md"], { repoRoot: dir, cwd: dir }))
      assert.deepStrictEqual(issuesOf(e), ["c.md:2: duplicate id \"a/b\", also the id of a/b.md:1: give one of them its own id"])
    }).pipe(Effect.scoped, Effect.provide(layer)))
})

// A Git service answering resolveRef and pathExistsAt from a real repository.
const gitIn = (dir: string, ...args: Array<string>) =>
  execFileSync("git", ["-c", "user.name=grove", "-c", "user.email=grove@test", "-c", "commit.gpgsign=false", ...args], {
    cwd: dir,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  }).trim()

const realGit = (dir: string): Layer.Layer<Git> =>
  Layer.succeed(Git, {
    resolveRef: (_repo, ref) =>
      Effect.try({
        try: () => gitIn(dir, "rev-parse", "--verify", "--quiet", `${ref}^{commit}`),
        catch: () => new GitError({ reason: "UnknownRef", subject: ref })
      }),
    pathExistsAt: (_repo, sha, path) =>
      Effect.sync(() => {
        try {
          gitIn(dir, "cat-file", "-e", `${sha}:${path}`)
          return true
        } catch {
          return false
        }
      }),
    repoInfo: () => Effect.die("not used"),
    headBranch: () => Effect.die("not used"),
    changedBetween: () => Effect.die("not used"),
    worktreeAdd: () => Effect.die("not used"),
    worktreeRemove: () => Effect.die("not used"),
    worktreeList: () => Effect.die("not used"),
    prune: () => Effect.die("not used"),
    state: () => Effect.die("not used"),
    checkoutClean: () => Effect.die("not used"),
    worktreeLock: () => Effect.die("not used")
  })

describe("checkRefs", () => {
  const withRepo = <A, E>(f: (dir: string, repo: RepoInfo, shas: { main: string; old: string }) => Effect.Effect<A, E, Git>) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      gitIn(dir, "init", "-q", "-b", "main")
      yield* fs.writeFileString(NodePath.join(dir, "README"), "x\n")
      gitIn(dir, "add", ".")
      gitIn(dir, "commit", "-q", "-m", "one")
      const old = gitIn(dir, "rev-parse", "HEAD")
      gitIn(dir, "tag", "v1")
      yield* fs.makeDirectory(NodePath.join(dir, "packages", "api"), { recursive: true })
      yield* fs.writeFileString(NodePath.join(dir, "packages", "api", "x"), "x\n")
      gitIn(dir, "add", ".")
      gitIn(dir, "commit", "-q", "-m", "two")
      const main = gitIn(dir, "rev-parse", "HEAD")
      const repo: RepoInfo = { root: dir, commonDir: NodePath.join(dir, ".git"), name: NodePath.basename(dir) }
      return yield* f(dir, repo, { main, old }).pipe(Effect.provide(realGit(dir)))
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer))

  const plan = (yaml: string, file: string) => ok(`---\n${yaml}\n---\n\`\`\`sh\ntrue\n\`\`\`\n`, file, file.replace(/\.md$/, ""))

  it.effect("resolves every test's ref to a sha; base ref for the rest", () =>
    withRepo((_dir, repo, shas) =>
      Effect.gen(function*() {
        const plans = [plan("cwd: packages/api", "a.md"), plan("ref: v1", "b.md"), plan("ref: main\ncwd: packages", "c.md")]
        const result = yield* Plan.checkRefs([...plans, req("each-1")], { repo, baseRef: "main" })
        assert.deepStrictEqual([...result.entries()], [["a", shas.main], ["b", shas.old], ["c", shas.main], ["each-1", shas.main]])
      })
    ))

  it.effect("unknown refs and missing cwds, all at once, at the lines of their keys", () =>
    withRepo((_dir, repo, shas) =>
      Effect.gen(function*() {
        const plans = [
          plan("name: x\nref: nope", "a.md"),
          plan("ref: v1\n\ncwd: packages/api", "b.md"),
          plan("cwd: missing/dir", "c.md")
        ]
        const e = yield* Effect.flip(Plan.checkRefs([...plans, req("e", { ref: "gone", source: "--each" })], { repo, baseRef: "main" }))
        assert.strictEqual(e._tag, "InvalidInput")
        if (e._tag !== "InvalidInput") return
        assert.deepStrictEqual(issuesOf(e), [
          `a.md:3: ref "nope" does not resolve to a commit: check the name with \`git rev-parse --verify nope^{commit}\` or fetch it first`,
          `b.md:4: cwd "packages/api" does not exist at ref v1 (${shas.old.slice(0, 7)}): fix the path (relative to the repository root) or commit the folder`,
          `c.md:2: cwd "missing/dir" does not exist at the base ref main (${shas.main.slice(0, 7)}): fix the path (relative to the repository root) or commit the folder`,
          `--ref: ref "gone" does not resolve to a commit: check the name with \`git rev-parse --verify gone^{commit}\` or fetch it first`
        ])
      })
    ))

  it.effect("an unknown base ref is reported once, where the caller says", () =>
    withRepo((_dir, repo) =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(Plan.checkRefs([plan("id: a", "a.md"), plan("id: b", "b.md")], { repo, baseRef: "nope", baseRefWhere: "GROVE_REF" }))
        if (e._tag !== "InvalidInput") return assert.fail(e.message)
        assert.deepStrictEqual(issuesOf(e).map((s) => s.slice(0, s.indexOf(": "))), ["GROVE_REF"])
      })
    ))
})

describe("fromEach", () => {
  const scripts = (r: ReadonlyArray<TestRequest>) => r.map((t) => t.steps[0].script)

  it("replaces every {} with the shell-quoted ARG", () => {
    const tests = right(Plan.fromEach("npx vitest run {} --reporter dot # {}", ["test/a.test.ts", "it's a file.txt", "$HOME"]))
    assert.deepStrictEqual(scripts(tests), [
      "npx vitest run test/a.test.ts --reporter dot # test/a.test.ts",
      "npx vitest run 'it'\\''s a file.txt' --reporter dot # 'it'\\''s a file.txt'",
      "npx vitest run '$HOME' --reporter dot # '$HOME'"
    ])
    assert.deepStrictEqual(tests.map((t) => [t.id, t.name, t.source, t.steps[0].shell]), [
      ["test/a.test.ts", "test/a.test.ts", "--each", "bash"],
      ["it's a file.txt", "it's a file.txt", "--each", "bash"],
      ["$HOME", "$HOME", "--each", "bash"]
    ])
  })

  it("appends the quoted ARG when CMD has no {}", () => {
    const tests = right(Plan.fromEach("cat", ["it's a file.txt", "$HOME", "plain"], { shell: "sh" }))
    assert.deepStrictEqual(scripts(tests), ["cat 'it'\\''s a file.txt'", "cat '$HOME'", "cat plain"])
    assert.strictEqual(tests[0]!.steps[0].shell, "sh")
  })

  it("the quoting survives a real shell", () => {
    const args = ["it's a file.txt", "$HOME", "a\"b`c`\\d", "  spaced", "*", ""]
    for (const a of args) {
      const out = execFileSync("bash", ["-c", `printf %s ${Plan.shellQuote(a)}`], { encoding: "utf8" })
      assert.strictEqual(out, a)
    }
  })

  it("refuses absolute ARGs, empty ones, duplicates and an empty CMD", () => {
    assert.deepStrictEqual(leftIssues(Plan.fromEach("cat {}", ["/etc/passwd", "a", "a", "x/y", "x_y", " "])), [
      "--each: ARG \"/etc/passwd\" is an absolute path, which would reach into the main checkout instead of the test's worktree; give paths relative to the repository root",
      "--each: ARG \" \" must not be empty: each ARG becomes a test id",
      "--each: duplicate id \"a\", also the id of --each: give one of them its own id",
      "--each: id \"x_y\" and id \"x/y\" (--each) both become the file name \"x_y\": change one of them"
    ])
    assert.strictEqual(leftIssues(Plan.fromEach(" ", ["a"])).length, 1)
  })
})

describe("atRefs", () => {
  const tests = [req("a"), req("b", { ref: "pinned" })]

  it("no ref: unchanged; one ref: set, ids kept", () => {
    assert.strictEqual(right(Plan.atRefs(tests, [])), tests)
    const one = right(Plan.atRefs(tests, ["dev"]))
    assert.deepStrictEqual(one.map((t) => [t.id, t.ref]), [["a", "dev"], ["b", "pinned"]])
  })

  it("several refs: one test per ref with id <id>@<ref>; a plan's own ref wins", () => {
    const many = right(Plan.atRefs(tests, ["main", "v1", "main"]))
    assert.deepStrictEqual(many.map((t) => [t.id, t.name, t.ref]), [
      ["a@main", "a @ main", "main"],
      ["a@v1", "a @ v1", "v1"],
      ["b", "b", "pinned"]
    ])
  })

  it("refuses empty refs and ids made twice", () => {
    assert.deepStrictEqual(leftIssues(Plan.atRefs(tests, ["main", ""])), ["--ref: \"\" is not a ref: name a branch, tag or commit"])
    const clash = [req("a"), req("a@v1", { ref: "v1", source: "x.md" })]
    assert.deepStrictEqual(leftIssues(Plan.atRefs(clash, ["main", "v1"])), [
      "x.md: duplicate id \"a@v1\", also the id of a.md: give one of them its own id"
    ])
  })
})

describe("select", () => {
  const all = [
    req("docs/plans/checkout", { name: "checkout flow", tags: ["smoke", "api"] }),
    req("docs/plans/search", { name: "search", tags: ["api", "slow"] }),
    req("docs/plans/login", { name: "login page", tags: ["smoke", "ui"] }),
    req("docs/plans/untagged", { name: "untagged" })
  ]
  const ids = (sel: Plan.Selection) => right(Plan.select(all, sel)).map((t) => t.id.replace("docs/plans/", ""))

  it("no selection keeps everything, in order", () => {
    assert.deepStrictEqual(ids({}), ["checkout", "search", "login", "untagged"])
  })

  it("--tag includes: any of them", () => {
    assert.deepStrictEqual(ids({ tags: ["smoke"] }), ["checkout", "login"])
    assert.deepStrictEqual(ids({ tags: ["ui", "slow"] }), ["search", "login"])
    assert.deepStrictEqual(ids({ tags: ["nothing"] }), [])
  })

  it("--tag '!T' excludes, and excludes win over includes", () => {
    assert.deepStrictEqual(ids({ tags: ["!slow"] }), ["checkout", "login", "untagged"])
    assert.deepStrictEqual(ids({ tags: ["api", "!slow"] }), ["checkout"])
    assert.deepStrictEqual(ids({ tags: ["slow", "!slow"] }), [])
  })

  it("--filter matches id or name; a pattern without / also the id's last segment", () => {
    assert.deepStrictEqual(ids({ filter: "docs/plans/s*" }), ["search"])
    assert.deepStrictEqual(ids({ filter: "*flow" }), ["checkout"])
    assert.deepStrictEqual(ids({ filter: "log*" }), ["login"])
    assert.deepStrictEqual(ids({ filter: "**/{login,search}" }), ["search", "login"])
    assert.deepStrictEqual(ids({ filter: "plans/*" }), [])
    assert.deepStrictEqual(ids({ filter: "*", tags: ["smoke", "!ui"] }), ["checkout"])
  })

  it("refuses an empty tag, a bare ! and an empty filter", () => {
    assert.deepStrictEqual(leftIssues(Plan.select(all, { tags: ["", "!"], filter: "" })).map((s) => s.slice(0, s.indexOf(":"))), [
      "--tag",
      "--tag",
      "--filter"
    ])
  })
})
