/**
 * Bundles the `grove` executable into one file (`dist/bin/grove.js`): node then
 * reads one module instead of about 960, and a command starts in ≈ 0.4 s instead
 * of ≈ 1.2 s. better-sqlite3 stays outside (a native addon); `require` is given to
 * the CommonJS code inside the bundle.
 */
import * as esbuild from "esbuild"

await esbuild.build({
  entryPoints: ["src/bin.ts"],
  outfile: "dist/bin/grove.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["better-sqlite3"],
  banner: { js: "import { createRequire as __groveRequire } from 'node:module'; const require = __groveRequire(import.meta.url);" },
  legalComments: "none",
  logLevel: "warning"
})
