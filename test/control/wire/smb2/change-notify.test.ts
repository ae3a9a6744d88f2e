import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ChangeNotifyFlags,
  CompletionFilter,
  decodeChangeNotifyRequest,
  decodeChangeNotifyResponse,
  encodeChangeNotifyRequest,
  encodeChangeNotifyResponse,
} from '../../../../src/control/wire/smb2/change-notify.js';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import { changeNotifyCaptures as cap } from './captures.js';
import { assertInvalid, bytes, checkCodec, fileId, u16, u32 } from './codec-checks.js';

checkCodec({
  name: 'CHANGE_NOTIFY request',
  command: Smb2Command.CHANGE_NOTIFY,
  decode: decodeChangeNotifyRequest,
  encode: encodeChangeNotifyRequest,
  captures: { changeNotifyReq: cap.changeNotifyReq },
  arbitrary: fc.record({ Flags: u16, OutputBufferLength: u32, FileId: fileId, CompletionFilter: u32, Reserved: u32 }),
});

checkCodec({
  name: 'CHANGE_NOTIFY response',
  command: Smb2Command.CHANGE_NOTIFY,
  decode: decodeChangeNotifyResponse,
  encode: encodeChangeNotifyResponse,
  captures: { changeNotifyRsp: cap.changeNotifyRsp },
  arbitrary: fc.record({ OutputBuffer: bytes(200) }),
});

test('CHANGE_NOTIFY captures: a tree watch on every change, answered with one FILE_NOTIFY_INFORMATION', () => {
  const req = decodeChangeNotifyRequest(cap.changeNotifyReq);
  assert.equal(req.Flags, ChangeNotifyFlags.SMB2_WATCH_TREE);
  assert.equal(req.CompletionFilter, Object.values(CompletionFilter).reduce((a, b) => a | b, 0));
  const res = decodeChangeNotifyResponse(cap.changeNotifyRsp);
  const entry = res.OutputBuffer;
  assert.deepEqual([entry.readUInt32LE(0), entry.readUInt32LE(4), entry.readUInt32LE(8)], [0, 1, 10], 'last entry, FILE_ACTION_ADDED, 10-byte name');
  assert.equal(entry.subarray(12, 22).toString('utf16le'), 'n.txt');
  assert.equal(encodeChangeNotifyResponse({ OutputBuffer: Buffer.alloc(0) }).length, 8);
});

test('CHANGE_NOTIFY: StructureSize and OutputBuffer bounds are checked', () => {
  const bad = Buffer.from(cap.changeNotifyReq);
  bad.writeUInt16LE(33, 64);
  assertInvalid(() => decodeChangeNotifyRequest(bad), /StructureSize is 33, expected 32/);
  const past = Buffer.from(cap.changeNotifyRsp);
  past.writeUInt32LE(25, 64 + 4);
  assertInvalid(() => decodeChangeNotifyResponse(past), /CHANGE_NOTIFY response OutputBufferOffset/);
});
