// A bounded per-service log: the newest lines up to a line count and a byte budget, each stamped with
// the time it was read, plus subscribers that see every new line as it arrives (for `logs -f`).
export interface LogLine {
  ts: number;
  stream: "stdout" | "stderr";
  line: string;
}

export class LogRing {
  private lines: LogLine[] = [];
  private head = 0;
  private bytes = 0;
  private subscribers = new Set<(l: LogLine) => void>();

  constructor(readonly maxLines = 2000, readonly maxBytes = 512 * 1024, readonly maxLineBytes = 8192) {}

  push(stream: LogLine["stream"], text: string, ts = Date.now()): void {
    const line = text.length > this.maxLineBytes ? text.slice(0, this.maxLineBytes) + "…" : text;
    const entry: LogLine = { ts, stream, line };
    this.lines.push(entry);
    this.bytes += line.length;
    while (this.lines.length - this.head > this.maxLines || (this.bytes > this.maxBytes && this.lines.length - this.head > 1)) {
      this.bytes -= this.lines[this.head].line.length;
      this.head++;
    }
    // compact lazily so push stays O(1) amortised
    if (this.head > 1024 && this.head * 2 > this.lines.length) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
    for (const s of this.subscribers) s(entry);
  }

  /** The newest `n` lines (all when n is omitted), oldest first. */
  tail(n?: number): LogLine[] {
    const start = n === undefined ? this.head : Math.max(this.head, this.lines.length - n);
    return this.lines.slice(start);
  }

  get size(): { lines: number; bytes: number } {
    return { lines: this.lines.length - this.head, bytes: this.bytes };
  }

  subscribe(fn: (l: LogLine) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}

/** Splits a byte stream into lines and hands each complete line to `onLine`; a partial last line is flushed at end. */
export async function pumpLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, nl).replace(/\r$/, ""));
        pending = pending.slice(nl + 1);
      }
      if (pending.length > 64 * 1024) {
        onLine(pending);
        pending = "";
      }
    }
  } finally {
    reader.releaseLock();
  }
  pending += decoder.decode();
  if (pending) onLine(pending);
}
