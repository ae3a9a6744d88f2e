/**
 * The lab: a DSR, one SMB client host and up to four real Samba servers, each in its own Linux
 * network namespace on this machine (root only). Nothing appears in the root namespace: veth
 * pairs run straight between namespaces, and every lab uses the same RFC 2544 addresses.
 *
 *   <name>-client          <name>-dsr (ip_forward 0)                           <name>-s1 .. -s4
 *   eth0 198.18.0.2/24 ─── cp0 198.18.0.1/24  client side; the DSR listens on :445
 *                          hb0 198.18.2.1/24  heartbeat, unused yet (peer hb0-peer down: unplugged)
 *                          br0 198.18.1.1/24  the integrated four-port storage switch (agents: UDP :4455)
 *                              198.18.1.2/24  the DSR's health probes and share discovery
 *                           ├─ sp1 ─────────────────────────── eth0 198.18.1.11/24  server1 (smbd, dsr agent)
 *                           ├─ sp2 ─────────────────────────── eth0 198.18.1.12/24  server2 (smbd, dsr agent)
 *                           ├─ sp3 ─────────────────────────── eth0 198.18.1.13/24  server3 (smbd, dsr agent)
 *                           └─ sp4 ── server4 with --servers 4; otherwise an empty port whose peer
 *                                     sp4-peer stays in <name>-dsr, down (no carrier), until
 *                                     `lab add-server` moves it into a new server namespace
 *
 * Port counters: nftables table `netdev dsr_lab_ports` in <name>-dsr counts TCP packets and bytes
 * on each spN, ingress (rx, from the server) and egress (tx, to the server), except the DSR's
 * health probes and share discovery, which it sends from br0's second address 198.18.1.2.
 * The port map: each server's eth0 has a fixed MAC (02:00:c6:12:01:0b for server1); the DSR's
 * config names br0 as its switch and each server's port and MAC, and the DSR isolates the ports
 * and pins the MACs at start (src/offload/portmap.ts), and attaches its tc port filter (only
 * server <-> 198.18.1.1 passes; src/offload/port-filter.ts). A lab without the DSR leaves br0 open.
 * Files: /run/dsr-lab/<name>/ holds state.json, dsr.yaml, credentials.json, agent.key (0600), the
 * DSR's log and dsr-state/resources.json, each server's smbd directories and agent output;
 * /var/lib/dsr-lab/<name>/ holds serverN/dataN, serverN/docsN
 * and san (one directory exported by server1 and server2, the shared SAN of a failover pair).
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { adminCall } from '../control/admin.js';
import { resolveConfig, type ConfigInput, type RelayMode } from '../control/config.js';
import { DsrError, ErrorCode, errorMessage } from '../control/errors.js';
import { component, silentLogger, type Logger } from '../control/log.js';
import { CredentialTable } from '../control/tables/credentials.js';
import {
  addNetns,
  deleteNetns,
  inNetns,
  ipBatch,
  linkCarriers,
  netnsExists,
  netnsPids,
  nftChainCounters,
  nftLoad,
  pidInNetns,
  runIn,
  setSysctl,
  startDaemon,
  type PacketCounter,
} from './netns.js';
import { fileTail, killPids, missingCommands, pidAlive, pidCommandLine, sleep, spawnDetached, waitUntil, type RunOptions } from './process.js';
import { ensureLabUsers, prepareServer, removeLabUsers, startSmbd } from './smbd.js';
import {
  ADDRESSES,
  AGENT_INTERVAL_MS,
  allNamespaces,
  ANNOUNCE_PORT,
  BRIDGE_MAC,
  checkLabName,
  checkServerCount,
  COUNTER_TABLE,
  DATA_ROOT,
  DEFAULT_LAB_NAME,
  DEFAULT_SERVERS,
  dsrNamespace,
  hostNamespace,
  IFACES,
  LAB_USERS,
  labDataDir,
  labStateDir,
  labStatePath,
  labPlan,
  MAX_SERVERS,
  PREFIX_LEN,
  RUN_ROOT,
  serverNamespace,
  SMB_PORT,
  type LabPlan,
  type ServerPlan,
} from './topology.js';

export { DEFAULT_LAB_NAME } from './topology.js';

export interface LabOptions {
  name?: string;
  servers?: number;
  /** Start the DSR in the dsr namespace (default true). */
  dsr?: boolean;
  /** The DSR attaches its tc port filter (switch.filter; default true). Tests of the bare bridge turn it off. */
  portFilter?: boolean;
  /** The DSR's kernel SMB2 relay (config relay.mode; default DSR_LAB_RELAY, else cut-through as the DSR's own default). */
  relay?: RelayMode;
  /**
   * The DSR rebalances shares by load every minute (default true). Tests that load one server
   * and then fault it turn it off, so a move does not land on their fault at a random moment.
   */
  rebalance?: boolean;
  log?: Logger;
  /** Aborting stops `labUp` at the next step; it then tears down and throws. */
  signal?: AbortSignal;
}

