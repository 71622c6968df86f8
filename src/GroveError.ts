/**
 * Every error grove can fail with, in one place. Each message says what went wrong,
 * where, and what to do about it.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * One problem found while validating input: where (`file:line`, `--flag` or
 * `GROVE_VARIABLE`) and what.
 *
 * @since 0.1.0
 * @category errors
 */
export class Issue extends Schema.Class<Issue>("Issue")({
  where: Schema.String,
  message: Schema.String
}) {
  override toString(): string {
    return `${this.where}: ${this.message}`
  }
}

/**
 * Input that grove refuses before anything starts: plans, options, config, test
 * requests. Lists every problem at once. The CLI exits 2 on it.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  issues: Schema.NonEmptyArray(Issue)
}) {
  override get message(): string {
    const n = this.issues.length
    return `${n} problem${n === 1 ? "" : "s"} found, nothing was run:\n` +
      this.issues.map((i) => `  ${i.where}: ${i.message}`).join("\n")
  }
  /**
   * @since 0.1.0
   */
  static one(where: string, message: string): InvalidInput {
    return new InvalidInput({ issues: [new Issue({ where, message })] })
  }
}

/**
 * A git command or a git safety check failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class GitError extends Schema.TaggedError<GitError>()("GitError", {
  reason: Schema.Literal(
    "NotARepository",
    "UnknownRef",
    "CommandFailed",
    "UnsafeWorktree",
    "WorktreeDirInsideRepository"
  ),
  /** the git command line, the ref or the path concerned */
  subject: Schema.String,
  exitCode: Schema.optional(Schema.Int),
  stderr: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    switch (this.reason) {
      case "NotARepository":
        return `${this.subject} is not inside a git repository: pass --repo with a folder of the repository to test`
      case "UnknownRef":
        return `ref ${JSON.stringify(this.subject)} does not resolve to a commit: check the name with \`git rev-parse --verify ${this.subject}^{commit}\` or fetch it first`
      case "UnsafeWorktree":
        return `refusing a destructive git command in ${this.subject}: it is not a worktree grove owns (its top level is ${this.stderr ?? "elsewhere"})`
      case "WorktreeDirInsideRepository":
        return `worktree folder ${this.subject} is inside the repository's working tree: choose one outside it with --worktree-dir`
      case "CommandFailed":
        return `\`${this.subject}\` failed${this.exitCode === undefined ? "" : ` with exit code ${this.exitCode}`}${this.stderr ? `: ${this.stderr.trim()}` : ""}`
    }
  }
}

/**
 * A worktree could not be made or prepared for a test; the attempt ends ERROR and
 * the worktree is replaced.
 *
 * @since 0.1.0
 * @category errors
 */
export class WorktreeError extends Schema.TaggedError<WorktreeError>()("WorktreeError", {
  reason: Schema.Literal("Create", "Prepare", "Setup"),
  worktree: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const what = this.reason === "Create" ? "could not create" : this.reason === "Prepare" ? "could not prepare" : "setup failed in"
    return `${what} worktree ${this.worktree}: ${this.detail}`
  }
}

/**
 * A test's process could not be started or its log could not be written.
 *
 * @since 0.1.0
 * @category errors
 */
export class HarnessError extends Schema.TaggedError<HarnessError>()("HarnessError", {
  reason: Schema.Literal("Spawn", "Log"),
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return this.reason === "Spawn"
      ? `could not start the test's process: ${this.detail}`
      : `could not write the test's log: ${this.detail}`
  }
}

/**
 * The store could not be opened, read or written.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  reason: Schema.Literal("Open", "NotADatabase", "SchemaTooNew", "Query", "UnknownSession"),
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * A report could not be written.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReportError extends Schema.TaggedError<ReportError>()("ReportError", {
  path: Schema.String,
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return `could not write report ${this.path}: ${this.detail}`
  }
}
