/**
 * The resource manager (issue 6, items 1-2; source paragraphs 0068-0069, 0083-0085): keeps the
 * resource table current and says when a storage server fails or recovers.
 *
 * Learning: announce agents send signed UDP datagrams to the DSR's storage address (wire/announce.ts);
 * configured servers are also enumerated over srvsvc (discovery.ts) at start and on recovery.
 * Health: a server is failed when any of these holds, and healthy when none does and its probe
 * has answered:
 *   - its storage port is down (the port map's `change` event, within milliseconds);
 *   - its agent announced before and has been silent for `agents.heartbeatTimeoutMs`;
 *   - a probe connection to it is refused (immediately), or it has not answered a connect or an
 *     SMB2 ECHO for `health.probeTimeoutMs`. A probe connection that ends is opened again at
 *     once: smbd ends every connection without a tree connect at its 60 s idle check.
 * A failure goes through `onFailed` (the DSR's failover: the table's failServer remaps the shares,
 * backend connections to the server are dropped) and the table emits `server.failed`; a recovery
 * is the table's recoverServer (`server.recovered`). Fail-back is not done here (policy `none`).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import type { Config } from '../config.js';
import type { CredentialTable } from '../tables/credentials.js';
import { DsrError, ErrorCode, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { Smb2Client } from '../smb2/client.js';
import type { HealthReason, ResourceTable } from '../tables/resources.js';
import { AnnounceError, decodeAnnouncement, parseKeyText, ReplayGuard, type AnnouncePayload, type AnnounceRejection } from '../wire/announce.js';
import { Smb2Command } from '../wire/smb2/constants.js';
import { encodeReservedBody } from '../wire/smb2/simple.js';
import type { PortChange, PortMap } from '../../offload/portmap.js';
import { enumerateShares, type DiscoveredShare } from './discovery.js';

export interface ManagerEvents {
  /** Shares or servers were learned or forgotten. */
  'resources.changed': [{ server: string; added: string[]; removed: string[] }];
}

export interface AnnounceStats {
  accepted: number;
  rejected: Record<AnnounceRejection, number>;
}

