/**
 * The rebalancing planner (source Fig. 8, paragraphs 0091-0099): from each storage server's
 * health and weight, each share's measured load, the servers able to serve it and the one
 * serving it now, compute which shares to move so that the most loaded server carries as little
 * as possible, with as few moves as possible. Pure: no I/O, no clock, no randomness; the same
 * input (in any order) gives the same plan. The resource manager measures, calls this, and
 * moves shares; `dsr rebalance --dry-run` prints the plan.
 *
 * Loads are compared as *relative loads*: a server's load divided by its weight (a server of
 * weight 2 is meant to carry twice the load). Only *eligible* servers are compared and receive
 * shares: healthy servers able to serve at least one share. A share whose active server is
 * unhealthy or unknown is failover's business: it is skipped, and its load left out.
 *
 * Algorithm:
 * 1. Trigger (paragraph 0099): plan only when the most loaded eligible server exceeds the least
 *    loaded by more than `threshold` (default 50%).
 * 2. Seed: hill-climbing from the current assignment. Each step moves one share off the most
 *    loaded server, or swaps one of its shares with a share of another server, taking the step
 *    that lowers (max relative load, sum of squares) the most; it stops at a local optimum or
 *    when another step would exceed `maxMoves`; then every move the max does not need is
 *    undone. This gives a good plan for any size.
 * 3. Exact search: depth-first branch and bound over the shares, largest first, each trying its
 *    current server first, minimising (max relative load, number of moves, sum of squares, then
 *    names) in that order, pruned by lower bounds (the max so far, each remaining share alone
 *    on its roomiest server, the eligible servers' average). Starts from the better of step 2
 *    and the current assignment and visits at most `searchBudget` nodes (the default finished
 *    random cases of up to 15-20 shares on 4 servers, in tens of milliseconds; beyond that the
 *    result is step 2's, improved as far as the budget went, with every unneeded move undone).
 *
 * Guarantees: every move goes to a healthy server listed for the share; a share moves at most
 * once; at most `maxMoves` moves; the max after is never above the max before, and a plan with
 * moves lowers it strictly. When the search ends within its budget (`exact: true`), no
 * assignment within `maxMoves` moves has a lower max and none with the same max has fewer
 * moves; planning again after applying such a plan (made without a move limit) gives no moves.
 */
import { DsrError, ErrorCode } from '../errors.js';

export const DEFAULT_THRESHOLD = 0.5;
/**
 * What one SMB2 operation costs a server, in bytes moved. On the lab machines one smbd moves
 * ~1.2 GB/s, or answers ~30k ECHOs or ~8k open+close pairs per second (machine-facts.md): an op
 * costs like 40-150 KiB of transfer; 32 KiB keeps small-op loads from being overstated.
 */
export const DEFAULT_OP_BYTES = 32 * 1024;
export const DEFAULT_SEARCH_BUDGET = 200_000;

/** A share's traffic from the DSR's counters. */
export interface TrafficLoad {
  bytesPerSecond: number;
  opsPerSecond: number;
}

/** One load figure from traffic: MiB/s, each op counted as `opBytes` bytes. */
export function trafficLoad(t: TrafficLoad, opBytes = DEFAULT_OP_BYTES): number {
  return (t.bytesPerSecond + t.opsPerSecond * opBytes) / (1024 * 1024);
}

export interface PlanServerInput {
  name: string;
  healthy: boolean;
  /** Capacity weight, default 1. */
  weight?: number;
}

export interface PlanShareInput {
  name: string;
  /** One number in any unit shared by all shares, or traffic combined by `trafficLoad`. */
  load: number | TrafficLoad;
  /** Servers able to serve the share; names not among the input's servers are ignored. */
  servers: readonly string[];
  /** The server serving it now. */
  active: string;
}

export interface PlanInput {
  servers: readonly PlanServerInput[];
  shares: readonly PlanShareInput[];
}

export interface PlanOptions {
  /** Plan when max relative load > (1 + threshold) × min. Default 0.5. */
  threshold?: number;
  /** At most this many moves; default unlimited. */
  maxMoves?: number;
  /** Bytes one op is worth when a load is given as traffic. */
  opBytes?: number;
  /** Nodes the exact search may visit before it settles for the best plan found. */
  searchBudget?: number;
}

