/**
 * bench/throughput's result: what each path measured, the ratios to the direct path, the
 * issue's goals, and the text table. Pure, so the lab test can render a real run's JSON and
 * check that every row is there.
 */

/** The ways from the client to server1's data1, in the order they are printed (dsr-relay: the DSR with its kernel relay on; bench/throughput's VISIT is the order it measures them in). */
export const PATH_IDS = ['direct', 'haproxy', 'dsr', 'dsr-relay'] as const;
export type PathId = (typeof PATH_IDS)[number];

/** Issue 4 item 6: the user-space DSR path keeps this share of direct throughput... */
export const GOAL_MIN_THROUGHPUT_RATIO = 0.7;
/** ...and stays within this multiple of direct median latency. */
export const GOAL_MAX_LATENCY_RATIO = 1.3;
/** Issue 5: with the kernel relay, these instead, and whole-machine CPU per GiB below HAProxy's. */
export const RELAY_GOAL_MIN_THROUGHPUT_RATIO = 0.95;
export const RELAY_GOAL_MAX_LATENCY_RATIO = 1.05;
/** ...and the DSR process (Node) under this many CPU seconds per GiB moved. */
export const RELAY_GOAL_MAX_NODE_CPU_PER_GIB = 0.05;
/** Idle load (cores) above which the report warns that the machine was not quiet. */
const BUSY_MACHINE_CORES = 0.2;

export interface Latency {
  n: number;
  p50: number;
  p99: number;
}

/** One direction (put or get) over every completed run. */
export interface TransferSummary {
  /** Median of `runs`. */
  mbps: number;
  /** MB/s (10^6 bytes/s) as smbclient timed each transfer. */
  runs: number[];
  /** Medians: whole-machine busy CPU seconds per GiB moved. */
  systemCpuPerGiB: number;
  /** Cores already busy just before each transfer (median): load the bench did not cause, which systemCpuPerGiB includes. */
  backgroundCores: number;
  /** The same, per run. */
  backgroundRuns: number[];
  /** The relay process's own CPU seconds per GiB; absent on the direct path (the kernel routes). */
  relayCpuPerGiB?: number;
  /**
   * The part of relayCpuPerGiB the relay spends whether or not it moves anything: its CPU rate
   * while idle, measured just before each transfer, times the transfer's time (the DSR's health
   * probes, agent announcements and samplers). Absent on the direct path.
   */
  relayIdleCpuPerGiB?: number;
  /**
   * The DSR's BPF programs' CPU seconds per GiB (the port filter on every path, the relay's
   * verdict on dsr-relay), from their run-time stats: part of systemCpuPerGiB, most of it in
   * softirq. Absent without a DSR, or where the stats cannot be turned on.
   */
  bpfCpuPerGiB?: number;
}

export interface PathSummary {
  id: PathId;
  /** host:port the client talks to. */
  address: string;
  /** What stands between client and server. */
  via: string;
  put?: TransferSummary;
  get?: TransferSummary;
  /** sha256 of each file that came back by `get`, in run order. */
  sha256: string[];
  /** The relay process's CPU seconds for one smbclient session that moves no file (connect, logon, tree connect, ls, logoff); median. */
  relaySessionCpu?: number;
  /** Dialect of the small-op session (our SMB2 client). */
  dialect?: string;
  openClose?: Latency;
  read4k?: Latency;
  /** Why a measurement stopped; a path with errors still shows what it measured before. */
  errors: string[];
}

export interface Ratios {
  get?: number;
  put?: number;
  systemCpuGet?: number;
  systemCpuPut?: number;
  openCloseP50?: number;
  openCloseP99?: number;
  read4kP50?: number;
  read4kP99?: number;
}

export interface Goal {
  what: string;
  /** The figure held against `limit`: a ratio, or seconds per GiB for Node's CPU. */
  ratio?: number;
  limit: number;
  /** Undefined while the path has no figure for it. */
  met?: boolean;
}

