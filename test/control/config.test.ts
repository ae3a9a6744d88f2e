import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/control/config.js';
import { DsrError } from '../../src/control/errors.js';

const servers = { server1: { address: '198.18.1.11' }, server2: { address: '198.18.1.12' } };

test('defaults: all five dialects, signing enabled, guest refused, 8 MiB I/O', () => {
  const c = resolveConfig({ servers, resources: [{ name: 'data1', servers: ['server1'] }] });
  assert.deepEqual(c.smb2.dialects, [0x0202, 0x0210, 0x0300, 0x0302, 0x0311]);
  assert.equal(c.smb2.signing, 'enabled');
  assert.equal(c.auth.guest, false);
  assert.equal(c.smb2.maxReadSize, 8 * 1024 * 1024);
  assert.ok(c.maxFrameBytes > c.smb2.maxWriteSize);
  assert.equal(c.serverGuid.length, 16);
  assert.deepEqual(resolveConfig({}).serverGuid, resolveConfig({}).serverGuid, 'stable without configuration');
});

test('every bad field is named', () => {
  assert.throws(
    () => resolveConfig({ servers, resources: [{ name: 'a', servers: ['nope'] }, { name: 'A', servers: ['server1'] }, { name: 'ipc$', servers: ['server1'] }] }),
    (e: unknown) => e instanceof DsrError && /unknown server nope/.test(e.message) && /duplicate share A/.test(e.message) && /IPC\$ is served/.test(e.message),
  );
  assert.throws(() => resolveConfig({ smb2: { dialects: ['1.0'] } }), /smb2\.dialects/);
  assert.throws(() => resolveConfig({ serverName: 'a name with spaces' }), /serverName/);
});

test("relay: the journal's WRITE slots default to the program's 64 and stay within 8 to 1024", () => {
  assert.equal(resolveConfig({}).relay.journalWriteSlots, 64);
  assert.equal(resolveConfig({ relay: { journalWriteSlots: 256 } }).relay.journalWriteSlots, 256);
  for (const n of [4, 1025, 16.5]) assert.throws(() => resolveConfig({ relay: { journalWriteSlots: n } }), /relay\.journalWriteSlots/, String(n));
});
