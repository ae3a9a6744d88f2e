/**
 * bench/smbtorture-compare: runs the smbtorture smb2 suites of test/smbtorture/suites.ts
 * directly against lab smbd servers and through the DSR, and prints the comparison table (wall
 * time of each suite both ways) and every difference with smbtorture's error text. Needs root.
 *
 *   node dist/bench/smbtorture-compare.js [--suites smb2.lock,smb2.read] [--jobs N]
 *                                         [--lab NAME] [--json FILE]
 *
 * Without --lab it builds its own lab and tears it down; with --lab it uses that lab as it is
 * (and turns its direct path on). --jobs N runs on N lanes (servers) at once, default
 * DSR_TORTURE_JOBS or 2 (a suite's direct run and its run through the DSR side by side).
 * --suites defaults to DSR_TORTURE_SUITES, then to every suite. Exit status 1 when a subtest
 * regresses.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { benchArgs } from './lib/args.js';
import { labDirectPath, labDown, labStatus, labUp } from '../src/lab/lab.js';
import { compareSuite, formatComparisons, LanePool, labLanes, type Comparison } from '../src/lab/smbtorture.js';
import { KNOWN_DIFFERENCES, selectSuites } from '../test/smbtorture/suites.js';

const values = benchArgs('usage: node dist/bench/smbtorture-compare.js [--suites smb2.lock,smb2.read] [--jobs N] [--lab NAME] [--json FILE]', {
  suites: { type: 'string' },
  jobs: { type: 'string', default: process.env.DSR_TORTURE_JOBS ?? '2' },
  lab: { type: 'string' },
  json: { type: 'string' },
});
const suites = selectSuites(values.suites ?? process.env.DSR_TORTURE_SUITES);
const jobs = Number(values.jobs);
const own = values.lab === undefined;
const name = values.lab ?? `dc${randomBytes(2).toString('hex')}`;

const lab = own ? await labUp({ name, servers: Math.max(3, jobs) }) : await labStatus(name);
const results: Comparison[] = [];
try {
  if (!lab.up) throw new Error(`lab ${name} is not up`);
  await labDirectPath(name, true);
  const pool = new LanePool(labLanes(lab, jobs));
  const started = Date.now();
  // Suites start in list order; the pool decides how many run at once. Every run ends before
  // the lab goes down, even when one of them throws.
  const settled = await Promise.allSettled(
    suites.map(async (s) => {
      const c = await compareSuite(name, s.name, { pool, timeoutMs: s.timeLimitS * 1000, known: KNOWN_DIFFERENCES, ...(s.stallS && { stallMs: s.stallS * 1000 }), ...(s.options && { options: s.options }) });
      results.push(c);
      process.stderr.write(`${s.name}: ${c.passedBoth.length} pass both, ${c.regressions.length} regressions (direct ${c.direct.seconds.toFixed(1)} s, DSR ${c.viaDsr.seconds.toFixed(1)} s)\n`);
    }),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  results.sort((a, b) => suites.findIndex((s) => s.name === a.suite) - suites.findIndex((s) => s.name === b.suite));
  process.stdout.write(`${formatComparisons(results)}\n\nwall time ${((Date.now() - started) / 1000).toFixed(0)} s on ${jobs} lane(s)\n`);
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2) + '\n');
} finally {
  if (own) await labDown(name);
  else await labDirectPath(name, false);
}
process.exitCode = results.some((c) => c.regressions.length > 0) ? 1 : 0;
