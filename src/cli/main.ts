#!/usr/bin/env node
/**
 * `dsr`: the appliance's command line. Verbs are grouped by object (`dsr session list`,
 * `dsr user add`); every listing takes `--json`. Verbs that read live state talk to the
 * daemon over its admin socket.
 */
import { Command, Option } from 'commander';
import type { Plan } from '../control/resources/planner.js';
import type { CredentialTable } from '../control/tables/credentials.js';
import { formatPlan } from './plan-format.js';
import { adminCall } from '../control/admin.js';
import { DEFAULT_ADMIN_SOCKET, DEFAULT_CREDENTIALS } from '../control/defaults.js';
import { DsrError, ErrorCode, errorMessage } from '../control/errors.js';
import { registerAgentCommands } from './agent.js';
import { registerDemoCommand } from './demo.js';
import { registerLabCommands } from './lab.js';
import { printJson, printTable } from './output.js';
import { registerPortCommands } from './port.js';
import { readPassword } from './secret.js';
import type { ProgRunTime } from '../offload/native.js';
import type { LoadReport, Rate } from '../offload/port-load.js';

/** `offload.show` as the admin socket answers it. */
interface OffloadView {
  kind: string;
  sessions: Record<string, unknown>[];
  trees: Record<string, unknown>[];
  ports: { filter: string; reason?: string; directPeer?: string | null; load?: LoadReport; programs?: Record<string, ProgRunTime> };
  relay: { state: string; reason?: string; framing?: string; lent?: number; entries?: number; requests?: number; replies?: number; kernelShare?: number | null; answeredLate?: number; replayed?: number; refilled?: number; sunk?: number; exits?: Record<string, number>; passes?: Record<string, number>; programs?: Record<string, ProgRunTime> };
}

/** Programs' run times as one line; all 0 means nothing counted them (run-time stats off). */
function runTimes(programs: Record<string, ProgRunTime>): string {
  const list = Object.entries(programs).map(([name, p]) => `${name} ${(p.runTimeNs / 1e6).toFixed(1)} ms in ${p.runCnt} runs`);
  const off = Object.values(programs).every((p) => p.runCnt === 0) ? ' (BPF run-time stats are off: sysctl kernel.bpf_stats_enabled=1 counts them)' : '';
  return `programs: ${list.join(', ')}${off}`;
}

const program = new Command();
program.name('dsr').description('Dynamic session redirector: one SMB server in front of many storage servers').showHelpAfterError();

const socketOption = () => new Option('--socket <path>', 'admin socket of the running DSR').env('DSR_SOCKET').default(DEFAULT_ADMIN_SOCKET);
const jsonOption = () => new Option('--json', 'print JSON');

