/**
 * bench/session-setup: NTLMv2 session setups per second through the DSR and against a lab
 * smbd, with the same client (bench/session-setup-worker, our SMB2 client) in the same run,
 * and the ratio. Needs root (it brings up its own lab and tears it down).
 *
 *   node dist/bench/session-setup.js [--count N] [--parallel P] [--rounds R]
 *
 * The client runs in the dsr namespace, the one host that reaches both the DSR's client-side
 * address and a storage server. Rounds alternate DSR and smbd so drift hits both alike.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './lib/args.js';
import { labDown, labUp } from '../src/lab/lab.js';

const values = benchArgs('usage: node dist/bench/session-setup.js [--count N] [--parallel P] [--rounds R]', {
  count: { type: 'string', default: '400' },
  parallel: { type: 'string', default: '8' },
  rounds: { type: 'string', default: '3' },
});
const WORKER = fileURLToPath(new URL('./session-setup-worker.js', import.meta.url));
const name = `db${randomBytes(2).toString('hex')}`;

function run(ns: string, host: string, user: string, password: string): number {
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, WORKER, host, values.count!, values.parallel!, user, password], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`worker against ${host} failed: ${r.stderr || r.stdout}`);
  const { logons, seconds } = JSON.parse(r.stdout) as { logons: number; seconds: number };
  return logons / seconds;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const lab = await labUp({ name, servers: 1 });
try {
  const user = lab.users[0]!;
  const ns = lab.namespaces.dsr!;
  const dsr: number[] = [];
  const smbd: number[] = [];
  for (let i = 0; i < Number(values.rounds); i++) {
    dsr.push(run(ns, lab.dsr.clientAddress, user.name, user.password));
    smbd.push(run(ns, lab.servers[0]!.address, user.name, user.password));
  }
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
  process.stdout.write(`session setups/s (connect + NEGOTIATE 3.1.1 + NTLMv2 SESSION_SETUP + LOGOFF), ${values.count} per round, ${values.parallel} in parallel\n`);
  process.stdout.write(`  DSR   ${lab.dsr.clientAddress}: median ${median(dsr).toFixed(0)}  (rounds: ${fmt(dsr)})\n`);
  process.stdout.write(`  smbd  ${lab.servers[0]!.address}: median ${median(smbd).toFixed(0)}  (rounds: ${fmt(smbd)})\n`);
  process.stdout.write(`  ratio DSR / smbd: ${(median(dsr) / median(smbd)).toFixed(2)}  (goal >= 1.00)\n`);
} finally {
  await labDown(name);
}
