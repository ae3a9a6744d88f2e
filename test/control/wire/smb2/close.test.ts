import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  CloseFlags,
  decodeCloseRequest,
  decodeCloseResponse,
  encodeCloseRequest,
  encodeCloseResponse,
} from '../../../../src/control/wire/smb2/close.js';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import { FileAttributes } from '../../../../src/control/wire/smb2/create.js';
import { closeCaptures as cap } from './captures.js';
import { checkCodec, fileId, openAttributes, u16, u32 } from './codec-checks.js';

checkCodec({
  name: 'CLOSE request',
  command: Smb2Command.CLOSE,
  decode: decodeCloseRequest,
  encode: encodeCloseRequest,
  captures: { closeReq: cap.closeReq, closeReqPostQuery: cap.closeReqPostQuery },
  arbitrary: fc.record({ Flags: u16, Reserved: u32, FileId: fileId }),
});

checkCodec({
  name: 'CLOSE response',
  command: Smb2Command.CLOSE,
  decode: decodeCloseResponse,
  encode: encodeCloseResponse,
  captures: { closeRsp: cap.closeRsp, closeRspPostQuery: cap.closeRspPostQuery },
  arbitrary: fc.record({
    Flags: u16,
    Reserved: u32,
    ...openAttributes,
  }),
});

test('CLOSE with POSTQUERY_ATTRIB: the response carries the attributes, without it they are zero', () => {
  assert.equal(decodeCloseRequest(cap.closeReqPostQuery).Flags, CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB);
  const full = decodeCloseResponse(cap.closeRspPostQuery);
  assert.equal(full.Flags, CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB);
  assert.equal(full.CreationTime, 134400814304300805n);
  assert.equal(full.LastWriteTime, full.CreationTime);
  assert.equal(full.FileAttributes, FileAttributes.FILE_ATTRIBUTE_ARCHIVE);
  const plain = decodeCloseResponse(cap.closeRsp);
  assert.deepEqual([plain.Flags, plain.CreationTime, plain.EndofFile, plain.FileAttributes], [0, 0n, 0n, 0]);
  assert.deepEqual(decodeCloseRequest(cap.closeReq).FileId, { Persistent: 1683854485n, Volatile: 1075201523n });
});

test('a CLOSE response padded as a compound member decodes like the unpadded one', () => {
  assert.equal(cap.closeRspPadded.length, 64 + 60 + 4);
  const v = decodeCloseResponse(cap.closeRspPadded);
  assert.equal(encodeCloseResponse(v).toString('hex'), cap.closeRspPadded.subarray(64, 64 + 60).toString('hex'));
});

test('CLOSE bodies with a wrong StructureSize are refused', () => {
  const bad = Buffer.from(cap.closeReq);
  bad.writeUInt16LE(25, 64);
  assert.throws(() => decodeCloseRequest(bad), /StructureSize is 25, expected 24/);
  assert.throws(() => decodeCloseResponse(cap.closeReq), /StructureSize is 24, expected 60/);
});
