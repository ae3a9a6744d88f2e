/**
 * The lab's names, addresses and paths, as pure functions of the lab name and server count.
 * Every lab uses the same addresses (from 198.18.0.0/15, RFC 2544): namespaces isolate them,
 * so only namespace names and directories carry the lab name.
 */
import { DsrError, ErrorCode } from '../control/errors.js';

export const DEFAULT_LAB_NAME = 'dsrlab';
export const MAX_SERVERS = 4;
export const DEFAULT_SERVERS = 3;
/** Runtime state (sockets, pids, smbd's tdb files, logs): tmpfs, gone at reboot like the namespaces. */
export const RUN_ROOT = '/run/dsr-lab';
/** Share contents: big test files go here, /run is small. */
export const DATA_ROOT = '/var/lib/dsr-lab';
export const SMB_PORT = 445;
/** The nftables netdev table in the dsr namespace that counts TCP on the storage ports. */
export const COUNTER_TABLE = 'dsr_lab_ports';
/** The UDP port the DSR hears announce agents on (its storage address). */
export { ANNOUNCE_PORT } from '../control/defaults.js';
/** How often each lab server's agent announces. */
export const AGENT_INTERVAL_MS = 200;

/** Users that exist on every server and in the DSR's credential table. */
export const LAB_USERS: readonly { name: string; password: string }[] = [
  { name: 'dsralice', password: 'Alice-Pass-1' },
  { name: 'dsrbob', password: 'Bob-Pass-2' },
];
/** The GECOS field of the Unix accounts the lab creates; only accounts carrying it are ever deleted. */
export const LAB_USER_GECOS = 'dsr lab user';

export const PREFIX_LEN = 24;
export const ADDRESSES = {
  client: '198.18.0.2',
  dsrClient: '198.18.0.1',
  dsrStorage: '198.18.1.1',
  /** The DSR's second storage address: its health probes and srvsvc discovery, kept out of the port counters. */
  dsrProbe: '198.18.1.2',
  dsrHeartbeat: '198.18.2.1',
} as const;

/** Interface names inside the dsr namespace (all ≤ 15 characters, IFNAMSIZ). */
export const IFACES = {
  client: 'cp0',
  heartbeat: 'hb0',
  heartbeatPeer: 'hb0-peer',
  bridge: 'br0',
  /** The client's and each server's own interface. */
  host: 'eth0',
} as const;

// The lab name ends up in the DSR config's `name`, which allows exactly this.
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;

export function checkLabName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new DsrError(ErrorCode.USAGE, `invalid lab name ${JSON.stringify(name)}: 1-31 of a-z 0-9 -, starting with a letter or digit`);
  }
}

/** A lab runs 1 to 4 servers; a plan for 0 describes what is left of a lab without state. */
export function checkServerCount(n: number, min = 1): void {
  if (!Number.isInteger(n) || n < min || n > MAX_SERVERS) {
    throw new DsrError(ErrorCode.USAGE, `invalid server count ${n}: ${min} to ${MAX_SERVERS}`);
  }
}

export interface LabShare {
  name: string;
  path: string;
}

export interface ServerPlan {
  /** 1-based; server N sits on storage port spN. */
  index: number;
  name: string;
  namespace: string;
  address: string;
  netbiosName: string;
  port: string;
  /** eth0's MAC, fixed so the DSR's config can pin it on the port (locally administered, ends in the address's last octet). */
  mac: string;
  shares: LabShare[];
  /** /run/dsr-lab/<lab>/serverN: smbd's private, lock, state, cache, pid, ncalrpc and log dirs. */
  runDir: string;
  confPath: string;
  logDir: string;
  /** smbd's stdout/stderr. */
  outFile: string;
  /** The announce agent's stdout/stderr (its JSON log). */
  agentOutFile: string;
}

export interface LabPlan {
  name: string;
  stateDir: string;
  dataDir: string;
  statePath: string;
  sanPath: string;
  /** The announce agents' shared key (hex, 0600), read by the DSR and every agent. */
  agentKeyPath: string;
  namespaces: Record<string, string>;
  client: { namespace: string; address: string };
  dsr: {
    namespace: string;
    configPath: string;
    credentialsPath: string;
    adminSocket: string;
    logFile: string;
    outFile: string;
    /** The DSR's stateDir (resources.json). */
    stateDir: string;
  };
  servers: ServerPlan[];
  /** All four storage ports; `server` is absent for an empty port. */
  ports: { name: string; server?: string }[];
}

