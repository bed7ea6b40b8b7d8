// What each subsystem (boot steps, config loading, listeners) last reported, so a failure that did
// not stop the node is still visible over RPC in node.info.
export interface SubsystemStatus {
  ok: boolean;
  detail: string;
  at: number;
}

export class Health {
  private entries = new Map<string, SubsystemStatus>();
  /** The last snapshot, until the next report: node.info asks for one per call. */
  private last: Readonly<Record<string, SubsystemStatus>> | null = null;

  ok(name: string, detail = ""): void {
    this.entries.set(name, { ok: true, detail, at: Date.now() });
    this.last = null;
  }

  fail(name: string, error: unknown): void {
    this.entries.set(name, { ok: false, detail: error instanceof Error ? error.message : String(error), at: Date.now() });
    this.last = null;
  }

  /** Every subsystem's last report; shared between callers until the next report, so frozen. */
  snapshot(): Readonly<Record<string, SubsystemStatus>> {
    this.last ??= Object.freeze(Object.fromEntries(this.entries));
    return this.last;
  }
}
