import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as ProcessTree from "../src/internal/processTree.js"

const token = () => `GROVE_ATTEMPT_ID=pt-test-${process.pid}-${Math.random().toString(36).slice(2)}`

/** a detached bash (its own process group), terminated with its tree when the scope closes */
const spawnScript = (script: string, envEntry: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const [name, value] = [envEntry.slice(0, envEntry.indexOf("=")), envEntry.slice(envEntry.indexOf("=") + 1)]
      const child = ChildProcess.spawn("bash", ["-c", script], {
        detached: true,
        stdio: "ignore",
        env: { ...process.env, [name]: value }
      })
      return child
    }),
    (child) => ProcessTree.terminate({ pgid: child.pid!, envEntry }, "100 millis")
  )

/** waits (real time: these are OS processes) until `count` processes carry the entry */
/** waits until `count` processes carry `envEntry`, `also` holding of them too (e.g. one has left the session) */
const waitForEnv = (envEntry: string, count: number, also: (procs: ReadonlyArray<ProcessTree.ProcInfo>) => boolean = () => true) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400; i++) {
      const procs = ProcessTree.findByEnv(envEntry)
      if (procs.length >= count && also(procs)) return
      yield* ProcessTree.realSleep(10)
    }
    assert.fail(`fewer than ${count} processes with ${envEntry} after 4s, or not in the state awaited`)
  })

const fakeStat = (pid: number, ppid: number, pgid: number, state: string, startTime: string): ProcessTree.ProcInfo => ({
  pid,
  ppid,
  pgid,
  sid: pgid,
  state,
  startTime
})