export function serverNamespace(lab: string, index: number): string {
  return `${lab}-s${index}`;
}

export function labStateDir(lab: string): string {
  return `${RUN_ROOT}/${lab}`;
}

export function labStatePath(lab: string): string {
  return `${labStateDir(lab)}/state.json`;
}

export function labDataDir(lab: string): string {
  return `${DATA_ROOT}/${lab}`;
}

export function dsrNamespace(lab: string): string {
  return `${lab}-dsr`;
}

export function clientNamespace(lab: string): string {
  return `${lab}-client`;
}

/** Every namespace a lab of this name can own, whatever its server count: what teardown looks for. */
export function allNamespaces(lab: string): string[] {
  return [clientNamespace(lab), dsrNamespace(lab), ...Array.from({ length: MAX_SERVERS }, (_, i) => serverNamespace(lab, i + 1))];
}

/** The namespace of a host name as `dsr lab exec` takes it; undefined for an unknown host. */
export function hostNamespace(lab: string, host: string): string | undefined {
  if (host === 'client') return clientNamespace(lab);
  if (host === 'dsr') return dsrNamespace(lab);
  const m = /^server([1-9])$/.exec(host);
  return m && Number(m[1]) <= MAX_SERVERS ? serverNamespace(lab, Number(m[1])) : undefined;
}

export function adminSocketPath(lab: string): string {
  return lab === DEFAULT_LAB_NAME ? '/run/dsr/dsr.sock' : `/run/dsr/${lab}.sock`;
}

/** 02:00:c6:12:01:0b for server1 (198.18.1.11): 02 = locally administered unicast, then the address in hex. */
export function serverMac(index: number): string {
  return `02:00:c6:12:01:${(10 + index).toString(16).padStart(2, '0')}`;
}

/**
 * The storage bridge's MAC, fixed: a bridge without one takes its lowest port's, so it changes
 * as ports come and go, and a server whose ARP entry for the DSR's storage address still names
 * the old one sends its answers nowhere (seen: a SYN-ACK to the DSR lost for 10 s).
 */
export const BRIDGE_MAC = '02:00:c6:12:01:01';

export function storagePortName(index: number): string {
  return `sp${index}`;
}

export function labPlan(name: string, serverCount: number): LabPlan {
  checkLabName(name);
  checkServerCount(serverCount, 0);
  const stateDir = labStateDir(name);
  const dataDir = labDataDir(name);
  const sanPath = `${dataDir}/san`;
  const servers = Array.from({ length: serverCount }, (_, i): ServerPlan => {
    const index = i + 1;
    const runDir = `${stateDir}/server${index}`;
    const shares = [`data${index}`, `docs${index}`].map((s) => ({ name: s, path: `${dataDir}/server${index}/${s}` }));
    // Servers 1 and 2 export the same directory: the shared SAN behind a failover pair.
    if (index <= 2) shares.push({ name: 'san', path: sanPath });
    return {
      index,
      name: `server${index}`,
      namespace: serverNamespace(name, index),
      address: `198.18.1.${10 + index}`,
      netbiosName: `SERVER${index}`,
      port: storagePortName(index),
      mac: serverMac(index),
      shares,
      runDir,
      confPath: `${runDir}/smb.conf`,
      logDir: `${runDir}/log`,
      outFile: `${stateDir}/server${index}.out`,
      agentOutFile: `${stateDir}/server${index}-agent.out`,
    };
  });
  const namespaces: Record<string, string> = { client: clientNamespace(name), dsr: dsrNamespace(name) };
  for (const s of servers) namespaces[s.name] = s.namespace;
  return {
    name,
    stateDir,
    dataDir,
    statePath: labStatePath(name),
    sanPath,
    agentKeyPath: `${stateDir}/agent.key`,
    namespaces,
    client: { namespace: clientNamespace(name), address: ADDRESSES.client },
    dsr: {
      namespace: dsrNamespace(name),
      configPath: `${stateDir}/dsr.yaml`,
      credentialsPath: `${stateDir}/credentials.json`,
      adminSocket: adminSocketPath(name),
      logFile: `${stateDir}/dsr.log`,
      outFile: `${stateDir}/dsr.out`,
      stateDir: `${stateDir}/dsr-state`,
    },
    servers,
    ports: Array.from({ length: MAX_SERVERS }, (_, i) => {
      const server = servers[i];
      return server ? { name: storagePortName(i + 1), server: server.name } : { name: storagePortName(i + 1) };
    }),
  };
}
