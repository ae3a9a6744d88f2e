import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import {
  decodeQueryDirectoryRequest,
  decodeQueryDirectoryResponse,
  DirectoryInformationClass,
  encodeQueryDirectoryRequest,
  encodeQueryDirectoryResponse,
  QueryDirectoryFlags,
} from '../../../../src/control/wire/smb2/query-directory.js';
import { queryDirectoryCaptures as cap } from './captures.js';
import { assertInvalid, bytes, checkCodec, fileId, u32, u8, utf16 } from './codec-checks.js';

checkCodec({
  name: 'QUERY_DIRECTORY request',
  command: Smb2Command.QUERY_DIRECTORY,
  decode: decodeQueryDirectoryRequest,
  encode: encodeQueryDirectoryRequest,
  captures: { queryDirectoryReq: cap.queryDirectoryReq },
  arbitrary: fc.record({ FileInformationClass: u8, Flags: u8, FileIndex: u32, FileId: fileId, FileName: utf16(30), OutputBufferLength: u32 }),
});

checkCodec({
  name: 'QUERY_DIRECTORY response',
  command: Smb2Command.QUERY_DIRECTORY,
  decode: decodeQueryDirectoryResponse,
  encode: encodeQueryDirectoryResponse,
  captures: { queryDirectoryRsp: cap.queryDirectoryRsp },
  arbitrary: fc.record({ OutputBuffer: bytes(300) }),
});

test('QUERY_DIRECTORY captures: "*" in FileIdBothDirectoryInformation, entries at 0x48', () => {
  const req = decodeQueryDirectoryRequest(cap.queryDirectoryReq);
  assert.equal(req.FileName, '*');
  assert.equal(req.FileNameOffset, 0x60);
  assert.equal(req.FileInformationClass, DirectoryInformationClass.FileIdBothDirectoryInformation);
  assert.equal(req.OutputBufferLength, 8 << 20);
  const res = decodeQueryDirectoryResponse(cap.queryDirectoryRsp);
  assert.equal(res.OutputBufferOffset, 0x48);
  assert.match(res.OutputBuffer.toString('utf16le'), /test_batch1\.dat/);
  const restart = encodeQueryDirectoryRequest({ ...req, FileNameOffset: undefined, Flags: QueryDirectoryFlags.SMB2_RESTART_SCANS, FileName: '' });
  assert.deepEqual([restart.length, restart.readUInt16LE(24), restart[3]], [33, 0, 1]);
});

test('QUERY_DIRECTORY: a pattern in the fixed part, of odd length or past the end is refused', () => {
  const into = Buffer.from(cap.queryDirectoryReq);
  into.writeUInt16LE(0x5e, 64 + 24);
  assertInvalid(() => decodeQueryDirectoryRequest(into), /FileNameOffset/);
  const odd = Buffer.from(cap.queryDirectoryReq);
  odd.writeUInt16LE(1, 64 + 26);
  assertInvalid(() => decodeQueryDirectoryRequest(odd), /odd length/);
  const past = Buffer.from(cap.queryDirectoryRsp);
  past.writeUInt32LE(75, 64 + 4);
  assertInvalid(() => decodeQueryDirectoryResponse(past), /QUERY_DIRECTORY response OutputBufferOffset/);
});
