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
import { InvalidInput, type Issue } from "../GroveError.js"
import * as Help from "./help.js"
import { loadPlans, onInvalid, out, repo, setExit } from "./shared.js"

const validateOptions = {
  plans: Args.text({ name: "PLAN" }).pipe(
    Args.atLeast(1),
    Help.arg({ text: "Markdown plan files to check.", example: "docs/plans/*.md" })
  ),
  repo
}

/**
 * @since 0.1.0
 * @category commands
 */
export const validate = Command.make("validate", validateOptions, (o) =>
  Effect.gen(function*() {
    const git = yield* Git.Git
    const path = yield* Path.Path
    const repoInfo = yield* git.repoInfo(path.resolve(o.repo)).pipe(Effect.option)
    const cwd = process.cwd()
    const { issues, plans: loaded } = yield* loadPlans(o.plans, { repoRoot: Option.match(repoInfo, { onNone: () => cwd, onSome: (r) => r.root }), cwd })
    const refIssues = Option.isSome(repoInfo) && loaded.length > 0
      ? yield* Plan.checkRefs(loaded, { repo: repoInfo.value, baseRef: "HEAD" }).pipe(
        Effect.as([]),
        Effect.catchTag("InvalidInput", (e) => Effect.succeed(e.issues))
      )
      : []
    const all = [...issues, ...refIssues]
    if (all.length > 0) return yield* Effect.fail(new InvalidInput({ issues: all as [Issue, ...Array<Issue>] }))
    const steps = loaded.reduce((n, p) => n + p.request.steps.length, 0)
    yield* out(`${loaded.length} plan${loaded.length === 1 ? "" : "s"} valid: ${steps} step${steps === 1 ? "" : "s"}${Option.isNone(repoInfo) ? " (refs not checked: not inside a repository)" : ""}`)
    return 0
  }).pipe(onInvalid, Effect.flatMap(setExit))).pipe(
    Help.command(validateOptions, {
      summary: "Check plans, and their refs inside a repository; run nothing.",
      description: "Lists every problem at once, as file:line, and exits 2 when there is one.",
      examples: ["grove validate docs/plans/*.md"]
    })
  )

