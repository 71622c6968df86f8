import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Step } from "../src/Domain.js"
import { HarnessError } from "../src/GroveError.js"
import * as Harness from "../src/Harness.js"
import * as ProcessTree from "../src/internal/processTree.js"
import { ForkCounter } from "./support/forks.js"

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "grove-harness-" }))
  .pipe(Effect.provide(NodeFileSystem.layer), Effect.orDie)

/** an attempt and the deadline the caller (the Runner, the pool's setup) gives it */
type Spec = Harness.AttemptSpec & { readonly timeout: Duration.Duration }

/** runs a spec for at most its timeout, the way the Runner does */
const runOn = (harness: Harness.Harness["Type"], spec: Spec) => Harness.runWithin(harness, spec, spec.timeout)

let counter = 0
const makeSpec = (
  dir: string,
  steps: ReadonlyArray<string | Step>,
  over: Partial<Spec> = {}
): Spec => ({
  testId: "t",
  attempt: 1,
  attemptKey: `harness-test-${process.pid}-${++counter}-${Math.random().toString(36).slice(2)}`,
  steps: steps.map((s) => typeof s === "string" ? new Step({ shell: "bash", script: s }) : s),
  cwd: dir,
  env: {},
  secrets: [],
  logPath: `${dir}/logs/nested/t.1.log`,
  logCap: 1_000_000,
  tailBytes: 4096,
  timeout: Duration.seconds(30),
  killGrace: Duration.seconds(2),
  ...over
})

const run = (spec: Spec) => Effect.flatMap(Harness.Harness, (h) => runOn(h, spec)).pipe(Effect.provide(Harness.layerShell))

const readLog = (spec: Harness.AttemptSpec) => Fs.readFileSync(spec.logPath, "utf8")
const leftOver = (spec: Harness.AttemptSpec) => ProcessTree.findByEnv(`GROVE_ATTEMPT_ID=${spec.attemptKey}`)
/** a recorded pid is gone, or is now another process (different start time) */
const goneOrReused = (pid: number, startTime: string) => {
  const info = ProcessTree.readStat(pid)
  return ProcessTree.isGone(info) || info!.startTime !== startTime
}
/** waits (real time, for an OS process) until `path` exists */
const waitForFile = (path: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !Fs.existsSync(path); i++) yield* ProcessTree.realSleep(10)
    assert.isTrue(Fs.existsSync(path), `${path} never appeared`)
  })

