/**
 * The DSR's configuration file (YAML), validated with zod. Every field has a sensible default
 * except the lists an administrator must give: the storage servers and their resources.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DsrError, ErrorCode, errorMessage } from './errors.js';
import { SMB2_DIALECTS } from './wire/smb2/constants.js';
import { ABI } from '../offload/abi.js';
import { DEFAULT_ADMIN_SOCKET, DEFAULT_CREDENTIALS } from './defaults.js';

export const DEFAULT_STATE_DIR = '/var/lib/dsr';

const MiB = 1024 * 1024;

const dialectNames = { '2.0.2': 0x0202, '2.1': 0x0210, '3.0': 0x0300, '3.0.2': 0x0302, '3.1.1': 0x0311 } as const;
type DialectName = keyof typeof dialectNames;

/** NetBIOS-style names: what an SMB client shows as the server or domain. */
const netbiosName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/, 'a NetBIOS name of 1-15 letters, digits, _ . -');
/** Share names as SMB clients type them: no path separators or control characters. */
const shareName = z.string().min(1).max(80).regex(/^[^\\/:*?"<>|\x00-\x1f]+$/, 'a share name without \\ / : * ? " < > |');

/** A Linux interface name (IFNAMSIZ 16 with its NUL). */
const ifname = z.string().regex(/^[^\s/:]{1,15}$/, 'an interface name: 1-15 characters, no spaces, / or :');
/** A unicast Ethernet address, stored lower-case. */
const macAddress = z
  .string()
  .regex(/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/, 'a MAC address: six hex octets separated by colons')
  .refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0, 'a unicast MAC address (the first octet is even)')
  .transform((m) => m.toLowerCase());

const dialectList = z.array(z.enum(Object.keys(dialectNames) as [DialectName, ...DialectName[]])).min(1);

const serverSchema = z.object({
  address: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(445),
  /** Dialects offered to this server (all five by default): a server may speak less than the client. */
  dialects: dialectList.optional(),
  /**
   * A service account for this server, used for every client session (its NT hash comes from
   * the credential table). Without one, each user's own credentials pass through.
   */
  account: z.object({ user: z.string().min(1), domain: z.string().default('') }).optional(),
  /** Sign every request to this server even when it does not require signing. */
  signing: z.enum(['auto', 'required']).default('auto'),
  /** The storage switch port the server is plugged into (one of switch.ports). */
  switchPort: ifname.optional(),
  /** The server's MAC on that port: the DSR pins it there with a static FDB entry. Without it the port learns. */
  mac: macAddress.optional(),
});

/** The integrated storage switch: a Linux bridge in the DSR's network namespace (issue 5, port map). */
const switchSchema = z.object({
  bridge: ifname,
  /** The storage ports; by default every port of the bridge when the DSR starts. */
  ports: z.array(ifname).min(1).optional(),
  /** Port isolation on every storage port: servers reach the DSR, never each other. */
  isolated: z.boolean().default(true),
  /**
   * The tc port filter (bpf/port.bpf.c) on every storage port: only ARP and IPv4 between a
   * port's server and `address` pass, and its counters are the servers' load figures. On where
   * the kernel supports it (one log line says why not, and the DSR runs on with the bridge's
   * isolation only); false turns it off.
   */
  filter: z.boolean().default(true),
  /** The DSR's own storage address, the one peer of every server; default: the bridge's IPv4 address. */
  address: z.ipv4().optional(),
  /**
   * Lab only: lets `dsr lab direct on` open the port filter (over the admin socket) for IPv4
   * between the servers and the lab's client, counted as 'direct', while it routes the client
   * to the servers for a direct-path baseline.
   */
  labDirectPath: z.boolean().default(false),
  /**
   * Ports with no server: 'closed' (default) drops their traffic; 'open' lets it through the
   * port filter (counted as 'open'; port isolation still holds) so a new server plugged in
   * there can announce itself and be learned.
   */
  spareports: z.enum(['closed', 'open']).default('closed'),
});

const resourceSchema = z.object({
  name: shareName,
  comment: z.string().default(''),
  /** Servers able to serve this share; the first healthy one is active. */
  servers: z.array(z.string().min(1)).min(1),
  /** The share's name on the servers when it differs from the name clients see. */
  remoteName: shareName.optional(),
});

export const configSchema = z
  .object({
    /** Instance name: names the admin socket, pins and log lines of this DSR. */
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/).default('dsr'),
    serverName: netbiosName.default('DSR'),
    domain: netbiosName.default('DSR'),
    dnsDomain: z.string().default(''),
    /** 32 hex digits; derived from the instance name when absent, so it is stable. */
    serverGuid: z.string().regex(/^[0-9a-fA-F]{32}$/).optional(),
    listen: z
      .array(z.object({ address: z.string().default('0.0.0.0'), port: z.number().int().min(0).max(65535).default(445) }))
      .min(1)
      .default([{ address: '0.0.0.0', port: 445 }]),
    admin: z.object({ socket: z.string().min(1).default(DEFAULT_ADMIN_SOCKET) }).default({ socket: DEFAULT_ADMIN_SOCKET }),
    credentials: z.string().min(1).default(DEFAULT_CREDENTIALS),
    auth: z
      .object({
        /** Accept guest and anonymous (null) sessions. Off unless an administrator turns it on. */
        guest: z.boolean().default(false),
      })
      .default({ guest: false }),
    smb2: z
      .object({
        dialects: dialectList.default(['2.0.2', '2.1', '3.0', '3.0.2', '3.1.1']),
        /** 'required' makes every session sign (RequireMessageSigning, MS-SMB2 3.3.1.5). */
        signing: z.enum(['enabled', 'required']).default('enabled'),
        /** 'enabled' encrypts for clients that ask; 'required' makes every session encrypt (EncryptData, MS-SMB2 3.3.1.5). */
        encryption: z.enum(['off', 'enabled', 'required']).default('enabled'),
        maxReadSize: z.number().int().min(65536).max(8 * MiB).default(8 * MiB),
        maxWriteSize: z.number().int().min(65536).max(8 * MiB).default(8 * MiB),
        maxTransactSize: z.number().int().min(65536).max(8 * MiB).default(8 * MiB),
        /** Largest credit window granted to one connection (MS-SMB2 3.3.1.2). */
        maxCredits: z.number().int().min(16).max(65535).default(8192),
      })
      .default({ dialects: ['2.0.2', '2.1', '3.0', '3.0.2', '3.1.1'], signing: 'enabled', encryption: 'enabled', maxReadSize: 8 * MiB, maxWriteSize: 8 * MiB, maxTransactSize: 8 * MiB, maxCredits: 8192 }),
    /**
     * The kernel SMB2 relay (bpf/smb2_relay.bpf.c): once a connection is quiet and its sessions
     * neither sign nor encrypt, its READ/WRITE/FLUSH/QUERY_INFO are forwarded by the kernel until
     * anything else arrives. The framing: 'cut-through' (default: bytes forwarded as they come)
     * or 'strparser' (whole messages), or 'off'. A kernel without the feature gets one log line
     * and the user-space path.
     * While it is on, the DSR offers at most `maxIoSize` for MaxRead/Write/TransactSize: a whole
     * message must fit a socket's receive buffer and a slot of the kernel's journal of forwarded
     * requests (DSR_RELAY_JOURNAL_BYTES: 1 MiB of payload), and smaller messages pipeline.
     * `maxQueuedBytes`: responses the kernel forwarded that may wait for a client's socket (a
     * client behind in reading) before the DSR takes the connection back and holds its servers
     * back; above what a client keeps in flight when it reads at disk speed.
     * `journalWriteSlots`: WRITEs the kernel's journal holds at once for the whole DSR until the
     * server answers (so that a server lost first gets them again from the new one); each slot
     * pins a little over 1 MiB of kernel memory while the relay is loaded, and a WRITE that finds
     * none free takes its connection back to user space. READs take small slots (4096).
     */
    relay: z
      .object({
        mode: z.enum(['off', 'strparser', 'cut-through']).default('cut-through'),
        maxIoSize: z.number().int().min(65536).max(MiB).default(MiB),
        maxQueuedBytes: z.number().int().min(MiB).max(1024 * MiB).default(32 * MiB),
        journalWriteSlots: z.number().int().min(8).max(ABI.DSR_RELAY_JOURNAL_SLOTS_MAX).default(ABI.DSR_RELAY_JOURNAL_SLOTS),
      })
      .default({ mode: 'cut-through', maxIoSize: MiB, maxQueuedBytes: 32 * MiB, journalWriteSlots: ABI.DSR_RELAY_JOURNAL_SLOTS }),
    limits: z
      .object({
        maxConnections: z.number().int().min(1).default(4096),
        maxSessionsPerConnection: z.number().int().min(1).default(64),
        /** Seconds a connection may stay without a complete NEGOTIATE + SESSION_SETUP. */
        authTimeoutSeconds: z.number().positive().default(60),
        /** Seconds a backend session with no tree (and a backend connection with no session) stays open. */
        backendIdleSeconds: z.number().positive().default(30),
        /** Seconds to reach a storage server: connect, NEGOTIATE, SESSION_SETUP, TREE_CONNECT each. */
        backendTimeoutSeconds: z.number().positive().default(10),
      })
      .default({ maxConnections: 4096, maxSessionsPerConnection: 64, authTimeoutSeconds: 60, backendIdleSeconds: 30, backendTimeoutSeconds: 10 }),
    /** Load balancing (source Fig. 8, paragraphs 0091-0099). */
    rebalance: z
      .object({
        /** Seconds between load comparisons; 0 turns automatic rebalancing off (`dsr rebalance` still works). */
        intervalSeconds: z.number().min(0).default(60),
        /** Act when one server's load exceeds another's by more than this fraction. */
        threshold: z.number().positive().default(0.5),
      })
      .default({ intervalSeconds: 60, threshold: 0.5 }),
    servers: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/), serverSchema).default({}),
    /** Absent: no storage switch to program (servers reached by plain routing). */
    switch: switchSchema.optional(),
    resources: z.array(resourceSchema).default([]),
    /** Where the DSR keeps what it learns at run time (resources.json), written atomically. */
    stateDir: z.string().min(1).default(DEFAULT_STATE_DIR),
    /**
     * Announce agents (`dsr agent` beside each server's smbd): UDP datagrams to `listen` (the
     * DSR's storage address only), HMAC-SHA256 under the key in `keyFile` (hex, mode 0600).
     * Absent: no agents are heard.
     */
    agents: z
      .object({
        listen: z.object({ address: z.string().min(1), port: z.number().int().min(0).max(65535).default(4455) }),
        keyFile: z.string().min(1),
        /** An announcement stamped further than this from the DSR's clock is stale. */
        freshnessMs: z.number().int().min(100).default(30000),
        /** A server whose agent has announced is failed after this long without an announcement. */
        heartbeatTimeoutMs: z.number().int().min(50).default(1000),
      })
      .optional(),
    /** Server health: an SMB2 ECHO probe connection from the DSR to every server. */
    health: z
      .object({
        probeIntervalMs: z.number().int().min(10).default(200),
        /** A server whose probe has not answered for this long is failed (well under 2 s by default). */
        probeTimeoutMs: z.number().int().min(50).default(1000),
        /** What a recovered server gets back: nothing (default; only rebalancing moves shares back). */
        failback: z.enum(['none']).default('none'),
        /** Source address for probes and srvsvc discovery, so management traffic is told apart from client traffic. */
        source: z.string().min(1).optional(),
      })
      .default({ probeIntervalMs: 200, probeTimeoutMs: 1000, failback: 'none' }),
    /** srvsvc discovery of configured servers' shares (NetShareEnumAll) at start and on recovery. */
    discovery: z
      .object({
        /** The account to enumerate with (its NT hash from the credential table); servers.X.account wins. */
        account: z.object({ user: z.string().min(1), domain: z.string().default('') }).optional(),
      })
      .default({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** A file to append JSON log lines to; stderr when absent. */
        file: z.string().optional(),
      })
      .default({ level: 'info' }),
  })
  .superRefine((c, ctx) => {
    checkSwitch(c, ctx);
    const seen = new Set<string>();
    c.resources.forEach((r, i) => {
      const key = r.name.toLowerCase();
      if (key === 'ipc$') ctx.addIssue({ code: 'custom', path: ['resources', i, 'name'], message: 'IPC$ is served by the DSR itself' });
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['resources', i, 'name'], message: `duplicate share ${r.name} (share names are case-insensitive)` });
      seen.add(key);
      for (const s of r.servers) {
        if (!(s in c.servers)) ctx.addIssue({ code: 'custom', path: ['resources', i, 'servers'], message: `unknown server ${s}` });
      }
    });
  });

