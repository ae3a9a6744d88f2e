/**
 * The kernel SMB2 relay driven by the DSR, in the lab (root): with relay.mode on, a real
 * smbclient's bulk READs and WRITEs are forwarded by the kernel (bpf/smb2_relay.bpf.c) between
 * the client's socket and the server's, and whatever the rules do not cover (CREATE, CLOSE, a
 * signed session) makes the DSR take the connection back first. What is checked is what the
 * issue asks: the bytes are intact on the server's disk and back at the client, and the kernel's
 * counters, not Node, carried at least 99% of the READ/WRITE messages; with signing required
 * the transfer works through user space and the DSR says why.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { labDown, labFail, labFreeze, labUp, type LabStatus } from '../../../src/lab/lab.js';
import { ADDRESSES, labDataDir } from '../../../src/lab/topology.js';
import { probeKernel } from '../../../src/offload/native.js';
import { writeRandomFile } from '../../../bench/lib/files.js';
import { ALICE, labSkip, uniqueLabName } from '../../helpers/lab.js';
import { childLines } from '../../helpers/child-lines.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const name = uniqueLabName();
const MIB = 1 << 20;
const SIZE = 1024 * MIB;

const skip = labSkip || (probeKernel().sockmapLinks ? false : 'the kernel has no sockmap links for sk_skb programs (Linux >= 6.10)');
if (skip) console.log(`# relay lab test skipped: ${skip}`);

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

const WORKER = fileURLToPath(new URL('../../../bench/throughput-worker.js', import.meta.url));
const TAIL_WORKER = fileURLToPath(new URL('./relay-worker.js', import.meta.url));
const BACKPRESSURE_WORKER = fileURLToPath(new URL('./backpressure-worker.js', import.meta.url));
const OPS = 300;

/** A process's exit code and its stdout (stderr after it). */
function run(cmd: string, args: string[], started?: (proc: ChildProcess) => void): Promise<{ code: number; out: string }> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  started?.(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code: code ?? -1, out: out + err })));
}

/** `ip netns exec` execs smbclient: `started` gets smbclient's own process. */
function smbclient(lab: LabStatus, share: string, command: string, extra: string[] = [], started?: (proc: ChildProcess) => void): Promise<{ code: number; out: string }> {
  return run('ip', ['netns', 'exec', lab.client.namespace, 'smbclient', `//${lab.dsr.clientAddress}/${share}`, '-U', ALICE, ...extra, '-c', command], started);
}

const bytes = (path: string) => (existsSync(path) ? statSync(path).size : 0);

/** Waits until `path` holds `n` bytes (a transfer through the relay is under way), at most 30 s. */
async function holds(path: string, n: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (bytes(path) < n && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
}

interface RelayView {
  state: string;
  reason?: string;
  lent: number;
  entries: number;
  requests: number;
  replies: number;
  userReadWrite: number;
  kernelShare: number | null;
  exits: Record<string, number>;
  refused: Record<string, number>;
  tails: number;
  answeredLate: number;
  replayed: number;
  passes: Record<string, number>;
  counters: Record<string, number>;
  sunk: number;
}

/** Bytes the DSR has taken from server1 (acknowledged to its smbd) on its client connections' backend sockets so far. */
async function takenFromServer1(lab: LabStatus): Promise<number> {
  const ns = lab.servers.find((s) => s.name === 'server1')!.namespace;
  const r = await run('ip', ['netns', 'exec', ns, 'ss', '-Htni', 'state', 'established', '( sport = :445 )']);
  const lines = r.out.split('\n');
  let n = 0;
  lines.forEach((l, i) => {
    // A socket's line, then its info line; the health probes come from their own address.
    if (!l.includes(`${ADDRESSES.dsrStorage}:`)) return;
    const acked = /bytes_acked:(\d+)/.exec(lines[i + 1] ?? '');
    if (acked) n += Number(acked[1]);
  });
  return n;
}

/** The DSR's warnings and errors so far, for a failure's message. */
const warnings = (lab: LabStatus) =>
  readFileSync(lab.dsr.logFile, 'utf8')
    .split('\n')
    .filter((l) => /"level":(40|50)/.test(l))
    .join('\n');

async function relayView(lab: LabStatus): Promise<RelayView> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'offload', 'show', '--json', '--socket', lab.dsr.adminSocket]);
  return (JSON.parse(stdout) as { relay: RelayView }).relay;
}

