/**
 * Acceptance of source Fig. 6 in the lab (root): one client session through the DSR uses shares
 * on three real smbd servers, which see only the DSR. Real smbclient for the bulk transfers;
 * the project's own client (redirect-worker, run inside the client namespace) for exact
 * messages: malformed requests, compounds, CANCEL of an async request, an oplock break between
 * two connections, and teardown. A second DSR in the same namespace (port 4450) offers server1
 * only SMB 2.1 and idles backend sessions out after one second.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { adminCall } from '../../../src/control/admin.js';
import { labDown, labExec, labStatus, labUp, type LabStatus } from '../../../src/lab/lab.js';
import { ADDRESSES } from '../../../src/lab/topology.js';
import { tcpListening } from '../../../src/lab/netns.js';
import { waitUntil } from '../../../src/lab/process.js';
import { ALICE, labSkip, uniqueLabName } from '../../helpers/lab.js';
import { childLines } from '../../helpers/child-lines.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const WORKER = fileURLToPath(new URL('./redirect-worker.js', import.meta.url));
const BACKPRESSURE_WORKER = fileURLToPath(new URL('./backpressure-worker.js', import.meta.url));
const name = uniqueLabName();
const PORT_B = 4450;
let lab: LabStatus;
let dir: string;
let dsrB: ChildProcess | undefined;
let socketB: string;
let logB: string;

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  assert.ok(await waitUntil(check, timeoutMs, 100), `timed out waiting for ${what}`);
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const storagePackets = (s: LabStatus) => s.ports.reduce((n, p) => n + p.tcp.rxPackets + p.tcp.txPackets, 0);
const sharePath = (share: string) => lab.servers.flatMap((s) => s.shares).find((s) => s.name === share)!.path;

/** Peers of the established SMB connections a server's smbd holds, but the DSR's health probes (their own source address). */
async function smbPeers(server: string): Promise<string[]> {
  const r = await labExec(name, server, ['ss', '-Htn', 'state', 'established', '( sport = :445 )']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/).at(-1) ?? '')
    .filter((p) => p.includes(':'))
    .map((p) => p.slice(0, p.lastIndexOf(':')))
    .filter((p) => p !== ADDRESSES.dsrProbe);
}

/** Runs a command in the client namespace (argv[0] replaces `ip netns exec`, so the PID is the command's). */
function spawnInClient(argv: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', lab.client.namespace, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
}

function smbclient(args: string[], port = 445): Promise<{ code: number; out: string }> {
  const p = spawnInClient(['smbclient', `//${lab.dsr.clientAddress}/data1`, '-U', ALICE, '-p', String(port), ...args]);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => p.on('close', (code) => resolve({ code: code ?? -1, out })));
}

/**
 * Runs a worker scenario. At each {"wait"} line, `onWait` runs (reading counters, tables) and
 * the worker continues. Returns every other line.
 */
async function worker(scenario: string, port: number, onWait: (point: string) => Promise<void> = async () => undefined): Promise<Record<string, unknown>[]> {
  const p = spawnInClient(['node', WORKER, lab.dsr.clientAddress, String(port), scenario]);
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const lines: Record<string, unknown>[] = [];
  try {
    for await (const line of createInterface({ input: p.stdout! })) {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (typeof o.wait === 'string') {
        await onWait(o.wait);
        p.stdin!.write('\n');
        continue;
      }
      assert.equal(o.error, undefined, `worker ${scenario}: ${String(o.error)} ${err}`);
      lines.push(o);
    }
  } catch (e) {
    // A failed check must not leave the worker's sessions open for the next test.
    p.kill('SIGKILL');
    throw e;
  }
  const code = await new Promise<number | null>((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.on('close', resolve)));
  assert.equal(code, 0, `worker ${scenario} exited ${code}: ${err}`);
  return lines;
}

