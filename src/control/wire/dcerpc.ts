/**
 * Connection-oriented DCE/RPC PDUs (C706 chapter 12, MS-RPCE 2.2.2), as carried over a named
 * pipe. Only the little-endian integer representation is supported: clients on SMB always send
 * it, and a big-endian drep is refused as a typed error rather than decoded wrongly.
 *
 * The codecs are exact: decoding then encoding a PDU gives back the same bytes. Reserved fields
 * are therefore kept (omitted when zero), and bytes the structure does not describe (auth
 * padding, MS-RPCE extended error data) are kept raw in `trailer` or `stub`.
 */
import { ErrorCode, WireError } from '../errors.js';
import { Reader, Writer } from './cursor.js';
import { NtStatus } from './ntstatus.js';

/** The common header (C706 12.6.3.1). */
export const RPC_HEADER_SIZE = 16;
/** sec_trailer before auth_value (MS-RPCE 2.2.2.11). */
export const SEC_TRAILER_SIZE = 8;
/** Header plus alloc_hint, p_cont_id, cancel_count and reserved (C706 12.6.4.10). */
export const RPC_RESPONSE_HEADER_SIZE = 24;

/** C706 12.6.3.1 PTYPE; rts (20) is MS-RPCE 2.2.2.1 and only used over HTTP. */
export const PType = {
  REQUEST: 0,
  PING: 1,
  RESPONSE: 2,
  FAULT: 3,
  WORKING: 4,
  NOCALL: 5,
  REJECT: 6,
  ACK: 7,
  CL_CANCEL: 8,
  FACK: 9,
  CANCEL_ACK: 10,
  BIND: 11,
  BIND_ACK: 12,
  BIND_NAK: 13,
  ALTER_CONTEXT: 14,
  ALTER_CONTEXT_RESP: 15,
  AUTH3: 16,
  SHUTDOWN: 17,
  CO_CANCEL: 18,
  ORPHANED: 19,
  RTS: 20,
} as const;
export type PTypeValue = (typeof PType)[keyof typeof PType];

/** C706 12.6.3.1 pfc_flags. In bind PDUs 0x04 means PFC_SUPPORT_HEADER_SIGN (MS-RPCE 2.2.2.3). */
export const PfcFlags = {
  PFC_FIRST_FRAG: 0x01,
  PFC_LAST_FRAG: 0x02,
  PFC_PENDING_CANCEL: 0x04,
  PFC_SUPPORT_HEADER_SIGN: 0x04,
  PFC_RESERVED_1: 0x08,
  PFC_CONC_MPX: 0x10,
  PFC_DID_NOT_EXECUTE: 0x20,
  PFC_MAYBE: 0x40,
  PFC_OBJECT_UUID: 0x80,
} as const;

/** packed_drep of little-endian integers, ASCII characters, IEEE floats (C706 14.1), as read by u32. */
export const DREP_LITTLE_ENDIAN = 0x00000010;

/** C706 12.6.3.1 p_cont_def_result_t, plus negotiate_ack (MS-RPCE 2.2.2.4). */
export const ContResult = {
  acceptance: 0,
  user_rejection: 1,
  provider_rejection: 2,
  negotiate_ack: 3,
} as const;

/** C706 12.6.3.1 p_provider_reason_t. */
export const ProviderReason = {
  reason_not_specified: 0,
  abstract_syntax_not_supported: 1,
  proposed_transfer_syntaxes_not_supported: 2,
  local_limit_exceeded: 3,
} as const;

/** bind_nak provider_reject_reason (C706 12.6.3.1 p_reject_reason_t, MS-RPCE 2.2.2.5 adds 8 and 9). */
export const RejectReason = {
  REASON_NOT_SPECIFIED: 0,
  TEMPORARY_CONGESTION: 1,
  LOCAL_LIMIT_EXCEEDED: 2,
  CALLED_PADDR_UNKNOWN: 3,
  PROTOCOL_VERSION_NOT_SUPPORTED: 4,
  DEFAULT_CONTEXT_NOT_SUPPORTED: 5,
  USER_DATA_NOT_READABLE: 6,
  NO_PSAP_AVAILABLE: 7,
  AUTHENTICATION_TYPE_NOT_RECOGNIZED: 8,
  INVALID_CHECKSUM: 9,
} as const;

