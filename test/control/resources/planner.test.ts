import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DsrError, ErrorCode } from '../../../src/control/errors.js';
import { planRebalance, trafficLoad, type Plan, type PlanInput, type PlanOptions, type PlanShareInput } from '../../../src/control/resources/planner.js';

const up = (...names: string[]) => names.map((name) => ({ name, healthy: true }));

/** Source Fig. 8A: six resources, 100..400, on three servers at 200/350/700. */
function fig8(): PlanInput {
  const all = ['server1', 'server2', 'server3'];
  const placed: [number, string][] = [
    [100, 'server1'],
    [100, 'server1'],
    [150, 'server2'],
    [200, 'server2'],
    [300, 'server3'],
    [400, 'server3'],
  ];
  return { servers: up(...all), shares: placed.map(([load, active], i) => ({ name: `r${i + 1}`, load, servers: all, active })) };
}

/** The shares after carrying out a plan's moves, one by one. */
function apply(input: PlanInput, plan: Plan): PlanInput {
  const shares = input.shares.map((s) => ({ ...s }));
  for (const m of plan.moves) {
    const s = shares.find((x) => x.name === m.share)!;
    assert.equal(s.active, m.from, `${m.share} moves from where it is`);
    s.active = m.to;
  }
  return { servers: input.servers, shares };
}

const after = (p: Plan) => Object.fromEntries(p.servers.map((s) => [s.name, s.after]));

test('Fig. 8: 200/350/700 becomes 400/450/400 in two moves, max/min at most 1.15', () => {
  const input = fig8();
  const plan = planRebalance(input);
  assert.deepEqual(plan.before, { max: 700, min: 200, ratio: 3.5 });
  assert.equal(plan.reason, null);
  assert.equal(plan.exact, true);
  assert.equal(plan.moves.length, 2, 'one move cannot get below 500; two reach the optimum');
  assert.ok(plan.after.ratio! <= 1.15, `max/min ${plan.after.ratio}`);
  assert.deepEqual(Object.values(after(plan)).sort(), [400, 400, 450]);
  assert.equal(plan.after.max, 450, 'no assignment of these six loads does better than 450');
  // Carried out in order, no step raises the load above where it started.
  const first = planRebalance(apply(input, { ...plan, moves: plan.moves.slice(0, 1) }), { threshold: 0 });
  assert.ok(first.before.max < 700, `after the first move the max is ${first.before.max}`);
  // The plan applied, nothing more to do.
  const again = planRebalance(apply(input, plan));
  assert.deepEqual(again.moves, []);
  assert.equal(again.reason, 'below-threshold');
});

test('Fig. 8 with one move allowed: the best single move (300 to the first server, 500/350/400)', () => {
  const plan = planRebalance(fig8(), { maxMoves: 1 });
  assert.deepEqual(plan.moves, [{ share: 'r5', from: 'server3', to: 'server1', load: 300 }]);
  assert.equal(plan.after.max, 500);
  assert.equal(plan.maxMoves, 1);
  const none = planRebalance(fig8(), { maxMoves: 0 });
  assert.deepEqual([none.moves, none.reason], [[], 'no-improvement']);
});

test('below the threshold nothing moves; a lower threshold acts on the same loads', () => {
  const input: PlanInput = {
    servers: up('a', 'b'),
    shares: [
      { name: 'x', load: 100, servers: ['a', 'b'], active: 'a' },
      { name: 'y', load: 20, servers: ['a', 'b'], active: 'a' },
      { name: 'w', load: 20, servers: ['a', 'b'], active: 'a' },
      { name: 'z', load: 100, servers: ['a', 'b'], active: 'b' },
    ],
  };
  const lazy = planRebalance(input);
  assert.deepEqual([lazy.moves, lazy.reason, lazy.before.ratio], [[], 'below-threshold', 1.4]);
  assert.deepEqual(lazy.after, lazy.before);
  const eager = planRebalance(input, { threshold: 0.2 });
  assert.deepEqual(eager.moves, [{ share: 'w', from: 'a', to: 'b', load: 20 }], 'of two equal shares, the first by name');
  assert.deepEqual(eager.after, { max: 120, min: 120, ratio: 1 });
});

