/** TREE_CONNECT and TREE_DISCONNECT (MS-SMB2 2.2.9-2.2.12). */
import { decodeUtf16, encodeUtf16, sliceField } from '../cursor.js';
import { bodyReader, bodyWriter, finishBody, fixedEnd, placeBuffer } from './message.js';

/** MS-SMB2 2.2.9 Flags (SMB 3.1.1). */
export const TreeConnectFlags = {
  CLUSTER_RECONNECT: 0x0001,
  REDIRECT_TO_OWNER: 0x0002,
  EXTENSION_PRESENT: 0x0004,
} as const;

/** MS-SMB2 2.2.9 SMB2 TREE_CONNECT Request. */
export interface TreeConnectRequest {
  /** Reserved before 3.1.1. */
  Flags: number;
  /** Header-relative; undefined when encoding means "right after the fixed part". */
  PathOffset?: number;
  /** "\\server\share" in UTF-16LE. With EXTENSION_PRESENT the buffer is kept raw instead. */
  Path: string;
  /** The whole Buffer when Flags has EXTENSION_PRESENT (MS-SMB2 2.2.9.1); Path is then ''. */
  Extension?: Buffer;
}

export function decodeTreeConnectRequest(msg: Buffer): TreeConnectRequest {
  const r = bodyReader(msg, 9, 'TREE_CONNECT request');
  const Flags = r.u16();
  const PathOffset = r.u16();
  const PathLength = r.u16();
  const buf = sliceField(msg, PathOffset, PathLength, 'TREE_CONNECT PathOffset', fixedEnd(9));
  if (Flags & TreeConnectFlags.EXTENSION_PRESENT) return { Flags, PathOffset, Path: '', Extension: Buffer.from(buf) };
  return { Flags, PathOffset, Path: decodeUtf16(buf) };
}

export function encodeTreeConnectRequest(req: TreeConnectRequest): Buffer {
  const w = bodyWriter(9);
  const data = req.Extension ?? encodeUtf16(req.Path);
  w.u16(req.Flags);
  const at = w.pos;
  w.u16(0).u16(data.length);
  const offset = placeBuffer(w, data, 'TREE_CONNECT Path', req.PathOffset);
  w.setU16(at, offset);
  if (data.length === 0) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.10 SMB2 TREE_CONNECT Response. */
export interface TreeConnectResponse {
  ShareType: number;
  Reserved: number;
  ShareFlags: number;
  Capabilities: number;
  MaximalAccess: number;
}

export function decodeTreeConnectResponse(msg: Buffer): TreeConnectResponse {
  const r = bodyReader(msg, 16, 'TREE_CONNECT response');
  return { ShareType: r.u8(), Reserved: r.u8(), ShareFlags: r.u32(), Capabilities: r.u32(), MaximalAccess: r.u32() };
}

export function encodeTreeConnectResponse(res: TreeConnectResponse): Buffer {
  const w = bodyWriter(16);
  w.u8(res.ShareType).u8(res.Reserved).u32(res.ShareFlags).u32(res.Capabilities).u32(res.MaximalAccess);
  return finishBody(w);
}
