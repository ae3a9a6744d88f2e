/**
 * Helpers shared by the command codecs: the body of a message starts after the 64-byte header
 * and every Offset field is relative to the start of that header (MS-SMB2 2.2).
 */
import { ErrorCode, WireError } from '../../errors.js';
import { Reader, Writer } from '../cursor.js';
import { NtStatus } from '../ntstatus.js';
import { SMB2_HEADER_SIZE } from './constants.js';
import { type Smb2Header, writeHeader } from './header.js';

/**
 * A Reader over the body of `msg`, after checking the body's StructureSize. Bodies with an
 * odd StructureSize have a variable part; their fixed part is StructureSize - 1 bytes.
 */
export function bodyReader(msg: Buffer, structureSize: number, what: string): Reader {
  const r = new Reader(msg, SMB2_HEADER_SIZE);
  const size = r.u16(`${what} StructureSize`);
  if (size !== structureSize) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `${what} StructureSize is ${size}, expected ${structureSize}`, NtStatus.STATUS_INVALID_PARAMETER);
  }
  r.need((structureSize & ~1) - 2, `${what} fixed part`);
  return r;
}

/** A Writer for a body, positioned as if the 64-byte header were before it (so offsets are header-relative). */
export function bodyWriter(structureSize: number): Writer {
  const w = new Writer(128);
  w.zeros(SMB2_HEADER_SIZE);
  w.u16(structureSize);
  return w;
}

/** The body bytes of a bodyWriter, with the header placeholder removed. */
export function finishBody(w: Writer): Buffer {
  return w.finish().subarray(SMB2_HEADER_SIZE);
}

/** Offset of the first byte after the fixed part of a body with this StructureSize. */
export function fixedEnd(structureSize: number): number {
  return SMB2_HEADER_SIZE + (structureSize & ~1);
}

/**
 * Writes a variable buffer at `offset` (header-relative) or, when undefined, at the current
 * position aligned to `align`; returns the offset used. An empty buffer yields offset 0
 * unless one was given.
 */
export function placeBuffer(w: Writer, data: Buffer, what: string, offset?: number, align = 1): number {
  if (offset === undefined) {
    if (data.length === 0) return 0;
    w.align(align);
    offset = w.pos;
  } else if (data.length === 0 && offset < w.pos) {
    return offset;
  }
  w.padTo(offset, what);
  w.bytes(data);
  return offset;
}

/** Checks that a value fits a 16-bit length, count or offset field. */
export function checkU16(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new WireError(ErrorCode.WIRE_ENCODE, `${what} ${value} does not fit 16 bits`);
  }
  return value;
}

/**
 * Places a buffer described by a 16-bit (offset, length) pair whose placeholder is at `at`
 * (as the SMB2 security buffers are) and patches the pair.
 */
export function placeBuffer16(w: Writer, at: number, data: Buffer, what: string, offset?: number): void {
  checkU16(data.length, `${what} length`);
  const used = placeBuffer(w, data, what, offset);
  w.setU16(at, checkU16(used, `${what} offset`)).setU16(at + 2, data.length);
}

/**
 * finishBody for a body with an odd StructureSize: such a size promises at least one byte of
 * variable part, so one zero byte is added when nothing follows the fixed part (MS-SMB2 2.2).
 */
export function finishVariableBody(w: Writer, structureSize: number): Buffer {
  if (w.pos === fixedEnd(structureSize)) w.zeros(1);
  return finishBody(w);
}

/** One SMB2 message: header then body. */
export function encodeMessage(h: Smb2Header, body: Buffer): Buffer {
  const w = new Writer(SMB2_HEADER_SIZE + body.length);
  writeHeader(w, h);
  w.bytes(body);
  return w.finish();
}
