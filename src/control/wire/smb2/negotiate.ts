/**
 * NEGOTIATE (MS-SMB2 2.2.3, 2.2.4) with the SMB 3.1.1 negotiate context list (2.2.3.1).
 *
 * Only a message whose dialect list (request) or DialectRevision (response) is 3.1.1 carries
 * contexts; otherwise the same bytes are ClientStartTime (request) or Reserved fields (response).
 * Known context types are decoded into typed Data; a context whose type is unknown, or whose Data
 * does not parse exactly, is kept raw so that it always re-encodes to the same bytes.
 */
import { ErrorCode, WireError } from '../../errors.js';
import { decodeUtf16, encodeUtf16, Reader, sliceField, type Writer } from '../cursor.js';
import { NtStatus } from '../ntstatus.js';
import { NegotiateContextType, Smb2Dialect } from './constants.js';
import { bodyReader, bodyWriter, checkU16, finishBody, finishVariableBody, fixedEnd, placeBuffer16 } from './message.js';

/** MS-SMB2 2.2.3.1.3 CompressionAlgorithms (also the algorithm ids of 2.2.42). */
export const CompressionAlgorithm = {
  NONE: 0x0000,
  LZNT1: 0x0001,
  LZ77: 0x0002,
  LZ77_HUFFMAN: 0x0003,
  PATTERN_V1: 0x0004,
  LZ4: 0x0005,
} as const;

/** MS-SMB2 2.2.3.1.3 Flags. */
export const CompressionCapabilitiesFlags = { NONE: 0x00000000, CHAINED: 0x00000001 } as const;

/** MS-SMB2 2.2.3.1.5 Flags. */
export const TransportCapabilitiesFlags = { ACCEPT_TRANSPORT_LEVEL_SECURITY: 0x00000001 } as const;

/** MS-SMB2 2.2.3.1.6 RDMATransformIds. */
export const RdmaTransformId = { NONE: 0x0000, ENCRYPTION: 0x0001, SIGNING: 0x0002 } as const;

/** MS-SMB2 2.2.3.1.1 SMB2_PREAUTH_INTEGRITY_CAPABILITIES. */
export interface PreauthIntegrityCapabilities {
  HashAlgorithms: number[];
  Salt: Buffer;
}

/** MS-SMB2 2.2.3.1.2 SMB2_ENCRYPTION_CAPABILITIES. */
export interface EncryptionCapabilities {
  Ciphers: number[];
}

/** MS-SMB2 2.2.3.1.3 SMB2_COMPRESSION_CAPABILITIES. */
export interface CompressionCapabilities {
  Padding: number;
  Flags: number;
  CompressionAlgorithms: number[];
}

/** MS-SMB2 2.2.3.1.4 SMB2_NETNAME_NEGOTIATE_CONTEXT_ID: the server name the client dialled, UTF-16LE. */
export interface NetnameNegotiateContextId {
  NetName: string;
}

/** MS-SMB2 2.2.3.1.5 SMB2_TRANSPORT_CAPABILITIES. */
export interface TransportCapabilities {
  Flags: number;
}

/** MS-SMB2 2.2.3.1.6 SMB2_RDMA_TRANSFORM_CAPABILITIES. */
export interface RdmaTransformCapabilities {
  Reserved1: number;
  Reserved2: number;
  RDMATransformIds: number[];
}

/** MS-SMB2 2.2.3.1.7 SMB2_SIGNING_CAPABILITIES. */
export interface SigningCapabilities {
  SigningAlgorithms: number[];
}

/** The typed Data of each known ContextType. */
export interface NegotiateContextData {
  [NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES]: PreauthIntegrityCapabilities;
  [NegotiateContextType.ENCRYPTION_CAPABILITIES]: EncryptionCapabilities;
  [NegotiateContextType.COMPRESSION_CAPABILITIES]: CompressionCapabilities;
  [NegotiateContextType.NETNAME_NEGOTIATE_CONTEXT_ID]: NetnameNegotiateContextId;
  [NegotiateContextType.TRANSPORT_CAPABILITIES]: TransportCapabilities;
  [NegotiateContextType.RDMA_TRANSFORM_CAPABILITIES]: RdmaTransformCapabilities;
  [NegotiateContextType.SIGNING_CAPABILITIES]: SigningCapabilities;
}
export type KnownContextType = keyof NegotiateContextData;

