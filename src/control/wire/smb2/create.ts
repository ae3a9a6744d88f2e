/** CREATE (MS-SMB2 2.2.13, 2.2.14) and the constants of opens that other commands share. */
import { decodeUtf16, encodeUtf16, type Reader, sliceField, type Writer } from '../cursor.js';
import { type CreateContext, decodeCreateContexts, writeCreateContexts } from './create-contexts.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody, fixedEnd, placeBuffer } from './message.js';

/** MS-SMB2 2.2.13 RequestedOplockLevel / 2.2.14 OplockLevel / 2.2.23.1 OplockLevel. */
export const OplockLevel = {
  SMB2_OPLOCK_LEVEL_NONE: 0x00,
  SMB2_OPLOCK_LEVEL_II: 0x01,
  SMB2_OPLOCK_LEVEL_EXCLUSIVE: 0x08,
  SMB2_OPLOCK_LEVEL_BATCH: 0x09,
  SMB2_OPLOCK_LEVEL_LEASE: 0xff,
} as const;

/** MS-SMB2 2.2.13 ImpersonationLevel. */
export const ImpersonationLevel = {
  Anonymous: 0x00000000,
  Identification: 0x00000001,
  Impersonation: 0x00000002,
  Delegate: 0x00000003,
} as const;

/** MS-SMB2 2.2.13.1.1 File_Pipe_Printer_Access_Mask and 2.2.13.1.2 Directory_Access_Mask (same bits, two names). */
export const AccessMask = {
  FILE_READ_DATA: 0x00000001,
  FILE_LIST_DIRECTORY: 0x00000001,
  FILE_WRITE_DATA: 0x00000002,
  FILE_ADD_FILE: 0x00000002,
  FILE_APPEND_DATA: 0x00000004,
  FILE_ADD_SUBDIRECTORY: 0x00000004,
  FILE_READ_EA: 0x00000008,
  FILE_WRITE_EA: 0x00000010,
  FILE_EXECUTE: 0x00000020,
  FILE_TRAVERSE: 0x00000020,
  FILE_DELETE_CHILD: 0x00000040,
  FILE_READ_ATTRIBUTES: 0x00000080,
  FILE_WRITE_ATTRIBUTES: 0x00000100,
  DELETE: 0x00010000,
  READ_CONTROL: 0x00020000,
  WRITE_DAC: 0x00040000,
  WRITE_OWNER: 0x00080000,
  SYNCHRONIZE: 0x00100000,
  ACCESS_SYSTEM_SECURITY: 0x01000000,
  MAXIMUM_ALLOWED: 0x02000000,
  GENERIC_ALL: 0x10000000,
  GENERIC_EXECUTE: 0x20000000,
  GENERIC_WRITE: 0x40000000,
  GENERIC_READ: 0x80000000,
} as const;

/** MS-FSCC 2.6 File Attributes (CREATE, CLOSE, QUERY_DIRECTORY entries...). */
export const FileAttributes = {
  FILE_ATTRIBUTE_READONLY: 0x00000001,
  FILE_ATTRIBUTE_HIDDEN: 0x00000002,
  FILE_ATTRIBUTE_SYSTEM: 0x00000004,
  FILE_ATTRIBUTE_DIRECTORY: 0x00000010,
  FILE_ATTRIBUTE_ARCHIVE: 0x00000020,
  FILE_ATTRIBUTE_NORMAL: 0x00000080,
  FILE_ATTRIBUTE_TEMPORARY: 0x00000100,
  FILE_ATTRIBUTE_SPARSE_FILE: 0x00000200,
  FILE_ATTRIBUTE_REPARSE_POINT: 0x00000400,
  FILE_ATTRIBUTE_COMPRESSED: 0x00000800,
  FILE_ATTRIBUTE_OFFLINE: 0x00001000,
  FILE_ATTRIBUTE_NOT_CONTENT_INDEXED: 0x00002000,
  FILE_ATTRIBUTE_ENCRYPTED: 0x00004000,
  FILE_ATTRIBUTE_INTEGRITY_STREAM: 0x00008000,
  FILE_ATTRIBUTE_NO_SCRUB_DATA: 0x00020000,
  FILE_ATTRIBUTE_RECALL_ON_OPEN: 0x00040000,
  FILE_ATTRIBUTE_PINNED: 0x00080000,
  FILE_ATTRIBUTE_UNPINNED: 0x00100000,
  FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS: 0x00400000,
} as const;

/** MS-SMB2 2.2.13 ShareAccess. */
export const ShareAccess = {
  FILE_SHARE_READ: 0x00000001,
  FILE_SHARE_WRITE: 0x00000002,
  FILE_SHARE_DELETE: 0x00000004,
} as const;

