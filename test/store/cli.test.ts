// The zstore command line as an operator runs it: separate processes, a YAML config, real zdb servers.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { stringify } from "yaml";
import { ZdbProcess } from "./cluster.ts";
import { progressSink } from "../../store/commands/progress.ts";

// These tests start real processes; on a loaded 2-core machine that takes longer than Bun's 5 s default.
setDefaultTimeout(120_000);

const cli = join(import.meta.dir, "..", "..", "store", "cli.ts");
const work = mkdtempSync(join(tmpdir(), "zstore-cli-"));
const servers: ZdbProcess[] = [];
let config = "";

async function zstore(args: string[], stdin?: Uint8Array | string): Promise<{ code: number; stdout: string; stderr: string; raw: Uint8Array }> {
  const proc = Bun.spawn([process.execPath, cli, ...args], { stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [raw, stderr, code] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout: new TextDecoder().decode(raw), stderr, raw };
}

beforeAll(async () => {
  servers.push(...(await Promise.all(Array.from({ length: 6 }, () => ZdbProcess.start({ namespace: "blocks" })))));
  config = join(work, "zstore.yaml");
  writeFileSync(config, stringify({
    k: 4, m: 2, survive_group_loss: 1, timeout_ms: 5000, hedge_ms: 50,
    groups: [0, 1, 2].map((g) => ({ name: `dc${g}`, backends: [0, 1].map((b) => ({ url: servers[g * 2 + b].url("blocks", "?timeout=2000&retries=0"), key: `dc${g}-${b}` })) })),
    repair: { interval: "30s", concurrency: 4 },
  }));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.destroy()));
  rmSync(work, { recursive: true, force: true });
});

describe("zstore", () => {
  const file = randomBytes(3 * 512 * 1024 + 12345);
  let refs = "";

  test("put stores a file as rfs blocks and get brings it back", async () => {
    writeFileSync(join(work, "in.bin"), file);
    const put = await zstore(["put", "-c", config, join(work, "in.bin")]);
    expect(put.stderr).toBe("");
    expect(put.code).toBe(0);
    refs = put.stdout;
    expect(refs.trim().split("\n").length).toBe(4);
    const get = await zstore(["get", "-c", config, "-"], refs);
    expect(get.code).toBe(0);
    expect(Buffer.compare(get.raw, file)).toBe(0);
    const again = await zstore(["put", "-c", config, "-"], file); // stdin, same content, same refs
    expect(again.stdout).toBe(refs);
  });

  test("put/get also work on plain rfs routes", async () => {
    const dir = join(work, "blocks");
    const put = await zstore(["put", "-s", `00-7f=dir://${dir}`, "-s", `80-ff=dir://${dir}`, "-"], file);
    expect(put.code).toBe(0);
    const [id, key] = put.stdout.split("\n")[0].split(" ");
    expect(readFileSync(join(dir, id.slice(0, 2), id)).length).toBeGreaterThan(0);
    const get = await zstore(["get", "-s", `dir://${dir}`, `${id}:${key}`]);
    expect(Buffer.compare(get.raw, file.subarray(0, 512 * 1024))).toBe(0);
  });

  test("status reports healthy backends and full redundancy as JSON", async () => {
    const st = await zstore(["status", "-c", config, "--json"]);
    expect(st.code).toBe(0);
    const s = JSON.parse(st.stdout);
    expect(s.backends.length).toBe(6);
    expect(s.backends.every((b: { healthy: boolean }) => b.healthy)).toBe(true);
    expect(s.blocks).toMatchObject({ blocks: 4, degraded: 0 });
  });

  test("with a backend down: status says so, get still works, repair reports JSON lines", async () => {
    await servers[2].kill();
    const st = await zstore(["status", "-c", config]);
    expect(st.code).toBe(1);
    expect(st.stdout).toContain("DOWN");
    expect(st.stdout).toMatch(/below full redundancy: [1-4],/);
    const get = await zstore(["get", "-c", config, "-"], refs);
    expect(Buffer.compare(get.raw, file)).toBe(0);
    const rep = await zstore(["repair", "-c", config]);
    const lines = rep.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ event: "done", blocks: 4, unrecoverable: [] });
    expect(lines.some((l) => l.event === "progress" && l.phase === "repair")).toBe(true);
    expect(rep.code).toBe(lines.at(-1).stillDegraded > 0 ? 1 : 0);
  });

  test("repair --every keeps running passes until SIGTERM", async () => {
    const proc = Bun.spawn([process.execPath, cli, "repair", "-c", config, "--every", "100ms", "--no-verify"], { stdout: "pipe", stderr: "pipe" });
    const reader = proc.stdout.getReader();
    let text = "";
    while ((text.match(/"event":"done"/g) ?? []).length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect((text.match(/"event":"done"/g) ?? []).length).toBeGreaterThanOrEqual(2);
  });

  test("a bad config is refused with the key at fault", async () => {
    const bad = join(work, "bad.yaml");
    writeFileSync(bad, "k: 4\nm: 2\ngroups:\n  - name: dc1\n    backends: [\"zdb://h/ns\"]\n    weight: 3\n");
    const st = await zstore(["status", "-c", bad]);
    expect(st.code).toBe(1);
    expect(st.stderr).toContain("bad-config");
    expect(st.stderr).toContain("groups[0].weight: unknown key");
    const missing = await zstore(["status", "-c", join(work, "nope.yaml")]);
    expect(missing.stderr).toContain("cannot read config");
  });

  test("bench measures a store and leaves nothing behind", async () => {
    const dir = join(work, "bench");
    const run = await zstore(["bench", "-s", `dir://${dir}`, "--blocks", "8", "--size", "64k", "--parallel", "4"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^put [\d.]+ MB\/s, get [\d.]+ MB\/s \(8 blocks of 65536 bytes, 4 in flight\)/);
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(dir).flatMap((d) => readdirSync(join(dir, d)))).toEqual([]);
  });

  test("usage errors exit 2", async () => {
    expect((await zstore(["frobnicate"])).code).toBe(2);
    expect((await zstore(["get", "-c", config, "zz"])).code).toBe(2);
    expect((await zstore(["put", "-c", config])).code).toBe(2);
  });
});

describe("repair progress", () => {
  const report = { blocks: 2, healthy: 1, degraded: 1, misplaced: 0, repaired: 1, shardsWritten: 2, straysRemoved: 0, unrecoverable: [], stillDegraded: 0, unlisted: [] };
  function capture() {
    let text = "";
    return { stream: { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream, text: () => text };
  }

  test("draws a bar on a terminal", () => {
    const out = capture();
    const sink = progressSink(true, out.stream, out.stream);
    sink.update({ phase: "repair", done: 2, total: 2, repaired: 1, degraded: 1, unrecoverable: 0 });
    sink.done(report);
    expect(out.text()).toContain("\r[##############################] 2/2 100%");
    expect(out.text()).toContain("2 blocks: 1 healthy, 1 degraded, 1 repaired");
  });

  test("writes JSON lines otherwise", () => {
    const out = capture();
    const sink = progressSink(false, out.stream, out.stream);
    sink.update({ phase: "repair", done: 2, total: 2, repaired: 1, degraded: 1, unrecoverable: 0 });
    sink.done(report);
    const lines = out.text().trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { event: "progress", phase: "repair", done: 2, total: 2, repaired: 1, degraded: 1, unrecoverable: 0 },
      { event: "done", ...report },
    ]);
  });
});
