/**
 * The shard split (pure): properties over random inputs, brute force on small ones,
 * and the parsing of `--shard I/N`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Shard from "../src/Shard.js"

/** distinct ids, some with a duration (ms), and N */
const inputs = fc.record({
  tests: fc.uniqueArray(
    fc.record({
      id: fc.string({ minLength: 1, maxLength: 6 }),
      ms: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined })
    }),
    { selector: (t) => t.id, maxLength: 40 }
  ),
  count: fc.integer({ min: 1, max: 7 })
})

const durationsOf = (tests: ReadonlyArray<{ readonly id: string; readonly ms: number | undefined }>) =>
  new Map(tests.flatMap((t) => (t.ms === undefined ? [] : [[t.id, t.ms] as const])))

const makespan = (split: Shard.Split) => Math.max(...split.parts.map((p) => p.expectedMs))

/** the least makespan over every assignment of `ms` to `count` parts */
const optimum = (ms: ReadonlyArray<number>, count: number): number => {
  const loads = Array.from({ length: count }, () => 0)
  let best = Number.POSITIVE_INFINITY
  const go = (i: number) => {
    if (i === ms.length) {
      best = Math.min(best, Math.max(...loads))
      return
    }
    for (let b = 0; b < count; b++) {
      loads[b]! += ms[i]!
      if (loads[b]! < best) go(i + 1)
      loads[b]! -= ms[i]!
    }
  }
  go(0)
  return best
}

describe("Shard.split", () => {
  it.prop("puts every test in exactly one part, and nothing else", [inputs], ([{ count, tests }]) => {
    const split = Shard.split(tests.map((t) => t.id), durationsOf(tests), count)
    assert.strictEqual(split.parts.length, count)
    assert.deepStrictEqual(split.parts.map((p) => p.index), Array.from({ length: count }, (_, i) => i + 1))
    const all = split.parts.flatMap((p) => p.ids)
    assert.strictEqual(all.length, tests.length)
    assert.deepStrictEqual(new Set(all), new Set(tests.map((t) => t.id)))
    assert.strictEqual(split.total, tests.length)
    assert.strictEqual(split.withHistory, tests.filter((t) => t.ms !== undefined).length)
  })

  it.prop("makes the same split, and fingerprint, whatever the order of its inputs", [inputs, fc.integer()], ([{ count, tests }, seed]) => {
    const shuffled = [...tests].sort((a, b) => ((a.id.charCodeAt(0) * 31 + seed) % 7) - ((b.id.charCodeAt(0) * 31 + seed) % 7)).reverse()
    const a = Shard.split(tests.map((t) => t.id), durationsOf(tests), count)
    const b = Shard.split(shuffled.map((t) => t.id), new Map([...durationsOf(shuffled)].reverse()), count)
    assert.deepStrictEqual(a, b)
  })

  it.prop("spreads the tests without history by count: parts differ by at most one", [inputs], ([{ count, tests }]) => {
    const split = Shard.split(tests.map((t) => t.id), durationsOf(tests), count)
    const unknown = split.parts.map((p) => p.unknown)
    assert.isAtMost(Math.max(...unknown) - Math.min(...unknown), 1)
    assert.strictEqual(unknown.reduce((a, b) => a + b, 0), tests.filter((t) => t.ms === undefined).length)
    const expected = split.parts.reduce((sum, p) => sum + p.expectedMs, 0)
    assert.strictEqual(expected, tests.reduce((sum, t) => sum + (t.ms ?? 0), 0))
  })

  it.prop(
    "is within 4/3 of the best split (LPT's bound), checked by brute force",
    [fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 3 })],
    ([ms, count]) => {
      const ids = ms.map((_, i) => `t${i}`)
      const split = Shard.split(ids, new Map(ids.map((id, i) => [id, ms[i]!])), count)
      const best = optimum(ms, count)
      assert.isAtMost(makespan(split), (4 / 3 - 1 / (3 * count)) * best + 1e-9, `split ${JSON.stringify(split.parts)} vs optimum ${best}`)
    }
  )

  it("puts the longest tests first into the least loaded part", () => {
    const durations = new Map([["a", 5], ["b", 4], ["c", 3], ["d", 3], ["e", 3]])
    const split = Shard.split(["e", "d", "c", "b", "a"], durations, 2)
    // a→1 (5), b→2 (4), c→2 (7), d→1 (8), e→2 (10)
    assert.deepStrictEqual(split.parts.map((p) => [p.ids, p.expectedMs]), [[["a", "d"], 8], [["b", "c", "e"], 10]])
  })

  it("with no history, splits by count in id order (code units, not locale)", () => {
    const split = Shard.split(["b", "a", "C", "c", "B"], new Map(), 2)
    assert.deepStrictEqual(split.parts.map((p) => p.ids), [["B", "a", "c"], ["C", "b"]])
    assert.strictEqual(split.withHistory, 0)
  })

  it("gives the tests without history to the lighter parts first", () => {
    const split = Shard.split(["long", "x", "y", "z"], new Map([["long", 100]]), 3)
    assert.deepStrictEqual(split.parts.map((p) => p.ids), [["long", "z"], ["x"], ["y"]])
  })

  it("leaves parts empty when there are fewer tests than parts", () => {
    const split = Shard.split(["only"], new Map(), 3)
    assert.deepStrictEqual(split.parts.map((p) => p.ids), [["only"], [], []])
  })

  it("fingerprints its inputs: the ids, the durations used and N", () => {
    const base = Shard.split(["a", "b"], new Map([["a", 10]]), 2).fingerprint
    assert.strictEqual(Shard.split(["b", "a"], new Map([["a", 10], ["unrelated", 5]]), 2).fingerprint, base)
    assert.notStrictEqual(Shard.split(["a", "b"], new Map([["a", 10]]), 3).fingerprint, base)
    assert.notStrictEqual(Shard.split(["a", "b"], new Map([["a", 11]]), 2).fingerprint, base)
    assert.notStrictEqual(Shard.split(["a", "b"], new Map(), 2).fingerprint, base)
    assert.notStrictEqual(Shard.split(["a", "b", "c"], new Map([["a", 10]]), 2).fingerprint, base)
    const d = Shard.digests(["b", "a"], new Map([["a", 10]]), 2)
    assert.strictEqual(d.fingerprint, base)
  })

  it("refuses a count below 1", () => {
    assert.throws(() => Shard.split(["a"], new Map(), 0), /count must be/)
  })
})

describe("Shard.parse", () => {
  it("reads I/N", () => {
    assert.deepStrictEqual(Shard.parse("2/4"), Either.right({ index: 2, count: 4 }))
    assert.deepStrictEqual(Shard.parse("1/1"), Either.right({ index: 1, count: 1 }))
    assert.deepStrictEqual(Shard.parse(" 3 / 3 "), Either.right({ index: 3, count: 3 }))
  })

  it("refuses what is not I/N with 1 ≤ I ≤ N, saying the form", () => {
    for (const bad of ["0/3", "4/3", "a/b", "3", "", "1/0", "0/0", "-1/3", "1.5/3", "1/3/4", "2/ "]) {
      const parsed = Shard.parse(bad)
      assert.isTrue(Either.isLeft(parsed), bad)
      if (Either.isLeft(parsed)) {
        assert.include(parsed.left, "I/N", bad)
        assert.include(parsed.left, JSON.stringify(bad), bad)
      }
    }
    const high = Shard.parse("4/3")
    assert.isTrue(Either.isLeft(high) && high.left.startsWith("I must be between 1 and 3"))
  })
})
