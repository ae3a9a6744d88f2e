/**
 * Resource learning and server health in the lab (root): the announce agents beside each smbd,
 * forged and replayed announcements sent from a server namespace, srvsvc discovery, a fourth
 * server learned with no DSR restart, and `lab fail` / `lab restore` seen in `dsr server list`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { adminCall } from '../../../src/control/admin.js';
import { readKeyFile } from '../../../src/control/resources/manager.js';
import type { ServerView } from '../../../src/control/tables/resources.js';
import { encodeAnnouncement } from '../../../src/control/wire/announce.js';
import { labAddServer, labDown, labExec, labFail, labRestore, labUp, type LabStatus } from '../../../src/lab/lab.js';
import { labPlan } from '../../../src/lab/topology.js';
import { sleep } from '../../../src/lab/process.js';
import { ALICE, labSkip, uniqueLabName } from '../../helpers/lab.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const name = uniqueLabName();
let lab: LabStatus;

async function dsr(...args: string[]): Promise<string> {
  const r = await promisify(execFile)(process.execPath, [CLI, ...args, '--socket', lab.dsr.adminSocket]);
  return r.stdout;
}
const serverList = async () => JSON.parse(await dsr('server', 'list', '--json')) as ServerView[];
const stats = async () => ((await adminCall(lab.dsr.adminSocket, 'status')) as { announcements: { accepted: number; rejected: Record<string, number> } }).announcements;
const dsrLog = () => readFileSync(lab.dsr.logFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);

/** Sends a datagram (hex) from a lab host to the DSR's announce port. */
const SEND = `const s = require('dgram').createSocket('udp4');
s.bind({ address: process.argv[2] }, () => s.send(Buffer.from(process.argv[1], 'hex'), 4455, '198.18.1.1', () => s.close()));`;
async function sendFrom(host: string, source: string, d: Buffer): Promise<void> {
  const r = await labExec(name, host, [process.execPath, '-e', SEND, d.toString('hex'), source]);
  assert.equal(r.code, 0, r.stderr);
}

/** Polls `dsr server list --json` (the CLI, as an operator would) until `server` has `health`; ms since `since`. */
async function seenHealth(server: string, health: string, since: number, limitMs: number): Promise<{ ms: number; row: ServerView }> {
  for (;;) {
    const row = (await serverList()).find((s) => s.name === server)!;
    const ms = Date.now() - since;
    if (row.health === health) return { ms, row };
    if (ms > limitMs) assert.fail(`${server} not ${health} after ${ms} ms: ${JSON.stringify(row)}`);
    await sleep(20);
  }
}

function smbclientShares(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('Disk|'))
    .map((l) => l.split('|')[1]!)
    .sort();
}

