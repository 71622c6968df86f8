/**
 * B4 output flood. One test writes `--bytes` (default 1 GiB) of text to stdout. grove
 * (the CLI, one worker) with the default log cap (100 MiB logged, the rest counted and
 * dropped) and with a cap above the flood (all of it logged), against `cat` of the same
 * stream to a file. Peak RSS from `/usr/bin/time -v` (the largest process of the tree:
 * grove's node process) and from polling VmHWM of the node process. Prints `BENCH {json}`.
 *
 *   node dist/bench/bench/b4.js --bytes 1073741824 --rounds 3
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { args, emit, numberArg, sh, spawn } from "./common.js"
import { generate } from "./repo.js"

const a = args()
const bytes = numberArg(a, "bytes", 1024 ** 3)
const rounds = numberArg(a, "rounds", 3)
const bin = Path.resolve(import.meta.dirname, "../../bin/grove.js")

/** the flood: a log-like line repeated, cut at exactly `bytes` (`|| true`: yes ends by SIGPIPE, and steps run with pipefail) */
export const flood = (n: number) =>
  `(yes 'grove bench: the quick brown fox jumps over the lazy dog 0123456789' || true) | head -c ${n}`

const maxRssMiB = (stderr: string): number => {
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)
  if (m === null) throw new Error(`no "Maximum resident set size" in:\n${stderr.slice(-2000)}`)
  return Number(m[1]) / 1024
}

const main = async () => {
  const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "grove-b4-"))
  const repo = Path.join(base, "repo")
  generate(repo, 20)
  const grove = async (label: string, env: NodeJS.ProcessEnv) => {
    const s = await spawn("/usr/bin/time", [
      "-v", process.execPath, bin, "run", "--repo", repo, "--db", Path.join(base, "grove.db"), "--workers", "1",
      "--retries", "0", "--quiet", "--worktree-dir", Path.join(base, "worktrees"), "--each", `: {}; ${flood(bytes)}`, label
    ], { cwd: repo, env: { ...process.env, ...env }, pollMs: 20 })
    if (s.code !== 0) throw new Error(`grove ${label} exited ${s.code}: ${s.stderr}\n${s.stdout}`)
    sh(`rm -rf ${JSON.stringify(Path.join(repo, ".git", "grove", "sessions"))}`)
    return { wallMs: s.wallMs, peakRssMiB: maxRssMiB(s.stderr) }
  }
  const rows: Array<Record<string, number>> = []
  for (let round = 0; round < rounds; round++) {
    const capped = await grove(`capped${round}`, {})
    const full = await grove(`full${round}`, { GROVE_LOG_CAP: String(2 * bytes + 1024 * 1024) })
    const out = Path.join(base, "cat.out")
    const cat = await spawn("/usr/bin/time", ["-v", "bash", "-c", `${flood(bytes)} | cat > ${JSON.stringify(out)}`])
    if (cat.code !== 0) throw new Error(`cat exited ${cat.code}: ${cat.stderr}`)
    const written = Fs.statSync(out).size
    if (written !== bytes) throw new Error(`cat wrote ${written} bytes, not ${bytes}`)
    Fs.rmSync(out)
    const row = {
      groveCappedWallMs: capped.wallMs,
      groveCappedPeakRssMiB: capped.peakRssMiB,
      groveFullWallMs: full.wallMs,
      groveFullPeakRssMiB: full.peakRssMiB,
      catWallMs: cat.wallMs,
      catPeakRssMiB: maxRssMiB(cat.stderr)
    }
    rows.push(row)
    process.stderr.write(`b4 round ${round + 1}: ${JSON.stringify(row)}\n`)
  }
  sh(`rm -rf ${JSON.stringify(base)}`)
  emit({ bytes, rounds: rows })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
