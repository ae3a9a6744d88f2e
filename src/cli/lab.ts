/**
 * `dsr lab up|down|status|exec`: the network-namespace lab (src/lab/lab.ts) from the command line.
 * Human output by default, `--json` for scripts; errors propagate to main's handler (one line, exit 1).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DsrError, ErrorCode, errorMessage } from '../control/errors.js';
import type { RelayMode } from '../control/config.js';
import type { FaultResult, LabStatus } from '../lab/lab.js';
import { DEFAULT_LAB_NAME, DEFAULT_SERVERS, MAX_SERVERS } from '../lab/topology.js';
import { printJson, printTable } from './output.js';

/** The lab's modules, loaded by the verb that runs (not for every `dsr` verb). */
const labApi = () => import('../lab/lab.js');

const nameOption = () =>
  new Option('--name <name>', 'lab name: its namespaces are <name>-client, <name>-dsr, <name>-s1..').default(DEFAULT_LAB_NAME);
const jsonOption = () => new Option('--json', 'print JSON');

function parseServerCount(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > MAX_SERVERS) throw new InvalidArgumentError(`1 to ${MAX_SERVERS}`);
  return n;
}

const say = (text: string) => process.stdout.write(text + '\n');

function printStatus(s: LabStatus): void {
  const nameArg = s.name === DEFAULT_LAB_NAME ? '' : ` --name ${s.name}`;
  const exists = s.up || s.servers.length > 0 || s.dsr.running || s.ports.some((p) => p.carrier);
  const broken = `DOWN (broken: dsr lab up${nameArg} rebuilds it, dsr lab down${nameArg} removes it)`;
  say(`lab ${s.name}: ${s.up ? 'up' : exists ? broken : 'down'}`);
  if (!s.up && !exists) return;
  const proc = (what: string, pid: number | undefined, running: boolean) =>
    pid === undefined ? '-' : `${what} ${pid} ${running ? 'running' : 'DEAD'}`;
  say('');
  printTable(
    [
      { host: 'client', namespace: s.client.namespace, address: s.client.address, port: '-', process: '-', shares: '-' },
      {
        host: 'dsr',
        namespace: s.dsr.namespace,
        address: `${s.dsr.clientAddress} ${s.dsr.storageAddress} ${s.dsr.heartbeatAddress}`,
        port: '-',
        process: s.dsr.enabled ? proc('dsr', s.dsr.pid, s.dsr.running) : 'not started (--no-dsr)',
        shares: '-',
      },
      ...s.servers.map((v) => ({
        host: v.name,
        namespace: v.namespace,
        address: v.address,
        port: v.port,
        process: `${proc('smbd', v.smbdPid, v.running)}, ${proc('agent', v.agentPid, v.agentRunning)}`,
        shares: v.shares.map((x) => x.name),
      })),
    ],
    [
      ['host', 'HOST'],
      ['namespace', 'NAMESPACE'],
      ['address', 'ADDRESS'],
      ['port', 'PORT'],
      ['process', 'PROCESS'],
      ['shares', 'SHARES'],
    ],
  );
  say('');
  printTable(
    s.ports.map((p) => ({
      port: p.name,
      server: p.server ?? '(empty)',
      carrier: p.carrier ? 'yes' : 'no',
      rx: `${p.tcp.rxPackets} pkts ${p.tcp.rxBytes} B`,
      tx: `${p.tcp.txPackets} pkts ${p.tcp.txBytes} B`,
    })),
    [
      ['port', 'STORAGE PORT'],
      ['server', 'SERVER'],
      ['carrier', 'CARRIER'],
      ['rx', 'TCP FROM SERVER'],
      ['tx', 'TCP TO SERVER'],
    ],
  );
  say('');
  say(`users: ${s.users.map((u) => `${u.name} / ${u.password}`).join(', ')}`);
  if (s.dsr.enabled) {
    say(`DSR: ${s.dsr.clientAddress}:${s.dsr.port}, config ${s.dsr.configPath}, admin socket ${s.dsr.adminSocket}, log ${s.dsr.logFile}`);
  }
  const [user] = s.users;
  const target = s.dsr.enabled ? s.dsr.clientAddress : s.servers[0]?.address;
  // The client host reaches only the DSR; without one, a server is reachable from the dsr host.
  if (s.up && user && target) {
    const host = s.dsr.enabled ? 'client' : 'dsr';
    say(`try: dsr lab exec${nameArg} ${host} -- smbclient -L //${target} -U ${user.name}%${user.password} -m SMB3`);
  }
}

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('the test lab: an SMB client, the DSR and Samba servers in network namespaces on this machine (needs root)');

  lab
    .command('up')
    .description('build the lab and start its smbd servers and the DSR (an existing healthy lab is left alone)')
    .addOption(new Option('--servers <n>', `storage servers, 1 to ${MAX_SERVERS}`).argParser(parseServerCount).default(DEFAULT_SERVERS))
    .addOption(nameOption())
    .option('--no-dsr', 'do not start the DSR: network and servers only')
    .addOption(new Option('--relay <mode>', "the DSR's kernel SMB2 relay (config relay.mode; default: DSR_LAB_RELAY, else cut-through)").choices(['off', 'strparser', 'cut-through']))
    .addOption(jsonOption())
    .action(async (o: { servers: number; name: string; dsr: boolean; relay?: RelayMode; json?: boolean }) => {
      // Ctrl-C or SIGTERM while building: stop at the next step and tear down what was made.
      const abort = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => {
        if (abort.signal.aborted) return;
        process.stderr.write(`dsr lab up: ${signal}: stopping and tearing the lab down\n`);
        abort.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        if (!o.json) process.stderr.write(`bringing lab ${o.name} up: ${o.servers} server(s)${o.dsr ? ' and the DSR' : ', no DSR'}\n`);
        const status = await (await labApi()).labUp({ name: o.name, servers: o.servers, dsr: o.dsr, ...(o.relay && { relay: o.relay }), signal: abort.signal });
        if (o.json) printJson(status);
        else printStatus(status);
      } catch (e) {
        if (!abort.signal.aborted) throw e;
        process.stderr.write(`dsr lab up: ${errorMessage(e)}\n`);
        // 128 + SIGINT, as a shell reports an interrupted command.
        process.exitCode = 130;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  lab
    .command('down')
    .description('stop every process of the lab and remove its namespaces and directories')
    .addOption(nameOption())
    .action(async (o: { name: string }) => {
      await (await labApi()).labDown(o.name);
      say(`lab ${o.name} removed`);
    });

  lab
    .command('status')
    .description('namespaces, processes, storage-port carriers and TCP counters')
    .addOption(nameOption())
    .addOption(jsonOption())
    .action(async (o: { name: string; json?: boolean }) => {
      const status = await (await labApi()).labStatus(o.name);
      if (o.json) printJson(status);
      else printStatus(status);
    });

  lab
    .command('direct')
    .description('route the client straight to the servers through the dsr namespace (on), or isolate them again (off); for direct-path baselines')
    .argument('<on|off>')
    .addOption(nameOption())
    .action(async (state: string, o: { name: string }) => {
      if (state !== 'on' && state !== 'off') throw new DsrError(ErrorCode.USAGE, `expected on or off, got ${JSON.stringify(state)}`);
      await (await labApi()).labDirectPath(o.name, state === 'on');
      process.stdout.write(`lab ${o.name}: direct path ${state}\n`);
    });

  const printFault = (r: FaultResult, json?: boolean) => {
    if (json) return printJson(r);
    if (r.how === 'kill') say(`${r.server}: SIGKILL to smbd pids ${r.pids.join(' ')} at ${r.at}`);
    else if (r.how === 'link') say(`${r.server}: storage port ${r.port} down at ${r.at}`);
    else say(`${r.server}: storage port ${r.port} up${r.pids.length ? `, smbd restarted (pid ${r.pids.join(' ')})` : ''} at ${r.at}`);
  };

  lab
    .command('fail')
    .description("make a server fail: kill every process of its smbd by pid (kill), or bring its storage port down (link)")
    .argument('<server>', 'server1..server4')
    .addOption(new Option('--how <how>', 'kill or link').choices(['kill', 'link']).default('kill'))
    .addOption(nameOption())
    .addOption(jsonOption())
    .action(async (server: string, o: { how: 'kill' | 'link'; name: string; json?: boolean }) => printFault(await (await labApi()).labFail(o.name, server, o.how), o.json));

  lab
    .command('restore')
    .description('bring a failed server back: its storage port up, smbd restarted if dead')
    .argument('<server>', 'server1..server4')
    .addOption(nameOption())
    .addOption(jsonOption())
    .action(async (server: string, o: { name: string; json?: boolean }) => printFault(await (await labApi()).labRestore(o.name, server), o.json));

  lab
    .command('add-server')
    .description('start one more server (smbd and its announce agent) on the next empty storage port; the DSR learns it from the agent')
    .addOption(nameOption())
    .addOption(jsonOption())
    .action(async (o: { name: string; json?: boolean }) => {
      const status = await (await labApi()).labAddServer(o.name);
      if (o.json) printJson(status);
      else printStatus(status);
    });

  lab
    .command('exec')
    .description('run a command on a lab host (client, dsr, server1..server4) and exit with its status')
    .usage('[--name NAME] <host> -- <cmd...>')
    .argument('<host>', 'client, dsr or server1..server4')
    .argument('<cmd...>', 'the command and its arguments, after --')
    .addOption(nameOption())
    .action(async (host: string, cmd: string[], o: { name: string }) => {
      // The command shares our terminal and gets Ctrl-C itself; we stay to report its status.
      const ignore = () => {};
      process.on('SIGINT', ignore);
      try {
        const r = await (await labApi()).labExec(o.name, host, cmd, { inherit: true });
        process.exitCode = r.code;
      } finally {
        process.off('SIGINT', ignore);
      }
    });
}
