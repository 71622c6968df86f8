#!/usr/bin/env node
/**
 * The `grove` executable: runs the command line and exits with its code. grove
 * handles SIGINT/SIGTERM/SIGHUP itself (see Cli.ts), so this is not NodeRuntime.runMain.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { layer, main } from "./Cli.js"
import * as Terminal from "./internal/terminal.js"

const terminals = Terminal.terminalsAtStart()

Effect.runFork(main(process.argv).pipe(Effect.provide(layer))).addObserver((exit) => {
  // after a SIGHUP the terminal may be gone: Node 20 would abort while restoring it
  Terminal.closeHungUp(terminals)
  process.exit(Exit.isSuccess(exit) ? exit.value : 70)
})