export interface ThroughputReport {
  lab: string;
  sizeMiB: number;
  ops: number;
  runs: number;
  /** sha256 of the random source file every path puts and gets. */
  sha256: string;
  paths: PathSummary[];
  /** Each relayed path divided by direct. */
  ratios: Partial<Record<PathId, Ratios>>;
  goals: Partial<Record<PathId, Goal[]>>;
  /** Every `get` of every path returned the source's bytes. */
  intact: boolean;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function latency(samples: readonly number[]): Latency | undefined {
  return samples.length === 0 ? undefined : { n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? undefined : a / b);

export function ratiosToDirect(path: PathSummary, direct: PathSummary): Ratios {
  return {
    get: ratio(path.get?.mbps, direct.get?.mbps),
    put: ratio(path.put?.mbps, direct.put?.mbps),
    systemCpuGet: ratio(path.get?.systemCpuPerGiB, direct.get?.systemCpuPerGiB),
    systemCpuPut: ratio(path.put?.systemCpuPerGiB, direct.put?.systemCpuPerGiB),
    openCloseP50: ratio(path.openClose?.p50, direct.openClose?.p50),
    openCloseP99: ratio(path.openClose?.p99, direct.openClose?.p99),
    read4kP50: ratio(path.read4k?.p50, direct.read4k?.p50),
    read4kP99: ratio(path.read4k?.p99, direct.read4k?.p99),
  };
}

/**
 * A path's goals: throughput and p50 latency against direct; for the kernel relay also
 * whole-machine CPU per GiB against HAProxy's (`vsHaproxy`: this path's sys CPU over HAProxy's)
 * and the DSR process's own CPU per GiB (`nodeCpu`).
 */
export function goals(r: Ratios, relay = false, vsHaproxy?: { get?: number; put?: number }, nodeCpu?: { get?: number; put?: number }): Goal[] {
  const min = relay ? RELAY_GOAL_MIN_THROUGHPUT_RATIO : GOAL_MIN_THROUGHPUT_RATIO;
  const max = relay ? RELAY_GOAL_MAX_LATENCY_RATIO : GOAL_MAX_LATENCY_RATIO;
  const atLeast = (what: string, x: number | undefined): Goal => ({ what, ratio: x, limit: min, met: x === undefined ? undefined : x >= min });
  const atMost = (what: string, x: number | undefined): Goal => ({ what, ratio: x, limit: max, met: x === undefined ? undefined : x <= max });
  const below = (what: string, x: number | undefined): Goal => ({ what, ratio: x, limit: 1, met: x === undefined ? undefined : x < 1 });
  const list = [atLeast('get', r.get), atLeast('put', r.put), atMost('open+close p50', r.openCloseP50), atMost('4K read p50', r.read4kP50)];
  if (!relay) return list;
  const node = (what: string, x: number | undefined): Goal => ({ what, ratio: x, limit: RELAY_GOAL_MAX_NODE_CPU_PER_GIB, met: x === undefined ? undefined : x < RELAY_GOAL_MAX_NODE_CPU_PER_GIB });
  list.push(below('sys CPU get vs haproxy', vsHaproxy?.get), below('sys CPU put vs haproxy', vsHaproxy?.put), node('Node CPU get s/GiB', nodeCpu?.get), node('Node CPU put s/GiB', nodeCpu?.put));
  return list;
}

/** Adds ratios and goals for every relayed path to the measured paths. */
export function buildReport(base: Omit<ThroughputReport, 'ratios' | 'goals' | 'intact'>): ThroughputReport {
  const direct = base.paths.find((p) => p.id === 'direct');
  const ratios: ThroughputReport['ratios'] = {};
  const goalsOf: ThroughputReport['goals'] = {};
  const haproxy = base.paths.find((p) => p.id === 'haproxy');
  for (const p of base.paths) {
    if (p.id === 'direct' || !direct) continue;
    ratios[p.id] = ratiosToDirect(p, direct);
    const relay = p.id === 'dsr-relay';
    const vsHaproxy = relay && haproxy ? { get: ratio(p.get?.systemCpuPerGiB, haproxy.get?.systemCpuPerGiB), put: ratio(p.put?.systemCpuPerGiB, haproxy.put?.systemCpuPerGiB) } : undefined;
    goalsOf[p.id] = goals(ratios[p.id]!, relay, vsHaproxy, { get: p.get?.relayCpuPerGiB, put: p.put?.relayCpuPerGiB });
  }
  const intact = base.paths.every((p) => p.sha256.every((h) => h === base.sha256));
  return { ...base, ratios, goals: goalsOf, intact };
}

const DASH = '–';
const fixed = (x: number | undefined, digits: number) => (x === undefined || !Number.isFinite(x) ? DASH : x.toFixed(digits));
const pair = (a: string, b: string) => `${a}/${b}`;

/** Columns padded to their widest cell: the first left-aligned, the rest right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function goalLine(id: PathId, list: Goal[] | undefined): string {
  if (!list || list.every((g) => g.met === undefined)) return `  ${id}: pending, no figures (see errors)`;
  const parts = list.map((g) => `${g.what} ${fixed(g.ratio, 2)} ${g.met === undefined ? 'pending' : g.met ? 'ok' : 'MISSED'}`);
  return `  ${id}: ${parts.join(', ')}`;
}

export function formatReport(r: ThroughputReport): string {
  const head = [
    `bench/throughput, lab ${r.lab}: ${r.sizeMiB} MiB random file (sha256 ${r.sha256.slice(0, 16)}...), smbclient put then get,`,
    `median of ${r.runs} run(s); per run ${r.ops} CREATE+CLOSE pairs and ${r.ops} 4 KiB READs with our SMB2 client`,
  ];
  const legend = r.paths.map((p) => `  ${p.id.padEnd(8)} ${p.address}, ${p.via}${p.dialect ? `; small ops over SMB ${p.dialect}` : ''}`);
  const rows = [
    ['path', 'get MB/s', 'put MB/s', 'sys CPU s/GiB get/put', 'relay CPU s/GiB get/put', 'bpf CPU s/GiB get/put', 'open+close p50/p99 µs', '4K read p50/p99 µs', 'get sha256'],
    ...r.paths.map((p) => [
      p.id,
      fixed(p.get?.mbps, 1),
      fixed(p.put?.mbps, 1),
      pair(fixed(p.get?.systemCpuPerGiB, 2), fixed(p.put?.systemCpuPerGiB, 2)),
      pair(fixed(p.get?.relayCpuPerGiB, 2), fixed(p.put?.relayCpuPerGiB, 2)),
      pair(fixed(p.get?.bpfCpuPerGiB, 3), fixed(p.put?.bpfCpuPerGiB, 3)),
      pair(fixed(p.openClose?.p50, 0), fixed(p.openClose?.p99, 0)),
      pair(fixed(p.read4k?.p50, 0), fixed(p.read4k?.p99, 0)),
      p.sha256.length === 0 ? DASH : p.sha256.every((h) => h === r.sha256) ? `ok x${p.sha256.length}` : 'MISMATCH',
    ]),
  ];
  const ratioRows = [
    ['ratio to direct', 'get', 'put', 'sys CPU get/put', 'open+close p50/p99', '4K read p50/p99'],
    ...r.paths
      .filter((p) => p.id !== 'direct')
      .map((p) => {
        const x = r.ratios[p.id] ?? {};
        return [p.id, fixed(x.get, 2), fixed(x.put, 2), pair(fixed(x.systemCpuGet, 2), fixed(x.systemCpuPut, 2)), pair(fixed(x.openCloseP50, 2), fixed(x.openCloseP99, 2)), pair(fixed(x.read4kP50, 2), fixed(x.read4kP99, 2))];
      }),
  ];
  const goalLines = [
    `goals for the user-space path: >= ${GOAL_MIN_THROUGHPUT_RATIO.toFixed(2)} x direct throughput, <= ${GOAL_MAX_LATENCY_RATIO.toFixed(2)} x direct p50 latency;`,
    `for the kernel relay (dsr-relay): >= ${RELAY_GOAL_MIN_THROUGHPUT_RATIO.toFixed(2)} x direct throughput, <= ${RELAY_GOAL_MAX_LATENCY_RATIO.toFixed(2)} x direct p50 latency, sys CPU per GiB below haproxy's, Node CPU < ${RELAY_GOAL_MAX_NODE_CPU_PER_GIB} s/GiB`,
    ...r.paths.filter((p) => p.id !== 'direct').map((p) => goalLine(p.id, r.goals[p.id]) + (p.id === 'haproxy' ? ' (reference: a plain L4 relay)' : '')),
  ];
  // Where the DSR's own CPU goes: what it spends anyway (idle rate over the transfer's time), one
  // session's setup, and the rest, the transfer's own.
  const dsrCpu = r.paths
    .filter((p) => (p.id === 'dsr' || p.id === 'dsr-relay') && p.get?.relayCpuPerGiB !== undefined)
    .map((p) => {
      const session = p.relaySessionCpu === undefined ? undefined : p.relaySessionCpu / (r.sizeMiB / 1024);
      const rest = (t: TransferSummary | undefined) => (t?.relayCpuPerGiB === undefined || t.relayIdleCpuPerGiB === undefined || session === undefined ? undefined : t.relayCpuPerGiB - t.relayIdleCpuPerGiB - session);
      return [
        p.id,
        pair(fixed(p.get?.relayCpuPerGiB, 3), fixed(p.put?.relayCpuPerGiB, 3)),
        pair(fixed(p.get?.relayIdleCpuPerGiB, 3), fixed(p.put?.relayIdleCpuPerGiB, 3)),
        fixed(session, 3),
        pair(fixed(rest(p.get), 3), fixed(rest(p.put), 3)),
      ];
    });
  const errors = r.paths.flatMap((p) => p.errors.map((e) => `  ${p.id}: ${e}`));
  const background = Math.max(...r.paths.flatMap((p) => [...(p.get?.backgroundRuns ?? []), ...(p.put?.backgroundRuns ?? [])]));
  const out = [...head, ...legend, '', table(rows), '', table(ratioRows), '', ...goalLines];
  if (dsrCpu.length > 0) {
    out.push('', 'the DSR\'s CPU per GiB: all of it = its idle rate over the transfer\'s time + one smbclient session\'s setup + the rest (s/GiB)', table([['path', 'all get/put', 'idle rate get/put', 'session', 'rest get/put'], ...dsrCpu]));
  }
  if (background >= BUSY_MACHINE_CORES) {
    out.push('', `note: up to ${background.toFixed(2)} cores were busy as a transfer began: other work on this machine inflates sys CPU and slows every path (see backgroundRuns in --json)`);
  }
  if (!r.intact) out.push('', 'DATA MISMATCH: a get returned bytes that differ from the source file');
  if (errors.length) out.push('', 'errors:', ...errors);
  return out.join('\n') + '\n';
}
