/** QUERY_DIRECTORY (MS-SMB2 2.2.33, 2.2.34). The entries in the response are kept raw. */
import { decodeUtf16, encodeUtf16, sliceField } from '../cursor.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { decodeOutputBufferResponse, encodeOutputBufferResponse, type OutputBufferResponse } from './info.js';
import { bodyReader, bodyWriter, finishBody, fixedEnd, placeBuffer } from './message.js';

/** MS-SMB2 2.2.33 FileInformationClass (MS-FSCC 2.4 directory enumeration classes). */
export const DirectoryInformationClass = {
  FileDirectoryInformation: 0x01,
  FileFullDirectoryInformation: 0x02,
  FileBothDirectoryInformation: 0x03,
  FileNamesInformation: 0x0c,
  FileIdBothDirectoryInformation: 0x25,
  FileIdFullDirectoryInformation: 0x26,
  FileIdExtdDirectoryInformation: 0x3c,
  FileId64ExtdDirectoryInformation: 0x4e,
  FileId64ExtdBothDirectoryInformation: 0x4f,
  FileIdAllExtdDirectoryInformation: 0x50,
  FileIdAllExtdBothDirectoryInformation: 0x51,
  /** SMB3 POSIX extensions (Samba). */
  FileInformationClass_Reserved: 0x64,
} as const;

/** MS-SMB2 2.2.33 Flags. */
export const QueryDirectoryFlags = {
  SMB2_RESTART_SCANS: 0x01,
  SMB2_RETURN_SINGLE_ENTRY: 0x02,
  SMB2_INDEX_SPECIFIED: 0x04,
  SMB2_REOPEN: 0x10,
} as const;

/** MS-SMB2 2.2.33 SMB2 QUERY_DIRECTORY Request. */
export interface QueryDirectoryRequest {
  FileInformationClass: number;
  Flags: number;
  FileIndex: number;
  FileId: FileId;
  /** Header-relative; undefined means 0x60, right after the fixed part (0 when FileName is empty). */
  FileNameOffset?: number;
  /** The search pattern, e.g. '*'. */
  FileName: string;
  OutputBufferLength: number;
}

const QUERY_DIRECTORY_REQUEST_SIZE = 33;

export function decodeQueryDirectoryRequest(msg: Buffer): QueryDirectoryRequest {
  const r = bodyReader(msg, QUERY_DIRECTORY_REQUEST_SIZE, 'QUERY_DIRECTORY request');
  const FileInformationClass = r.u8();
  const Flags = r.u8();
  const FileIndex = r.u32();
  const FileId = readFileId(r);
  const FileNameOffset = r.u16();
  const FileNameLength = r.u16();
  const OutputBufferLength = r.u32();
  const name = sliceField(msg, FileNameOffset, FileNameLength, 'QUERY_DIRECTORY FileNameOffset', fixedEnd(QUERY_DIRECTORY_REQUEST_SIZE));
  return { FileInformationClass, Flags, FileIndex, FileId, FileNameOffset, FileName: decodeUtf16(name), OutputBufferLength };
}

/** Without FileName the Buffer is 1 zero byte. */
export function encodeQueryDirectoryRequest(req: QueryDirectoryRequest): Buffer {
  const w = bodyWriter(QUERY_DIRECTORY_REQUEST_SIZE);
  const name = encodeUtf16(req.FileName);
  w.u8(req.FileInformationClass).u8(req.Flags).u32(req.FileIndex);
  writeFileId(w, req.FileId);
  const field = w.pos;
  w.u16(0).u16(name.length).u32(req.OutputBufferLength);
  w.setU16(field, name.length > 0 ? placeBuffer(w, name, 'QUERY_DIRECTORY FileName', req.FileNameOffset) : (req.FileNameOffset ?? 0));
  if (name.length === 0) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.34 SMB2 QUERY_DIRECTORY Response: the entries of the requested class, raw. */
export type QueryDirectoryResponse = OutputBufferResponse;

export function decodeQueryDirectoryResponse(msg: Buffer): QueryDirectoryResponse {
  return decodeOutputBufferResponse(msg, 'QUERY_DIRECTORY response');
}

export const encodeQueryDirectoryResponse = encodeOutputBufferResponse;