test('the lab layout: san moves between servers 1 and 2 only; with server 2 down nothing can move', () => {
  const shares = (active: string): PlanShareInput[] => [
    { name: 'data1', load: 50, servers: ['server1'], active: 'server1' },
    { name: 'docs1', load: 10, servers: ['server1'], active: 'server1' },
    { name: 'data2', load: 20, servers: ['server2'], active: 'server2' },
    { name: 'data3', load: 5, servers: ['server3'], active: 'server3' },
    { name: 'san', load: 300, servers: ['server1', 'server2'], active },
  ];
  const plan = planRebalance({ servers: up('server1', 'server2', 'server3'), shares: shares('server1') });
  assert.deepEqual(plan.moves, [{ share: 'san', from: 'server1', to: 'server2', load: 300 }]);
  assert.deepEqual(after(plan), { server1: 60, server2: 320, server3: 5 });

  const down = planRebalance({ servers: [...up('server1', 'server3'), { name: 'server2', healthy: false }], shares: shares('server1') });
  assert.deepEqual([down.moves, down.reason], [[], 'no-movable-share']);
  assert.deepEqual(down.skipped, [{ share: 'data2', reason: 'server-unhealthy' }]);
  const s2 = down.servers.find((s) => s.name === 'server2')!;
  assert.deepEqual([s2.eligible, s2.before, s2.after], [false, 20, 20], 'shown, not compared');
  assert.deepEqual(down.before, { max: 360, min: 5, ratio: 72 });
});

test('shares on an unhealthy or unknown server are skipped; fewer than two servers is no plan', () => {
  const plan = planRebalance({
    servers: [{ name: 'a', healthy: true }, { name: 'b', healthy: false }],
    shares: [
      { name: 'x', load: 10, servers: ['a', 'b'], active: 'b' },
      { name: 'y', load: 10, servers: ['a', 'b'], active: 'a' },
      { name: 'z', load: 10, servers: ['a', 'c'], active: 'c' },
    ],
  });
  assert.deepEqual([plan.moves, plan.reason], [[], 'too-few-servers']);
  assert.deepEqual(plan.skipped, [
    { share: 'x', reason: 'server-unhealthy' },
    { share: 'z', reason: 'server-unknown' },
  ]);
  assert.deepEqual(planRebalance({ servers: [], shares: [] }).reason, 'too-few-servers');
});

test('weights: a server of weight 2 takes twice the load', () => {
  const plan = planRebalance({
    servers: [{ name: 'big', healthy: true, weight: 2 }, { name: 'small', healthy: true }],
    shares: ['s1', 's2', 's3'].map((name) => ({ name, load: 100, servers: ['big', 'small'], active: 'small' })),
  });
  assert.equal(plan.moves.length, 2);
  assert.deepEqual(after(plan), { big: 100, small: 100 });
  assert.deepEqual(plan.after, { max: 100, min: 100, ratio: 1 });
});

test('traffic loads: MiB/s plus ops weighted 32 KiB each (or as told)', () => {
  assert.equal(trafficLoad({ bytesPerSecond: 1 << 20, opsPerSecond: 32 }), 2);
  assert.equal(trafficLoad({ bytesPerSecond: 0, opsPerSecond: 1000 }, 1024 * 1024), 1000);
  // 400 on a (300 MiB/s of bulk, 3200 ops/s worth 100), 200 on b: the ops share evens it.
  const plan = planRebalance({
    servers: up('a', 'b'),
    shares: [
      { name: 'bulk', load: { bytesPerSecond: 300 * 2 ** 20, opsPerSecond: 0 }, servers: ['a', 'b'], active: 'a' },
      { name: 'small-ops', load: { bytesPerSecond: 0, opsPerSecond: 3200 }, servers: ['a', 'b'], active: 'a' },
      { name: 'other', load: 200, servers: ['b'], active: 'b' },
    ],
  });
  assert.deepEqual(plan.moves, [{ share: 'small-ops', from: 'a', to: 'b', load: 100 }]);
  assert.deepEqual(plan.after, { max: 300, min: 300, ratio: 1 });
});

