/**
 * A bounded tail of a byte stream: a ring of the last `capacity` bytes.
 *
 * @since 0.1.0
 */

/**
 * @internal
 */
export interface Tail {
  readonly push: (bytes: Uint8Array) => void
  /** the last `capacity` bytes pushed (fewer when less was pushed), oldest first */
  readonly bytes: () => Uint8Array
  /** `bytes()` decoded as UTF-8, without a character cut in half at the start */
  readonly text: () => string
  /** every byte ever pushed */
  readonly total: () => number
}

/**
 * @internal
 */
export const makeTail = (capacity: number): Tail => {
  const size = Math.max(0, Math.floor(capacity))
  const ring = new Uint8Array(size)
  let start = 0 // index of the oldest byte
  let length = 0
  let total = 0

  const push = (bytes: Uint8Array): void => {
    total += bytes.length
    if (size === 0 || bytes.length === 0) return
    if (bytes.length >= size) {
      ring.set(bytes.subarray(bytes.length - size))
      start = 0
      length = size
      return
    }
    const end = (start + length) % size // where the next byte goes
    const first = Math.min(bytes.length, size - end)
    ring.set(bytes.subarray(0, first), end)
    ring.set(bytes.subarray(first), 0)
    const overflow = Math.max(0, length + bytes.length - size)
    length = Math.min(size, length + bytes.length)
    start = (start + overflow) % size
  }

  const bytes = (): Uint8Array => {
    const out = new Uint8Array(length)
    const first = Math.min(length, size - start)
    out.set(ring.subarray(start, start + first))
    out.set(ring.subarray(0, length - first), first)
    return out
  }

  const text = (): string => {
    const b = bytes()
    // a tail that starts inside a multi-byte character: skip its continuation bytes
    let skip = 0
    if (total > length) {
      while (skip < 3 && skip < b.length && (b[skip]! & 0xc0) === 0x80) skip++
    }
    return Buffer.from(b.buffer, b.byteOffset + skip, b.length - skip).toString("utf8")
  }

  return { push, bytes, text, total: () => total }
}