export interface PlanMove {
  share: string;
  from: string;
  to: string;
  load: number;
}

export interface PlanServerLoad {
  name: string;
  healthy: boolean;
  weight: number;
  /** Compared and balanced: healthy and able to serve at least one share. */
  eligible: boolean;
  /** Relative loads (load ÷ weight) before and after the plan. */
  before: number;
  after: number;
}

export interface LoadSpread {
  /** Highest and lowest relative load among eligible servers (0 when there are none). */
  max: number;
  min: number;
  /** max ÷ min; 1 when both are 0, null when only min is 0 (unbounded: JSON has no Infinity). */
  ratio: number | null;
}

/** Why a plan has no moves. */
export type PlanReason =
  /** Fewer than two eligible servers: nothing to balance between. */
  | 'too-few-servers'
  /** max ÷ min is within 1 + threshold. */
  | 'below-threshold'
  /** No share has a second eligible server. */
  | 'no-movable-share'
  /** No assignment within the move limit lowers the max. */
  | 'no-improvement';

export interface SkippedShare {
  share: string;
  reason: 'server-unhealthy' | 'server-unknown';
}

/** A rebalancing plan; plain JSON (the admin socket carries it as is). */
export interface Plan {
  threshold: number;
  maxMoves: number | null;
  /** In the order to carry them out: each next move keeps the highest load on the way lowest. */
  moves: PlanMove[];
  servers: PlanServerLoad[];
  before: LoadSpread;
  after: LoadSpread;
  /** Why nothing is done; null when there are moves. */
  reason: PlanReason | null;
  /** True when the search proved the plan optimal (or no search was needed). */
  exact: boolean;
  skipped: SkippedShare[];
}

interface Share {
  name: string;
  load: number;
  origin: number;
  /** Eligible server indices, the origin first. */
  cand: number[];
}

interface Model {
  names: string[];
  healthy: boolean[];
  weight: number[];
  eligible: boolean[];
  shares: Share[];
  /** Share indices in name order, for tie-breaking. */
  nameOrder: number[];
}

