/**
 * Text of a rebalancing plan for `dsr rebalance --dry-run`: a summary line saying what changes
 * or why nothing does, the moves in order, and every server's load before and after. With
 * `--json` the plan object itself (it is plain JSON as the planner returns it).
 */
import type { LoadSpread, Plan, PlanReason } from '../control/resources/planner.js';
import { formatTable } from './output.js';

export function formatPlan(plan: Plan, json: boolean): string {
  if (json) return JSON.stringify(plan, null, 2) + '\n';
  const lines = [summary(plan)];
  if (!plan.exact) lines.push('search budget reached: the best plan found, not proven the best there is');
  for (const s of plan.skipped) lines.push(`skipped ${s.share}: its server is ${s.reason === 'server-unhealthy' ? 'unhealthy (failover moves it)' : 'unknown'}`);
  let out = lines.join('\n') + '\n\n';
  if (plan.moves.length > 0) {
    out += formatTable(
      plan.moves.map((m, i) => ({ ...m, step: i + 1, load: num(m.load) })),
      [['step', 'STEP'], ['share', 'SHARE'], ['load', 'LOAD'], ['from', 'FROM'], ['to', 'TO']],
    );
    out += '\n';
  }
  const weighted = plan.servers.some((s) => s.weight !== 1);
  out += formatTable(
    plan.servers.map((s) => ({
      ...s,
      healthy: s.healthy ? 'yes' : 'no',
      compared: s.eligible ? 'yes' : 'no',
      before: num(s.before),
      after: num(s.after),
    })),
    [
      ['name', 'SERVER'],
      ['healthy', 'HEALTHY'],
      ['compared', 'COMPARED'],
      ['weight', 'WEIGHT'],
      ['before', weighted ? 'BEFORE (LOAD/WEIGHT)' : 'BEFORE'],
      ['after', weighted ? 'AFTER (LOAD/WEIGHT)' : 'AFTER'],
    ],
  );
  return out;
}

function summary(plan: Plan): string {
  const limit = `threshold ${num(plan.threshold * 100)}%${plan.maxMoves === null ? '' : `, at most ${plan.maxMoves} moves`}`;
  if (plan.reason === null) {
    const n = plan.moves.length;
    return `${n} move${n === 1 ? '' : 's'}: max/min ${spread(plan.before)} -> ${spread(plan.after)}; ${limit}`;
  }
  return `no moves: ${reasonText(plan.reason, plan)}; max/min ${spread(plan.before)}; ${limit}`;
}

function reasonText(reason: PlanReason, plan: Plan): string {
  switch (reason) {
    case 'too-few-servers':
      return 'fewer than two healthy servers can serve a share';
    case 'below-threshold':
      return `the most loaded server is within ${num(plan.threshold * 100)}% of the least loaded`;
    case 'no-movable-share':
      return 'no share has a second healthy server able to serve it';
    case 'no-improvement':
      return plan.maxMoves === null ? 'no assignment lowers the highest load' : `no assignment within ${plan.maxMoves} moves lowers the highest load`;
  }
}

function spread(s: LoadSpread): string {
  return `${num(s.max)}/${num(s.min)} (${s.ratio === null ? 'unbounded' : s.ratio.toFixed(2)})`;
}

/** Loads are often fractional MiB/s: two decimals at most, no trailing zeros. */
function num(x: number): string {
  return String(Math.round(x * 100) / 100);
}
