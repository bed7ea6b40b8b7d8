// Network boot with iPXE: a boot script that fetches kernel and initramfs over HTTP, and a small
// HTTP server for them.
//   bun scripts/ipxe.ts write [--base URL] [--admin KEY]...   writes out/boot.ipxe
//   bun scripts/ipxe.ts serve [--port N]                      serves out/ over HTTP (default 8080)
// --base defaults to ZOS_IPXE_BASE, else http://10.0.2.2:8080 (the host as QEMU user-net sees it).
// On a real network: put out/ behind any web server, write the script with --base pointing at it, and
// have DHCP hand out boot.ipxe (or type `chain http://server/boot.ipxe` at the iPXE prompt).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { parseArgs } from "node:util";
import { IMAGE, kernelCmdline, OUT } from "./boot-config.ts";
import { imageAdminKeys } from "./dev-key.ts";

export const DEFAULT_IPXE_BASE = "http://10.0.2.2:8080";

/** The iPXE script. initrd= names the initramfs for the kernel's EFI stub when iPXE runs under UEFI. */
export function ipxeScript(baseUrl: string, cmdline: string): string {
  const base = baseUrl.replace(/\/+$/, "");
  return [
    "#!ipxe",
    "# Zero-OS network boot: written by scripts/ipxe.ts",
    "dhcp",
    `kernel ${base}/vmlinuz initrd=initramfs.cpio.zst ${cmdline}`,
    `initrd ${base}/initramfs.cpio.zst`,
    "boot",
    "",
  ].join("\n");
}

export function writeIpxeScript(path: string, baseUrl: string, cmdline: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, ipxeScript(baseUrl, cmdline));
}

/** Serves the files of `root` (GET/HEAD only, no directory listings, no path escapes). */
export function serveDirectory(root: string, port: number, hostname = "127.0.0.1") {
  return Bun.serve({
    hostname, port,
    async fetch(req) {
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405 });
      const path = normalize(decodeURIComponent(new URL(req.url).pathname));
      if (path.includes("..")) return new Response("bad path\n", { status: 400 });
      const file = Bun.file(join(root, path));
      if (path.endsWith("/") || !(await file.exists())) return new Response("not found\n", { status: 404 });
      return new Response(file);
    },
  });
}

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { base: { type: "string" }, admin: { type: "string", multiple: true }, port: { type: "string", default: "8080" } },
  });
  if (positionals[0] === "write") {
    const base = values.base ?? process.env.ZOS_IPXE_BASE ?? DEFAULT_IPXE_BASE;
    const admin = values.admin?.length ? values.admin : imageAdminKeys();
    writeIpxeScript(IMAGE.ipxeScript, base, kernelCmdline({ admin }));
    console.log(`${IMAGE.ipxeScript}: kernel and initramfs from ${base}, admin ${admin.join(",")}`);
  } else if (positionals[0] === "serve") {
    const server = serveDirectory(OUT, Number(values.port));
    console.log(`serving ${OUT} on http://127.0.0.1:${server.port}/ (boot.ipxe, vmlinuz, initramfs.cpio.zst); ctrl-c stops`);
  } else {
    console.error("usage: bun scripts/ipxe.ts write [--base URL] [--admin KEY]... | serve [--port N]");
    process.exit(2);
  }
}