program
  .command('serve')
  .description('run the DSR daemon in the foreground')
  .requiredOption('--config <file>', 'configuration file (YAML)')
  .action(async (o: { config: string }) => {
    // The daemon's modules load here, not at start: the admin verbs need none of them.
    const [{ loadConfig }, { createLogger }, { DsrServer }] = await Promise.all([import('../control/config.js'), import('../control/log.js'), import('../control/server.js')]);
    const config = loadConfig(o.config);
    const log = createLogger(config.log.level, config.log.file ?? 2);
    const server = new DsrServer(config, log);
    await server.start();
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'server.stopping', signal }, 'DSR stopping');
      void server.stop().then(() => process.exit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

/** The credential table a `dsr user` verb works on: --credentials, else the config's, else the default. */
async function credentialTable(o: { credentials?: string; config?: string }): Promise<CredentialTable> {
  const { CredentialTable } = await import('../control/tables/credentials.js');
  if (o.credentials) return CredentialTable.load(o.credentials);
  if (o.config) return CredentialTable.load((await import('../control/config.js')).loadConfig(o.config).credentials);
  return CredentialTable.load(DEFAULT_CREDENTIALS);
}

const user = program.command('user').description("the DSR's credential table (source paragraph 0061)");
const tableOptions = (c: Command) =>
  c.option('--credentials <file>', `credential table (default: the config's, else ${DEFAULT_CREDENTIALS})`).option('--config <file>', 'take the credential table path from this configuration');

tableOptions(user.command('add').argument('<name>').description('add a user or change a password (password read from stdin or prompted, never from arguments)')).action(
  async (name: string, o: { credentials?: string; config?: string }) => {
    const table = await credentialTable(o);
    const password = await readPassword(`password for ${name}`);
    const added = table.set(name, password);
    table.save();
    process.stdout.write(`${added ? 'added' : 'updated'} ${name} in ${table.path}\n`);
  },
);

tableOptions(user.command('del').argument('<name>').description('remove a user')).action(async (name: string, o: { credentials?: string; config?: string }) => {
  const table = await credentialTable(o);
  if (!table.delete(name)) throw new DsrError(ErrorCode.USAGE, `no user ${name} in ${table.path}`);
  table.save();
  process.stdout.write(`removed ${name} from ${table.path}\n`);
});

tableOptions(user.command('list').description('list users (names only; hashes never leave the table)'))
  .addOption(jsonOption())
  .action(async (o: { credentials?: string; config?: string; json?: boolean }) => {
    const rows = (await credentialTable(o))
      .list()
      .map((u) => ({ name: u.name, created: u.created }));
    if (o.json) printJson(rows);
    else printTable(rows, [['name', 'USER'], ['created', 'CREATED']]);
  });

/** A `<object> list` verb that shows one of the daemon's live tables. */
function liveList(object: string, description: string, columns: [string, string][]): Command {
  const verb = program.command(object).description(description);
  verb
    .command('list')
    .description(`list the live ${object} table`)
    .addOption(socketOption())
    .addOption(jsonOption())
    .action(async (o: { socket: string; json?: boolean }) => {
      const rows = (await adminCall(o.socket, `${object}.list`)) as Record<string, unknown>[];
      if (o.json) printJson(rows);
      else printTable(rows, columns);
    });
  return verb;
}

liveList('session', 'client sessions (source Fig. 5)', [
  ['sessionId', 'SESSION'],
  ['user', 'USER'],
  ['state', 'STATE'],
  ['dialect', 'DIALECT'],
  ['clientAddress', 'CLIENT'],
  ['created', 'CREATED'],
]);
liveList('tree', 'tree connects (the connection table, source Fig. 6)', [
  ['sessionId', 'SESSION'],
  ['treeId', 'TREE'],
  ['share', 'SHARE'],
  ['kind', 'KIND'],
  ['server', 'SERVER'],
  ['backendSessionId', 'BACKEND SESSION'],
  ['backendTreeId', 'BACKEND TREE'],
]);
liveList('open', 'open handles (client FileId -> server and backend FileId)', [
  ['sessionId', 'SESSION'],
  ['treeId', 'TREE'],
  ['fileId', 'FILEID'],
  ['path', 'PATH'],
  ['kind', 'KIND'],
  ['server', 'SERVER'],
  ['backendFileId', 'BACKEND FILEID'],
  ['oplockLevel', 'OPLOCK'],
  ['lease', 'LEASE'],
  ['locks', 'LOCKS'],
]);
liveList('backend', 'connections and sessions the DSR holds to storage servers, per client connection', [
  ['connectionId', 'CONNECTION'],
  ['server', 'SERVER'],
  ['address', 'ADDRESS'],
  ['dialect', 'DIALECT'],
  ['sessions', 'SESSIONS'],
]);
liveList('resource', 'shares and the servers that serve them (the resource table)', [
  ['name', 'SHARE'],
  ['active', 'SERVER'],
  ['activeAddress', 'ADDRESS'],
  ['servers', 'CAN BE SERVED BY'],
  ['comment', 'COMMENT'],
])
  .command('move')
  .description('move a share to another server that can serve it, live: open files are reopened there and clients see a pause (source Fig. 8)')
  .argument('<share>', 'the share')
  .requiredOption('--to <server>', 'the server to serve it from now on')
  .addOption(socketOption())
  .addOption(jsonOption())
  .action(async (share: string, o: { to: string; socket: string; json?: boolean }) => {
    const r = (await adminCall(o.socket, 'resource.move', { share, to: o.to }, 60_000)) as { share: string; from: string; to: string; trees: number; opens: number; lostOpens: number; ms: number };
    if (o.json) printJson(r);
    else process.stdout.write(`${r.share}: ${r.from} -> ${r.to}, ${r.trees} tree(s) and ${r.opens} open file(s) moved${r.lostOpens ? `, ${r.lostOpens} could not be reopened` : ''} in ${r.ms} ms\n`);
  });

program
  .command('rebalance')
  .description("even out the servers' load by moving shares live (source Fig. 8); --dry-run prints the plan only")
  .option('--dry-run', 'print the plan, move nothing')
  .addOption(socketOption())
  .addOption(jsonOption())
  .action(async (o: { dryRun?: boolean; socket: string; json?: boolean }) => {
    const r = (await adminCall(o.socket, 'rebalance.run', { dryRun: o.dryRun === true }, 300_000)) as { plan: Plan; moved: unknown[] };
    if (o.json) printJson(o.dryRun ? r.plan : r);
    else process.stdout.write(formatPlan(r.plan, false) + (o.dryRun ? '' : `${r.moved.length} move(s) carried out\n`));
  });

program
  .command('status')
  .description('what the running DSR is doing')
  .addOption(socketOption())
  .addOption(jsonOption())
  .action(async (o: { socket: string; json?: boolean }) => {
    const s = (await adminCall(o.socket, 'status')) as Record<string, unknown>;
    if (o.json) printJson(s);
    else for (const [k, v] of Object.entries(s)) process.stdout.write(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
  });

const offload = program.command('offload').description('the fast path');
offload
  .command('show')
  .description('the session and tree rules pushed to the fast path, why traffic stays in user space, and the storage port filter (counters, load per server)')
  .addOption(socketOption())
  .addOption(jsonOption())
  .action(async (o: { socket: string; json?: boolean }) => {
    const s = (await adminCall(o.socket, 'offload.show')) as OffloadView;
    if (o.json) return printJson(s);
    process.stdout.write(`fast path: ${s.kind}\n`);
    printTable(s.sessions, [['sessionId', 'SESSION'], ['connectionId', 'CONN'], ['pass', 'PASSED TO USER SPACE BECAUSE']]);
    printTable(s.trees, [['sessionId', 'SESSION'], ['treeId', 'TREE'], ['share', 'SHARE'], ['pass', 'PASSED TO USER SPACE BECAUSE']]);
    const r = s.relay;
    process.stdout.write(`\nkernel SMB2 relay: ${r.state}${r.framing ? ` (${r.framing})` : ''}${r.reason ? ` (${r.reason})` : ''}\n`);
    if (r.entries !== undefined) {
      const share = r.kernelShare === null || r.kernelShare === undefined ? '-' : `${(100 * r.kernelShare).toFixed(2)}%`;
      process.stdout.write(`  connections lent now ${r.lent}, lent ${r.entries} time(s) (${r.sunk ?? 0} long enough that Node stopped reading them); requests ${r.requests} and replies ${r.replies} forwarded by the kernel; kernel share of READ/WRITE ${share}\n`);
      const list = (m: Record<string, number> | undefined) => Object.entries(m ?? {}).map(([k, n]) => `${k} ${n}`).join(', ') || '-';
      process.stdout.write(`  answered through Node after a take-back ${r.answeredLate}, sent again from the kernel's journal after a server loss ${r.replayed}, READ responses finished from another server ${r.refilled ?? 0}\n`);
      process.stdout.write(`  taken back because: ${list(r.exits)}\n  passed to user space because: ${list(r.passes)}\n`);
    }
    if (r.programs) process.stdout.write(`  ${runTimes(r.programs)}\n`);
    const f = s.ports;
    process.stdout.write(`\nstorage port filter: ${f.filter}${f.reason ? ` (${f.reason})` : ''}${f.directPeer ? `, lab direct path open for ${f.directPeer}` : ''}\n`);
    if (f.programs) process.stdout.write(`  ${runTimes(f.programs)}\n`);
    if (f.load) {
      process.stdout.write(`load over the last ${f.load.windowSeconds.toFixed(1)} s:\n`);
      const mbps = (r: Rate) => `${(r.bytesPerSecond / 1e6).toFixed(2)} MB/s ${Math.round(r.packetsPerSecond)} pkt/s`;
      printTable(
        f.load.servers.map((l) => ({ server: l.server, from: mbps(l.fromServer), to: mbps(l.toServer) })),
        [['server', 'SERVER'], ['from', 'FROM SERVER'], ['to', 'TO SERVER']],
      );
    }
  });

offload
  .command('relay')
  .argument('<mode>', 'off, strparser or cut-through')
  .description('turn the kernel SMB2 relay on (with that framing) or off while the DSR runs; off takes every connection back first')
  .addOption(socketOption())
  .addOption(jsonOption())
  .action(async (mode: string, o: { socket: string; json?: boolean }) => {
    const r = await adminCall(o.socket, 'relay.set', { mode });
    if (o.json) return printJson(r);
    const v = r as { state: string; framing?: string; reason?: string };
    process.stdout.write(`kernel SMB2 relay: ${v.state}${v.framing ? ` (${v.framing})` : ''}${v.reason ? ` (${v.reason})` : ''}\n`);
  });

registerPortCommands(program);
registerAgentCommands(program);
registerLabCommands(program);
registerDemoCommand(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`dsr: ${errorMessage(e)}\n`);
  process.exit(1);
});
