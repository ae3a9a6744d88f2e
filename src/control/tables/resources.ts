/**
 * The resource table (source paragraphs 0031, 0068-0069, 0081): every share the DSR offers,
 * which storage servers can serve it and which one is active, and every storage server with its
 * health and load. Configured servers and shares are there from the start; servers and shares
 * learned at run time (from announce agents or srvsvc discovery) are added and removed live and
 * persisted atomically, so a restarted DSR knows them before they announce again.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../atomic-file.js';
import type { Config } from '../config.js';
import { DsrError, ErrorCode, errorMessage } from '../errors.js';

export interface StorageServer {
  name: string;
  address: string;
  port: number;
}

export type ServerOrigin = 'config' | 'agent' | 'discovery';
export type ServerHealth = 'unknown' | 'healthy' | 'failed';
/**
 * Why a server is failed (or, for `healthy`, what last made it so): the resource manager's
 * 'port-down' | 'heartbeat-lost' | 'connection-lost' | 'connection-refused' | 'probe-timeout' |
 * 'probe-ok' | 'not-probed', or the words of whoever else failed it ('storage port down', ...).
 */
export type HealthReason = string;

/** A share whose active server changed: where it went (undefined: no healthy server can serve it). */
export interface Remap {
  share: string;
  from: string;
  to: string | undefined;
}

export interface ServerHealthEvent {
  server: string;
  reason: HealthReason;
  at: Date;
  /** Shares the server was the active server of when it failed or recovered. */
  activeShares: string[];
  /** For a failure: where each of those shares went. */
  remaps: Remap[];
}

/** `server.failed` / `server.recovered`, once per transition, whoever noticed it. */
export interface HealthEvents {
  'server.failed': [ServerHealthEvent];
  'server.recovered': [ServerHealthEvent];
}

export interface ServerLoad {
  cpu: number;
  cpus: number;
  load1: number;
  memTotalBytes: number;
  memAvailableBytes: number;
  at: string;
}

export interface ServerState extends StorageServer {
  origin: ServerOrigin;
  health: ServerHealth;
  reason: HealthReason;
  /** When health last changed. */
  since: Date;
  /** Last sign of life: a probe answer or an accepted announcement. */
  lastSeen: Date | undefined;
  /** Last accepted agent announcement; undefined for a server without an agent. */
  lastAnnounce: Date | undefined;
  load: ServerLoad | undefined;
  /** Shares this server said (agent or srvsvc) it serves, lower-case name -> as announced. */
  learned: Map<string, LearnedShare>;
}

export interface LearnedShare {
  name: string;
  comment: string;
  usedBytes?: number;
  totalBytes?: number;
}

export interface Resource {
  /** The share name clients see. */
  name: string;
  comment: string;
  /** The share's name on the servers. */
  remoteName: string;
  /** Servers able to serve the share, in preference order. */
  servers: string[];
  /** The server currently serving it. */
  active: string;
}

interface ResourceEntry extends Resource {
  /** Servers the configuration lists for it (never removed by learning). */
  configured: Set<string>;
}

export interface ResourceView extends Resource {
  activeAddress: string;
  origin: 'config' | 'learned';
}

export interface ServerView extends StorageServer {
  origin: ServerOrigin;
  health: ServerHealth;
  reason: HealthReason;
  since: string;
  lastSeen: string | null;
  lastAnnounce: string | null;
  load: ServerLoad | null;
  /** Shares this server is the active server of. */
  activeShares: string[];
  /** Shares it can serve. */
  shares: string[];
}

/** On disk (`<stateDir>/resources.json`): what was learned, and which server is active per share. */
interface FileFormat {
  version: 1;
  servers: { name: string; address: string; port: number; origin: ServerOrigin; shares: LearnedShare[] }[];
  active: Record<string, string>;
}

export class ResourceTable extends EventEmitter<HealthEvents> {
  private readonly byName = new Map<string, ResourceEntry>();
  private readonly servers = new Map<string, ServerState>();

  /** `path`: where learned state is persisted; undefined keeps it in memory only (tests, no stateDir). */
  constructor(readonly path?: string) {
    super();
  }

  static fromConfig(config: Pick<Config, 'servers' | 'resources'>, path?: string): ResourceTable {
    const t = new ResourceTable(path);
    for (const [name, s] of Object.entries(config.servers)) t.servers.set(name, newServer(name, s.address, s.port, 'config'));
    for (const r of config.resources) {
      t.byName.set(r.name.toLowerCase(), {
        name: r.name,
        comment: r.comment,
        remoteName: r.remoteName ?? r.name,
        servers: [...r.servers],
        active: r.servers[0]!,
        configured: new Set(r.servers),
      });
    }
    if (path) t.restore(path);
    return t;
  }

