import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InfoType, Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import {
  decodeQueryInfoRequest,
  decodeQueryInfoResponse,
  decodeSetInfoRequest,
  decodeSetInfoResponse,
  encodeQueryInfoRequest,
  encodeQueryInfoResponse,
  encodeSetInfoRequest,
  encodeSetInfoResponse,
  FileInformationClass,
  type SetInfoResponse,
} from '../../../../src/control/wire/smb2/info.js';
import { infoCaptures as cap } from './captures.js';
import { assertInvalid, bytes, checkCodec, fileId, u16, u32, u8 } from './codec-checks.js';

checkCodec({
  name: 'QUERY_INFO request',
  command: Smb2Command.QUERY_INFO,
  decode: decodeQueryInfoRequest,
  encode: encodeQueryInfoRequest,
  captures: { queryInfoReq: cap.queryInfoReq },
  arbitrary: fc.record({
    InfoType: u8,
    FileInfoClass: u8,
    OutputBufferLength: u32,
    Reserved: u16,
    AdditionalInformation: u32,
    Flags: u32,
    FileId: fileId,
    InputBuffer: bytes(60),
  }),
});

checkCodec({
  name: 'QUERY_INFO response',
  command: Smb2Command.QUERY_INFO,
  decode: decodeQueryInfoResponse,
  encode: encodeQueryInfoResponse,
  captures: { queryInfoRsp: cap.queryInfoRsp },
  arbitrary: fc.record({ OutputBuffer: bytes(200) }),
});

checkCodec({
  name: 'SET_INFO request',
  command: Smb2Command.SET_INFO,
  decode: decodeSetInfoRequest,
  encode: encodeSetInfoRequest,
  captures: { setInfoReqRename: cap.setInfoReqRename },
  arbitrary: fc.record({ InfoType: u8, FileInfoClass: u8, Reserved: u16, AdditionalInformation: u32, FileId: fileId, Buffer: bytes(100) }),
});

checkCodec<SetInfoResponse>({
  name: 'SET_INFO response',
  command: Smb2Command.SET_INFO,
  decode: decodeSetInfoResponse,
  encode: encodeSetInfoResponse,
  captures: { setInfoRsp: cap.setInfoRsp },
  arbitrary: fc.constant({}),
});

test('QUERY_INFO captures: smbclient allinfo asks for the streams, smbd lists ::$DATA', () => {
  const req = decodeQueryInfoRequest(cap.queryInfoReq);
  assert.deepEqual([req.InfoType, req.FileInfoClass, req.OutputBufferLength], [InfoType.FILE, FileInformationClass.FileStreamInformation, 0xffff]);
  assert.deepEqual([req.InputBufferOffset, req.InputBuffer.length, cap.queryInfoReq.length], [0, 0, 64 + 41]);
  const res = decodeQueryInfoResponse(cap.queryInfoRsp);
  assert.equal(res.OutputBufferOffset, 0x48);
  assert.equal(res.OutputBuffer.subarray(24).toString('utf16le'), '::$DATA');
  const withInput = encodeQueryInfoRequest({ ...req, InputBufferOffset: undefined, InputBuffer: Buffer.alloc(8, 1) });
  assert.deepEqual([withInput.readUInt16LE(8), withInput.length], [0x68, 40 + 8]);
});

test('SET_INFO captures: a rename carries FILE_RENAME_INFORMATION at 0x60', () => {
  const req = decodeSetInfoRequest(cap.setInfoReqRename);
  assert.deepEqual([req.InfoType, req.FileInfoClass, req.BufferOffset], [InfoType.FILE, FileInformationClass.FileRenameInformation, 0x60]);
  assert.equal(req.Buffer.subarray(20).toString('utf16le'), 'sub\\mid2.txt');
  assert.deepEqual(decodeSetInfoResponse(cap.setInfoRsp), {});
  assert.equal(encodeSetInfoRequest({ ...req, BufferOffset: undefined, Buffer: Buffer.alloc(0) }).length, 33);
});

test('QUERY_INFO / SET_INFO: buffers in the fixed part or past the message are refused', () => {
  const into = Buffer.from(cap.setInfoReqRename);
  into.writeUInt16LE(0x50, 64 + 8);
  assertInvalid(() => decodeSetInfoRequest(into), /SET_INFO BufferOffset/);
  const past = Buffer.from(cap.setInfoReqRename);
  past.writeUInt32LE(45, 64 + 4);
  assertInvalid(() => decodeSetInfoRequest(past), /SET_INFO BufferOffset/);
  const input = Buffer.from(cap.queryInfoReq);
  input.writeUInt16LE(0x68, 64 + 8);
  input.writeUInt32LE(2, 64 + 12);
  assertInvalid(() => decodeQueryInfoRequest(input), /QUERY_INFO InputBufferOffset/);
  const out = Buffer.from(cap.queryInfoRsp);
  out.writeUInt16LE(0x40, 64 + 2);
  assertInvalid(() => decodeQueryInfoResponse(out), /QUERY_INFO response OutputBufferOffset/);
  assertInvalid(() => decodeSetInfoResponse(cap.queryInfoRsp), /StructureSize is 9, expected 2/);
});
