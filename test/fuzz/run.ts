/**
 * Long fuzzing runs outside the test suite:
 *   npm run fuzz -- [--runs N] [--seed S] [--target NAME]
 * Prints each target's runs and stops at the first crash with the input that caused it.
 */
import { parseArgs } from 'node:util';
import { fuzz } from './mutate.js';
import { seedsFor, targets } from './targets.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '100000' }, seed: { type: 'string', default: String(Date.now() & 0xffffffff) }, target: { type: 'string' } } });
const names = values.target ? [values.target] : Object.keys(targets).sort();
let failed = false;
for (const name of names) {
  const target = targets[name];
  if (!target) throw new Error(`no fuzz target ${name}; known: ${Object.keys(targets).join(', ')}`);
  const t0 = Date.now();
  const r = fuzz(target, seedsFor(name), Number(values.runs), Number(values.seed));
  if (r.failure) {
    failed = true;
    process.stdout.write(`${name}: CRASH after ${r.runs} runs (seed ${values.seed}): ${String(r.failure.error)}\n  input ${r.failure.input.toString('hex')}\n`);
  } else {
    process.stdout.write(`${name}: ${r.runs} runs, no crash (${Date.now() - t0} ms)\n`);
  }
}
process.exitCode = failed ? 1 : 0;
