/**
 * CREATE contexts (MS-SMB2 2.2.13.2, 2.2.14.2): the chain carried in CREATE requests and
 * responses, kept generic (name + raw Data), and typed codecs for the Data of the contexts the
 * DSR reads or writes itself. Names are 4-byte ASCII tags ("MxAc") or 16-byte GUIDs.
 */
import { ErrorCode, WireError } from '../../errors.js';
import { Reader, Writer } from '../cursor.js';
import { NtStatus } from '../ntstatus.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';

/** MS-SMB2 2.2.13.2 / 2.2.14.2 tag names (the same tag serves the request and its response). */
export const CreateContextName = {
  SMB2_CREATE_EA_BUFFER: 'ExtA',
  SMB2_CREATE_SD_BUFFER: 'SecD',
  SMB2_CREATE_DURABLE_HANDLE_REQUEST: 'DHnQ',
  SMB2_CREATE_DURABLE_HANDLE_RECONNECT: 'DHnC',
  SMB2_CREATE_ALLOCATION_SIZE: 'AlSi',
  SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST: 'MxAc',
  SMB2_CREATE_TIMEWARP_TOKEN: 'TWrp',
  SMB2_CREATE_QUERY_ON_DISK_ID: 'QFid',
  /** v1 (32 bytes of Data) and v2 (52 bytes) share the tag. */
  SMB2_CREATE_REQUEST_LEASE: 'RqLs',
  SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2: 'DH2Q',
  SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2: 'DH2C',
  /** GUID names, in wire byte order (the spec lists them "in network byte order"). */
  SMB2_CREATE_APP_INSTANCE_ID: guidName('45bca66aefa7f74a9008fa462e144d74'),
  SMB2_CREATE_APP_INSTANCE_VERSION: guidName('b982d0b73b56074fa07b524a8116a010'),
  SVHDX_OPEN_DEVICE_CONTEXT: guidName('9ccbcf9e04c1e643980e158da1f6ec83'),
  /** SMB3 POSIX extensions (Samba). */
  SMB2_CREATE_TAG_POSIX: guidName('93ad25509cb411e7b42383de968bcd7c'),
} as const;

function guidName(hex: string): string {
  return Buffer.from(hex, 'hex').toString('latin1');
}

/** MS-SMB2 2.2.13.2 SMB2_CREATE_CONTEXT, one element of the chain. */
export interface CreateContext {
  /**
   * The name bytes as a latin1 string (one character per byte): a tag such as 'MxAc' or the
   * 16 raw bytes of a GUID name (see CreateContextName), so names compare with ===.
   */
  Name: string;
  Reserved: number;
  /** A view into the message when decoded. */
  Data: Buffer;
  /** Relative to the start of this context; undefined when encoding means 16. */
  NameOffset?: number;
  /**
   * Relative to the start of this context; undefined means the next multiple of 8 after the
   * name, or 0 when Data is empty. Samba points it past the name even for empty Data.
   */
  DataOffset?: number;
  /** Relative to the start of this context, 0 for the last; undefined means the next multiple of 8. */
  Next?: number;
}

const CONTEXT_HEADER_SIZE = 16;

function badChain(message: string): WireError {
  return new WireError(ErrorCode.WIRE_BAD_OFFSET, `create context chain: ${message}`, NtStatus.STATUS_INVALID_PARAMETER);
}

/**
 * Decodes a chain (the bytes CreateContextsOffset/Length designate). Each Next must move
 * forward by a multiple of 8 and leave room for another context; each context's name and data
 * must lie inside the context, data 8-aligned and after the name. Data are views.
 */