test('bad input is refused with DSR_PLAN_INPUT naming the culprit', () => {
  const refused = (input: PlanInput, options: PlanOptions, pattern: RegExp) =>
    assert.throws(() => planRebalance(input, options), (e: unknown) => e instanceof DsrError && e.code === ErrorCode.PLAN_INPUT && pattern.test(e.message));
  const share = (load: number): PlanShareInput => ({ name: 's', load, servers: ['a'], active: 'a' });
  refused({ servers: up('a', 'a'), shares: [] }, {}, /server a is listed twice/);
  refused({ servers: up('a'), shares: [share(1), share(2)] }, {}, /share s is listed twice/);
  refused({ servers: up('a'), shares: [share(-1)] }, {}, /share s has load -1/);
  refused({ servers: up('a'), shares: [share(NaN)] }, {}, /share s has load NaN/);
  refused({ servers: [{ name: 'a', healthy: true, weight: 0 }], shares: [] }, {}, /server a has weight 0/);
  refused(fig8(), { threshold: -0.1 }, /threshold/);
  refused(fig8(), { maxMoves: 1.5 }, /maxMoves/);
  refused(fig8(), { searchBudget: 0 }, /searchBudget/);
});

test('a large input stays fast: the budget ends the search and the plan is still sound', () => {
  const servers = up('s1', 's2', 's3', 's4', 's5', 's6');
  const names = servers.map((s) => s.name);
  // Deterministic pseudo-random loads (LCG): 80 shares, all on s1 and s2, each servable by three servers.
  let x = 12345;
  const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
  const shares = Array.from({ length: 80 }, (_, i) => ({
    name: `share${String(i).padStart(2, '0')}`,
    load: next() % 1000,
    servers: [names[i % 6]!, names[(i + 1) % 6]!, names[(i + 3) % 6]!],
    active: names[i % 2]!,
  }));
  const t0 = performance.now();
  const plan = planRebalance({ servers, shares });
  const ms = performance.now() - t0;
  assert.equal(plan.exact, false);
  assert.ok(plan.after.max < plan.before.max);
  assert.ok(plan.after.ratio! < 1.5, `max/min after ${plan.after.ratio}`);
  assert.ok(ms < 5000, `${ms.toFixed(0)} ms`);
  assert.deepEqual(planRebalance({ servers, shares: [...shares].reverse() }), plan, 'deterministic even when cut short');
});

// ---- properties -------------------------------------------------------------------------------

interface Case {
  servers: { name: string; healthy: boolean; weight: number }[];
  shares: PlanShareInput[];
  threshold: number;
  maxMoves: number | undefined;
}

const arbCase: fc.Arbitrary<Case> = fc.integer({ min: 1, max: 4 }).chain((n) => {
  const names = Array.from({ length: n }, (_, i) => `server${i + 1}`);
  const server = (name: string) =>
    fc.record({ name: fc.constant(name), healthy: fc.integer({ min: 0, max: 5 }).map((h) => h > 0), weight: fc.constantFrom(1, 1, 1, 2, 3) });
  const share = fc.record({
    load: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.double({ min: 0, max: 1000, noNaN: true })),
    servers: fc.subarray(names, { minLength: 1 }),
    pick: fc.nat(),
  });
  return fc.record({
    servers: fc.tuple(...names.map(server)),
    shares: fc
      .array(share, { maxLength: 7 })
      .map((list) => list.map((s, i): PlanShareInput => ({ name: `share${i}`, load: s.load, servers: s.servers, active: s.servers[s.pick % s.servers.length]! }))),
    threshold: fc.constantFrom(0, 0.1, 0.5, 1),
    maxMoves: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
  });
});

/** Every assignment of the movable shares to their healthy candidates: [max relative load, moves]. */
function bruteForce(c: Case): [max: number, moves: number][] {
  const server = new Map(c.servers.map((s) => [s.name, s]));
  const live = c.shares.filter((s) => server.get(s.active)?.healthy);
  const cands = live.map((s) => [s.active, ...s.servers.filter((n) => n !== s.active && server.get(n)?.healthy)]);
  const eligible = new Set(cands.flat());
  const out: [number, number][] = [];
  const loads = new Map<string, number>();
  const walk = (j: number, moves: number): void => {
    if (j === live.length) {
      out.push([Math.max(0, ...[...eligible].map((n) => (loads.get(n) ?? 0) / server.get(n)!.weight)), moves]);
      return;
    }
    for (const to of cands[j]!) {
      loads.set(to, (loads.get(to) ?? 0) + (live[j]!.load as number));
      walk(j + 1, moves + Number(to !== live[j]!.active));
      loads.set(to, loads.get(to)! - (live[j]!.load as number));
    }
  };
  walk(0, 0);
  return out;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));

