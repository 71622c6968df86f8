/**
 * Shards (SPEC §10): the split of a session's tests into N parts whose expected
 * durations are as even as possible, computed the same way on every machine.
 *
 * The policy is pure and deterministic. Its inputs are the test ids (their order
 * does not matter: they are sorted by code unit, never by locale or insertion
 * order), the expected duration of each test the store's history knows (the same
 * median of its last PASSED/FLAKY durations that orders the queue, SPEC §4) and N:
 *
 * 1. the tests with history go longest first (ties by id) into the part whose
 *    expected total is the least so far (ties: the part with fewer tests, then the
 *    lower index): longest-processing-time first, within 4/3 of the best split;
 * 2. the tests without history, by id, are spread by count: each goes to the part
 *    with the fewest of them (ties: the least expected total, then the lower index),
 *    so every part gets ⌊u/N⌋ or ⌈u/N⌉ of them. With no history at all this is a
 *    split by count, which grove says out loud.
 *
 * The fingerprint is a digest of those inputs: the sorted ids, the durations used
 * and N. Every shard of one split records it; `grove merge` refuses shards whose
 * fingerprints differ (another test list, other history, another N).
 *
 * @since 0.3.0
 */
import * as Either from "effect/Either"
import * as Crypto from "node:crypto"

/**
 * Which part to run: the `index`-th (1-based) of `count`.
 *
 * @since 0.3.0
 * @category models
 */
export interface Spec {
  readonly index: number
  readonly count: number
}

/**
 * One part of a split.
 *
 * @since 0.3.0
 * @category models
 */
export interface Part {
  /** 1-based */
  readonly index: number
  /** its tests, sorted by id */
  readonly ids: ReadonlyArray<string>
  /** the summed expected durations of its tests with history, in ms */
  readonly expectedMs: number
  /** how many of its tests have no history */
  readonly unknown: number
}

/**
 * A split of tests into `count` parts.
 *
 * @since 0.3.0
 * @category models
 */
export interface Split {
  readonly count: number
  readonly parts: ReadonlyArray<Part>
  /** how many tests were split, and how many of them had history */
  readonly total: number
  readonly withHistory: number
  /** sha-256 (hex) of the sorted test ids */
  readonly testsDigest: string
  /** sha-256 (hex) of the durations used, by id */
  readonly historyDigest: string
  /** sha-256 (hex) of the digests and N: equal on every machine that made the same split */
  readonly fingerprint: string
}

const form = "I/N with whole numbers 1 ≤ I ≤ N, e.g. --shard 2/4"

/**
 * Reads `--shard I/N`; the error says what is wrong and what is expected.
 *
 * @since 0.3.0
 * @category constructors
 */
export const parse = (text: string): Either.Either<Spec, string> => {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text)
  if (m === null) return Either.left(`expected ${form}, got ${JSON.stringify(text)}`)
  const index = Number(m[1])
  const count = Number(m[2])
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1) {
    return Either.left(`N must be at least 1: expected ${form}, got ${JSON.stringify(text)}`)
  }
  if (index < 1 || index > count) {
    return Either.left(`I must be between 1 and ${count}: expected ${form}, got ${JSON.stringify(text)}`)
  }
  return Either.right({ index, count })
}

/** code-unit order: the same on every machine, whatever its locale */
const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

const sha256 = (text: string): string => Crypto.createHash("sha256").update(text, "utf8").digest("hex")

/** a usable expected duration, or undefined */
const usable = (ms: number | undefined): number | undefined =>
  ms !== undefined && Number.isFinite(ms) && ms >= 0 ? ms : undefined

/**
 * The digests of a split's inputs: the sorted distinct ids, the durations of those
 * ids that are used (finite, ≥ 0), N.
 *
 * @since 0.3.0
 */
export const digests = (
  ids: Iterable<string>,
  durations: ReadonlyMap<string, number>,
  count: number
): { readonly testsDigest: string; readonly historyDigest: string; readonly fingerprint: string } => {
  const sorted = [...new Set(ids)].sort(byCodeUnit)
  const known = sorted.flatMap((id) => {
    const ms = usable(durations.get(id))
    return ms === undefined ? [] : [[id, ms] as const]
  })
  const testsDigest = sha256(JSON.stringify(sorted))
  const historyDigest = sha256(JSON.stringify(known))
  const fingerprint = sha256(`grove shard v1\n${testsDigest}\n${historyDigest}\n${count}`)
  return { testsDigest, historyDigest, fingerprint }
}

/**
 * Splits `ids` into `count` parts (see the module's doc); `durations` holds the
 * expected duration of the tests that have history.
 *
 * @since 0.3.0
 * @category constructors
 */
export const split = (ids: Iterable<string>, durations: ReadonlyMap<string, number>, count: number): Split => {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`Shard.split: count must be a whole number ≥ 1, got ${count}`)
  const sorted = [...new Set(ids)].sort(byCodeUnit)
  const known: Array<readonly [string, number]> = []
  const unknown: Array<string> = []
  for (const id of sorted) {
    const ms = usable(durations.get(id))
    if (ms === undefined) unknown.push(id)
    else known.push([id, ms])
  }
  known.sort((a, b) => b[1] - a[1] || byCodeUnit(a[0], b[0]))
  const bins = Array.from({ length: count }, () => ({ ids: [] as Array<string>, expectedMs: 0, unknown: 0 }))
  const pick = (better: (a: (typeof bins)[number], b: (typeof bins)[number]) => number) => {
    let best = 0
    for (let i = 1; i < bins.length; i++) if (better(bins[i]!, bins[best]!) < 0) best = i
    return bins[best]!
  }
  for (const [id, ms] of known) {
    const bin = pick((a, b) => a.expectedMs - b.expectedMs || a.ids.length - b.ids.length)
    bin.ids.push(id)
    bin.expectedMs += ms
  }
  for (const id of unknown) {
    const bin = pick((a, b) => a.unknown - b.unknown || a.expectedMs - b.expectedMs)
    bin.ids.push(id)
    bin.unknown++
  }
  return {
    count,
    parts: bins.map((b, i) => ({ index: i + 1, ids: b.ids.sort(byCodeUnit), expectedMs: b.expectedMs, unknown: b.unknown })),
    total: sorted.length,
    withHistory: known.length,
    ...digests(sorted, durations, count)
  }
}
