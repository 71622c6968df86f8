/**
 * Whether a session's owner lives, once machines share a store (SPEC §10): a pid
 * means something only on the machine it was taken on, so the store records the
 * owner's host with its pid, and the owner says it is alive by writing a heartbeat.
 *
 * 1. A session's row names its owner: the host (`os.hostname()`, or `GROVE_HOST`) and
 *    the pid of the grove process that runs it, written with its SessionStarted
 *    together with a first heartbeat.
 * 2. While the session runs, a fiber of its scope (`run`) writes the heartbeat every
 *    `interval` (5 s), on Effect's `Clock`. It stops with the session's scope; the
 *    store takes a beat only for a RUNNING session still owned by this host and pid,
 *    so a finished session's heartbeat stays where it stopped, and a grove whose
 *    session another took over (`--resume`) says so once and stops.
 * 3. A heartbeat is fresh while it is younger than `staleAfter` (3 intervals): a
 *    write that waits for a lock, or a slow machine, is not taken for a death.
 *    Clocks of machines sharing a store must agree to within a few seconds (NTP), and
 *    their names must differ: containers that share a hostname set `GROVE_HOST`.
 * 4. Whose owner lives (`Resume.sessionOwner`): on this host (or a host the store
 *    does not know, i.e. a session recorded before store schema 4), the pid, as the
 *    OS tells; on another host, the heartbeat alone.
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Os from "node:os"
import { type Beat, Store } from "./Store.js"

/**
 * How often a running session's owner writes its heartbeat.
 *
 * @since 0.3.0
 * @category models
 */
export const interval: Duration.Duration = Duration.seconds(5)

/**
 * How old a heartbeat may be before its owner counts as dead: 3 intervals.
 *
 * @since 0.3.0
 * @category models
 */
export const staleAfter: Duration.Duration = Duration.times(interval, 3)

/**
 * The name of the host of an environment: `GROVE_HOST` when set (tests play two
 * machines with it), else `os.hostname()`.
 *
 * @since 0.3.0
 * @category utils
 */
export const hostOf = (env: Readonly<Record<string, string | undefined>>): string => {
  const named = env.GROVE_HOST?.trim()
  return named === undefined || named === "" ? Os.hostname() : named
}

/**
 * This process's host (`hostOf` grove's environment).
 *
 * @since 0.3.0
 * @category utils
 */
export const localHost: Effect.Effect<string> = Effect.sync(() => hostOf(process.env))

/**
 * The owner facts a SessionStarted records (`Store.RecordMeta`): this host, and a
 * first heartbeat now.
 *
 * @since 0.3.0
 * @category constructors
 */
export const ownerFacts: Effect.Effect<{ readonly host: string; readonly heartbeatAt: number }> = Effect.zipWith(
  localHost,
  Clock.currentTimeMillis,
  (host, heartbeatAt) => ({ host, heartbeatAt })
)

/**
 * Whether a heartbeat at `heartbeatAt` is fresh at `now` (younger than `staleAfter`;
 * one from a clock ahead of this one is fresh). No heartbeat is not fresh.
 *
 * @since 0.3.0
 * @category utils
 */
export const isFresh = (heartbeatAt: number | undefined, now: number, stale: Duration.Duration = staleAfter): boolean =>
  heartbeatAt !== undefined && now - heartbeatAt < Duration.toMillis(stale)

/**
 * The heartbeat of session `sessionId` owned by this process: one beat now, then one
 * every `interval`, forever (fork it in the session's scope: it stops with it). A beat
 * the store cannot write is warned about (once, until one is written again) and the
 * next one tries again; once the store
 * says the session is no longer this process's (ended, deleted, taken over), it stops.
 *
 * @since 0.3.0
 * @category constructors
 */
export const run = (
  sessionId: string,
  options: { readonly interval?: Duration.DurationInput; readonly pid?: number; readonly host?: string } = {}
): Effect.Effect<void, never, Store> =>
  Effect.gen(function*() {
    const store = yield* Store
    const host = options.host ?? (yield* localHost)
    const pid = options.pid ?? process.pid
    // a store that is down is said once, not every interval, and its return once too
    let failing = false
    const beat = Effect.flatMap(Clock.currentTimeMillis, (at) => store.heartbeat(sessionId, { host, pid, at } satisfies Beat)).pipe(
      Effect.tap(() => {
        if (!failing) return Effect.void
        failing = false
        return Effect.logWarning(`grove: the heartbeat of session ${sessionId} is written again`)
      }),
      Effect.catchAll((e) => {
        const first = !failing
        failing = true
        return Effect.as(
          first
            ? Effect.logWarning(
              `grove: could not write the heartbeat of session ${sessionId} (${e.message}); trying again every ` +
                `${Duration.format(options.interval ?? interval)}: other hosts take this session's grove as dead ` +
                `once its heartbeat is ${Duration.format(staleAfter)} old`
            )
            : Effect.void,
          true
        )
      })
    )
    // beats while the store says the session is still this process's
    yield* Effect.repeat(beat, Schedule.spaced(options.interval ?? interval).pipe(Schedule.whileInput((owned: boolean) => owned)))
    const now = yield* store.owner(sessionId).pipe(Effect.option)
    if (now._tag === "Some" && now.value.status === "RUNNING") {
      yield* Effect.logWarning(
        `grove: session ${sessionId} is now run by grove process ${now.value.pid} on ${now.value.host ?? "an unknown host"}: ` +
          "this process no longer writes its heartbeat"
      )
    }
  })
