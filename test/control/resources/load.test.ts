import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ShareLoad } from '../../../src/control/resources/load.js';

test('rates are bytes and operations per second since the oldest snapshot in the window', () => {
  const l = new ShareLoad(10_000);
  assert.equal(l.rates(0).size, 0, 'no rates before a snapshot');
  l.sample(0);
  l.record('San', 4000, 1);
  l.record('san', 1000, 0);
  l.record('data1', 500, 1);
  l.sample(1000);
  l.record('san', 5000, 1);
  const r = l.rates(2000);
  assert.deepEqual(r.get('san'), { bytesPerSecond: 5000, opsPerSecond: 1 });
  assert.deepEqual(r.get('data1'), { bytesPerSecond: 250, opsPerSecond: 0.5 });
});

test('snapshots older than the window are forgotten, so old traffic stops counting', () => {
  const l = new ShareLoad(2000);
  l.sample(0);
  l.record('san', 10_000, 10);
  for (let t = 1000; t <= 5000; t += 1000) l.sample(t);
  assert.deepEqual(l.rates(5000).get('san'), { bytesPerSecond: 0, opsPerSecond: 0 });
  l.record('san', 2000, 2);
  assert.deepEqual(l.rates(5000).get('san'), { bytesPerSecond: 1000, opsPerSecond: 1 });
});