describe("Harness.layerShell", () => {
  it.scopedLive("runs the steps in order and passes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["echo one", "echo two >&2", new Step({ shell: "sh", script: "echo three" })])
      const outcome = yield* run(spec)
      assert.deepStrictEqual(outcome, {
        _tag: "Exited",
        exitCode: 0,
        signal: null,
        failedStep: undefined,
        tail: "one\ntwo\nthree\n",
        bytes: 14
      })
      assert.strictEqual(readLog(spec), "one\ntwo\nthree\n")
    }))

  it.scopedLive("stops at the first failing step and reports its index and exit code", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["echo a", "echo b; exit 3", "echo never"])
      const outcome = yield* run(spec)
      assert.strictEqual(outcome._tag, "Exited")
      assert.strictEqual(outcome.exitCode, 3)
      assert.strictEqual(outcome.failedStep, 1)
      assert.strictEqual(readLog(spec), "a\nb\n")
      // -e and pipefail for bash, -e for sh
      const errexit = yield* run(makeSpec(dir, ["true", "false; echo after"]))
      assert.strictEqual(errexit.exitCode, 1)
      assert.strictEqual(errexit.failedStep, 1)
      assert.notInclude(errexit.tail, "after")
      const pipefail = yield* run(makeSpec(dir, ["exit 7 | true"]))
      assert.deepStrictEqual([pipefail.exitCode, pipefail.failedStep], [7, 0])
      const sh = yield* run(makeSpec(dir, [new Step({ shell: "sh", script: "false; echo after" })]))
      assert.deepStrictEqual([sh.exitCode, sh.failedStep, sh.tail], [1, 0, ""])
      // one step (no fd 3 for step numbers): its stderr still comes in order with its stdout
      const one = yield* run(makeSpec(dir, ["echo out; echo err >&2; echo out2; exit 2"]))
      assert.deepStrictEqual([one.exitCode, one.failedStep, one.tail], [2, 0, "out\nerr\nout2\n"])
      // the group leader itself killed by a signal
      const killed = yield* run(makeSpec(dir, ["true", "kill -KILL $PPID; sleep 5", "echo never"]))
      assert.deepStrictEqual([killed._tag, killed.exitCode, killed.signal, killed.failedStep], ["Exited", null, "SIGKILL", 1])
    }))

  it.scopedLive("runs each step in its own shell, in cwd, with the spec's environment and /dev/null as stdin", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      Fs.mkdirSync(`${dir}/pkg`)
      const spec = makeSpec(dir, [
        "mkdir sub && cd sub && export FOO=bar && echo \"in $PWD $FOO\"",
        "echo \"then $PWD ${FOO:-unset}\"",
        "echo \"$GROVE_TEST_ID $GROVE_WORKER $GROVE_ATTEMPT_ID\"",
        "readlink /proc/self/fd/0; cat"
      ], {
        cwd: `${dir}/pkg`,
        env: { GROVE_TEST_ID: "checkout", GROVE_WORKER: "2", GROVE_ATTEMPT_ID: "not-the-key" }
      })
      const outcome = yield* run(spec)
      assert.strictEqual(outcome.exitCode, 0)
      assert.strictEqual(
        readLog(spec),
        `in ${dir}/pkg/sub bar\nthen ${dir}/pkg unset\ncheckout 2 ${spec.attemptKey}\n/dev/null\n`
      )
    }))

  it.scopedLive("runs steps of 1 MiB each (heredocs; argv would fail with E2BIG), in one process group, and removes their scripts", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // 1024 lines of 1024 bytes: 1 MiB; two such steps are past ARG_MAX too
      const body = Array.from({ length: 1024 }, (_, i) => String(i).padStart(6, "0") + "y".repeat(1017)).join("\n")
      const heredoc = (file: string) => `cat > ${file} <<'EOF'\n${body}\nEOF\n`
      const logDir = NodePath.dirname(makeSpec(dir, []).logPath)
      const reported: Array<number> = []
      const spec = makeSpec(dir, [
        heredoc("a.txt") + "echo \"bash $(wc -c < a.txt) $(cut -d' ' -f5 /proc/$$/stat)\"",
        new Step({ shell: "sh", script: heredoc("b.txt") + "echo \"sh $(wc -c < b.txt) $(cut -d' ' -f5 /proc/$$/stat)\"" }),
        // still `bash -c SCRIPT bash`: $0 is bash, no positional parameters; still stdin /dev/null
        "echo \"$0 $#\"; readlink /proc/self/fd/0",
        // what grove keeps beside the log meanwhile is private to the user
        `cd ${JSON.stringify(logDir)} && find . -mindepth 1 ! -name t.1.log -printf '%y %m\\n' | sort -u`,
        `: <<'EOF'\n${body}\nEOF\nexit 4`,
        "echo never"
      ], { onSpawn: (info) => Effect.sync(() => void reported.push(info.pgid)) })
      const outcome = yield* run(spec)
      assert.deepStrictEqual([outcome._tag, outcome.exitCode, outcome.failedStep], ["Exited", 4, 4], readLog(spec))
      const pgid = reported[0]
      assert.strictEqual(
        readLog(spec),
        `bash 1048576 ${pgid}\nsh 1048576 ${pgid}\nbash 0\n/dev/null\nd 700\nf 600\n`
      )
      assert.strictEqual(Fs.readFileSync(`${dir}/a.txt`, "utf8"), body + "\n")
      assert.deepStrictEqual(Fs.readdirSync(logDir), ["t.1.log"], "the scripts are removed when the attempt ends")
    }), 60_000)

  it.scopedLive("hands small scripts over through the environment: run exactly as written, seen by no step, nothing on disk", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // what a shell might re-read: quotes, backslashes, expansions, the here-document's own end marker
      const tricky = [
        "printf '%s\\n' 'single \\ $HOME' \"double \\\\ \\$HOME\" a\\\\b",
        "cat <<'EOF'",
        "GROVE_SCRIPT_END",
        "$(echo not-run) `echo not-run` ${HOME:+x}",
        "EOF",
        "",
        ""
      ].join("\n")
      const logDir = NodePath.dirname(makeSpec(dir, []).logPath)
      const spec = makeSpec(dir, [
        tricky,
        new Step({ shell: "sh", script: "printf '%s\\n' \"sh $0 $#\" 'a\\b'" }),
        // no step sees another's script (or its own), in its environment or as a variable
        "env | grep -c '^GROVE_STEP_SCRIPT_\\|grove_script' || true; set | grep -c 'grove_script' || true; echo \"$0 $#\"; readlink /proc/self/fd/0",
        `ls -A ${JSON.stringify(logDir)}`,
        // a NUL byte cannot be in the environment: that script goes through a file, as bash would read it
        "echo \"with nul\u0000\"",
        "exit 5"
      ], {
        // the wrapper's own variables, already exported: still no script reaches a step's environment
        env: { __grove_script: "exported", __grove_script_2: "exported" }
      })
      const outcome = yield* run(spec)
      assert.deepStrictEqual([outcome.exitCode, outcome.failedStep], [5, 5], readLog(spec))
      assert.strictEqual(
        readLog(spec).replace(/^bash: line \d+: warning: command substitution: ignored null byte in input\n/m, ""),
        [
          "single \\ $HOME",
          "double \\ $HOME",
          "a\\b",
          "GROVE_SCRIPT_END",
          "$(echo not-run) `echo not-run` ${HOME:+x}",
          "sh sh 0",
          "a\\b",
          "0",
          "0",
          "bash 0",
          "/dev/null",
          // only the NUL script was written, in the private folder, while the attempt ran
          "t.1.log",
          "t.1.log.steps",
          "with nul",
          ""
        ].join("\n")
      )
      assert.deepStrictEqual(Fs.readdirSync(logDir), ["t.1.log"])
      const small = makeSpec(dir, [`ls -A ${JSON.stringify(logDir)}`], { logPath: `${dir}/logs/nested/s.1.log` })
      assert.strictEqual((yield* run(small)).tail, "s.1.log\nt.1.log\n", "no folder for an attempt whose scripts are all small")
    }))

  it.scopedLive("keeps background processes of a step alive until the attempt ends", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, [
        "sleep 1000 & echo $! > bg.pid",
        "kill -0 $(cat bg.pid) && echo alive"
      ])
      const outcome = yield* run(spec)
      assert.strictEqual(outcome.exitCode, 0)
      assert.strictEqual(outcome.tail, "alive\n")
      assert.deepStrictEqual(leftOver(spec), [])
    }))

  it.scopedLive("times out a step that traps SIGTERM and leaves nothing behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["echo first", "trap '' TERM; echo trapped; sleep 1000"], {
        timeout: Duration.millis(300),
        killGrace: Duration.millis(500)
      })
      const started = Date.now()
      const outcome = yield* run(spec)
      const elapsed = Date.now() - started
      assert.strictEqual(outcome._tag, "TimedOut")
      assert.strictEqual(outcome.exitCode, null)
      assert.strictEqual(outcome.signal, "SIGTERM", "the wrapper itself does not trap it")
      assert.strictEqual(outcome.failedStep, 1, "the step that was running")
      assert.strictEqual(outcome.tail, "first\ntrapped\n")
      assert.deepStrictEqual(leftOver(spec), [])
      assert.isBelow(elapsed, 300 + 500 + 8_000, "generous bound: timeout + grace + slack")
    }))

  it.scopedLive("leaves no background, setsid or nohup setsid process behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, [
        [
          "sleep 1000 & echo $! > a.pid",
          "setsid sleep 1000 & echo $! > b.pid",
          "nohup setsid sh -c 'sleep 1000' > /dev/null 2>&1 & echo $! > c.pid"
        ].join("\n"),
        // the step above has exited: its setsid children are now re-parented, in their own sessions
        "for f in a b c; do kill -0 $(cat $f.pid); done && echo running"
      ])
      const outcome = yield* run(spec)
      assert.strictEqual(outcome.tail, "running\n")
      const pids = ["a", "b", "c"].map((f) => Number(Fs.readFileSync(`${dir}/${f}.pid`, "utf8")))
      assert.deepStrictEqual(leftOver(spec), [])
      for (const pid of pids) assert.isTrue(ProcessTree.isGone(ProcessTree.readStat(pid)) || !ProcessTree.environHas(pid, `GROVE_ATTEMPT_ID=${spec.attemptKey}`))
    }))

  it.scopedLive("ends at the wrapper's exit even when a background child holds the output open", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["sleep 30 & echo hi"])
      const started = Date.now()
      const outcome = yield* run(spec)
      assert.isBelow(Date.now() - started, 15_000, "well before the 30s of the background sleep")
      assert.deepStrictEqual([outcome.exitCode, outcome.tail], [0, "hi\n"])
      assert.deepStrictEqual(leftOver(spec), [])
    }))

  it.scopedLive("caps the log with a marker of what was dropped and keeps the last bytes in the tail", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["head -c 300000 /dev/zero | tr '\\0' x; printf END"], {
        logCap: 100_000,
        tailBytes: 1000
      })
      const outcome = yield* run(spec)
      assert.strictEqual(outcome.bytes, 300_003)
      assert.strictEqual(outcome.tail, "x".repeat(997) + "END")
      const log = readLog(spec)
      const marker = Harness.droppedMarker(100_000, 200_003)
      assert.strictEqual(log.length, 100_000 + marker.length)
      assert.strictEqual(log.slice(0, 100_000), "x".repeat(100_000))
      assert.strictEqual(log.slice(100_000), marker)
      assert.include(marker, "200003 more bytes")
    }))

  it.scopedLive("keeps memory bounded on a 200 MB flood without a newline", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["head -c 200000000 /dev/zero | tr '\\0' a"], {
        logCap: 1_000_000,
        tailBytes: 65536,
        secrets: ["aaaab"] // every chunk ends in a possible secret prefix: the carry is exercised
      })
      const before = process.memoryUsage().rss
      const outcome = yield* run(spec)
      const grown = process.memoryUsage().rss - before
      assert.strictEqual(outcome.bytes, 200_000_000)
      assert.strictEqual(outcome.tail.length, 65536)
      assert.strictEqual(Fs.statSync(spec.logPath).size, 1_000_000 + Harness.droppedMarker(1_000_000, 199_000_000).length)
      assert.isBelow(grown, 150 * 1024 * 1024, "generous: far below the 200 MB printed")
    }), 120_000)

  it.scopedLive("masks secrets in the log and the tail, also split across writes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["printf ab; sleep 0.1; printf cd; echo", "echo \"token=abcd; other=s3cr3t!\""], {
        secrets: ["abcd", "s3cr3t", ""],
        env: { API_TOKEN: "abcd" }
      })
      const outcome = yield* run(spec)
      assert.strictEqual(readLog(spec), "***\ntoken=***; other=***!\n")
      assert.strictEqual(outcome.tail, "***\ntoken=***; other=***!\n")
      assert.strictEqual(outcome.bytes, 5 + 26)
    }))

  it.scopedLive("interrupting run terminates everything and completes within the grace", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const spec = makeSpec(dir, ["trap '' TERM; setsid sleep 1000 & touch ready; sleep 1000"], {
        killGrace: Duration.millis(500)
      })
      const spawned = yield* Deferred.make<{ pgid: number; startTime: string }>()
      const fiber = yield* Effect.fork(run({ ...spec, onSpawn: (info) => Deferred.succeed(spawned, info) }))
      const { pgid, startTime } = yield* Deferred.await(spawned)
      yield* waitForFile(`${dir}/ready`)
      assert.isAtLeast(leftOver(spec).length, 2)
      const started = Date.now()
      const exit = yield* Fiber.interrupt(fiber)
      assert.isBelow(Date.now() - started, 500 + 5_000, "grace + generous slack")
      assert.isTrue(Exit.isInterrupted(exit))
      assert.deepStrictEqual(leftOver(spec), [])
      assert.isTrue(goneOrReused(pgid, startTime))
    }))

  it.scopedLive("reports the process group and its start time on spawn", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      let seen: ProcessTree.ProcInfo | undefined
      const reported: Array<{ pgid: number; startTime: string }> = []
      const spec = makeSpec(dir, ["sleep 0.2"], {
        onSpawn: (info) =>
          Effect.sync(() => {
            reported.push(info)
            seen = ProcessTree.readStat(info.pgid)
          })
      })
      yield* run(spec)
      assert.strictEqual(reported.length, 1)
      assert.isDefined(seen)
      assert.strictEqual(seen!.pgid, reported[0]!.pgid, "the leader leads its own group")
      assert.strictEqual(seen!.startTime, reported[0]!.startTime)
      assert.notStrictEqual(reported[0]!.pgid, ProcessTree.ownPgid())
    }))

  it.scopedLive("fails with Spawn for a missing cwd and with Log for a log it cannot write", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = yield* Effect.flip(run(makeSpec(dir, ["true"], { cwd: `${dir}/nope` })))
      assert.strictEqual(missing.reason, "Spawn")
      assert.include(missing.message, `${dir}/nope`)
      Fs.writeFileSync(`${dir}/file`, "")
      const log = yield* Effect.flip(run(makeSpec(dir, ["touch ran"], { logPath: `${dir}/file/t.log` })))
      assert.strictEqual(log.reason, "Log")
      assert.include(log.message, `${dir}/file/t.log`)
      assert.isFalse(Fs.existsSync(`${dir}/ran`), "nothing ran")
    }))
})

