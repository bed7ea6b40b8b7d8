// Zero-OS init. As PID 1 it boots the machine (pid1.ts); anywhere else it is a supervisor with the
// same RPC interface (host.ts). This file is what the initramfs runs, bundled with `bun build`.
import { ArgsError, parseInitArgs, usage, type InitArgs } from "./args.ts";
import { getpid } from "./libc.ts";
import { log } from "./log.ts";
import { runHostMode } from "./host.ts";
import { runPid1 } from "./pid1.ts";

const isPid1 = getpid() === 1;

// PID 1 must never die: every stray exception is logged and the node carries on
process.on("uncaughtException", (e) => log("error", "init", "uncaught exception", e));
process.on("unhandledRejection", (e) => log("error", "init", "unhandled rejection", e));

if (!isPid1 && process.argv.includes("--help")) {
  console.log(usage);
  process.exit(0);
}

let args: InitArgs;
try {
  args = parseInitArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof ArgsError)) throw e;
  if (!isPid1) {
    console.error(e.message);
    process.exit(2);
  }
  // the kernel passes unknown boot words to init; never refuse to boot over them
  log("warn", "init", `ignoring arguments: ${e.message.split("\n")[0]}`);
  args = parseInitArgs([]);
}

if (isPid1) {
  void runPid1(args);
  // keep the event loop alive even if every listener failed
  setInterval(() => {}, 1 << 30);
} else {
  runHostMode(args).catch((e) => {
    console.error(`init: ${(e as Error).message}`);
    process.exit(e instanceof ArgsError ? 2 : 1);
  });
}
