/**
 * bench/kernel-relay: the kernel SMB2 relay's designs against direct and HAProxy, in one run.
 *
 *   client ──────────── dsr namespace (routing, `labDirectPath`) ──────────── server1:445   direct
 *   client ── 198.18.0.1:4445  haproxy (mode tcp, 1 thread) ─────────────────── server1:445   haproxy
 *   client ── 198.18.0.1:44xx  bench/kernel-relay/build/relay -m ... ────────── server1:445   one per variant
 *
 * Every relay variant is its own process on its own port (bench/kernel-relay/relay.c): user
 * space relays NEGOTIATE/SESSION_SETUP/TREE_CONNECT, then the sockets go into the sockhash and
 * the sk_skb programs rewrite SessionId/TreeId/MessageId with identity rules looked up per
 * message. Runs visit the paths in turn (drift hits them alike); per path and run: a put and a
 * get of one random file (smbclient, SMB 3.0.2 so the relays' NEGOTIATE rewrite does not break
 * 3.1.1's preauth hash; sha256 of what came back), then small-op latency with
 * bench/throughput-worker (CREATE+CLOSE pairs, 4 KiB READs). CPU: the whole machine's busy time
 * from /proc/stat, and the same minus the background load measured just before the transfer
 * (the machine is shared); the relay process's own time from /proc/PID/stat.
 *
 *   node dist/bench/kernel-relay/bench.js [--size-mib 1024] [--runs 3] [--ops 500] [--name LAB]
 *        [--only id,id] [--keep] [--json]
 *
 * Needs root and `make -C bench/kernel-relay` first. Brings up (and tears down) its own lab
 * unless --name names one that is up.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DsrError, ErrorCode, errorMessage } from '../../src/control/errors.js';
import { component, createLogger } from '../../src/control/log.js';
import { labDirectPath, labDown, labStatus, labUp, type LabStatus } from '../../src/lab/lab.js';
import { netnsPids, runIn, startDaemon } from '../../src/lab/netns.js';
import { killPids } from '../../src/lab/process.js';
import { labStateDir } from '../../src/lab/topology.js';
import { sha256File, writeRandomFile } from '../lib/files.js';
import { clockTicks, processSeconds, systemBusySeconds } from '../lib/cpu.js';
import { startHaproxy } from '../lib/haproxy.js';
import { latency, median, table } from '../lib/throughput-report.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** dist/bench/kernel-relay -> the source tree's bench/kernel-relay/build. */
const BUILD = `${HERE}../../../bench/kernel-relay/build`;
const WORKER = fileURLToPath(new URL('../throughput-worker.js', import.meta.url));
const SHARE = 'data1';
const SMALL_FILE = 'rl-bench-small.bin';
const GIB = 2 ** 30;
const MIB32 = String(32 << 20);
const SMB_OPTS = ['--option=client max protocol=SMB3_02'];

