/**
 * QUERY_INFO and SET_INFO (MS-SMB2 2.2.37-2.2.40), and the OutputBuffer response shape that
 * QUERY_INFO (2.2.38), QUERY_DIRECTORY (2.2.34) and CHANGE_NOTIFY (2.2.36) responses share.
 * InfoType values are in constants.ts.
 */
import { sliceField } from '../cursor.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody, fixedEnd, placeBuffer } from './message.js';

/** MS-FSCC 2.4 file information classes used with QUERY_INFO / SET_INFO (InfoType FILE). */
export const FileInformationClass = {
  FileBasicInformation: 4,
  FileStandardInformation: 5,
  FileInternalInformation: 6,
  FileEaInformation: 7,
  FileAccessInformation: 8,
  FileNameInformation: 9,
  FileRenameInformation: 10,
  FileLinkInformation: 11,
  FileDispositionInformation: 13,
  FilePositionInformation: 14,
  FileFullEaInformation: 15,
  FileModeInformation: 16,
  FileAlignmentInformation: 17,
  FileAllInformation: 18,
  FileAllocationInformation: 19,
  FileEndOfFileInformation: 20,
  FileAlternateNameInformation: 21,
  FileStreamInformation: 22,
  FilePipeInformation: 23,
  FilePipeLocalInformation: 24,
  FilePipeRemoteInformation: 25,
  FileCompressionInformation: 28,
  FileQuotaInformation: 32,
  FileNetworkOpenInformation: 34,
  FileAttributeTagInformation: 35,
  FileValidDataLengthInformation: 39,
  FileShortNameInformation: 40,
  FileNormalizedNameInformation: 48,
  FileIdInformation: 59,
  FileDispositionInformationEx: 64,
  FileRenameInformationEx: 65,
} as const;

/** MS-FSCC 2.5 file system information classes (InfoType FILESYSTEM). */
export const FsInformationClass = {
  FileFsVolumeInformation: 1,
  FileFsLabelInformation: 2,
  FileFsSizeInformation: 3,
  FileFsDeviceInformation: 4,
  FileFsAttributeInformation: 5,
  FileFsControlInformation: 6,
  FileFsFullSizeInformation: 7,
  FileFsObjectIdInformation: 8,
  FileFsDriverPathInformation: 9,
  FileFsVolumeFlagsInformation: 10,
  FileFsSectorSizeInformation: 11,
} as const;

/** MS-SMB2 2.2.37 AdditionalInformation for InfoType SECURITY (also SET_INFO, 2.2.39). */
export const SecurityInformation = {
  OWNER_SECURITY_INFORMATION: 0x00000001,
  GROUP_SECURITY_INFORMATION: 0x00000002,
  DACL_SECURITY_INFORMATION: 0x00000004,
  SACL_SECURITY_INFORMATION: 0x00000008,
  LABEL_SECURITY_INFORMATION: 0x00000010,
  ATTRIBUTE_SECURITY_INFORMATION: 0x00000020,
  SCOPE_SECURITY_INFORMATION: 0x00000040,
  BACKUP_SECURITY_INFORMATION: 0x00010000,
} as const;

/** MS-SMB2 2.2.37 Flags (for FileFullEaInformation and quota queries). */
export const QueryInfoFlags = {
  SL_RESTART_SCAN: 0x00000001,
  SL_RETURN_SINGLE_ENTRY: 0x00000002,
  SL_INDEX_SPECIFIED: 0x00000004,
} as const;

/** MS-SMB2 2.2.37 SMB2 QUERY_INFO Request. */
export interface QueryInfoRequest {
  InfoType: number;
  /** FileInformationClass / FsInformationClass; 0 for SECURITY and QUOTA. */
  FileInfoClass: number;
  OutputBufferLength: number;
  /** Header-relative; undefined means 0x68, right after the fixed part (0 when InputBuffer is empty). */
  InputBufferOffset?: number;
  Reserved: number;
  AdditionalInformation: number;
  Flags: number;
  FileId: FileId;
  /** SMB2_QUERY_QUOTA_INFO or FILE_GET_EA_INFORMATION list, kept raw. */
  InputBuffer: Buffer;
}

const QUERY_INFO_REQUEST_SIZE = 41;

export function decodeQueryInfoRequest(msg: Buffer): QueryInfoRequest {
  const r = bodyReader(msg, QUERY_INFO_REQUEST_SIZE, 'QUERY_INFO request');
  const InfoType = r.u8();
  const FileInfoClass = r.u8();
  const OutputBufferLength = r.u32();
  const InputBufferOffset = r.u16();
  const Reserved = r.u16();
  const InputBufferLength = r.u32();
  const AdditionalInformation = r.u32();
  const Flags = r.u32();
  const FileId = readFileId(r);
  const InputBuffer = sliceField(msg, InputBufferOffset, InputBufferLength, 'QUERY_INFO InputBufferOffset', fixedEnd(QUERY_INFO_REQUEST_SIZE));
  return { InfoType, FileInfoClass, OutputBufferLength, InputBufferOffset, Reserved, AdditionalInformation, Flags, FileId, InputBuffer };
}