/** Fault status values (C706 appendix E; nca_s_fault_ndr is RPC_X_BAD_STUB_DATA, MS-RPCE 2.2.2.9). */
export const NcaStatus = {
  nca_s_op_rng_error: 0x1c010002,
  nca_s_unknown_if: 0x1c010003,
  nca_s_proto_error: 0x1c01000b,
  nca_s_fault_ndr: 0x000006f7,
} as const;

/** C706 12.6.3.1 p_syntax_id_t; if_version is major in the low 16 bits, minor in the high 16. */
export interface SyntaxId {
  /** Lower-case text form, e.g. '8a885d04-1ceb-11c9-9fe8-08002b104860'. */
  if_uuid: string;
  if_version: number;
}

/** NDR 2.0 (C706 14), the transfer syntax the DSR speaks. */
export const NDR_SYNTAX: SyntaxId = Object.freeze({ if_uuid: '8a885d04-1ceb-11c9-9fe8-08002b104860', if_version: 2 });
/** NDR64 (MS-RPCE 2.2.5), refused. */
export const NDR64_SYNTAX: SyntaxId = Object.freeze({ if_uuid: '71710533-beba-4937-8319-b5dbef9ccc36', if_version: 1 });
/** The transfer syntax of a rejected context and of a negotiate_ack (MS-RPCE 3.3.1.5.3). */
export const NULL_SYNTAX: SyntaxId = Object.freeze({ if_uuid: '00000000-0000-0000-0000-000000000000', if_version: 0 });
/** Bind time feature negotiation transfer syntaxes start with this (MS-RPCE 3.3.1.5.3). */
export const BIND_TIME_FEATURE_PREFIX = '6cb71c2c-9812-4540-';

export function syntaxVersion(major: number, minor: number): number {
  return (((minor & 0xffff) << 16) | (major & 0xffff)) >>> 0;
}

/** C706 12.6.3.1 p_cont_elem_t. */
export interface PContElem {
  p_cont_id: number;
  reserved?: number;
  abstract_syntax: SyntaxId;
  transfer_syntaxes: SyntaxId[];
}

/** C706 12.6.3.1 p_cont_list_t. */
export interface PContList {
  reserved?: number;
  reserved2?: number;
  p_cont_elem: PContElem[];
}

/** C706 12.6.3.1 p_result_t. For a negotiate_ack, reason is the acknowledged feature bitmask. */
export interface PResult {
  result: number;
  reason: number;
  transfer_syntax: SyntaxId;
}

/** C706 12.6.3.1 p_result_list_t. */
export interface PResultList {
  reserved?: number;
  reserved2?: number;
  p_results: PResult[];
}

/** The header fields an encoder needs (rpc_vers, frag_length and auth_length are computed). */
interface PduCommon {
  /** 0 or 1. */
  rpc_vers_minor: number;
  pfc_flags: number;
  packed_drep: number;
  call_id: number;
  /** sec_trailer + auth_value, raw (MS-RPCE 2.2.2.11); present exactly when auth_length > 0. */
  auth_verifier?: Buffer;
}

/** C706 12.6.4.3 bind and 12.6.4.1 alter_context (same layout). */
export interface BindPdu extends PduCommon {
  PTYPE: typeof PType.BIND | typeof PType.ALTER_CONTEXT;
  max_xmit_frag: number;
  max_recv_frag: number;
  assoc_group_id: number;
  p_context_elem: PContList;
  /** Bytes between the context list and the auth verifier (auth padding). */
  trailer?: Buffer;
}

/** C706 12.6.4.4 bind_ack and 12.6.4.2 alter_context_resp (same layout). */
export interface BindAckPdu extends PduCommon {
  PTYPE: typeof PType.BIND_ACK | typeof PType.ALTER_CONTEXT_RESP;
  max_xmit_frag: number;
  max_recv_frag: number;
  assoc_group_id: number;
  /** port_any_t port_spec bytes including the terminating NUL; empty in alter_context_resp. */
  sec_addr: Buffer;
  p_result_list: PResultList;
  trailer?: Buffer;
}

