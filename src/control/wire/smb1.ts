/**
 * The one SMB1 message the DSR reads: the multi-protocol NEGOTIATE request that older clients
 * send first to find out whether the server speaks SMB2 (MS-CIFS 2.2.4.52.1, MS-SMB2 3.3.5.3).
 * The DSR never answers in SMB1, so a malformed one ends the connection: these WireErrors
 * carry no status.
 */
import { ErrorCode, WireError } from '../errors.js';
import { Reader, Writer } from './cursor.js';
import { SMB1_PROTOCOL_ID } from './smb2/constants.js';

/** MS-CIFS 2.2.2.1 SMB_COM_NEGOTIATE. */
export const SMB1_COM_NEGOTIATE = 0x72;
export const SMB1_HEADER_SIZE = 32;

/** MS-CIFS 2.2.4.52.1 Dialects: each is BufferFormat 0x02 then a NUL-terminated OEM string. */
const DIALECT_BUFFER_FORMAT = 0x02;

/** The dialect strings that lead to SMB2 (MS-SMB2 3.3.5.3.1). */
export const SMB1_DIALECT_SMB2_002 = 'SMB 2.002';
export const SMB1_DIALECT_SMB2_WILDCARD = 'SMB 2.???';

/** MS-CIFS 2.2.3.1 SMB header and 2.2.4.52.1 request (WordCount 0, ByteCount implied). */
export interface Smb1NegotiateRequest {
  Status: number;
  Flags: number;
  Flags2: number;
  PIDHigh: number;
  /** 8 bytes. */
  SecurityFeatures: Buffer;
  Reserved: number;
  TID: number;
  PIDLow: number;
  UID: number;
  MID: number;
  /** OEM strings, kept byte for byte (latin1). */
  Dialects: string[];
}

function malformed(message: string): WireError {
  return new WireError(ErrorCode.WIRE_BAD_FIELD, message);
}

/** Decodes one whole SMB1 message (no NetBIOS framing); bytes after ByteCount are ignored. */
export function decodeSmb1Negotiate(frame: Buffer): Smb1NegotiateRequest {
  if (frame.length < SMB1_HEADER_SIZE + 3) {
    throw new WireError(ErrorCode.WIRE_TRUNCATED, `SMB1 NEGOTIATE of ${frame.length} bytes is too short`);
  }
  const r = new Reader(frame);
  const protocol = r.u32();
  if (protocol !== SMB1_PROTOCOL_ID) throw malformed(`ProtocolId 0x${protocol.toString(16)} is not SMB1`);
  const command = r.u8();
  if (command !== SMB1_COM_NEGOTIATE) throw malformed(`SMB1 Command 0x${command.toString(16)} is not NEGOTIATE`);
  const header = {
    Status: r.u32(),
    Flags: r.u8(),
    Flags2: r.u16(),
    PIDHigh: r.u16(),
    SecurityFeatures: r.copy(8),
    Reserved: r.u16(),
    TID: r.u16(),
    PIDLow: r.u16(),
    UID: r.u16(),
    MID: r.u16(),
  };
  const wordCount = r.u8();
  if (wordCount !== 0) throw malformed(`SMB1 NEGOTIATE WordCount is ${wordCount}, expected 0`);
  const byteCount = r.u16();
  if (byteCount > r.remaining) {
    throw new WireError(ErrorCode.WIRE_TRUNCATED, `SMB1 NEGOTIATE ByteCount ${byteCount} exceeds the ${r.remaining} bytes left`);
  }
  const end = r.pos + byteCount;
  const Dialects: string[] = [];
  for (let at = r.pos; at < end; ) {
    if (frame[at] !== DIALECT_BUFFER_FORMAT) {
      throw malformed(`SMB1 dialect BufferFormat at ${at} is 0x${frame[at]!.toString(16)}, expected 0x02`);
    }
    const nul = frame.indexOf(0, at + 1);
    if (nul < 0 || nul >= end) throw malformed(`SMB1 dialect at ${at} has no NUL terminator within ByteCount`);
    Dialects.push(frame.toString('latin1', at + 1, nul));
    at = nul + 1;
  }
  return { ...header, Dialects };
}

/** Encodes the whole SMB1 message (no NetBIOS framing). */
export function encodeSmb1Negotiate(req: Smb1NegotiateRequest): Buffer {
  if (req.SecurityFeatures.length !== 8) {
    throw new WireError(ErrorCode.WIRE_ENCODE, `SecurityFeatures must be 8 bytes, got ${req.SecurityFeatures.length}`);
  }
  const w = new Writer(SMB1_HEADER_SIZE + 64);
  w.u32(SMB1_PROTOCOL_ID).u8(SMB1_COM_NEGOTIATE).u32(req.Status).u8(req.Flags).u16(req.Flags2).u16(req.PIDHigh).bytes(req.SecurityFeatures);
  w.u16(req.Reserved).u16(req.TID).u16(req.PIDLow).u16(req.UID).u16(req.MID);
  w.u8(0);
  const at = w.pos;
  w.u16(0);
  for (const d of req.Dialects) {
    // latin1 would silently mangle wider characters, and a NUL would end the string early.
    if (/[^\x01-\xff]/.test(d)) {
      throw new WireError(ErrorCode.WIRE_ENCODE, `SMB1 dialect ${JSON.stringify(d)} is not a NUL-free OEM string`);
    }
    w.u8(DIALECT_BUFFER_FORMAT).bytes(Buffer.from(d, 'latin1')).u8(0);
  }
  const byteCount = w.pos - at - 2;
  if (byteCount > 0xffff) throw new WireError(ErrorCode.WIRE_ENCODE, `SMB1 dialects take ${byteCount} bytes, more than ByteCount can say`);
  w.setU16(at, byteCount);
  return w.finish();
}

/** Which SMB2 dialect strings an SMB1 NEGOTIATE offers; MS-SMB2 3.3.5.3.1 picks the answer from these. */
export function smb1OffersSmb2(dialects: readonly string[]): { smb2002: boolean; wildcard: boolean } {
  return { smb2002: dialects.includes(SMB1_DIALECT_SMB2_002), wildcard: dialects.includes(SMB1_DIALECT_SMB2_WILDCARD) };
}
