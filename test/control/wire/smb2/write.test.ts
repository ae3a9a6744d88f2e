import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import {
  decodeWriteRequest,
  decodeWriteResponse,
  encodeWriteRequest,
  encodeWriteResponse,
  type WriteRequest,
} from '../../../../src/control/wire/smb2/write.js';
import { writeCaptures as cap } from './captures.js';
import { assertInvalid, bytes, checkCodec, fileId, frame, u16, u32, u64 } from './codec-checks.js';

checkCodec({
  name: 'WRITE request',
  command: Smb2Command.WRITE,
  decode: decodeWriteRequest,
  encode: encodeWriteRequest,
  captures: { writeReq: cap.writeReq },
  arbitrary: fc.record({
    Offset: u64,
    FileId: fileId,
    Channel: u32,
    RemainingBytes: u32,
    WriteChannelInfo: bytes(48),
    Flags: u32,
    Data: bytes(300),
  }),
});

checkCodec({
  name: 'WRITE response',
  command: Smb2Command.WRITE,
  decode: decodeWriteResponse,
  encode: encodeWriteResponse,
  captures: { writeRsp: cap.writeRsp },
  arbitrary: fc.record({ Reserved: u16, Count: u32, Remaining: u32, WriteChannelInfoOffset: u16, WriteChannelInfoLength: u16 }),
});

test('WRITE captures: smbclient writes 16 bytes at 0x70, smbd counts them in a 16-byte body', () => {
  const req = decodeWriteRequest(cap.writeReq);
  assert.equal(req.DataOffset, 0x70);
  assert.equal(req.Data.toString(), 'hello dsr codec\n');
  assert.equal(req.Data.buffer, cap.writeReq.buffer, 'a view, not a copy');
  assert.equal(cap.writeRsp.length, 64 + 16);
  assert.equal(decodeWriteResponse(cap.writeRsp).Count, 16);
});

test('WRITE request of 8 MiB decodes to a view', () => {
  const req: WriteRequest = {
    Offset: 1n << 40n,
    FileId: { Persistent: 1n, Volatile: 2n },
    Channel: 0,
    RemainingBytes: 0,
    WriteChannelInfo: Buffer.alloc(0),
    Flags: 0,
    Data: Buffer.alloc(8 << 20, 7),
  };
  const msg = frame(Smb2Command.WRITE, encodeWriteRequest(req));
  const back = decodeWriteRequest(msg);
  assert.equal(back.Data.byteOffset, msg.byteOffset + 0x70);
  assert.equal(back.Data.buffer, msg.buffer);
  assert.equal(back.Offset, 1n << 40n);
});

test('WRITE encodings: channel info 8-aligned after the data, 1 zero byte when both are empty', () => {
  const base = decodeWriteRequest(cap.writeReq);
  const both = encodeWriteRequest({ ...base, WriteChannelInfoOffset: undefined, Data: Buffer.alloc(3, 1), WriteChannelInfo: Buffer.alloc(16, 2) });
  assert.equal(both.readUInt16LE(40), 0x78);
  assert.equal(both.length, 0x78 + 16 - 64);
  const none = encodeWriteRequest({ ...base, Data: Buffer.alloc(0), WriteChannelInfo: Buffer.alloc(0) });
  assert.equal(none.length, 49);
  assert.equal(none.readUInt16LE(2), 0x70);
});

test('WRITE: data in the fixed part, past the message, or channel info over the data are refused', () => {
  const into = Buffer.from(cap.writeReq);
  into.writeUInt16LE(0x68, 64 + 2);
  assertInvalid(() => decodeWriteRequest(into), /WRITE DataOffset/);
  const past = Buffer.from(cap.writeReq);
  past.writeUInt32LE(17, 64 + 4);
  assertInvalid(() => decodeWriteRequest(past), /WRITE DataOffset/);
  const overlap = Buffer.from(cap.writeReq);
  overlap.writeUInt16LE(0x78, 64 + 40);
  overlap.writeUInt16LE(4, 64 + 42);
  assertInvalid(() => decodeWriteRequest(overlap), /WriteChannelInfoOffset/);
});