export interface LabStatus {
  name: string;
  /** The lab was completely built and every process it started is running. */
  up: boolean;
  /** role ('client', 'dsr', 'server1'..) -> netns name */
  namespaces: Record<string, string>;
  client: { namespace: string; address: string };
  dsr: {
    namespace: string;
    clientAddress: string;
    storageAddress: string;
    heartbeatAddress: string;
    port: number;
    configPath: string;
    adminSocket: string;
    logFile: string;
    pid?: number;
    running: boolean;
    /** False for a lab brought up with `dsr: false`. */
    enabled: boolean;
    /** The dsr namespace routes client <-> servers (`labDirectPath`), for direct-path baselines only. */
    directPath: boolean;
  };
  servers: {
    name: string;
    namespace: string;
    address: string;
    netbiosName: string;
    /** The storage port (sp1..sp4) the server is plugged into. */
    port: string;
    shares: { name: string; path: string }[];
    smbdPid?: number;
    running: boolean;
    /** The announce agent beside smbd (`dsr agent`). */
    agentPid?: number;
    agentRunning: boolean;
    logDir: string;
  }[];
  users: { name: string; password: string }[];
  ports: {
    name: string;
    server?: string;
    carrier: boolean;
    /** TCP seen on the port: rx from the server into the switch, tx from the switch to the server. */
    tcp: { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number };
  }[];
}

/** /run/dsr-lab/<name>/state.json */
interface LabState {
  version: 1;
  name: string;
  servers: number;
  dsr: boolean;
  created: string;
  /** 'server1'.. and 'dsr' -> PID */
  pids: Record<string, number>;
}

const DSR_START_MS = 20000;
const REQUIRED_COMMANDS: Record<string, string> = {
  ip: 'iproute2',
  ss: 'iproute2',
  nsenter: 'util-linux',
  nft: 'nftables',
  sysctl: 'procps',
  smbd: 'samba',
  smbpasswd: 'samba-common-bin',
  useradd: 'passwd',
  userdel: 'passwd',
  getent: 'libc-bin',
};

/** The state file, or undefined when it is missing or unreadable (a half-built lab). */
function readState(name: string): LabState | undefined {
  try {
    const s = JSON.parse(readFileSync(labStatePath(name), 'utf8')) as Partial<LabState>;
    const servers = s.servers ?? 0;
    if (s.version !== 1 || !Number.isInteger(servers) || servers < 1 || servers > MAX_SERVERS) return undefined;
    if (typeof s.dsr !== 'boolean' || typeof s.pids !== 'object' || s.pids === null) return undefined;
    return s as LabState;
  } catch {
    return undefined;
  }
}

