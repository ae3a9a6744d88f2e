/**
 * The DSR's own storage port filter in the lab (root): the DSR, started by the lab with its
 * configuration, attaches bpf/port.bpf.c to sp1..sp4 and keeps it in step with its port map.
 * What it drops and lets through, with real TCP and real SMB; its counters in `dsr port list`
 * and `dsr offload show`; the per-server load rates; the lab's direct path opened through the
 * admin socket while the DSR keeps serving; and that stop and SIGKILL leave nothing attached.
 *
 *   client 198.18.0.2 ── cp0 198.18.0.1:445 [DSR ns, br0 198.18.1.1] ─ sp1 ── server1 198.18.1.11
 *                                                                     ─ sp2 ── server2 198.18.1.12
 *                                                                     ─ sp3, sp4: empty
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { adminCall } from '../../src/control/admin.js';
import { labDirectPath, labDown, labExec, labUp, type LabStatus } from '../../src/lab/lab.js';
import { ipBatch, runIn, startDaemon } from '../../src/lab/netns.js';
import { pidAlive, sleep } from '../../src/lab/process.js';
import type { PortReason } from '../../src/offload/abi.js';
import type { LoadReport } from '../../src/offload/port-load.js';
import type { PortView } from '../../src/offload/portmap.js';
import { ALICE, labSkip, uniqueLabName, blocked, labProbe } from '../helpers/lab.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const name = uniqueLabName();
let lab: LabStatus;

interface FilterView {
  filter: string;
  reason?: string;
  directPeer?: string | null;
  kernelIds?: { progs: number[]; maps: number[]; links: number[] };
  counters?: ({ port: string; server: string | null } & Partial<NonNullable<PortView['counters']>>)[];
  load?: LoadReport;
}

const call = (op: string, args: Record<string, unknown> = {}, socket = lab.dsr.adminSocket) => adminCall(socket, op, args);
const filterView = async (socket?: string) => ((await call('offload.show', {}, socket)) as { ports: FilterView }).ports;
const ports = async () => (await call('port.list')) as PortView[];

/** Packets counted on a port, direction and reason (the admin socket's `dsr port list --json`). */
function count(rows: PortView[], port: string, dir: 'ingress' | 'egress', reason: PortReason | 'dropped'): { packets: number; bytes: number } {
  const c = rows.find((r) => r.port === port)?.counters;
  assert.ok(c, `${port} has counters`);
  return reason === 'dropped' ? c[dir].dropped : c[dir].reasons[reason];
}
const moved = (a: PortView[], b: PortView[], port: string, dir: 'ingress' | 'egress', reason: PortReason | 'dropped') => ({
  packets: count(b, port, dir, reason).packets - count(a, port, dir, reason).packets,
  bytes: count(b, port, dir, reason).bytes - count(a, port, dir, reason).bytes,
});

const probe = (host: string, address: string, tcpPort = 445) => labProbe(name, host, address, tcpPort);