describe('announce agents, discovery and server health (lab)', { skip: labSkip }, () => {
  before(async () => {
    lab = await labUp({ name, servers: 3 });
  });
  after(async () => {
    await labDown(name);
  });

  test('every agent is heard: each server shows an announcement, load and its shares; san is served by server1 and server2', async () => {
    await sleep(500);
    const rows = await serverList();
    assert.deepEqual(rows.map((r) => [r.name, r.health, r.origin]), [
      ['server1', 'healthy', 'config'],
      ['server2', 'healthy', 'config'],
      ['server3', 'healthy', 'config'],
    ]);
    for (const r of rows) {
      assert.ok(r.lastAnnounce && Date.now() - Date.parse(r.lastAnnounce) < 2000, `${r.name} announced recently: ${r.lastAnnounce}`);
      assert.ok(r.load && r.load.memTotalBytes > 0 && r.load.cpus >= 1, `${r.name} load ${JSON.stringify(r.load)}`);
    }
    assert.deepEqual(rows[0]!.activeShares, ['data1', 'docs1', 'san']);
    const san = (JSON.parse(await dsr('resource', 'list', '--json')) as { name: string; servers: string[] }[]).find((r) => r.name === 'san')!;
    assert.deepEqual(san.servers, ['server1', 'server2']);
    const s = await stats();
    assert.ok(s.accepted > 3, JSON.stringify(s));
    assert.deepEqual(Object.values(s.rejected), [0, 0, 0, 0, 0]);
  });

  test('a forged (bad MAC), a replayed and a misaddressed announcement are rejected, logged and counted', async () => {
    const key = readKeyFile(labPlan(name, 3).agentKeyPath);
    const announce = (server: string, seq: number) =>
      encodeAnnouncement(
        { server, boot: 'feedfacecafe0001', seq, time: Date.now(), kind: 'start', intervalMs: 200, smbPort: 445, shares: [{ name: 'data3', comment: '' }, { name: 'docs3', comment: '' }], load: { cpu: 0, cpus: 1, load1: 0, memTotalBytes: 1, memAvailableBytes: 1 } },
        key,
      );
    const before = await stats();
    const forged = encodeAnnouncement(
      { server: 'server3', boot: 'feedfacecafe0002', seq: 1, time: Date.now(), kind: 'start', intervalMs: 200, smbPort: 445, shares: [{ name: 'evil', comment: '' }], load: { cpu: 0, cpus: 1, load1: 0, memTotalBytes: 1, memAvailableBytes: 1 } },
      Buffer.alloc(32, 1),
    );
    await sendFrom('server3', '198.18.1.13', forged);
    const valid = announce('server3', 1);
    await sendFrom('server3', '198.18.1.13', valid);
    await sendFrom('server3', '198.18.1.13', valid);
    // Signed with the right key, but naming server1 from server3's address.
    await sendFrom('server3', '198.18.1.13', announce('server1', 1));
    await sleep(300);
    const after = await stats();
    assert.equal(after.rejected['bad-mac']! - before.rejected['bad-mac']!, 1);
    assert.equal(after.rejected.replayed! - before.rejected.replayed!, 1);
    assert.equal(after.rejected['address-mismatch']! - before.rejected['address-mismatch']!, 1);
    const lines = dsrLog().filter((l) => l.event === 'agent.rejected');
    assert.deepEqual(lines.map((l) => [l.reason, l.from]), [
      ['bad-mac', '198.18.1.13'],
      ['replayed', '198.18.1.13'],
      ['address-mismatch', '198.18.1.13'],
    ]);
    const shares = smbclientShares((await labExec(name, 'client', ['smbclient', '-g', '-L', '//198.18.0.1', '-U', ALICE])).stdout);
    assert.ok(!shares.includes('evil'), shares.join(','));
    assert.ok(!readFileSync(lab.dsr.logFile, 'utf8').includes(key.toString('hex')), 'the key is never logged');
  });

  test('discovery over srvsvc lists a server\'s disk shares', async () => {
    const rows = JSON.parse(await dsr('server', 'discover', 'server2', '--json')) as { name: string }[];
    assert.deepEqual(rows.map((r) => r.name).sort(), ['data2', 'docs2', 'san']);
  });

  test('a fourth server started with its agent shows in smbclient -L //198.18.0.1 within 2 s, no DSR restart, and its share works', async () => {
    const dsrPid = lab.dsr.pid;
    await labAddServer(name);
    const added = Date.now();
    let listed: string[] = [];
    let ms = 0;
    for (;;) {
      const r = await labExec(name, 'client', ['smbclient', '-g', '-L', '//198.18.0.1', '-U', ALICE]);
      ms = Date.now() - added;
      listed = smbclientShares(r.stdout);
      if (listed.includes('data4') || ms > 5000) break;
    }
    console.log(`# data4 listed by smbclient -L ${ms} ms after the agent started (smbclient run included)`);
    assert.ok(listed.includes('data4') && listed.includes('docs4'), listed.join(','));
    assert.ok(ms < 2000, `${ms} ms`);
    const r = await labExec(name, 'client', ['smbclient', '//198.18.0.1/data4', '-U', ALICE, '-c', 'mkdir learned; ls']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /learned/);
    const s4 = (await serverList()).find((s) => s.name === 'server4')!;
    assert.deepEqual([s4.origin, s4.address, s4.health, s4.activeShares], ['agent', '198.18.1.14', 'healthy', ['data4', 'docs4']]);
    assert.equal((JSON.parse(await dsr('status', '--json')) as { pid: number }).pid, dsrPid, 'same DSR process');
  });

  for (const how of ['kill', 'link'] as const) {
    test(`lab fail server2 --how ${how}: failed within 2 s in dsr server list --json; lab restore brings it back`, async () => {
      const fault = await labFail(name, 'server2', how);
      if (how === 'kill') assert.ok(fault.pids.length >= 3, `killed ${fault.pids.join(',')}`);
      const failed = await seenHealth('server2', 'failed', Date.parse(fault.at), 10000);
      // The list's own `since` (when the DSR marked it failed), from the moment the fault took
      // effect: the CLI's start-up (over a second under load) is not the DSR's detection time.
      const markedMs = Date.parse(failed.row.since) - Date.parse(fault.at);
      console.log(`# --how ${how}: server2 failed (${failed.row.reason}) since ${markedMs} ms after the fault took effect, read by the CLI ${failed.ms} ms after it`);
      assert.ok(markedMs < 2000, `${markedMs} ms`);
      assert.equal(failed.row.reason, how === 'link' ? 'port-down' : failed.row.reason);
      assert.ok(['connection-lost', 'connection-refused', 'port-down'].includes(failed.row.reason), failed.row.reason);
      assert.deepEqual(failed.row.activeShares, ['data2', 'docs2'], 'no fail-back or failover here: the table still names server2');
      const events = dsrLog().filter((l) => l.event === 'server.failed' && l.server === 'server2');
      const detectMs = Date.parse(String(events.at(-1)?.time)) - Date.parse(fault.at);
      console.log(`# --how ${how}: the DSR logged server.failed ${detectMs} ms after the fault took effect`);
      assert.ok(detectMs < 2000, `${detectMs} ms`);
      const restoring = Date.now();
      await labRestore(name, 'server2');
      const healthy = await seenHealth('server2', 'healthy', restoring, 10000);
      console.log(`# --how ${how}: server2 healthy ${healthy.ms} ms after lab restore started`);
      const r = await labExec(name, 'client', ['smbclient', '//198.18.0.1/data2', '-U', ALICE, '-c', 'ls']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    });
  }
});
