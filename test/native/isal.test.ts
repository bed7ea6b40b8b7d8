// Parity byte-for-byte against Intel ISA-L (libisal-dev), through the benchmark's C harness: ISA-L
// computes ec_encode_data with gf_gen_cauchy1_matrix, the matrix the native addon uses.
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rsEncode } from "../../native/index.ts";

test("parity equals ISA-L's for the same Cauchy code", () => {
  const dir = mkdtempSync(join(tmpdir(), "zos-isal-"));
  try {
    const bin = join(dir, "isal-ec-bench");
    const src = join(import.meta.dir, "..", "..", "bench", "native", "isal_ec_bench.c");
    const cc = spawnSync("cc", ["-O2", "-o", bin, src, "-lisal"], { encoding: "utf8" });
    expect(cc.stderr).toBe("");
    expect(cc.status).toBe(0);
    for (const [k, m, len] of [[10, 4, 4096], [4, 2, 1000], [17, 9, 333], [200, 56, 64]]) {
      const flat = crypto.getRandomValues(new Uint8Array(k * len));
      writeFileSync(join(dir, "data"), flat);
      const run = spawnSync(bin, [k, m, len, join(dir, "data"), join(dir, "parity"), 0.001].map(String), { encoding: "utf8" });
      expect(run.stderr).toBe("");
      expect(run.status).toBe(0);
      const isal = new Uint8Array(readFileSync(join(dir, "parity")));
      const data = Array.from({ length: k }, (_, j) => flat.subarray(j * len, (j + 1) * len));
      const ours = rsEncode(k, m, data);
      ours.forEach((p, i) => expect(new Uint8Array(p)).toEqual(isal.subarray(i * len, (i + 1) * len)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