/** C706 12.6.4.5 bind_nak. */
export interface BindNakPdu extends PduCommon {
  PTYPE: typeof PType.BIND_NAK;
  provider_reject_reason: number;
  /** p_rt_versions_supported_t. */
  versions: { major: number; minor: number }[];
  /** Padding, or the MS-RPCE 2.2.2.5 signature and extended error. */
  trailer?: Buffer;
}

/** C706 12.6.4.9 request. */
export interface RequestPdu extends PduCommon {
  PTYPE: typeof PType.REQUEST;
  alloc_hint: number;
  p_cont_id: number;
  opnum: number;
  /** Present exactly when pfc_flags has PFC_OBJECT_UUID. */
  object?: string;
  /** Stub data, including any auth padding. */
  stub: Buffer;
}

/** C706 12.6.4.10 response. */
export interface ResponsePdu extends PduCommon {
  PTYPE: typeof PType.RESPONSE;
  alloc_hint: number;
  p_cont_id: number;
  cancel_count: number;
  reserved?: number;
  stub: Buffer;
}

/** C706 12.6.4.7 fault; MS-RPCE 2.2.2.9 calls `reserved` flags and puts extended error in the stub. */
export interface FaultPdu extends PduCommon {
  PTYPE: typeof PType.FAULT;
  alloc_hint: number;
  p_cont_id: number;
  cancel_count: number;
  reserved?: number;
  status: number;
  reserved2?: number;
  stub: Buffer;
}

type ModelledPType = (BindPdu | BindAckPdu | BindNakPdu | RequestPdu | ResponsePdu | FaultPdu)['PTYPE'];
/** Any other PTYPE (auth3, shutdown, co_cancel, orphaned, connectionless ones); its body kept raw. */
export interface OtherPdu extends PduCommon {
  PTYPE: Exclude<PTypeValue, ModelledPType>;
  body: Buffer;
}

export type RpcPdu = BindPdu | BindAckPdu | BindNakPdu | RequestPdu | ResponsePdu | FaultPdu | OtherPdu;

/** C706 12.6.3.1 common header fields, as read. */
export interface RpcHeader {
  rpc_vers: number;
  rpc_vers_minor: number;
  PTYPE: number;
  pfc_flags: number;
  packed_drep: number;
  frag_length: number;
  auth_length: number;
  call_id: number;
}

function bad(what: string, code: ErrorCode = ErrorCode.WIRE_BAD_FIELD): WireError {
  return new WireError(code, what, NtStatus.STATUS_INVALID_PARAMETER);
}

/**
 * Reads the 16-byte common header from the start of `buf`, checking just what is needed to trust
 * frag_length as a PDU boundary: rpc_vers 5, little-endian drep, frag_length >= 16. Everything
 * else (minor version, PTYPE, auth_length) is checked by decodePdu.
 */
export function decodeHeader(buf: Buffer): RpcHeader {
  const r = new Reader(buf);
  const h: RpcHeader = {
    rpc_vers: r.u8('rpc_vers'),
    rpc_vers_minor: r.u8('rpc_vers_minor'),
    PTYPE: r.u8('PTYPE'),
    pfc_flags: r.u8('pfc_flags'),
    packed_drep: r.u32('packed_drep'),
    frag_length: r.u16('frag_length'),
    auth_length: r.u16('auth_length'),
    call_id: r.u32('call_id'),
  };
  if (h.rpc_vers !== 5) throw bad(`rpc_vers is ${h.rpc_vers}, expected 5`);
  // The integer representation is the high nibble of the first drep octet (C706 14.1).
  if ((h.packed_drep & 0xf0) !== 0x10) {
    throw bad(`packed_drep 0x${h.packed_drep.toString(16)} is not little-endian; big-endian NDR is not supported`);
  }
  if (h.frag_length < RPC_HEADER_SIZE) throw bad(`frag_length ${h.frag_length} is shorter than the header`);
  return h;
}

