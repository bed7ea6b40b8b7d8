import { describe, expect, test } from "bun:test";
import { parseZosCmdline } from "../../init/boot/cmdline.ts";
import { unmountOrder } from "../../init/boot/final.ts";
import { parseMountinfo } from "../../init/boot/mounts.ts";
import { loadOrder, moduleName, parseModulesDep } from "../../init/boot/modules.ts";
import { base58Decode, base58Encode } from "../../init/identity/base58.ts";
import { generateKeyPair, keyId, parsePublicKey } from "../../init/identity/ed25519.ts";
import { parseNodeAddress } from "../../init/rpc/client.ts";
import { s, SchemaError } from "../../init/rpc/schema.ts";
import { parseInitArgs } from "../../init/args.ts";
import { TrustStore } from "../../init/rpc/trust.ts";
import { writeFileSync } from "node:fs";
import { tempDir } from "./helpers.ts";

describe("kernel command line", () => {
  test("zos options, comma lists, repeats, flags and quoting", () => {
    const c = parseZosCmdline('console=ttyS0 zos.admin=AAA,BBB zos.store=dir:///a zos.store="zdb://h:9900/ns" zos.debug quiet zos.state=/dev/vdb zos.reader=CCC\n');
    expect(c).toMatchObject({ admin: ["AAA", "BBB"], reader: ["CCC"], operator: [], store: ["dir:///a", "zdb://h:9900/ns"], state: "/dev/vdb", debug: true });
    expect(parseZosCmdline("quiet").debug).toBe(false);
  });
});

describe("modules.dep", () => {
  test("dependencies load first, each module once", () => {
    const deps = parseModulesDep([
      "kernel/drivers/block/nbd.ko.xz:",
      "kernel/fs/overlayfs/overlay.ko:",
      "kernel/drivers/net/virtio_net.ko.zst: kernel/net/core/failover.ko kernel/drivers/net/net_failover.ko",
      "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko",
      "kernel/net/core/failover.ko:",
    ].join("\n"));
    const order = loadOrder(deps);
    expect(order).toHaveLength(5);
    const at = (m: string) => order.findIndex((p) => p.includes(m));
    expect(at("/failover.ko")).toBeLessThan(at("net_failover"));
    expect(at("net_failover")).toBeLessThan(at("virtio_net"));
    expect(moduleName("kernel/drivers/net/virtio_net.ko.zst")).toBe("virtio_net");
    expect(moduleName("x/snd-hda-intel.ko")).toBe("snd_hda_intel");
  });
});

describe("keys and addresses", () => {
  test("base58 round trip keeps leading zeros", () => {
    for (const bytes of [new Uint8Array([0, 0, 1, 2]), new Uint8Array(32).fill(255), new Uint8Array(0)]) expect(base58Decode(base58Encode(bytes))).toEqual(bytes);
    expect(base58Encode(new Uint8Array([0, 0, 0x39]))).toBe("11z");
  });
  test("public keys in base58 or hex", () => {
    const k = generateKeyPair();
    expect(parsePublicKey(keyId(k.publicKey))).toEqual(k.publicKey);
    expect(parsePublicKey(Buffer.from(k.publicKey).toString("hex"))).toEqual(k.publicKey);
    expect(() => parsePublicKey("0OIl")).toThrow(/base58/);
    expect(() => parsePublicKey("abc")).toThrow(/32/);
  });
  test("node addresses", () => {
    expect(parseNodeAddress("10.0.0.5")).toEqual({ kind: "tcp", host: "10.0.0.5", port: 7722 });
    expect(parseNodeAddress("node1:9000")).toEqual({ kind: "tcp", host: "node1", port: 9000 });
    expect(parseNodeAddress("[::1]:1")).toEqual({ kind: "tcp", host: "::1", port: 1 });
    expect(parseNodeAddress("unix:/run/zos.sock")).toEqual({ kind: "unix", path: "/run/zos.sock" });
    expect(() => parseNodeAddress("h:99999")).toThrow(/port/);
  });
  test("init flags", () => {
    const k = keyId(generateKeyPair().publicKey);
    expect(parseInitArgs(["--listen", "127.0.0.1:0", "--admin-key", k, "--reader-key", k])).toMatchObject({ listen: [{ host: "127.0.0.1", port: 0 }], keys: [{ role: "admin" }, { role: "reader" }] });
    expect(() => parseInitArgs(["--admin-key", "nope"])).toThrow(/--admin-key/);
    expect(() => parseInitArgs(["--listen", "7722"])).toThrow(/HOST:PORT/);
  });
});