/** MS-SMB2 2.2.3.1 NEGOTIATE_CONTEXT of a known type (DataLength is implied by Data). */
export interface TypedNegotiateContext<K extends KnownContextType> {
  ContextType: K;
  Reserved: number;
  Data: NegotiateContextData[K];
}
export type KnownNegotiateContext = { [K in KnownContextType]: TypedNegotiateContext<K> }[KnownContextType];

/** A context kept as bytes: unknown ContextType, or known type whose Data does not parse exactly. */
export interface RawNegotiateContext {
  ContextType: number;
  Reserved: number;
  Data: Buffer;
}

export type NegotiateContext = KnownNegotiateContext | RawNegotiateContext;

export function isRawNegotiateContext(c: NegotiateContext): c is RawNegotiateContext {
  return Buffer.isBuffer(c.Data);
}

/** The Data of the first typed context of this type, if any (raw ones are skipped: they did not parse). */
export function findNegotiateContext<K extends KnownContextType>(
  list: readonly NegotiateContext[],
  type: K,
): NegotiateContextData[K] | undefined {
  const isWanted = (c: NegotiateContext): c is TypedNegotiateContext<K> & NegotiateContext =>
    !isRawNegotiateContext(c) && c.ContextType === type;
  return list.find(isWanted)?.Data;
}

/** MS-SMB2 2.2.3 SMB2 NEGOTIATE Request. DialectCount and NegotiateContextCount are implied by the lists. */
export interface NegotiateRequest {
  SecurityMode: number;
  Reserved: number;
  Capabilities: number;
  /** 16 bytes. */
  ClientGuid: Buffer;
  Dialects: number[];
  /** Only when Dialects lacks 3.1.1: those 8 bytes are ClientStartTime ("MUST NOT be used", 0 when absent). */
  ClientStartTime?: bigint;
  /** 3.1.1 only. Header-relative; undefined when encoding means "8-aligned after the dialects". */
  NegotiateContextOffset?: number;
  /** 3.1.1 only: the 2 bytes after NegotiateContextCount (0 when absent). */
  Reserved2?: number;
  /** 3.1.1 only (empty when absent). */
  NegotiateContextList?: NegotiateContext[];
}

/** MS-SMB2 2.2.4 SMB2 NEGOTIATE Response. NegotiateContextCount is implied by the list. */
export interface NegotiateResponse {
  SecurityMode: number;
  DialectRevision: number;
  /** Not 3.1.1: the 2 bytes that are NegotiateContextCount in 3.1.1 (0 when absent). */
  Reserved?: number;
  /** 16 bytes. */
  ServerGuid: Buffer;
  Capabilities: number;
  MaxTransactSize: number;
  MaxReadSize: number;
  MaxWriteSize: number;
  /** FILETIME. */
  SystemTime: bigint;
  /** FILETIME. */
  ServerStartTime: bigint;
  /** Header-relative; undefined when encoding means "right after the fixed part". */
  SecurityBufferOffset?: number;
  /** The GSS token (SPNEGO NegTokenInit hint), possibly empty. */
  SecurityBuffer: Buffer;
  /** 3.1.1 only. Header-relative; undefined when encoding means "8-aligned after the SecurityBuffer". */
  NegotiateContextOffset?: number;
  /** Not 3.1.1: the 4 bytes that are NegotiateContextOffset in 3.1.1 (0 when absent). */
  Reserved2?: number;
  /** 3.1.1 only (empty when absent). */
  NegotiateContextList?: NegotiateContext[];
}

const REQUEST_SIZE = 36;
const RESPONSE_SIZE = 65;
const CONTEXT_HEADER_SIZE = 8;

function checkGuid(guid: Buffer, what: string): Buffer {
  if (guid.length !== 16) throw new WireError(ErrorCode.WIRE_ENCODE, `${what} must be 16 bytes, got ${guid.length}`);
  return guid;
}

function readU16s(r: Reader, count: number, what: string): number[] {
  r.need(count * 2, what);
  return Array.from({ length: count }, () => r.u16());
}

