import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // real git and real processes: keep the 2-core machines from thrashing
    maxWorkers: 2,
    minWorkers: 1
  }
})