function writeState(plan: LabPlan, state: LabState): void {
  const tmp = `${plan.statePath}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, plan.statePath);
}

/** Like Promise.all, but waits for every task before throwing, so no step still runs while we tear down. */
async function settleAll(tasks: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function requirePrerequisites(): void {
  if (process.getuid?.() !== 0) throw new DsrError(ErrorCode.LAB, 'the lab needs root: it creates network namespaces and Unix users');
  const missing = missingCommands(Object.keys(REQUIRED_COMMANDS));
  if (missing.length) {
    const pkgs = [...new Set(missing.map((c) => REQUIRED_COMMANDS[c]))].join(' ');
    throw new DsrError(ErrorCode.LAB, `missing commands: ${missing.join(', ')}; install them with: apt-get install -y ${pkgs}`);
  }
}

const cidr = (address: string) => `${address}/${PREFIX_LEN}`;
/** The /24 an address sits in. */
const subnet = (address: string) => `${address.replace(/\.\d+$/, '.0')}/${PREFIX_LEN}`;
const counterChains = (port: string) => ({ rx: `${port}_in`, tx: `${port}_out` });

/** One netdev table: per storage port an ingress and an egress chain counting TCP. */
function counterRuleset(plan: LabPlan): string {
  // The DSR's own management traffic (probes, discovery) comes from its probe address and is not counted.
  const probe = ADDRESSES.dsrProbe;
  const chain = (name: string, hook: string, dev: string) =>
    `  chain ${name} { type filter hook ${hook} device "${dev}" priority 0; policy accept; meta l4proto tcp ip saddr != ${probe} ip daddr != ${probe} counter; }`;
  const chains = plan.ports.flatMap((p) => {
    const { rx, tx } = counterChains(p.name);
    return [chain(rx, 'ingress', p.name), chain(tx, 'egress', p.name)];
  });
  return [`table netdev ${COUNTER_TABLE} {`, ...chains, '}', ''].join('\n');
}

async function buildNetwork(plan: LabPlan, signal?: AbortSignal): Promise<void> {
  await settleAll(Object.values(plan.namespaces).map((ns) => addNetns(ns, signal)));
  const dsrNs = plan.dsr.namespace;
  const { client, heartbeat, heartbeatPeer, bridge, host } = IFACES;
  await ipBatch(
    dsrNs,
    'wire the dsr namespace',
    [
      'link set lo up',
      `link add ${client} type veth peer name ${host} netns ${plan.client.namespace}`,
      `addr add ${cidr(ADDRESSES.dsrClient)} dev ${client}`,
      `link set ${client} up`,
      `link add ${heartbeat} type veth peer name ${heartbeatPeer}`,
      `addr add ${cidr(ADDRESSES.dsrHeartbeat)} dev ${heartbeat}`,
      `link set ${heartbeat} up`,
      `link add ${bridge} address ${BRIDGE_MAC} type bridge`,
      `addr add ${cidr(ADDRESSES.dsrStorage)} dev ${bridge}`,
      `addr add ${cidr(ADDRESSES.dsrProbe)} dev ${bridge}`,
      `link set ${bridge} up`,
      ...plan.ports.flatMap((p) => {
        const server = plan.servers.find((s) => s.port === p.name);
        // An empty port's peer stays here, down: the port exists but has no carrier.
        const peer = server ? `peer name ${host} address ${server.mac} netns ${server.namespace}` : `peer name ${p.name}-peer`;
        return [`link add ${p.name} type veth ${peer}`, `link set ${p.name} master ${bridge}`, `link set ${p.name} up`];
      }),
    ],
    signal,
  );
  const hostLines = (address: string) => ['link set lo up', `addr add ${cidr(address)} dev ${host}`, `link set ${host} up`];
  await settleAll([
    ipBatch(plan.client.namespace, 'configure the client namespace', hostLines(plan.client.address), signal),
    ...plan.servers.map((s) => ipBatch(s.namespace, `configure ${s.name}'s namespace`, hostLines(s.address), signal)),
    // The DSR is a proxy, not a router: the client must never reach a server directly.
    setSysctl(dsrNs, 'net.ipv4.ip_forward', '0', signal),
    nftLoad(dsrNs, 'install the storage-port counters', counterRuleset(plan), signal),
  ]);
}

/** What labUp passes on to the lab DSR's configuration. */
type DsrLabOptions = Pick<LabOptions, 'portFilter' | 'relay' | 'rebalance'>;

/**
 * The DSR's configuration: every share on the servers exporting it (san on server1 and server2),
 * and the storage switch br0 with each server's port and MAC, which the DSR isolates and pins.
 */
export function labDsrConfig(plan: LabPlan, opts: DsrLabOptions = {}): ConfigInput {
  const exporters = new Map<string, string[]>();
  for (const s of plan.servers) for (const sh of s.shares) exporters.set(sh.name, [...(exporters.get(sh.name) ?? []), s.name]);
  return {
    name: plan.name,
    listen: [{ address: ADDRESSES.dsrClient, port: SMB_PORT }],
    admin: { socket: plan.dsr.adminSocket },
    credentials: plan.dsr.credentialsPath,
    servers: Object.fromEntries(plan.servers.map((s) => [s.name, { address: s.address, port: SMB_PORT, switchPort: s.port, mac: s.mac }])),
    // labDirectPath: `dsr lab direct on` opens the port filter for the client while it routes.
    switch: { bridge: IFACES.bridge, ports: plan.ports.map((p) => p.name), filter: opts.portFilter ?? true, labDirectPath: true, spareports: 'open' },
    resources: [...exporters].map(([name, servers]) => ({ name, servers })),
    stateDir: plan.dsr.stateDir,
    // The lab shares two cores with every smbd, client and test: a heartbeat or an ECHO can
    // wait seconds there, and a server failed by a late answer loses its clients' trees. Faults
    // the lab makes (kill, link down) are seen at once, without these timeouts.
    agents: { listen: { address: ADDRESSES.dsrStorage, port: ANNOUNCE_PORT }, keyFile: plan.agentKeyPath, heartbeatTimeoutMs: LAB_SILENCE_MS },
    discovery: { account: { user: LAB_USERS[0]!.name } },
    health: { source: ADDRESSES.dsrProbe, probeTimeoutMs: LAB_SILENCE_MS },
    log: { level: labLogLevel(), file: plan.dsr.logFile },
    relay: { mode: opts.relay ?? defaultRelay() },
    ...(opts.rebalance === false && { rebalance: { intervalSeconds: 0 } }),
  };
}

