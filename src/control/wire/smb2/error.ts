/**
 * The SMB2 ERROR response (MS-SMB2 2.2.2) with its SMB 3.1.1 error contexts (2.2.2.1), and the
 * ErrorData formats the DSR reads or writes: Symbolic Link (2.2.2.2.1, decode only) and Share
 * Redirect (2.2.2.2.2). The same body answers any command, so callers pick this codec by Status.
 */
import { ErrorCode, WireError } from '../../errors.js';
import { decodeUtf16, encodeUtf16, Reader, sliceField, Writer } from '../cursor.js';
import { NtStatus } from '../ntstatus.js';
import { bodyReader, bodyWriter, finishVariableBody, placeBuffer } from './message.js';

/** MS-SMB2 2.2.2.1 ErrorId. */
export const ErrorId = {
  DEFAULT: 0x00000000,
  SHARE_REDIRECT: 0x72645253,
} as const;

/** MS-SMB2 2.2.2.1 SMB2 ERROR Context Response; ErrorDataLength is implied by ErrorContextData. */
export interface ErrorContext {
  ErrorId: number;
  ErrorContextData: Buffer;
}

/** MS-SMB2 2.2.2 SMB2 ERROR Response; ErrorContextCount and ByteCount are implied. */
export interface ErrorResponse {
  Reserved: number;
  /** SMB 3.1.1 only: the contexts that make up ErrorData when ErrorContextCount is nonzero. */
  ErrorContexts: ErrorContext[];
  /** The ErrorData bytes after the contexts (all of it without contexts; 2.2.2.2 formats), usually empty. */
  ErrorData: Buffer;
  /**
   * With ByteCount 0 one byte of ErrorData is still sent; it "SHOULD" be 0 but Windows and Samba
   * send 0x21 in interim responses, so its value is kept. Present only when ByteCount is 0 and the
   * byte was there; encoding writes 0 when it is absent.
   */
  ErrorDataPad?: number;
}

const ERROR_SIZE = 9;

export function decodeErrorResponse(msg: Buffer): ErrorResponse {
  const r = bodyReader(msg, ERROR_SIZE, 'ERROR response');
  const count = r.u8();
  const Reserved = r.u8();
  const ByteCount = r.u32();
  const start = r.pos;
  r.need(ByteCount, 'ERROR ByteCount');
  if (ByteCount === 0 && count === 0) {
    const pad = r.remaining > 0 ? { ErrorDataPad: r.u8() } : {};
    return { Reserved, ErrorContexts: [], ErrorData: Buffer.alloc(0), ...pad };
  }
  // Contexts are 8-aligned relative to the ERROR body, which is itself 8-aligned in the message.
  const cr = new Reader(msg, start, start + ByteCount);
  const ErrorContexts: ErrorContext[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) cr.alignTo(8);
    const length = cr.u32('ErrorDataLength');
    const id = cr.u32('ErrorId');
    ErrorContexts.push({ ErrorId: id, ErrorContextData: cr.copy(length, 'ErrorDataLength') });
  }
  return { Reserved, ErrorContexts, ErrorData: cr.copy(cr.remaining) };
}

export function encodeErrorResponse(res: ErrorResponse): Buffer {
  if (res.ErrorContexts.length > 0xff) {
    throw new WireError(ErrorCode.WIRE_ENCODE, `ErrorContextCount ${res.ErrorContexts.length} does not fit 8 bits`);
  }
  const w = bodyWriter(ERROR_SIZE);
  w.u8(res.ErrorContexts.length).u8(res.Reserved);
  const at = w.pos;
  w.u32(0);
  const start = w.pos;
  res.ErrorContexts.forEach((c, i) => {
    if (i > 0) w.align(8);
    w.u32(c.ErrorContextData.length).u32(c.ErrorId).bytes(c.ErrorContextData);
  });
  w.bytes(res.ErrorData);
  const ByteCount = w.pos - start;
  w.setU32(at, ByteCount);
  if (ByteCount > 0 && res.ErrorDataPad !== undefined) throw new WireError(ErrorCode.WIRE_ENCODE, 'ErrorDataPad needs an empty ErrorData');
  if (ByteCount === 0) w.u8(res.ErrorDataPad ?? 0);
  return finishVariableBody(w, ERROR_SIZE);
}

/**
 * The body of the usual error reply: no contexts and the given ErrorData (none by default, which
 * puts ByteCount 0 and the one zero byte of ErrorData the spec asks for on the wire).
 */
export function buildErrorBody(ErrorData: Buffer = Buffer.alloc(0)): Buffer {
  return encodeErrorResponse({ Reserved: 0, ErrorContexts: [], ErrorData });
}

/** MS-SMB2 2.2.2.2.1 SymLinkErrorTag. */
export const SYMLINK_ERROR_TAG = 0x4c4d5953;
/** MS-SMB2 2.2.2.2.1 Flags. */
export const SYMLINK_FLAG_RELATIVE = 0x00000001;

/**
 * MS-SMB2 2.2.2.2.1 Symbolic Link Error Response (ErrorData of STATUS_STOPPED_ON_SYMLINK), with
 * the names read out of PathBuffer.
 */
export interface SymbolicLinkErrorResponse {
  /** MUST be IO_REPARSE_TAG_SYMLINK (0xA000000C); not checked. */
  ReparseTag: number;
  /** Bytes of the request path left unparsed after the link. */
  UnparsedPathLength: number;
  Flags: number;
  SubstituteName: string;
  PrintName: string;
}

