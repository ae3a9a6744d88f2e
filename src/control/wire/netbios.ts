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

/** A frame header's payload length, -1 for a keepalive; throws for anything else a stream cannot resync from. */
function payloadLength(h: Buffer, maxFrame: number): number {
  const type = h[0]!;
  const length = h.readUIntBE(1, 3);
  if (type === SESSION_KEEPALIVE && length === 0) return -1;
  if (type !== SESSION_MESSAGE) {
    throw new WireError(ErrorCode.WIRE_FRAMING, `NetBIOS session type 0x${type.toString(16)} is not a session message`);
  }
  if (length > maxFrame) {
    throw new WireError(ErrorCode.WIRE_OVERSIZE, `frame of ${length} bytes exceeds the maximum ${maxFrame}`);
  }
  return length;
}

function checkMaxFrame(maxFrame: number): void {
  if (maxFrame <= 0 || maxFrame > NETBIOS_MAX_LENGTH) {
    throw new WireError(ErrorCode.WIRE_ENCODE, `maxFrame ${maxFrame} outside 1..${NETBIOS_MAX_LENGTH}`);
  }
}

/**
 * Incremental frame decoder. `push` takes any chunking of the byte stream and returns every
 * complete frame payload. Each frame is copied, as its bytes arrive, into a buffer of its own
 * from `alloc` (a pool, for large frames): nothing returned is a view of a chunk, so a chunk
 * may be overwritten as soon as `push` returns (a socket reading into one reused buffer, see
 * smb2/transport.ts). Oversize frames and unknown session types throw a WireError with no
 * status: the stream cannot be resynchronised, so the connection must be closed.
 */
export class FrameDecoder {
  private readonly head = Buffer.alloc(NETBIOS_HEADER_SIZE);
  private headFilled = 0;
  /** The frame being filled, once its header is in. */
  private frame: Buffer | undefined;
  private filled = 0;

  constructor(
    readonly maxFrame: number,
    private readonly alloc: (n: number) => Buffer = Buffer.allocUnsafe,
  ) {
    checkMaxFrame(maxFrame);
  }

  /** Bytes received but not yet returned as a frame. */
  get pending(): number {
    return this.headFilled + (this.frame ? NETBIOS_HEADER_SIZE + this.filled : 0);
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (!this.frame) {
        const n = chunk.copy(this.head, this.headFilled, at, at + NETBIOS_HEADER_SIZE - this.headFilled);
        this.headFilled += n;
        at += n;
        if (this.headFilled < NETBIOS_HEADER_SIZE) break;
        this.headFilled = 0;
        const length = payloadLength(this.head, this.maxFrame);
        if (length < 0) continue;
        if (length === 0) {
          out.push(Buffer.alloc(0));
          continue;
        }
        this.frame = this.alloc(length);
        this.filled = 0;
      }
      const n = chunk.copy(this.frame, this.filled, at, at + this.frame.length - this.filled);
      this.filled += n;
      at += n;
      if (this.filled === this.frame.length) {
        out.push(this.frame);
        this.frame = undefined;
      }
    }
    return out;
  }
}
