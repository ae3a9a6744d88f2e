/**
 * Direct TCP transport framing (MS-SMB2 2.1): each SMB message is preceded by a 4-byte
 * header, one zero byte and a 24-bit big-endian StreamProtocolLength. On port 445 the only
 * other session-service type we accept is the RFC 1002 keepalive (0x85), which is dropped.
 */
import { ErrorCode, WireError } from '../errors.js';

export const NETBIOS_HEADER_SIZE = 4;
/** The length field has 24 bits. */
export const NETBIOS_MAX_LENGTH = 0xffffff;
const SESSION_MESSAGE = 0x00;
const SESSION_KEEPALIVE = 0x85;

export function encodeFrameHeader(length: number): Buffer {
  if (length < 0 || length > NETBIOS_MAX_LENGTH) {
    throw new WireError(ErrorCode.WIRE_ENCODE, `frame length ${length} does not fit 24 bits`);
  }
  const h = Buffer.alloc(NETBIOS_HEADER_SIZE);
  h.writeUInt32BE(length, 0);
  return h;
}

/** One frame: header + payload, as a single Buffer. */
export function encodeFrame(payload: Buffer): Buffer {
  return Buffer.concat([encodeFrameHeader(payload.length), payload]);
}

/**
 * Incremental frame decoder. `push` takes any chunking of the byte stream and returns every
 * complete frame payload. Oversize frames and unknown session types throw a WireError with no
 * status: the stream cannot be resynchronised, so the connection must be closed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Payload length of the frame being collected, or -1 while its header is incomplete. */
  private want = -1;

  /** `alloc` provides the buffer a frame spanning several chunks is assembled in (a pool, for large frames). */
  constructor(
    readonly maxFrame: number,
    private readonly alloc: (n: number) => Buffer = Buffer.allocUnsafe,
  ) {
    if (maxFrame <= 0 || maxFrame > NETBIOS_MAX_LENGTH) {
      throw new WireError(ErrorCode.WIRE_ENCODE, `maxFrame ${maxFrame} outside 1..${NETBIOS_MAX_LENGTH}`);
    }
  }

  /** Bytes received but not yet returned as a frame. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Buffer[] {
    return this.frames(chunk, Infinity, 0) as Buffer[];
  }

  /**
   * Like `push`, but a frame of `above` bytes or more comes as a list of views into the
   * received chunks, not copied into one buffer; its first element holds at least its first
   * `head` bytes, so a header can be read and rewritten there.
   */
  pushSegmented(chunk: Buffer, above: number, head: number): (Buffer | Buffer[])[] {
    return this.frames(chunk, above, head);
  }

  private frames(chunk: Buffer, above: number, head: number): (Buffer | Buffer[])[] {
    const out: (Buffer | Buffer[])[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.want < 0) {
        if (this.buffered < NETBIOS_HEADER_SIZE) break;
        const h = this.take(NETBIOS_HEADER_SIZE);
        const type = h[0]!;
        const length = h.readUIntBE(1, 3);
        if (type === SESSION_KEEPALIVE && length === 0) continue;
        if (type !== SESSION_MESSAGE) {
          throw new WireError(ErrorCode.WIRE_FRAMING, `NetBIOS session type 0x${type.toString(16)} is not a session message`);
        }
        if (length > this.maxFrame) {
          throw new WireError(ErrorCode.WIRE_OVERSIZE, `frame of ${length} bytes exceeds the maximum ${this.maxFrame}`);
        }
        this.want = length;
      }
      if (this.buffered < this.want) break;
      out.push(this.want >= above && this.want > head ? [this.take(head), ...this.views(this.want - head)] : this.take(this.want));
      this.want = -1;
    }
    return out;
  }

  /** Removes n buffered bytes as views of the chunks they arrived in (no copy). */
  private views(n: number): Buffer[] {
    this.buffered -= n;
    const out: Buffer[] = [];
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        out.push(c);
        this.chunks.shift();
        n -= c.length;
      } else {
        out.push(c.subarray(0, n));
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
    return out;
  }

  /** Removes n buffered bytes, copying only when they span chunks. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = this.alloc(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const m = Math.min(c.length, n - at);
      c.copy(out, at, 0, m);
      at += m;
      if (m === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(m);
    }
    return out;
  }
}
