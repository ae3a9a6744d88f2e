/** The benches' flags (bench/lib/args.ts): --help and a bad flag answer before anything starts. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const BENCHES = ['throughput', 'session-setup', 'smbtorture-compare'].map((b) => [b, fileURLToPath(new URL(`../../bench/${b}.js`, import.meta.url))] as const);
const run = (script: string, ...args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 30_000 });

for (const [name, script] of BENCHES) {
  test(`${name}: --help prints the usage and exits 0; an unknown flag or a missing value exits 64 with the reason, no stack trace`, () => {
    const help = run(script, '--help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^usage: node dist/bench/${name}\\.js `));
    const bogus = run(script, '--bogus');
    assert.equal(bogus.status, 64);
    assert.match(bogus.stderr, /Unknown option '--bogus'\nusage: /);
    assert.doesNotMatch(bogus.stderr, /^\s+at /m);
    const [flag] = /--[a-z-]+(?= [A-Z0-9])/.exec(help.stdout) ?? [];
    assert.ok(flag, help.stdout);
    const missing = run(script, flag);
    assert.equal(missing.status, 64);
    assert.match(missing.stderr, /argument missing/);
  });
}