/** Fixed part: SymLinkLength (4) through Flags (4). */
const SYMLINK_FIXED = 28;
/** ReparseDataLength counts PathBuffer and the 12 bytes from SubstituteNameOffset to Flags. */
const SYMLINK_REPARSE_FIXED = 12;

export function decodeSymbolicLinkErrorResponse(data: Buffer): SymbolicLinkErrorResponse {
  const r = new Reader(data);
  r.need(SYMLINK_FIXED, 'Symbolic Link Error Response');
  const SymLinkLength = r.u32();
  const tag = r.u32();
  if (tag !== SYMLINK_ERROR_TAG) {
    throw new WireError(
      ErrorCode.WIRE_BAD_FIELD,
      `SymLinkErrorTag 0x${tag.toString(16)} is not 0x${SYMLINK_ERROR_TAG.toString(16)}`,
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  const ReparseTag = r.u32();
  const ReparseDataLength = r.u16();
  const UnparsedPathLength = r.u16();
  const subOffset = r.u16();
  const subLength = r.u16();
  const printOffset = r.u16();
  const printLength = r.u16();
  const Flags = r.u32();
  // SymLinkLength excludes itself; both lengths must describe the same PathBuffer.
  const pathLength = SymLinkLength + 4 - SYMLINK_FIXED;
  if (pathLength < 0 || SymLinkLength + 4 > data.length || ReparseDataLength !== pathLength + SYMLINK_REPARSE_FIXED) {
    throw new WireError(
      ErrorCode.WIRE_BAD_FIELD,
      `SymLinkLength ${SymLinkLength} / ReparseDataLength ${ReparseDataLength} do not fit ${data.length} bytes`,
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  const pathBuffer = r.bytes(pathLength);
  return {
    ReparseTag,
    UnparsedPathLength,
    Flags,
    SubstituteName: decodeUtf16(sliceField(pathBuffer, subOffset, subLength, 'SubstituteNameOffset')),
    PrintName: decodeUtf16(sliceField(pathBuffer, printOffset, printLength, 'PrintNameOffset')),
  };
}

/** MS-SMB2 2.2.2.2.2.1 Type. */
export const MoveDstIpAddrType = { V4: 0x00000001, V6: 0x00000002 } as const;

/** MS-SMB2 2.2.2.2.2.1 MOVE_DST_IPADDR. */
export interface MoveDstIpAddr {
  Type: number;
  Reserved: number;
  /** 16 bytes: IPv4Address then Reserved2 (12 zero bytes) for V4, IPv6Address for V6 (network order). */
  Address: Buffer;
}

/** MS-SMB2 2.2.2.2.2 Share Redirect Error Context Response (ErrorContextData of SHARE_REDIRECT); IPAddrCount is implied. */
export interface ShareRedirectErrorContext {
  /** "MUST be 48" whatever the list and name lengths. */
  StructureSize: number;
  /** MUST be 3 (SHARE_MOVE_NOTIFICATION). */
  NotificationType: number;
  /** Relative to the start of this structure; undefined when encoding means "right after IPAddrMoveList". */
  ResourceNameOffset?: number;
  Reserved: number;
  /** MUST be 0 (IP address). */
  TargetType: number;
  IPAddrMoveList: MoveDstIpAddr[];
  /** The share name, UTF-16LE. */
  ResourceName: string;
}

const SHARE_REDIRECT_FIXED = 24;
const MOVE_DST_IPADDR_SIZE = 24;

export function decodeShareRedirectErrorContext(data: Buffer): ShareRedirectErrorContext {
  const r = new Reader(data);
  r.need(SHARE_REDIRECT_FIXED, 'Share Redirect Error Context');
  const StructureSize = r.u32();
  const NotificationType = r.u32();
  const ResourceNameOffset = r.u32();
  const nameLength = r.u32();
  const Reserved = r.u16();
  const TargetType = r.u16();
  const count = r.u32();
  r.need(count * MOVE_DST_IPADDR_SIZE, `IPAddrCount ${count}`);
  const IPAddrMoveList = Array.from({ length: count }, () => ({ Type: r.u32(), Reserved: r.u32(), Address: r.copy(16) }));
  const name = sliceField(data, ResourceNameOffset, nameLength, 'ResourceNameOffset', r.pos);
  return { StructureSize, NotificationType, ResourceNameOffset, Reserved, TargetType, IPAddrMoveList, ResourceName: decodeUtf16(name) };
}

export function encodeShareRedirectErrorContext(ctx: ShareRedirectErrorContext): Buffer {
  const name = encodeUtf16(ctx.ResourceName);
  const w = new Writer(SHARE_REDIRECT_FIXED + ctx.IPAddrMoveList.length * MOVE_DST_IPADDR_SIZE + name.length);
  w.u32(ctx.StructureSize).u32(ctx.NotificationType);
  const at = w.pos;
  w.u32(0).u32(name.length).u16(ctx.Reserved).u16(ctx.TargetType).u32(ctx.IPAddrMoveList.length);
  for (const a of ctx.IPAddrMoveList) {
    if (a.Address.length !== 16) {
      throw new WireError(ErrorCode.WIRE_ENCODE, `MOVE_DST_IPADDR address must be 16 bytes, got ${a.Address.length}`);
    }
    w.u32(a.Type).u32(a.Reserved).bytes(a.Address);
  }
  w.setU32(at, placeBuffer(w, name, 'ResourceNameOffset', ctx.ResourceNameOffset));
  return w.finish();
}
