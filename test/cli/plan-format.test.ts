import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatPlan } from '../../src/cli/plan-format.js';
import { planRebalance, type PlanInput } from '../../src/control/resources/planner.js';

const all = ['server1', 'server2', 'server3'];
/** Source Fig. 8A. */
const fig8: PlanInput = {
  servers: all.map((name) => ({ name, healthy: true })),
  shares: ([[100, 'server1'], [100, 'server1'], [150, 'server2'], [200, 'server2'], [300, 'server3'], [400, 'server3']] as const).map(([load, active], i) => ({
    name: `r${i + 1}`,
    load,
    servers: all,
    active,
  })),
};

test('dry-run table: summary, moves in order, servers before and after (Fig. 8)', () => {
  assert.equal(
    formatPlan(planRebalance(fig8), false),
    [
      '2 moves: max/min 700/200 (3.50) -> 450/400 (1.13); threshold 50%',
      '',
      'STEP  SHARE  LOAD  FROM     TO',
      '1     r5     300   server3  server1',
      '2     r1     100   server1  server2',
      '',
      'SERVER   HEALTHY  COMPARED  WEIGHT  BEFORE  AFTER',
      'server1  yes      yes       1       200     400',
      'server2  yes      yes       1       350     450',
      'server3  yes      yes       1       700     400',
      '',
    ].join('\n'),
  );
});

test('dry-run table: why nothing moves, skipped shares, weighted loads, fractions', () => {
  const input: PlanInput = {
    servers: [{ name: 'a', healthy: true, weight: 2 }, { name: 'b', healthy: true }, { name: 'c', healthy: false }],
    shares: [
      { name: 'x', load: 100.123, servers: ['a'], active: 'a' },
      { name: 'y', load: 40, servers: ['b'], active: 'b' },
      { name: 'z', load: 5, servers: ['a', 'c'], active: 'c' },
    ],
  };
  assert.equal(
    formatPlan(planRebalance(input, { maxMoves: 3 }), false),
    [
      'no moves: the most loaded server is within 50% of the least loaded; max/min 50.06/40 (1.25); threshold 50%, at most 3 moves',
      'skipped z: its server is unhealthy (failover moves it)',
      '',
      'SERVER  HEALTHY  COMPARED  WEIGHT  BEFORE (LOAD/WEIGHT)  AFTER (LOAD/WEIGHT)',
      'a       yes      yes       2       50.06                 50.06',
      'b       yes      yes       1       40                    40',
      'c       no       no        1       5                     5',
      '',
    ].join('\n'),
  );
  assert.match(formatPlan(planRebalance(input, { threshold: 0.2 }), false), /^no moves: no share has a second/);
  assert.match(formatPlan(planRebalance(fig8), false), /^2 moves/);
  assert.match(formatPlan(planRebalance(fig8, { maxMoves: 0 }), false), /^no moves: no assignment within 0 moves lowers the highest load; max\/min 700\/200 \(3\.50\)/);
  // One share alone: wherever it goes, it is the max; an idle server is below any threshold.
  const alone = { ...fig8, shares: fig8.shares.slice(3, 4) };
  assert.match(formatPlan(planRebalance(alone, { threshold: 9 }), false), /^no moves: no assignment lowers the highest load; max\/min 200\/0 \(unbounded\)/);
  assert.match(formatPlan(planRebalance({ ...fig8, servers: fig8.servers.slice(0, 1) }), false), /^no moves: fewer than two healthy servers/);
});

test('--json prints the plan itself, and it parses back equal', () => {
  const plan = planRebalance(fig8);
  const text = formatPlan(plan, true);
  assert.ok(text.endsWith('}\n'));
  assert.deepEqual(JSON.parse(text), plan);
  assert.deepEqual(JSON.parse(text).moves[0], { share: 'r5', from: 'server3', to: 'server1', load: 300 });
});
