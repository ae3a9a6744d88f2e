/**
 * SMB2 packet header, sync and async forms (MS-SMB2 2.2.1.1, 2.2.1.2).
 *
 * Two ways in: `decodeHeader`/`encodeHeader` for whole objects, and the `Hdr` offsets with the
 * get/set helpers for code on the forwarding path that rewrites a few fields in place.
 */
import { ErrorCode, WireError } from '../../errors.js';
import { expectField, Reader, Writer } from '../cursor.js';
import { NtStatus } from '../ntstatus.js';
import { SMB2_HEADER_SIZE, SMB2_PROTOCOL_ID, Smb2Flags } from './constants.js';

/** Byte offsets of the header fields (MS-SMB2 2.2.1). */
export const Hdr = {
  ProtocolId: 0,
  StructureSize: 4,
  CreditCharge: 6,
  /** Status in responses; ChannelSequence (2) + Reserved (2) in SMB 3.x requests. */
  Status: 8,
  Command: 12,
  /** CreditRequest in requests, CreditResponse in responses. */
  Credit: 14,
  Flags: 16,
  NextCommand: 20,
  MessageId: 24,
  /** Sync: Reserved (ProcessId, 4) then TreeId (4). Async: AsyncId (8). */
  Reserved: 32,
  TreeId: 36,
  AsyncId: 32,
  SessionId: 40,
  Signature: 48,
} as const;

export interface Smb2Header {
  CreditCharge: number;
  /** NTSTATUS in a response; in an SMB 3.x request ChannelSequence | Reserved << 16. */
  Status: number;
  Command: number;
  /** CreditRequest (requests) or CreditResponse (responses). */
  Credit: number;
  Flags: number;
  NextCommand: number;
  MessageId: bigint;
  /** Sync header only (MS-SMB2 2.2.1.2): the client's ProcessId, "SHOULD be 0xFEFF". */
  Reserved: number;
  /** Sync header only. */
  TreeId: number;
  /** Async header only (MS-SMB2 2.2.1.1). */
  AsyncId: bigint;
  SessionId: bigint;
  /** 16 bytes. */
  Signature: Buffer;
}

export function isAsync(h: Pick<Smb2Header, 'Flags'>): boolean {
  return (h.Flags & Smb2Flags.ASYNC_COMMAND) !== 0;
}
export function isResponse(h: Pick<Smb2Header, 'Flags'>): boolean {
  return (h.Flags & Smb2Flags.SERVER_TO_REDIR) !== 0;
}

/** Decodes the 64-byte header at the start of `msg`. */
export function decodeHeader(msg: Buffer): Smb2Header {
  const r = new Reader(msg);
  r.need(SMB2_HEADER_SIZE, 'SMB2 header');
  const protocolId = r.u32('ProtocolId');
  if (protocolId !== SMB2_PROTOCOL_ID) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `ProtocolId 0x${protocolId.toString(16)} is not SMB2`);
  }
  expectField(r.u16(), SMB2_HEADER_SIZE, 'SMB2 header StructureSize');
  const CreditCharge = r.u16();
  const Status = r.u32();
  const Command = r.u16();
  const Credit = r.u16();
  const Flags = r.u32();
  const NextCommand = r.u32();
  const MessageId = r.u64();
  let Reserved = 0;
  let TreeId = 0;
  let AsyncId = 0n;
  if (Flags & Smb2Flags.ASYNC_COMMAND) {
    AsyncId = r.u64();
  } else {
    Reserved = r.u32();
    TreeId = r.u32();
  }
  const SessionId = r.u64();
  const Signature = r.copy(16, 'Signature');
  return { CreditCharge, Status, Command, Credit, Flags, NextCommand, MessageId, Reserved, TreeId, AsyncId, SessionId, Signature };
}

export function writeHeader(w: Writer, h: Smb2Header): void {
  if (h.Signature.length !== 16) throw new WireError(ErrorCode.WIRE_ENCODE, `Signature must be 16 bytes, got ${h.Signature.length}`);
  w.u32(SMB2_PROTOCOL_ID).u16(SMB2_HEADER_SIZE).u16(h.CreditCharge).u32(h.Status).u16(h.Command).u16(h.Credit);
  w.u32(h.Flags).u32(h.NextCommand).u64(h.MessageId);
  if (h.Flags & Smb2Flags.ASYNC_COMMAND) w.u64(h.AsyncId);
  else w.u32(h.Reserved).u32(h.TreeId);
  w.u64(h.SessionId).bytes(h.Signature);
}

export function encodeHeader(h: Smb2Header): Buffer {
  const w = new Writer(SMB2_HEADER_SIZE);
  writeHeader(w, h);
  return w.finish();
}

/** A header with every field zero except those given (ProcessId defaults to 0xFEFF). */
export function header(fields: Partial<Smb2Header> & Pick<Smb2Header, 'Command'>): Smb2Header {
  return {
    CreditCharge: 0,
    Status: 0,
    Credit: 0,
    Flags: 0,
    NextCommand: 0,
    MessageId: 0n,
    Reserved: 0xfeff,
    TreeId: 0,
    AsyncId: 0n,
    SessionId: 0n,
    Signature: Buffer.alloc(16),
    ...fields,
  };
}

/** Checks that `msg` starts with a plausible SMB2 header without decoding it. */
export function checkHeader(msg: Buffer): void {
  if (msg.length < SMB2_HEADER_SIZE) {
    throw new WireError(ErrorCode.WIRE_TRUNCATED, `SMB2 message of ${msg.length} bytes is shorter than its header`);
  }
  if (msg.readUInt32LE(Hdr.ProtocolId) !== SMB2_PROTOCOL_ID) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, 'ProtocolId is not SMB2');
  }
  if (msg.readUInt16LE(Hdr.StructureSize) !== SMB2_HEADER_SIZE) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, 'SMB2 header StructureSize is not 64', NtStatus.STATUS_INVALID_PARAMETER);
  }
}

// In-place accessors for the forwarding path. `msg` starts at an SMB2 header.
export const getCommand = (msg: Buffer): number => msg.readUInt16LE(Hdr.Command);
export const getFlags = (msg: Buffer): number => msg.readUInt32LE(Hdr.Flags);
export const getNextCommand = (msg: Buffer): number => msg.readUInt32LE(Hdr.NextCommand);
export const getMessageId = (msg: Buffer): bigint => msg.readBigUInt64LE(Hdr.MessageId);
export const getSessionId = (msg: Buffer): bigint => msg.readBigUInt64LE(Hdr.SessionId);
export const getTreeId = (msg: Buffer): number => msg.readUInt32LE(Hdr.TreeId);
export const getStatus = (msg: Buffer): number => msg.readUInt32LE(Hdr.Status);
export const setMessageId = (msg: Buffer, v: bigint): void => void msg.writeBigUInt64LE(v, Hdr.MessageId);
export const setSessionId = (msg: Buffer, v: bigint): void => void msg.writeBigUInt64LE(v, Hdr.SessionId);
export const setTreeId = (msg: Buffer, v: number): void => void msg.writeUInt32LE(v, Hdr.TreeId);
export const setAsyncId = (msg: Buffer, v: bigint): void => void msg.writeBigUInt64LE(v, Hdr.AsyncId);
export const setCredit = (msg: Buffer, v: number): void => void msg.writeUInt16LE(v, Hdr.Credit);
export const setFlags = (msg: Buffer, v: number): void => void msg.writeUInt32LE(v >>> 0, Hdr.Flags);
export const setStatus = (msg: Buffer, v: number): void => void msg.writeUInt32LE(v >>> 0, Hdr.Status);
