import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DsrError } from '../../../src/control/errors.js';
import { CredentialTable, ntOwfV1 } from '../../../src/control/tables/credentials.js';

const dir = mkdtempSync(join(tmpdir(), 'dsr-cred-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('NTOWFv1 matches MS-NLMP 4.2.1 ("Password")', () => {
  assert.equal(ntOwfV1('Password').toString('hex'), 'a4f49c406510bdcab6824ee7c30fd852');
});

test('the table is written 0600, holds no password, and reads back case-insensitively', () => {
  const path = join(dir, 'sub', 'credentials.json');
  const t = CredentialTable.load(path);
  assert.equal(t.set('Alice', 'secret-1'), true);
  assert.equal(t.set('alice', 'secret-2'), false, 'same user, new password');
  t.save();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'sub')).mode & 0o777, 0o700);
  const text = readFileSync(path, 'utf8');
  assert.ok(!text.includes('secret'), 'no password on disk');
  const again = CredentialTable.load(path);
  assert.equal(again.lookup('ALICE')?.name, 'Alice');
  assert.deepEqual(again.lookup('alice')?.ntHash, ntOwfV1('secret-2'));
  assert.equal(again.delete('alice'), true);
  assert.equal(again.delete('alice'), false);
});

test('a table readable by others is refused with the fix in the message', () => {
  const path = join(dir, 'open.json');
  writeFileSync(path, JSON.stringify({ version: 1, users: [] }));
  chmodSync(path, 0o644);
  assert.throws(() => CredentialTable.load(path), (e: unknown) => e instanceof DsrError && /chmod 600/.test(e.message));
});

test('a running daemon sees users added by another process', () => {
  const path = join(dir, 'live.json');
  const daemon = CredentialTable.load(path);
  assert.equal(daemon.lookup('bob'), undefined);
  const cli = CredentialTable.load(path);
  cli.set('bob', 'pw');
  cli.save();
  daemon.reload();
  assert.ok(daemon.lookup('bob'));
});

test('bad names and empty passwords are refused', () => {
  const t = new CredentialTable(join(dir, 'x.json'));
  for (const bad of ['', 'a/b', 'a\\b', ' lead', 'x'.repeat(65), 'a@b']) assert.throws(() => t.set(bad, 'pw'), DsrError, bad);
  assert.throws(() => t.set('ok', ''), DsrError);
});

test('a malformed file is a clear error', () => {
  const path = join(dir, 'bad.json');
  writeFileSync(path, '{ not json', { mode: 0o600 });
  assert.throws(() => CredentialTable.load(path), /unreadable/);
  writeFileSync(path, JSON.stringify({ version: 1, users: [{ name: 'x', ntHash: 'zz' }] }), { mode: 0o600 });
  assert.throws(() => CredentialTable.load(path), /malformed/);
});