/** MS-SMB2 2.2.13 CreateDisposition. */
export const CreateDisposition = {
  FILE_SUPERSEDE: 0x00000000,
  FILE_OPEN: 0x00000001,
  FILE_CREATE: 0x00000002,
  FILE_OPEN_IF: 0x00000003,
  FILE_OVERWRITE: 0x00000004,
  FILE_OVERWRITE_IF: 0x00000005,
} as const;

/** MS-SMB2 2.2.13 CreateOptions. */
export const CreateOptions = {
  FILE_DIRECTORY_FILE: 0x00000001,
  FILE_WRITE_THROUGH: 0x00000002,
  FILE_SEQUENTIAL_ONLY: 0x00000004,
  FILE_NO_INTERMEDIATE_BUFFERING: 0x00000008,
  FILE_SYNCHRONOUS_IO_ALERT: 0x00000010,
  FILE_SYNCHRONOUS_IO_NONALERT: 0x00000020,
  FILE_NON_DIRECTORY_FILE: 0x00000040,
  FILE_COMPLETE_IF_OPLOCKED: 0x00000100,
  FILE_NO_EA_KNOWLEDGE: 0x00000200,
  FILE_OPEN_REMOTE_INSTANCE: 0x00000400,
  FILE_RANDOM_ACCESS: 0x00000800,
  FILE_DELETE_ON_CLOSE: 0x00001000,
  FILE_OPEN_BY_FILE_ID: 0x00002000,
  FILE_OPEN_FOR_BACKUP_INTENT: 0x00004000,
  FILE_NO_COMPRESSION: 0x00008000,
  FILE_OPEN_REQUIRING_OPLOCK: 0x00010000,
  FILE_DISALLOW_EXCLUSIVE: 0x00020000,
  FILE_RESERVE_OPFILTER: 0x00100000,
  FILE_OPEN_REPARSE_POINT: 0x00200000,
  FILE_OPEN_NO_RECALL: 0x00400000,
  FILE_OPEN_FOR_FREE_SPACE_QUERY: 0x00800000,
} as const;

/** MS-SMB2 2.2.14 Flags (SMB 3.x). */
export const CreateResponseFlags = {
  SMB2_CREATE_FLAG_REPARSEPOINT: 0x01,
} as const;

/** MS-SMB2 2.2.14 CreateAction. */
export const CreateAction = {
  FILE_SUPERSEDED: 0x00000000,
  FILE_OPENED: 0x00000001,
  FILE_CREATED: 0x00000002,
  FILE_OVERWRITTEN: 0x00000003,
} as const;

/**
 * The timestamps, sizes and attributes a CREATE response (2.2.14) and a CLOSE response with
 * POSTQUERY_ATTRIB (2.2.16) both carry, in this order. Times are FILETIMEs.
 */
export interface OpenAttributes {
  CreationTime: bigint;
  LastAccessTime: bigint;
  LastWriteTime: bigint;
  ChangeTime: bigint;
  AllocationSize: bigint;
  EndofFile: bigint;
  FileAttributes: number;
}

export function readOpenAttributes(r: Reader): OpenAttributes {
  return {
    CreationTime: r.u64(),
    LastAccessTime: r.u64(),
    LastWriteTime: r.u64(),
    ChangeTime: r.u64(),
    AllocationSize: r.u64(),
    EndofFile: r.u64(),
    FileAttributes: r.u32(),
  };
}

export function writeOpenAttributes(w: Writer, a: OpenAttributes): void {
  w.u64(a.CreationTime).u64(a.LastAccessTime).u64(a.LastWriteTime).u64(a.ChangeTime);
  w.u64(a.AllocationSize).u64(a.EndofFile).u32(a.FileAttributes);
}

/**
 * Places a create-context chain 8-aligned at the writer's position (or at `offset`) and
 * writes its offset and length at `fieldAt`. An empty chain is 0/0 unless an offset was given.
 */
function placeContexts(w: Writer, contexts: readonly CreateContext[], fieldAt: number, offset: number | undefined): void {
  let at = offset ?? 0;
  if (contexts.length > 0) {
    if (offset === undefined) w.align(8);
    else w.padTo(offset, 'CreateContextsOffset');
    at = w.pos;
    writeCreateContexts(w, contexts);
  }
  w.setU32(fieldAt, at).setU32(fieldAt + 4, contexts.length === 0 ? 0 : w.pos - at);
}

/** MS-SMB2 2.2.13 SMB2 CREATE Request. */
export interface CreateRequest {
  /** Reserved, 0. */
  SecurityFlags: number;
  RequestedOplockLevel: number;
  ImpersonationLevel: number;
  /** Reserved, 0. */
  SmbCreateFlags: bigint;
  Reserved: bigint;
  DesiredAccess: number;
  FileAttributes: number;
  ShareAccess: number;
  CreateDisposition: number;
  CreateOptions: number;
  /** Header-relative; undefined when encoding means 0x78, right after the fixed part (also for an empty Name). */
  NameOffset?: number;
  /** Share-relative path without a leading backslash; '' opens the share root. */
  Name: string;
  /** Header-relative; undefined means 8-aligned after the name (0 without contexts). */
  CreateContextsOffset?: number;
  CreateContexts: CreateContext[];
}

