/** CHANGE_NOTIFY (MS-SMB2 2.2.35, 2.2.36). The FILE_NOTIFY_INFORMATION entries are kept raw. */
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { decodeOutputBufferResponse, encodeOutputBufferResponse, type OutputBufferResponse } from './info.js';
import { bodyReader, bodyWriter, finishBody } from './message.js';

/** MS-SMB2 2.2.35 Flags. */
export const ChangeNotifyFlags = {
  SMB2_WATCH_TREE: 0x0001,
} as const;

/** MS-SMB2 2.2.35 CompletionFilter. */
export const CompletionFilter = {
  FILE_NOTIFY_CHANGE_FILE_NAME: 0x00000001,
  FILE_NOTIFY_CHANGE_DIR_NAME: 0x00000002,
  FILE_NOTIFY_CHANGE_ATTRIBUTES: 0x00000004,
  FILE_NOTIFY_CHANGE_SIZE: 0x00000008,
  FILE_NOTIFY_CHANGE_LAST_WRITE: 0x00000010,
  FILE_NOTIFY_CHANGE_LAST_ACCESS: 0x00000020,
  FILE_NOTIFY_CHANGE_CREATION: 0x00000040,
  FILE_NOTIFY_CHANGE_EA: 0x00000080,
  FILE_NOTIFY_CHANGE_SECURITY: 0x00000100,
  FILE_NOTIFY_CHANGE_STREAM_NAME: 0x00000200,
  FILE_NOTIFY_CHANGE_STREAM_SIZE: 0x00000400,
  FILE_NOTIFY_CHANGE_STREAM_WRITE: 0x00000800,
} as const;

/** MS-SMB2 2.2.35 SMB2 CHANGE_NOTIFY Request. */
export interface ChangeNotifyRequest {
  Flags: number;
  OutputBufferLength: number;
  FileId: FileId;
  CompletionFilter: number;
  Reserved: number;
}

export function decodeChangeNotifyRequest(msg: Buffer): ChangeNotifyRequest {
  const r = bodyReader(msg, 32, 'CHANGE_NOTIFY request');
  return { Flags: r.u16(), OutputBufferLength: r.u32(), FileId: readFileId(r), CompletionFilter: r.u32(), Reserved: r.u32() };
}

export function encodeChangeNotifyRequest(req: ChangeNotifyRequest): Buffer {
  const w = bodyWriter(32);
  w.u16(req.Flags).u32(req.OutputBufferLength);
  writeFileId(w, req.FileId);
  w.u32(req.CompletionFilter).u32(req.Reserved);
  return finishBody(w);
}

/** MS-SMB2 2.2.36 SMB2 CHANGE_NOTIFY Response: FILE_NOTIFY_INFORMATION entries (MS-FSCC 2.7.1), raw. */
export type ChangeNotifyResponse = OutputBufferResponse;

export function decodeChangeNotifyResponse(msg: Buffer): ChangeNotifyResponse {
  return decodeOutputBufferResponse(msg, 'CHANGE_NOTIFY response');
}

export const encodeChangeNotifyResponse = encodeOutputBufferResponse;