/** The lab DSR's log level: DSR_LAB_LOG_LEVEL (debug, to follow one connection), else info. */
function labLogLevel(): 'info' | 'debug' | 'trace' {
  const v = process.env.DSR_LAB_LOG_LEVEL ?? 'info';
  if (v !== 'info' && v !== 'debug' && v !== 'trace') throw new DsrError(ErrorCode.USAGE, `DSR_LAB_LOG_LEVEL must be info, debug or trace, not '${v}'`);
  return v;
}

/**
 * DSR_LAB_KEEP_LOGS=DIR: `labDown` copies the lab DSR's log there first (`<lab>-<time>.dsr.log`),
 * so a failed lab test's DSR side can be read after the lab is gone.
 */
function keepDsrLog(name: string, stateDir: string): void {
  const dir = process.env.DSR_LAB_KEEP_LOGS;
  const from = join(stateDir, 'dsr.log');
  if (!dir || !existsSync(from)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  copyFileSync(from, join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.dsr.log`));
}

/** The lab DSR's relay.mode when the caller does not say: DSR_LAB_RELAY (so a whole test run can go without it), else cut-through. */
function defaultRelay(): RelayMode {
  const v = process.env.DSR_LAB_RELAY ?? 'cut-through';
  if (v !== 'off' && v !== 'strparser' && v !== 'cut-through') throw new DsrError(ErrorCode.USAGE, `DSR_LAB_RELAY must be off, strparser or cut-through, not '${v}'`);
  return v;
}

/** The agents' shared key: 256 random bits, hex, readable by root only. */
function writeAgentKey(plan: LabPlan): void {
  if (!existsSync(plan.agentKeyPath)) writeFileSync(plan.agentKeyPath, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
}

function writeDsrFiles(plan: LabPlan, opts: DsrLabOptions): void {
  const config = labDsrConfig(plan, opts);
  resolveConfig(config, plan.dsr.configPath);
  writeFileSync(plan.dsr.configPath, toYaml(config));
  const table = new CredentialTable(plan.dsr.credentialsPath);
  for (const u of LAB_USERS) table.set(u.name, u.password);
  table.save();
}

/** dist/src/cli/main.js: beside this module when compiled, the checkout's build when run from source (tsx). */
function dsrMainScript(): string {
  const rel = import.meta.url.endsWith('.ts') ? '../../dist/src/cli/main.js' : '../cli/main.js';
  return fileURLToPath(new URL(rel, import.meta.url));
}

async function startDsr(plan: LabPlan, log: Logger, signal?: AbortSignal): Promise<number> {
  const main = dsrMainScript();
  if (!existsSync(main)) throw new DsrError(ErrorCode.LAB, `start the DSR: ${main} does not exist; run npm run build (or use --no-dsr)`);
  const started = Date.now();
  const pid = await startDaemon({
    what: 'the DSR',
    namespace: plan.dsr.namespace,
    argv: [process.execPath, '--enable-source-maps', main, 'serve', '--config', plan.dsr.configPath],
    outFile: plan.dsr.outFile,
    port: SMB_PORT,
    address: ADDRESSES.dsrClient,
    timeoutMs: DSR_START_MS,
    logs: { log: plan.dsr.logFile },
    signal,
  });
  log.info({ event: 'lab.dsr.started', pid, ms: Date.now() - started });
  return pid;
}

const agentKey = (server: string) => `${server}-agent`;
/** How long the lab's DSR waits for a silent agent or probe before it fails the server. */
const LAB_SILENCE_MS = 5000;
// Node's start under load (the lab tests stream GiBs while labs come up) can take seconds.
const AGENT_START_MS = 20000;

/** Starts `dsr agent` in the server's namespace; ready once it has announced (its log says so). */
async function startAgent(plan: LabPlan, s: ServerPlan, log: Logger): Promise<number> {
  const main = dsrMainScript();
  if (!existsSync(main)) throw new DsrError(ErrorCode.LAB, `start ${s.name}'s agent: ${main} does not exist; run npm run build`);
  const argv = [
    process.execPath,
    main,
    'agent',
    '--server', s.name,
    '--dsr', `${ADDRESSES.dsrStorage}:${ANNOUNCE_PORT}`,
    '--key-file', plan.agentKeyPath,
    '--smb-conf', s.confPath,
    '--interval', String(AGENT_INTERVAL_MS),
    '--source', s.address,
  ];
  rmSync(s.agentOutFile, { force: true });
  const pid = spawnDetached(inNetns(s.namespace, argv), s.agentOutFile);
  const started = await waitUntil(() => {
    if (!pidAlive(pid)) throw new DsrError(ErrorCode.LAB, `start ${s.name}'s agent: pid ${pid} exited: ${fileTail(s.agentOutFile)}`);
    return existsSync(s.agentOutFile) && readFileSync(s.agentOutFile, 'utf8').includes('agent.started');
  }, AGENT_START_MS);
  if (!started) throw new DsrError(ErrorCode.LAB, `start ${s.name}'s agent: no announcement within ${AGENT_START_MS} ms: ${fileTail(s.agentOutFile)}`);
  log.info({ event: 'lab.agent.started', server: s.name, pid });
  return pid;
}

async function build(plan: LabPlan, withDsr: boolean, dsr: DsrLabOptions, log: Logger, signal?: AbortSignal): Promise<Record<string, number>> {
  mkdirSync(plan.stateDir, { recursive: true, mode: 0o755 });
  const files = async () => {
    await ensureLabUsers(log);
    await settleAll(plan.servers.map((s) => prepareServer(s, signal)));
    writeAgentKey(plan);
    if (withDsr) writeDsrFiles(plan, dsr);
  };
  await settleAll([files(), buildNetwork(plan, signal)]);
  log.info({ event: 'lab.network.ready', namespaces: Object.values(plan.namespaces) });
  const pids: Record<string, number> = {};
  await settleAll(plan.servers.map(async (s) => (pids[s.name] = await startSmbd(s, log, signal))));
  // After the servers, so a DSR that probes them at start finds them up.
  if (withDsr) pids.dsr = await startDsr(plan, log, signal);
  await settleAll(plan.servers.map(async (s) => (pids[agentKey(s.name)] = await startAgent(plan, s, log))));
  return pids;
}

/**
 * Brings a lab up and returns its status. An existing healthy lab with the same server count
 * and DSR setting is left alone; anything else under that name is torn down and rebuilt. On
 * failure it tears down what it made and throws DsrError(LAB); bad options throw DsrError(USAGE).
 */
export async function labUp(opts: LabOptions = {}): Promise<LabStatus> {
  const name = opts.name ?? DEFAULT_LAB_NAME;
  const servers = opts.servers ?? DEFAULT_SERVERS;
  const withDsr = opts.dsr ?? true;
  checkLabName(name);
  checkServerCount(servers);
  const log = component(opts.log ?? silentLogger, 'lab', { lab: name });
  requirePrerequisites();
  const plan = labPlan(name, servers);
  const state = readState(name);
  const current = await labStatus(name);
  if (current.up && state?.servers === servers && state.dsr === withDsr) {
    log.info({ event: 'lab.up', reused: true });
    return current;
  }
  if (state || existsSync(plan.stateDir) || existsSync(plan.dataDir) || allNamespaces(name).some(netnsExists)) {
    log.info({ event: 'lab.rebuild', reason: current.up ? 'different shape' : 'not healthy' });
    await labDown(name, opts.log);
  }
  const started = Date.now();
  try {
    opts.signal?.throwIfAborted();
    const pids = await build(plan, withDsr, { portFilter: opts.portFilter ?? true, ...(opts.relay && { relay: opts.relay }), ...(opts.rebalance === false && { rebalance: false }) }, log, opts.signal);
    writeState(plan, { version: 1, name, servers, dsr: withDsr, created: new Date().toISOString(), pids });
  } catch (e) {
    log.error({ event: 'lab.up.failed', err: errorMessage(e) });
    await labDown(name, opts.log).catch((e2: unknown) => log.error({ event: 'lab.down.failed', err: errorMessage(e2) }));
    if (opts.signal?.aborted) throw new DsrError(ErrorCode.LAB, `lab up ${name} was interrupted; the lab was torn down`, { cause: e });
    if (e instanceof DsrError && e.code === ErrorCode.LAB) throw e;
    throw new DsrError(ErrorCode.LAB, `lab up ${name}: ${errorMessage(e)}`, { cause: e });
  }
  log.info({ event: 'lab.up', servers, dsr: withDsr, ms: Date.now() - started });
  return labStatus(name);
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Another lab still lives there, or it is already gone.
  }
}

function otherLabsRemain(): boolean {
  return [RUN_ROOT, DATA_ROOT].some((root) => existsSync(root) && readdirSync(root).length > 0);
}

/**
 * Removes a lab: its processes (everything in its namespaces), namespaces and directories, and the
 * lab users when no other lab remains. Safe on a half-built lab and on one that is already gone.
 */
export async function labDown(name: string = DEFAULT_LAB_NAME, logger?: Logger): Promise<void> {
  checkLabName(name);
  const log = component(logger ?? silentLogger, 'lab', { lab: name });
  const stateDir = labStateDir(name);
  const state = readState(name);
  const namespaces = allNamespaces(name);
  // A recorded daemon whose namespace lost its name is found by its command line, which names our state directory.
  const strays = Object.values(state?.pids ?? {}).filter((pid) => pidCommandLine(pid).includes(`${stateDir}/`));
  let pids = [...namespaces.flatMap(netnsPids), ...strays];
  for (let round = 1; pids.length > 0; round++) {
    if (round > 3) throw new DsrError(ErrorCode.LAB, `lab down ${name}: processes ${pids.join(', ')} survive SIGKILL`);
    // Rescan: a server may fork a child between the scan and the signal.
    pids = [...(await killPids(pids)), ...namespaces.flatMap(netnsPids)];
  }
  await settleAll(namespaces.map(deleteNetns));
  keepDsrLog(name, stateDir);
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(labDataDir(name), { recursive: true, force: true });
  removeIfEmpty(RUN_ROOT);
  removeIfEmpty(DATA_ROOT);
  if (!otherLabsRemain()) await removeLabUsers(log);
  log.info({ event: 'lab.down' });
}

const zeroCounter: PacketCounter = { packets: 0, bytes: 0 };

/** The lab as recorded in its state file, checked against the namespaces, processes and links that exist. */
export async function labStatus(name: string = DEFAULT_LAB_NAME): Promise<LabStatus> {
  checkLabName(name);
  const state = readState(name);
  // Without a state file, describe whatever server namespaces are left.
  const leftover = Array.from({ length: MAX_SERVERS }, (_, i) => i + 1).filter((i) => netnsExists(serverNamespace(name, i)));
  const count = state?.servers ?? Math.max(0, ...leftover);
  const plan = labPlan(name, count);
  const dsrNs = plan.dsr.namespace;
  const dsrExists = netnsExists(dsrNs);
  const [carriers, counters] = await Promise.all([
    dsrExists ? linkCarriers(dsrNs).catch(() => new Map<string, boolean>()) : new Map<string, boolean>(),
    dsrExists ? nftChainCounters(dsrNs, COUNTER_TABLE).catch(() => new Map<string, PacketCounter>()) : new Map<string, PacketCounter>(),
  ]);
  const running = (pid: number | undefined, ns: string) => pid !== undefined && pidAlive(pid) && pidInNetns(pid, ns);
  const servers = plan.servers.map((s) => {
    const smbdPid = state?.pids[s.name];
    const agentPid = state?.pids[agentKey(s.name)];
    return {
      name: s.name,
      namespace: s.namespace,
      address: s.address,
      netbiosName: s.netbiosName,
      port: s.port,
      shares: s.shares,
      ...(smbdPid !== undefined && { smbdPid }),
      running: running(smbdPid, s.namespace),
      ...(agentPid !== undefined && { agentPid }),
      agentRunning: running(agentPid, s.namespace),
      logDir: s.logDir,
    };
  });
  const dsrPid = state?.pids.dsr;
  const dsrRunning = running(dsrPid, dsrNs);
  const up =
    state !== undefined &&
    Object.values(plan.namespaces).every(netnsExists) &&
    servers.every((s) => s.running) &&
    (!state.dsr || dsrRunning);
  return {
    name,
    up,
    namespaces: plan.namespaces,
    client: plan.client,
    dsr: {
      namespace: dsrNs,
      clientAddress: ADDRESSES.dsrClient,
      storageAddress: ADDRESSES.dsrStorage,
      heartbeatAddress: ADDRESSES.dsrHeartbeat,
      port: SMB_PORT,
      configPath: plan.dsr.configPath,
      adminSocket: plan.dsr.adminSocket,
      logFile: plan.dsr.logFile,
      ...(dsrPid !== undefined && { pid: dsrPid }),
      running: dsrRunning,
      enabled: state?.dsr ?? false,
      directPath: dsrExists && (await ipForwarding(dsrNs)),
    },
    servers,
    users: LAB_USERS.map((u) => ({ ...u })),
    ports: plan.ports.map((p) => {
      const rx = counters.get(counterChains(p.name).rx) ?? zeroCounter;
      const tx = counters.get(counterChains(p.name).tx) ?? zeroCounter;
      return {
        ...p,
        carrier: carriers.get(p.name) ?? false,
        tcp: { rxPackets: rx.packets, txPackets: tx.packets, rxBytes: rx.bytes, txBytes: tx.bytes },
      };
    }),
  };
}

async function ipForwarding(ns: string): Promise<boolean> {
  const r = await runIn(ns, ['sysctl', '-n', 'net.ipv4.ip_forward']);
  return r.code === 0 && r.stdout.trim() === '1';
}

/**
 * Turns the dsr namespace into a plain router between the client and the servers (or back).
 * Benchmarks and the smbtorture comparison use it to measure the direct path over the same
 * wires; the DSR itself never needs it, and a lab is built without it. A running DSR's port
 * filter would drop the routed frames (the client is no server's peer), so the DSR is told over
 * its admin socket to let the client's address through (counted as 'direct') before the routes
 * go up, and to stop after they are gone: the DSR path keeps working, filtered, in the same run.
 */
export async function labDirectPath(name: string, on: boolean): Promise<void> {
  checkLabName(name);
  const state = readState(name);
  const plan = labPlan(name, state?.servers ?? 0);
  if (!netnsExists(plan.dsr.namespace)) throw new DsrError(ErrorCode.LAB, `lab ${name} is not up; run: dsr lab up --name ${name}`);
  const dsrPid = state?.pids.dsr;
  const dsrRunning = dsrPid !== undefined && pidAlive(dsrPid) && pidInNetns(dsrPid, plan.dsr.namespace);
  const filter = (peer: string | null) => (dsrRunning ? adminCall(plan.dsr.adminSocket, 'port.direct', { peer }) : Promise.resolve());
  if (on) await filter(`${ADDRESSES.client}/32`);
  const verb = on ? 'replace' : 'del';
  const route = (to: string, via: string) => [`route ${verb} ${to} via ${via}`];
  const quiet = (p: Promise<void>) => (on ? p : p.catch(() => undefined));
  await settleAll([
    setSysctl(plan.dsr.namespace, 'net.ipv4.ip_forward', on ? '1' : '0'),
    quiet(ipBatch(plan.client.namespace, 'route the client to the servers', route(subnet(ADDRESSES.dsrStorage), ADDRESSES.dsrClient))),
    ...plan.servers.map((s) => quiet(ipBatch(s.namespace, `route ${s.name} to the client`, route(subnet(ADDRESSES.client), ADDRESSES.dsrStorage)))),
  ]);
  if (!on) await filter(null);
}

/**
 * Runs argv on a lab host ('client', 'dsr', 'server1'..'server4'). A non-zero exit is returned,
 * not thrown; a time limit kills the command and returns code 124.
 */
export async function labExec(
  name: string,
  host: string,
  argv: string[],
  opts: Pick<RunOptions, 'input' | 'timeoutMs' | 'inherit'> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  checkLabName(name);
  const ns = hostNamespace(name, host);
  if (ns === undefined) {
    throw new DsrError(ErrorCode.USAGE, `unknown lab host ${JSON.stringify(host)}: client, dsr or server1..server${MAX_SERVERS}`);
  }
  if (argv.length === 0) throw new DsrError(ErrorCode.USAGE, 'no command given');
  if (!netnsExists(ns)) {
    const hint = netnsExists(dsrNamespace(name)) ? `namespace ${ns} does not exist` : `the lab is not up; run: dsr lab up --name ${name}`;
    throw new DsrError(ErrorCode.LAB, `lab ${name} has no host ${host} (${hint})`);
  }
  return runIn(ns, argv, opts);
}

/** Direct children of every process, from /proc/<pid>/stat (field 4 is the parent pid). */
function childrenByParent(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    kids.set(ppid, [...(kids.get(ppid) ?? []), Number(entry)]);
  }
  return kids;
}