/** Switch ports and MACs: each server on its own port of the switch, no MAC twice. */
function checkSwitch(c: { switch?: z.output<typeof switchSchema> | undefined; servers: Record<string, { switchPort?: string | undefined; mac?: string | undefined }> }, ctx: z.RefinementCtx): void {
  const sw = c.switch;
  if (sw?.ports) {
    const dup = sw.ports.find((p, i) => sw.ports!.indexOf(p) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['switch', 'ports'], message: `port ${dup} is listed twice` });
    if (sw.ports.includes(sw.bridge)) ctx.addIssue({ code: 'custom', path: ['switch', 'ports'], message: `the bridge ${sw.bridge} is not one of its own ports` });
  }
  const byPort = new Map<string, string>();
  const byMac = new Map<string, string>();
  for (const [name, s] of Object.entries(c.servers)) {
    if (s.switchPort !== undefined) {
      if (!sw) ctx.addIssue({ code: 'custom', path: ['servers', name, 'switchPort'], message: 'needs a switch section (switch.bridge)' });
      else if (sw.ports && !sw.ports.includes(s.switchPort)) ctx.addIssue({ code: 'custom', path: ['servers', name, 'switchPort'], message: `${s.switchPort} is not in switch.ports` });
      const other = byPort.get(s.switchPort);
      if (other) ctx.addIssue({ code: 'custom', path: ['servers', name, 'switchPort'], message: `port ${s.switchPort} is already ${other}'s` });
      byPort.set(s.switchPort, name);
    }
    if (s.mac !== undefined) {
      if (s.switchPort === undefined) ctx.addIssue({ code: 'custom', path: ['servers', name, 'mac'], message: 'a MAC needs a switchPort' });
      const other = byMac.get(s.mac);
      if (other) ctx.addIssue({ code: 'custom', path: ['servers', name, 'mac'], message: `MAC ${s.mac} is already ${other}'s` });
      byMac.set(s.mac, name);
    }
  }
}