/** Reads the agents' key: refused when group or others can read the file. */
export function readKeyFile(path: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new DsrError(ErrorCode.CONFIG, `cannot read key file ${path}: ${errorMessage(e)}`, { cause: e });
  }
  if (st.mode & 0o077) throw new DsrError(ErrorCode.CONFIG, `key file ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
  return parseKeyText(readFileSync(path, 'utf8'), path);
}

interface Probe {
  client: Smb2Client | undefined;
  connecting: boolean;
  echoing: boolean;
  /** ms timestamp of the last answer (connect+NEGOTIATE or ECHO). */
  lastAnswer: number;
  /** Why the probe is not answering, when it is not. */
  down: HealthReason | undefined;
}

/** Rejections logged per second at most; the rest are only counted. */
const REJECT_LOG_PER_SECOND = 10;

export class ResourceManager extends EventEmitter<ManagerEvents> {
  private udp: UdpSocket | undefined;
  private key: Buffer | undefined;
  private readonly guard: ReplayGuard | undefined;
  private readonly probes = new Map<string, Probe>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private rejectLogWindow = { second: 0, count: 0 };
  readonly stats: AnnounceStats = { accepted: 0, rejected: { malformed: 0, 'bad-mac': 0, stale: 0, replayed: 0, 'address-mismatch': 0 } };

  constructor(
    private readonly config: Config,
    private readonly table: ResourceTable,
    private readonly credentials: CredentialTable,
    private readonly log: Logger,
    private readonly portMap?: PortMap,
    /** Fails a server the way the rest of the DSR does (failover); the table alone when absent. */
    private readonly onFailed?: (server: string, why: HealthReason) => void,
  ) {
    super();
    if (config.agents) this.guard = new ReplayGuard(config.agents.freshnessMs);
  }

  async start(): Promise<void> {
    if (this.config.agents) {
      this.key = readKeyFile(this.config.agents.keyFile);
      await this.listen(this.config.agents.listen.address, this.config.agents.listen.port);
    }
    this.portMap?.on('change', this.onPortChange);
    this.timer = setInterval(() => this.tick(), this.config.health.probeIntervalMs);
    this.tick();
    for (const name of Object.keys(this.config.servers)) if (this.discoveryAccount(name)) void this.discover(name).catch(() => undefined);
  }

  /** The UDP port announcements arrive on (the configured one, or the one picked for port 0). */
  get announcePort(): number | undefined {
    return this.udp?.address().port;
  }

  private listen(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const udp = createSocket({ type: 'udp4' });
      udp.once('error', (e) => reject(new DsrError(ErrorCode.CONFIG, `cannot listen for agents on ${address}:${port}: ${e.message}`, { cause: e })));
      udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo.address));
      udp.bind({ address, port, exclusive: true }, () => {
        udp.removeAllListeners('error');
        udp.on('error', (e) => this.log.warn({ event: 'agent.socket_error', err: e.message }, 'agent socket error'));
        this.udp = udp;
        this.log.info({ event: 'agent.listening', address, port: udp.address().port }, 'listening for announce agents');
        resolve();
      });
    });
  }

  private reject(reason: AnnounceRejection, from: string, message: string, server?: string): void {
    this.stats.rejected[reason]++;
    const second = Math.floor(Date.now() / 1000);
    if (this.rejectLogWindow.second !== second) this.rejectLogWindow = { second, count: 0 };
    if (++this.rejectLogWindow.count > REJECT_LOG_PER_SECOND) return;
    this.log.warn({ event: 'agent.rejected', reason, from, server, detail: message, count: this.stats.rejected[reason] }, 'announcement rejected');
  }

  private onDatagram(msg: Buffer, from: string): void {
    if (this.stopped || !this.key || !this.guard) return;
    let p: AnnouncePayload;
    try {
      p = decodeAnnouncement(msg, this.key);
    } catch (e) {
      this.reject(e instanceof AnnounceError ? e.reason : 'malformed', from, errorMessage(e));
      return;
    }
    try {
      // The address a server is reached at is the one it sends from: it cannot speak for another.
      const known = this.table.server(p.server);
      if (known && known.address !== from) throw new AnnounceError('address-mismatch', `${p.server} is at ${known.address}`);
      this.guard.check(p, Date.now());
    } catch (e) {
      this.reject(e instanceof AnnounceError ? e.reason : 'malformed', from, errorMessage(e), p.server);
      return;
    }
    this.stats.accepted++;
    this.onAnnouncement(p, from);
  }

  private onAnnouncement(p: AnnouncePayload, from: string): void {
    const now = new Date();
    if (p.kind === 'stop') {
      // An agent stopped on purpose: stop expecting its heartbeats; the probe still watches smbd.
      this.table.forgetAgent(p.server);
      this.log.info({ event: 'agent.stopped', server: p.server }, 'announce agent stopped');
      return;
    }
    let changed;
    try {
      changed = this.table.learn(p.server, from, p.smbPort, 'agent', p.shares);
    } catch (e) {
      this.log.warn({ event: 'agent.learn_failed', server: p.server, err: errorMessage(e) }, 'cannot record announcement');
      return;
    }
    this.table.seen(p.server, now, true, { ...p.load, at: now.toISOString() });
    if (changed.newServer || changed.added.length || changed.removed.length) {
      this.log.info({ event: 'resources.learned', server: p.server, address: from, kind: p.kind, added: changed.added, removed: changed.removed, newServer: changed.newServer }, 'learned from agent');
      this.emit('resources.changed', { server: p.server, added: changed.added, removed: changed.removed });
    }
    this.evaluate(p.server);
  }

  /** Enumerates a server's shares over srvsvc and learns them (configured servers; needs an account). */
  async discover(name: string): Promise<DiscoveredShare[]> {
    const server = this.table.server(name);
    if (!server) throw new DsrError(ErrorCode.USAGE, `no server ${name}`);
    const account = this.discoveryAccount(name);
    if (!account) throw new DsrError(ErrorCode.CONFIG, `no account to enumerate ${name}'s shares with (discovery.account or servers.${name}.account)`);
    const entry = this.credentials.lookup(account.user);
    if (!entry) throw new DsrError(ErrorCode.CONFIG, `discovery account ${account.user} is not in the credential table`);
    try {
      const shares = await enumerateShares({ host: server.address, port: server.port, user: entry.name, domain: account.domain, ntHash: entry.ntHash, timeoutMs: this.config.limits.backendTimeoutSeconds * 1000, ...this.source() });
      const changed = this.table.learn(name, server.address, server.port, 'discovery', shares);
      this.log.info({ event: 'resources.discovered', server: name, shares: shares.map((s) => s.name), added: changed.added, removed: changed.removed }, 'enumerated shares over srvsvc');
      if (changed.added.length || changed.removed.length) this.emit('resources.changed', { server: name, added: changed.added, removed: changed.removed });
      return shares;
    } catch (e) {
      this.log.warn({ event: 'resources.discovery_failed', server: name, err: errorMessage(e) }, 'share discovery failed');
      throw e;
    }
  }

  private source(): { localAddress?: string } {
    const a = this.config.health.source;
    return a === undefined ? {} : { localAddress: a };
  }

  private discoveryAccount(name: string): { user: string; domain: string } | undefined {
    return this.config.servers[name]?.account ?? this.config.discovery.account;
  }

  private readonly onPortChange = (c: PortChange): void => {
    if (c.server) this.evaluate(c.server);
  };

  /** One probe round: connect where there is no probe connection, ECHO where there is, then re-evaluate all. */
  private tick(): void {
    if (this.stopped) return;
    for (const s of this.table.listServers()) {
      let p = this.probes.get(s.name);
      if (!p) this.probes.set(s.name, (p = { client: undefined, connecting: false, echoing: false, lastAnswer: 0, down: 'not-probed' }));
      if (!p.client && !p.connecting) this.connectProbe(s.name, p);
      else if (p.client && !p.echoing) this.echo(s.name, p);
      this.evaluate(s.name);
    }
  }

  private connectProbe(name: string, p: Probe): void {
    const server = this.table.server(name);
    if (!server) return;
    p.connecting = true;
    const timeoutMs = this.config.health.probeTimeoutMs;
    void (async () => {
      let client: Smb2Client | undefined;
      try {
        client = await Smb2Client.connect({ host: server.address, port: server.port, timeoutMs, ...this.source() });
        await client.negotiate();
      } catch (e) {
        client?.close();
        p.connecting = false;
        const code = (e as NodeJS.ErrnoException).code;
        // A refused connect is an answer (nothing listens); a silent one waits for the timeout.
        if (code === 'ECONNREFUSED') p.down = 'connection-refused';
        else if (p.down === undefined || p.down === 'not-probed') p.down = p.lastAnswer === 0 ? 'not-probed' : p.down;
        this.evaluate(name);
        return;
      }
      p.connecting = false;
      if (this.stopped) return client.close();
      p.client = client;
      p.lastAnswer = Date.now();
      p.down = undefined;
      client.onClosed = () => {
        if (p.client !== client) return;
        p.client = undefined;
        p.echoing = false;
        // smbd ends a connection with no tree connect at its 60 s idle check (IDLE_CLOSED_TIMEOUT,
        // deadtime_fn), so a probe connection ending says nothing yet: connect again at once; a
        // refusal fails the server, silence fails it after probeTimeoutMs.
        this.connectProbe(name, p);
      };
      this.evaluate(name);
    })();
  }

  private echo(name: string, p: Probe): void {
    const client = p.client!;
    p.echoing = true;
    client
      .request(Smb2Command.ECHO, encodeReservedBody(), { creditRequest: 1 })
      .then(() => {
        if (p.client !== client) return;
        p.lastAnswer = Date.now();
        p.down = undefined;
      })
      .catch(() => {
        // A timeout or a broken connection; onClosed or the age check reports it.
      })
      .finally(() => {
        p.echoing = false;
        this.evaluate(name);
      });
  }

  /** Decides a server's health from its port, agent and probe, and emits the transition. */
  private evaluate(name: string): void {
    if (this.stopped) return;
    const s = this.table.serverState(name);
    if (!s) return;
    const now = Date.now();
    const p = this.probes.get(name);
    const hbTimeout = this.config.agents?.heartbeatTimeoutMs;
    let reason: HealthReason | undefined;
    if (this.portMap?.serverUp(name) === false) reason = 'port-down';
    else if (hbTimeout !== undefined && s.lastAnnounce !== undefined && now - s.lastAnnounce.getTime() > hbTimeout) reason = 'heartbeat-lost';
    else if (p?.down === 'connection-refused') reason = p.down;
    else if (p && p.lastAnswer > 0 && now - p.lastAnswer > this.config.health.probeTimeoutMs) reason = 'probe-timeout';
    const answered = p !== undefined && p.lastAnswer > 0 && p.down === undefined;
    if (answered) this.table.seen(name, new Date(p.lastAnswer), false);
    const health = reason ? 'failed' : answered ? 'healthy' : undefined;
    if (!health) {
      // Never answered yet: unknown, unless the probe has been trying for longer than the timeout.
      if (s.health === 'unknown' && now - s.since.getTime() > this.config.health.probeTimeoutMs + 1000) this.transition(name, 'failed', 'probe-timeout');
      return;
    }
    if (health === s.health && (health === 'healthy' || reason === s.reason)) return;
    this.transition(name, health, reason ?? 'probe-ok');
  }

  private transition(name: string, health: 'healthy' | 'failed', reason: HealthReason): void {
    const s = this.table.serverState(name);
    if (!s) return;
    const prev = s.health;
    if (health === 'failed') {
      if (prev === 'failed') return this.table.setFailReason(name, reason);
      this.log.warn({ event: 'health.failed', server: name, reason, previous: prev }, 'storage server failed');
      if (this.onFailed) this.onFailed(name, reason);
      else this.table.failServer(name, reason);
      // A probe connection that outlived the failure (port down) would hide the recovery check.
      const p = this.probes.get(name);
      if (reason === 'port-down' && p?.client) p.client.close();
      return;
    }
    if (prev !== 'failed') return this.table.setHealth(name, 'healthy', reason);
    this.log.info({ event: 'health.recovered', server: name }, 'storage server healthy again');
    this.table.recoverServer(name, reason);
    // Re-learned: a configured server is enumerated again (its agent re-announces by itself).
    if (s.origin === 'config' && this.discoveryAccount(name)) void this.discover(name).catch(() => undefined);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.portMap?.off('change', this.onPortChange);
    this.udp?.close();
    this.udp = undefined;
    for (const p of this.probes.values()) p.client?.close();
    this.probes.clear();
  }
}
