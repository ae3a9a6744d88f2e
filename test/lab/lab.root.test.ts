/**
 * The network-namespace lab with real smbd servers. Needs root; skipped (with the reason) otherwise.
 * Each lab gets a unique name so parallel test files and a developer's own `dsrlab` are untouched.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../../src/control/config.js';
import { DsrError, ErrorCode } from '../../src/control/errors.js';
import { labDirectPath, labDown, labDsrConfig, labExec, labStatus, labUp, type LabStatus } from '../../src/lab/lab.js';
import { netnsExists, netnsPids } from '../../src/lab/netns.js';
import { pidAlive } from '../../src/lab/process.js';
import { smbConf } from '../../src/lab/smbd.js';
import { ALICE, BOB, labSkip, uniqueLabName } from '../helpers/lab.js';
import { allNamespaces, hostNamespace, labDataDir, labPlan, labStateDir } from '../../src/lab/topology.js';

const skip = labSkip;
const uniqueName = uniqueLabName;

/** Disk shares a server lists to smbclient -L, from the machine-readable (-g) output. */
async function listShares(lab: string, address: string): Promise<string[]> {
  const r = await labExec(lab, 'dsr', ['smbclient', '-g', '-L', `//${address}`, '-U', ALICE, '-m', 'SMB3'], { timeoutMs: 20000 });
  assert.equal(r.code, 0, `smbclient -L //${address}: ${r.stderr}${r.stdout}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('Disk|'))
    .map((l) => l.split('|')[1] ?? '')
    .sort();
}

/** Opens a TCP connection from a lab host; the exit code says whether it connected. */
function tcpConnect(lab: string, host: string, address: string, timeoutMs = 3000) {
  return labExec(lab, host, ['bash', '-c', `exec 3<>/dev/tcp/${address}/445`], { timeoutMs });
}

const isUsage = (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE;
const packets = (s: LabStatus) => Object.fromEntries(s.ports.map((p) => [p.name, p.tcp]));

describe('lab plan (pure)', () => {
  test('names, addresses and shares follow the topology', () => {
    const p = labPlan('dtab', 2);
    assert.deepEqual(p.namespaces, { client: 'dtab-client', dsr: 'dtab-dsr', server1: 'dtab-s1', server2: 'dtab-s2' });
    assert.deepEqual(
      p.servers.map((s) => [s.name, s.address, s.port, s.netbiosName]),
      [
        ['server1', '198.18.1.11', 'sp1', 'SERVER1'],
        ['server2', '198.18.1.12', 'sp2', 'SERVER2'],
      ],
    );
    assert.deepEqual(p.servers[1]?.shares, [
      { name: 'data2', path: '/var/lib/dsr-lab/dtab/server2/data2' },
      { name: 'docs2', path: '/var/lib/dsr-lab/dtab/server2/docs2' },
      { name: 'san', path: '/var/lib/dsr-lab/dtab/san' },
    ]);
    assert.deepEqual(p.ports, [{ name: 'sp1', server: 'server1' }, { name: 'sp2', server: 'server2' }, { name: 'sp3' }, { name: 'sp4' }]);
    assert.equal(p.dsr.adminSocket, '/run/dsr/dtab.sock');
    assert.equal(labPlan('dsrlab', 1).dsr.adminSocket, '/run/dsr/dsr.sock');
    assert.deepEqual(allNamespaces('x'), ['x-client', 'x-dsr', 'x-s1', 'x-s2', 'x-s3', 'x-s4']);
    assert.equal(hostNamespace('x', 'server4'), 'x-s4');
    assert.equal(hostNamespace('x', 'server5'), undefined);
    assert.equal(hostNamespace('x', 'router'), undefined);
  });

  test('bad names and server counts are usage errors', () => {
    for (const name of ['', 'Lab', 'a b', '-x', 'a'.repeat(32), '../etc']) assert.throws(() => labPlan(name, 1), isUsage, name);
    for (const n of [-1, 1.5, 5]) assert.throws(() => labPlan('x', n), isUsage, String(n));
    return assert.rejects(labUp({ name: 'x', servers: 0 }), isUsage);
  });

  test('the DSR config serves every share, san from servers 1 and 2, and is accepted by resolveConfig', () => {
    const p = labPlan('dtab', 3);
    const input = labDsrConfig(p);
    const c = resolveConfig(input);
    assert.equal(c.name, 'dtab');
    assert.deepEqual(c.listen, [{ address: '198.18.0.1', port: 445 }]);
    assert.equal(c.admin.socket, '/run/dsr/dtab.sock');
    assert.equal(c.credentials, '/run/dsr-lab/dtab/credentials.json');
    assert.deepEqual(c.servers, {
      server1: { address: '198.18.1.11', port: 445, signing: 'auto', switchPort: 'sp1', mac: '02:00:c6:12:01:0b' },
      server2: { address: '198.18.1.12', port: 445, signing: 'auto', switchPort: 'sp2', mac: '02:00:c6:12:01:0c' },
      server3: { address: '198.18.1.13', port: 445, signing: 'auto', switchPort: 'sp3', mac: '02:00:c6:12:01:0d' },
    });
    assert.deepEqual(c.switch, { bridge: 'br0', ports: ['sp1', 'sp2', 'sp3', 'sp4'], isolated: true, filter: true, labDirectPath: true, spareports: 'open' });
    assert.equal(resolveConfig(labDsrConfig(p, { portFilter: false })).switch?.filter, false);
    assert.deepEqual(
      c.resources.map((r) => [r.name, r.servers]).sort(),
      [
        ['data1', ['server1']],
        ['data2', ['server2']],
        ['data3', ['server3']],
        ['docs1', ['server1']],
        ['docs2', ['server2']],
        ['docs3', ['server3']],
        ['san', ['server1', 'server2']],
      ],
    );
    assert.equal(c.log.file, '/run/dsr-lab/dtab/dsr.log');
  });

  test('smb.conf keeps each server in its own directories and exports its shares', () => {
    const s = labPlan('dtab', 2).servers[1];
    assert.ok(s);
    const conf = smbConf(s);
    for (const line of [
      'netbios name = SERVER2',
      'server role = standalone server',
      'passdb backend = tdbsam:/run/dsr-lab/dtab/server2/private/passdb.tdb',
      'lock directory = /run/dsr-lab/dtab/server2/lock',
      'ncalrpc dir = /run/dsr-lab/dtab/server2/ncalrpc',
      'server min protocol = SMB2_02',
      'disable spoolss = yes',
    ]) {
      assert.match(conf, new RegExp(`^  ${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line);
    }
    assert.deepEqual([...conf.matchAll(/^\[(.+)\]$/gm)].map((m) => m[1]), ['global', 'data2', 'docs2', 'san']);
    assert.match(conf, /^\[san\]\n  path = \/var\/lib\/dsr-lab\/dtab\/san$/m);
  });
});

