import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { challengedServer, CREDS, fuzzSeeds, fuzzTargets, spnegoAfterFirstLeg } from './fuzz-targets.js';

type Edit = { kind: 'set' | 'insert' | 'delete' | 'truncate'; at: number; byte: number };

function mutate(seed: Buffer, edits: Edit[]): Buffer {
  let b = Buffer.from(seed);
  for (const e of edits) {
    const at = b.length === 0 ? 0 : e.at % b.length;
    if (e.kind === 'set' && b.length > 0) b[at] = e.byte;
    else if (e.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.of(e.byte), b.subarray(at)]);
    else if (e.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    else if (e.kind === 'truncate') b = b.subarray(0, at);
  }
  return b;
}

const edit = fc.record({
  kind: fc.constantFrom<Edit['kind']>('set', 'set', 'set', 'insert', 'delete', 'truncate'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});

test('every auth fuzz target has seeds, and its seeds raise nothing untyped', () => {
  assert.deepEqual(Object.keys(fuzzSeeds).sort(), Object.keys(fuzzTargets).sort());
  for (const [name, seeds] of Object.entries(fuzzSeeds)) for (const s of seeds) fuzzTargets[name]!(s);
});

test('the engine seeds are valid logons, so mutations start from deep inside the code', () => {
  const server = challengedServer();
  assert.equal(server.authenticate(fuzzSeeds['ntlm-server-authenticate']![0]!, CREDS).kind, 'user');
  assert.equal(spnegoAfterFirstLeg().step(fuzzSeeds['spnego-server-second']![0]!).done, true);
});

for (const [name, target] of Object.entries(fuzzTargets)) {
  test(`fuzz ${name}: random bytes and mutated valid tokens raise only WireError/AuthError`, () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (data) => target(Buffer.from(data))), { numRuns: 300 });
    const edits = fc.array(edit, { minLength: 1, maxLength: 8 });
    fc.assert(fc.property(fc.constantFrom(...fuzzSeeds[name]!), edits, (seed, e) => target(mutate(seed, e))), { numRuns: 700 });
  });
}