const CREATE_REQUEST_SIZE = 57;

export function decodeCreateRequest(msg: Buffer): CreateRequest {
  const r = bodyReader(msg, CREATE_REQUEST_SIZE, 'CREATE request');
  const SecurityFlags = r.u8();
  const RequestedOplockLevel = r.u8();
  const ImpersonationLevel = r.u32();
  const SmbCreateFlags = r.u64();
  const Reserved = r.u64();
  const DesiredAccess = r.u32();
  const FileAttributes = r.u32();
  const ShareAccess = r.u32();
  const CreateDisposition = r.u32();
  const CreateOptions = r.u32();
  const NameOffset = r.u16();
  const NameLength = r.u16();
  const CreateContextsOffset = r.u32();
  const CreateContextsLength = r.u32();
  const name = sliceField(msg, NameOffset, NameLength, 'CREATE NameOffset', fixedEnd(CREATE_REQUEST_SIZE));
  const afterName = NameLength === 0 ? fixedEnd(CREATE_REQUEST_SIZE) : NameOffset + NameLength;
  const chain = sliceField(msg, CreateContextsOffset, CreateContextsLength, 'CREATE CreateContextsOffset', afterName);
  return {
    SecurityFlags,
    RequestedOplockLevel,
    ImpersonationLevel,
    SmbCreateFlags,
    Reserved,
    DesiredAccess,
    FileAttributes,
    ShareAccess,
    CreateDisposition,
    CreateOptions,
    NameOffset,
    Name: decodeUtf16(name),
    CreateContextsOffset,
    CreateContexts: decodeCreateContexts(chain),
  };
}

export function encodeCreateRequest(req: CreateRequest): Buffer {
  const w = bodyWriter(CREATE_REQUEST_SIZE);
  const name = encodeUtf16(req.Name);
  w.u8(req.SecurityFlags).u8(req.RequestedOplockLevel).u32(req.ImpersonationLevel).u64(req.SmbCreateFlags).u64(req.Reserved);
  w.u32(req.DesiredAccess).u32(req.FileAttributes).u32(req.ShareAccess).u32(req.CreateDisposition).u32(req.CreateOptions);
  const fields = w.pos;
  w.u16(0).u16(name.length).u32(0).u32(0);
  // An empty buffer writes nothing and keeps its offset (padding to it could mean megabytes).
  const nameOffset = req.NameOffset ?? fixedEnd(CREATE_REQUEST_SIZE);
  w.setU16(fields, name.length > 0 ? placeBuffer(w, name, 'CREATE Name', nameOffset) : nameOffset);
  placeContexts(w, req.CreateContexts, fields + 4, req.CreateContextsOffset);
  if (w.pos === fixedEnd(CREATE_REQUEST_SIZE)) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.14 SMB2 CREATE Response. */
export interface CreateResponse extends OpenAttributes {
  OplockLevel: number;
  /** CreateResponseFlags (SMB 3.x), reserved before. */
  Flags: number;
  CreateAction: number;
  Reserved2: number;
  FileId: FileId;
  /** Header-relative; undefined means 0x98, right after the fixed part (0 without contexts). */
  CreateContextsOffset?: number;
  CreateContexts: CreateContext[];
}

const CREATE_RESPONSE_SIZE = 89;

export function decodeCreateResponse(msg: Buffer): CreateResponse {
  const r = bodyReader(msg, CREATE_RESPONSE_SIZE, 'CREATE response');
  const OplockLevel = r.u8();
  const Flags = r.u8();
  const CreateAction = r.u32();
  const attributes = readOpenAttributes(r);
  const Reserved2 = r.u32();
  const FileId = readFileId(r);
  const CreateContextsOffset = r.u32();
  const CreateContextsLength = r.u32();
  const chain = sliceField(msg, CreateContextsOffset, CreateContextsLength, 'CREATE CreateContextsOffset', fixedEnd(CREATE_RESPONSE_SIZE));
  return { OplockLevel, Flags, CreateAction, ...attributes, Reserved2, FileId, CreateContextsOffset, CreateContexts: decodeCreateContexts(chain) };
}

/** Without contexts the body is the 88-byte fixed part alone, as Samba sends it. */
export function encodeCreateResponse(res: CreateResponse): Buffer {
  const w = bodyWriter(CREATE_RESPONSE_SIZE);
  w.u8(res.OplockLevel).u8(res.Flags).u32(res.CreateAction);
  writeOpenAttributes(w, res);
  w.u32(res.Reserved2);
  writeFileId(w, res.FileId);
  const fields = w.pos;
  w.u32(0).u32(0);
  placeContexts(w, res.CreateContexts, fields, res.CreateContextsOffset);
  return finishBody(w);
}