/** The lab DSR's resident memory, MiB. */
const rssMiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${lab.dsr.pid}/status`, 'utf8'))![1]) / 1024;

/** Recv-Q of the lab DSR's established TCP sockets that `filter` (an ss filter) picks, summed. */
async function dsrRecvQ(filter: string): Promise<number> {
  const r = await labExec(name, 'dsr', ['ss', '-Htn', 'state', 'established', filter]);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .reduce((n, l) => n + Number(l.trim().split(/\s+/)[0]), 0);
}

/**
 * Runs backpressure-worker in `mode` against the lab DSR (data1, on server1) and, while its
 * COUNT requests are stalled, samples the DSR's memory for 2 s and what `whileStalled` reads.
 * Returns the memory before the requests and at its highest meanwhile, MiB.
 */
async function stalledWorker(mode: 'read' | 'write', file: string, verify: string, count: number, whileStalled: () => Promise<void>): Promise<{ base: number; peak: number }> {
  const p = spawnInClient(['node', BACKPRESSURE_WORKER, lab.dsr.clientAddress, 'data1', file, verify, ...ALICE.split('%'), mode, String(count)]);
  const { next, stderr } = childLines(p, `backpressure worker (${mode})`);
  try {
    assert.equal(await next(), 'ready');
    const base = rssMiB();
    p.stdin!.write('\n');
    assert.equal(await next(), 'stalled');
    let peak = base;
    for (let i = 0; i < 20; i++) {
      await sleep(100);
      peak = Math.max(peak, rssMiB());
    }
    await whileStalled();
    p.stdin!.write('\n');
    assert.deepEqual(JSON.parse(await next()), { done: count });
    const code = await new Promise<number | null>((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.on('close', resolve)));
    assert.equal(code, 0, `backpressure worker (${mode}) exited ${code}: ${stderr()}`);
    return { base, peak };
  } finally {
    if (p.exitCode === null) p.kill('SIGKILL');
  }
}

interface TreeRow {
  sessionId: string;
  share: string;
  kind: string;
  server: string | null;
  backendTreeId: number | null;
}
interface BackendRow {
  server: string;
  dialect: string;
  sessions: { trees: number }[];
}
const admin = <T>(op: string) => adminCall(socketB, op) as Promise<T>;

describe('redirect and multiplex through the DSR (lab)', { skip: labSkip }, () => {
  before(async () => {
    lab = await labUp({ name, servers: 3 });
    dir = mkdtempSync(join(tmpdir(), `${name}-`));
    // The second DSR: server1 speaks only SMB 2.1 to it, and idle backend sessions end after 1 s.
    const config = parseYaml(readFileSync(lab.dsr.configPath, 'utf8')) as Record<string, any>;
    socketB = `/run/dsr/${name}b.sock`;
    logB = join(dir, 'dsr-b.log');
    config.name = `${name}b`;
    config.listen = [{ address: lab.dsr.clientAddress, port: PORT_B }];
    config.admin = { socket: socketB };
    config.log = { level: 'info', file: logB };
    config.servers.server1.dialects = ['2.1'];
    config.limits = { backendIdleSeconds: 1, backendTimeoutSeconds: 2 };
    // The lab's DSR owns the agents' port and its state directory.
    delete config.agents;
    config.stateDir = join(dir, 'state-b');
    // A share the server does not have, and a server that does not exist on the storage side.
    config.servers.ghost = { address: '198.18.1.99' };
    config.resources.push({ name: 'missing', servers: ['server1'], remoteName: 'nosuchshare' }, { name: 'ghost', servers: ['ghost'] });
    const path = join(dir, 'dsr-b.yaml');
    writeFileSync(path, stringifyYaml(config), { mode: 0o600 });
    dsrB = spawn('ip', ['netns', 'exec', lab.dsr.namespace, process.execPath, CLI, 'serve', '--config', path], { stdio: 'ignore' });
    await eventually(() => tcpListening(lab.dsr.namespace, PORT_B), 10000, 'the second DSR to listen');
  });
  after(async () => {
    if (dsrB?.pid && dsrB.exitCode === null) {
      dsrB.kill('SIGTERM');
      await new Promise((r) => dsrB!.once('close', r));
    }
    await labDown(name);
    rmSync(dir, { recursive: true, force: true });
  });

  test('one smbclient session puts and gets 64 MiB on each of three servers (SMB 3.1.1, signing required); smbd sees only the DSR', async () => {
    const src = join(dir, 'random64.bin');
    writeFileSync(src, randomBytes(64 * 1024 * 1024));
    const want = sha256(src);
    const shares = ['data1', 'data2', 'data3'];
    const script = shares.map((s, i) => `${i > 0 ? `tcon ${s}; ` : ''}put random64.bin big.bin; get big.bin back-${s}.bin`).join('; ');
    const peers = new Map<string, Set<string>>(lab.servers.map((s) => [s.name, new Set<string>()]));
    let watching = true;
    const watch = (async () => {
      while (watching) {
        for (const s of lab.servers) for (const p of await smbPeers(s.name)) peers.get(s.name)!.add(p);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const r = await smbclient(['-m', 'SMB3_11', '--option=client signing=required', '-D', '/', '-c', `lcd ${dir}; ${script}`]);
    watching = false;
    await watch;
    assert.equal(r.code, 0, r.out);
    for (const s of shares) {
      assert.equal(sha256(join(dir, `back-${s}.bin`)), want, `${s}: what came back through the DSR`);
      assert.equal(sha256(join(sharePath(s), 'big.bin')), want, `${s}: what the server has on disk`);
    }
    for (const [server, seen] of peers) {
      assert.ok(seen.size > 0, `${server} saw no SMB connection during the transfers`);
      assert.deepEqual([...seen], [lab.dsr.storageAddress], `${server} saw a session from somewhere other than the DSR`);
    }
  });

  for (const [dialect, protection] of [
    ['SMB2_02', 'off'],
    ['SMB2_10', 'sign'],
    ['SMB3_00', 'encrypt'],
    ['SMB3_02', 'sign'],
    ['SMB3_11', 'encrypt'],
  ] as const) {
    test(`put and get through the DSR with ${dialect}, client protection ${protection}`, async () => {
      const name = `${dialect}-${protection}`;
      const src = join(dir, `${name}.bin`);
      writeFileSync(src, randomBytes(4 * 1024 * 1024 + 123));
      const r = await smbclient(['-m', dialect, `--client-protection=${protection}`, '-c', `lcd ${dir}; put ${name}.bin; get ${name}.bin ${name}.back`]);
      assert.equal(r.code, 0, r.out);
      assert.equal(sha256(join(dir, `${name}.back`)), sha256(src));
      assert.equal(sha256(join(sharePath('data1'), `${name}.bin`)), sha256(src));
    });
  }

  test('a 3.1.1 client over a server that speaks only 2.1', async () => {
    const src = join(dir, 'mixed.bin');
    writeFileSync(src, randomBytes(3 * 1024 * 1024));
    const r = await smbclient(['-m', 'SMB3_11', '--option=client signing=required', '-c', `lcd ${dir}; put mixed.bin; get mixed.bin mixed.back`], PORT_B);
    assert.equal(r.code, 0, r.out);
    assert.equal(sha256(join(dir, 'mixed.back')), sha256(src));
    const connected = readFileSync(logB, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"backend.connected"'))
      .map((l) => JSON.parse(l) as { server: string; dialect: string });
    assert.ok(connected.some((c) => c.server === 'server1' && c.dialect === '2.1'), JSON.stringify(connected));
  });

  test('malformed requests after tree connect get Windows statuses and never reach a server', async () => {
    let before = 0;
    const [r] = await worker('malformed', PORT_B, async (point) => {
      // Let the last storage-side exchange finish (delayed ACKs) before counting.
      if (point === 'before') await new Promise((r) => setTimeout(r, 300));
      const n = storagePackets(await labStatus(name));
      if (point === 'before') before = n;
      else assert.equal(n, before, 'storage-side TCP packets during the refused requests');
    });
    assert.deepEqual(r!.results, {
      badTree: 'STATUS_NETWORK_NAME_DELETED',
      otherSession: 'STATUS_FILE_CLOSED',
      unknownFileId: 'STATUS_FILE_CLOSED',
      oversizeRead: 'STATUS_INVALID_PARAMETER',
      chargeLie: 'STATUS_INVALID_PARAMETER',
      unknownShare: 'STATUS_BAD_NETWORK_NAME',
    });
  });

  test("a server's refusal comes back with its NTSTATUS; an unreachable server is STATUS_BAD_NETWORK_PATH and holds up nothing else", async () => {
    const [r] = await worker('refusals', PORT_B);
    assert.deepEqual(r, { missing: 'STATUS_BAD_NETWORK_NAME', ghost: 'STATUS_BAD_NETWORK_PATH', data1: 'STATUS_SUCCESS', order: ['data1', 'ghost'] });
  });

  test('compounds: a related chain stays whole on one server; unrelated members on two servers come back in order in one frame', async () => {
    const [chain, split] = await worker('compound', PORT_B);
    assert.deepEqual(chain!.related, ['STATUS_SUCCESS', 'STATUS_SUCCESS', 'STATUS_SUCCESS']);
    assert.equal(readFileSync(join(sharePath('data1'), 'chain.txt'), 'utf8'), 'compound through the DSR\n');
    assert.deepEqual(split!.unrelated, ['STATUS_SUCCESS', 'STATUS_SUCCESS']);
    assert.deepEqual(split!.data, ['compound through the DSR\n', 'second server\n']);
    assert.deepEqual(split!.firstFrame, split!.sent, 'both first responses in one frame, in order');
  });

  test('an async CHANGE_NOTIFY gets a DSR AsyncId, and CANCEL by that id ends it with STATUS_CANCELLED', async () => {
    const [r] = await worker('cancel', PORT_B);
    const interim = r!.interim as { asyncId: string; credit: number; signed: boolean };
    assert.notEqual(interim.asyncId, '0');
    assert.ok(interim.credit > 0, 'credits are granted on the interim response');
    assert.equal(interim.signed, false, 'interim responses are not signed (MS-SMB2 3.3.4.2)');
    assert.equal(r!.final, 'STATUS_CANCELLED');
    assert.equal(r!.finalAsync, true);
    assert.equal(r!.finalAsyncId, interim.asyncId);
    assert.equal(r!.finalCredit, 0, 'credits of an async request come with its interim response (MS-SMB2 3.3.4.3)');
  });

  test('a client that hangs up while its CHANGE_NOTIFY pends ends its server connection with no failover', async () => {
    const from = readFileSync(logB, 'utf8').length;
    const [r] = await worker('hangup', PORT_B);
    assert.equal(r!.pending, true, 'the CHANGE_NOTIFY went async at the server');
    await eventually(async () => (await admin<unknown[]>('backend.list')).length === 0, 5000, 'the DSR to let go of server1');
    // A failover (a reachability probe, then moving no tree) would log within milliseconds.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const lines = readFileSync(logB, 'utf8').slice(from);
    assert.doesNotMatch(lines, /"event":"(failover\.[a-z_]+|conn\.backend_lost)"/, 'a client hanging up is no lost server');
  });

  test('an oplock break reaches the right client connection with its own FileId; the acknowledgment reaches the server', async () => {
    const lines = await worker('oplock', PORT_B);
    const ack = lines.find((l) => 'ack' in l)!;
    const res = lines.find((l) => 'second' in l)!;
    assert.equal(res.firstOplock, 0x09, 'batch oplock granted through the DSR');
    assert.equal(res.breakFileIdMatches, true);
    assert.equal(res.breakLevel, 0x01, 'broken to level II');
    assert.equal(ack.ack, 'STATUS_SUCCESS');
    assert.equal(ack.ackFileIdMatches, true);
    assert.equal(res.second, 'STATUS_SUCCESS');
  });

  test('TREE_DISCONNECT and LOGOFF release exactly their backend sessions and trees', async () => {
    await worker('teardown', PORT_B, async (point) => {
      const trees = (await admin<TreeRow[]>('tree.list')).filter((t) => t.kind === 'disk');
      const backends = await admin<(BackendRow & { connectionId: number })[]>('backend.list');
      const opens = await admin<{ server?: string; backendFileId?: string }[]>('open.list');
      const rules = (await admin<{ trees: { share: string; backend?: { server: string; treeId: number } }[] }>('offload.show')).trees.filter((t) => t.backend);
      if (point === 'three-trees') {
        // The fast path gets each redirected tree's backend ids (issue 5 installs them in the kernel).
        assert.deepEqual(rules.map((t) => t.backend!.server).sort(), ['server1', 'server2', 'server3']);
        assert.deepEqual(rules.map((t) => t.backend!.treeId).sort(), trees.map((t) => t.backendTreeId).sort());
        assert.deepEqual(trees.map((t) => t.server).sort(), ['server1', 'server2', 'server3']);
        assert.ok(trees.every((t) => typeof t.backendTreeId === 'number'));
        assert.deepEqual(backends.map((b) => b.server).sort(), ['server1', 'server2', 'server3']);
        assert.ok(backends.every((b) => b.sessions.length === 1 && b.sessions[0]!.trees === 1));
        assert.equal(opens.length, 1);
        assert.equal(opens[0]!.server, 'server1');
        assert.match(opens[0]!.backendFileId ?? '', /^[0-9a-f]+:[0-9a-f]+$/);
      } else if (point === 'data3-disconnected') {
        assert.deepEqual(trees.map((t) => t.server).sort(), ['server1', 'server2']);
        // The idle backend session on server3 ends after backendIdleSeconds, then its connection.
        await eventually(async () => !(await admin<BackendRow[]>('backend.list')).some((b) => b.server === 'server3'), 8000, 'server3 backend to idle out');
        await eventually(async () => (await smbPeers('server3')).length === 0, 5000, 'server3 smbd to drop the DSR connection');
        assert.ok((await smbPeers('server1')).length > 0, 'server1 keeps its session');
      } else {
        assert.deepEqual(trees, []);
        assert.deepEqual(opens, []);
        assert.deepEqual(rules, []);
        await eventually(async () => (await admin<BackendRow[]>('backend.list')).every((b) => b.sessions.length === 0), 5000, 'backend sessions to end with LOGOFF');
      }
    });
  });

  test('a client killed mid-transfer leaves no session, tree, open or backend session behind', async () => {
    writeFileSync(join(dir, 'kill.bin'), randomBytes(256 * 1024 * 1024));
    const p = spawnInClient(['smbclient', `//${lab.dsr.clientAddress}/data2`, '-U', ALICE, '-p', String(PORT_B), '-c', `lcd ${dir}; put kill.bin`]);
    await eventually(async () => (await admin<unknown[]>('open.list')).length > 0, 10000, 'the transfer to start');
    p.kill('SIGKILL');
    await new Promise((r) => p.once('close', r));
    await eventually(
      async () =>
        (await admin<unknown[]>('session.list')).length === 0 &&
        (await admin<unknown[]>('tree.list')).length === 0 &&
        (await admin<unknown[]>('open.list')).length === 0 &&
        (await admin<unknown[]>('backend.list')).length === 0,
      5000,
      'the DSR tables to empty',
    );
    await eventually(async () => (await smbPeers('server2')).length === 0, 5000, 'server2 smbd to drop the DSR session');
  });

  describe('backpressure: Node holds about two messages for a side that is behind, not what the credits allow', () => {
    const source = () => join(sharePath('data1'), 'bp.bin');
    before(() => writeFileSync(source(), randomBytes(32 * 1024 * 1024)));
    after(() => rmSync(source(), { force: true }));

    test('a client that stops reading with 96 MiB of READs out: the DSR stops reading the server (its socket fills), its memory stays within 40 MiB, and every READ comes back right after', async () => {
      let unread = 0;
      const { base, peak } = await stalledWorker('read', 'bp.bin', source(), 96, async () => {
        unread = await dsrRecvQ(`( dst ${lab.servers[0]!.address} and dport = :445 )`);
      });
      console.log(`# client behind: DSR memory ${base.toFixed(0)} -> ${peak.toFixed(0)} MiB with 96 MiB of READ responses owed; ${unread} bytes left unread in its server socket`);
      assert.ok(unread > 0, "the DSR stopped reading server1's responses");
      assert.ok(peak - base < 40, `the DSR's memory grew ${(peak - base).toFixed(0)} MiB`);
    });

    test("a server that reads slowly (its link at 40 Mbit/s) under 64 MiB of WRITEs: the DSR stops reading the client, its memory stays within 40 MiB, and the file is whole after", async (t) => {
      const port = lab.servers[0]!.port;
      const limit = await labExec(name, 'dsr', ['tc', 'qdisc', 'add', 'dev', port, 'root', 'tbf', 'rate', '40mbit', 'burst', '32kb', 'latency', '400ms']);
      if (limit.code !== 0) {
        t.skip(`the kernel has no tbf qdisc to slow the link with: ${limit.stderr.trim()}`);
        return;
      }
      let limited = true;
      const unlimit = async () => {
        if (limited) await labExec(name, 'dsr', ['tc', 'qdisc', 'del', 'dev', port, 'root']);
        limited = false;
      };
      let unread = 0;
      let stats: { base: number; peak: number };
      const target = join(sharePath('data1'), 'bp-w.bin');
      try {
        stats = await stalledWorker('write', 'bp-w.bin', source(), 64, async () => {
          unread = await dsrRecvQ(`( sport = :445 and dst ${lab.client.address} )`);
          await unlimit();
        });
      } finally {
        await unlimit();
      }
      const { base, peak } = stats;
      console.log(`# server behind: DSR memory ${base.toFixed(0)} -> ${peak.toFixed(0)} MiB with 64 MiB of WRITEs sent; ${unread} bytes left unread in its client socket`);
      assert.ok(unread > 0, "the DSR stopped reading the client's WRITEs");
      assert.ok(peak - base < 40, `the DSR's memory grew ${(peak - base).toFixed(0)} MiB`);
      const src = readFileSync(source());
      assert.ok(readFileSync(target).equals(Buffer.concat([src, src])), 'the file holds every WRITE');
      rmSync(target, { force: true });
    });
  });
});
