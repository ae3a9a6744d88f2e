/**
 * Network namespace plumbing: named namespaces (`ip netns`), links and addresses (`ip -batch`),
 * nftables counters, listening sockets, and which processes live in a namespace. Commands run
 * inside a namespace through `nsenter --net`, which, unlike `ip netns exec`, leaves the mount
 * namespace (and so /sys) alone.
 */
import { readdirSync, statSync } from 'node:fs';
import { DsrError, ErrorCode, errorMessage } from '../control/errors.js';
import { fileTail, must, pidAlive, run, spawnDetached, waitUntil, type RunOptions, type RunResult } from './process.js';

export function netnsPath(ns: string): string {
  return `/run/netns/${ns}`;
}

/** argv that runs `argv` inside namespace `ns`. */
export function inNetns(ns: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv];
}

export function runIn(ns: string, argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run(inNetns(ns, argv), opts);
}

function nsIdentity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

export function netnsExists(ns: string): boolean {
  return nsIdentity(netnsPath(ns)) !== undefined;
}

export async function addNetns(ns: string, signal?: AbortSignal): Promise<void> {
  await must(`create namespace ${ns}`, ['ip', 'netns', 'add', ns], { signal });
}

/** Removes the name; the kernel frees the namespace (and its veth ends) once no process holds it. */
export async function deleteNetns(ns: string): Promise<void> {
  if (!netnsExists(ns)) return;
  const r = await run(['ip', 'netns', 'delete', ns]);
  if (r.code !== 0 && netnsExists(ns)) {
    throw new DsrError(ErrorCode.LAB, `delete namespace ${ns}: ip netns delete exited ${r.code}: ${r.stderr.trim()}`);
  }
}

/** Runs `ip` commands (one per line, without the leading `ip`) in one process inside `ns`; stops at the first error. */
export async function ipBatch(ns: string, step: string, lines: readonly string[], signal?: AbortSignal): Promise<void> {
  await must(step, ['ip', '-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n', signal });
}

export async function setSysctl(ns: string, key: string, value: string, signal?: AbortSignal): Promise<void> {
  // /proc/sys/net is per network namespace, resolved against the writer's own namespace.
  await must(`set ${key} in ${ns}`, inNetns(ns, ['sysctl', '-qw', `${key}=${value}`]), { signal });
}

function parseJson(what: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DsrError(ErrorCode.LAB, `${what}: unparsable JSON: ${errorMessage(e)}`);
  }
}

/** Link name -> carrier (LOWER_UP) for every link in `ns`. */
export async function linkCarriers(ns: string): Promise<Map<string, boolean>> {
  const doc = parseJson(`ip -n ${ns} -j link`, await must(`list links in ${ns}`, ['ip', '-n', ns, '-j', 'link', 'show']));
  const links = new Map<string, boolean>();
  if (!Array.isArray(doc)) return links;
  for (const l of doc as { ifname?: unknown; flags?: unknown }[]) {
    if (typeof l?.ifname === 'string') links.set(l.ifname, Array.isArray(l.flags) && l.flags.includes('LOWER_UP'));
  }
  return links;
}

export interface PacketCounter {
  packets: number;
  bytes: number;
}

/** Loads an nftables script (`nft -f -`) inside `ns`. */
export async function nftLoad(ns: string, step: string, script: string, signal?: AbortSignal): Promise<void> {
  await must(step, inNetns(ns, ['nft', '-f', '-']), { input: script, signal });
}

/**
 * Chain name -> the sum of the anonymous counters in its rules, from `nft -j list table netdev`.
 * The JSON shape (libnftables-json(5)): { nftables: [ { rule: { chain, expr: [ ..., { counter: { packets, bytes } } ] } } ] }.
 */
export async function nftChainCounters(ns: string, table: string): Promise<Map<string, PacketCounter>> {
  const text = await must(`read counters in ${ns}`, inNetns(ns, ['nft', '-j', 'list', 'table', 'netdev', table]));
  const doc = parseJson(`nft -j list table netdev ${table}`, text) as { nftables?: unknown };
  const counters = new Map<string, PacketCounter>();
  if (!Array.isArray(doc?.nftables)) return counters;
  for (const item of doc.nftables as { rule?: { chain?: unknown; expr?: unknown } }[]) {
    const rule = item?.rule;
    if (typeof rule?.chain !== 'string' || !Array.isArray(rule.expr)) continue;
    const sum = counters.get(rule.chain) ?? { packets: 0, bytes: 0 };
    for (const e of rule.expr as { counter?: { packets?: unknown; bytes?: unknown } }[]) {
      if (typeof e?.counter?.packets === 'number' && typeof e.counter.bytes === 'number') {
        sum.packets += e.counter.packets;
        sum.bytes += e.counter.bytes;
      }
    }
    counters.set(rule.chain, sum);
  }
  return counters;
}

/** True when something in `ns` listens on TCP `port` at `address` or at a wildcard address. */
export async function tcpListening(ns: string, port: number, address?: string): Promise<boolean> {
  const r = await runIn(ns, ['ss', '-ltnH', `sport = :${port}`]);
  if (r.code !== 0) return false;
  const wanted = address === undefined ? undefined : new Set([`${address}:${port}`, `0.0.0.0:${port}`, `*:${port}`, `[::]:${port}`]);
  // Columns: State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
  return r.stdout.split('\n').some((line) => {
    const local = line.trim().split(/\s+/)[3];
    return local !== undefined && (wanted === undefined || wanted.has(local));
  });
}

/** PIDs of every process whose network namespace is `ns` (what `ip netns pids` reports). */
export function netnsPids(ns: string): number[] {
  const id = nsIdentity(netnsPath(ns));
  if (id === undefined) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (nsIdentity(`/proc/${entry}/ns/net`) === id) pids.push(Number(entry));
  }
  return pids;
}

/** True when process `pid` exists and lives in namespace `ns`. */
export function pidInNetns(pid: number, ns: string): boolean {
  const id = nsIdentity(netnsPath(ns));
  return id !== undefined && nsIdentity(`/proc/${pid}/ns/net`) === id;
}

export interface DaemonSpec {
  /** Names the daemon in errors: 'start server1: ...'. */
  what: string;
  namespace: string;
  argv: readonly string[];
  /** Receives the daemon's stdout and stderr. */
  outFile: string;
  /** The daemon is ready once it listens on this TCP port (at `address`, or anywhere). */
  port: number;
  address?: string;
  timeoutMs: number;
  /** Files whose last lines explain a failed start, by label; the output file is added. */
  logs: Record<string, string>;
  signal?: AbortSignal;
}

/** Starts a daemon detached inside its namespace and waits until it listens; returns its PID. */
export async function startDaemon(spec: DaemonSpec): Promise<number> {
  const pid = spawnDetached(inNetns(spec.namespace, spec.argv), spec.outFile);
  const failed = (why: string) => {
    const logs = Object.entries({ ...spec.logs, output: spec.outFile }).map(([label, path]) => `${label}: ${fileTail(path) || '(missing)'}`);
    return new DsrError(ErrorCode.LAB, `start ${spec.what}: ${why}; ${logs.join('; ')}`);
  };
  const where = `${spec.address ?? '*'}:${spec.port}`;
  const ready = await waitUntil(
    async () => {
      if (!pidAlive(pid)) throw failed(`pid ${pid} exited`);
      return tcpListening(spec.namespace, spec.port, spec.address);
    },
    spec.timeoutMs,
    50,
    spec.signal,
  );
  if (!ready) throw failed(`pid ${pid} did not listen on ${where} within ${spec.timeoutMs} ms`);
  return pid;
}
