import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryOffload, PassReason } from '../../src/offload/offload.js';

test('the memory offload mirrors upserts and removals; removing a session removes its trees', () => {
  const o = new MemoryOffload();
  o.upsertSession({ connectionId: 1, sessionId: 0x10n, dialect: 0x0311, pass: undefined });
  o.upsertSession({ connectionId: 1, sessionId: 0x10n, dialect: 0x0311, pass: PassReason.SIGNED });
  o.upsertSession({ connectionId: 2, sessionId: 0x20n, dialect: 0x0210, pass: undefined });
  o.upsertTree({ connectionId: 1, sessionId: 0x10n, treeId: 1, share: 'IPC$', pass: PassReason.LOCAL_TREE });
  o.upsertTree({ connectionId: 1, sessionId: 0x10n, treeId: 2, share: 'data1', pass: undefined });
  o.upsertTree({ connectionId: 2, sessionId: 0x20n, treeId: 1, share: 'data2', pass: undefined });
  let s = o.snapshot();
  assert.equal(s.sessions.length, 2);
  assert.equal(s.sessions.find((x) => x.sessionId === '0x0000000000000010')?.pass, 'signed', 'upsert replaces');
  assert.equal(s.trees.length, 3);
  o.removeTree(0x20n, 1);
  o.removeSession(0x10n);
  s = o.snapshot();
  assert.deepEqual(s.sessions.map((x) => x.sessionId), ['0x0000000000000020']);
  assert.deepEqual(s.trees, []);
});