/** `pid` and all its descendants that are alive, found by parent pid (never by name). */
export function processTree(pid: number): number[] {
  const kids = childrenByParent();
  const out: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    if (!pidAlive(p)) continue;
    out.push(p);
    todo.push(...(kids.get(p) ?? []));
  }
  return out;
}

export type FailHow = 'kill' | 'link';

export interface FaultResult {
  server: string;
  how: FailHow | 'restore';
  /** SIGKILLed pids (kill), or the restarted smbd's pid (restore). */
  pids: number[];
  /** The storage port brought down or up. */
  port: string;
  at: string;
}

function labServer(name: string, server: string): { plan: LabPlan; state: LabState; s: ServerPlan } {
  checkLabName(name);
  const state = readState(name);
  if (!state) throw new DsrError(ErrorCode.LAB, `lab ${name} is not up; run: dsr lab up --name ${name}`);
  const plan = labPlan(name, state.servers);
  const s = plan.servers.find((x) => x.name === server);
  if (!s) throw new DsrError(ErrorCode.USAGE, `lab ${name} has no server ${JSON.stringify(server)}: ${plan.servers.map((x) => x.name).join(', ')}`);
  return { plan, state, s };
}

/**
 * A storage server hangs: SIGSTOP to its smbd and every descendant (a stopped smbd forks no
 * more). Its sockets still take bytes until their buffers fill, and nothing answers them: a
 * labFail `kill` after it finds requests under way for certain. Returns the stopped pids.
 */