export function uuidFromBytes(b: Buffer): string {
  const hex = (from: number, to: number) => b.subarray(from, to).toString('hex');
  return [
    b.readUInt32LE(0).toString(16).padStart(8, '0'),
    b.readUInt16LE(4).toString(16).padStart(4, '0'),
    b.readUInt16LE(6).toString(16).padStart(4, '0'),
    hex(8, 10),
    hex(10, 16),
  ].join('-');
}

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The 16-byte little-endian (drep) form of a UUID in text form. */
export function uuidToBytes(s: string): Buffer {
  if (!UUID_TEXT.test(s)) throw new WireError(ErrorCode.WIRE_ENCODE, `not a UUID: ${s}`);
  const b = Buffer.alloc(16);
  b.writeUInt32LE(parseInt(s.slice(0, 8), 16), 0);
  b.writeUInt16LE(parseInt(s.slice(9, 13), 16), 4);
  b.writeUInt16LE(parseInt(s.slice(14, 18), 16), 6);
  Buffer.from(s.slice(19, 23) + s.slice(24), 'hex').copy(b, 8);
  return b;
}

function readSyntax(r: Reader, what: string): SyntaxId {
  return { if_uuid: uuidFromBytes(r.bytes(16, `${what} if_uuid`)), if_version: r.u32(`${what} if_version`) };
}

function writeSyntax(w: Writer, s: SyntaxId): void {
  w.bytes(uuidToBytes(s.if_uuid)).u32(s.if_version);
}

/** Reserved fields are kept only when non-zero, so decoded PDUs stay readable and re-encode exactly. */
function reserved<K extends string>(key: K, v: number): { [P in K]?: number } {
  return (v === 0 ? {} : { [key]: v }) as { [P in K]?: number };
}

function rest(r: Reader): Buffer {
  return r.copy(r.remaining, 'trailer');
}

function trailer(r: Reader): { trailer?: Buffer } {
  return r.remaining === 0 ? {} : { trailer: rest(r) };
}

function readContList(r: Reader): PContList {
  const n = r.u8('n_context_elem');
  const head = { ...reserved('reserved', r.u8()), ...reserved('reserved2', r.u16()) };
  const p_cont_elem: PContElem[] = [];
  for (let i = 0; i < n; i++) {
    const p_cont_id = r.u16('p_cont_id');
    const count = r.u8('n_transfer_syn');
    const elem: PContElem = {
      p_cont_id,
      ...reserved('reserved', r.u8()),
      abstract_syntax: readSyntax(r, 'abstract_syntax'),
      transfer_syntaxes: [],
    };
    for (let j = 0; j < count; j++) elem.transfer_syntaxes.push(readSyntax(r, 'transfer_syntax'));
    p_cont_elem.push(elem);
  }
  return { ...head, p_cont_elem };
}

function readResultList(r: Reader): PResultList {
  const n = r.u8('n_results');
  const head = { ...reserved('reserved', r.u8()), ...reserved('reserved2', r.u16()) };
  const p_results: PResult[] = [];
  for (let i = 0; i < n; i++) {
    p_results.push({ result: r.u16('result'), reason: r.u16('reason'), transfer_syntax: readSyntax(r, 'transfer_syntax') });
  }
  return { ...head, p_results };
}

function checkCount(n: number, what: string): number {
  if (n > 0xff) throw new WireError(ErrorCode.WIRE_ENCODE, `${what}: ${n} entries do not fit a u8 count`);
  return n;
}

function writeContList(w: Writer, l: PContList): void {
  w.u8(checkCount(l.p_cont_elem.length, 'p_cont_list')).u8(l.reserved ?? 0).u16(l.reserved2 ?? 0);
  for (const e of l.p_cont_elem) {
    w.u16(e.p_cont_id).u8(checkCount(e.transfer_syntaxes.length, 'transfer_syntaxes')).u8(e.reserved ?? 0);
    writeSyntax(w, e.abstract_syntax);
    for (const t of e.transfer_syntaxes) writeSyntax(w, t);
  }
}