describe('the kernel SMB2 relay through the DSR (lab)', { skip }, () => {
  let lab: LabStatus;

  after(async () => {
    await labDown(name);
  });

  test('a 1 GiB put and get on data1: at least 99% of the READ/WRITE messages forwarded by the kernel, the bytes intact', { timeout: 300_000 }, async (t) => {
    // No rebalancing: the gets and puts on server1 would have it move san off server1 at the
    // next minute's tick, in the middle of the server1 kill below.
    lab = await labUp({ name, servers: 3, relay: 'cut-through', rebalance: false });
    const data = labDataDir(name);
    const share = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'data1')!.path;
    const src = join(data, 'src.bin');
    const back = join(data, 'back.bin');
    const sum = writeRandomFile(src, SIZE);
    const before = await relayView(lab);
    assert.equal(before.state, 'on', `the relay is loaded: ${before.reason ?? ''}`);

    const r = await smbclient(lab, 'data1', `put ${src} big.bin; get big.bin ${back}`);
    const v = await relayView(lab);
    assert.equal(r.code, 0, `${r.out}\n${warnings(lab)}\nrelay passes ${JSON.stringify(v.passes)}, counters ${JSON.stringify(v.counters)}`);
    assert.doesNotMatch(r.out, /NT_STATUS_/);
    assert.equal(sha256(join(share, 'big.bin')), sum, 'the file on the server');
    assert.equal(sha256(back), sum, 'the file back at the client');

    t.diagnostic(`relay: lent ${v.entries} time(s) (${v.sunk} with Node not reading), ${v.requests} requests and ${v.replies} replies by the kernel, ${v.userReadWrite} READ/WRITE by Node; exits ${JSON.stringify(v.exits)}; passes ${JSON.stringify(v.passes)}; counters ${JSON.stringify(v.counters)}`);
    console.log(`relay (1 GiB put + get): kernel share of READ/WRITE ${((v.kernelShare ?? 0) * 100).toFixed(2)}%, ${v.requests} requests by the kernel, ${v.userReadWrite} by Node, lent ${v.entries} time(s)`);
    // 1 GiB each way in 1 MiB messages: 2048 READ/WRITE at least.
    assert.ok(v.requests >= 2048, `the kernel forwarded the bulk (${v.requests} requests)`);
    assert.ok(v.replies >= 2048, `and its replies (${v.replies})`);
    assert.ok((v.kernelShare ?? 0) >= 0.99, `>= 99% of READ/WRITE by the kernel (${v.kernelShare})`);
    assert.ok((v.passes.command ?? 0) >= 1, 'CREATE or CLOSE passed to user space, which took the connection back');
    // Each transfer lasts seconds: Node stopped reading its sockets, and relay_events woke it at the CLOSE.
    assert.ok(v.sunk - before.sunk >= 2, `Node stopped reading the lent sockets in each transfer (${v.sunk - before.sunk})`);
    assert.equal(v.lent, 0, 'smbclient is gone: no connection left with the kernel');
    rmSync(src, { force: true });
    rmSync(back, { force: true });
  });

  test('one session lent on data1, then a share on each other server (tcon): every put and get intact', { timeout: 120_000 }, async () => {
    const data = labDataDir(name);
    const src = join(data, 'tcon.bin');
    const sum = writeRandomFile(src, 8 * MIB);
    const steps = ['data1', 'data2', 'data3'].map((s, i) => `${i ? `tcon ${s}; ` : ''}put ${src} tcon.bin; get tcon.bin ${join(data, `tcon-${s}.bin`)}`);
    const r = await smbclient(lab, 'data1', steps.join('; '));
    assert.equal(r.code, 0, r.out);
    assert.doesNotMatch(r.out, /NT_STATUS_/);
    // With strparser framing, whole 1 MiB WRITEs passed to Node through a socket still in the
    // sockhash stalled (the put to data2 timed out): what this test caught.
    for (const s of ['data1', 'data2', 'data3']) assert.equal(sha256(join(data, `tcon-${s}.bin`)), sum, s);
    rmSync(src, { force: true });
  });

  test('lent and taken back hundreds of times (CREATE+CLOSE pairs, then 4 KiB READs, one request at a time): every request is answered, every READ right', { timeout: 120_000 }, async () => {
    const share = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'data1')!.path;
    writeRandomFile(join(share, 'small.bin'), MIB);
    const before = await relayView(lab);
    // bench/throughput's worker: our SMB2 client, which compares every READ with the file on the server's disk.
    const r = await run('ip', ['netns', 'exec', lab.client.namespace, process.execPath, WORKER, lab.dsr.clientAddress, '445', 'data1', 'small.bin', join(share, 'small.bin'), String(OPS), 'dsralice', 'Alice-Pass-1']);
    assert.equal(r.code, 0, r.out);
    const got = JSON.parse(r.out) as { openClose: number[]; read4k: number[] };
    assert.deepEqual([got.openClose.length, got.read4k.length], [OPS, OPS]);
    const v = await relayView(lab);
    // A CREATE or CLOSE takes the connection back and its answer lends it again, unless the next
    // request came first: a race in either step loses a request.
    assert.ok(v.entries - before.entries >= OPS, `lent ${v.entries - before.entries} times`);
    assert.ok(v.requests - before.requests >= OPS, `the READs went through the kernel (${v.requests - before.requests} requests)`);
  });

  test('let go in the middle of a message (a 1 MiB READ under way, then an ECHO), 200 times: every READ right, every reply in order', { timeout: 120_000 }, async (t) => {
    const share = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'data1')!.path;
    writeRandomFile(join(share, 'tails.bin'), 16 * MIB);
    const before = await relayView(lab);
    const r = await run('ip', ['netns', 'exec', lab.client.namespace, process.execPath, TAIL_WORKER, lab.dsr.clientAddress, 'data1', 'tails.bin', join(share, 'tails.bin'), '200', 'dsralice', 'Alice-Pass-1']);
    assert.equal(r.code, 0, r.out);
    const v = await relayView(lab);
    // How often the timing landed mid-message varies; that it was survived is what is checked.
    t.diagnostic(`lent ${v.entries - before.entries} times, ${v.tails - before.tails} take-back(s) mid-message`);
    assert.ok(v.requests - before.requests >= 20, `READs went through the kernel (${v.requests - before.requests})`);
  });

  test('a CHANGE_NOTIFY pending on the share root (as Explorer keeps one) while the client reads 64 MiB: the kernel forwards the READs, and the NOTIFY completes, and is cancelled, with its own AsyncId', { timeout: 120_000 }, async (t) => {
    const share = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'data1')!.path;
    writeRandomFile(join(share, 'notify.bin'), 16 * MIB);
    const before = await relayView(lab);
    const r = await run('ip', ['netns', 'exec', lab.client.namespace, process.execPath, TAIL_WORKER, lab.dsr.clientAddress, 'data1', 'notify.bin', join(share, 'notify.bin'), '64', 'dsralice', 'Alice-Pass-1', 'notify']);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(JSON.parse(r.out), { rounds: 64, notified: 'STATUS_SUCCESS', cancelled: 'STATUS_CANCELLED' });
    const v = await relayView(lab);
    const byNode = v.userReadWrite - before.userReadWrite;
    t.diagnostic(`lent ${v.entries - before.entries} times, ${v.requests - before.requests} requests by the kernel, ${byNode} READs by Node; exits ${JSON.stringify(v.exits)}`);
    // 81 READs in all; Node forwards the few that beat a lend (none, usually).
    assert.ok(byNode <= 8, `the READs went through the kernel, not Node (${byNode} by Node)`);
    assert.ok(v.requests - before.requests >= 73, `the kernel forwarded the READs (${v.requests - before.requests})`);
  });

  test('a client behind in reading (Node answers READs into a full socket, then the connection is quiet), 48 rounds: every READ right', { timeout: 120_000 }, async (t) => {
    const share = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'data1')!.path;
    writeRandomFile(join(share, 'lag.bin'), 16 * MIB);
    const before = await relayView(lab);
    // The client's socket takes 128 KiB at most: stopped, it leaves Node's answers queued at the
    // DSR, where a few 1 MiB ones fill the send buffer (the kernel's 2 x 2 MiB).
    const sysctl = (...a: string[]) => run('ip', ['netns', 'exec', lab.client.namespace, 'sysctl', '-n', ...a]);
    const rmem = (await sysctl('net.ipv4.tcp_rmem')).out.trim().split(/\s+/).join(' ');
    assert.equal((await sysctl('-w', 'net.ipv4.tcp_rmem=4096 65536 131072')).code, 0);
    const r = await run('ip', ['netns', 'exec', lab.client.namespace, process.execPath, TAIL_WORKER, lab.dsr.clientAddress, 'data1', 'lag.bin', join(share, 'lag.bin'), '48', 'dsralice', 'Alice-Pass-1', 'lag']).finally(() =>
      sysctl('-w', `net.ipv4.tcp_rmem=${rmem}`),
    );
    assert.equal(r.code, 0, r.out);
    const v = await relayView(lab);
    t.diagnostic(`lent ${v.entries - before.entries} times, ${v.requests - before.requests} requests by the kernel, ${v.userReadWrite - before.userReadWrite} READs by Node`);
    assert.ok(v.entries - before.entries >= 10, `lent again after the lagging rounds (${v.entries - before.entries} times)`);
  });

  test('a lent client that stops reading with 160 MiB of READs out: the kernel forwards at most relay.maxQueuedBytes it cannot take, the DSR takes the connection back, and the server waits; every READ right after', { timeout: 120_000 }, async (t) => {
    const share = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'data1')!.path;
    writeRandomFile(join(share, 'behind.bin'), 32 * MIB);
    const before = await relayView(lab);
    const p = spawn('ip', ['netns', 'exec', lab.client.namespace, process.execPath, BACKPRESSURE_WORKER, lab.dsr.clientAddress, 'data1', 'behind.bin', join(share, 'behind.bin'), 'dsralice', 'Alice-Pass-1', 'read-lent', '160'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const { next } = childLines(p, 'the worker');
    try {
      assert.equal(await next(), 'ready');
      const taken0 = await takenFromServer1(lab);
      p.stdin!.write('\n');
      assert.equal(await next(), 'stalled');
      // Until the DSR stops taking (or 5 s).
      let taken = taken0;
      for (let i = 0; i < 25; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const now = await takenFromServer1(lab);
        if (now === taken && i >= 5) break;
        taken = now;
      }
      const mid = await relayView(lab);
      p.stdin!.write('\n');
      assert.deepEqual(JSON.parse(await next()), { done: 160 });
      const stalledMiB = (taken - taken0) / MIB;
      t.diagnostic(`with 160 MiB of READs owed to a stopped client, the DSR took ${stalledMiB.toFixed(1)} MiB from server1; passes 'behind' ${(mid.passes.behind ?? 0) - (before.passes.behind ?? 0)}; requests by the kernel ${mid.requests - before.requests}`);
      assert.ok((mid.passes.behind ?? 0) > (before.passes.behind ?? 0), `a response passed because the client was behind (${JSON.stringify(mid.passes)})`);
      // relay.maxQueuedBytes (32 MiB) in the client's psock queue, plus the sockets' buffers on the
      // way and Node's backlog: well under the 160 MiB the credits allowed.
      assert.ok(stalledMiB < 100, `the DSR took ${stalledMiB.toFixed(1)} MiB from server1 for a client that reads nothing`);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });

  test('with signing required the transfer goes through user space, and the DSR says why', { timeout: 120_000 }, async () => {
    const data = labDataDir(name);
    const src = join(data, 'signed.bin');
    const back = join(data, 'signed-back.bin');
    const sum = writeRandomFile(src, 32 * MIB);
    const before = await relayView(lab);
    const r = await smbclient(lab, 'data2', `put ${src} signed.bin; get signed.bin ${back}`, ['--client-protection=sign']);
    assert.equal(r.code, 0, r.out);
    assert.equal(sha256(back), sum);
    const v = await relayView(lab);
    assert.equal(v.entries, before.entries, 'never lent to the kernel');
    assert.ok(v.userReadWrite - before.userReadWrite >= 64, 'Node forwarded the READ/WRITE');
    assert.ok((v.refused['a session signs or encrypts'] ?? 0) > (before.refused['a session signs or encrypts'] ?? 0), `the reason is counted: ${JSON.stringify(v.refused)}`);
    rmSync(src, { force: true });
    rmSync(back, { force: true });
  });

  // Last: it kills server1's smbd.
  test('dsr offload relay off under a 256 MiB get whose client has stopped reading returns at once; the get goes on when the client does, the bytes intact; then on again', { timeout: 120_000 }, async () => {
    const data1 = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'data1')!.path;
    const back = join(labDataDir(name), 'off-back.bin');
    const sum = writeRandomFile(join(data1, 'off.bin'), 256 * MIB);
    let client: ChildProcess | undefined;
    const get = smbclient(lab, 'data1', `get off.bin ${back}`, [], (p) => (client = p));
    await holds(back, 16 * MIB);
    const relay = (mode: string) => promisify(execFile)(process.execPath, [CLI, 'offload', 'relay', mode, '--json', '--socket', lab.dsr.adminSocket]);
    // The kernel's replies fill the client's socket while it is stopped (a laptop's lid shut):
    // turning the relay off takes the connection back without waiting for the client; its
    // sockets stay in the relay's sockhash, which goes once the connection ends.
    client!.kill('SIGSTOP');
    try {
      assert.equal((await relayView(lab)).lent, 1, 'the get is lent to the kernel');
      assert.equal((JSON.parse((await relay('off')).stdout) as { state: string }).state, 'off');
      await new Promise((resolve) => setTimeout(resolve, 2000));
    } finally {
      client!.kill('SIGCONT');
    }
    const g = await get;
    assert.equal(g.code, 0, `${g.out}\n${warnings(lab)}`);
    assert.equal(sha256(back), sum);
    assert.doesNotMatch(warnings(lab), /conn\.closed/);
    assert.equal((JSON.parse((await relay('cut-through')).stdout) as { state: string }).state, 'on');
    assert.equal((await relayView(lab)).state, 'on');
    rmSync(back, { force: true });
  });

  test('server1 killed under a 256 MiB put and a 256 MiB get on san, both lent: the requests the kernel forwarded go again from its journal to server2, the bytes intact', { timeout: 180_000 }, async (t) => {
    const data = labDataDir(name);
    const san = lab.servers.find((s) => s.name === 'server1')!.shares.find((s) => s.name === 'san')!.path;
    const src = join(data, 'fail-src.bin');
    const back = join(data, 'fail-back.bin');
    const putSum = writeRandomFile(src, 256 * MIB);
    const getSum = writeRandomFile(join(san, 'fail-get.bin'), 256 * MIB);
    const before = await relayView(lab);
    const put = smbclient(lab, 'san', `put ${src} fail-put.bin`);
    const get = smbclient(lab, 'san', `get fail-get.bin ${back}`);
    // Both under way (the relay moves 256 MiB in well under a second): a fixed wait missed them.
    await holds(join(san, 'fail-put.bin'), 16 * MIB);
    await holds(back, 16 * MIB);
    // Hung first, so the requests the clients send on find no answer (killed at once, the server
    // had sometimes answered every request the kernel had forwarded).
    labFreeze(name, 'server1');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await labFail(name, 'server1', 'kill');
    const [p, g] = await Promise.all([put, get]);
    const v = await relayView(lab);
    t.diagnostic(`replayed ${v.replayed - before.replayed}, answered late ${v.answeredLate - before.answeredLate}, exits ${JSON.stringify(v.exits)}`);
    assert.equal(p.code, 0, `${p.out}\n${warnings(lab)}`);
    assert.equal(g.code, 0, `${g.out}\n${warnings(lab)}`);
    assert.doesNotMatch(p.out + g.out, /NT_STATUS_/);
    assert.equal(sha256(join(san, 'fail-put.bin')), putSum, 'the put, on the shared disk');
    assert.equal(sha256(back), getSum, 'the get, back at the client');
    // Both transfers stream with several requests in flight: the kill finds some in the kernel.
    assert.ok(v.replayed > before.replayed, `requests sent again from the journal (${v.replayed - before.replayed})`);
    assert.doesNotMatch(readFileSync(lab.dsr.logFile, 'utf8'), /were lost with server1|still forwarding were lost/);
    rmSync(src, { force: true });
    rmSync(back, { force: true });
  });
});
