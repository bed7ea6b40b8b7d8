// A mount whose INIT fails before any reader thread started (here the handler's init() throws, as
// a read error or a first request other than INIT would) must reject with a FlistError and leave no
// unhandled promise rejection behind: a CLI using fuse-fs would exit on one.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlistError } from "../../fuse-fs/errors.ts";
import { FuseSession } from "../../fuse-fs/fuse/session.ts";

const dir = mkdtempSync(join(tmpdir(), "zflist-initfail-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("an INIT that fails before the readers start rejects the mount, with no unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    const handler = {
      handle: () => 38 /* ENOSYS */,
      init() {
        throw new Error("refused in init");
      },
    };
    const err = await FuseSession.mount(handler, { mountpoint: dir, rootMode: 0o40755, readers: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(FlistError);
    expect((err as Error).message).toContain("refused in init");
    // an unhandled rejection is reported after the microtask queue drains
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toEqual([]);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(` ${dir} `);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});
