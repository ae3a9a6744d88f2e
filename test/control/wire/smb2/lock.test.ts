import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode } from '../../../../src/control/errors.js';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import {
  decodeLockRequest,
  decodeLockResponse,
  encodeLockRequest,
  encodeLockResponse,
  LockFlags,
  type LockRequest,
} from '../../../../src/control/wire/smb2/lock.js';
import { lockCaptures as cap } from './captures.js';
import { assertInvalid, checkCodec, fileId, frame, u16, u32, u64 } from './codec-checks.js';

const lockRequest: fc.Arbitrary<LockRequest> = fc.record({
  LockSequenceNumber: fc.integer({ min: 0, max: 15 }),
  LockSequenceIndex: fc.integer({ min: 0, max: (1 << 28) - 1 }),
  FileId: fileId,
  Locks: fc.array(fc.record({ Offset: u64, Length: u64, Flags: u32, Reserved: u32 }), { minLength: 1, maxLength: 6 }),
});

checkCodec({
  name: 'LOCK request',
  command: Smb2Command.LOCK,
  decode: decodeLockRequest,
  encode: encodeLockRequest,
  captures: { lockReq: cap.lockReq, lockReq2: cap.lockReq2 },
  arbitrary: lockRequest,
});

checkCodec({
  name: 'LOCK response',
  command: Smb2Command.LOCK,
  decode: decodeLockResponse,
  encode: encodeLockResponse,
  captures: { lockRsp: cap.lockRsp },
  arbitrary: fc.record({ Reserved: u16 }),
});

test('LOCK captures: a lock and an unlock of one byte in one request', () => {
  const two = decodeLockRequest(cap.lockReq2);
  assert.deepEqual(two.Locks, [
    { Offset: 9999n, Length: 1n, Flags: 0, Reserved: 0 },
    { Offset: 9999n, Length: 1n, Flags: LockFlags.SMB2_LOCKFLAG_UNLOCK, Reserved: 0 },
  ]);
  assert.equal(cap.lockReq2.readUInt16LE(64), 48, 'StructureSize stays 48 whatever LockCount is');
});

test('LOCK sequence: number in the low 4 bits, index in the high 28', () => {
  const req: LockRequest = {
    LockSequenceNumber: 0xa,
    LockSequenceIndex: 0x1234567,
    FileId: { Persistent: 1n, Volatile: 2n },
    Locks: [{ Offset: 0n, Length: 1n, Flags: LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK, Reserved: 0 }],
  };
  const body = encodeLockRequest(req);
  assert.equal(body.readUInt32LE(4), 0x1234567a);
  assert.deepEqual(decodeLockRequest(frame(Smb2Command.LOCK, body)), req);
  assert.throws(() => encodeLockRequest({ ...req, LockSequenceNumber: 16 }), { code: ErrorCode.WIRE_ENCODE });
  assert.throws(() => encodeLockRequest({ ...req, LockSequenceIndex: 1 << 28 }), { code: ErrorCode.WIRE_ENCODE });
  assert.throws(() => encodeLockRequest({ ...req, Locks: [] }), { code: ErrorCode.WIRE_ENCODE });
});

test('LOCK: impossible LockCounts are refused with STATUS_INVALID_PARAMETER', () => {
  assertInvalid(() => decodeLockRequest(cap.lockReqCount0), /fixed part|need/);
  const zero = Buffer.from(cap.lockReq);
  zero.writeUInt16LE(0, 64 + 2);
  assertInvalid(() => decodeLockRequest(zero), /LockCount 0/);
  const tooMany = Buffer.from(cap.lockReq2);
  tooMany.writeUInt16LE(3, 64 + 2);
  assertInvalid(() => decodeLockRequest(tooMany), /LockCount 3 does not fit 48 bytes/);
  const huge = Buffer.from(cap.lockReq);
  huge.writeUInt16LE(0xffff, 64 + 2);
  assertInvalid(() => decodeLockRequest(huge), /LockCount 65535/);
});