test('property: every move legal, never worse, moves bounded, after loads match the moves', () => {
  fc.assert(
    fc.property(arbCase, (c) => {
      const input = { servers: c.servers, shares: c.shares };
      const plan = planRebalance(input, { threshold: c.threshold, maxMoves: c.maxMoves });
      const server = new Map(c.servers.map((s) => [s.name, s]));
      const moved = new Set<string>();
      for (const m of plan.moves) {
        const share = c.shares.find((s) => s.name === m.share)!;
        assert.ok(!moved.has(m.share), 'a share moves at most once');
        moved.add(m.share);
        assert.equal(m.from, share.active);
        assert.notEqual(m.to, m.from);
        assert.ok(share.servers.includes(m.to), `${m.to} can serve ${m.share}`);
        assert.ok(server.get(m.to)!.healthy, `${m.to} is healthy`);
        assert.ok(server.get(m.from)!.healthy, 'shares of failed servers are failover business');
        assert.equal(m.load, share.load);
      }
      assert.ok(plan.moves.length <= (c.maxMoves ?? Infinity));
      assert.ok(plan.moves.length <= c.shares.length);
      assert.ok(plan.after.max <= plan.before.max, 'never worse');
      if (plan.moves.length > 0) {
        assert.equal(plan.reason, null);
        assert.ok(plan.after.max < plan.before.max, 'a plan with moves lowers the max');
        assert.ok(plan.before.ratio === null || plan.before.ratio > 1 + c.threshold, 'only above the threshold');
      } else assert.notEqual(plan.reason, null, 'no moves says why');
      // The plan's after column is what carrying out the moves gives.
      const replay = planRebalance(apply(input, plan), { threshold: c.threshold });
      for (const s of replay.servers) assert.ok(close(s.before, plan.servers.find((x) => x.name === s.name)!.after));
      assert.deepEqual(JSON.parse(JSON.stringify(plan)), plan, 'plain JSON');
    }),
    { numRuns: 500 },
  );
});

/** The planner's own comparison: a below b by more than floating-point noise. */
const lt = (a: number, b: number) => a < b - 1e-9 * Math.max(1, Math.abs(b));

test('property: optimal when exact (brute force): lowest max, then fewest moves', () => {
  fc.assert(
    fc.property(arbCase, (c) => {
      const plan = planRebalance({ servers: c.servers, shares: c.shares }, { threshold: c.threshold, maxMoves: c.maxMoves });
      if (plan.reason !== null && plan.reason !== 'no-improvement') return;
      assert.equal(plan.exact, true, 'seven shares fit the default budget');
      const within = bruteForce(c).filter(([, moves]) => moves <= (c.maxMoves ?? Infinity));
      for (const [max] of within) assert.ok(!lt(max, plan.after.max), `max ${plan.after.max}, brute force finds ${max}`);
      const asLow = within.filter(([max]) => !lt(plan.after.max, max));
      assert.equal(plan.moves.length, Math.min(...asLow.map(([, moves]) => moves)));
    }),
    { numRuns: 300 },
  );
});

test('property: idempotent: planning again after carrying out a plan gives no moves', () => {
  fc.assert(
    fc.property(arbCase, (c) => {
      const input = { servers: c.servers, shares: c.shares };
      const plan = planRebalance(input, { threshold: c.threshold });
      const again = planRebalance(apply(input, plan), { threshold: c.threshold });
      assert.deepEqual(again.moves, []);
    }),
    { numRuns: 300 },
  );
});

test('property: deterministic: the order of the input does not change the plan', () => {
  fc.assert(
    fc.property(arbCase, fc.nat(), (c, rot) => {
      const options = { threshold: c.threshold, maxMoves: c.maxMoves };
      const rotate = <T>(a: T[]) => [...a.slice(rot % Math.max(1, a.length)), ...a.slice(0, rot % Math.max(1, a.length))].reverse();
      const plan = planRebalance({ servers: c.servers, shares: c.shares }, options);
      assert.deepEqual(planRebalance({ servers: rotate(c.servers), shares: rotate(c.shares).map((s) => ({ ...s, servers: [...s.servers].reverse() })) }, options), plan);
    }),
    { numRuns: 300 },
  );
});