function writeU16s(w: Writer, list: readonly number[]): void {
  for (const v of list) w.u16(v);
}

interface ContextCodec<T> {
  read(r: Reader): T;
  write(w: Writer, v: T): void;
}

/** Per known ContextType, the Data layout (MS-SMB2 2.2.3.1.1 - 2.2.3.1.7). */
const contextCodecs: { [K in KnownContextType]: ContextCodec<NegotiateContextData[K]> } = {
  [NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES]: {
    read(r) {
      const count = r.u16();
      const saltLength = r.u16();
      return { HashAlgorithms: readU16s(r, count, 'HashAlgorithms'), Salt: r.copy(saltLength, 'Salt') };
    },
    write(w, v) {
      w.u16(checkU16(v.HashAlgorithms.length, 'HashAlgorithmCount')).u16(checkU16(v.Salt.length, 'SaltLength'));
      writeU16s(w, v.HashAlgorithms);
      w.bytes(v.Salt);
    },
  },
  [NegotiateContextType.ENCRYPTION_CAPABILITIES]: {
    read: (r) => ({ Ciphers: readU16s(r, r.u16(), 'Ciphers') }),
    write(w, v) {
      w.u16(checkU16(v.Ciphers.length, 'CipherCount'));
      writeU16s(w, v.Ciphers);
    },
  },
  [NegotiateContextType.COMPRESSION_CAPABILITIES]: {
    read(r) {
      const count = r.u16();
      return { Padding: r.u16(), Flags: r.u32(), CompressionAlgorithms: readU16s(r, count, 'CompressionAlgorithms') };
    },
    write(w, v) {
      w.u16(checkU16(v.CompressionAlgorithms.length, 'CompressionAlgorithmCount')).u16(v.Padding).u32(v.Flags);
      writeU16s(w, v.CompressionAlgorithms);
    },
  },
  [NegotiateContextType.NETNAME_NEGOTIATE_CONTEXT_ID]: {
    read: (r) => ({ NetName: decodeUtf16(r.bytes(r.remaining)) }),
    write: (w, v) => void w.bytes(encodeUtf16(v.NetName)),
  },
  [NegotiateContextType.TRANSPORT_CAPABILITIES]: {
    read: (r) => ({ Flags: r.u32() }),
    write: (w, v) => void w.u32(v.Flags),
  },
  [NegotiateContextType.RDMA_TRANSFORM_CAPABILITIES]: {
    read(r) {
      const count = r.u16();
      return { Reserved1: r.u16(), Reserved2: r.u32(), RDMATransformIds: readU16s(r, count, 'RDMATransformIds') };
    },
    write(w, v) {
      w.u16(checkU16(v.RDMATransformIds.length, 'TransformCount')).u16(v.Reserved1).u32(v.Reserved2);
      writeU16s(w, v.RDMATransformIds);
    },
  },
  [NegotiateContextType.SIGNING_CAPABILITIES]: {
    read: (r) => ({ SigningAlgorithms: readU16s(r, r.u16(), 'SigningAlgorithms') }),
    write(w, v) {
      w.u16(checkU16(v.SigningAlgorithms.length, 'SigningAlgorithmCount'));
      writeU16s(w, v.SigningAlgorithms);
    },
  },
};

function isKnownContextType(t: number): t is KnownContextType {
  return Object.hasOwn(contextCodecs, t);
}

/** Typed Data when `raw` is exactly one well-formed structure of this type, else undefined. */
function parseKnown<K extends KnownContextType>(ContextType: K, Reserved: number, raw: Buffer): KnownNegotiateContext | undefined {
  const r = new Reader(raw);
  let Data: NegotiateContextData[K];
  try {
    Data = contextCodecs[ContextType].read(r);
  } catch (e) {
    if (e instanceof WireError) return undefined;
    throw e;
  }
  if (r.remaining !== 0) return undefined;
  // TypeScript cannot correlate K across the union; the codec table guarantees the pairing.
  return { ContextType, Reserved, Data } as KnownNegotiateContext;
}

function writeKnown<K extends KnownContextType>(w: Writer, c: TypedNegotiateContext<K>): void {
  contextCodecs[c.ContextType].write(w, c.Data);
}