async function smbclient(target: string, share: string, cmd: string, dsrLog?: () => string): Promise<void> {
  const r = await labExec(name, 'client', ['smbclient', `//${target}/${share}`, '-U', ALICE, '-m', 'SMB3', '-c', cmd], { timeoutMs: 60000 });
  assert.equal(r.code, 0, `smbclient //${target}/${share} ${cmd}: ${r.stderr}${r.stdout}${dsrLog ? `\nthe DSR's log:\n${dsrLog()}` : ''}`);
}

/** The kernel objects of these ids bpftool still finds, after the kernel's RCU grace period (polled). */
async function leftovers(ids: NonNullable<FilterView['kernelIds']>): Promise<string[]> {
  const exists = (kind: string, id: number) => spawnSync('bpftool', [kind, 'show', 'id', String(id)]).status === 0;
  const scan = () => [
    ...ids.progs.filter((id) => exists('prog', id)).map((id) => `prog ${id}`),
    ...ids.maps.filter((id) => exists('map', id)).map((id) => `map ${id}`),
    ...ids.links.filter((id) => exists('link', id)).map((id) => `link ${id}`),
  ];
  let left = scan();
  for (let i = 0; i < 40 && left.length; i++) {
    await sleep(50);
    left = scan();
  }
  for (const p of lab.ports) {
    for (const dir of ['ingress', 'egress']) {
      const r = await runIn(lab.dsr.namespace, ['tc', 'filter', 'show', 'dev', p.name, dir]);
      if (r.stdout.trim()) left.push(`tc filter on ${p.name} ${dir}`);
    }
  }
  return left;
}

async function waitExit(pid: number): Promise<void> {
  for (let i = 0; i < 200 && pidAlive(pid); i++) await sleep(25);
  assert.equal(pidAlive(pid), false, `pid ${pid} exited`);
}

describe('the DSR attaches its storage port filter (lab)', { skip: labSkip }, () => {
  let dir: string;

  before(async () => {
    lab = await labUp({ name, servers: 2 });
    dir = mkdtempSync(join(tmpdir(), 'dsr-pf-'));
  });
  after(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await labDown(name);
  });

  test('at start: attached to both directions of sp1..sp4, one log line', async () => {
    const f = await filterView();
    assert.equal(f.filter, 'attached', JSON.stringify(f));
    assert.equal(f.kernelIds?.links.length, 2 * lab.ports.length, 'one tcx link per port and direction');
    assert.deepEqual(await leftovers({ progs: [], maps: [], links: [] }), [], 'tcx, not clsact: no tc filters');
    for (const id of f.kernelIds!.links) assert.equal(spawnSync('bpftool', ['link', 'show', 'id', String(id)]).status, 0, `link ${id}`);
    assert.equal(f.directPeer, null);
    const log = readFileSync(lab.dsr.logFile, 'utf8');
    assert.match(log, /"event":"portfilter.attached","ports":\["sp1","sp2","sp3","sp4"\],"address":"198.18.1.1"/);
    const rows = await ports();
    assert.ok(rows.every((r) => r.counters && r.counters.ingress.reasons.allowed !== undefined), 'every port has counters');
  });

  test('server-to-server is dropped on the sender port as dst-ip', async () => {
    const c0 = await ports();
    assert.ok(blocked(await probe('server1', '198.18.1.12')), 'server1 -> server2');
    const c1 = await ports();
    const d = moved(c0, c1, 'sp1', 'ingress', 'dst-ip');
    assert.ok(d.packets >= 1, `dst-ip drops on sp1: ${d.packets} (ARP for server2)`);
    assert.equal(moved(c0, c1, 'sp1', 'ingress', 'src-mac').packets, 0);
  });

  test("a server routing through the DSR cannot reach its client-facing 198.18.0.1:445 (dst-ip); with isolation off on its port (the control) it can, counted as open", async () => {
    await ipBatch(lab.servers[0]!.namespace, 'route server1 via the DSR', ['route add 198.18.0.0/24 via 198.18.1.1']);
    try {
      const c0 = await ports();
      assert.ok(blocked(await probe('server1', '198.18.0.1')), "server1 -> the DSR's client side");
      const c1 = await ports();
      assert.ok(moved(c0, c1, 'sp1', 'ingress', 'dst-ip').packets >= 1, 'the SYNs are dst-ip drops');
      await call('port.set', { port: 'sp1', isolated: false });
      try {
        assert.equal(await probe('server1', '198.18.0.1'), 'connected', 'the probe reaches the listener when the filter lets it');
        const c2 = await ports();
        assert.ok(moved(c1, c2, 'sp1', 'ingress', 'open').packets >= 1, 'passed as open');
        assert.ok(moved(c1, c2, 'sp1', 'egress', 'open').packets >= 1, 'the SYN-ACK too');
      } finally {
        await call('port.set', { port: 'sp1', isolated: true });
      }
      assert.ok(blocked(await probe('server1', '198.18.0.1')), 'isolated again: dropped again');
    } finally {
      await ipBatch(lab.servers[0]!.namespace, 'unroute server1', ['route del 198.18.0.0/24 via 198.18.1.1']);
    }
  });

  test('SMB through the DSR moves the allowed counters of sp1 only, and the load rates agree', async () => {
    const size = 16 << 20;
    writeFileSync(join(dir, 'f.bin'), randomBytes(size));
    const c0 = await ports();
    const t0 = Date.now();
    await smbclient(lab.dsr.clientAddress, 'data1', `lcd ${dir}; put f.bin; get f.bin f.back`);
    const seconds = (Date.now() - t0) / 1000;
    const c1 = await ports();
    assert.deepEqual(readFileSync(join(dir, 'f.back')), readFileSync(join(dir, 'f.bin')));
    const toServer = moved(c0, c1, 'sp1', 'egress', 'allowed');
    const fromServer = moved(c0, c1, 'sp1', 'ingress', 'allowed');
    // The put goes to server1 (egress of sp1), the get comes from it (ingress); headers add a little.
    assert.ok(toServer.bytes >= size && toServer.bytes < size * 1.1, `to server1: ${toServer.bytes} B`);
    assert.ok(fromServer.bytes >= size && fromServer.bytes < size * 1.1, `from server1: ${fromServer.bytes} B`);
    for (const d of ['ingress', 'egress'] as const) {
      assert.equal(moved(c0, c1, 'sp1', d, 'dropped').packets <= 2, true, `sp1 ${d}: no SMB packet dropped`);
      assert.equal(moved(c0, c1, 'sp2', d, 'allowed').bytes < 64 * 1024, true, `sp2 ${d}: server2 idle`);
    }
    // One more reading after the transfer, so the newest reading holds all of it.
    await sleep(1200);
    const load = (await call('port.load')) as LoadReport;
    const s1 = load.servers.find((s) => s.server === 'server1')!;
    const s2 = load.servers.find((s) => s.server === 'server2')!;
    console.log(
      `# ${size >> 20} MiB put + get in ${seconds.toFixed(2)} s; counters: to server1 ${toServer.bytes} B in ${toServer.packets} pkts, from ${fromServer.bytes} B in ${fromServer.packets} pkts; ` +
        `rates over ${load.windowSeconds.toFixed(1)} s: to server1 ${(s1.toServer.bytesPerSecond / 1e6).toFixed(2)} MB/s ${Math.round(s1.toServer.packetsPerSecond)} pkt/s, from ${(s1.fromServer.bytesPerSecond / 1e6).toFixed(2)} MB/s`,
    );
    assert.ok(load.windowSeconds >= 1 && load.windowSeconds <= 12, `window ${load.windowSeconds} s`);
    // The whole transfer lies inside the window: rate x window is what the counters moved, give or take the ls traffic around it.
    const inWindow = s1.toServer.bytesPerSecond * load.windowSeconds;
    assert.ok(inWindow >= toServer.bytes * 0.99 && inWindow <= toServer.bytes * 1.05 + 256 * 1024, `to server1: ${inWindow} B in the window vs ${toServer.bytes}`);
    assert.ok(s1.fromServer.bytesPerSecond * load.windowSeconds >= fromServer.bytes * 0.99, 'from server1');
    assert.ok(s2.total.bytesPerSecond * load.windowSeconds < 64 * 1024, `server2 idle: ${s2.total.bytesPerSecond} B/s`);
    const shown = await filterView();
    assert.deepEqual(shown.load?.servers.map((s) => s.server), ['server1', 'server2'], 'dsr offload show has the load too');
    assert.deepEqual(shown.counters?.map((c) => [c.port, c.server]), [['sp1', 'server1'], ['sp2', 'server2'], ['sp3', null], ['sp4', null]]);
    const cli = spawnSync(process.execPath, [CLI, 'port', 'list', '--socket', lab.dsr.adminSocket], { encoding: 'utf8' });
    assert.match(cli.stdout, /FROM SERVER +TO SERVER\nsp1 .* \d+ pkts \d+ B, \d+ dropped +\d+ pkts \d+ B, \d+ dropped\n/);
  });

  test('lab direct on while the DSR serves: the client reaches server1 directly (counted as direct) and through the DSR; off closes it', async () => {
    const c0 = await ports();
    await labDirectPath(name, true);
    try {
      assert.equal((await filterView()).directPeer, '198.18.0.2/32');
      await smbclient(lab.servers[0]!.address, 'data1', 'ls');
      await smbclient(lab.dsr.clientAddress, 'data1', 'ls');
      assert.ok(blocked(await probe('server1', '198.18.0.1')), "the DSR's client side stays closed to the servers");
    } finally {
      await labDirectPath(name, false);
    }
    const c1 = await ports();
    assert.ok(moved(c0, c1, 'sp1', 'egress', 'direct').packets > 10, 'client -> server1 counted as direct');
    assert.ok(moved(c0, c1, 'sp1', 'ingress', 'direct').packets > 10, 'server1 -> client counted as direct');
    assert.ok(moved(c0, c1, 'sp1', 'egress', 'allowed').packets > 10, 'the DSR path at the same time');
    assert.equal((await filterView()).directPeer, null);
    assert.ok(blocked(await probe('client', '198.18.1.11')), 'off: the client is cut off again');
    await assert.rejects(call('port.direct', {}), /peer is required/);
  });

  test('a re-created storage port gets the filter again: new links on the new interface, its frames counted', async () => {
    const before = (await filterView()).kernelIds!.links;
    const c0 = await ports();
    // A new veth named sp4; its peer stays in the dsr namespace and, once up, sends IPv6 neighbour discovery into sp4.
    await ipBatch(lab.dsr.namespace, 're-create sp4', ['link del sp4', 'link add sp4 type veth peer name sp4-peer', 'link set sp4 master br0', 'link set sp4 up', 'link set sp4-peer up']);
    const t0 = Date.now();
    let links: number[] = before;
    let seen = 0;
    while (Date.now() - t0 < 5000) {
      links = (await filterView()).kernelIds!.links;
      // sp4 has no server: a spare port the lab leaves open (switch.spareports), where IPv6 still drops.
      seen = moved(c0, await ports(), 'sp4', 'ingress', 'proto').packets;
      if (seen > 0 && links.length === before.length && !links.every((id) => before.includes(id))) break;
      await sleep(100);
    }
    assert.equal(links.length, before.length, 'still one link per port and direction');
    assert.equal(links.filter((id) => !before.includes(id)).length, 2, "sp4's two links are new");
    assert.ok(seen > 0, `frames from the new sp4 are counted (and dropped: IPv6): ${seen}`);
  });

  test('SIGKILL and stop (SIGTERM) of the DSR leave no program, map, link or tc filter; a new start attaches again', async () => {
    const ids = (await filterView()).kernelIds!;
    process.kill(lab.dsr.pid!, 'SIGKILL');
    await waitExit(lab.dsr.pid!);
    assert.deepEqual(await leftovers(ids), [], 'after SIGKILL');

    const pid = await startDaemon({
      what: 'the DSR again',
      namespace: lab.dsr.namespace,
      argv: [process.execPath, CLI, 'serve', '--config', lab.dsr.configPath],
      outFile: join(dir, 'dsr2.out'),
      port: lab.dsr.port,
      address: lab.dsr.clientAddress,
      timeoutMs: 20000,
      logs: { log: lab.dsr.logFile },
    });
    try {
      const again = await filterView();
      assert.equal(again.filter, 'attached');
      assert.equal(again.kernelIds?.links.length, 2 * lab.ports.length);
      assert.ok(blocked(await probe('server1', '198.18.1.12')), 'filtering again');
      process.kill(pid, 'SIGTERM');
      await waitExit(pid);
      assert.deepEqual(await leftovers(again.kernelIds!), [], 'after stop');
      assert.match(readFileSync(lab.dsr.logFile, 'utf8'), /"event":"offload.ports.closed"/);
    } finally {
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  test('without the right to use bpf() (a kernel without the feature, as the DSR sees it): one log line, the DSR serves on the bridge isolation alone', async () => {
    const logBefore = readFileSync(lab.dsr.logFile, 'utf8').length;
    // Root without CAP_BPF and CAP_SYS_ADMIN: the kernel probe finds no bpf() permission.
    const pid = await startDaemon({
      what: 'the DSR without bpf()',
      namespace: lab.dsr.namespace,
      argv: ['setpriv', '--bounding-set', '-bpf,-sys_admin', process.execPath, CLI, 'serve', '--config', lab.dsr.configPath],
      outFile: join(dir, 'dsr3.out'),
      port: lab.dsr.port,
      address: lab.dsr.clientAddress,
      timeoutMs: 20000,
      logs: { log: lab.dsr.logFile },
    });
    try {
      const f = await filterView();
      assert.equal(f.filter, 'unsupported');
      assert.match(f.reason ?? '', /lacks permission to load BPF programs/);
      assert.equal(f.kernelIds, undefined);
      const lines = readFileSync(lab.dsr.logFile, 'utf8').slice(logBefore).split('\n').filter((l) => l.includes('"component":"portfilter"'));
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, /"event":"portfilter.unsupported".*the bridge isolation still holds/);
      assert.ok((await ports()).every((r) => r.counters === undefined && r.isolated));
      await assert.rejects(call('port.load'), /no load figures: the storage port filter is unsupported/);
      // What the DSR logged, for a failure's message (a tree connect it cannot make says why there).
      const since = () => readFileSync(lab.dsr.logFile, 'utf8').slice(logBefore);
      await smbclient(lab.dsr.clientAddress, 'data1', 'ls', since);
      assert.ok(blocked(await probe('server1', '198.18.1.12')), 'the bridge isolation still holds');
    } finally {
      process.kill(pid, 'SIGTERM');
      await waitExit(pid);
    }
  });
});
