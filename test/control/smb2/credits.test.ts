import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CreditWindow } from '../../../src/control/smb2/credits.js';

test('a new connection may use MessageId 0 only', () => {
  const w = new CreditWindow(100);
  assert.equal(w.consume(1n, 1), false);
  assert.equal(w.consume(0n, 1), true);
  assert.equal(w.consume(0n, 1), false, 'an id is used once');
  assert.equal(w.outstanding, 0);
});

test('granted credits open consecutive ids; multi-credit requests consume a range', () => {
  const w = new CreditWindow(100);
  w.consume(0n, 1);
  assert.equal(w.grant(10), 10);
  assert.equal(w.outstanding, 10);
  assert.equal(w.consume(1n, 4), true);
  assert.equal(w.consume(4n, 1), false, 'inside a consumed range');
  assert.equal(w.consume(8n, 4), false, 'runs past the window');
  assert.equal(w.consume(8n, 3), true);
  assert.equal(w.consume(5n, 3), true, 'out of order is fine inside the window');
  assert.equal(w.outstanding, 0);
});

test('CreditCharge 0 counts as one credit', () => {
  const w = new CreditWindow(100);
  assert.equal(w.consume(0n, 0), true);
  assert.equal(w.consume(0n, 0), false);
});

test('grants never exceed the maximum and never leave the client with nothing', () => {
  const w = new CreditWindow(16);
  w.consume(0n, 1);
  assert.equal(w.grant(1000), 16);
  assert.equal(w.grant(5), 0, 'at the maximum already');
  assert.equal(w.consume(1n, 1), true);
  assert.equal(w.grant(0), 1, 'at least one when asked for none');
});

test('property: a client that uses exactly its granted ids never falls out of the window', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 64 })), { minLength: 1, maxLength: 200 }), (ops) => {
      const w = new CreditWindow(512);
      let next = 0n;
      let have = 1;
      for (const [charge, ask] of ops) {
        if (charge > have) continue;
        assert.equal(w.consume(next, charge), true);
        next += BigInt(charge);
        have -= charge;
        have += w.grant(ask);
        assert.equal(w.outstanding, have);
        assert.ok(have <= 512 && have >= 1);
      }
    }),
  );
});

test('the kernel relay takes the window as one range and gives it back past the ids it used', () => {
  const w = new CreditWindow(100);
  w.consume(0n, 1);
  w.grant(20);
  assert.deepEqual(w.range, { low: 1n, next: 21n });
  // The kernel forwarded requests using ids 1..8 in order; the server's replies granted 12.
  assert.equal(w.resync(9n, 8, 12), true);
  assert.deepEqual(w.range, { low: 9n, next: 33n });
  assert.equal(w.consume(8n, 1), false, 'an id the kernel used is used');
  assert.equal(w.consume(9n, 1), true);
  // Server grants passed on later (a response the kernel forwarded, answered by Node).
  w.add(3);
  assert.deepEqual(w.range, { low: 10n, next: 36n });
});

test('ids used out of order leave no range to lend; a kernel that skipped ids leaves them open', () => {
  const w = new CreditWindow(100);
  w.consume(0n, 1);
  w.grant(10);
  w.consume(3n, 1);
  assert.equal(w.range, undefined, 'id 3 used before 1 and 2');
  const k = new CreditWindow(100);
  k.consume(0n, 1);
  k.grant(10);
  // 5 ids used below 8, from 1: which 2 were skipped is unknown, so none is refused.
  assert.equal(k.resync(8n, 5, 4), false);
  assert.equal(k.consume(2n, 1), true);
  assert.deepEqual(k.range, undefined);
});