/**
 * Reads `count` contexts starting at header-relative `offset`, each after the first starting at
 * the next 8-byte boundary (MS-SMB2 2.2.3.1); `minOffset` keeps them off what precedes them.
 */
function readContextList(msg: Buffer, offset: number, count: number, minOffset: number): NegotiateContext[] {
  if (count === 0) return [];
  if (offset < minOffset || offset > msg.length) {
    throw new WireError(
      ErrorCode.WIRE_BAD_OFFSET,
      `NegotiateContextOffset ${offset} outside ${minOffset}..${msg.length}`,
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  if (count * CONTEXT_HEADER_SIZE > msg.length - offset) {
    throw new WireError(
      ErrorCode.WIRE_TRUNCATED,
      `NegotiateContextCount ${count} does not fit ${msg.length - offset} bytes`,
      NtStatus.STATUS_INVALID_PARAMETER,
    );
  }
  const r = new Reader(msg, offset);
  const list: NegotiateContext[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) r.alignTo(8);
    const ContextType = r.u16('ContextType');
    const DataLength = r.u16('DataLength');
    const Reserved = r.u32('Reserved');
    const raw = r.bytes(DataLength, `negotiate context ${ContextType} DataLength`);
    const typed = isKnownContextType(ContextType) ? parseKnown(ContextType, Reserved, raw) : undefined;
    list.push(typed ?? { ContextType, Reserved, Data: Buffer.from(raw) });
  }
  return list;
}

/** Writes the list at `offset` (or 8-aligned at the current position); returns the offset for the header field. */
function writeContextList(w: Writer, list: readonly NegotiateContext[], offset: number | undefined): number {
  if (list.length === 0) return offset ?? 0;
  if (offset === undefined) {
    w.align(8);
    offset = w.pos;
  } else {
    w.padTo(offset, 'NegotiateContextOffset');
  }
  list.forEach((c, i) => {
    if (i > 0) w.align(8);
    w.u16(c.ContextType);
    const lengthAt = w.pos;
    w.u16(0).u32(c.Reserved);
    const start = w.pos;
    if (isRawNegotiateContext(c)) w.bytes(c.Data);
    else writeKnown(w, c);
    w.setU16(lengthAt, checkU16(w.pos - start, 'negotiate context DataLength'));
  });
  return offset;
}

function has311(dialects: readonly number[]): boolean {
  return dialects.includes(Smb2Dialect.SMB311);
}

export function decodeNegotiateRequest(msg: Buffer): NegotiateRequest {
  const r = bodyReader(msg, REQUEST_SIZE, 'NEGOTIATE request');
  const DialectCount = r.u16();
  const SecurityMode = r.u16();
  const Reserved = r.u16();
  const Capabilities = r.u32();
  const ClientGuid = r.copy(16, 'ClientGuid');
  const contextsAt = r.pos;
  r.skip(8);
  const Dialects = readU16s(r, DialectCount, 'NEGOTIATE Dialects');
  const fixed = { SecurityMode, Reserved, Capabilities, ClientGuid, Dialects };
  if (!has311(Dialects)) return { ...fixed, ClientStartTime: msg.readBigUInt64LE(contextsAt) };
  const NegotiateContextOffset = msg.readUInt32LE(contextsAt);
  const count = msg.readUInt16LE(contextsAt + 4);
  const Reserved2 = msg.readUInt16LE(contextsAt + 6);
  const NegotiateContextList = readContextList(msg, NegotiateContextOffset, count, r.pos);
  return { ...fixed, NegotiateContextOffset, Reserved2, NegotiateContextList };
}

export function encodeNegotiateRequest(req: NegotiateRequest): Buffer {
  const is311 = has311(req.Dialects);
  const list = req.NegotiateContextList ?? [];
  const misplaced = is311
    ? req.ClientStartTime !== undefined
    : req.NegotiateContextOffset !== undefined || req.Reserved2 !== undefined || list.length > 0;
  if (misplaced) {
    throw new WireError(
      ErrorCode.WIRE_ENCODE,
      is311 ? 'a 3.1.1 NEGOTIATE request has no ClientStartTime' : 'negotiate context fields need dialect 3.1.1 in Dialects',
    );
  }
  const w = bodyWriter(REQUEST_SIZE);
  w.u16(checkU16(req.Dialects.length, 'DialectCount')).u16(req.SecurityMode).u16(req.Reserved).u32(req.Capabilities);
  w.bytes(checkGuid(req.ClientGuid, 'ClientGuid'));
  const contextsAt = w.pos;
  w.u64(req.ClientStartTime ?? 0n);
  writeU16s(w, req.Dialects);
  if (is311) {
    const offset = writeContextList(w, list, req.NegotiateContextOffset);
    w.setU32(contextsAt, offset).setU16(contextsAt + 4, checkU16(list.length, 'NegotiateContextCount'));
    w.setU16(contextsAt + 6, req.Reserved2 ?? 0);
  }
  return finishBody(w);
}

export function decodeNegotiateResponse(msg: Buffer): NegotiateResponse {
  const r = bodyReader(msg, RESPONSE_SIZE, 'NEGOTIATE response');
  const SecurityMode = r.u16();
  const DialectRevision = r.u16();
  const countOrReserved = r.u16();
  const ServerGuid = r.copy(16, 'ServerGuid');
  const Capabilities = r.u32();
  const MaxTransactSize = r.u32();
  const MaxReadSize = r.u32();
  const MaxWriteSize = r.u32();
  const SystemTime = r.u64();
  const ServerStartTime = r.u64();
  const SecurityBufferOffset = r.u16();
  const length = r.u16();
  const offsetOrReserved2 = r.u32();
  const buf = sliceField(msg, SecurityBufferOffset, length, 'NEGOTIATE SecurityBufferOffset', fixedEnd(RESPONSE_SIZE));
  const SecurityBuffer = Buffer.from(buf);
  const fixed = {
    SecurityMode,
    DialectRevision,
    ServerGuid,
    Capabilities,
    MaxTransactSize,
    MaxReadSize,
    MaxWriteSize,
    SystemTime,
    ServerStartTime,
    SecurityBufferOffset,
    SecurityBuffer,
  };
  if (DialectRevision !== Smb2Dialect.SMB311) return { ...fixed, Reserved: countOrReserved, Reserved2: offsetOrReserved2 };
  // The contexts follow the SecurityBuffer and must not overlap it.
  const minOffset = length > 0 ? SecurityBufferOffset + length : fixedEnd(RESPONSE_SIZE);
  const NegotiateContextList = readContextList(msg, offsetOrReserved2, countOrReserved, minOffset);
  return { ...fixed, NegotiateContextOffset: offsetOrReserved2, NegotiateContextList };
}

export function encodeNegotiateResponse(res: NegotiateResponse): Buffer {
  const is311 = res.DialectRevision === Smb2Dialect.SMB311;
  const list = res.NegotiateContextList ?? [];
  if (is311 ? res.Reserved !== undefined || res.Reserved2 !== undefined : res.NegotiateContextOffset !== undefined || list.length > 0) {
    throw new WireError(
      ErrorCode.WIRE_ENCODE,
      is311 ? 'a 3.1.1 NEGOTIATE response has contexts, not Reserved fields' : 'negotiate contexts need DialectRevision 3.1.1',
    );
  }
  const w = bodyWriter(RESPONSE_SIZE);
  w.u16(res.SecurityMode).u16(res.DialectRevision);
  w.u16(is311 ? checkU16(list.length, 'NegotiateContextCount') : (res.Reserved ?? 0));
  w.bytes(checkGuid(res.ServerGuid, 'ServerGuid')).u32(res.Capabilities);
  w.u32(res.MaxTransactSize).u32(res.MaxReadSize).u32(res.MaxWriteSize);
  w.u64(res.SystemTime).u64(res.ServerStartTime);
  const securityAt = w.pos;
  w.zeros(4);
  const contextsAt = w.pos;
  w.u32(res.Reserved2 ?? 0);
  placeBuffer16(w, securityAt, res.SecurityBuffer, 'NEGOTIATE SecurityBuffer', res.SecurityBufferOffset);
  if (is311) w.setU32(contextsAt, writeContextList(w, list, res.NegotiateContextOffset));
  return finishVariableBody(w, RESPONSE_SIZE);
}
