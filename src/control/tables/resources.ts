/**
 * The resource table (source paragraphs 0031, 0068-0069): every share the DSR offers, which
 * storage servers can serve it and which one is active. Loaded from the configuration for now;
 * the resource manager will learn and remap entries at run time.
 */
import type { Config } from '../config.js';
import { DsrError, ErrorCode } from '../errors.js';

export interface StorageServer {
  name: string;
  address: string;
  port: number;
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

export interface ResourceView extends Resource {
  activeAddress: string;
}

/** A share whose active server changed: where it went (undefined: no healthy server can serve it). */
export interface Remap {
  share: string;
  from: string;
  to: string | undefined;
}

export class ResourceTable {
  private readonly byName = new Map<string, Resource>();
  private readonly servers = new Map<string, StorageServer>();
  /** Failed servers and why. */
  private readonly failed = new Map<string, string>();

  static fromConfig(config: Pick<Config, 'servers' | 'resources'>): ResourceTable {
    const t = new ResourceTable();
    for (const [name, s] of Object.entries(config.servers)) t.servers.set(name, { name, address: s.address, port: s.port });
    for (const r of config.resources) {
      t.byName.set(r.name.toLowerCase(), {
        name: r.name,
        comment: r.comment,
        remoteName: r.remoteName ?? r.name,
        servers: [...r.servers],
        active: r.servers[0]!,
      });
    }
    return t;
  }

  /** Share names are case-insensitive, as on Windows and Samba. */
  lookup(share: string): Resource | undefined {
    return this.byName.get(share.toLowerCase());
  }

  server(name: string): StorageServer | undefined {
    return this.servers.get(name);
  }

  healthy(name: string): boolean {
    return this.servers.has(name) && !this.failed.has(name);
  }

  /**
   * A server failed (source Fig. 7, paragraphs 0083-0086): every share it serves actively moves
   * to the first healthy server able to serve it. Idempotent: every client connection that
   * loses the server reports it, the first one moves the shares.
   */
  failServer(name: string, why: string): Remap[] {
    if (this.failed.has(name)) return [];
    this.failed.set(name, why);
    const remaps: Remap[] = [];
    for (const r of this.byName.values()) {
      if (r.active !== name) continue;
      const to = r.servers.find((s) => this.healthy(s));
      if (to) r.active = to;
      remaps.push({ share: r.name, from: name, to });
    }
    return remaps;
  }

  /** Makes `to` the active server of a share (a planned move); throws when it cannot serve it. */
  move(share: string, to: string): Remap {
    const r = this.lookup(share);
    if (!r) throw new DsrError(ErrorCode.USAGE, `no share ${JSON.stringify(share)} in the resource table`);
    if (!r.servers.includes(to)) throw new DsrError(ErrorCode.USAGE, `${to} cannot serve ${r.name} (served by ${r.servers.join(', ')})`);
    if (!this.healthy(to)) throw new DsrError(ErrorCode.USAGE, `${to} has failed: ${this.failed.get(to) ?? 'unknown server'}`);
    const from = r.active;
    r.active = to;
    return { share: r.name, from, to };
  }

  /** A failed server is back; its shares stay where they are (fail-back is rebalancing's call). */
  recoverServer(name: string): boolean {
    return this.failed.delete(name);
  }

  list(): ResourceView[] {
    return [...this.byName.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((r) => ({ ...r, servers: [...r.servers], activeAddress: this.servers.get(r.active)?.address ?? '' }));
  }

  listServers(): StorageServer[] {
    return [...this.servers.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get size(): number {
    return this.byName.size;
  }
}
