import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../../src/control/config.js';
import { DsrError, ErrorCode } from '../../../src/control/errors.js';
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

test('health, activeShares and server.failed / server.recovered events show the failover', () => {
  const t = ResourceTable.fromConfig(config);
  t.move('san', 'server2');
  const events: string[] = [];
  t.on('server.failed', (e) => events.push(`failed ${e.server} ${e.reason} ${e.activeShares.join(',')} -> ${e.remaps.map((m) => m.to).join(',')}`));
  t.on('server.recovered', (e) => events.push(`recovered ${e.server}`));
  t.failServer('server2', 'port-down');
  t.failServer('server2', 'again');
  const s2 = t.listServers().find((s) => s.name === 'server2')!;
  assert.equal(s2.health, 'failed');
  assert.equal(s2.reason, 'port-down');
  assert.deepEqual(s2.activeShares, []);
  assert.equal(t.recoverServer('server2', 'probe-ok'), true);
  assert.deepEqual(events, ['failed server2 port-down san -> server1', 'recovered server2']);
  assert.throws(() => t.move('data1', 'server2'), /cannot serve/);
});

test('learned state is persisted atomically (0600) and restored by a new table', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-res-'));
  try {
    const path = join(dir, 'state', 'resources.json');
    const t = ResourceTable.fromConfig(config, path);
    t.learn('server4', '198.18.1.14', 445, 'agent', [share('data4'), share('san')]);
    t.move('san', 'server4');
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


function failoverTable(): ResourceTable {
  const server = (address: string) => ({ address, port: 445 });
  return ResourceTable.fromConfig({
    servers: { server1: server('198.18.1.11'), server2: server('198.18.1.12'), server3: server('198.18.1.13') },
    resources: [
      { name: 'data1', comment: '', servers: ['server1'] },
      { name: 'san', comment: '', servers: ['server1', 'server2'] },
      { name: 'data3', comment: '', servers: ['server3'] },
    ],
  } as unknown as Parameters<typeof ResourceTable.fromConfig>[0]);
}

const active = (t: ResourceTable, share: string) => t.lookup(share)!.active;

test('a failed server hands each share it served to the first healthy server able to serve it (Fig. 7)', () => {
  const t = failoverTable();
  assert.deepEqual(t.failServer('server1', 'connection lost'), [
    { share: 'data1', from: 'server1', to: undefined },
    { share: 'san', from: 'server1', to: 'server2' },
  ]);
  assert.equal(active(t, 'san'), 'server2');
  assert.equal(active(t, 'data1'), 'server1', 'a share nobody else serves stays where it was');
  assert.equal(t.healthy('server1'), false);
  assert.deepEqual(t.failServer('server1', 'again'), [], 'every connection reports it; the first moves the shares');
});

test('a recovered server is healthy again and gets nothing back by itself', () => {
  const t = failoverTable();
  t.failServer('server1', 'storage port down');
  assert.equal(t.recoverServer('server1'), true);
  assert.equal(t.recoverServer('server1'), false);
  assert.equal(t.healthy('server1'), true);
  assert.equal(active(t, 'san'), 'server2');
});

test('a planned move goes only to a healthy server able to serve the share', () => {
  const t = failoverTable();
  assert.deepEqual(t.move('SAN', 'server2'), { share: 'san', from: 'server1', to: 'server2' });
  const usage = (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE;
  assert.throws(() => t.move('data1', 'server2'), usage);
  assert.throws(() => t.move('nope', 'server2'), usage);
  t.failServer('server1', 'killed');
  assert.throws(() => t.move('san', 'server1'), usage);
  assert.equal(active(t, 'san'), 'server2');
});
