/**
 * `dsr agent` (the announce agent beside smbd) and `dsr server list|discover` (the storage
 * servers as the resource table has them: health, reason, last seen, load, active shares).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { adminCall } from '../control/admin.js';
import { ANNOUNCE_PORT, DEFAULT_ADMIN_SOCKET } from '../control/defaults.js';
import type { ServerView } from '../control/tables/resources.js';
import { printJson, printTable } from './output.js';

function parseInteger(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('a whole number');
  return Number(v);
}

/** "198.18.1.1" or "198.18.1.1:4455". */
function parseTarget(v: string): { address: string; port: number } {
  const m = /^([^:]+)(?::(\d+))?$/.exec(v);
  if (!m) throw new InvalidArgumentError('ADDRESS[:PORT]');
  return { address: m[1]!, port: m[2] ? Number(m[2]) : ANNOUNCE_PORT };
}

const socketOption = () => new Option('--socket <path>', 'admin socket of the running DSR').env('DSR_SOCKET').default(DEFAULT_ADMIN_SOCKET);

export function registerAgentCommands(program: Command): void {
  program
    .command('agent')
    .description("announce this storage server's shares and load to the DSR (runs beside smbd, on the storage network)")
    .requiredOption('--server <name>', 'this server\'s name as the DSR knows it')
    .requiredOption('--dsr <address[:port]>', `the DSR's storage address (announce port ${ANNOUNCE_PORT} by default)`, parseTarget)
    .requiredOption('--key-file <path>', 'the shared announce key (hex, mode 0600)')
    .option('--smb-conf <path>', "smbd's configuration, for the shares", '/etc/samba/smb.conf')
    .option('--interval <ms>', 'heartbeat interval', parseInteger, 250)
    .option('--smb-port <port>', "smbd's TCP port", parseInteger, 445)
    .option('--source <address>', 'send from this address (default: the kernel picks)')
    .option('--log-level <level>', 'pino level', 'info')
    .action(async (o: { server: string; dsr: { address: string; port: number }; keyFile: string; smbConf: string; interval: number; smbPort: number; source?: string; logLevel: string }) => {
      // Loaded here, not at start: every other verb would pay for the agent's modules.
      const [{ createLogger }, { AnnounceAgent }] = await Promise.all([import('../control/log.js'), import('../agent/agent.js')]);
      const log = createLogger(o.logLevel as 'info', 2);
      const agent = new AnnounceAgent(
        { server: o.server, dsr: o.dsr, smbConf: o.smbConf, keyFile: o.keyFile, intervalMs: o.interval, smbPort: o.smbPort, ...(o.source !== undefined && { localAddress: o.source }) },
        log,
      );
      await agent.start();
      const stop = () => void agent.stop().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });

  const server = program.command('server').description('the storage servers: health, load and the shares they serve');
  server
    .command('list')
    .description('servers with health, reason, last seen, load and active shares')
    .addOption(socketOption())
    .addOption(new Option('--json', 'print JSON'))
    .action(async (o: { socket: string; json?: boolean }) => {
      const rows = (await adminCall(o.socket, 'server.list')) as ServerView[];
      if (o.json) return printJson(rows);
      printTable(
        rows.map((r) => ({
          ...r,
          cpu: r.load ? `${Math.round(r.load.cpu * 100)}%` : null,
          mem: r.load ? `${Math.round((1 - r.load.memAvailableBytes / r.load.memTotalBytes) * 100)}%` : null,
        })),
        [
          ['name', 'SERVER'],
          ['address', 'ADDRESS'],
          ['origin', 'ORIGIN'],
          ['health', 'HEALTH'],
          ['reason', 'REASON'],
          ['lastSeen', 'LAST SEEN'],
          ['cpu', 'CPU'],
          ['mem', 'MEM'],
          ['activeShares', 'ACTIVE SHARES'],
        ],
      );
    });
  server
    .command('discover')
    .description("enumerate a server's disk shares over srvsvc and learn them")
    .argument('<server>')
    .addOption(socketOption())
    .addOption(new Option('--json', 'print JSON'))
    .action(async (name: string, o: { socket: string; json?: boolean }) => {
      const rows = (await adminCall(o.socket, 'server.discover', { server: name }, 15000)) as { name: string; comment: string }[];
      if (o.json) printJson(rows);
      else printTable(rows, [['name', 'SHARE'], ['comment', 'COMMENT']]);
    });
}