interface Score {
  max: number;
  moves: number;
  sumsq: number;
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** a < b beyond floating-point noise (sums of measured loads in different orders differ in the last bits). */
function lt(a: number, b: number): boolean {
  return a < b - 1e-9 * Math.max(1, Math.abs(b));
}

export function planRebalance(input: PlanInput, options: PlanOptions = {}): Plan {
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  const maxMoves = options.maxMoves ?? Infinity;
  const budget = options.searchBudget ?? DEFAULT_SEARCH_BUDGET;
  const opBytes = options.opBytes ?? DEFAULT_OP_BYTES;
  if (!(threshold >= 0 && Number.isFinite(threshold))) throw planError(`threshold must be a number >= 0, not ${threshold}`);
  if (maxMoves !== Infinity && !(Number.isInteger(maxMoves) && maxMoves >= 0)) throw planError(`maxMoves must be an integer >= 0, not ${maxMoves}`);
  if (!(Number.isInteger(budget) && budget >= 1)) throw planError(`searchBudget must be an integer >= 1, not ${budget}`);
  if (!(opBytes >= 0 && Number.isFinite(opBytes))) throw planError(`opBytes must be a number >= 0, not ${opBytes}`);

  const { model, skipped, parked } = buildModel(input, opBytes);
  const origin = Int32Array.from(model.shares, (s) => s.origin);
  const before = spread(model, loadsOf(model, origin));
  const eligibleCount = model.eligible.filter(Boolean).length;
  let final: Int32Array = origin;
  let exact = true;
  let reason: PlanReason | null = null;

  if (eligibleCount < 2) reason = 'too-few-servers';
  else if (before.ratio !== null && !lt(1 + threshold, before.ratio)) reason = 'below-threshold';
  else if (!model.shares.some((s) => s.cand.length > 1)) reason = 'no-movable-share';
  else {
    const seed = trim(model, origin, hillClimb(model, origin, maxMoves));
    const found = search(model, origin, seed, maxMoves, budget);
    exact = found.exact;
    if (lt(spread(model, loadsOf(model, found.assign)).max, before.max)) final = found.assign;
    else reason = 'no-improvement';
  }

  const afterLoads = loadsOf(model, final);
  const beforeLoads = loadsOf(model, origin);
  for (const [server, load] of parked) {
    beforeLoads[server]! += load;
    afterLoads[server]! += load;
  }
  return {
    threshold,
    maxMoves: maxMoves === Infinity ? null : maxMoves,
    moves: sequence(model, origin, final),
    servers: model.names.map((name, i) => ({
      name,
      healthy: model.healthy[i]!,
      weight: model.weight[i]!,
      eligible: model.eligible[i]!,
      before: beforeLoads[i]! / model.weight[i]!,
      after: afterLoads[i]! / model.weight[i]!,
    })),
    before,
    after: spread(model, loadsOf(model, final)),
    reason,
    exact,
    skipped,
  };
}

function planError(message: string): DsrError {
  return new DsrError(ErrorCode.PLAN_INPUT, `rebalance planner: ${message}`);
}

/** Sorts everything by name (order-independent plans) and drops what cannot take part. */
function buildModel(input: PlanInput, opBytes: number): { model: Model; skipped: SkippedShare[]; parked: Map<number, number> } {
  const servers = [...input.servers].sort(byName);
  const index = new Map<string, number>();
  servers.forEach((s, i) => {
    if (index.has(s.name)) throw planError(`server ${s.name} is listed twice`);
    const w = s.weight ?? 1;
    if (!(w > 0 && Number.isFinite(w))) throw planError(`server ${s.name} has weight ${w}; it must be > 0`);
    index.set(s.name, i);
  });
  const model: Model = {
    names: servers.map((s) => s.name),
    healthy: servers.map((s) => s.healthy),
    weight: servers.map((s) => s.weight ?? 1),
    eligible: servers.map(() => false),
    shares: [],
    nameOrder: [],
  };
  const skipped: SkippedShare[] = [];
  // Loads of skipped shares on unhealthy servers: shown per server, never compared.
  const parked = new Map<number, number>();
  const seen = new Set<string>();
  for (const s of [...input.shares].sort(byName)) {
    if (seen.has(s.name)) throw planError(`share ${s.name} is listed twice`);
    seen.add(s.name);
    const load = typeof s.load === 'number' ? s.load : trafficLoad(s.load, opBytes);
    if (!(load >= 0 && Number.isFinite(load))) throw planError(`share ${s.name} has load ${load}; it must be a finite number >= 0`);
    const origin = index.get(s.active);
    if (origin === undefined) {
      skipped.push({ share: s.name, reason: 'server-unknown' });
      continue;
    }
    if (!model.healthy[origin]) {
      skipped.push({ share: s.name, reason: 'server-unhealthy' });
      parked.set(origin, (parked.get(origin) ?? 0) + load);
      continue;
    }
    const others = [...new Set(s.servers)]
      .map((n) => index.get(n))
      .filter((i): i is number => i !== undefined && i !== origin && model.healthy[i]!)
      .sort((a, b) => a - b);
    const cand = [origin, ...others];
    for (const c of cand) model.eligible[c] = true;
    model.shares.push({ name: s.name, load, origin, cand });
  }
  // Largest first: the search decides the big shares while the bounds are still loose.
  model.shares.sort((a, b) => b.load - a.load || byName(a, b));
  model.nameOrder = model.shares.map((_, j) => j).sort((a, b) => byName(model.shares[a]!, model.shares[b]!));
  return { model, skipped, parked };
}

function loadsOf(m: Model, assign: Int32Array): Float64Array {
  const loads = new Float64Array(m.names.length);
  m.shares.forEach((s, j) => (loads[assign[j]!]! += s.load));
  return loads;
}

function spread(m: Model, loads: Float64Array): LoadSpread {
  let max = 0;
  let min = Infinity;
  for (let i = 0; i < loads.length; i++) {
    if (!m.eligible[i]) continue;
    const r = loads[i]! / m.weight[i]!;
    max = Math.max(max, r);
    min = Math.min(min, r);
  }
  if (min === Infinity) min = 0;
  const ratio = max / min;
  return { max, min, ratio: max === 0 ? 1 : Number.isFinite(ratio) ? ratio : null };
}

function maxAndSumsq(m: Model, loads: Float64Array): { max: number; sumsq: number } {
  let max = 0;
  let sumsq = 0;
  for (let i = 0; i < loads.length; i++) {
    if (!m.eligible[i]) continue;
    const r = loads[i]! / m.weight[i]!;
    max = Math.max(max, r);
    sumsq += r * r;
  }
  return { max, sumsq };
}

function movesOf(origin: Int32Array, assign: Int32Array): number {
  let n = 0;
  for (let j = 0; j < origin.length; j++) if (assign[j] !== origin[j]) n++;
  return n;
}

/**
 * (max, moves, sumsq) lexicographically, max and sumsq with a noise tolerance; then by name: at
 * the first share by name placed differently, the plan that moves it wins, then the one moving
 * it to the server first by name.
 */
function better(m: Model, origin: Int32Array, a: Score & { assign: Int32Array }, b: Score & { assign: Int32Array }): boolean {
  if (lt(a.max, b.max)) return true;
  if (lt(b.max, a.max)) return false;
  if (a.moves !== b.moves) return a.moves < b.moves;
  if (lt(a.sumsq, b.sumsq)) return true;
  if (lt(b.sumsq, a.sumsq)) return false;
  for (const j of m.nameOrder) {
    const x = a.assign[j]!;
    const y = b.assign[j]!;
    if (x === y) continue;
    if (x !== origin[j] && y !== origin[j]) return x < y;
    return x !== origin[j];
  }
  return false;
}

function hillClimb(m: Model, origin: Int32Array, maxMoves: number): Int32Array {
  const assign = Int32Array.from(origin);
  const loads = loadsOf(m, assign);
  const n = m.shares.length;
  // Each step lowers (max, sumsq), so the climb ends; the cap bounds its cost on large inputs.
  for (let step = 0; step < 2 * n + 10; step++) {
    const cur = maxAndSumsq(m, loads);
    let top = -1;
    for (let i = 0; i < loads.length; i++) if (m.eligible[i] && (top < 0 || lt(loads[top]! / m.weight[top]!, loads[i]! / m.weight[i]!))) top = i;
    const moved = movesOf(origin, assign);
    let best: { max: number; sumsq: number; apply: () => void } | undefined;
    const consider = (changes: [share: number, to: number][]): void => {
      let mv = moved;
      for (const [j, to] of changes) mv += Number(to !== origin[j]) - Number(assign[j] !== origin[j]);
      if (mv > maxMoves) return;
      for (const [j, to] of changes) {
        loads[assign[j]!]! -= m.shares[j]!.load;
        loads[to]! += m.shares[j]!.load;
      }
      const got = maxAndSumsq(m, loads);
      for (const [j, to] of changes) {
        loads[to]! -= m.shares[j]!.load;
        loads[assign[j]!]! += m.shares[j]!.load;
      }
      const base = best ?? cur;
      if (lt(got.max, base.max) || (!lt(base.max, got.max) && lt(got.sumsq, base.sumsq))) {
        best = {
          ...got,
          apply: () => {
            for (const [j, to] of changes) {
              loads[assign[j]!]! -= m.shares[j]!.load;
              loads[to]! += m.shares[j]!.load;
              assign[j] = to;
            }
          },
        };
      }
    };
    for (let j = 0; j < n; j++) {
      if (assign[j] !== top) continue;
      const a = m.shares[j]!;
      for (const to of a.cand) {
        if (to === top) continue;
        consider([[j, to]]);
        for (let k = 0; k < n; k++) if (assign[k] === to && m.shares[k]!.cand.includes(top)) consider([[j, to], [k, top]]);
      }
    }
    if (!best) break;
    best.apply();
  }
  return assign;
}

function search(m: Model, origin: Int32Array, seed: Int32Array, maxMoves: number, budget: number): { assign: Int32Array; exact: boolean } {
  const n = m.shares.length;
  const score = (assign: Int32Array): Score => ({ ...maxAndSumsq(m, loadsOf(m, assign)), moves: movesOf(origin, assign) });
  let best = { assign: Int32Array.from(origin), ...score(origin) };
  const fromSeed = { assign: Int32Array.from(seed), ...score(seed) };
  if (better(m, origin, fromSeed, best)) best = fromSeed;

  // Lower bounds on the final max: each remaining share alone on its roomiest server, and the average.
  const alone = new Float64Array(n + 1);
  for (let j = n - 1; j >= 0; j--) {
    const s = m.shares[j]!;
    alone[j] = Math.max(alone[j + 1]!, s.load / Math.max(...s.cand.map((c) => m.weight[c]!)));
  }
  let total = 0;
  let capacity = 0;
  for (const s of m.shares) total += s.load;
  m.weight.forEach((w, i) => (capacity += m.eligible[i] ? w : 0));
  const average = total / capacity;

  const loads = new Float64Array(m.names.length);
  const cur = new Int32Array(n);
  let nodes = 0;
  let exhausted = false;
  const dfs = (k: number, partialMax: number, moves: number): void => {
    if (exhausted) return;
    if (++nodes > budget) {
      exhausted = true;
      return;
    }
    const bound = Math.max(partialMax, alone[k]!, average);
    if (lt(best.max, bound)) return;
    if (moves > best.moves && !lt(bound, best.max)) return;
    if (k === n) {
      const got = { ...maxAndSumsq(m, loads), moves, assign: cur };
      if (better(m, origin, got, best)) best = { ...got, assign: Int32Array.from(cur) };
      return;
    }
    const s = m.shares[k]!;
    // The current server first (few moves), then the emptiest (a low max early tightens the bound).
    const order = [s.origin, ...s.cand.slice(1).sort((a, b) => (loads[a]! + s.load) / m.weight[a]! - (loads[b]! + s.load) / m.weight[b]! || a - b)];
    for (const c of order) {
      const mv = moves + Number(c !== s.origin);
      if (mv > maxMoves) continue;
      loads[c]! += s.load;
      cur[k] = c;
      dfs(k + 1, Math.max(partialMax, loads[c]! / m.weight[c]!), mv);
      loads[c]! -= s.load;
    }
  };
  dfs(0, 0, 0);
  return { assign: exhausted ? trim(m, origin, best.assign) : best.assign, exact: !exhausted };
}

/**
 * Moves back, share by share in name order, every share the max does not need elsewhere: the
 * climb's sideways steps and a cut-short search leave some.
 */
function trim(m: Model, origin: Int32Array, assign: Int32Array): Int32Array {
  const out = Int32Array.from(assign);
  const loads = loadsOf(m, out);
  let { max } = maxAndSumsq(m, loads);
  for (const j of m.nameOrder) {
    const from = out[j]!;
    const home = origin[j]!;
    if (from === home) continue;
    const load = m.shares[j]!.load;
    loads[from]! -= load;
    loads[home]! += load;
    const got = maxAndSumsq(m, loads).max;
    if (got <= max) {
      out[j] = home;
      max = got;
    } else {
      loads[home]! -= load;
      loads[from]! += load;
    }
  }
  return out;
}

/**
 * Orders the moves for carrying them out one by one: each time, the move after which the most
 * loaded eligible server is least loaded (ties by share name), so the way there stays low.
 */
function sequence(m: Model, origin: Int32Array, final: Int32Array): PlanMove[] {
  const loads = loadsOf(m, origin);
  const pending = m.shares.map((_, j) => j).filter((j) => final[j] !== origin[j]);
  const out: PlanMove[] = [];
  while (pending.length > 0) {
    let pick = -1;
    let pickMax = Infinity;
    for (const [p, j] of pending.entries()) {
      const s = m.shares[j]!;
      loads[origin[j]!]! -= s.load;
      loads[final[j]!]! += s.load;
      const { max } = maxAndSumsq(m, loads);
      loads[final[j]!]! -= s.load;
      loads[origin[j]!]! += s.load;
      if (pick < 0 || lt(max, pickMax) || (!lt(pickMax, max) && s.name < m.shares[pending[pick]!]!.name)) {
        pick = p;
        pickMax = max;
      }
    }
    const j = pending.splice(pick, 1)[0]!;
    const s = m.shares[j]!;
    loads[origin[j]!]! -= s.load;
    loads[final[j]!]! += s.load;
    out.push({ share: s.name, from: m.names[origin[j]!]!, to: m.names[final[j]!]!, load: s.load });
  }
  return out;
}
