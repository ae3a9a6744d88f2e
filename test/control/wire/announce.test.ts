import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ANNOUNCE_HEADER_SIZE, AnnounceError, decodeAnnouncement, encodeAnnouncement, parseKeyText, ReplayGuard, type AnnounceInput } from '../../../src/control/wire/announce.js';

const key = Buffer.alloc(32, 7);
const payload = (over: Partial<AnnounceInput> = {}): AnnounceInput => ({
  server: 'server4',
  boot: '0123456789abcdef',
  seq: 1,
  time: 1_700_000_000_000,
  kind: 'start',
  intervalMs: 200,
  smbPort: 445,
  shares: [{ name: 'data4', comment: 'projects', usedBytes: 10, totalBytes: 100 }],
  load: { cpu: 0.25, cpus: 2, load1: 0.5, memTotalBytes: 1000, memAvailableBytes: 600 },
  ...over,
});
const reason = (r: AnnounceError['reason']) => (e: unknown) => e instanceof AnnounceError && e.reason === r;

test('an announcement round-trips under its key', () => {
  const d = encodeAnnouncement(payload(), key);
  assert.equal(d.subarray(0, 4).toString(), 'DSRA');
  assert.deepEqual(decodeAnnouncement(d, key), payload());
});

test('a wrong key, a flipped payload byte or a flipped header byte fails the MAC', () => {
  const d = encodeAnnouncement(payload(), key);
  assert.throws(() => decodeAnnouncement(d, Buffer.alloc(32, 8)), reason('bad-mac'));
  for (const at of [5, 9, ANNOUNCE_HEADER_SIZE + 3, d.length - 1]) {
    const bad = Buffer.from(d);
    bad[at]! ^= 1;
    assert.throws(() => decodeAnnouncement(bad, key), reason('bad-mac'), `byte ${at}`);
  }
});

test('truncated, oversize, foreign and wrong-version datagrams are malformed', () => {
  const d = encodeAnnouncement(payload(), key);
  for (let n = 0; n < ANNOUNCE_HEADER_SIZE; n++) assert.throws(() => decodeAnnouncement(d.subarray(0, n), key), reason('malformed'));
  assert.throws(() => decodeAnnouncement(Buffer.alloc(9000), key), reason('malformed'));
  const foreign = Buffer.from(d);
  foreign.write('XXXX', 0);
  assert.throws(() => decodeAnnouncement(foreign, key), reason('malformed'));
  const v2 = Buffer.from(d);
  v2[4] = 2;
  assert.throws(() => decodeAnnouncement(v2, key), reason('malformed'));
});

test('a validly signed payload that breaks the schema is malformed, not accepted', () => {
  assert.throws(() => encodeAnnouncement(payload({ server: '../etc' }), key));
  assert.throws(() => decodeAnnouncement(encodeAnnouncement(payload(), key).subarray(0, ANNOUNCE_HEADER_SIZE), key), reason('bad-mac'));
});

test('replay guard: stale times, repeated or older seqs of a boot are refused; a new boot starts over', () => {
  const g = new ReplayGuard(30_000);
  const now = 1_700_000_000_000;
  const p = { server: 's', boot: 'a'.repeat(16), seq: 5, time: now };
  g.check(p, now);
  assert.throws(() => g.check(p, now + 10), reason('replayed'));
  assert.throws(() => g.check({ ...p, seq: 4 }, now + 10), reason('replayed'));
  g.check({ ...p, seq: 6 }, now + 20);
  assert.throws(() => g.check({ ...p, seq: 7, time: now - 30_001 }, now), reason('stale'));
  assert.throws(() => g.check({ ...p, seq: 7, time: now + 30_001 }, now), reason('stale'));
  // A restarted agent: new boot, seq from 1; the old boot's messages stay refused while fresh.
  g.check({ ...p, boot: 'b'.repeat(16), seq: 1, time: now + 100 }, now + 100);
  assert.throws(() => g.check({ ...p, seq: 6, time: now + 100 }, now + 100), reason('replayed'));
  // Boots are per server.
  g.check({ ...p, server: 't' }, now + 100);
});

test('key files: hex of at least 128 bits', () => {
  assert.equal(parseKeyText(`${'ab'.repeat(32)}\n`, 'k').length, 32);
  assert.throws(() => parseKeyText('abcd', 'k'));
  assert.throws(() => parseKeyText('zz'.repeat(16), 'k'));
});
