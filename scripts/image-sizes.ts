// Prints what `make image` produced: each file's size and the initramfs by part (from its manifest).
import { existsSync, readFileSync, statSync } from "node:fs";
import { IMAGE } from "./boot-config.ts";
import { describe, type BuildResult } from "../initramfs/build.ts";

const MB = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const manifest = `${IMAGE.initramfs}.manifest.json`;
if (existsSync(manifest)) console.log(describe(JSON.parse(readFileSync(manifest, "utf8")) as BuildResult));
for (const path of [IMAGE.kernel, IMAGE.initramfs, IMAGE.ipxeScript, IMAGE.disk]) {
  console.log(`${(existsSync(path) ? MB(statSync(path).size) : "missing").padStart(10)}  ${path}`);
}
