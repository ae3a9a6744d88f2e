/**
 * `dsr port list|set`: the storage switch's port map of the running DSR, over its admin socket.
 * `set` changes last until the DSR restarts; the configuration (servers.NAME.switchPort, .mac)
 * is what a restart programs.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { adminCall } from '../control/admin.js';
import { DEFAULT_ADMIN_SOCKET } from '../control/defaults.js';
import { DsrError, ErrorCode } from '../control/errors.js';
import type { PortCounters, PortView } from '../offload/portmap.js';
import { printJson, printTable } from './output.js';

const socketOption = () => new Option('--socket <path>', 'admin socket of the running DSR').env('DSR_SOCKET').default(DEFAULT_ADMIN_SOCKET);

/** 'none' clears a field; anything else is passed on for the daemon to check. */
const orNone = (v: string): string | null => (v === 'none' ? null : v);

function onOff(v: string): boolean {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new InvalidArgumentError('on or off');
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

/** "12 pkts 3456 B, 2 dropped" for one direction of a port (the filter's counters), '-' without a filter. */
function directionCell(c: PortCounters | undefined, dir: 'ingress' | 'egress'): string {
  if (!c) return '-';
  const d = c[dir];
  return `${d.allowed.packets} pkts ${d.allowed.bytes} B, ${d.dropped.packets} dropped`;
}

function printPorts(rows: PortView[]): void {
  printTable(
    rows.map((r) => ({
      ...r,
      fromServer: directionCell(r.counters, 'ingress'),
      toServer: directionCell(r.counters, 'egress'),
      state: r.up ? 'up' : r.oper === 'missing' ? 'missing' : `down (${r.admin ? r.oper : 'admin down'})`,
      isolated: yesNo(r.isolated),
      staticFdb: yesNo(r.staticFdb),
      learning: yesNo(r.learning),
    })),
    [
      ['port', 'PORT'],
      ['ifindex', 'IFINDEX'],
      ['state', 'STATE'],
      ['server', 'SERVER'],
      ['mac', 'MAC'],
      ['ipv4', 'IPV4'],
      ['isolated', 'ISOLATED'],
      ['staticFdb', 'STATIC FDB'],
      ['learning', 'LEARNING'],
      ['lastChange', 'LAST CHANGE'],
      ['fromServer', 'FROM SERVER'],
      ['toServer', 'TO SERVER'],
    ],
  );
}

export function registerPortCommands(program: Command): void {
  const port = program.command('port').description("the storage switch's port map: which server sits on which port, isolation, link state");

  port
    .command('list')
    .description('storage ports with their link state, server, MAC, IPv4, isolation and static FDB entry, as the kernel has them now, and the port filter\'s counters (--json: per direction and reason)')
    .addOption(socketOption())
    .addOption(new Option('--json', 'print JSON'))
    .action(async (o: { socket: string; json?: boolean }) => {
      const rows = (await adminCall(o.socket, 'port.list')) as PortView[];
      if (o.json) printJson(rows);
      else printPorts(rows);
    });

  port
    .command('set')
    .description('change the port map of the running DSR (until it restarts) and reprogram the switch')
    .argument('<port>', 'storage port, e.g. sp1')
    .option('--server <name>', 'place this configured server on the port (it leaves its old port, keeping its MAC and IPv4)')
    .option('--empty', 'take the server off the port (its static FDB entry goes)')
    .addOption(new Option('--mac <mac|none>', "the server's MAC: pinned with a static FDB entry, learning off; none: the port learns").argParser(orNone))
    .addOption(new Option('--ipv4 <address|none>', "the server's IPv4 address on the storage network").argParser(orNone))
    .addOption(new Option('--isolated <on|off>', 'port isolation (off lets this port reach other non-isolated ports)').argParser(onOff))
    .addOption(socketOption())
    .addOption(new Option('--json', 'print JSON'))
    .action(async (name: string, o: { server?: string; empty?: boolean; mac?: string | null; ipv4?: string | null; isolated?: boolean; socket: string; json?: boolean }) => {
      if (o.server !== undefined && o.empty) throw new DsrError(ErrorCode.USAGE, '--server and --empty exclude each other');
      const args: Record<string, unknown> = { port: name };
      if (o.server !== undefined) args.server = o.server;
      if (o.empty) args.server = null;
      if (o.mac !== undefined) args.mac = o.mac;
      if (o.ipv4 !== undefined) args.ipv4 = o.ipv4;
      if (o.isolated !== undefined) args.isolated = o.isolated;
      const row = (await adminCall(o.socket, 'port.set', args)) as PortView;
      if (o.json) printJson(row);
      else printPorts([row]);
    });
}
