// The shared libraries an ELF binary needs at run time, found by asking the host's dynamic loader
// (ldd), so the initramfs carries exactly the libraries of the binaries copied from this machine.
// ldd output lines look like:
//   libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)     a resolved library
//   /lib64/ld-linux-x86-64.so.2 (0x...)                       the program interpreter
//   linux-vdso.so.1 (0x...)                                   provided by the kernel: skipped
//   libfoo.so.1 => not found                                  an error
//   statically linked / not a dynamic executable              no libraries
import { CommandError, run } from "./exec.ts";

export class SharedLibError extends Error {
  constructor(message: string, readonly binary: string) {
    super(`${binary}: ${message}`);
    this.name = "SharedLibError";
  }
}

export function parseLdd(binary: string, output: string): string[] {
  const libs: string[] = [];
  for (const line of output.split("\n").map((l) => l.trim()).filter(Boolean)) {
    if (/statically linked|not a dynamic executable/.test(line)) continue;
    const resolved = line.match(/^(\S+) => (\S+)/);
    if (resolved) {
      if (resolved[2] === "not") throw new SharedLibError(`library ${resolved[1]} not found`, binary);
      libs.push(resolved[2]);
      continue;
    }
    const interp = line.match(/^(\/\S+) \(0x[0-9a-f]+\)$/);
    if (interp) libs.push(interp[1]);
    // anything else (linux-vdso) is supplied by the kernel
  }
  return libs;
}

/** The absolute paths (as the loader names them) of every library `binary` loads, transitively. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  let out: string;
  try {
    out = await run(["ldd", binary]);
  } catch (e) {
    // ldd exits 1 on a static binary, saying so on stdout or stderr
    if (e instanceof CommandError && /not a dynamic executable|statically linked/.test(e.stderr)) return [];
    throw e;
  }
  return parseLdd(binary, out);
}
