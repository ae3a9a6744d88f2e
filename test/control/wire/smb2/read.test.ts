import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode } from '../../../../src/control/errors.js';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import {
  decodeReadRequest,
  decodeReadResponse,
  encodeReadRequest,
  encodeReadResponse,
  type ReadResponse,
} from '../../../../src/control/wire/smb2/read.js';
import { readCaptures as cap } from './captures.js';
import { assertInvalid, bytes, checkCodec, fileId, frame, u32, u64, u8 } from './codec-checks.js';

checkCodec({
  name: 'READ request',
  command: Smb2Command.READ,
  decode: decodeReadRequest,
  encode: encodeReadRequest,
  captures: { readReq: cap.readReq },
  arbitrary: fc.record({
    Padding: u8,
    Flags: u8,
    Length: u32,
    Offset: u64,
    FileId: fileId,
    MinimumCount: u32,
    Channel: u32,
    RemainingBytes: u32,
    ReadChannelInfo: bytes(48),
  }),
});

checkCodec({
  name: 'READ response',
  command: Smb2Command.READ,
  decode: decodeReadResponse,
  encode: encodeReadResponse,
  captures: { readRsp: cap.readRsp },
  arbitrary: fc.record({ Reserved: u8, DataRemaining: u32, Flags: u32, Data: bytes(300) }),
});

test('READ captures: smbclient asks for 16 bytes, smbd answers them at 0x50', () => {
  const req = decodeReadRequest(cap.readReq);
  assert.deepEqual([req.Length, req.Offset, req.Padding, req.ReadChannelInfoOffset], [16, 0n, 0, 0]);
  assert.equal(cap.readReq.length, 64 + 49, 'the empty Buffer is still 1 byte');
  const res = decodeReadResponse(cap.readRsp);
  assert.equal(res.DataOffset, 0x50);
  assert.equal(res.Data.toString(), 'hello dsr codec\n');
});

test('READ response data is a view into the message, also for 8 MiB', () => {
  const data = Buffer.alloc(8 << 20, 0x5a);
  const msg = frame(Smb2Command.READ, encodeReadResponse({ Reserved: 0, DataRemaining: 0, Flags: 0, Data: data }));
  const res = decodeReadResponse(msg);
  assert.equal(res.Data.buffer, msg.buffer);
  assert.equal(res.Data.byteOffset, msg.byteOffset + 0x50);
  assert.equal(res.Data.length, 8 << 20);
});

test('READ encodings: canonical offsets and the 1-byte Buffer of an empty request', () => {
  const req = decodeReadRequest(cap.readReq);
  const withInfo = encodeReadRequest({ ...req, ReadChannelInfoOffset: undefined, ReadChannelInfo: Buffer.alloc(16, 1) });
  assert.equal(withInfo.readUInt16LE(44), 0x70);
  assert.equal(withInfo.length, 48 + 16);
  const empty: ReadResponse = { Reserved: 0, DataRemaining: 0, Flags: 0, Data: Buffer.alloc(0) };
  const body = encodeReadResponse(empty);
  assert.equal(body.length, 16, 'as Samba sends a zero-length read');
  assert.equal(body[2], 0x50);
  assert.throws(() => encodeReadResponse({ ...empty, DataOffset: 0x100 }), { code: ErrorCode.WIRE_ENCODE });
});

test('READ: offsets into the fixed part or past the message are refused', () => {
  const into = Buffer.from(cap.readRsp);
  into[64 + 2] = 0x48;
  assertInvalid(() => decodeReadResponse(into), /DataOffset/);
  const past = Buffer.from(cap.readRsp);
  past.writeUInt32LE(17, 64 + 4);
  assertInvalid(() => decodeReadResponse(past), /DataOffset/);
  const info = Buffer.from(cap.readReq);
  info.writeUInt16LE(0x70, 64 + 44);
  info.writeUInt16LE(2, 64 + 46);
  assertInvalid(() => decodeReadRequest(info), /ReadChannelInfoOffset/);
});
