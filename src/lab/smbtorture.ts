/**
 * smbtorture in the lab: runs one smb2 suite from the client namespace against a UNC path (a
 * server directly, or the DSR), parses its subunit stream into per-subtest results, and compares
 * a direct run with a run through the DSR. The suites and the known differences live in
 * test/smbtorture/suites.ts; test/smbtorture/compare.lab.root.test.ts and
 * bench/smbtorture-compare.ts drive this module.
 *
 * Both runs of a suite use the same options and `--target=samba3` (every server behind the DSR
 * is a Samba smbd), so a subtest that passes directly and fails through the DSR is the DSR's
 * doing, not the test's expectations.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DsrError, ErrorCode } from '../control/errors.js';
import { labExec, type LabStatus } from './lab.js';
import { inNetns, netnsExists } from './netns.js';
import { commandLine, oneLine } from './process.js';
import { ADDRESSES, hostNamespace, LAB_USERS } from './topology.js';

export type SubtestResult = 'success' | 'failure' | 'error' | 'skip';

export interface Subtest {
  /** Full name, e.g. smb2.lock.rw-shared (smbtorture --fullname). */
  name: string;
  result: SubtestResult;
  /** smbtorture's detail for a failure, error or skip: usually file:line and the assertion. */
  reason?: string;
  /** What the subtest printed (torture_comment), e.g. "Failed to connect to SMB2 share ... - NT_STATUS_...". */
  output?: string;
  /** From the subunit time stamps around the subtest. */
  seconds?: number;
}

export interface SuiteRun {
  suite: string;
  unc: string;
  subtests: Subtest[];
  /** Wall time, every smbtorture process of the run together. */
  seconds: number;
  /**
   * Each time smbtorture ended before the suite did (crashed, went silent, ran out of time), in
   * order. After a crash or a hang the run goes on with the subtests not reached yet.
   */
  interruptions: string[];
  /** The suite's time limit ran out: subtests not reached by then are absent. */
  timedOut: boolean;
}

