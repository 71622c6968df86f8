/**
 * `grove validate`: parse and check plans, run nothing.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Git from "../Git.js"
import * as Plan from "../Plan.js"
import { onInvalid, out, repo, setExit } from "./shared.js"

/**
 * @since 0.1.0
 * @category commands
 */
export const validate = Command.make("validate", {
  plans: Args.text({ name: "PLAN" }).pipe(Args.atLeast(1), Args.withDescription("Markdown plan files to check")),
  repo
}, (o) =>
  Effect.gen(function*() {
    const git = yield* Git.Git
    const path = yield* Path.Path
    const repoInfo = yield* git.repoInfo(path.resolve(o.repo)).pipe(Effect.option)
    const cwd = process.cwd()
    const loaded = yield* Plan.load(o.plans, { repoRoot: Option.match(repoInfo, { onNone: () => cwd, onSome: (r) => r.root }), cwd })
    if (Option.isSome(repoInfo)) yield* Plan.checkRefs(loaded, { repo: repoInfo.value, baseRef: "HEAD" })
    yield* out(`${loaded.length} plan${loaded.length === 1 ? "" : "s"} valid: ${loaded.reduce((n, p) => n + p.request.steps.length, 0)} steps${Option.isNone(repoInfo) ? " (refs not checked: not inside a repository)" : ""}`)
    return 0
  }).pipe(onInvalid, Effect.provide(Git.layer), Effect.flatMap(setExit))).pipe(
    Command.withDescription("Parse and check plans (refs too inside a repository); run nothing. Example: grove validate docs/plans/*.md")
  )

