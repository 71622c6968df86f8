/**
 * Deterministic git repositories for the benchmarks: same files, same commit SHA on
 * every machine (fixed names, dates and contents).
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { sh } from "./common.js"

const gitEnv = [
  "GIT_AUTHOR_NAME=bench",
  "GIT_AUTHOR_EMAIL=bench@example.com",
  "GIT_COMMITTER_NAME=bench",
  "GIT_COMMITTER_EMAIL=bench@example.com",
  "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z",
  "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z"
].join(" ")

/**
 * A repository at `dir` with `files` tracked text files spread over folders of 100,
 * a `.gitignore` (`*.log`, `build/`) and one commit. Returns the commit's SHA.
 */
export const generate = (dir: string, files: number): string => {
  Fs.rmSync(dir, { recursive: true, force: true })
  Fs.mkdirSync(dir, { recursive: true })
  for (let i = 0; i < files; i++) {
    const folder = Path.join(dir, "src", `d${String(Math.floor(i / 100)).padStart(3, "0")}`)
    if (i % 100 === 0) Fs.mkdirSync(folder, { recursive: true })
    const lines: Array<string> = []
    for (let l = 0; l < 8 + (i % 17); l++) lines.push(`file ${i} line ${l}: ${((i * 7919 + l * 104729) % 1000003).toString(36)}`)
    Fs.writeFileSync(Path.join(folder, `f${String(i % 100).padStart(3, "0")}.txt`), lines.join("\n") + "\n")
  }
  Fs.writeFileSync(Path.join(dir, ".gitignore"), "*.log\nbuild/\n")
  Fs.writeFileSync(Path.join(dir, "README.md"), "# bench repository\n")
  sh(`git init -q -b main . && git add -A && env ${gitEnv} git commit -q -m bench`, dir)
  return sh("git rev-parse HEAD", dir).trim()
}