  /** Share names are case-insensitive, as on Windows and Samba. */
  lookup(share: string): Resource | undefined {
    return this.byName.get(share.toLowerCase());
  }

  server(name: string): StorageServer | undefined {
    return this.servers.get(name);
  }

  serverState(name: string): ServerState | undefined {
    return this.servers.get(name);
  }

  list(): ResourceView[] {
    return [...this.byName.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((r) => ({
        name: r.name,
        comment: r.comment,
        remoteName: r.remoteName,
        servers: [...r.servers],
        active: r.active,
        activeAddress: this.servers.get(r.active)?.address ?? '',
        origin: r.configured.size > 0 ? 'config' : 'learned',
      }));
  }

  listServers(): ServerView[] {
    const resources = [...this.byName.values()];
    return [...this.servers.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((s) => ({
        name: s.name,
        address: s.address,
        port: s.port,
        origin: s.origin,
        health: s.health,
        reason: s.reason,
        since: s.since.toISOString(),
        lastSeen: s.lastSeen?.toISOString() ?? null,
        lastAnnounce: s.lastAnnounce?.toISOString() ?? null,
        load: s.load ?? null,
        activeShares: resources.filter((r) => r.active === s.name).map((r) => r.name).sort(),
        shares: resources.filter((r) => r.servers.includes(s.name)).map((r) => r.name).sort(),
      }));
  }

  get size(): number {
    return this.byName.size;
  }

  /**
   * A server says it serves exactly `shares` (an agent announcement or a srvsvc enumeration).
   * Adds the server if new, adds it to each share (creating learned shares), and takes it off
   * learned memberships it no longer announces; configured memberships stay. Returns what changed
   * (nothing for a heartbeat that repeats the last announcement). Persists when something did.
   */
  learn(name: string, address: string, port: number, origin: Exclude<ServerOrigin, 'config'>, shares: readonly LearnedShare[]): { added: string[]; removed: string[]; newServer: boolean } {
    let s = this.servers.get(name);
    const isNew = s === undefined;
    let moved = false;
    if (!s) this.servers.set(name, (s = newServer(name, address, port, origin)));
    else if (s.address !== address || s.port !== port) {
      if (s.origin === 'config') throw new DsrError(ErrorCode.CONFIG, `server ${name} is configured at ${s.address}:${s.port}, not ${address}:${port}`);
      s.address = address;
      s.port = port;
      moved = true;
    }
    const next = new Map(shares.filter((sh) => sh.name.toLowerCase() !== 'ipc$').map((sh) => [sh.name.toLowerCase(), sh] as const));
    const added: string[] = [];
    const removed: string[] = [];
    for (const [key, sh] of next) {
      if (!s.learned.has(key)) added.push(sh.name);
      let r = this.byName.get(key);
      if (!r) {
        r = { name: sh.name, comment: sh.comment, remoteName: sh.name, servers: [], active: name, configured: new Set() };
        this.byName.set(key, r);
      }
      if (!r.servers.includes(name)) r.servers.push(name);
    }
    for (const [key, sh] of s.learned) {
      if (next.has(key)) continue;
      removed.push(sh.name);
      const r = this.byName.get(key);
      if (!r || r.configured.has(name)) continue;
      r.servers = r.servers.filter((x) => x !== name);
      if (r.servers.length === 0) this.byName.delete(key);
      else if (r.active === name) r.active = this.preferred(r.servers);
    }
    s.learned = next;
    if (isNew || moved || added.length > 0 || removed.length > 0) this.save();
    return { added, removed, newServer: isNew };
  }

  /** Records a server's health without failing or recovering it (unknown -> healthy, a new reason). */
  setHealth(name: string, health: Exclude<ServerHealth, 'failed'>, reason: HealthReason, at = new Date()): void {
    const s = this.servers.get(name);
    if (!s || s.health === 'failed') return;
    if (s.health !== health) s.since = at;
    s.health = health;
    s.reason = reason;
  }

  /** A failed server's reason changed (it stays failed). */
  setFailReason(name: string, reason: HealthReason): void {
    const s = this.servers.get(name);
    if (s?.health === 'failed') s.reason = reason;
  }

  seen(name: string, at: Date, announce: boolean, load?: ServerLoad): void {
    const s = this.servers.get(name);
    if (!s) return;
    s.lastSeen = at;
    if (announce) s.lastAnnounce = at;
    if (load) s.load = load;
  }

  /** The server's agent said goodbye: its heartbeats are no longer expected. */
  forgetAgent(name: string): void {
    const s = this.servers.get(name);
    if (s) s.lastAnnounce = undefined;
  }

  healthy(name: string): boolean {
    const s = this.servers.get(name);
    return s !== undefined && s.health !== 'failed';
  }

  private activeOf(name: string): string[] {
    return [...this.byName.values()].filter((r) => r.active === name).map((r) => r.name).sort();
  }

  /**
   * A server failed (source Fig. 7, paragraphs 0083-0086): every share it serves actively moves
   * to the first healthy server able to serve it. Idempotent: every client connection that
   * loses the server reports it, the first one moves the shares and `server.failed` is emitted.
   */
  failServer(name: string, why: HealthReason): Remap[] {
    const s = this.servers.get(name);
    if (!s || s.health === 'failed') return [];
    const at = new Date();
    const activeShares = this.activeOf(name);
    s.health = 'failed';
    s.reason = why;
    s.since = at;
    const remaps: Remap[] = [];
    for (const r of this.byName.values()) {
      if (r.active !== name) continue;
      const to = r.servers.find((x) => this.healthy(x));
      if (to) r.active = to;
      remaps.push({ share: r.name, from: name, to });
    }
    if (remaps.some((m) => m.to)) this.save();
    this.emit('server.failed', { server: name, reason: why, at, activeShares, remaps });
    return remaps;
  }

  /** Makes `to` the active server of a share (a planned move); throws when it cannot serve it. Persisted. */
  move(share: string, to: string): Remap {
    const r = this.byName.get(share.toLowerCase());
    if (!r) throw new DsrError(ErrorCode.USAGE, `no share ${JSON.stringify(share)} in the resource table`);
    if (!r.servers.includes(to)) throw new DsrError(ErrorCode.USAGE, `${to} cannot serve ${r.name} (served by ${r.servers.join(', ')})`);
    if (!this.healthy(to)) throw new DsrError(ErrorCode.USAGE, `${to} has failed: ${this.servers.get(to)?.reason ?? 'unknown server'}`);
    const from = r.active;
    r.active = to;
    if (from !== to) this.save();
    return { share: r.name, from, to };
  }

  /** A failed server is back; its shares stay where they are (fail-back is rebalancing's call). */
  recoverServer(name: string, why: HealthReason = 'recovered'): boolean {
    const s = this.servers.get(name);
    if (s?.health !== 'failed') return false;
    const at = new Date();
    s.health = 'healthy';
    s.reason = why;
    s.since = at;
    this.emit('server.recovered', { server: name, reason: why, at, activeShares: this.activeOf(name), remaps: [] });
    return true;
  }

  /** The first healthy server of a list, else the first. */
  private preferred(servers: readonly string[]): string {
    return servers.find((n) => this.servers.get(n)?.health === 'healthy') ?? servers[0]!;
  }

  private save(): void {
    if (!this.path) return;
    const doc: FileFormat = {
      version: 1,
      servers: [...this.servers.values()]
        .filter((s) => s.origin !== 'config' || s.learned.size > 0)
        .map((s) => ({ name: s.name, address: s.address, port: s.port, origin: s.origin, shares: [...s.learned.values()].map((sh) => ({ name: sh.name, comment: sh.comment })) })),
      active: Object.fromEntries([...this.byName.values()].map((r) => [r.name, r.active])),
    };
    try {
      writeFileAtomic(this.path, JSON.stringify(doc, null, 2) + '\n', 0o600);
    } catch (e) {
      throw new DsrError(ErrorCode.CONFIG, `cannot persist the resource table to ${this.path}: ${errorMessage(e)}`, { cause: e });
    }
  }

  /** Replays what a previous run learned; configured servers keep their configured address. */
  private restore(path: string): void {
    let doc: FileFormat;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8')) as FileFormat;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new DsrError(ErrorCode.CONFIG, `resource table ${path} is unreadable: ${errorMessage(e)}`, { cause: e });
    }
    if (doc?.version !== 1 || !Array.isArray(doc.servers)) throw new DsrError(ErrorCode.CONFIG, `resource table ${path}: unknown format`);
    for (const s of doc.servers) {
      const known = this.servers.get(s.name);
      if (known?.origin === 'config') this.learn(s.name, known.address, known.port, 'discovery', s.shares);
      else this.learn(s.name, s.address, s.port, s.origin === 'config' ? 'discovery' : s.origin, s.shares);
    }
    for (const [share, server] of Object.entries(doc.active ?? {})) {
      const r = this.byName.get(share.toLowerCase());
      if (r?.servers.includes(server)) r.active = server;
    }
  }
}

function newServer(name: string, address: string, port: number, origin: ServerOrigin): ServerState {
  return { name, address, port, origin, health: 'unknown', reason: 'not-probed', since: new Date(), lastSeen: undefined, lastAnnounce: undefined, load: undefined, learned: new Map() };
}