describe("processTree", () => {
  it("parses /proc/<pid>/stat with spaces and parentheses in the command name", () => {
    const rest = ["S", "7", "42", "42", "0", "-1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "20", "0", "1", "0", "98765", "1"]
    const info = ProcessTree.parseStat(`42 (we(ird) )name) ${rest.join(" ")}\n`)
    assert.deepStrictEqual(info, { pid: 42, ppid: 7, pgid: 42, sid: 42, state: "S", startTime: "98765" })
    const self = ProcessTree.readStat(process.pid)
    assert.strictEqual(self?.pid, process.pid)
    assert.strictEqual(self?.ppid, process.ppid)
  })

  it("refuses to signal 0, 1, -1 and grove's own pid and group, whatever the sign", () => {
    // signal 0 only probes: even a broken refusal would not hurt anything here
    for (const pid of [0, 1, -1, process.pid, -process.pid, ProcessTree.ownPgid(), -ProcessTree.ownPgid(), NaN, 1.5]) {
      assert.strictEqual(ProcessTree.signal(pid, 0), "refused", `pid ${pid}`)
      assert.isDefined(ProcessTree.refusal(pid))
    }
    assert.strictEqual(ProcessTree.ownPgid(), ProcessTree.readStat(process.pid)!.pgid)
    assert.strictEqual(ProcessTree.signal(2 ** 22 + 7, 0), "gone") // above any pid_max
  })

  it.scopedLive("reads a live process, its start time, and sees it gone when it ends", () =>
    Effect.gen(function*() {
      const entry = token()
      const child = yield* spawnScript("sleep 1000", entry)
      const pid = child.pid!
      const info = ProcessTree.readStat(pid)!
      assert.strictEqual(info.ppid, process.pid)
      assert.strictEqual(info.pgid, pid) // detached: its own group
      assert.match(info.startTime, /^\d+$/)
      assert.strictEqual(ProcessTree.startTime(pid), info.startTime)
      assert.isFalse(ProcessTree.isGone(info))
      assert.isTrue(ProcessTree.listProcesses().some((p) => p.pid === pid))
      assert.strictEqual(ProcessTree.signal(pid, "SIGTERM"), "sent")
      for (let i = 0; i < 400 && !ProcessTree.isGone(ProcessTree.readStat(pid)); i++) yield* ProcessTree.realSleep(10)
      assert.isTrue(ProcessTree.isGone(ProcessTree.readStat(pid)))
      assert.isTrue(ProcessTree.isGone({ ...info, state: "Z" }))
    }))

  it.scopedLive("finds processes by their exact environment entry and their descendants", () =>
    Effect.gen(function*() {
      const entry = token()
      const child = yield* spawnScript("sleep 1000 & sleep 1000 & wait", entry)
      yield* waitForEnv(entry, 3)
      const pid = child.pid!
      assert.isTrue(ProcessTree.environHas(pid, entry))
      assert.isFalse(ProcessTree.environHas(pid, entry.slice(0, -1)), "a prefix is not the entry")
      assert.isFalse(ProcessTree.environHas(pid, entry + "x"), "a longer value is not the entry")
      assert.isFalse(ProcessTree.environHas(process.pid, entry))
      const found = ProcessTree.findByEnv(entry).map((p) => p.pid).sort()
      const tree = [...ProcessTree.withDescendants([pid], ProcessTree.listProcesses())].sort()
      assert.deepStrictEqual(found, tree)
      assert.strictEqual(tree.length, 3)
      assert.deepStrictEqual(ProcessTree.findTarget({ pgid: pid }).map((p) => p.pid).sort(), tree)
    }))

  it("follows a process group only while its leader is the one recorded", () => {
    const procs = [
      fakeStat(500, 1, 500, "S", "2"), // leader
      fakeStat(501, 500, 500, "S", "3"), // member
      fakeStat(502, 501, 502, "S", "4"), // setsid child of a member: a descendant
      fakeStat(503, 1, 500, "Z", "5"), // zombie member: gone
      fakeStat(600, 1, 600, "S", "6") // unrelated
    ]
    const pids = (t: ProcessTree.Target) => ProcessTree.findTarget(t, procs).map((p) => p.pid).sort()
    assert.deepStrictEqual(pids({ pgid: 500, startTime: "2" }), [500, 501, 502])
    assert.deepStrictEqual(pids({ pgid: 500 }), [500, 501, 502])
    assert.deepStrictEqual(pids({ pgid: 500, startTime: "1" }), [], "pid 500 was reused: not our group")
    // leader gone (reaped) but the group lives: still ours
    assert.deepStrictEqual(ProcessTree.findTarget({ pgid: 500, startTime: "1" }, procs.slice(1)).map((p) => p.pid).sort(), [
      501,
      502
    ])
  })

  it.scopedLive("reads the environment only of processes started since the attempt's leader", () =>
    Effect.gen(function*() {
      const entry = token()
      // an escapee in a session of its own, whose parent has exited: only its environment finds it
      const child = yield* spawnScript(`(setsid sleep 1000 &); sleep 1000`, entry)
      yield* waitForEnv(entry, 2, (procs) => procs.some((p) => p.sid !== child.pid))
      const escapee = ProcessTree.findByEnv(entry).find((p) => p.sid !== child.pid)!
      const leader = ProcessTree.startTime(child.pid!)!
      const found = (since: string | undefined) =>
        ProcessTree.findTarget({ pgid: child.pid!, envEntry: entry, since }).map((p) => p.pid)
      assert.include(found(leader), escapee.pid, "forked after the leader: found by its token")
      assert.include(found(undefined), escapee.pid)
      // a start time after the escapee's: it cannot be the attempt's, its environment is not read
      const later = String(Number(escapee.startTime) + 1)
      assert.notInclude(found(later), escapee.pid)
      assert.include(found(later), child.pid!, "the group is followed whatever its start")
      // start times compare as numbers, not as text ("10" is after "9")
      assert.notInclude(found("9".repeat(escapee.startTime.length + 1)), escapee.pid)
      assert.include(found("1".repeat(Math.max(1, escapee.startTime.length - 1))), escapee.pid)
    }))

  it.scopedLive("terminates a group, its SIGTERM-ignoring members and setsid escapees found by token", () =>
    Effect.gen(function*() {
      const entry = token()
      // the escapee's parent exits, so it is re-parented and in another session: only the token finds it
      const child = yield* spawnScript(
        `(setsid sh -c 'trap "" TERM; sleep 1000' &) ; trap "" TERM; sleep 1000 & sleep 1000`,
        entry
      )
      // four can carry the token before `setsid` has left the session: wait for that too
      yield* waitForEnv(entry, 4, (procs) => procs.some((p) => p.sid !== child.pid))
      const escapee = ProcessTree.findByEnv(entry).find((p) => p.sid !== child.pid)
      assert.isDefined(escapee, "the setsid escapee runs in its own session")
      assert.isFalse(ProcessTree.withDescendants([child.pid!], ProcessTree.listProcesses()).has(escapee!.pid))
      const result = yield* ProcessTree.terminate(
        { pgid: child.pid!, startTime: ProcessTree.startTime(child.pid!), envEntry: entry, since: ProcessTree.startTime(child.pid!) },
        "300 millis"
      )
      assert.isAtLeast(result.found, 4)
      assert.isAtLeast(result.killed, 2, "the TERM-ignoring ones needed SIGKILL")
      assert.deepStrictEqual(ProcessTree.findByEnv(entry), [])
      assert.deepStrictEqual(ProcessTree.findTarget({ pgid: child.pid!, envEntry: entry }), [])
      assert.deepStrictEqual(yield* ProcessTree.terminate({ pgid: child.pid!, envEntry: entry }, "1 second"), {
        found: 0,
        killed: 0
      })
    }))
})
