/**
 * The pure parts of redirection: byte-range bookkeeping for reopen, and rewriting a server's
 * break notification for the client connection it belongs to, against the real tables.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BackendLink } from '../../../src/control/smb2/backend.js';
import type { DsrContext } from '../../../src/control/smb2/context.js';
import { applyLocks, breakToClient } from '../../../src/control/smb2/redirect.js';
import { type FileOpen, type LockRange, OpenTable } from '../../../src/control/tables/opens.js';
import { SessionTable } from '../../../src/control/tables/sessions.js';
import { Smb2Command, Smb2Flags } from '../../../src/control/wire/smb2/constants.js';
import { decodeHeader, header } from '../../../src/control/wire/smb2/header.js';
import { LockFlags } from '../../../src/control/wire/smb2/lock.js';
import { encodeMessage } from '../../../src/control/wire/smb2/message.js';
import { decodeLeaseBreakNotification, decodeOplockBreak, encodeLeaseBreakNotification, encodeOplockBreak } from '../../../src/control/wire/smb2/oplock.js';

const lock = (Offset: bigint, Length: bigint, Flags: number) => ({ Offset, Length, Flags, Reserved: 0 });

describe('applyLocks', () => {
  test('granted ranges are recorded and unlocks remove exactly the matching range', () => {
    const locks: LockRange[] = [];
    const body = (Locks: ReturnType<typeof lock>[]) => ({ LockSequenceNumber: 0, LockSequenceIndex: 0, FileId: { Persistent: 1n, Volatile: 1n }, Locks });
    applyLocks(locks, body([lock(0n, 10n, LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK), lock(100n, 5n, LockFlags.SMB2_LOCKFLAG_SHARED_LOCK)]));
    assert.deepEqual(locks, [
      { offset: 0n, length: 10n, exclusive: true },
      { offset: 100n, length: 5n, exclusive: false },
    ]);
    applyLocks(locks, body([lock(0n, 9n, LockFlags.SMB2_LOCKFLAG_UNLOCK)]));
    assert.equal(locks.length, 2, 'an unlock of a range never locked removes nothing');
    applyLocks(locks, body([lock(0n, 10n, LockFlags.SMB2_LOCKFLAG_UNLOCK)]));
    assert.deepEqual(locks, [{ offset: 100n, length: 5n, exclusive: false }]);
  });
});

describe('breakToClient', () => {
  const sessions = new SessionTable();
  const opens = new OpenTable();
  const ctx = { sessions, opens } as unknown as DsrContext;
  const mine = sessions.create(7, 'client:1', 0x0311);
  const other = sessions.create(8, 'client:2', 0x0311);
  const leaseKey = Buffer.alloc(16, 0xab);
  const file = (backendVolatile: bigint, lease?: Buffer): FileOpen => ({
    server: 'server1',
    backendFileId: { Persistent: 0x55n, Volatile: backendVolatile },
    DesiredAccess: 0x12019f,
    ShareAccess: 7,
    CreateOptions: 0x40,
    CreateDisposition: 1,
    FileAttributes: 0x80,
    oplockLevel: 0x09,
    lease: lease ? { key: lease, state: 0x07 } : undefined,
    locks: [],
  });
  const open = opens.add(mine.sessionId, 3, 'a.txt', 'file', file(0x10n));
  const leased = opens.add(mine.sessionId, 3, 'b.txt', 'file', file(0x11n, leaseKey));
  // Another connection's open with the same backend FileId on the same server must not match.
  opens.add(other.sessionId, 4, 'a.txt', 'file', file(0x10n));
  const link = { server: { name: 'server1' } } as unknown as BackendLink;
  const unsolicited = (body: Buffer, sessionId = 0n, treeId = 0) =>
    encodeMessage(header({ Command: Smb2Command.OPLOCK_BREAK, Flags: Smb2Flags.SERVER_TO_REDIR, MessageId: 0xffffffffffffffffn, SessionId: sessionId, TreeId: treeId, Credit: 5 }), body);

  test('an oplock break gets the client FileId and the open records the new level', () => {
    const msg = unsolicited(encodeOplockBreak({ OplockLevel: 0x01, Reserved: 0, Reserved2: 0, FileId: { Persistent: 0x55n, Volatile: 0x10n } }), 0x99n, 0x42);
    const { msg: out, open: found } = breakToClient({ ctx }, 7, link, msg)!;
    assert.equal(found, open);
    assert.deepEqual(decodeOplockBreak(out).FileId, open.fileId);
    const h = decodeHeader(out);
    assert.equal(h.SessionId, mine.sessionId, 'a backend SessionId becomes the client session');
    assert.equal(h.TreeId, 3, 'a backend TreeId becomes the client tree');
    assert.equal(h.Credit, 0);
    assert.equal(h.Flags, Smb2Flags.SERVER_TO_REDIR);
    assert.equal((open.target as FileOpen).oplockLevel, 0x01);
  });

  test('a lease break is matched by LeaseKey and keeps zero ids zero', () => {
    const n = { NewEpoch: 2, Flags: 1, LeaseKey: leaseKey, CurrentLeaseState: 0x07, NewLeaseState: 0x01, BreakReason: 0, AccessMaskHint: 0, ShareMaskHint: 0 };
    const { msg: out, open: found } = breakToClient({ ctx }, 7, link, unsolicited(encodeLeaseBreakNotification(n)))!;
    assert.equal(found, leased);
    assert.deepEqual(decodeLeaseBreakNotification(out), n);
    assert.equal(decodeHeader(out).SessionId, 0n);
  });

  test('a break for an open of another connection, another server or nothing is dropped', () => {
    const body = encodeOplockBreak({ OplockLevel: 0x01, Reserved: 0, Reserved2: 0, FileId: { Persistent: 0x55n, Volatile: 0x10n } });
    assert.equal(breakToClient({ ctx }, 9, link, unsolicited(body)), undefined);
    assert.equal(breakToClient({ ctx }, 7, { server: { name: 'server2' } } as unknown as BackendLink, unsolicited(body)), undefined);
    assert.equal(breakToClient({ ctx }, 7, link, unsolicited(Buffer.alloc(4))), undefined);
  });
});