export function decodeCreateContexts(chain: Buffer): CreateContext[] {
  const out: CreateContext[] = [];
  let at = 0;
  while (at < chain.length) {
    const r = new Reader(chain, at);
    r.need(CONTEXT_HEADER_SIZE, 'create context header');
    const Next = r.u32();
    const NameOffset = r.u16();
    const NameLength = r.u16();
    const Reserved = r.u16();
    const DataOffset = r.u16();
    const DataLength = r.u32();
    const remaining = chain.length - at;
    if (Next !== 0 && (Next % 8 !== 0 || Next < CONTEXT_HEADER_SIZE || Next > remaining - CONTEXT_HEADER_SIZE)) {
      throw badChain(`Next ${Next} at ${at} is unaligned, backwards or outside ${remaining} bytes`);
    }
    const size = Next === 0 ? remaining : Next;
    const nameEnd = NameOffset + NameLength;
    if (NameLength === 0 || NameOffset < CONTEXT_HEADER_SIZE || nameEnd > size) {
      throw badChain(`name ${NameOffset}+${NameLength} at ${at} is outside its ${size}-byte context`);
    }
    if (DataOffset % 8 !== 0 || ((DataOffset !== 0 || DataLength !== 0) && DataOffset < nameEnd) || DataOffset + DataLength > size) {
      throw badChain(`data ${DataOffset}+${DataLength} at ${at} is unaligned, overlaps the name or is outside its ${size}-byte context`);
    }
    out.push({
      Name: chain.toString('latin1', at + NameOffset, at + nameEnd),
      Reserved,
      Data: chain.subarray(at + DataOffset, at + DataOffset + DataLength),
      NameOffset,
      DataOffset,
      Next,
    });
    if (Next === 0) break;
    at += Next;
  }
  return out;
}

/** Writes a chain at the writer's position (which the caller has 8-aligned). */
export function writeCreateContexts(w: Writer, contexts: readonly CreateContext[]): void {
  contexts.forEach((c, i) => {
    const last = i === contexts.length - 1;
    if (last && c.Next) throw new WireError(ErrorCode.WIRE_ENCODE, `the last create context has Next ${c.Next}`);
    const name = Buffer.from(c.Name, 'latin1');
    if (name.length === 0 || name.toString('latin1') !== c.Name) {
      throw new WireError(ErrorCode.WIRE_ENCODE, `create context name ${JSON.stringify(c.Name)} is empty or not one byte per character`);
    }
    const start = w.pos;
    w.u32(0).u16(0).u16(name.length).u16(c.Reserved).u16(0).u32(c.Data.length);
    const nameOffset = c.NameOffset ?? CONTEXT_HEADER_SIZE;
    w.padTo(start + nameOffset, 'create context NameOffset').bytes(name);
    let dataOffset = c.DataOffset ?? 0;
    if (c.DataOffset === undefined && c.Data.length > 0) {
      w.align(8, start);
      dataOffset = w.pos - start;
    }
    if (dataOffset !== 0) w.padTo(start + dataOffset, 'create context DataOffset');
    w.bytes(c.Data);
    w.setU16(start + 4, nameOffset).setU16(start + 10, dataOffset);
    if (!last) {
      if (c.Next === undefined) w.align(8, start);
      else w.padTo(start + c.Next, 'create context Next');
      w.setU32(start, w.pos - start);
    }
  });
}

export function encodeCreateContexts(contexts: readonly CreateContext[]): Buffer {
  const w = new Writer();
  writeCreateContexts(w, contexts);
  return w.finish();
}

/** The first context with this name (CreateContextName), if any. */
export function findCreateContext(contexts: readonly CreateContext[], name: string): CreateContext | undefined {
  return contexts.find((c) => c.Name === name);
}

/** A context with canonical offsets. */
export function createContext(name: string, data: Buffer = Buffer.alloc(0)): CreateContext {
  return { Name: name, Reserved: 0, Data: data };
}

// Typed Data codecs. Each checks the exact length its section gives; GUIDs and keys are copied
// because they outlive the frame (lease and durable-handle tables).

function dataReader(data: Buffer, sizes: readonly number[], what: string): Reader {
  if (!sizes.includes(data.length)) {
    const expected = sizes.join(' or ');
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `${what} data is ${data.length} bytes, expected ${expected}`, NtStatus.STATUS_INVALID_PARAMETER);
  }
  return new Reader(data);
}

/** Writes a GUID or another 16-byte key, refusing any other length. */
export function writeGuid(w: Writer, b: Buffer, what: string): Writer {
  if (b.length !== 16) throw new WireError(ErrorCode.WIRE_ENCODE, `${what} must be 16 bytes, got ${b.length}`);
  return w.bytes(b);
}

