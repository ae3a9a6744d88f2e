/**
 * The storage switch's port map in the lab (root): the DSR programs br0 over rtnetlink at start.
 * Real TCP from the server namespaces shows the isolation (with `dsr port set --isolated off` as
 * the control that the probe can succeed), the DSR still reaches every server over SMB, `lab
 * direct on` still routes the client to the servers, and link state reaches `dsr port list`
 * within 1 s.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { adminCall } from '../../src/control/admin.js';
import { labDirectPath, labDown, labExec, labUp, type LabStatus } from '../../src/lab/lab.js';
import { ipBatch, runIn } from '../../src/lab/netns.js';
import { sleep } from '../../src/lab/process.js';
import type { PortView } from '../../src/offload/portmap.js';
import { ALICE, labSkip, uniqueLabName, blocked, labProbe } from '../helpers/lab.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const name = uniqueLabName();
let lab: LabStatus;

async function dsr(...args: string[]): Promise<string> {
  const r = await promisify(execFile)(process.execPath, [CLI, ...args, '--socket', lab.dsr.adminSocket]);
  return r.stdout;
}

const portList = async () => JSON.parse(await dsr('port', 'list', '--json')) as PortView[];
const port = (rows: PortView[], p: string) => rows.find((r) => r.port === p)!;

const probe = (host: string, address: string, tcpPort = 445) => labProbe(name, host, address, tcpPort);

/** Waits until `dsr`'s port map shows `p` up or down; returns the ms since `since` when it was seen. */
async function seen(p: string, up: boolean, since: number): Promise<{ pollMs: number; row: PortView }> {
  for (;;) {
    const row = port((await adminCall(lab.dsr.adminSocket, 'port.list')) as PortView[], p);
    if (row.up === up) return { pollMs: Date.now() - since, row };
    if (Date.now() - since > 5000) assert.fail(`${p} not ${up ? 'up' : 'down'} after 5 s: ${JSON.stringify(row)}`);
    await sleep(20);
  }
}