/** '3.1.1' -> 0x0311 (names as the configuration spells them). */
export function dialectValues(names: readonly DialectName[]): number[] {
  return [...new Set(names.map((d) => dialectNames[d]))].sort((a, b) => a - b);
}

export type ConfigInput = z.input<typeof configSchema>;
/** config relay.mode: the kernel relay off, or its framing. */
export type RelayMode = 'off' | 'strparser' | 'cut-through';
type Parsed = z.output<typeof configSchema>;

export interface Config extends Omit<Parsed, 'serverGuid' | 'smb2'> {
  serverGuid: Buffer;
  smb2: Omit<Parsed['smb2'], 'dialects'> & { dialects: number[] };
  /** Largest NetBIOS frame accepted from a client. */
  maxFrameBytes: number;
}

/** Validates a parsed config object; errors name the path of every bad field. */
export function resolveConfig(input: unknown, source = 'config'): Config {
  const r = configSchema.safeParse(input ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new DsrError(ErrorCode.CONFIG, `${source} is invalid:\n${lines.join('\n')}`);
  }
  const c = r.data;
  const serverGuid = c.serverGuid
    ? Buffer.from(c.serverGuid, 'hex')
    : createHash('sha256').update(`dsr-server-guid:${c.name}:${c.serverName}`).digest().subarray(0, 16);
  const dialects = dialectValues(c.smb2.dialects);
  for (const d of dialects) if (!(SMB2_DIALECTS as readonly number[]).includes(d)) throw new DsrError(ErrorCode.CONFIG, `unsupported dialect ${d}`);
  // A WRITE or READ message carries its payload plus a header and fixed part; leave room.
  const maxFrameBytes = Math.max(c.smb2.maxReadSize, c.smb2.maxWriteSize, c.smb2.maxTransactSize) + 64 * 1024;
  return { ...c, serverGuid, smb2: { ...c.smb2, dialects }, maxFrameBytes };
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DsrError(ErrorCode.CONFIG, `cannot read config ${path}: ${errorMessage(e)}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new DsrError(ErrorCode.CONFIG, `${path} is not valid YAML: ${errorMessage(e)}`, { cause: e });
  }
  return resolveConfig(doc, path);
}