describe("Harness.layerMemory", () => {
  const spec = (over: Partial<Spec> = {}) => makeSpec("/nowhere", ["one", "two", "three"], over)
  const runMemory = (script: Harness.Script, s: Spec) =>
    Effect.gen(function*() {
      const { control, harness } = yield* Harness.makeMemory(script)
      return { control, fiber: yield* Effect.fork(runOn(harness, s)) }
    })

  it.effect("times out exactly at the timeout under TestClock", () =>
    Effect.gen(function*() {
      const { control, fiber } = yield* runMemory(
        () => Effect.succeed({ exitCode: 0, durationMs: 5000, output: "partial" }),
        spec({ timeout: Duration.seconds(3) })
      )
      yield* TestClock.adjust("2999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
      assert.strictEqual(yield* control.running, 1)
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(fiber)
      assert.deepStrictEqual(outcome, {
        _tag: "TimedOut",
        exitCode: null,
        signal: null,
        failedStep: 2,
        tail: "partial",
        bytes: 7
      })
      const [recorded] = yield* control.runs
      assert.deepStrictEqual([recorded!.startedAt, recorded!.endedAt], [0, 3000])
      assert.strictEqual(yield* control.running, 0)
    }))

  it.effect("exits after the scripted duration with masked, capped output, and records every run", () =>
    Effect.gen(function*() {
      const { control, harness } = yield* Harness.makeMemory(
        Harness.scriptTable({
          flaky: [{ exitCode: 1, durationMs: 1000, output: "boom abcd ".repeat(3), failedStep: 0 }, {
            exitCode: 0,
            durationMs: 500
          }]
        })
      )
      const pgids: Array<number> = []
      const first = yield* Effect.fork(runOn(harness, spec({
        testId: "flaky",
        secrets: ["abcd"],
        logCap: 12,
        tailBytes: 8,
        onSpawn: (info) => Effect.sync(() => pgids.push(info.pgid))
      })))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(first), {
        _tag: "Exited",
        exitCode: 1,
        signal: null,
        failedStep: 0,
        tail: "oom *** ",
        bytes: 30
      })
      const second = yield* Effect.fork(runOn(harness, spec({ testId: "flaky", attempt: 2 })))
      yield* TestClock.adjust("500 millis")
      assert.strictEqual((yield* Fiber.join(second)).exitCode, 0)
      const other = yield* runOn(harness, spec({ testId: "unlisted" }))
      assert.deepStrictEqual([other._tag, other.exitCode, other.failedStep], ["Exited", 0, undefined])

      const runs = yield* control.runs
      assert.deepStrictEqual(runs.map((r) => [r.spec.testId, r.spec.attempt, r.startedAt, r.endedAt]), [
        ["flaky", 1, 0, 1000],
        ["flaky", 2, 1000, 1500],
        ["unlisted", 1, 1500, 1500]
      ])
      assert.strictEqual(runs[0]!.log, "boom *** boo" + Harness.droppedMarker(12, 15))
      assert.isAbove(pgids[0]!, 4_194_304, "never a real pid")
    }))

  it.effect("records interruption and scripted errors", () =>
    Effect.gen(function*() {
      const { control, harness } = yield* Harness.makeMemory((s) =>
        s.testId === "broken"
          ? Effect.fail(new HarnessError({ reason: "Spawn", detail: "scripted" }))
          : Effect.succeed({ exitCode: 0, durationMs: 60_000 })
      )
      const fiber = yield* Effect.fork(runOn(harness, spec()))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.interrupt(fiber)
      const failed = yield* Effect.exit(runOn(harness, spec({ testId: "broken" })))
      assert.isTrue(Exit.isFailure(failed))
      const runs = yield* control.runs
      assert.deepStrictEqual(runs.map((r) => [r.interrupted, r.endedAt, r.error !== undefined]), [
        [true, 10_000, false],
        [false, 10_000, true]
      ])
    }))
})