const NO_RESULT = 'no result';
const EVENT_RE = /^(test|success|failure|error|skip): (.+?)( \[)?$/;
const TIME_RE = /^time: (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+)$/;
const OTHER_RE = /^progress: /;
const NTSTATUS_RE = /NT_STATUS_[A-Z0-9_]+/;

/** subunit v1 time stamps are UTC with microseconds; Date keeps milliseconds, enough here. */
function parseTime(date: string, time: string): number {
  return Date.parse(`${date}T${time.slice(0, 12)}Z`);
}

/**
 * Per-subtest results from smbtorture's `--format=subunit` output with stderr merged in (its
 * comments go to stderr, unbuffered, and every subunit event is flushed, so the order holds). A
 * subtest that started but has no result (smbtorture killed or crashed) comes back as an error
 * whose reason says so.
 */
export function parseSubunit(text: string): Subtest[] {
  const out: Subtest[] = [];
  let current: { name: string; started?: number; output: string[] } | undefined;
  let now: number | undefined;
  let details: { subtest: Subtest; lines: string[] } | undefined;
  const finish = (s: Subtest, output: string[]) => {
    const printed = output.join('\n').trim();
    if (printed) s.output = printed;
    out.push(s);
  };
  for (const line of text.split('\n')) {
    if (details) {
      if (line === ']') {
        const reason = details.lines.join('\n').trim();
        if (reason) details.subtest.reason = reason;
        details = undefined;
      } else {
        details.lines.push(line);
      }
      continue;
    }
    const t = TIME_RE.exec(line);
    if (t) {
      now = parseTime(t[1]!, t[2]!);
      if (current && current.started === undefined) current.started = now;
      continue;
    }
    if (OTHER_RE.test(line)) continue;
    const e = EVENT_RE.exec(line);
    if (!e) {
      current?.output.push(line);
      continue;
    }
    const [, event, name, bracket] = e as unknown as [string, string, string, string | undefined];
    if (event === 'test') {
      if (current) finish({ name: current.name, result: 'error', reason: `${NO_RESULT}: another subtest started` }, current.output);
      current = { name, output: [] };
      continue;
    }
    const subtest: Subtest = { name, result: event as SubtestResult };
    if (current?.started !== undefined && now !== undefined) subtest.seconds = (now - current.started) / 1000;
    finish(subtest, current?.name === name ? current.output : []);
    if (current?.name === name) current = undefined;
    if (bracket) details = { subtest, lines: [] };
  }
  if (current) finish({ name: current.name, result: 'error', reason: `${NO_RESULT}: smbtorture ended during this subtest` }, current.output);
  return out;
}

/** The first NTSTATUS a subtest printed or failed with, e.g. NT_STATUS_NOT_SUPPORTED from a tree connect. */
export function subtestStatus(s: Subtest): string | undefined {
  return NTSTATUS_RE.exec(s.output ?? '')?.[0] ?? NTSTATUS_RE.exec(s.reason ?? '')?.[0];
}

/**
 * A crash's PANIC line and the first stack frame outside Samba's panic handler and libc: where
 * smbtorture fell over (on what the DSR sent it), instead of the tail of the backtrace.
 */
function crashSite(lines: readonly string[]): string[] | undefined {
  const panic = lines.find((l) => l.startsWith('PANIC'));
  if (!panic) return undefined;
  const frame = lines.find((l) => /^#\d+ /.test(l) && !/log_stack_trace|smb_panic|libgenrand|libc\.so/.test(l));
  return [panic, ...(frame ? [`at ${frame.replace(/^#\d+ /, '')}`] : [])];
}

/** smbtorture's error text for a subtest that did not pass: its reason, after the last lines it printed (or where it crashed). */
export function subtestDetail(s: Subtest, outputLines = 4): string {
  const lines = (s.output ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const printed = crashSite(lines) ?? lines.slice(-outputLines);
  return [...printed, ...(s.reason ? [s.reason.trim()] : [])].join('\n');
}

export interface RunSuiteOptions {
  /** //host/share as smbtorture takes it. */
  unc: string;
  /** For the whole suite, resumptions included; subtests not reached by then are absent from the result. */
  timeoutMs: number;
  /** No output for this long means the subtest hangs: kill smbtorture and go on with the next one. */
  stallMs?: number;
  /** Extra smbtorture arguments, e.g. --option=torture:user2name=... */
  options?: readonly string[];
}

/**
 * The longest silence measured in a direct run is 35 s (smb2.oplock.batch22a and
 * smb2.lease.timeout wait out smbd's oplock break timeout).
 */
export const DEFAULT_STALL_MS = 60_000;

/** The smbtorture command line for one suite (or one subtest) against `unc` as the first lab user. */
export function smbtortureArgv(suite: string, unc: string, basedir: string, options: readonly string[] = []): string[] {
  const user = LAB_USERS[0]!;
  return [
    'smbtorture',
    unc,
    '-U',
    `${user.name}%${user.password}`,
    '--target=samba3',
    '--format=subunit',
    '--fullname',
    `--basedir=${basedir}`,
    ...options,
    suite,
  ];
}

/**
 * The full names of the subtests `suite` runs, as subunit reports them: `--list` prints
 * suite.tcase.test, and smbtorture names a test whose tcase has its own name just suite.tcase.
 * `--list` matches by prefix (smb2.compound also lists smb2.compound_find), so only names under
 * `suite` count; a single subtest lists as itself.
 */
export function parseTestList(suite: string, listing: string): string[] {
  return listing
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${suite}.`))
    .map((l) => {
      const parts = l.split('.');
      return parts.length > 2 && parts[parts.length - 1] === parts[parts.length - 2] ? parts.slice(0, -1).join('.') : l;
    })
    .filter((name) => name === suite || name.startsWith(`${suite}.`));
}

async function listSubtests(lab: string, suite: string): Promise<string[]> {
  const r = await labExec(lab, 'client', ['smbtorture', '--list', suite], { timeoutMs: 30_000 });
  const names = parseTestList(suite, r.stdout);
  if (names.length === 0) throw new DsrError(ErrorCode.LAB, `smbtorture --list ${suite} names no test (exit ${r.code}): ${oneLine(r.stdout + r.stderr)}`);
  return names;
}

interface WatchedRun {
  code: number;
  output: string;
  /** Killed: no output for stallMs. */
  stalled: boolean;
  /** Killed: timeoutMs ran out. */
  timedOut: boolean;
}

/** Runs argv in a namespace, stdout and stderr in one pipe, killing its process group on a stall or time out. */
function runWatched(ns: string, argv: readonly string[], timeoutMs: number, stallMs: number): Promise<WatchedRun> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = inNetns(ns, ['sh', '-c', 'exec "$@" 2>&1', 'sh', ...argv]);
    const child = spawn(cmd!, args, { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let stalled = false;
    let timedOut = false;
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    let stall = setTimeout(() => ((stalled = true), kill()), stallMs);
    const deadline = setTimeout(() => ((timedOut = true), kill()), timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      chunks.push(b);
      clearTimeout(stall);
      stall = setTimeout(() => ((stalled = true), kill()), stallMs);
    });
    child.on('error', (e) => {
      clearTimeout(stall);
      clearTimeout(deadline);
      reject(new DsrError(ErrorCode.LAB, `run ${commandLine(argv)}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(stall);
      clearTimeout(deadline);
      const status = code ?? 128 + (signal ? constants.signals[signal] : 0);
      resolve({ code: status, output: Buffer.concat(chunks).toString('utf8'), stalled, timedOut });
    });
  });
}

