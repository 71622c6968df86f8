/**
 * @since 0.1.0
 */
export * as Config from "./Config.js"
export * as Domain from "./Domain.js"
export * as Git from "./Git.js"
export * as GroveError from "./GroveError.js"
export * as Harness from "./Harness.js"
export * as Session from "./Session.js"
export * as Store from "./Store.js"
export * as WorktreePool from "./WorktreePool.js"