describe("Harness.makeDeadlines (TestClock)", () => {
  it.effect("fires each deadline at its time with one sleeping fiber, re-armed only for an earlier one; a cancelled one never fires", () =>
    Effect.gen(function*() {
      const clock = yield* Effect.clock
      const fired: Array<[string, number]> = []
      const counter = new ForkCounter()
      const scope = yield* Scope.make()
      const deadlines = yield* Harness.makeDeadlines.pipe(Scope.extend(scope))
      const at = (name: string, millis: number) =>
        deadlines.at(millis, () => fired.push([name, clock.unsafeCurrentTimeMillis()])).pipe(Effect.supervised(counter))
      yield* at("a", 10_000)
      yield* at("b", 30_000) // later: the sleeper for a wakes in time for it
      const cancelD = yield* at("d", 20_000)
      yield* at("c", 5_000) // earlier: a new sleeper replaces the first
      cancelD()
      assert.strictEqual(counter.forks, 2, "a sleeper for a, its replacement for c")
      yield* TestClock.adjust("4999 millis")
      assert.deepStrictEqual(fired, [])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(fired, [["c", 5_000]])
      yield* TestClock.adjust("25 seconds")
      assert.deepStrictEqual(fired, [["c", 5_000], ["a", 10_000], ["b", 30_000]], "d was cancelled")
      assert.strictEqual(counter.forks, 2, "the same sleeper woke for a and b")

      // nothing left: the sleeper has ended; the next deadline gets a new one, which the
      // scope's close interrupts before it fires
      yield* at("e", 40_000)
      assert.strictEqual(counter.forks, 3)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(fired.map(([name]) => name), ["c", "a", "b"])
    }))

  // on the live clock: TestClock forks a fiber of its own for its first sleep (a warning)
  it.scopedLive("runWithin with a provided Deadlines forks one fiber per attempt (its steps), none for the deadline", () =>
    Effect.gen(function*() {
      const instant: Harness.Harness["Type"] = {
        spawn: () => {
          const outcome: Harness.AttemptOutcome = { _tag: "Exited", exitCode: 0, signal: null, failedStep: undefined, tail: "", bytes: 0 }
          return Effect.succeed({ exited: Effect.succeed(outcome), stop: Effect.succeed(outcome) })
        }
      }
      const counter = new ForkCounter()
      const deadlines = yield* Harness.makeDeadlines
      const spec = makeSpec("/nowhere", ["true"])
      yield* Effect.forEach(Array.from({ length: 20 }), () => runOn(instant, spec), { discard: true }).pipe(
        Effect.provideService(Harness.Deadlines, deadlines),
        Effect.supervised(counter)
      )
      // 20 for the steps, 1 sleeping for all the deadlines
      assert.strictEqual(counter.forks, 21)
    }))
})
