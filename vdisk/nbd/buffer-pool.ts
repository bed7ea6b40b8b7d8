// Reuses large I/O buffers: replies to reads that are not served from memory. A fresh multi-megabyte allocation is new pages from the
// kernel (page faults and zeroing on first touch, unmapping when collected); sequential 1 MiB
// requests would pay that for every one. Reply buffers come back once the socket has taken all
// their bytes.

export const MIN_POOLED = 64 * 1024;
const MAX_POOLED_BYTES = 64 * 1024 * 1024;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private pooledBytes = 0;

  private static classOf(size: number): number {
    return 2 ** Math.ceil(Math.log2(size));
  }

  /** A view of `size` bytes, not zeroed; pooled only when large. */
  take(size: number): Uint8Array {
    if (size < MIN_POOLED) return Buffer.allocUnsafe(size);
    const cls = BufferPool.classOf(size);
    const ab = this.free.get(cls)?.pop();
    if (ab) {
      this.pooledBytes -= cls;
      return new Uint8Array(ab, 0, size);
    }
    return new Uint8Array(new ArrayBuffer(cls), 0, size);
  }

  /** Returns a buffer from take(); the caller must not touch it afterwards. */
  give(buf: Uint8Array): void {
    const cls = buf.buffer.byteLength;
    if (buf.length < MIN_POOLED || cls !== BufferPool.classOf(buf.length) || this.pooledBytes + cls > MAX_POOLED_BYTES) return;
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    list.push(buf.buffer as ArrayBuffer);
    this.pooledBytes += cls;
  }
}

export const ioBuffers = new BufferPool();
