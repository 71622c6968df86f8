/**
 * Bundles the `grove` executable (`dist/bin/grove.js`): node then reads a few
 * modules instead of about 960, and a command starts in ≈ 0.2 s instead of ≈ 1.2 s.
 * better-sqlite3 stays outside (a native addon); `require` is given to the
 * CommonJS code inside the bundle.
 *
 * Code splitting: what only one command needs and is large — `grove serve`'s HTTP
 * server, with swagger-ui's 2 MB inlined — is loaded by that command with a dynamic
 * `import()`, and esbuild puts it in its own chunk under `dist/bin/chunks/`, so the
 * other commands do not parse it.
 *
 * The dashboard of `grove serve` (`src/dashboard/`, browser code) is bundled first,
 * for the browser, into `dist/src/dashboard/app.js` and `app.css` (read by the
 * library's `server/dashboard.js` from beside it) and embedded in the executable as
 * the constant `__GROVE_DASHBOARD__`, so `grove serve` needs no file at run time.
 */
import * as esbuild from "esbuild"
import * as Fs from "node:fs"

Fs.rmSync("dist/bin/chunks", { recursive: true, force: true })

const dashboard = await esbuild.build({
  entryPoints: { app: "src/dashboard/main.ts" },
  outdir: "dist/src/dashboard",
  bundle: true,
  platform: "browser",
  format: "iife",
  target: "es2022",
  minify: true,
  // Domain.ts checks a test's cwd with node:path; the browser gets a POSIX copy
  alias: { "node:path": "./src/dashboard/path.ts" },
  legalComments: "none",
  logLevel: "warning",
  write: false
})
const assets = {}
Fs.mkdirSync("dist/src/dashboard", { recursive: true })
for (const file of dashboard.outputFiles) {
  Fs.writeFileSync(file.path, file.contents)
  assets[file.path.slice(file.path.lastIndexOf("/") + 1)] = file.text
}
if (assets["app.js"] === undefined || assets["app.css"] === undefined) {
  throw new Error(`the dashboard bundle lacks app.js or app.css: it made ${Object.keys(assets).join(", ")}`)
}

/** how node code is bundled: the executable, and the benchmark that measures its memory */
const node = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["better-sqlite3"],
  banner: { js: "import { createRequire as __groveRequire } from 'node:module'; const require = __groveRequire(import.meta.url);" },
  legalComments: "none",
  // names stay (no identifier minification): a defect's stack still names its functions.
  // Without comments and blanks node keeps 1.5 MiB less of the modules live (11.3 vs
  // 12.8 MiB after `grove --version`) and B1's CLI path peaks 13 MiB lower
  minifyWhitespace: true,
  minifySyntax: true,
  // what only one command loads (`grove serve`'s server) stays in chunks of its own
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  logLevel: "warning"
}

await esbuild.build({
  ...node,
  entryPoints: { grove: "src/bin.ts" },
  outdir: "dist/bin",
  define: { __GROVE_DASHBOARD__: JSON.stringify(JSON.stringify({ js: assets["app.js"], css: assets["app.css"] })) }
})

// `--bench`: B1, bundled as the executable is, for its `--path cli` memory figure —
// what node keeps of a bundle's modules is about half of what it keeps of the same
// modules read one file at a time (10 vs 21 MiB of live heap), and each live MiB
// costs about four of peak RSS
if (process.argv.includes("--bench")) {
  Fs.rmSync("dist/bench/bundle", { recursive: true, force: true })
  await esbuild.build({
    ...node,
    entryPoints: { b1: "bench/b1.ts" },
    outdir: "dist/bench/bundle",
    define: { __GROVE_BUNDLED__: "true" }
  })
}
