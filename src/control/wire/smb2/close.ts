/** CLOSE (MS-SMB2 2.2.15, 2.2.16). */
import { type OpenAttributes, readOpenAttributes, writeOpenAttributes } from './create.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody } from './message.js';

/** MS-SMB2 2.2.15 Flags. */
export const CloseFlags = {
  /** The response carries the attributes of the file as it is closed; otherwise they are all 0. */
  SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB: 0x0001,
} as const;

/** MS-SMB2 2.2.15 SMB2 CLOSE Request. */
export interface CloseRequest {
  Flags: number;
  Reserved: number;
  FileId: FileId;
}

export function decodeCloseRequest(msg: Buffer): CloseRequest {
  const r = bodyReader(msg, 24, 'CLOSE request');
  return { Flags: r.u16(), Reserved: r.u32(), FileId: readFileId(r) };
}

export function encodeCloseRequest(req: CloseRequest): Buffer {
  const w = bodyWriter(24);
  w.u16(req.Flags).u32(req.Reserved);
  writeFileId(w, req.FileId);
  return finishBody(w);
}

/** MS-SMB2 2.2.16 SMB2 CLOSE Response. */
export interface CloseResponse extends OpenAttributes {
  Flags: number;
  Reserved: number;
}

export function decodeCloseResponse(msg: Buffer): CloseResponse {
  const r = bodyReader(msg, 60, 'CLOSE response');
  const Flags = r.u16();
  const Reserved = r.u32();
  return { Flags, Reserved, ...readOpenAttributes(r) };
}

export function encodeCloseResponse(res: CloseResponse): Buffer {
  const w = bodyWriter(60);
  w.u16(res.Flags).u32(res.Reserved);
  writeOpenAttributes(w, res);
  return finishBody(w);
}