/**
 * Runs one suite (or a single subtest) on the lab's client host. Failing subtests are results,
 * not errors. When smbtorture crashes or a subtest hangs (no output for stallMs), the subtest
 * is an error saying so and smbtorture runs again on the subtests it had not reached
 * (`--load-list`), until the suite's time limit runs out: one bad subtest costs only itself.
 */
export async function runSuite(lab: string, suite: string, opts: RunSuiteOptions): Promise<SuiteRun> {
  const ns = hostNamespace(lab, 'client')!;
  if (!netnsExists(ns)) throw new DsrError(ErrorCode.LAB, `lab ${lab} is not up; run: dsr lab up --name ${lab}`);
  const expected = await listSubtests(lab, suite);
  const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
  // smbtorture keeps local scratch files under --basedir; one directory per run keeps parallel runs apart.
  const basedir = mkdtempSync(join(tmpdir(), 'dsr-smbtorture-'));
  const started = Date.now();
  const run: SuiteRun = { suite, unc: opts.unc, subtests: [], seconds: 0, interruptions: [], timedOut: false };
  try {
    for (;;) {
      const reported = new Set(run.subtests.map((s) => s.name));
      const remaining = expected.filter((n) => !reported.has(n));
      const loadList = join(basedir, 'load-list');
      const resuming = run.subtests.length > 0;
      if (resuming) writeFileSync(loadList, remaining.join('\n') + '\n');
      const argv = smbtortureArgv(suite, opts.unc, basedir, [...(opts.options ?? []), ...(resuming ? [`--load-list=${loadList}`] : [])]);
      const left = opts.timeoutMs - (Date.now() - started);
      if (left <= 0) {
        run.timedOut = true;
        break;
      }
      const r = await runWatched(ns, argv, left, stallMs);
      const subtests = parseSubunit(r.output);
      const last = subtests[subtests.length - 1];
      const cut = last?.reason?.startsWith(NO_RESULT) ? last : undefined;
      const crashed = r.code >= 128 && !r.stalled && !r.timedOut;
      if (r.timedOut) {
        run.timedOut = true;
        if (cut) cut.reason = `${NO_RESULT}: the suite's time limit (${opts.timeoutMs / 1000} s) ran out during this subtest`;
      } else if (r.stalled) {
        if (cut) cut.reason = `${NO_RESULT}: no output for ${stallMs / 1000} s, smbtorture killed`;
      } else if (cut) {
        cut.reason = `${NO_RESULT}: smbtorture exited ${r.code}${crashed ? ' (crashed)' : ''} during this subtest`;
      }
      if (r.timedOut || r.stalled || crashed || cut) run.interruptions.push(`${cut?.name ?? 'between subtests'}: ${cut?.reason ?? `smbtorture exited ${r.code}`}`);
      run.subtests.push(...subtests.filter((s) => !reported.has(s.name)));
      const ended = !(r.stalled || crashed || cut) || r.timedOut;
      if (ended || subtests.length === 0 || run.subtests.length >= expected.length) break;
    }
    if (run.subtests.length === 0) {
      throw new DsrError(ErrorCode.LAB, `smbtorture ${suite} against ${opts.unc} ran no subtest: ${run.interruptions.join('; ') || 'no output'}`);
    }
    run.seconds = (Date.now() - started) / 1000;
    return run;
  } finally {
    rmSync(basedir, { recursive: true, force: true });
  }
}