function build(write: (w: Writer) => void): Buffer {
  const w = new Writer(64);
  write(w);
  return Buffer.from(w.finish());
}

/** MS-SMB2 2.2.13.2.3 SMB2_CREATE_DURABLE_HANDLE_REQUEST ("DHnQ"). */
export interface DurableHandleRequest {
  /** 16 reserved bytes. */
  DurableRequest: Buffer;
}
export function decodeDurableHandleRequest(data: Buffer): DurableHandleRequest {
  return { DurableRequest: dataReader(data, [16], 'DHnQ request').copy(16) };
}
export function encodeDurableHandleRequest(v: DurableHandleRequest = { DurableRequest: Buffer.alloc(16) }): Buffer {
  return build((w) => writeGuid(w, v.DurableRequest, 'DurableRequest'));
}

/** MS-SMB2 2.2.14.2.3 SMB2_CREATE_DURABLE_HANDLE_RESPONSE ("DHnQ"). */
export interface DurableHandleResponse {
  Reserved: bigint;
}
export function decodeDurableHandleResponse(data: Buffer): DurableHandleResponse {
  return { Reserved: dataReader(data, [8], 'DHnQ response').u64() };
}
export function encodeDurableHandleResponse(v: DurableHandleResponse = { Reserved: 0n }): Buffer {
  return build((w) => w.u64(v.Reserved));
}

/** MS-SMB2 2.2.13.2.4 SMB2_CREATE_DURABLE_HANDLE_RECONNECT ("DHnC"). */
export interface DurableHandleReconnect {
  Data: FileId;
}
export function decodeDurableHandleReconnect(data: Buffer): DurableHandleReconnect {
  return { Data: readFileId(dataReader(data, [16], 'DHnC')) };
}
export function encodeDurableHandleReconnect(v: DurableHandleReconnect): Buffer {
  return build((w) => writeFileId(w, v.Data));
}

/** MS-SMB2 2.2.13.2.5 SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST ("MxAc"): Data is empty or a Timestamp. */
export interface QueryMaximalAccessRequest {
  Timestamp?: bigint;
}
export function decodeQueryMaximalAccessRequest(data: Buffer): QueryMaximalAccessRequest {
  const r = dataReader(data, [0, 8], 'MxAc request');
  return data.length === 0 ? {} : { Timestamp: r.u64() };
}
export function encodeQueryMaximalAccessRequest(v: QueryMaximalAccessRequest = {}): Buffer {
  return build((w) => {
    if (v.Timestamp !== undefined) w.u64(v.Timestamp);
  });
}

/** MS-SMB2 2.2.14.2.5 SMB2_CREATE_QUERY_MAXIMAL_ACCESS_RESPONSE ("MxAc"). */
export interface QueryMaximalAccessResponse {
  /** NTSTATUS of the maximal access computation. */
  QueryStatus: number;
  MaximalAccess: number;
}
export function decodeQueryMaximalAccessResponse(data: Buffer): QueryMaximalAccessResponse {
  const r = dataReader(data, [8], 'MxAc response');
  return { QueryStatus: r.u32(), MaximalAccess: r.u32() };
}
export function encodeQueryMaximalAccessResponse(v: QueryMaximalAccessResponse): Buffer {
  return build((w) => w.u32(v.QueryStatus).u32(v.MaximalAccess));
}

/** MS-SMB2 2.2.13.2.6 SMB2_CREATE_ALLOCATION_SIZE ("AlSi"). */
export interface AllocationSize {
  AllocationSize: bigint;
}
export function decodeAllocationSize(data: Buffer): AllocationSize {
  return { AllocationSize: dataReader(data, [8], 'AlSi').u64() };
}
export function encodeAllocationSize(v: AllocationSize): Buffer {
  return build((w) => w.u64(v.AllocationSize));
}