describe('storage switch port map (lab)', { skip: labSkip }, () => {
  before(async () => {
    lab = await labUp({ name, servers: 3 });
  });
  after(async () => {
    await labDown(name);
  });

  test('dsr port list: every storage port isolated, each server pinned on its port by a static FDB entry', async () => {
    const rows = await portList();
    assert.deepEqual(
      rows.map((r) => [r.port, r.server, r.mac, r.ipv4, r.up, r.isolated, r.staticFdb, r.learning]),
      [
        ['sp1', 'server1', '02:00:c6:12:01:0b', '198.18.1.11', true, true, true, false],
        ['sp2', 'server2', '02:00:c6:12:01:0c', '198.18.1.12', true, true, true, false],
        ['sp3', 'server3', '02:00:c6:12:01:0d', '198.18.1.13', true, true, true, false],
        ['sp4', null, null, null, false, true, false, true],
      ],
    );
    assert.ok(rows.every((r) => Number.isInteger(r.ifindex) && !Number.isNaN(Date.parse(r.lastChange))));
    assert.match(await dsr('port', 'list'), /^PORT +IFINDEX +STATE .*\nsp1 +\d+ +up +server1 +02:00:c6:12:01:0b/);
  });

  test('server1 cannot reach server2; with isolation off on both ports it can (the control)', async () => {
    assert.equal(await probe('server1', '198.18.1.1'), 'refused', 'server1 reaches the DSR (nothing listens on its storage address)');
    const isolated = await probe('server1', '198.18.1.12');
    assert.ok(blocked(isolated), `server1 -> server2 smbd: ${isolated}`);
    assert.ok(blocked(await probe('server2', '198.18.1.13')), 'server2 -> server3');
    await dsr('port', 'set', 'sp1', '--isolated', 'off');
    await dsr('port', 'set', 'sp2', '--isolated', 'off');
    try {
      // (Isolation only separates isolated ports from each other: sp1 could now reach sp3 as well.)
      assert.equal(await probe('server1', '198.18.1.12'), 'connected', 'the probe can succeed when the switch lets it');
    } finally {
      await dsr('port', 'set', 'sp1', '--isolated', 'on');
      await dsr('port', 'set', 'sp2', '--isolated', 'on');
    }
    assert.ok(blocked(await probe('server1', '198.18.1.12')), 'isolated again (server1 still has server2 in its ARP cache)');
  });

  test('servers cannot reach the client side, even with a route through the DSR; lab direct on still routes', async () => {
    assert.equal(await probe('server1', '198.18.0.2'), 'unreachable', 'no route');
    await ipBatch(lab.servers[0]!.namespace, 'route server1 via the DSR', ['route add 198.18.0.0/24 via 198.18.1.1']);
    assert.ok(blocked(await probe('server1', '198.18.0.2')), 'the DSR does not forward (ip_forward 0)');
    await labDirectPath(name, true);
    try {
      assert.equal(await probe('server1', '198.18.0.2'), 'refused', 'direct path: server1 reaches the client host');
      assert.equal(await probe('client', '198.18.1.12'), 'connected', 'direct path: the client reaches server2 smbd');
    } finally {
      await labDirectPath(name, false);
    }
    assert.ok(blocked(await probe('server1', '198.18.0.2')), 'direct path off: blocked again');
    assert.ok(blocked(await probe('client', '198.18.1.12')), 'direct path off: the client is cut off again');
  });

  test('SMB from the DSR to every server still works through the switch', async () => {
    for (const share of ['data1', 'data2', 'data3', 'san']) {
      const r = await labExec(name, 'client', ['smbclient', `//${lab.dsr.clientAddress}/${share}`, '-U', ALICE, '-m', 'SMB3', '-c', 'ls'], { timeoutMs: 30000 });
      assert.equal(r.code, 0, `${share}: ${r.stderr}${r.stdout}`);
    }
  });

  test('a storage port going down is in dsr port list within 1 s, and up again after restore', async () => {
    const cases: { what: string; port: string; down: () => Promise<unknown>; up: () => Promise<unknown> }[] = [
      {
        what: "server2's eth0",
        port: 'sp2',
        down: () => labExec(name, 'server2', ['ip', 'link', 'set', 'eth0', 'down']),
        up: () => labExec(name, 'server2', ['ip', 'link', 'set', 'eth0', 'up']),
      },
      {
        what: 'sp3 on the switch',
        port: 'sp3',
        down: () => ipBatch(lab.dsr.namespace, 'sp3 down', ['link set sp3 down']),
        up: () => ipBatch(lab.dsr.namespace, 'sp3 up', ['link set sp3 up']),
      },
    ];
    for (const c of cases) {
      for (const up of [false, true]) {
        const t0 = Date.now();
        await (up ? c.up() : c.down());
        const { pollMs, row } = await seen(c.port, up, t0);
        const eventMs = Date.parse(row.lastChange) - t0;
        console.log(`# ${c.what} ${up ? 'up' : 'down'}: DSR event after ${eventMs} ms, seen by polling after ${pollMs} ms (oper ${row.oper})`);
        assert.ok(eventMs >= 0 && eventMs < 1000, `event ${eventMs} ms`);
        assert.ok(pollMs < 1000, `seen after ${pollMs} ms`);
        const cli = port(await portList(), c.port);
        assert.equal(cli.up, up);
        if (!up) assert.equal(cli.server, c.port === 'sp2' ? 'server2' : 'server3');
      }
    }
    const log = readFileSync(lab.dsr.logFile, 'utf8');
    assert.match(log, /"event":"portmap.port.down","port":"sp2","server":"server2"/);
    // After the flaps the ports carry traffic again and keep their programming.
    const rows = await portList();
    assert.ok(['sp1', 'sp2', 'sp3'].every((p) => port(rows, p).up && port(rows, p).isolated && port(rows, p).staticFdb));
  });

  test('dsr port set: move a server, change its MAC, refuse nonsense', async () => {
    const moved = JSON.parse(await dsr('port', 'set', 'sp4', '--server', 'server3', '--json')) as PortView;
    assert.deepEqual([moved.server, moved.mac, moved.staticFdb, moved.learning], ['server3', '02:00:c6:12:01:0d', true, false]);
    const rows = await portList();
    assert.deepEqual([port(rows, 'sp3').server, port(rows, 'sp3').staticFdb, port(rows, 'sp3').learning], [null, false, true]);
    await dsr('port', 'set', 'sp3', '--server', 'server3');
    const mac = JSON.parse(await dsr('port', 'set', 'sp3', '--mac', '02:00:00:00:00:33', '--json')) as PortView;
    assert.deepEqual([mac.mac, mac.staticFdb], ['02:00:00:00:00:33', true]);
    await dsr('port', 'set', 'sp3', '--mac', '02:00:c6:12:01:0d');
    await assert.rejects(dsr('port', 'set', 'sp3', '--server', 'nobody'), /unknown server "nobody"/);
    await assert.rejects(dsr('port', 'set', 'sp9', '--isolated', 'on'), /no storage port "sp9"/);
    await assert.rejects(dsr('port', 'set', 'sp1', '--server', 'server2', '--empty'), /exclude each other/);
  });

  test('reprogramming removes static entries the map does not name; a re-created port is programmed again', async () => {
    const fdb = async () => (await runIn(lab.dsr.namespace, ['bridge', 'fdb', 'show', 'dev', 'sp1'])).stdout;
    assert.equal((await runIn(lab.dsr.namespace, ['bridge', 'fdb', 'add', '02:00:00:00:00:99', 'dev', 'sp1', 'master', 'static'])).code, 0);
    assert.match(await fdb(), /02:00:00:00:00:99/);
    await dsr('port', 'set', 'sp1', '--isolated', 'on');
    assert.doesNotMatch(await fdb(), /02:00:00:00:00:99/);
    assert.match(await fdb(), /02:00:c6:12:01:0b master br0 static/);
    // A new veth named sp4 joins the bridge with the kernel's defaults (not isolated).
    await ipBatch(lab.dsr.namespace, 're-create sp4', ['link del sp4', 'link add sp4 type veth peer name sp4-peer', 'link set sp4 master br0', 'link set sp4 up']);
    const t0 = Date.now();
    for (;;) {
      const row = port(await portList(), 'sp4');
      if (row.isolated) break;
      assert.ok(Date.now() - t0 < 3000, `sp4 not isolated again: ${JSON.stringify(row)}`);
      await sleep(50);
    }
  });
});
