/** WRITE (MS-SMB2 2.2.21, 2.2.22). Data are views into the message, never copies. */
import { sliceField } from '../cursor.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody, fixedEnd, placeBuffer } from './message.js';

/** MS-SMB2 2.2.21 Flags. */
export const WriteFlags = {
  SMB2_WRITEFLAG_WRITE_THROUGH: 0x00000001,
  SMB2_WRITEFLAG_WRITE_UNBUFFERED: 0x00000002,
} as const;

/** MS-SMB2 2.2.21 SMB2 WRITE Request. Channel values are in read.ts. */
export interface WriteRequest {
  /** Header-relative; undefined means 0x70, right after the fixed part (also for empty Data, as clients send it). */
  DataOffset?: number;
  Offset: bigint;
  FileId: FileId;
  Channel: number;
  RemainingBytes: number;
  /** Header-relative; undefined means 8-aligned after Data (0 when WriteChannelInfo is empty). */
  WriteChannelInfoOffset?: number;
  /** SMB_DIRECT_BUFFER_DESCRIPTOR_V1 array (RDMA channels), kept raw. */
  WriteChannelInfo: Buffer;
  Flags: number;
  /** A view into the message when decoded; its length is the Length field. */
  Data: Buffer;
}

const WRITE_REQUEST_SIZE = 49;

export function decodeWriteRequest(msg: Buffer): WriteRequest {
  const r = bodyReader(msg, WRITE_REQUEST_SIZE, 'WRITE request');
  const DataOffset = r.u16();
  const Length = r.u32();
  const Offset = r.u64();
  const FileId = readFileId(r);
  const Channel = r.u32();
  const RemainingBytes = r.u32();
  const WriteChannelInfoOffset = r.u16();
  const WriteChannelInfoLength = r.u16();
  const Flags = r.u32();
  const Data = sliceField(msg, DataOffset, Length, 'WRITE DataOffset', fixedEnd(WRITE_REQUEST_SIZE));
  const afterData = Length === 0 ? fixedEnd(WRITE_REQUEST_SIZE) : DataOffset + Length;
  const WriteChannelInfo = sliceField(msg, WriteChannelInfoOffset, WriteChannelInfoLength, 'WRITE WriteChannelInfoOffset', afterData);
  return { DataOffset, Offset, FileId, Channel, RemainingBytes, WriteChannelInfoOffset, WriteChannelInfo, Flags, Data };
}

/** The body including Data (one copy). With neither Data nor WriteChannelInfo the Buffer is 1 zero byte. */
export function encodeWriteRequest(req: WriteRequest): Buffer {
  const w = bodyWriter(WRITE_REQUEST_SIZE);
  const dataOffset = req.DataOffset ?? fixedEnd(WRITE_REQUEST_SIZE);
  const info = req.WriteChannelInfo;
  w.u16(dataOffset).u32(req.Data.length).u64(req.Offset);
  writeFileId(w, req.FileId);
  w.u32(req.Channel).u32(req.RemainingBytes);
  const field = w.pos;
  w.u16(0).u16(info.length).u32(req.Flags);
  if (req.Data.length > 0) placeBuffer(w, req.Data, 'WRITE Data', dataOffset);
  const infoOffset = req.WriteChannelInfoOffset;
  w.setU16(field, info.length > 0 ? placeBuffer(w, info, 'WRITE WriteChannelInfo', infoOffset, 8) : (infoOffset ?? 0));
  if (w.pos === fixedEnd(WRITE_REQUEST_SIZE)) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.22 SMB2 WRITE Response. The body is the 16-byte fixed part alone, as Samba sends it. */
export interface WriteResponse {
  Reserved: number;
  Count: number;
  /** Reserved, 0. */
  Remaining: number;
  /** Reserved, 0. */
  WriteChannelInfoOffset: number;
  /** Reserved, 0. */
  WriteChannelInfoLength: number;
}

export function decodeWriteResponse(msg: Buffer): WriteResponse {
  const r = bodyReader(msg, 17, 'WRITE response');
  return { Reserved: r.u16(), Count: r.u32(), Remaining: r.u32(), WriteChannelInfoOffset: r.u16(), WriteChannelInfoLength: r.u16() };
}

export function encodeWriteResponse(res: WriteResponse): Buffer {
  const w = bodyWriter(17);
  w.u16(res.Reserved).u32(res.Count).u32(res.Remaining).u16(res.WriteChannelInfoOffset).u16(res.WriteChannelInfoLength);
  return finishBody(w);
}
