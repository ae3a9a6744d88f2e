/** Every fuzz target, a bounded number of mutated inputs each, on a fixed seed (replayable). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzz } from './mutate.js';
import { seedsFor, targets } from './targets.js';

const RUNS = 3000;

for (const [name, target] of Object.entries(targets).sort(([a], [b]) => a.localeCompare(b))) {
  test(`fuzz ${name}: ${RUNS} mutated inputs, nothing but typed errors`, () => {
    const r = fuzz(target, seedsFor(name), RUNS, 20261125);
    assert.equal(r.failure, undefined, r.failure ? `${String(r.failure.error)} on ${r.failure.input.toString('hex')}` : '');
    assert.equal(r.runs, RUNS);
  });
}

test('the fuzzer finds a planted bug (so a clean run means something)', () => {
  const planted = (d: Buffer) => {
    if (d.length > 4 && d[0] === 0xfe && d[4] !== 0x40) throw new Error('planted');
  };
  const r = fuzz(planted, [Buffer.from('fe534d4240000000', 'hex')], 5000, 1);
  assert.ok(r.failure, 'a mutation of the StructureSize byte must hit the planted bug');
});