/** The relay variants: id, harness flags, what it shows. */
const VARIANTS: { id: string; port: number; args: string[]; what: string }[] = [
  { id: 'user', port: 4450, args: ['-m', 'user'], what: 'the harness copying every byte in user space (epoll, read/write)' },
  { id: 'parser-64k', port: 4451, args: ['-m', 'parser', '-x', '65536', '-b', MIB32], what: 'strparser, MaxRead/Write 64 KiB' },
  { id: 'parser-256k', port: 4452, args: ['-m', 'parser', '-x', '262144', '-b', MIB32], what: 'strparser, 256 KiB' },
  { id: 'parser-1m', port: 4453, args: ['-m', 'parser', '-x', '1048576', '-b', MIB32], what: 'strparser, 1 MiB' },
  { id: 'parser-8m', port: 4454, args: ['-m', 'parser', '-b', MIB32], what: "strparser, smbd's own 8 MiB" },
  { id: 'cut', port: 4455, args: ['-m', 'cut'], what: 'verdict-only cut-through, default socket buffers' },
  { id: 'cut-32m', port: 4456, args: ['-m', 'cut', '-b', MIB32], what: 'cut-through, 32 MiB socket buffers' },
  { id: 'cut-32m-1m', port: 4458, args: ['-m', 'cut', '-b', MIB32, '-x', '1048576'], what: 'cut-through, 32 MiB, MaxRead/Write 1 MiB' },
  { id: 'cut-32m-norw', port: 4457, args: ['-m', 'cut', '-b', MIB32, '-n'], what: 'cut-through, 32 MiB, framing only (no id lookups or writes)' },
];

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    runs: { type: 'string', default: '3' },
    ops: { type: 'string', default: '500' },
    name: { type: 'string' },
    only: { type: 'string' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

const name = values.name ?? `rl${randomBytes(2).toString('hex')}`;
const log = component(createLogger('info'), 'bench', { bench: 'kernel-relay', lab: name });
const stop = new AbortController();

interface Sample {
  mbps: number;
  systemCpuPerGiB: number;
  /** System CPU minus the background rate measured before the transfer, times its duration. */
  netCpuPerGiB: number;
  /** CPU of the lab's own tasks and of every kernel thread: see labCpuSeconds. */
  labCpuPerGiB: number;
  backgroundCores: number;
  relayCpuPerGiB?: number;
}

interface Path {
  id: string;
  host: string;
  port: number;
  what: string;
  pid?: number;
  outFile?: string;
  enter?: () => Promise<void>;
  leave?: () => Promise<void>;
  put: Sample[];
  get: Sample[];
  sha256: string[];
  openClose: number[];
  read4k: number[];
  /** The relay's last close line: kernel counters of the last connection. */
  counters?: Record<string, unknown>;
  errors: string[];
}

/** utime, stime, cutime, cstime of /proc/PID/stat, in ticks; 0 when the task is gone. */
function taskTicks(pid: number | 'self', children: boolean): { ticks: number; ppid: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const own = Number(f[11]) + Number(f[12]);
    return { ticks: own + (children ? Number(f[13]) + Number(f[14]) : 0), ppid: Number(f[1]) };
  } catch {
    return { ticks: 0, ppid: -1 };
  }
}

/**
 * The CPU a transfer costs, counted so other work on this shared machine stays out: the lab's
 * server and dsr namespaces' tasks (their reaped children included: smbd forks per connection),
 * this process's reaped children (smbclient), and every kernel thread (kworkers run sockmap's
 * redirects; ksoftirqd). Without IRQ time accounting (this kernel), softirq time is charged to
 * whichever task the tick interrupts, so softirq that lands on another helper's task is missed.
 */
function labCpuSeconds(hz: number, namespaces: string[]): number {
  let ticks = taskTicks('self', true).ticks - taskTicks('self', false).ticks;
  for (const ns of namespaces) for (const pid of netnsPids(ns)) ticks += taskTicks(pid, true).ticks;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const t = taskTicks(Number(entry), false);
    if (t.ppid === 2) ticks += t.ticks;
  }
  return ticks / hz;
}

function smbclientMBps(output: string): number | undefined {
  const m = /\(([\d.]+) (?:kb\/s|KiloBytes\/sec)\)/.exec(output);
  return m ? (Number(m[1]) * 1024) / 1e6 : undefined;
}