describe("parameter schemas", () => {
  const schema = s.object({ name: s.string({ max: 8 }), n: s.optional(s.int({ min: 0 })), tags: s.optional(s.array(s.oneOf(["a", "b"]))) });
  test("typed values pass, optional fields may be absent", () => {
    expect(schema.parse({ name: "x", n: 3, tags: ["a"] }, "")).toEqual({ name: "x", n: 3, tags: ["a"] });
    expect(schema.parse({ name: "x" }, "")).toEqual({ name: "x" });
  });
  test("errors name the path", () => {
    const bad: [unknown, string][] = [[{}, "name"], [{ name: 1 }, "name"], [{ name: "x", n: -1 }, "n"], [{ name: "x", n: 1.5 }, "n"], [{ name: "x", tags: ["c"] }, "tags[0]"], [{ name: "x", zz: 1 }, "zz"], [[1], ""]];
    for (const [v, path] of bad) {
      try {
        schema.parse(v, "");
        throw new Error(`accepted ${JSON.stringify(v)}`);
      } catch (e) {
        expect(e).toBeInstanceOf(SchemaError);
        expect((e as SchemaError).path).toBe(path);
      }
    }
  });
});

describe("trusted keys file", () => {
  test("roles per line, comments, highest role wins, bad lines named", () => {
    const d = tempDir();
    try {
      const [a, b] = [generateKeyPair(), generateKeyPair()];
      writeFileSync(`${d.path}/keys`, `# operators of the farm\nreader ${keyId(a.publicKey)} laptop\n\nadmin ${Buffer.from(a.publicKey).toString("hex")}\noperator ${keyId(b.publicKey)}\n`);
      const t = new TrustStore();
      t.addFile(`${d.path}/keys`);
      expect(t.roleOf(a.publicKey)).toBe("admin");
      expect(t.roleOf(b.publicKey)).toBe("operator");
      expect(t.roleOf(generateKeyPair().publicKey)).toBeUndefined();
      writeFileSync(`${d.path}/bad`, `reader ${keyId(a.publicKey)}\nroot ${keyId(b.publicKey)}\n`);
      expect(() => new TrustStore().addFile(`${d.path}/bad`)).toThrow(`${d.path}/bad:2: role must be one of`);
    } finally {
      d.cleanup();
    }
  });
});

describe("shutdown unmount order", () => {
  test("newest first, so an overlay goes before the FUSE flist under it; root and kernel filesystems stay", () => {
    const mountinfo = [
      "22 1 0:21 / / rw - rootfs rootfs rw",
      "23 22 0:22 / /proc rw,nosuid - proc proc rw",
      "24 22 0:23 / /sys rw - sysfs sysfs rw",
      "25 22 0:5 / /dev rw - devtmpfs devtmpfs rw",
      "26 22 0:24 / /run rw - tmpfs tmpfs rw",
      "30 22 254:16 / /var/lib/zos rw - ext4 /dev/vdb rw",
      "31 26 0:40 / /run/flists/my\\040app rw - fuse.zos-fs zos rw",
      "32 31 0:41 / /run/containers/c1/rootfs rw - overlay overlay rw",
      "33 26 0:42 / /run/flists/other rw - fuse zos rw",
    ].join("\n");
    const order = unmountOrder(parseMountinfo(mountinfo)).map((m) => m.target);
    expect(order).toEqual(["/run/flists/other", "/run/containers/c1/rootfs", "/run/flists/my app", "/var/lib/zos", "/run"]);
  });
});