function writeResultList(w: Writer, l: PResultList): void {
  w.u8(checkCount(l.p_results.length, 'p_result_list')).u8(l.reserved ?? 0).u16(l.reserved2 ?? 0);
  for (const p of l.p_results) {
    w.u16(p.result).u16(p.reason);
    writeSyntax(w, p.transfer_syntax);
  }
}

/** Decodes exactly one PDU: `buf` must be frag_length bytes long. */
export function decodePdu(buf: Buffer): RpcPdu {
  const h = decodeHeader(buf);
  if (h.frag_length !== buf.length) throw bad(`frag_length ${h.frag_length} but the PDU has ${buf.length} bytes`, ErrorCode.WIRE_TRUNCATED);
  if (h.rpc_vers_minor > 1) throw bad(`rpc_vers_minor is ${h.rpc_vers_minor}, expected 0 or 1`);
  if (h.PTYPE > PType.RTS) throw bad(`PTYPE ${h.PTYPE} is not defined`);
  let bodyEnd = buf.length;
  if (h.auth_length > 0) {
    bodyEnd -= SEC_TRAILER_SIZE + h.auth_length;
    if (bodyEnd < RPC_HEADER_SIZE) {
      throw bad(`auth_length ${h.auth_length} does not fit frag_length ${h.frag_length}`, ErrorCode.WIRE_BAD_OFFSET);
    }
  }
  const common: PduCommon = {
    rpc_vers_minor: h.rpc_vers_minor,
    pfc_flags: h.pfc_flags,
    packed_drep: h.packed_drep,
    call_id: h.call_id,
    ...(h.auth_length > 0 ? { auth_verifier: Buffer.from(buf.subarray(bodyEnd)) } : {}),
  };
  const r = new Reader(buf, RPC_HEADER_SIZE, bodyEnd);
  const PTYPE = h.PTYPE as PTypeValue;
  switch (PTYPE) {
    case PType.BIND:
    case PType.ALTER_CONTEXT:
      return {
        PTYPE,
        ...common,
        max_xmit_frag: r.u16('max_xmit_frag'),
        max_recv_frag: r.u16('max_recv_frag'),
        assoc_group_id: r.u32('assoc_group_id'),
        p_context_elem: readContList(r),
        ...trailer(r),
      };
    case PType.BIND_ACK:
    case PType.ALTER_CONTEXT_RESP: {
      const fixed = {
        max_xmit_frag: r.u16('max_xmit_frag'),
        max_recv_frag: r.u16('max_recv_frag'),
        assoc_group_id: r.u32('assoc_group_id'),
      };
      const sec_addr = r.copy(r.u16('sec_addr length'), 'sec_addr');
      const padAt = r.pos;
      r.alignTo(4);
      if (buf.subarray(padAt, r.pos).some((x) => x !== 0)) throw bad('sec_addr alignment padding is not zero');
      return { PTYPE, ...common, ...fixed, sec_addr, p_result_list: readResultList(r), ...trailer(r) };
    }
    case PType.BIND_NAK: {
      const provider_reject_reason = r.u16('provider_reject_reason');
      const n = r.u8('n_protocols');
      const versions: { major: number; minor: number }[] = [];
      for (let i = 0; i < n; i++) versions.push({ major: r.u8('major'), minor: r.u8('minor') });
      return { PTYPE, ...common, provider_reject_reason, versions, ...trailer(r) };
    }
    case PType.REQUEST: {
      const fixed = { alloc_hint: r.u32('alloc_hint'), p_cont_id: r.u16('p_cont_id'), opnum: r.u16('opnum') };
      const object = h.pfc_flags & PfcFlags.PFC_OBJECT_UUID ? { object: uuidFromBytes(r.bytes(16, 'object')) } : {};
      return { PTYPE, ...common, ...fixed, ...object, stub: rest(r) };
    }
    case PType.RESPONSE:
      return {
        PTYPE,
        ...common,
        alloc_hint: r.u32('alloc_hint'),
        p_cont_id: r.u16('p_cont_id'),
        cancel_count: r.u8('cancel_count'),
        ...reserved('reserved', r.u8()),
        stub: rest(r),
      };
    case PType.FAULT:
      return {
        PTYPE,
        ...common,
        alloc_hint: r.u32('alloc_hint'),
        p_cont_id: r.u16('p_cont_id'),
        cancel_count: r.u8('cancel_count'),
        ...reserved('reserved', r.u8()),
        status: r.u32('status'),
        ...reserved('reserved2', r.u32('reserved2')),
        stub: rest(r),
      };
    default:
      return { PTYPE, ...common, body: rest(r) };
  }
}