export interface KnownDifference {
  /** Full subtest name. */
  test: string;
  /** Why it cannot pass through the DSR (or not yet): shown next to the result. */
  reason: string;
}

export interface Difference {
  name: string;
  /** 'missing': the run through the DSR ended (timed out, crashed) before this subtest. */
  result: SubtestResult | 'missing';
  status?: string;
  /** smbtorture's error text through the DSR. */
  detail: string;
}

export interface Comparison {
  suite: string;
  /** Subtests that passed directly and through the DSR. */
  passedBoth: string[];
  /** Passed directly, did not pass through the DSR, and are not known differences. */
  regressions: Difference[];
  /** Passed directly, did not pass through the DSR, listed with a reason. */
  known: (Difference & { reason: string })[];
  /** Listed as known differences but passed through the DSR: the list entry is stale. */
  fixed: KnownDifference[];
  /** Regressions of the suite run that passed through the DSR when run again alone; not counted as regressions. */
  flaky: Difference[];
  /** Did not pass directly (failure, error or skip against a plain smbd): nothing to compare. */
  notPassingDirect: Subtest[];
  direct: SuiteRun;
  viaDsr: SuiteRun;
}

function difference(name: string, dsr: Subtest | undefined, dsrRun: SuiteRun): Difference {
  if (!dsr) {
    const why = dsrRun.timedOut ? `the suite's time limit ran out first` : dsrRun.interruptions.at(-1) ?? 'smbtorture did not report it';
    return { name, result: 'missing', detail: `not run through the DSR: ${why}` };
  }
  const status = subtestStatus(dsr);
  return { name, result: dsr.result, ...(status && { status }), detail: subtestDetail(dsr) };
}

/** Sorts every subtest of the direct run by what happened to it through the DSR. */
export function compareRuns(direct: SuiteRun, viaDsr: SuiteRun, known: readonly KnownDifference[] = []): Comparison {
  const dsrByName = new Map(viaDsr.subtests.map((s) => [s.name, s]));
  const reasons = new Map(known.map((k) => [k.test, k.reason]));
  const c: Comparison = { suite: direct.suite, passedBoth: [], regressions: [], known: [], fixed: [], flaky: [], notPassingDirect: [], direct, viaDsr };
  for (const d of direct.subtests) {
    if (d.result !== 'success') {
      c.notPassingDirect.push(d);
      continue;
    }
    const dsr = dsrByName.get(d.name);
    const reason = reasons.get(d.name);
    if (dsr?.result === 'success') {
      c.passedBoth.push(d.name);
      if (reason !== undefined) c.fixed.push({ test: d.name, reason });
    } else if (reason !== undefined) {
      c.known.push({ ...difference(d.name, dsr, viaDsr), reason });
    } else {
      c.regressions.push(difference(d.name, dsr, viaDsr));
    }
  }
  return c;
}

/** One place to run: a share on one server, reached directly and through the DSR. */
export interface Lane {
  direct: string;
  viaDsr: string;
}

/**
 * Lane i uses server i+1's first share: concurrent runs never share a directory (smbtorture's
 * file names are fixed), and every server runs the same smb.conf, so lanes are interchangeable.
 */
export function labLanes(lab: LabStatus, count: number): Lane[] {
  if (count < 1 || count > lab.servers.length) {
    throw new DsrError(ErrorCode.USAGE, `${count} smbtorture lanes need as many lab servers; the lab has ${lab.servers.length}`);
  }
  return lab.servers.slice(0, count).map((s) => {
    const share = s.shares[0]!.name;
    return { direct: `//${s.address}/${share}`, viaDsr: `//${ADDRESSES.dsrClient}/${share}` };
  });
}

/** Hands out lanes to runs, one run per lane at a time. */
export class LanePool {
  readonly #free: Lane[];
  readonly #waiting: ((lane: Lane) => void)[] = [];

  constructor(lanes: readonly Lane[]) {
    this.#free = [...lanes];
  }

  async use<T>(fn: (lane: Lane) => Promise<T>): Promise<T> {
    const lane = this.#free.pop() ?? (await new Promise<Lane>((resolve) => this.#waiting.push(resolve)));
    try {
      return await fn(lane);
    } finally {
      const next = this.#waiting.shift();
      if (next) next(lane);
      else this.#free.push(lane);
    }
  }
}

export const MAX_RERUNS = 5;