function lastCloseLine(file: string): Record<string, unknown> | undefined {
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{'));
  const last = lines.at(-1);
  return last ? (JSON.parse(last) as Record<string, unknown>) : undefined;
}

async function main(): Promise<number> {
  const sizeMiB = Number(values['size-mib']);
  const runs = Number(values.runs);
  const ops = Number(values.ops);
  if (process.getuid?.() !== 0) throw new DsrError(ErrorCode.USAGE, 'needs root: it builds a network-namespace lab');
  for (const f of ['relay', 'smb2_relay.bpf.o']) {
    if (!existsSync(`${BUILD}/${f}`)) throw new DsrError(ErrorCode.USAGE, `${BUILD}/${f} is missing: run make -C bench/kernel-relay`);
  }
  const existing = values.name !== undefined ? await labStatus(name) : undefined;
  const reused = existing?.up === true;
  const lab: LabStatus = reused ? existing! : await labUp({ name, servers: 1, dsr: false, log, signal: stop.signal });
  try {
    return await bench(lab, sizeMiB, runs, ops);
  } finally {
    if (!reused && !values.keep) await labDown(name, log);
  }
}

async function bench(lab: LabStatus, sizeMiB: number, runs: number, ops: number): Promise<number> {
  const hz = await clockTicks();
  const sizeBytes = sizeMiB * 2 ** 20;
  const server = lab.servers[0]!;
  const share = server.shares.find((s) => s.name === SHARE)!;
  const user = lab.users[0]!;
  // tmpfs for the client's files, so the client's disk is not what is measured.
  const work = `/dev/shm/rl-bench-${name}`;
  mkdirSync(work, { recursive: true });
  const source = `${work}/source.bin`;
  const sha256 = writeRandomFile(source, sizeBytes);
  writeRandomFile(`${share.path}/${SMALL_FILE}`, 1 << 20);
  const only = values.only?.split(',');
  const wanted = (id: string) => !only || only.includes(id);
  const wasDirect = lab.dsr.directPath;
  const started: number[] = [];
  const paths: Path[] = [];
  const newPath = (p: Omit<Path, 'put' | 'get' | 'sha256' | 'openClose' | 'read4k' | 'errors'>): Path => ({ ...p, put: [], get: [], sha256: [], openClose: [], read4k: [], errors: [] });
  try {
    if (wanted('direct')) {
      paths.push(
        newPath({
          id: 'direct',
          host: server.address,
          port: 445,
          what: 'routed by the dsr namespace',
          enter: () => labDirectPath(name, true),
          leave: () => (wasDirect ? Promise.resolve() : labDirectPath(name, false)),
        }),
      );
    }
    if (wanted('haproxy')) {
      const h = await startHaproxy(lab.dsr.namespace, labStateDir(name), { listenAddress: lab.dsr.clientAddress, listenPort: 4445, serverAddress: server.address, serverPort: 445 });
      started.push(h.pid);
      paths.push(newPath({ id: 'haproxy', host: lab.dsr.clientAddress, port: 4445, what: 'haproxy 2.6, mode tcp, 1 thread', pid: h.pid }));
    }
    for (const v of VARIANTS.filter((v) => wanted(v.id))) {
      const outFile = `${labStateDir(name)}/relay-${v.id}.out`;
      const pid = await startDaemon({
        what: `relay ${v.id}`,
        namespace: lab.dsr.namespace,
        argv: [`${BUILD}/relay`, '-l', String(v.port), '-s', `${server.address}:445`, '-o', `${BUILD}/smb2_relay.bpf.o`, ...v.args],
        outFile,
        port: v.port,
        timeoutMs: 20000,
        logs: {},
      });
      started.push(pid);
      paths.push(newPath({ id: v.id, host: lab.dsr.clientAddress, port: v.port, what: v.what, pid, outFile }));
    }

    const background = async (): Promise<number> => {
      const b0 = systemBusySeconds(hz);
      await new Promise((r) => setTimeout(r, 500));
      return (systemBusySeconds(hz) - b0) / 0.5;
    };

    const transfer = async (p: Path, dir: 'put' | 'get', run: number): Promise<Sample> => {
      const remote = `rl-bench-${p.id}.bin`;
      const local = dir === 'put' ? source : `${work}/got.bin`;
      const argv = ['smbclient', `//${p.host}/${SHARE}`, '-p', String(p.port), '-U', `${user.name}%${user.password}`, ...SMB_OPTS, '-c', dir === 'put' ? `put ${local} ${remote}` : `get ${remote} ${local}`];
      await runIn(lab.client.namespace, ['sync']);
      const backgroundCores = await background();
      const labNs = [lab.dsr.namespace, ...lab.servers.map((sv) => sv.namespace)];
      const lab0 = labCpuSeconds(hz, labNs);
      const t0 = process.hrtime.bigint();
      const cpu0 = systemBusySeconds(hz);
      const relay0 = p.pid === undefined ? undefined : processSeconds(p.pid, hz);
      const r = await runIn(lab.client.namespace, argv, { timeoutMs: 120_000 + sizeMiB * 1000, signal: stop.signal });
      const cpu1 = systemBusySeconds(hz);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const relay1 = p.pid === undefined ? undefined : processSeconds(p.pid, hz);
      const lab1 = labCpuSeconds(hz, labNs);
      const mbps = smbclientMBps(r.stdout + r.stderr);
      if (r.code !== 0 || mbps === undefined) throw new DsrError(ErrorCode.LAB, `${dir} run ${run}: smbclient exited ${r.code}: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' / ')}`);
      if (dir === 'put' && statSync(`${share.path}/${remote}`).size !== sizeBytes) throw new DsrError(ErrorCode.LAB, `put run ${run}: ${remote} is not ${sizeBytes} bytes`);
      if (dir === 'get') {
        p.sha256.push(await sha256File(local));
        rmSync(local, { force: true });
      }
      const gib = sizeBytes / GIB;
      const s: Sample = { mbps, backgroundCores, systemCpuPerGiB: (cpu1 - cpu0) / gib, netCpuPerGiB: (cpu1 - cpu0 - backgroundCores * seconds) / gib, labCpuPerGiB: (lab1 - lab0) / gib };
      if (relay0 !== undefined && relay1 !== undefined) s.relayCpuPerGiB = (relay1 - relay0) / gib;
      if (p.outFile) p.counters = lastCloseLine(p.outFile);
      log.info({ event: 'bench.transfer', path: p.id, dir, run, mbps: Math.round(mbps), sysCpuPerGiB: Number(s.systemCpuPerGiB.toFixed(2)), bg: Number(backgroundCores.toFixed(2)) });
      return s;
    };

    const smallOps = async (p: Path): Promise<void> => {
      const argv = [process.execPath, WORKER, p.host, String(p.port), SHARE, SMALL_FILE, `${share.path}/${SMALL_FILE}`, String(ops), user.name, user.password];
      const r = await runIn(lab.client.namespace, argv, { timeoutMs: 120_000 + ops * 100, signal: stop.signal });
      if (r.code !== 0) throw new DsrError(ErrorCode.LAB, `small ops: ${r.stderr.trim() || r.stdout.trim()}`);
      const s = JSON.parse(r.stdout) as { openClose: number[]; read4k: number[] };
      p.openClose.push(...s.openClose);
      p.read4k.push(...s.read4k);
    };

    for (let run = 1; run <= runs; run++) {
      for (const p of paths) {
        if (p.errors.length) continue;
        await p.enter?.();
        try {
          p.put.push(await transfer(p, 'put', run));
          p.get.push(await transfer(p, 'get', run));
          await smallOps(p);
        } catch (e) {
          if (stop.signal.aborted) throw e;
          p.errors.push(errorMessage(e));
          log.warn({ event: 'bench.path.failed', path: p.id, err: errorMessage(e) });
        } finally {
          await p.leave?.();
        }
      }
    }
    return report(paths, { sizeMiB, runs, ops, sha256 });
  } finally {
    await killPids(started);
    if (!wasDirect) await labDirectPath(name, false).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
    for (const p of paths) rmSync(`${share.path}/rl-bench-${p.id}.bin`, { force: true });
    rmSync(`${share.path}/${SMALL_FILE}`, { force: true });
  }
}

function report(paths: Path[], meta: { sizeMiB: number; runs: number; ops: number; sha256: string }): number {
  const med = (xs: number[]) => (xs.length ? median(xs) : NaN);
  const rows = paths.map((p) => ({
    id: p.id,
    what: p.what,
    put: med(p.put.map((s) => s.mbps)),
    get: med(p.get.map((s) => s.mbps)),
    putRuns: p.put.map((s) => Math.round(s.mbps)),
    getRuns: p.get.map((s) => Math.round(s.mbps)),
    sysPut: med(p.put.map((s) => s.systemCpuPerGiB)),
    sysGet: med(p.get.map((s) => s.systemCpuPerGiB)),
    netPut: med(p.put.map((s) => s.netCpuPerGiB)),
    netGet: med(p.get.map((s) => s.netCpuPerGiB)),
    labPut: med(p.put.map((s) => s.labCpuPerGiB)),
    labGet: med(p.get.map((s) => s.labCpuPerGiB)),
    bg: med([...p.put, ...p.get].map((s) => s.backgroundCores)),
    relayPut: med(p.put.flatMap((s) => (s.relayCpuPerGiB === undefined ? [] : [s.relayCpuPerGiB]))),
    relayGet: med(p.get.flatMap((s) => (s.relayCpuPerGiB === undefined ? [] : [s.relayCpuPerGiB]))),
    openClose: latency(p.openClose)?.p50 ?? NaN,
    read4k: latency(p.read4k)?.p50 ?? NaN,
    intact: p.sha256.every((h) => h === meta.sha256),
    counters: p.counters,
    errors: p.errors,
  }));
  const direct = rows.find((r) => r.id === 'direct');
  const ratio = (x: number, d: number | undefined) => (d === undefined || !Number.isFinite(x) || !Number.isFinite(d) ? '' : ` (${(x / d).toFixed(2)})`);
  const n = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...meta, rows }, null, 2) + '\n');
  } else {
    const out: string[] = [];
    out.push(`kernel-relay bench: ${meta.sizeMiB} MiB put+get, medians of ${meta.runs} (one run, paths interleaved), ${meta.ops} small ops per run; SMB 3.0.2 via smbclient`);
    out.push(
      table([
        ['path', 'put MB/s (÷direct)', 'get MB/s (÷direct)', 'sys CPU s/GiB put/get', 'net of bg put/get', 'lab CPU s/GiB put/get', 'relay CPU s/GiB put/get', 'bg cores', 'p50 open+close µs', 'p50 read 4K µs', 'sha256'],
        ...rows.map((r) => [
          r.id,
          `${n(r.put)}${ratio(r.put, direct?.put)}`,
          `${n(r.get)}${ratio(r.get, direct?.get)}`,
          `${n(r.sysPut, 2)} / ${n(r.sysGet, 2)}`,
          `${n(r.netPut, 2)} / ${n(r.netGet, 2)}`,
          `${n(r.labPut, 2)} / ${n(r.labGet, 2)}`,
          `${n(r.relayPut, 2)} / ${n(r.relayGet, 2)}`,
          n(r.bg, 2),
          `${n(r.openClose)}${ratio(r.openClose, direct?.openClose)}`,
          `${n(r.read4k)}${ratio(r.read4k, direct?.read4k)}`,
          r.intact ? 'ok' : 'MISMATCH',
        ]),
      ]),
    );
    out.push('runs (MB/s): ' + rows.map((r) => `${r.id} put ${r.putRuns.join('/')} get ${r.getRuns.join('/')}`).join('; '));
    for (const r of rows) {
      if (r.counters) out.push(`${r.id} last connection: ${JSON.stringify(r.counters)}`);
      if (r.errors.length) out.push(`${r.id} errors: ${r.errors.join('; ')}`);
    }
    process.stdout.write(out.join('\n') + '\n');
  }
  return rows.every((r) => r.intact) ? 0 : 2;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort(new DsrError(ErrorCode.LAB, `interrupted by ${sig}`)));

try {
  process.exitCode = await main();
} catch (e) {
  process.stderr.write(`bench/kernel-relay: ${errorMessage(e)}\n`);
  process.exitCode = 1;
}
