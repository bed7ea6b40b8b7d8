// Starts a Zero-OS node in QEMU (software emulation: KVM hangs on this machine kind) and watches
// its serial console. Used by `make run`, the whole-OS tests and the boot benchmark.
// Three ways in: direct kernel boot (-kernel/-initrd/-append), a disk image under OVMF (UEFI),
// or network boot through the NIC's iPXE ROM with user-net TFTP serving the boot script.
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";

export class QemuError extends Error {
  constructor(message: string, readonly consoleLog?: string) {
    super(message);
    this.name = "QemuError";
  }
}

export interface PortForward { hostPort: number; guestPort: number }

export interface QemuOptions {
  /** Direct kernel boot. */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** A raw disk image to boot from (out/zos.img); opened with snapshot=on so the image is not changed. */
  bootDisk?: string;
  /** Boot with OVMF (UEFI) instead of SeaBIOS. */
  uefi?: boolean;
  /** Network boot: user-net TFTP serves `bootfile` from `tftpRoot`; the NIC's iPXE ROM fetches it. */
  netboot?: { tftpRoot: string; bootfile: string };
  /** A raw or qcow2 image attached as a virtio disk (the node's state disk). */
  stateDisk?: string;
  memoryMiB?: number;
  cpus?: number;
  nic?: "virtio-net-pci" | "e1000";
  forwards?: PortForward[];
  /** Every console byte is appended here. */
  consoleLog: string;
  /** Also copy the console to this process's stdout (make run). */
  echo?: boolean;
  /** A guest reboot ends QEMU instead of restarting the machine (tests boot again explicitly). */
  noReboot?: boolean;
  /** Start QEMU in its own session, so a ctrl-c in the terminal reaches only our handler. */
  ownSession?: boolean;
}

export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";

/** A TCP port that was free a moment ago on 127.0.0.1 (for user-net host forwards). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function qemuArgs(o: QemuOptions): string[] {
  const args = [
    ...(o.ownSession ? ["setsid"] : []),
    "qemu-system-x86_64", "-machine", "q35", "-cpu", "max", "-accel", "tcg",
    "-m", String(o.memoryMiB ?? 2048), "-smp", String(o.cpus ?? 2),
    "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-monitor", "none",
    "-device", "virtio-rng-pci",
  ];
  if (o.noReboot ?? true) args.push("-no-reboot");
  if (o.uefi) {
    if (!existsSync(OVMF_CODE)) throw new QemuError(`${OVMF_CODE} is missing (apt-get install ovmf)`);
    args.push("-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`);
  }
  if (o.kernel) {
    args.push("-kernel", o.kernel);
    if (o.initrd) args.push("-initrd", o.initrd);
    if (o.cmdline) args.push("-append", o.cmdline);
  }
  if (o.bootDisk) args.push("-drive", `file=${o.bootDisk},format=raw,if=none,id=boot,snapshot=on`, "-device", "virtio-blk-pci,drive=boot,bootindex=1");
  if (o.stateDisk) {
    const format = o.stateDisk.endsWith(".qcow2") ? "qcow2" : "raw";
    args.push("-drive", `file=${o.stateDisk},format=${format},if=none,id=state`, "-device", "virtio-blk-pci,drive=state,serial=zos-state");
  }
  const fwd = (o.forwards ?? []).map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`).join("");
  const tftp = o.netboot ? `,tftp=${o.netboot.tftpRoot},bootfile=${o.netboot.bootfile}` : "";
  args.push("-netdev", `user,id=net0${fwd}${tftp}`, "-device", `${o.nic ?? "virtio-net-pci"},netdev=net0${o.netboot ? ",bootindex=0" : ""}`);
  if (o.netboot) args.push("-boot", "n");
  return args;
}

export interface TimelineEvent { atMs: number; what: string }

/** A running VM: its console text so far, a timeline, and ways to wait on both. */
export class QemuVm {
  readonly startedAt = performance.now();
  readonly timeline: TimelineEvent[] = [];
  readonly exited: Promise<number>;
  #console = "";
  #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  readonly #proc: ReturnType<typeof Bun.spawn>;
  #exitCode: number | null = null;

  constructor(readonly options: QemuOptions) {
    writeFileSync(options.consoleLog, "");
    this.#proc = Bun.spawn(qemuArgs(options), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    this.mark("qemu started");
    this.#pump(this.#proc.stdout as ReadableStream<Uint8Array>, false);
    this.#pump(this.#proc.stderr as ReadableStream<Uint8Array>, true);
    this.exited = this.#proc.exited.then((code) => {
      this.#exitCode = code;
      this.mark(`qemu exited ${code}`);
      return code;
    });
  }

  get console(): string {
    return this.#console;
  }

  get pid(): number {
    return this.#proc.pid;
  }

  /** Milliseconds since QEMU was started. */
  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  mark(what: string): void {
    this.timeline.push({ atMs: Math.round(this.elapsedMs()), what });
  }

  timelineText(): string {
    return this.timeline.map((e) => `${(e.atMs / 1000).toFixed(1).padStart(7)} s  ${e.what}`).join("\n");
  }

  async #pump(stream: ReadableStream<Uint8Array>, isStderr: boolean): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      const shown = isStderr ? text.replace(/^/gm, "[qemu] ") : text;
      this.#console += shown;
      appendFileSync(this.options.consoleLog, shown);
      if (this.options.echo) process.stdout.write(shown);
      this.#waiters = this.#waiters.filter((w) => {
        const m = this.#console.match(w.re);
        if (m) w.resolve(m);
        return !m;
      });
    }
  }

  /**
   * Resolves with the first match of `re` in the console (from the start), marking the timeline.
   * Rejects with the console log attached on timeout or when QEMU exits first.
   */
  async waitFor(re: RegExp, label: string, timeoutMs: number): Promise<RegExpMatchArray> {
    const already = this.#console.match(re);
    if (already) {
      this.mark(label);
      return already;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const m = await Promise.race([
        new Promise<RegExpMatchArray>((resolve) => this.#waiters.push({ re, resolve })),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(this.failure(`timed out after ${timeoutMs / 1000} s waiting for ${label}`)), timeoutMs); }),
        this.exited.then((code) => {
          // output may still be in flight when the exit is seen
          const late = this.#console.match(re);
          if (late) return late;
          throw this.failure(`QEMU exited ${code} before ${label}`);
        }),
      ]);
      this.mark(label);
      return m;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A QemuError whose message carries the timeline and the console's last lines. */
  failure(what: string): QemuError {
    const tail = this.#console.split("\n").slice(-80).join("\n");
    return new QemuError(`${what}\ntimeline:\n${this.timelineText()}\nconsole (last 80 lines, full log ${this.options.consoleLog}):\n${tail}`, this.options.consoleLog);
  }

  /** Waits for QEMU to exit by itself; on timeout kills it and throws. */
  async waitExit(timeoutMs: number): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(this.failure(`QEMU still running after ${timeoutMs / 1000} s`)), timeoutMs); }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends QEMU if it still runs (SIGTERM, then SIGKILL after 5 s). */
  async stop(): Promise<void> {
    if (this.#exitCode !== null) return;
    this.#proc.kill("SIGTERM");
    const t = setTimeout(() => this.#proc.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
  }
}