export function labFreeze(name: string, server: string): number[] {
  const { state, s } = labServer(name, server);
  const root = state.pids[server];
  if (root === undefined || !pidAlive(root) || !pidInNetns(root, s.namespace)) throw new DsrError(ErrorCode.LAB, `${server}'s smbd is not running`);
  const tree = processTree(root).filter((p) => pidInNetns(p, s.namespace));
  for (const p of tree) process.kill(p, 'SIGSTOP');
  return tree;
}

/**
 * A storage server fails: `kill` SIGKILLs its smbd and every descendant (the per-connection
 * children too, found through /proc by parent pid); `link` brings its storage port on the switch
 * down (the cable pulled). The agent keeps running in both cases, as it would on a server whose
 * smbd died.
 */
export async function labFail(name: string, server: string, how: FailHow): Promise<FaultResult> {
  const { plan, state, s } = labServer(name, server);
  if (how === 'link') {
    const at = new Date().toISOString();
    await ipBatch(plan.dsr.namespace, `bring ${s.port} down`, [`link set ${s.port} down`]);
    return { server, how, pids: [], port: s.port, at };
  }
  const root = state.pids[server];
  if (root === undefined || !pidAlive(root) || !pidInNetns(root, s.namespace)) throw new DsrError(ErrorCode.LAB, `${server}'s smbd is not running`);
  const at = new Date().toISOString();
  const killed = new Set<number>();
  // smbd may fork between the scan and the signal: rescan until the tree is gone.
  for (let round = 0; round < 20; round++) {
    const tree = [root, ...killed].flatMap((p) => processTree(p)).filter((p) => pidInNetns(p, s.namespace));
    if (tree.length === 0) break;
    for (const p of tree) {
      try {
        process.kill(p, 'SIGKILL');
        killed.add(p);
      } catch {
        // Gone already.
      }
    }
    await sleep(10);
  }
  return { server, how, pids: [...killed], port: s.port, at };
}