describe('a 3-server lab without the DSR', { skip }, () => {
  const name = uniqueName();
  let lab: LabStatus;
  before(async () => {
    lab = await labUp({ name, servers: 3, dsr: false });
  });
  after(() => labDown(name));

  test('is up, with its namespaces', () => {
    assert.equal(lab.up, true);
    const ns = (suffix: string) => `${name}-${suffix}`;
    assert.deepEqual(lab.namespaces, { client: ns('client'), dsr: ns('dsr'), server1: ns('s1'), server2: ns('s2'), server3: ns('s3') });
    for (const ns of Object.values(lab.namespaces)) assert.ok(netnsExists(ns), ns);
    assert.equal(netnsExists(`${name}-s4`), false);
    assert.equal(lab.dsr.running, false);
    assert.equal(lab.dsr.enabled, false);
    for (const s of lab.servers) assert.ok(s.running && s.smbdPid !== undefined && pidAlive(s.smbdPid), s.name);
  });

  test('lab up again leaves it alone (same smbd PIDs)', async () => {
    const again = await labUp({ name, servers: 3, dsr: false });
    assert.equal(again.up, true);
    assert.deepEqual(
      again.servers.map((s) => s.smbdPid),
      lab.servers.map((s) => s.smbdPid),
    );
  });

  test('each smbd lists its own shares, san on servers 1 and 2', async () => {
    const expected = [['data1', 'docs1', 'san'], ['data2', 'docs2', 'san'], ['data3', 'docs3']];
    const listed = await Promise.all(lab.servers.map((s) => listShares(name, s.address)));
    assert.deepEqual(listed, expected);
  });

  test('a file written to san through server1 (alice) is read back through server2 (bob)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dsr-lab-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const content = `written through server1 ${randomBytes(8).toString('hex')}\n`;
    writeFileSync(join(dir, 'in.txt'), content);
    const smbclient = async (share: string, user: string, command: string) => {
      const r = await labExec(name, 'dsr', ['smbclient', share, '-U', user, '-m', 'SMB3', '-c', command], { timeoutMs: 20000 });
      assert.equal(r.code, 0, `${share} ${command}: ${r.stderr}${r.stdout}`);
    };
    await smbclient('//198.18.1.11/san', ALICE, `put ${dir}/in.txt shared.txt`);
    await smbclient('//198.18.1.12/san', BOB, `get shared.txt ${dir}/out.txt`);
    assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), content);
    assert.equal(readFileSync(join(labDataDir(name), 'san', 'shared.txt'), 'utf8'), content);
  });

  test('the dsr namespace does not forward: the client cannot reach a server', async (t) => {
    const fwd = await labExec(name, 'dsr', ['sysctl', '-n', 'net.ipv4.ip_forward']);
    assert.equal(fwd.stdout.trim(), '0');
    assert.equal((await tcpConnect(name, 'dsr', '198.18.1.11')).code, 0, 'the dsr host itself reaches server1');
    assert.notEqual((await tcpConnect(name, 'client', '198.18.1.11')).code, 0, 'no route');
    // Even with a route through the DSR, packets for the storage side are dropped there.
    const route = ['ip', 'route', 'add', '198.18.1.0/24', 'via', '198.18.0.1'];
    assert.equal((await labExec(name, 'client', route)).code, 0);
    t.after(() => labExec(name, 'client', ['ip', 'route', 'del', '198.18.1.0/24']));
    assert.notEqual((await tcpConnect(name, 'client', '198.18.1.11', 1500)).code, 0, 'routed via the DSR');
  });

  test('the opt-in direct path routes the client to the servers, and off isolates them again', async () => {
    await labDirectPath(name, true);
    try {
      assert.equal((await labStatus(name)).dsr.directPath, true);
      assert.equal((await tcpConnect(name, 'client', '198.18.1.12')).code, 0);
    } finally {
      await labDirectPath(name, false);
    }
    assert.equal((await labStatus(name)).dsr.directPath, false);
    assert.notEqual((await tcpConnect(name, 'client', '198.18.1.12', 1500)).code, 0);
  });

  test('storage ports: sp1..sp3 have carrier, the empty sp4 has none', async () => {
    const s = await labStatus(name);
    assert.deepEqual(
      s.ports.map((p) => [p.name, p.server, p.carrier]),
      [
        ['sp1', 'server1', true],
        ['sp2', 'server2', true],
        ['sp3', 'server3', true],
        ['sp4', undefined, false],
      ],
    );
  });

  test('storage-port TCP counters move with storage traffic and only then', async () => {
    const before = packets(await labStatus(name));
    // Traffic on the client side and no traffic at all leave every storage counter alone.
    await tcpConnect(name, 'client', '198.18.0.1');
    await labExec(name, 'dsr', ['ping', '-c', '1', '-W', '1', '198.18.1.12']);
    assert.deepEqual(packets(await labStatus(name)), before);
    assert.equal((await tcpConnect(name, 'dsr', '198.18.1.12')).code, 0);
    const afterConnect = packets(await labStatus(name));
    const sp2Before = before.sp2;
    const sp2After = afterConnect.sp2;
    assert.ok(sp2Before && sp2After);
    // At least SYN, ACK, FIN out and SYN-ACK, ACK in.
    assert.ok(sp2After.txPackets >= sp2Before.txPackets + 2, `tx ${sp2Before.txPackets} -> ${sp2After.txPackets}`);
    assert.ok(sp2After.rxPackets >= sp2Before.rxPackets + 1, `rx ${sp2Before.rxPackets} -> ${sp2After.rxPackets}`);
    assert.ok(sp2After.txBytes > sp2Before.txBytes && sp2After.rxBytes > sp2Before.rxBytes);
    for (const port of ['sp1', 'sp3', 'sp4']) assert.deepEqual(afterConnect[port], before[port], port);
  });

  test('labExec passes input, reports exit codes and enforces its time limit', async () => {
    assert.deepEqual(await labExec(name, 'server3', ['cat'], { input: 'hello' }), { code: 0, stdout: 'hello', stderr: '' });
    assert.equal((await labExec(name, 'server3', ['sh', '-c', 'exit 3'])).code, 3);
    const started = Date.now();
    const slow = await labExec(name, 'server3', ['sh', '-c', 'sleep 30; echo late'], { timeoutMs: 300 });
    assert.equal(slow.code, 124);
    assert.equal(slow.stdout, '');
    assert.ok(Date.now() - started < 5000);
    await assert.rejects(labExec(name, 'server4', ['true']), (e: unknown) => e instanceof DsrError && e.code === ErrorCode.LAB);
    await assert.rejects(labExec(name, 'printer', ['true']), (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE);
  });

  test('labDown removes namespaces, processes and directories; a second labDown is harmless', async () => {
    const pids = [...lab.servers.map((s) => s.smbdPid ?? 0), ...allNamespaces(name).flatMap(netnsPids)];
    assert.ok(pids.length >= 3 && pids.every(pidAlive));
    await labDown(name);
    for (const ns of allNamespaces(name)) assert.equal(netnsExists(ns), false, ns);
    assert.deepEqual(pids.filter(pidAlive), []);
    assert.equal(existsSync(labStateDir(name)), false);
    assert.equal(existsSync(labDataDir(name)), false);
    await labDown(name);
    const s = await labStatus(name);
    assert.equal(s.up, false);
    assert.deepEqual(s.servers, []);
  });
});

