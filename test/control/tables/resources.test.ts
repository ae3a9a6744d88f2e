import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../../src/control/config.js';
import { ResourceTable } from '../../../src/control/tables/resources.js';

const config = resolveConfig({
  servers: { server1: { address: '198.18.1.11' }, server2: { address: '198.18.1.12' } },
  resources: [
    { name: 'data1', servers: ['server1'] },
    { name: 'san', servers: ['server1', 'server2'] },
  ],
});
const share = (name: string) => ({ name, comment: '' });

test('a learned server and its shares are added; a share several servers announce lists them all', () => {
  const t = ResourceTable.fromConfig(config);
  const r = t.learn('server4', '198.18.1.14', 445, 'agent', [share('data4'), share('SAN')]);
  assert.deepEqual(r, { added: ['data4', 'SAN'], removed: [], newServer: true });
  assert.deepEqual(t.server('server4'), t.serverState('server4'));
  assert.equal(t.server('server4')!.address, '198.18.1.14');
  assert.deepEqual(t.lookup('DATA4'), { name: 'data4', comment: '', remoteName: 'data4', servers: ['server4'], active: 'server4', configured: new Set() });
  assert.deepEqual(t.lookup('san')!.servers, ['server1', 'server2', 'server4']);
  assert.equal(t.lookup('san')!.active, 'server1');
  // A heartbeat repeating the same shares changes nothing.
  assert.deepEqual(t.learn('server4', '198.18.1.14', 445, 'agent', [share('data4'), share('san')]), { added: [], removed: [], newServer: false });
});

test('a share a server stops announcing leaves; configured memberships stay; an emptied learned share is gone', () => {
  const t = ResourceTable.fromConfig(config);
  t.learn('server4', '198.18.1.14', 445, 'agent', [share('data4'), share('san')]);
  t.learn('server1', '198.18.1.11', 445, 'agent', [share('data1'), share('san'), share('extra1')]);
  assert.deepEqual(t.learn('server4', '198.18.1.14', 445, 'agent', [share('san')]).removed, ['data4']);
  assert.equal(t.lookup('data4'), undefined);
  assert.deepEqual(t.learn('server1', '198.18.1.11', 445, 'agent', []).removed, ['data1', 'san', 'extra1']);
  assert.deepEqual(t.lookup('data1')!.servers, ['server1']);
  assert.deepEqual(t.lookup('san')!.servers, ['server1', 'server2', 'server4']);
  assert.equal(t.lookup('extra1'), undefined);
});

test('a configured server cannot be moved by an announcement; a learned one can', () => {
  const t = ResourceTable.fromConfig(config);
  assert.throws(() => t.learn('server1', '198.18.1.99', 445, 'agent', []), /configured at 198.18.1.11/);
  t.learn('server4', '198.18.1.14', 445, 'agent', []);
  t.learn('server4', '198.18.1.15', 445, 'agent', []);
  assert.equal(t.server('server4')!.address, '198.18.1.15');
});

test('health, activeShares and setActive show in listServers', () => {
  const t = ResourceTable.fromConfig(config);
  assert.equal(t.setHealth('server2', 'failed', 'port-down'), 'unknown');
  t.setActive('san', 'server2');
  const s2 = t.listServers().find((s) => s.name === 'server2')!;
  assert.equal(s2.health, 'failed');
  assert.equal(s2.reason, 'port-down');
  assert.deepEqual(s2.activeShares, ['san']);
  assert.throws(() => t.setActive('data1', 'server2'), /cannot serve/);
});

test('learned state is persisted atomically (0600) and restored by a new table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-res-'));
  try {
    const path = join(dir, 'state', 'resources.json');
    const t = ResourceTable.fromConfig(config, path);
    t.learn('server4', '198.18.1.14', 445, 'agent', [share('data4'), share('san')]);
    t.setActive('san', 'server4');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).version, 1);
    const again = ResourceTable.fromConfig(config, path);
    assert.deepEqual(again.list(), t.list());
    assert.equal(again.lookup('san')!.active, 'server4');
    assert.equal(again.serverState('server4')!.origin, 'agent');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
