/** `dsr user add|del|list` as an administrator runs them: the built CLI in a child process. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { ntOwfV1 } from '../../src/control/tables/credentials.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dsr-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const table = join(dir, 'credentials.json');
const dsr = (args: string[], input?: string) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input });

test('add reads the password from stdin, the table is 0600 and holds only the NT hash', () => {
  const r = dsr(['user', 'add', 'carol', '--credentials', table], 'Carol-Pass-3\n');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /added carol/);
  assert.equal(statSync(table).mode & 0o777, 0o600);
  const text = readFileSync(table, 'utf8');
  assert.ok(!text.includes('Carol-Pass-3'));
  assert.ok(text.includes(ntOwfV1('Carol-Pass-3').toString('hex')));
  const again = dsr(['user', 'add', 'carol', '--credentials', table], 'New-Pass\n');
  assert.match(again.stdout, /updated carol/);
});

test('list --json shows names only; del removes; errors are one clear line', () => {
  const list = dsr(['user', 'list', '--json', '--credentials', table]);
  const users = JSON.parse(list.stdout) as { name: string }[];
  assert.deepEqual(users.map((u) => Object.keys(u).sort()), [['created', 'name']]);
  assert.equal(dsr(['user', 'del', 'carol', '--credentials', table]).status, 0);
  const missing = dsr(['user', 'del', 'carol', '--credentials', table]);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  assert.match(missing.stderr, /no user carol/);
  const empty = dsr(['user', 'add', 'dave', '--credentials', table], '');
  assert.equal(empty.status, 1);
  assert.match(empty.stderr, /no password on standard input/);
});

test('live-table verbs without a running daemon say how to start one', () => {
  const r = dsr(['session', 'list', '--socket', join(dir, 'none.sock')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no DSR is running there/);
});
