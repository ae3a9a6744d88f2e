import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Smb2Command, UNSOLICITED_MESSAGE_ID } from '../../../../src/control/wire/smb2/constants.js';
import { LeaseState } from '../../../../src/control/wire/smb2/create-contexts.js';
import { OplockLevel } from '../../../../src/control/wire/smb2/create.js';
import { getMessageId } from '../../../../src/control/wire/smb2/header.js';
import {
  decodeLeaseBreakAck,
  decodeLeaseBreakNotification,
  decodeOplockBreak,
  decodeOplockBreakMessage,
  encodeLeaseBreakAck,
  encodeLeaseBreakNotification,
  encodeOplockBreak,
  encodeOplockBreakMessage,
  LeaseBreakNotificationFlags,
  type OplockBreakMessage,
} from '../../../../src/control/wire/smb2/oplock.js';
import { oplockCaptures as cap } from './captures.js';
import { assertInvalid, checkCodec, fileId, frame, guid, u16, u32, u64, u8 } from './codec-checks.js';

const oplockBreak = fc.record({ OplockLevel: u8, Reserved: u8, Reserved2: u32, FileId: fileId });
const leaseBreakNotification = fc.record({
  NewEpoch: u16,
  Flags: u32,
  LeaseKey: guid,
  CurrentLeaseState: u32,
  NewLeaseState: u32,
  BreakReason: u32,
  AccessMaskHint: u32,
  ShareMaskHint: u32,
});
const leaseBreakAck = fc.record({ Reserved: u16, Flags: u32, LeaseKey: guid, LeaseState: u32, LeaseDuration: u64 });
const { oplockBreakNotification, oplockBreakAck, oplockBreakResponse } = cap;
const { leaseBreakNotification: leaseNote, leaseBreakAck: leaseAck, leaseBreakResponse } = cap;

checkCodec({
  name: 'oplock break',
  command: Smb2Command.OPLOCK_BREAK,
  decode: decodeOplockBreak,
  encode: encodeOplockBreak,
  captures: { oplockBreakNotification, oplockBreakAck, oplockBreakResponse },
  arbitrary: oplockBreak,
});

checkCodec({
  name: 'lease break notification',
  command: Smb2Command.OPLOCK_BREAK,
  decode: decodeLeaseBreakNotification,
  encode: encodeLeaseBreakNotification,
  captures: { leaseNote },
  arbitrary: leaseBreakNotification,
});

checkCodec({
  name: 'lease break acknowledgment / response',
  command: Smb2Command.OPLOCK_BREAK,
  decode: decodeLeaseBreakAck,
  encode: encodeLeaseBreakAck,
  captures: { leaseAck, leaseBreakResponse },
  arbitrary: leaseBreakAck,
});

checkCodec<OplockBreakMessage>({
  name: 'OPLOCK_BREAK dispatcher',
  command: Smb2Command.OPLOCK_BREAK,
  decode: decodeOplockBreakMessage,
  encode: encodeOplockBreakMessage,
  captures: cap,
  arbitrary: fc.oneof(
    oplockBreak.map((body) => ({ kind: 'oplock' as const, body })),
    leaseBreakNotification.map((body) => ({ kind: 'leaseBreakNotification' as const, body })),
    leaseBreakAck.map((body) => ({ kind: 'leaseBreakAck' as const, body })),
  ),
});

test('oplock break captures (smb2.oplock.batch1): break to level II, acknowledged and confirmed', () => {
  assert.equal(getMessageId(oplockBreakNotification), UNSOLICITED_MESSAGE_ID);
  for (const m of [oplockBreakNotification, oplockBreakAck, oplockBreakResponse]) {
    const d = decodeOplockBreakMessage(m);
    assert.equal(d.kind, 'oplock');
    assert.equal(d.kind === 'oplock' && d.body.OplockLevel, OplockLevel.SMB2_OPLOCK_LEVEL_II);
  }
});

test('lease break captures (smb2.lease.v2_breaking3): RWH broken to RH with epoch 19, acknowledged', () => {
  const note = decodeOplockBreakMessage(leaseNote);
  assert.equal(note.kind, 'leaseBreakNotification');
  const n = decodeLeaseBreakNotification(leaseNote);
  assert.equal(getMessageId(leaseNote), UNSOLICITED_MESSAGE_ID);
  assert.equal(n.LeaseKey.toString('hex'), '0df0dde0fe0fdcbaf20f221f01f02345');
  const ackRequired = LeaseBreakNotificationFlags.SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED;
  assert.deepEqual([n.NewEpoch, n.Flags, n.CurrentLeaseState, n.NewLeaseState], [19, ackRequired, 7, 3]);
  const rh = LeaseState.SMB2_LEASE_READ_CACHING | LeaseState.SMB2_LEASE_HANDLE_CACHING;
  for (const m of [leaseAck, leaseBreakResponse]) {
    const a = decodeOplockBreakMessage(m);
    assert.equal(a.kind, 'leaseBreakAck');
    assert.equal(a.kind === 'leaseBreakAck' && a.body.LeaseState, rh);
  }
});

test('OPLOCK_BREAK: unknown StructureSizes and short bodies are refused', () => {
  for (const size of [0, 4, 25, 35, 37, 43, 45, 0xffff]) {
    const m = Buffer.from(leaseAck);
    m.writeUInt16LE(size, 64);
    assertInvalid(() => decodeOplockBreakMessage(m), /StructureSize/);
  }
  assertInvalid(() => decodeOplockBreakMessage(leaseAck.subarray(0, 64 + 30)), /fixed part/);
  assert.throws(() => decodeOplockBreakMessage(leaseAck.subarray(0, 40)), { name: 'WireError' });
  assert.throws(() => encodeLeaseBreakAck({ ...decodeLeaseBreakAck(leaseAck), LeaseKey: Buffer.alloc(8) }), /LeaseKey must be 16 bytes/);
  assert.equal(frame(Smb2Command.OPLOCK_BREAK, encodeLeaseBreakAck(decodeLeaseBreakAck(leaseAck)), leaseAck).equals(leaseAck), true);
});
