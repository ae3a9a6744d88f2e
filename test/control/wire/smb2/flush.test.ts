import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import { decodeFlushRequest, encodeFlushRequest } from '../../../../src/control/wire/smb2/flush.js';
import { flushCaptures as cap } from './captures.js';
import { checkCodec, fileId, u16, u32 } from './codec-checks.js';

checkCodec({
  name: 'FLUSH request',
  command: Smb2Command.FLUSH,
  decode: decodeFlushRequest,
  encode: encodeFlushRequest,
  captures: cap,
  arbitrary: fc.record({ Reserved1: u16, Reserved2: u32, FileId: fileId }),
});

test('FLUSH request capture names its open', () => {
  assert.deepEqual(decodeFlushRequest(cap.flushReq), { Reserved1: 0, Reserved2: 0, FileId: { Persistent: 632838816n, Volatile: 176945452n } });
  const bad = Buffer.from(cap.flushReq);
  bad.writeUInt16LE(4, 64);
  assert.throws(() => decodeFlushRequest(bad), { name: 'WireError', message: /StructureSize is 4/ });
});
