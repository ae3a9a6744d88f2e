import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DsrError, ErrorCode } from '../../../src/control/errors.js';
import { ResourceTable } from '../../../src/control/tables/resources.js';

function table(): ResourceTable {
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
  const t = table();
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
  const t = table();
  t.failServer('server1', 'storage port down');
  assert.equal(t.recoverServer('server1'), true);
  assert.equal(t.recoverServer('server1'), false);
  assert.equal(t.healthy('server1'), true);
  assert.equal(active(t, 'san'), 'server2');
});

test('a planned move goes only to a healthy server able to serve the share', () => {
  const t = table();
  assert.deepEqual(t.move('SAN', 'server2'), { share: 'san', from: 'server1', to: 'server2' });
  const usage = (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE;
  assert.throws(() => t.move('data1', 'server2'), usage);
  assert.throws(() => t.move('nope', 'server2'), usage);
  t.failServer('server1', 'killed');
  assert.throws(() => t.move('san', 'server1'), usage);
  assert.equal(active(t, 'san'), 'server2');
});
