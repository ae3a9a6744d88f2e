/**
 * Reader/Writer cursors over Buffers (pg-protocol style). All SMB2 integers are little-endian.
 * Every read is bounds-checked and throws a WireError, never a RangeError, so a malformed frame
 * is always a typed error.
 */
import { ErrorCode, WireError } from '../errors.js';
import { NtStatus } from './ntstatus.js';

export class Reader {
  pos: number;
  readonly end: number;
  constructor(
    readonly buf: Buffer,
    pos = 0,
    end = buf.length,
  ) {
    if (pos < 0 || end > buf.length || pos > end) {
      throw new WireError(ErrorCode.WIRE_TRUNCATED, `reader window ${pos}..${end} outside ${buf.length} bytes`, NtStatus.STATUS_INVALID_PARAMETER);
    }
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new WireError(ErrorCode.WIRE_TRUNCATED, `${what}: need ${n} bytes at ${this.pos}, have ${this.end - this.pos}`, NtStatus.STATUS_INVALID_PARAMETER);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(what = 'u64'): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  u16be(what = 'u16be'): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32be(what = 'u32be'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  /** A view (no copy) of the next n bytes. */
  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** A copy of the next n bytes (for values that outlive the frame). */
  copy(n: number, what = 'bytes'): Buffer {
    return Buffer.from(this.bytes(n, what));
  }
  skip(n: number, what = 'skip'): void {
    this.need(n, what);
    this.pos += n;
  }
  /** Skips to the next multiple of `n` relative to `base`, if that is still inside the window. */
  alignTo(n: number, base = 0): void {
    const pad = (n - ((this.pos - base) % n)) % n;
    this.skip(pad, 'alignment');
  }
}

/**
 * Encoders get a WireError, not a RangeError, for a value its field cannot hold (a name too
 * long for a 16-bit length, say). 32-bit fields also take int32 bit patterns (JS `|` results).
 */
function checkRange(v: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new WireError(ErrorCode.WIRE_ENCODE, `${v} does not fit a ${what} field`);
}

export class Writer {
  private buf: Buffer;
  pos = 0;
  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    checkRange(v, 0, 0xff, 'u8');
    this.ensure(1);
    this.buf.writeUInt8(v, this.pos);
    this.pos += 1;
    return this;
  }
  u16(v: number): this {
    checkRange(v, 0, 0xffff, 'u16');
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
    return this;
  }
  u32(v: number): this {
    checkRange(v, -0x80000000, 0xffffffff, 'u32');
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }
  u64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
    return this;
  }
  u16be(v: number): this {
    checkRange(v, 0, 0xffff, 'u16');
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  u32be(v: number): this {
    checkRange(v, -0x80000000, 0xffffffff, 'u32');
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
  zeros(n: number): this {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return this;
  }
  /** Pads with zeros to the next multiple of `n` relative to `base`. */
  align(n: number, base = 0): this {
    return this.zeros((n - ((this.pos - base) % n)) % n);
  }
  /** Pads with zeros until `pos` reaches `at` (which must not be behind). */
  padTo(at: number, what: string): this {
    if (at < this.pos) throw new WireError(ErrorCode.WIRE_ENCODE, `${what}: offset ${at} is before ${this.pos}`);
    return this.zeros(at - this.pos);
  }
  setU16(at: number, v: number): this {
    checkRange(v, 0, 0xffff, 'u16');
    this.buf.writeUInt16LE(v, at);
    return this;
  }
  setU32(at: number, v: number): this {
    checkRange(v, -0x80000000, 0xffffffff, 'u32');
    this.buf.writeUInt32LE(v >>> 0, at);
    return this;
  }
  /** The written bytes (a view of the internal buffer; the writer must not be reused). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * A buffer described by an (offset, length) pair relative to `base` inside `msg`, checked
 * against the message bounds and against the fixed part it must not overlap (`minOffset`).
 * A zero length yields an empty buffer whatever the offset says (clients send offset 0 then).
 */
export function sliceField(msg: Buffer, offset: number, length: number, what: string, minOffset = 0, base = 0): Buffer {
  if (length === 0) return msg.subarray(0, 0);
  if (offset < minOffset || base + offset + length > msg.length) {
    throw new WireError(
      ErrorCode.WIRE_BAD_OFFSET,
      `${what}: offset ${offset} length ${length} outside ${minOffset}..${msg.length - base}`,
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  return msg.subarray(base + offset, base + offset + length);
}

export function decodeUtf16(b: Buffer): string {
  if (b.length % 2 !== 0) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `UTF-16 string of odd length ${b.length}`, NtStatus.STATUS_INVALID_PARAMETER);
  }
  return b.toString('utf16le');
}

export function encodeUtf16(s: string): Buffer {
  return Buffer.from(s, 'utf16le');
}

/** Checks a fixed field value, e.g. a StructureSize. */
export function expectField(actual: number, expected: number, what: string, status: number = NtStatus.STATUS_INVALID_PARAMETER): void {
  if (actual !== expected) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `${what} is ${actual}, expected ${expected}`, status);
  }
}
