/**
 * `node:path` for the browser bundle: the two functions `Domain.ts` uses (in the
 * `cwd` filter of `TestRequest`, which decoding a `TestQueued` event runs), POSIX
 * semantics, as Node's `path.posix`. `scripts/bundle.mjs` aliases `node:path` here.
 */
const isAbsolute = (p: string): boolean => p.startsWith("/")

const normalize = (p: string): string => {
  if (p === "") return "."
  const absolute = p.startsWith("/")
  const out: Array<string> = []
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop()
      else if (!absolute) out.push("..")
    } else out.push(part)
  }
  const joined = (absolute ? "/" : "") + out.join("/")
  const trailing = p.endsWith("/") && out.length > 0 ? "/" : ""
  return joined === "" ? "." : joined + trailing
}

export const posix = { isAbsolute, normalize }
export { isAbsolute, normalize }
export default posix