/** MS-SMB2 2.2.13.2.7 SMB2_CREATE_TIMEWARP_TOKEN ("TWrp"): the snapshot time as a FILETIME. */
export interface TimewarpToken {
  Timestamp: bigint;
}
export function decodeTimewarpToken(data: Buffer): TimewarpToken {
  return { Timestamp: dataReader(data, [8], 'TWrp').u64() };
}
export function encodeTimewarpToken(v: TimewarpToken): Buffer {
  return build((w) => w.u64(v.Timestamp));
}

/** MS-SMB2 2.2.14.2.9 SMB2_CREATE_QUERY_ON_DISK_ID ("QFid") response. */
export interface QueryOnDiskIdResponse {
  DiskFileId: bigint;
  VolumeId: bigint;
  /** 16 reserved bytes. */
  Reserved: Buffer;
}
export function decodeQueryOnDiskIdResponse(data: Buffer): QueryOnDiskIdResponse {
  const r = dataReader(data, [32], 'QFid response');
  return { DiskFileId: r.u64(), VolumeId: r.u64(), Reserved: r.copy(16) };
}
export function encodeQueryOnDiskIdResponse(v: QueryOnDiskIdResponse): Buffer {
  return build((w) => writeGuid(w.u64(v.DiskFileId).u64(v.VolumeId), v.Reserved, 'QFid Reserved'));
}

/** MS-SMB2 2.2.13.2.8 SMB2_CREATE_REQUEST_LEASE and 2.2.14.2.10 SMB2_CREATE_RESPONSE_LEASE ("RqLs", 32 bytes). */
export interface LeaseV1 {
  LeaseKey: Buffer;
  /** LeaseState bits. */
  LeaseState: number;
  /** LeaseFlags bits. */
  LeaseFlags: number;
  LeaseDuration: bigint;
}
/** MS-SMB2 2.2.13.2.10 SMB2_CREATE_REQUEST_LEASE_V2 and 2.2.14.2.11 SMB2_CREATE_RESPONSE_LEASE_V2 ("RqLs", 52 bytes). */
export interface LeaseV2 extends LeaseV1 {
  ParentLeaseKey: Buffer;
  Epoch: number;
  Reserved: number;
}
export type Lease = LeaseV1 | LeaseV2;

export function isLeaseV2(l: Lease): l is LeaseV2 {
  return 'ParentLeaseKey' in l;
}

/** MS-SMB2 2.2.13.2.8 LeaseState (also used by lease break messages). */
export const LeaseState = {
  SMB2_LEASE_NONE: 0x00,
  SMB2_LEASE_READ_CACHING: 0x01,
  SMB2_LEASE_HANDLE_CACHING: 0x02,
  SMB2_LEASE_WRITE_CACHING: 0x04,
} as const;

/** MS-SMB2 2.2.13.2.10 / 2.2.14.2.10 LeaseFlags. */
export const LeaseFlags = {
  /** Response only: a break is in progress. */
  SMB2_LEASE_FLAG_BREAK_IN_PROGRESS: 0x02,
  /** v2 only: ParentLeaseKey is set. */
  SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET: 0x04,
} as const;

/** Decodes RqLs Data; the version follows from its length (32 = v1, 52 = v2). */
export function decodeLease(data: Buffer): Lease {
  const r = dataReader(data, [32, 52], 'RqLs');
  const v1: LeaseV1 = { LeaseKey: r.copy(16), LeaseState: r.u32(), LeaseFlags: r.u32(), LeaseDuration: r.u64() };
  if (data.length === 32) return v1;
  return { ...v1, ParentLeaseKey: r.copy(16), Epoch: r.u16(), Reserved: r.u16() };
}
export function encodeLease(v: Lease): Buffer {
  return build((w) => {
    writeGuid(w, v.LeaseKey, 'LeaseKey').u32(v.LeaseState).u32(v.LeaseFlags).u64(v.LeaseDuration);
    if (isLeaseV2(v)) writeGuid(w, v.ParentLeaseKey, 'ParentLeaseKey').u16(v.Epoch).u16(v.Reserved);
  });
}

/** MS-SMB2 2.2.13.2.11 / 2.2.13.2.12 Flags of DH2Q and DH2C. */
export const DurableHandleV2Flags = {
  SMB2_DHANDLE_FLAG_PERSISTENT: 0x00000002,
} as const;

