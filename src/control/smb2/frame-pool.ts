/**
 * Reusable buffers for large frames (READ responses, WRITE requests). Assembling an 8 MiB frame
 * in a fresh allocation costs page faults and garbage collection on every message: measured,
 * over 40% of the relay's CPU on a bulk transfer. A frame buffer comes back here once the frame
 * is on the wire; a frame nobody returns is simply collected.
 */
const MIN_POOLED = 1 << 20;
/** Idle bytes kept per size class. */
const IDLE_BYTES_PER_CLASS = 64 << 20;

export class FramePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly inUse = new WeakSet<ArrayBuffer>();

  /** A buffer of exactly `n` bytes: pooled when large, else an ordinary allocation. */
  take(n: number): Buffer {
    if (n < MIN_POOLED) return Buffer.allocUnsafe(n);
    const size = 2 ** Math.ceil(Math.log2(n));
    const ab = this.free.get(size)?.pop() ?? new ArrayBuffer(size);
    this.inUse.add(ab);
    return Buffer.from(ab, 0, n);
  }

  /**
   * Gives back the buffer behind `view` (any view of a pooled frame). Nothing happens for a
   * buffer that is not pooled or already given back, so a release can never hand one buffer
   * to two owners.
   */
  release(view: Buffer): void {
    const ab = view.buffer;
    if (!(ab instanceof ArrayBuffer) || !this.inUse.has(ab)) return;
    this.inUse.delete(ab);
    let list = this.free.get(ab.byteLength);
    if (!list) this.free.set(ab.byteLength, (list = []));
    if ((list.length + 1) * ab.byteLength <= IDLE_BYTES_PER_CLASS) list.push(ab);
  }
}

/** One pool for the process: both directions of every connection draw on it. */
export const framePool = new FramePool();