/** Without InputBuffer the Buffer is 1 zero byte, as clients send it. */
export function encodeQueryInfoRequest(req: QueryInfoRequest): Buffer {
  const w = bodyWriter(QUERY_INFO_REQUEST_SIZE);
  const input = req.InputBuffer;
  w.u8(req.InfoType).u8(req.FileInfoClass).u32(req.OutputBufferLength);
  const field = w.pos;
  w.u16(0).u16(req.Reserved).u32(input.length).u32(req.AdditionalInformation).u32(req.Flags);
  writeFileId(w, req.FileId);
  w.setU16(field, input.length > 0 ? placeBuffer(w, input, 'QUERY_INFO InputBuffer', req.InputBufferOffset) : (req.InputBufferOffset ?? 0));
  if (input.length === 0) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.38 / 2.2.34 / 2.2.36: a response that is only an OutputBuffer. */
export interface OutputBufferResponse {
  /** Header-relative; undefined means 0x48, right after the fixed part (also when empty, as Samba sends it). */
  OutputBufferOffset?: number;
  /** A view into the message when decoded. */
  OutputBuffer: Buffer;
}

const OUTPUT_BUFFER_RESPONSE_SIZE = 9;

export function decodeOutputBufferResponse(msg: Buffer, what: string): OutputBufferResponse {
  const r = bodyReader(msg, OUTPUT_BUFFER_RESPONSE_SIZE, what);
  const OutputBufferOffset = r.u16();
  const OutputBufferLength = r.u32();
  const OutputBuffer = sliceField(msg, OutputBufferOffset, OutputBufferLength, `${what} OutputBufferOffset`, fixedEnd(OUTPUT_BUFFER_RESPONSE_SIZE));
  return { OutputBufferOffset, OutputBuffer };
}

/** Without OutputBuffer the body is the 8-byte fixed part alone, as Samba sends it. */
export function encodeOutputBufferResponse(res: OutputBufferResponse): Buffer {
  const w = bodyWriter(OUTPUT_BUFFER_RESPONSE_SIZE);
  const offset = res.OutputBufferOffset ?? fixedEnd(OUTPUT_BUFFER_RESPONSE_SIZE);
  w.u16(offset).u32(res.OutputBuffer.length);
  if (res.OutputBuffer.length > 0) placeBuffer(w, res.OutputBuffer, 'OutputBuffer', offset);
  return finishBody(w);
}

/** MS-SMB2 2.2.38 SMB2 QUERY_INFO Response. */
export type QueryInfoResponse = OutputBufferResponse;

export function decodeQueryInfoResponse(msg: Buffer): QueryInfoResponse {
  return decodeOutputBufferResponse(msg, 'QUERY_INFO response');
}

export const encodeQueryInfoResponse = encodeOutputBufferResponse;

/** MS-SMB2 2.2.39 SMB2 SET_INFO Request. */
export interface SetInfoRequest {
  InfoType: number;
  FileInfoClass: number;
  /** Header-relative; undefined means 0x60, right after the fixed part (0 when Buffer is empty). */
  BufferOffset?: number;
  Reserved: number;
  AdditionalInformation: number;
  FileId: FileId;
  /** The information structure, kept raw (a view into the message when decoded). */
  Buffer: Buffer;
}

const SET_INFO_REQUEST_SIZE = 33;

export function decodeSetInfoRequest(msg: Buffer): SetInfoRequest {
  const r = bodyReader(msg, SET_INFO_REQUEST_SIZE, 'SET_INFO request');
  const InfoType = r.u8();
  const FileInfoClass = r.u8();
  const BufferLength = r.u32();
  const BufferOffset = r.u16();
  const Reserved = r.u16();
  const AdditionalInformation = r.u32();
  const FileId = readFileId(r);
  const buffer = sliceField(msg, BufferOffset, BufferLength, 'SET_INFO BufferOffset', fixedEnd(SET_INFO_REQUEST_SIZE));
  return { InfoType, FileInfoClass, BufferOffset, Reserved, AdditionalInformation, FileId, Buffer: buffer };
}

/** Without Buffer the variable part is 1 zero byte, as for every request with an odd StructureSize. */
export function encodeSetInfoRequest(req: SetInfoRequest): Buffer {
  const w = bodyWriter(SET_INFO_REQUEST_SIZE);
  const buffer = req.Buffer;
  w.u8(req.InfoType).u8(req.FileInfoClass).u32(buffer.length);
  const field = w.pos;
  w.u16(0).u16(req.Reserved).u32(req.AdditionalInformation);
  writeFileId(w, req.FileId);
  w.setU16(field, buffer.length > 0 ? placeBuffer(w, buffer, 'SET_INFO Buffer', req.BufferOffset) : (req.BufferOffset ?? 0));
  if (buffer.length === 0) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.40 SMB2 SET_INFO Response: a StructureSize of 2 and nothing else. */
export type SetInfoResponse = Record<string, never>;

export function decodeSetInfoResponse(msg: Buffer): SetInfoResponse {
  bodyReader(msg, 2, 'SET_INFO response');
  return {};
}

export function encodeSetInfoResponse(): Buffer {
  return finishBody(bodyWriter(2));
}