/** MS-SMB2 2.2.13.2.11 SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2 ("DH2Q"). */
export interface DurableHandleRequestV2 {
  /** Milliseconds; 0 lets the server choose. */
  Timeout: number;
  Flags: number;
  Reserved: bigint;
  CreateGuid: Buffer;
}
export function decodeDurableHandleRequestV2(data: Buffer): DurableHandleRequestV2 {
  const r = dataReader(data, [32], 'DH2Q request');
  return { Timeout: r.u32(), Flags: r.u32(), Reserved: r.u64(), CreateGuid: r.copy(16) };
}
export function encodeDurableHandleRequestV2(v: DurableHandleRequestV2): Buffer {
  return build((w) => writeGuid(w.u32(v.Timeout).u32(v.Flags).u64(v.Reserved), v.CreateGuid, 'CreateGuid'));
}

/** MS-SMB2 2.2.14.2.12 SMB2_CREATE_DURABLE_HANDLE_RESPONSE_V2 ("DH2Q"). */
export interface DurableHandleResponseV2 {
  Timeout: number;
  Flags: number;
}
export function decodeDurableHandleResponseV2(data: Buffer): DurableHandleResponseV2 {
  const r = dataReader(data, [8], 'DH2Q response');
  return { Timeout: r.u32(), Flags: r.u32() };
}
export function encodeDurableHandleResponseV2(v: DurableHandleResponseV2): Buffer {
  return build((w) => w.u32(v.Timeout).u32(v.Flags));
}

/** MS-SMB2 2.2.13.2.12 SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2 ("DH2C"). */
export interface DurableHandleReconnectV2 {
  FileId: FileId;
  CreateGuid: Buffer;
  Flags: number;
}
export function decodeDurableHandleReconnectV2(data: Buffer): DurableHandleReconnectV2 {
  const r = dataReader(data, [36], 'DH2C');
  return { FileId: readFileId(r), CreateGuid: r.copy(16), Flags: r.u32() };
}
export function encodeDurableHandleReconnectV2(v: DurableHandleReconnectV2): Buffer {
  return build((w) => {
    writeFileId(w, v.FileId);
    writeGuid(w, v.CreateGuid, 'CreateGuid').u32(v.Flags);
  });
}

/** MS-SMB2 2.2.13.2.13 SMB2_CREATE_APP_INSTANCE_ID (GUID-named). */
export interface AppInstanceId {
  /** 20. */
  StructureSize: number;
  Reserved: number;
  AppInstanceId: Buffer;
}
export function decodeAppInstanceId(data: Buffer): AppInstanceId {
  const r = dataReader(data, [20], 'APP_INSTANCE_ID');
  return { StructureSize: r.u16(), Reserved: r.u16(), AppInstanceId: r.copy(16) };
}
export function encodeAppInstanceId(v: AppInstanceId): Buffer {
  return build((w) => writeGuid(w.u16(v.StructureSize).u16(v.Reserved), v.AppInstanceId, 'AppInstanceId'));
}

/** MS-SMB2 2.2.13.2.15 SMB2_CREATE_APP_INSTANCE_VERSION (GUID-named). */
export interface AppInstanceVersion {
  /** 24. */
  StructureSize: number;
  Reserved: number;
  Padding: number;
  AppInstanceVersionHigh: bigint;
  AppInstanceVersionLow: bigint;
}
export function decodeAppInstanceVersion(data: Buffer): AppInstanceVersion {
  const r = dataReader(data, [24], 'APP_INSTANCE_VERSION');
  return { StructureSize: r.u16(), Reserved: r.u16(), Padding: r.u32(), AppInstanceVersionHigh: r.u64(), AppInstanceVersionLow: r.u64() };
}
export function encodeAppInstanceVersion(v: AppInstanceVersion): Buffer {
  return build((w) => w.u16(v.StructureSize).u16(v.Reserved).u32(v.Padding).u64(v.AppInstanceVersionHigh).u64(v.AppInstanceVersionLow));
}
