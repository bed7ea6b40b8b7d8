// What each subsystem (boot steps, config loading, listeners) last reported, so a failure that did
// not stop the node is still visible over RPC in node.info.
export interface SubsystemStatus {
  ok: boolean;
  detail: string;
  at: number;
}

export class Health {
  private entries = new Map<string, SubsystemStatus>();

  ok(name: string, detail = ""): void {
    this.entries.set(name, { ok: true, detail, at: Date.now() });
  }

  fail(name: string, error: unknown): void {
    this.entries.set(name, { ok: false, detail: error instanceof Error ? error.message : String(error), at: Date.now() });
  }

  snapshot(): Record<string, SubsystemStatus> {
    return Object.fromEntries(this.entries);
  }
}
