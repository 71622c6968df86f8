/**
 * The Git contract (test/GitSuite.ts) against the real git on temp repositories and
 * against `Git.layerMemory`.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import { NodeContext } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Crypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as Git from "../src/Git.js"
import * as GitSuite from "./GitSuite.js"
import { git } from "./support/repo.js"

/** the files of a folder, relative to it, without `.git` */
const listFiles = (root: string): Array<string> =>
  NodeFs.readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => NodePath.relative(root, NodePath.join(e.parentPath, e.name)))
    .filter((f) => f !== ".git" && !f.startsWith(`.git${NodePath.sep}`))

const orDie = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.orDie(effect)

/** a real repository in a temp folder, made commit by commit with `commit-tree` */
const makeRealRepo = (spec: GitSuite.RepoSpec) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.realPath(yield* fs.makeTempDirectoryScoped({ prefix: "grove-contract-" }))
    const root = NodePath.join(dir, "repo")
    const outside = NodePath.join(dir, "outside")
    yield* fs.makeDirectory(outside)
    yield* git(dir, "init", "--quiet", "--initial-branch=main", "repo")
    for (const [key, value] of [["commit.gpgsign", "false"], ["tag.gpgsign", "false"], ["core.autocrlf", "false"]]) {
      yield* git(root, "config", key!, value!)
    }
    const shas = new Map<string, string>()
    for (const commit of spec.commits) {
      // the working tree and the index hold exactly this commit's files
      for (const file of listFiles(root)) NodeFs.rmSync(NodePath.join(root, file))
      yield* git(root, "read-tree", "--empty")
      for (const [file, content] of Object.entries(commit.files)) {
        NodeFs.mkdirSync(NodePath.dirname(NodePath.join(root, file)), { recursive: true })
        NodeFs.writeFileSync(NodePath.join(root, file), content)
      }
      yield* git(root, "add", "--all", "--force")
      const tree = yield* git(root, "write-tree")
      const parent = commit.parent === undefined ? [] : ["-p", shas.get(commit.parent)!]
      shas.set(commit.name, yield* git(root, "commit-tree", tree, ...parent, "-m", commit.name))
    }
    for (const [branch, commit] of Object.entries(spec.branches)) yield* git(root, "update-ref", `refs/heads/${branch}`, shas.get(commit)!)
    for (const [tag, commit] of Object.entries(spec.tags)) yield* git(root, "tag", tag, shas.get(commit)!)
    yield* git(root, "symbolic-ref", "HEAD", `refs/heads/${spec.head}`)
    yield* git(root, "reset", "--quiet", "--hard")
    yield* git(root, "clean", "-q", "-ffdx")
    const info = yield* (yield* Git.Git).repoInfo(root)
    const at = (worktree: string, file: string) => NodePath.join(worktree, file)
    return {
      info,
      sha: (name) => shas.get(name)!,
      worktreeDir: NodePath.join(dir, "wt"),
      outside,
      write: (worktree, file, content) =>
        Effect.sync(() => {
          NodeFs.mkdirSync(NodePath.dirname(at(worktree, file)), { recursive: true })
          NodeFs.writeFileSync(at(worktree, file), content)
        }),
      remove: (worktree, file) => Effect.sync(() => NodeFs.rmSync(at(worktree, file))),
      read: (worktree, file) => Effect.sync(() => NodeFs.existsSync(at(worktree, file)) ? NodeFs.readFileSync(at(worktree, file), "utf8") : undefined),
      breakWorktree: (worktree) => Effect.sync(() => NodeFs.rmSync(at(worktree, ".git"))),
      detachHead: (sha) => orDie(Effect.asVoid(git(root, "checkout", "--quiet", "--detach", sha))).pipe(Effect.provide(NodeContext.layer))
    } satisfies GitSuite.Fixture
  }).pipe(Effect.orDie)

GitSuite.suite<FileSystem.FileSystem | CommandExecutor.CommandExecutor>("git CLI on temp repositories", {
  layer: Git.layer.pipe(Layer.provideMerge(NodeContext.layer)),
  makeRepo: makeRealRepo
})

let memoryRepos = 0

/** the same repository in the fake: SHAs are 40 hex digits, as git's */
const makeMemoryRepo = (spec: GitSuite.RepoSpec) =>
  Effect.gen(function*() {
    const control = yield* Git.GitMemory
    const root = `/mem/${++memoryRepos}/repo`
    const shas = new Map(spec.commits.map((c) => [c.name, Crypto.createHash("sha1").update(`${root} ${c.name}`).digest("hex")]))
    const sha = (name: string) => shas.get(name)!
    yield* control.addRepo({
      root,
      refs: Object.fromEntries([...Object.entries(spec.branches), ...Object.entries(spec.tags)].map(([ref, c]) => [ref, sha(c)])),
      head: spec.head,
      files: Object.fromEntries(spec.commits.map((c) => [sha(c.name), c.files])),
      parents: Object.fromEntries(spec.commits.flatMap((c) => c.parent === undefined ? [] : [[sha(c.name), sha(c.parent)]]))
    })
    // the main checkout, which the fake never touches: what a test writes there stays
    const head = spec.commits.find((c) => c.name === spec.branches[spec.head])!
    const main = new Map(Object.entries(head.files))
    const isMain = (path: string) => path === root
    const info = yield* (yield* Git.Git).repoInfo(root)
    return {
      info,
      sha,
      worktreeDir: `/mem/${memoryRepos}/wt`,
      outside: `/mem/${memoryRepos}/outside`,
      write: (worktree, file, content) =>
        isMain(worktree) ? Effect.sync(() => void main.set(file, content)) : control.writeFile(worktree, file, content),
      remove: (worktree, file) => isMain(worktree) ? Effect.sync(() => void main.delete(file)) : control.removeFile(worktree, file),
      read: (worktree, file) => isMain(worktree) ? Effect.sync(() => main.get(file)) : control.readFile(worktree, file),
      breakWorktree: (worktree) => control.breakWorktree(worktree),
      detachHead: (commit) => control.setRef(root, "HEAD", commit)
    } satisfies GitSuite.Fixture
  })

GitSuite.suite<Git.GitMemory>("Git.layerMemory", {
  layer: Git.layerMemory({ repos: [] }),
  makeRepo: makeMemoryRepo,
  control: Git.GitMemory
})
