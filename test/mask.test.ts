import { assert, describe, it } from "@effect/vitest"
import { makeMasker, maskString } from "../src/internal/mask.js"
import { makeTail } from "../src/internal/tail.js"

/** the specification, written the obvious way: left to right, longest secret first */
const reference = (secrets: ReadonlyArray<string>, text: string): string => {
  const list = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length)
  let out = ""
  let i = 0
  while (i < text.length) {
    const hit = list.find((s) => text.startsWith(s, i))
    if (hit !== undefined) {
      out += "***"
      i += hit.length
    } else {
      out += text[i]
      i++
    }
  }
  return out
}

const enc = (s: string) => Buffer.from(s, "utf8")

/** pushes `bytes` cut at `cuts`, checking the carry bound on the way */
const maskInPieces = (secrets: ReadonlyArray<string>, bytes: Buffer, cuts: ReadonlyArray<number>): string => {
  const m = makeMasker(secrets)
  const longest = Math.max(0, ...secrets.map((s) => enc(s).length))
  const out: Array<Uint8Array> = []
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    out.push(Uint8Array.from(m.push(bytes.subarray(from, cut))))
    assert.isAtMost(m.held(), Math.max(0, longest - 1))
    from = cut
  }
  out.push(m.flush())
  assert.strictEqual(m.held(), 0)
  return Buffer.concat(out).toString("utf8")
}

/** a small deterministic PRNG, so the fuzz cases are the same on every run */
const prng = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff
  return seed / 0x7fffffff
}

describe("mask", () => {
  const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
    [["abcd"], "abcd"],
    [["abcd"], "xxabcdyyabcdabcdzz"],
    [["abcd"], "abcabcabdabcd"],
    [["ab", "abcd"], "ab abcd abc abcdab"],
    [["aaa"], "aaaaaaa"],
    [["aab"], "aaaab aab aa"],
    [["s3cr3t", "t0k"], "prefix s3cr3t0k t0ks3cr3t s3cr3"],
    [["pässwörd"], "x pässwörd y pässwör"],
    [["", "ab"], "ab"],
    [[], "nothing to hide"],
    [["abcd", "abcd"], "abcdabcd"]
  ]

  it("masks like the reference on the whole input", () => {
    for (const [secrets, text] of cases) {
      assert.strictEqual(maskString(secrets, text), reference(secrets, text), `${secrets} in ${text}`)
    }
    assert.strictEqual(maskString(["abcd"], "token=abcd;"), "token=***;")
  })

  it("gives the same output for every split point (one and two cuts)", () => {
    for (const [secrets, text] of cases) {
      const bytes = enc(text)
      const expected = reference(secrets, text)
      for (let i = 0; i <= bytes.length; i++) {
        assert.strictEqual(maskInPieces(secrets, bytes, [i]), expected, `${secrets} | ${text} cut at ${i}`)
        for (let j = i; j <= bytes.length; j++) {
          assert.strictEqual(maskInPieces(secrets, bytes, [i, j]), expected, `${secrets} | ${text} cut at ${i},${j}`)
        }
      }
    }
  })

  it("gives the same output byte by byte", () => {
    for (const [secrets, text] of cases) {
      const bytes = enc(text)
      const cuts = Array.from({ length: bytes.length }, (_, i) => i)
      assert.strictEqual(maskInPieces(secrets, bytes, cuts), reference(secrets, text))
    }
  })

  it("agrees with the reference on random inputs, secrets and splits", () => {
    const random = prng(42)
    const pick = (n: number) => Math.floor(random() * n)
    const word = (min: number, max: number) =>
      Array.from({ length: min + pick(max - min + 1) }, () => "abc"[pick(3)]).join("")
    for (let round = 0; round < 2000; round++) {
      const secrets = Array.from({ length: 1 + pick(3) }, () => word(1, 5))
      const text = word(0, 30)
      const bytes = enc(text)
      const cuts = Array.from({ length: pick(5) }, () => pick(bytes.length + 1)).sort((a, b) => a - b)
      assert.strictEqual(maskInPieces(secrets, bytes, cuts), reference(secrets, text), `${secrets} | ${text} | ${cuts}`)
    }
  })

  it("holds back only what may begin a secret", () => {
    const m = makeMasker(["secret"])
    assert.strictEqual(Buffer.from(m.push(enc("hello sec"))).toString(), "hello ")
    assert.strictEqual(m.held(), 3)
    assert.strictEqual(Buffer.from(m.push(enc("ond"))).toString(), "second")
    assert.strictEqual(m.held(), 0)
    assert.strictEqual(Buffer.from(m.push(enc("a secre"))).toString(), "a ")
    assert.strictEqual(Buffer.from(m.flush()).toString(), "secre")
  })
})

describe("tail", () => {
  it("keeps the last bytes across wrap-arounds", () => {
    const random = prng(7)
    for (const capacity of [0, 1, 5, 16]) {
      const tail = makeTail(capacity)
      let all = ""
      for (let k = 0; k < 200; k++) {
        const piece = "x".repeat(Math.floor(random() * 40)) + String(k)
        tail.push(enc(piece))
        all += piece
        assert.strictEqual(Buffer.from(tail.bytes()).toString(), capacity === 0 ? "" : all.slice(-capacity))
      }
      assert.strictEqual(tail.total(), all.length)
    }
  })

  it("does not start its text inside a multi-byte character", () => {
    const tail = makeTail(4)
    tail.push(enc("aé€")) // 61 c3a9 e282ac: the last 4 bytes are a9 e2 82 ac
    assert.strictEqual(tail.text(), "€")
    const short = makeTail(10)
    short.push(enc("é"))
    assert.strictEqual(short.text(), "é")
  })
})
