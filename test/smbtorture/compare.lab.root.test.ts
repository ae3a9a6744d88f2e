/**
 * Issue 4 acceptance (root, lab): every smbtorture smb2 subtest of test/smbtorture/suites.ts that
 * passes directly against a lab smbd passes through the DSR, or is a known difference with its
 * reason. One lab; each suite runs directly (over the lab's direct path) and through the DSR.
 *
 *   DSR_TORTURE_SUITES=smb2.lock,smb2.read   only these suites (or single subtests)
 *   DSR_TORTURE_JOBS=N                       N lanes (servers) at once, default 2: a suite's direct
 *                                            run and its run through the DSR go side by side
 *   DSR_TORTURE_REPORT=FILE                  also write every comparison as JSON
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { labDirectPath, labDown, labUp } from '../../src/lab/lab.js';
import { compareSuite, formatComparisons, LanePool, labLanes, MAX_RERUNS, type Comparison } from '../../src/lab/smbtorture.js';
import { labSkip, uniqueLabName } from '../helpers/lab.js';
import { KNOWN_DIFFERENCES, selectSuites } from './suites.js';

const suites = selectSuites(process.env.DSR_TORTURE_SUITES);
const jobs = Number(process.env.DSR_TORTURE_JOBS ?? 2);
const name = uniqueLabName();
const results: Comparison[] = [];
let pool: LanePool;

// A suite's direct run and its run through the DSR take a lane each, side by side when there are
// two; more lanes let suites overlap.
describe('smbtorture smb2 suites: direct vs through the DSR (lab)', { skip: labSkip, concurrency: Math.max(1, Math.floor(jobs / 2)) }, () => {
  before(async () => {
    const lab = await labUp({ name, servers: Math.max(3, jobs) });
    await labDirectPath(name, true);
    pool = new LanePool(labLanes(lab, jobs));
  });
  after(async () => {
    await labDown(name);
    results.sort((a, b) => suites.findIndex((s) => s.name === a.suite) - suites.findIndex((s) => s.name === b.suite));
    if (results.length) console.log(formatComparisons(results));
    if (process.env.DSR_TORTURE_REPORT) writeFileSync(process.env.DSR_TORTURE_REPORT, JSON.stringify(results, null, 2) + '\n');
  });

  for (const s of suites) {
    // A safety net: both runs one after the other, and every rerun, each within the suite's limit.
    const timeout = (2 + MAX_RERUNS) * s.timeLimitS * 1000 + 60_000;
    test(`${s.name}: every subtest passing directly passes through the DSR`, { timeout }, async (t) => {
      const c = await compareSuite(name, s.name, { pool, timeoutMs: s.timeLimitS * 1000, known: KNOWN_DIFFERENCES, ...(s.stallS && { stallMs: s.stallS * 1000 }), ...(s.options && { options: s.options }) });
      results.push(c);
      t.diagnostic(
        `${c.direct.subtests.length} subtests: ${c.passedBoth.length} pass both ways, ${c.notPassingDirect.length} do not pass directly; ` +
          `direct ${c.direct.seconds.toFixed(1)} s, through the DSR ${c.viaDsr.seconds.toFixed(1)} s`,
      );
      for (const f of c.flaky) t.diagnostic(`flaky through the DSR: ${f.name}: ${f.detail.replace(/\n/g, ' | ')}`);
      for (const f of c.fixed) t.diagnostic(`known difference now passes, drop it from suites.ts: ${f.test}`);
      assert.ok(c.direct.subtests.length > 0, `${s.name} ran no subtest directly`);
      if (c.regressions.length) assert.fail(`${c.regressions.length} subtests of ${s.name} pass directly but not through the DSR:\n${formatComparisons([c])}`);
    });
  }
});
