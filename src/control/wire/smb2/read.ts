/** READ (MS-SMB2 2.2.19, 2.2.20). Data are views into the message, never copies. */
import { ErrorCode, WireError } from '../../errors.js';
import { sliceField } from '../cursor.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody, fixedEnd, placeBuffer } from './message.js';

/** MS-SMB2 2.2.19 Flags (SMB 3.0.2+). */
export const ReadFlags = {
  SMB2_READFLAG_READ_UNBUFFERED: 0x01,
  SMB2_READFLAG_REQUEST_COMPRESSED: 0x02,
} as const;

/** MS-SMB2 2.2.20 Flags (SMB 3.1.1; Reserved2 before). */
export const ReadResponseFlags = {
  SMB2_READFLAG_RESPONSE_NONE: 0x00000000,
  SMB2_READFLAG_RESPONSE_RDMA_TRANSFORM: 0x00000001,
} as const;

/** MS-SMB2 2.2.19 / 2.2.21 Channel. */
export const Channel = {
  SMB2_CHANNEL_NONE: 0x00000000,
  SMB2_CHANNEL_RDMA_V1: 0x00000001,
  SMB2_CHANNEL_RDMA_V1_INVALIDATE: 0x00000002,
  SMB2_CHANNEL_RDMA_TRANSFORM: 0x00000003,
} as const;

/** MS-SMB2 2.2.19 SMB2 READ Request. */
export interface ReadRequest {
  /** Requested offset of the data in the response (Windows asks 0x50, Samba 0). */
  Padding: number;
  Flags: number;
  Length: number;
  Offset: bigint;
  FileId: FileId;
  MinimumCount: number;
  Channel: number;
  RemainingBytes: number;
  /** Header-relative; undefined means 0x70 (0 when ReadChannelInfo is empty). */
  ReadChannelInfoOffset?: number;
  /** SMB_DIRECT_BUFFER_DESCRIPTOR_V1 array (RDMA channels), kept raw. */
  ReadChannelInfo: Buffer;
}

const READ_REQUEST_SIZE = 49;

export function decodeReadRequest(msg: Buffer): ReadRequest {
  const r = bodyReader(msg, READ_REQUEST_SIZE, 'READ request');
  const Padding = r.u8();
  const Flags = r.u8();
  const Length = r.u32();
  const Offset = r.u64();
  const FileId = readFileId(r);
  const MinimumCount = r.u32();
  const Channel = r.u32();
  const RemainingBytes = r.u32();
  const ReadChannelInfoOffset = r.u16();
  const length = r.u16();
  const ReadChannelInfo = sliceField(msg, ReadChannelInfoOffset, length, 'READ ReadChannelInfoOffset', fixedEnd(READ_REQUEST_SIZE));
  return { Padding, Flags, Length, Offset, FileId, MinimumCount, Channel, RemainingBytes, ReadChannelInfoOffset, ReadChannelInfo };
}

/** Without ReadChannelInfo the Buffer is 1 zero byte, as clients send it. */
export function encodeReadRequest(req: ReadRequest): Buffer {
  const w = bodyWriter(READ_REQUEST_SIZE);
  w.u8(req.Padding).u8(req.Flags).u32(req.Length).u64(req.Offset);
  writeFileId(w, req.FileId);
  w.u32(req.MinimumCount).u32(req.Channel).u32(req.RemainingBytes);
  const field = w.pos;
  w.u16(0).u16(req.ReadChannelInfo.length);
  const info = req.ReadChannelInfo;
  w.setU16(field, info.length > 0 ? placeBuffer(w, info, 'READ ReadChannelInfo', req.ReadChannelInfoOffset) : (req.ReadChannelInfoOffset ?? 0));
  if (info.length === 0) w.zeros(1);
  return finishBody(w);
}

/** MS-SMB2 2.2.20 SMB2 READ Response. */
export interface ReadResponse {
  /** Header-relative, one byte; undefined means 0x50 (also for empty Data, as Samba sends it). */
  DataOffset?: number;
  Reserved: number;
  DataRemaining: number;
  /** ReadResponseFlags in SMB 3.1.1, Reserved2 before. */
  Flags: number;
  /** A view into the message when decoded. */
  Data: Buffer;
}

const READ_RESPONSE_SIZE = 17;

export function decodeReadResponse(msg: Buffer): ReadResponse {
  const r = bodyReader(msg, READ_RESPONSE_SIZE, 'READ response');
  const DataOffset = r.u8();
  const Reserved = r.u8();
  const DataLength = r.u32();
  const DataRemaining = r.u32();
  const Flags = r.u32();
  const Data = sliceField(msg, DataOffset, DataLength, 'READ DataOffset', fixedEnd(READ_RESPONSE_SIZE));
  return { DataOffset, Reserved, DataRemaining, Flags, Data };
}

/** The body including Data (one copy); without Data it is the 16-byte fixed part alone, as Samba sends it. */
export function encodeReadResponse(res: ReadResponse): Buffer {
  const offset = res.DataOffset ?? fixedEnd(READ_RESPONSE_SIZE);
  if (offset > 0xff) throw new WireError(ErrorCode.WIRE_ENCODE, `READ DataOffset ${offset} does not fit in one byte`);
  const w = bodyWriter(READ_RESPONSE_SIZE);
  w.u8(offset).u8(res.Reserved).u32(res.Data.length).u32(res.DataRemaining).u32(res.Flags);
  if (res.Data.length > 0) placeBuffer(w, res.Data, 'READ Data', offset);
  return finishBody(w);
}