export interface CompareSuiteOptions {
  pool: LanePool;
  timeoutMs: number;
  stallMs?: number;
  options?: readonly string[];
  known?: readonly KnownDifference[];
  /** Run each regression again alone through the DSR when there are at most this many (default MAX_RERUNS). */
  maxReruns?: number;
}

/**
 * Runs a suite directly and through the DSR (concurrently when the pool has two free lanes) and
 * compares. A handful of regressions are run again one by one through the DSR; one that then
 * passes is reported as flaky instead. Many regressions mean something systematic (no redirect
 * yet), and rerunning them would only cost time.
 */
export async function compareSuite(lab: string, suite: string, opts: CompareSuiteOptions): Promise<Comparison> {
  const run = (which: keyof Lane, test: string, timeoutMs: number) =>
    opts.pool.use((lane) =>
      runSuite(lab, test, { unc: lane[which], timeoutMs, ...(opts.stallMs && { stallMs: opts.stallMs }), ...(opts.options && { options: opts.options }) }),
    );
  const [direct, viaDsr] = await Promise.all([run('direct', suite, opts.timeoutMs), run('viaDsr', suite, opts.timeoutMs)]);
  const c = compareRuns(direct, viaDsr, opts.known);
  if (c.regressions.length === 0 || c.regressions.length > (opts.maxReruns ?? MAX_RERUNS)) return c;
  const confirmed: Difference[] = [];
  for (const r of c.regressions) {
    const again = await run('viaDsr', r.name, opts.timeoutMs);
    if (again.subtests.length > 0 && again.subtests.every((s) => s.result === 'success')) c.flaky.push(r);
    else confirmed.push(r);
  }
  c.regressions = confirmed;
  return c;
}

/** Differences with the same result and error text (source line numbers aside), printed once with every subtest name. */
function grouped(diffs: readonly (Difference & { reason?: string })[]): string[] {
  const groups = new Map<string, { names: string[]; first: Difference & { reason?: string } }>();
  for (const d of diffs) {
    const key = JSON.stringify([d.result, d.status, d.detail.replace(/\.c:\d+/g, '.c'), d.reason]);
    const g = groups.get(key);
    if (g) g.names.push(d.name);
    else groups.set(key, { names: [d.name], first: d });
  }
  const indent = (text: string) => text.split('\n').map((l) => `      ${l}`).join('\n');
  return [...groups.values()].map(({ names, first: d }) => {
    const head = `  ${names.join(', ')}: ${d.result}${d.status ? ` (${d.status})` : ''}`;
    return [head, indent(d.detail), ...(d.reason ? [`      known: ${d.reason}`] : [])].join('\n');
  });
}

/** The comparison table (one line per suite, with wall times) and every difference with its error text. */
export function formatComparisons(cs: readonly Comparison[]): string {
  const header = ['suite', 'subtests', 'pass both', 'regress', 'known', 'flaky', 'fixed', 'not direct', 'direct s', 'DSR s'];
  const sum = (f: (c: Comparison) => number) => cs.reduce((n, c) => n + f(c), 0);
  const columns: ((c: Comparison) => number)[] = [
    (c) => c.direct.subtests.length,
    (c) => c.passedBoth.length,
    (c) => c.regressions.length,
    (c) => c.known.length,
    (c) => c.flaky.length,
    (c) => c.fixed.length,
    (c) => c.notPassingDirect.length,
  ];
  const seconds = [(c: Comparison) => c.direct.seconds, (c: Comparison) => c.viaDsr.seconds];
  const rows = [
    header,
    ...cs.map((c) => [c.suite, ...columns.map((f) => String(f(c))), ...seconds.map((f) => f(c).toFixed(1))]),
    ['total', ...columns.map((f) => String(sum(f))), ...seconds.map((f) => sum(f).toFixed(1))],
  ];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
  const section = (title: string, items: string[]) => (items.length ? ['', title, ...items] : []);
  lines.push(
    ...section('Regressions (pass direct, fail through the DSR):', grouped(cs.flatMap((c) => c.regressions))),
    ...section('Known differences:', grouped(cs.flatMap((c) => c.known))),
    ...section('Flaky (failed through the DSR in the suite run, passed alone):', grouped(cs.flatMap((c) => c.flaky))),
    ...section('Known differences that passed through the DSR (drop them from the list):', cs.flatMap((c) => c.fixed.map((f) => `  ${f.test}`))),
  );
  return lines.join('\n');
}