describe('a 4-server lab', { skip }, () => {
  const name = uniqueName();
  after(() => labDown(name));

  test('plugs server4 into sp4', async () => {
    const lab = await labUp({ name, servers: 4, dsr: false });
    assert.equal(lab.up, true);
    assert.deepEqual(
      lab.ports.map((p) => [p.name, p.server, p.carrier]),
      [
        ['sp1', 'server1', true],
        ['sp2', 'server2', true],
        ['sp3', 'server3', true],
        ['sp4', 'server4', true],
      ],
    );
    assert.deepEqual(await listShares(name, '198.18.1.14'), ['data4', 'docs4']);
  });

  test('a lab with a dead smbd is rebuilt; a different server count replaces it', async () => {
    const before = await labStatus(name);
    const victim = before.servers[3]?.smbdPid;
    assert.ok(victim !== undefined);
    process.kill(victim, 'SIGKILL');
    const broken = await labStatus(name);
    assert.equal(broken.up, false);
    assert.equal(broken.servers[3]?.running, false);
    const rebuilt = await labUp({ name, servers: 4, dsr: false });
    assert.equal(rebuilt.up, true);
    assert.ok(rebuilt.servers.every((s, i) => s.running && s.smbdPid !== before.servers[i]?.smbdPid));
    const smaller = await labUp({ name, servers: 2, dsr: false });
    assert.equal(smaller.up, true);
    assert.deepEqual(Object.keys(smaller.namespaces), ['client', 'dsr', 'server1', 'server2']);
    assert.equal(netnsExists(`${name}-s3`), false);
    assert.deepEqual(
      smaller.ports.map((p) => p.carrier),
      [true, true, false, false],
    );
  });
});
