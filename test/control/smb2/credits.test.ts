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
