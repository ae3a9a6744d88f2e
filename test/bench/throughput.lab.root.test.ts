/**
 * bench/throughput in the lab (root), tiny: 8 MiB, 50 ops, one run. It checks correctness
 * only, never speed: every path that works gives back the source's bytes, each measurement is
 * there, and the text report has every row. The DSR path may fail (before redirection exists
 * it refuses tree connects); it must then say why.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { labDown } from '../../src/lab/lab.js';
import { run } from '../../src/lab/process.js';
import { processSeconds, systemBusySeconds } from '../../bench/lib/cpu.js';
import { haproxyConfig } from '../../bench/lib/haproxy.js';
import { probeKernel } from '../../src/offload/native.js';
import { buildReport, formatReport, median, PATH_IDS, percentile, type PathSummary, type ThroughputReport } from '../../bench/lib/throughput-report.js';
import { labSkip, uniqueLabName } from '../helpers/lab.js';

describe('bench/throughput pieces (pure)', () => {
  test('median and nearest-rank percentiles', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    const xs = Array.from({ length: 1000 }, (_, i) => 1000 - i);
    assert.equal(percentile(xs, 50), 500);
    assert.equal(percentile(xs, 99), 990);
    assert.equal(percentile([7], 99), 7);
  });

  test('CPU seconds from /proc: busy excludes idle and iowait', () => {
    const stat = 'cpu  100 20 300 9999 888 4 5 6 70 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n';
    assert.equal(systemBusySeconds(100, stat), (100 + 20 + 300 + 4 + 5 + 6) / 100);
    assert.ok(processSeconds(process.pid, 100)! >= 0);
    assert.equal(processSeconds(2 ** 22 + 1, 100), undefined);
  });

  test('haproxy is a one-thread TCP relay from the listen address to the server', () => {
    const cfg = haproxyConfig({ listenAddress: '198.18.0.1', listenPort: 4445, serverAddress: '198.18.1.11', serverPort: 445 });
    for (const line of ['nbthread 1', 'mode tcp', 'bind 198.18.0.1:4445', 'server server1 198.18.1.11:445']) assert.match(cfg, new RegExp(`^\\s*${line}$`, 'm'));
    assert.doesNotMatch(cfg, /stats socket|daemon/);
  });

  test('ratios, goals, a failed path and a mismatch in the report', () => {
    const path = (id: PathSummary['id'], get: number, p50: number, errors: string[] = []): PathSummary => ({
      id,
      address: 'a:1',
      via: 'v',
      ...(errors.length === 0 && {
        get: { mbps: get, runs: [get], systemCpuPerGiB: 1, backgroundCores: 0, backgroundRuns: [0] },
        put: { mbps: get, runs: [get], systemCpuPerGiB: 1, backgroundCores: 0, backgroundRuns: [0] },
        openClose: { n: 10, p50, p99: p50 * 2 },
        read4k: { n: 10, p50, p99: p50 * 2 },
      }),
      sha256: errors.length ? [] : ['aa'],
      errors,
    });
    const r = buildReport({ lab: 'x', sizeMiB: 1, ops: 10, runs: 1, sha256: 'aa', paths: [path('direct', 100, 100), path('haproxy', 70, 131), path('dsr', 0, 0, ['transfer: put run 1: smbclient exited 1: tree connect failed'])] });
    assert.equal(r.ratios.haproxy?.get, 0.7);
    assert.deepEqual(r.goals.haproxy?.map((g) => g.met), [true, true, false, false]);
    assert.deepEqual(r.goals.dsr?.map((g) => g.met), [undefined, undefined, undefined, undefined]);
    assert.equal(r.intact, true);
    const text = formatReport(r);
    assert.match(text, /^dsr(\s+–\/?–?){8}$/m);
    assert.match(text, /^  dsr: pending/m);
    assert.match(text, /^  dsr: transfer: put run 1: smbclient exited 1: tree connect failed$/m);
    // The relay: its Node CPU is a goal, and the report splits it into idle rate, one session and the rest.
    const relayed = path('dsr-relay', 100, 100);
    relayed.get = { ...relayed.get!, relayCpuPerGiB: 0.1, relayIdleCpuPerGiB: 0.03 };
    relayed.put = { ...relayed.put!, relayCpuPerGiB: 0.04, relayIdleCpuPerGiB: 0.01 };
    relayed.relaySessionCpu = 0.01;
    const withRelay = buildReport({ lab: 'x', sizeMiB: 512, ops: 10, runs: 1, sha256: 'aa', paths: [path('direct', 100, 100), path('haproxy', 70, 131), relayed] });
    assert.deepEqual(
      withRelay.goals['dsr-relay']?.slice(-2).map((g) => [g.what, g.ratio, g.met]),
      [
        ['Node CPU get s/GiB', 0.1, false],
        ['Node CPU put s/GiB', 0.04, true],
      ],
    );
    // 512 MiB: one session's 0.01 s is 0.02 s per GiB.
    assert.match(formatReport(withRelay), /^dsr-relay\s+0\.100\/0\.040\s+0\.030\/0\.010\s+0\.020\s+0\.050\/0\.010$/m);
    const bad = buildReport({ ...r, paths: [path('direct', 100, 100), { ...path('haproxy', 70, 131), sha256: ['bb'] }] });
    assert.equal(bad.intact, false);
    assert.match(formatReport(bad), /MISMATCH/);
  });
});

const relayKernel = probeKernel().sockmapLinks;
const BENCH = fileURLToPath(new URL('../../bench/throughput.js', import.meta.url));
const OPS = 50;

describe('bench/throughput (lab)', { skip: labSkip }, () => {
  test(`8 MiB, ${OPS} ops, 1 run: identical sha256 on every working path, every row printed`, { timeout: 120_000 }, async () => {
    const name = uniqueLabName();
    let report: ThroughputReport;
    try {
      const r = await run([process.execPath, BENCH, '--size-mib', '8', '--ops', String(OPS), '--runs', '1', '--settle-seconds', '0', '--warmup-mib', '8', '--json', '--name', name], { timeoutMs: 110_000 });
      assert.equal(r.code, 0, `bench exited ${r.code}: ${r.stderr.slice(-2000)}`);
      report = JSON.parse(r.stdout) as ThroughputReport;
    } finally {
      // The bench tears its lab down itself; this covers a bench that was killed.
      await labDown(name);
    }

    assert.deepEqual(
      report.paths.map((p) => p.id),
      [...PATH_IDS],
    );
    assert.match(report.sha256, /^[0-9a-f]{64}$/);
    assert.equal(report.intact, true);
    for (const p of report.paths) {
      if (p.id === 'direct' || p.id === 'haproxy') assert.deepEqual(p.errors, [], `${p.id} is the harness's own reference and must work`);
      if (p.id === 'dsr-relay' && relayKernel) assert.deepEqual(p.errors, [], 'the kernel has what the relay needs, so its path works');
      const transferred = !p.errors.some((e) => e.startsWith('transfer:'));
      if (transferred) {
        assert.deepEqual(p.sha256, [report.sha256], `${p.id}: what came back is what was put`);
        for (const dir of ['put', 'get'] as const) {
          const t = p[dir];
          assert.ok(t && t.mbps > 0 && t.systemCpuPerGiB >= 0, `${p.id} ${dir}: ${JSON.stringify(t)}`);
          assert.equal(t.relayCpuPerGiB === undefined, p.id === 'direct', `${p.id} ${dir}: relay CPU only through a relay`);
          // The DSR's port filter sees every packet to server1 on every path, and on dsr-relay its verdict every message too.
          if (relayKernel) assert.ok(t.bpfCpuPerGiB !== undefined && t.bpfCpuPerGiB > 0, `${p.id} ${dir}: the DSR's BPF programs ran: ${JSON.stringify(t)}`);
        }
      }
      if (!p.errors.some((e) => e.startsWith('small ops:'))) {
        assert.equal(p.openClose?.n, OPS, `${p.id}: open+close samples`);
        assert.equal(p.read4k?.n, OPS, `${p.id}: 4K read samples`);
        assert.ok(p.openClose.p50 > 0 && p.openClose.p99 >= p.openClose.p50);
        assert.ok(p.read4k.p50 > 0 && p.read4k.p99 >= p.read4k.p50);
      }
      for (const e of p.errors) assert.match(e, /^(transfer: (put|get) run 1|small ops: run 1): .+/, `${p.id}: an error names its step`);
    }

    const text = formatReport(report);
    for (const id of PATH_IDS) assert.match(text, new RegExp(`^${id}\\s+(\\S+\\s+){7}(ok x1|–)$`, 'm'), `table row for ${id}:\n${text}`);
    for (const id of ['haproxy', 'dsr', 'dsr-relay']) {
      assert.match(text, new RegExp(`^${id}\\s+(\\S+\\s+){4}\\S+$`, 'm'), `ratio row for ${id}:\n${text}`);
      assert.match(text, new RegExp(`^  ${id}: `, 'm'), `goal line for ${id}:\n${text}`);
    }
  });
});
