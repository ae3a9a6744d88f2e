/** FLUSH request (MS-SMB2 2.2.17); the response (2.2.18) is a reserved body, see simple.ts. */
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody } from './message.js';

/** MS-SMB2 2.2.17 SMB2 FLUSH Request. */
export interface FlushRequest {
  Reserved1: number;
  Reserved2: number;
  FileId: FileId;
}

export function decodeFlushRequest(msg: Buffer): FlushRequest {
  const r = bodyReader(msg, 24, 'FLUSH request');
  return { Reserved1: r.u16(), Reserved2: r.u32(), FileId: readFileId(r) };
}

export function encodeFlushRequest(req: FlushRequest): Buffer {
  const w = bodyWriter(24);
  w.u16(req.Reserved1).u32(req.Reserved2);
  writeFileId(w, req.FileId);
  return finishBody(w);
}