function writeTrailer(w: Writer, t: Buffer | undefined): void {
  if (t !== undefined) w.bytes(t);
}

function writeBody(w: Writer, pdu: RpcPdu): void {
  switch (pdu.PTYPE) {
    case PType.BIND:
    case PType.ALTER_CONTEXT:
      w.u16(pdu.max_xmit_frag).u16(pdu.max_recv_frag).u32(pdu.assoc_group_id);
      writeContList(w, pdu.p_context_elem);
      writeTrailer(w, pdu.trailer);
      return;
    case PType.BIND_ACK:
    case PType.ALTER_CONTEXT_RESP:
      w.u16(pdu.max_xmit_frag).u16(pdu.max_recv_frag).u32(pdu.assoc_group_id);
      w.u16(pdu.sec_addr.length).bytes(pdu.sec_addr).align(4);
      writeResultList(w, pdu.p_result_list);
      writeTrailer(w, pdu.trailer);
      return;
    case PType.BIND_NAK:
      w.u16(pdu.provider_reject_reason).u8(checkCount(pdu.versions.length, 'versions'));
      for (const v of pdu.versions) w.u8(v.major).u8(v.minor);
      writeTrailer(w, pdu.trailer);
      return;
    case PType.REQUEST:
      if ((pdu.object !== undefined) !== ((pdu.pfc_flags & PfcFlags.PFC_OBJECT_UUID) !== 0)) {
        throw new WireError(ErrorCode.WIRE_ENCODE, 'request object UUID must be present exactly when PFC_OBJECT_UUID is set');
      }
      w.u32(pdu.alloc_hint).u16(pdu.p_cont_id).u16(pdu.opnum);
      if (pdu.object !== undefined) w.bytes(uuidToBytes(pdu.object));
      w.bytes(pdu.stub);
      return;
    case PType.RESPONSE:
      w.u32(pdu.alloc_hint).u16(pdu.p_cont_id).u8(pdu.cancel_count).u8(pdu.reserved ?? 0).bytes(pdu.stub);
      return;
    case PType.FAULT:
      w.u32(pdu.alloc_hint).u16(pdu.p_cont_id).u8(pdu.cancel_count).u8(pdu.reserved ?? 0);
      w.u32(pdu.status).u32(pdu.reserved2 ?? 0).bytes(pdu.stub);
      return;
    default:
      w.bytes(pdu.body);
  }
}

export function encodePdu(pdu: RpcPdu): Buffer {
  const w = new Writer(128);
  w.zeros(RPC_HEADER_SIZE);
  writeBody(w, pdu);
  let auth_length = 0;
  if (pdu.auth_verifier !== undefined) {
    auth_length = pdu.auth_verifier.length - SEC_TRAILER_SIZE;
    if (auth_length <= 0) throw new WireError(ErrorCode.WIRE_ENCODE, 'auth_verifier must hold a sec_trailer and a non-empty auth_value');
    w.bytes(pdu.auth_verifier);
  }
  const out = w.finish();
  if (out.length > 0xffff) throw new WireError(ErrorCode.WIRE_ENCODE, `PDU of ${out.length} bytes exceeds frag_length`);
  out.writeUInt8(5, 0);
  out.writeUInt8(pdu.rpc_vers_minor, 1);
  out.writeUInt8(pdu.PTYPE, 2);
  out.writeUInt8(pdu.pfc_flags, 3);
  out.writeUInt32LE(pdu.packed_drep >>> 0, 4);
  out.writeUInt16LE(out.length, 8);
  out.writeUInt16LE(auth_length, 10);
  out.writeUInt32LE(pdu.call_id >>> 0, 12);
  return out;
}
