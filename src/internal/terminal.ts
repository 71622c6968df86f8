/**
 * Exiting after the terminal went away. When it exits, Node restores the
 * settings of every stdio descriptor that was a TTY at start-up, and Node 20
 * aborts (SIGABRT, sometimes SIGSEGV) when that `tcsetattr` fails with EIO —
 * which it does once the terminal was hung up (nodejs/node#51519; newer lines
 * ignore the error since nodejs/node#58200). A `grove run` that cleaned up after
 * SIGHUP would then end with 134 or 139 instead of 129. Node skips a descriptor
 * that is closed, so grove closes those that stopped being a terminal first.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Tty from "node:tty"

/**
 * The stdio descriptors (0, 1, 2) that are terminals now: call it at start-up.
 *
 * @since 0.1.0
 * @category constructors
 */
export const terminalsAtStart = (): ReadonlyArray<number> => [0, 1, 2].filter((fd) => Tty.isatty(fd))

/**
 * Closes each of `fds` that is no longer a terminal (a hung-up terminal answers
 * EIO, so `isatty` is false), so that Node's exit does not try to restore it.
 * Call it right before `process.exit`: nothing can be written to them after.
 *
 * @since 0.1.0
 * @category utils
 */
export const closeHungUp = (fds: ReadonlyArray<number>): void => {
  for (const fd of fds) {
    if (Tty.isatty(fd)) continue
    try {
      Fs.closeSync(fd)
    } catch {
      // already closed: nothing to restore either
    }
  }
}