/** Brings a failed server back: its storage port up, and smbd restarted if it is not running. */
export async function labRestore(name: string, server: string, logger?: Logger): Promise<FaultResult> {
  const { plan, state, s } = labServer(name, server);
  const log = component(logger ?? silentLogger, 'lab', { lab: name });
  await ipBatch(plan.dsr.namespace, `bring ${s.port} up`, [`link set ${s.port} up`]);
  const pid = state.pids[server];
  const pids: number[] = [];
  if (pid === undefined || !pidAlive(pid) || !pidInNetns(pid, s.namespace)) {
    const fresh = await startSmbd(s, log);
    pids.push(fresh);
    const now = readState(name) ?? state;
    writeState(plan, { ...now, pids: { ...now.pids, [server]: fresh } });
  }
  return { server, how: 'restore', pids, port: s.port, at: new Date().toISOString() };
}

/**
 * Starts one more server in a running lab (at most MAX_SERVERS): its namespace on the next
 * empty storage port, smbd and its agent. The DSR's configuration is not touched: the DSR learns
 * the server from its agent.
 */
export async function labAddServer(name: string, logger?: Logger): Promise<LabStatus> {
  checkLabName(name);
  const log = component(logger ?? silentLogger, 'lab', { lab: name });
  const state = readState(name);
  if (!state) throw new DsrError(ErrorCode.LAB, `lab ${name} is not up; run: dsr lab up --name ${name}`);
  if (state.servers >= MAX_SERVERS) throw new DsrError(ErrorCode.USAGE, `lab ${name} already has ${MAX_SERVERS} servers`);
  const plan = labPlan(name, state.servers + 1);
  const s = plan.servers[state.servers]!;
  const { host } = IFACES;
  await addNetns(s.namespace);
  try {
    // The empty port's peer end moves into the new server's namespace and becomes its eth0.
    await ipBatch(plan.dsr.namespace, `plug ${s.name} into ${s.port}`, [`link set ${s.port}-peer netns ${s.namespace}`]);
    await ipBatch(s.namespace, `configure ${s.name}'s namespace`, [
      'link set lo up',
      `link set ${s.port}-peer name ${host}`,
      `link set ${host} address ${s.mac}`,
      `addr add ${cidr(s.address)} dev ${host}`,
      `link set ${host} up`,
    ]);
    await prepareServer(s);
    const pids: Record<string, number> = { ...state.pids };
    pids[s.name] = await startSmbd(s, log);
    pids[agentKey(s.name)] = await startAgent(plan, s, log);
    writeState(plan, { ...state, servers: state.servers + 1, pids });
  } catch (e) {
    throw new DsrError(ErrorCode.LAB, `add ${s.name} to lab ${name}: ${errorMessage(e)}`, { cause: e });
  }
  log.info({ event: 'lab.server.added', server: s.name });
  return labStatus(name);
}
