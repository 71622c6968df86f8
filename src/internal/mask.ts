/**
 * Streaming secret masker over bytes (SPEC §4 "Secrets").
 *
 * Semantics: the stream is scanned left to right; at each position the longest
 * secret that starts there is replaced by `***` and scanning resumes after it.
 * Pushing the same bytes in any split gives the same output as pushing them at once:
 * a position is only decided when enough bytes are known, so the masker holds back
 * the shortest tail that could still begin a secret (never more than the longest
 * secret − 1 bytes). Nothing else is buffered: memory stays bounded whatever the
 * stream looks like (no lines, no decoding).
 *
 * @since 0.1.0
 */

/** @internal */
export const REPLACEMENT: Uint8Array = new Uint8Array([0x2a, 0x2a, 0x2a]) // "***"

const EMPTY = new Uint8Array(0)
const encoder = new TextEncoder()

/**
 * The secrets worth masking as bytes: non-empty, deduplicated, longest first.
 *
 * @internal
 */
export const secretBytes = (secrets: ReadonlyArray<string>): ReadonlyArray<Buffer> => {
  const unique = [...new Set(secrets.filter((s) => s.length > 0))]
  return unique.map((s) => Buffer.from(encoder.encode(s))).sort((a, b) => b.length - a.length)
}

/**
 * @internal
 */
export interface Masker {
  /** masks what can be decided now; the undecided tail is kept for the next push */
  readonly push: (chunk: Uint8Array) => Uint8Array
  /** the end of the stream: masks and returns everything still held */
  readonly flush: () => Uint8Array
  /** bytes currently held back (≤ longest secret − 1) */
  readonly held: () => number
}

/**
 * @internal
 */
export const makeMasker = (secrets: ReadonlyArray<string>): Masker => {
  const list = secretBytes(secrets)
  if (list.length === 0) {
    return { push: (chunk) => chunk, flush: () => EMPTY, held: () => 0 }
  }
  const maxLen = list[0]!.length
  let carry: Buffer = Buffer.alloc(0)

  /** whether buf[i..] is a proper prefix of some secret (a match may still come) */
  const undecidedAt = (buf: Buffer, i: number): boolean => {
    const rest = buf.length - i
    for (const s of list) {
      if (s.length > rest && buf.compare(s, 0, rest, i, buf.length) === 0) return true
    }
    return false
  }

  const run = (buf: Buffer, final: boolean): Uint8Array => {
    // positions near the end that cannot be decided yet (only the last maxLen-1 can be)
    const undecided: Array<number> = []
    if (!final) {
      for (let i = Math.max(0, buf.length - maxLen + 1); i < buf.length; i++) {
        if (undecidedAt(buf, i)) undecided.push(i)
      }
    }
    const next: Array<number> = list.map((s) => buf.indexOf(s, 0))
    const out: Array<Uint8Array> = []
    let pos = 0
    let u = 0
    for (;;) {
      while (u < undecided.length && undecided[u]! < pos) u++
      const holdFrom = u < undecided.length ? undecided[u]! : buf.length
      // earliest full match at or after pos; the longest one at that position
      let best = -1
      let bestLen = 0
      for (let k = 0; k < list.length; k++) {
        if (next[k]! !== -1 && next[k]! < pos) next[k] = buf.indexOf(list[k]!, pos)
        const p = next[k]!
        if (p === -1) continue
        if (best === -1 || p < best || (p === best && list[k]!.length > bestLen)) {
          best = p
          bestLen = list[k]!.length
        }
      }
      if (best === -1 || best >= holdFrom) {
        if (holdFrom > pos) out.push(buf.subarray(pos, holdFrom))
        carry = Buffer.from(buf.subarray(holdFrom)) // copy: the chunk's memory is not ours to keep
        break
      }
      if (best > pos) out.push(buf.subarray(pos, best))
      out.push(REPLACEMENT)
      pos = best + bestLen
    }
    if (out.length === 0) return EMPTY
    if (out.length === 1) return out[0]!
    return Buffer.concat(out)
  }

  return {
    push: (chunk) => {
      if (chunk.length === 0) return EMPTY
      const buf = carry.length === 0
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        : Buffer.concat([carry, chunk])
      return run(buf, false)
    },
    flush: () => {
      if (carry.length === 0) return EMPTY
      return run(carry, true) // final: nothing is undecided, so the carry ends empty
    },
    held: () => carry.length
  }
}

/**
 * Masks a whole string at once.
 *
 * @internal
 */
export const maskString = (secrets: ReadonlyArray<string>, text: string): string => {
  const m = makeMasker(secrets)
  const a = m.push(encoder.encode(text))
  const b = m.flush()
  return Buffer.concat([a, b]).toString("utf8")
}
