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
import { formatReport, PATH_IDS, type ThroughputReport } from '../../bench/lib/throughput-report.js';
import { labSkip, uniqueLabName } from '../helpers/lab.js';

const BENCH = fileURLToPath(new URL('../../bench/throughput.js', import.meta.url));
const OPS = 50;

describe('bench/throughput (lab)', { skip: labSkip }, () => {
  test(`8 MiB, ${OPS} ops, 1 run: identical sha256 on every working path, every row printed`, { timeout: 120_000 }, async () => {
    const name = uniqueLabName();
    let report: ThroughputReport;
    try {
      const r = await run([process.execPath, BENCH, '--size-mib', '8', '--ops', String(OPS), '--runs', '1', '--json', '--name', name], { timeoutMs: 110_000 });
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
      if (p.id !== 'dsr') assert.deepEqual(p.errors, [], `${p.id} is the harness's own reference and must work`);
      const transferred = !p.errors.some((e) => e.startsWith('transfer:'));
      if (transferred) {
        assert.deepEqual(p.sha256, [report.sha256], `${p.id}: what came back is what was put`);
        for (const dir of ['put', 'get'] as const) {
          const t = p[dir];
          assert.ok(t && t.mbps > 0 && t.systemCpuPerGiB >= 0, `${p.id} ${dir}: ${JSON.stringify(t)}`);
          assert.equal(t.relayCpuPerGiB === undefined, p.id === 'direct', `${p.id} ${dir}: relay CPU only through a relay`);
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
    for (const id of PATH_IDS) assert.match(text, new RegExp(`^${id}\\s+(\\S+\\s+){6}(ok x1|–)$`, 'm'), `table row for ${id}:\n${text}`);
    for (const id of ['haproxy', 'dsr']) {
      assert.match(text, new RegExp(`^${id}\\s+(\\S+\\s+){4}\\S+$`, 'm'), `ratio row for ${id}:\n${text}`);
      assert.match(text, new RegExp(`^  ${id}: `, 'm'), `goal line for ${id}:\n${text}`);
    }
  });
});
