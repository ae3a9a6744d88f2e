/**
 * The storage switch's port map (issue 5, item 4). The appliance's storage switch is a Linux
 * bridge in the DSR's network namespace; each storage port leads to one server. The control
 * plane owns the map (which server, MAC and IPv4 sit on which port) and programs the bridge from
 * it over rtnetlink, never through iproute2:
 *   - a static FDB entry for each known server MAC on its port, so frames to a server go out of
 *     its port only, and a MAC cannot move to another port by learning;
 *   - port flags: isolation on every storage port (servers reach the DSR, never each other),
 *     learning and unknown-unicast flooding off where the server's MAC is known, multicast
 *     flooding off; broadcast flooding stays on, because the DSR's ARP requests are broadcasts;
 *   - link state: RTNLGRP_LINK notifications mark a port (and its server) up or down the moment
 *     the kernel sees the carrier change, as a `change` event the resource manager listens to.
 * Nothing reaches the client side from here: the DSR's namespace does not forward (ip_forward 0),
 * so the bridge is a dead end except for the DSR's own sockets.
 *
 * The tc program on the storage ports (per-port counters, drops by port map) plugs in through
 * `PortFilter`: it is fed the map after every change and its counters show in `dsr port list`.
 */
import { EventEmitter } from 'node:events';
import { isIPv4 } from 'node:net';
import type { Config } from '../control/config.js';
import { DsrError, ErrorCode, errorMessage } from '../control/errors.js';
import type { Logger } from '../control/log.js';
import type { PortReason } from './abi.js';
import { RtnlSocket } from './netlink.js';
import {
  AF_BRIDGE,
  AF_UNSPEC,
  formatBridgePortFlags,
  formatFdbDelete,
  formatFdbDump,
  formatFdbEntry,
  formatLinkDump,
  IFF_LOWER_UP,
  IFF_UP,
  isStaticFdb,
  macBytes,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_REPLACE,
  parseFdbEntry,
  parseLink,
  RTM_DELLINK,
  RTM_DELNEIGH,
  RTM_GETLINK,
  RTM_GETNEIGH,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_SETLINK,
  RTNLGRP_LINK,
  type BridgePortFlags,
  type FdbEntry,
  type LinkInfo,
  type NlMessage,
  type OperState,
} from './rtnetlink.js';

/** What the control plane says sits on a port. */
export interface PortBinding {
  port: string;
  server?: string;
  mac?: string;
  ipv4?: string;
  isolated: boolean;
}

export interface PacketCount {
  packets: number;
  /** Whole frames, Ethernet header included. */
  bytes: number;
}

/** One direction of a port as the filter counted it. */
export interface PortDirectionCounters {
  /** Passed as the DSR's own traffic (its server and the DSR's storage address): the load figures. */
  allowed: PacketCount;
  /** Dropped, every drop reason together. */
  dropped: PacketCount;
  /** Every reason code: allowed, each drop reason, and the passes that are not the DSR's (direct, open). */
  reasons: Record<PortReason, PacketCount>;
}

/** Directions seen from the switch: ingress = from the server, egress = to the server. */
export interface PortCounters {
  ingress: PortDirectionCounters;
  egress: PortDirectionCounters;
}

/**
 * The seam for the storage ports' tc program (KernelPortFilter in port-filter.ts): it receives
 * the whole map after every change (which MAC/IPv4 each port may carry) and reports per-port
 * counters.
 */
export interface PortFilter {
  apply(bindings: readonly PortBinding[]): Promise<void>;
  /** The port's interface was re-created or put back on the bridge: attach to it as it is now. */
  reattach(port: string): Promise<void>;
  counters(): Promise<Map<string, PortCounters>>;
}

/** A port going up or down, as the kernel reported it. */
export interface PortChange {
  port: string;
  server?: string;
  up: boolean;
  oper: OperState | 'missing';
  at: Date;
}

/** One row of `dsr port list`. */
export interface PortView {
  port: string;
  ifindex: number | null;
  /** Administratively up (IFF_UP). */
  admin: boolean;
  carrier: boolean;
  oper: OperState | 'missing';
  /** Carries traffic: present on the bridge, admin up and carrier. */
  up: boolean;
  server: string | null;
  mac: string | null;
  ipv4: string | null;
  /** The flags as the kernel reports them now. */
  isolated: boolean;
  learning: boolean;
  unicastFlood: boolean;
  /** The server's MAC has a static entry on this port in the bridge's FDB (read back from the kernel). */
  staticFdb: boolean;
  lastChange: string;
  counters?: PortCounters;
}

/** A change `dsr port set` asks for; absent fields stay as they are. */
export interface PortSetRequest {
  port: string;
  /** A configured server to place on this port (it leaves its old port); null empties the port. */
  server?: string | null;
  /** null drops the static FDB entry (the port learns again). */
  mac?: string | null;
  ipv4?: string | null;
  isolated?: boolean;
}

/** The bridge flags a binding asks for (pure: the policy in one place). */
export function portFlags(b: PortBinding): Required<BridgePortFlags> {
  const known = b.mac !== undefined;
  return { isolated: b.isolated, learning: !known, unicastFlood: !known, multicastFlood: false, broadcastFlood: true };
}

/**
 * The port map's model: bindings by port, validated. Pure, so its rules are testable without a
 * kernel; PortMap applies every accepted change to the bridge.
 */
export class PortTable {
  private readonly bindings = new Map<string, PortBinding>();

  constructor(
    ports: readonly string[],
    private readonly knownServers: ReadonlySet<string>,
  ) {
    for (const port of ports) this.bindings.set(port, { port, isolated: true });
  }

  /** The configured placement: servers.X.port, .mac and an IPv4 address. */
  static fromConfig(config: Config, ports: readonly string[]): PortTable {
    const sw = config.switch;
    const t = new PortTable(ports, new Set(Object.keys(config.servers)));
    for (const p of ports) t.get(p).isolated = sw?.isolated ?? true;
    for (const [name, s] of Object.entries(config.servers)) {
      if (s.switchPort === undefined) continue;
      t.set({ port: s.switchPort, server: name, ...(s.mac !== undefined && { mac: s.mac }), ...(isIPv4(s.address) && { ipv4: s.address }) });
    }
    return t;
  }

  ports(): string[] {
    return [...this.bindings.keys()];
  }

  get(port: string): PortBinding {
    const b = this.bindings.get(port);
    if (!b) throw new DsrError(ErrorCode.USAGE, `no storage port ${JSON.stringify(port)}: the ports are ${this.ports().join(', ')}`);
    return b;
  }

  list(): PortBinding[] {
    return [...this.bindings.values()].map((b) => ({ ...b }));
  }

  portOf(server: string): string | undefined {
    return [...this.bindings.values()].find((b) => b.server === server)?.port;
  }

  /**
   * Applies a change and returns the ports whose binding changed (a server moving empties its
   * old port). Throws DsrError(USAGE) and changes nothing when the result would be inconsistent.
   */
  set(req: PortSetRequest): string[] {
    const cur = this.get(req.port);
    let next: PortBinding = { ...cur };
    /** The binding the server leaves when it moves here from another port. */
    let from: PortBinding | undefined;
    if (req.server === null) next = { port: req.port, isolated: cur.isolated };
    else if (req.server !== undefined && req.server !== cur.server) {
      if (!this.knownServers.has(req.server)) throw new DsrError(ErrorCode.USAGE, `unknown server ${JSON.stringify(req.server)}: not in the configuration's servers`);
      from = [...this.bindings.values()].find((b) => b.server === req.server);
      // The server keeps its MAC and address when it moves, unless the request gives new ones.
      next = { port: req.port, isolated: cur.isolated, server: req.server, ...(from?.mac !== undefined && { mac: from.mac }), ...(from?.ipv4 !== undefined && { ipv4: from.ipv4 }) };
    }
    if (req.mac === null) delete next.mac;
    else if (req.mac !== undefined) {
      const mac = req.mac.toLowerCase();
      if (macBytes(mac)[0]! & 1) throw new DsrError(ErrorCode.USAGE, `${req.mac} is a multicast address; a server's MAC is unicast`);
      next.mac = mac;
    }
    if (req.ipv4 === null) delete next.ipv4;
    else if (req.ipv4 !== undefined) {
      if (!isIPv4(req.ipv4)) throw new DsrError(ErrorCode.USAGE, `invalid IPv4 address ${JSON.stringify(req.ipv4)}`);
      next.ipv4 = req.ipv4;
    }
    if (req.isolated !== undefined) next.isolated = req.isolated;
    if ((next.mac !== undefined || next.ipv4 !== undefined) && next.server === undefined) {
      throw new DsrError(ErrorCode.USAGE, `port ${req.port} has no server: give --server with --mac or --ipv4`);
    }
    const others = [...this.bindings.values()].filter((b) => b.port !== req.port && b !== from);
    for (const what of ['mac', 'ipv4'] as const) {
      const c = next[what] !== undefined ? others.find((b) => b[what] === next[what]) : undefined;
      if (c) throw new DsrError(ErrorCode.USAGE, `${next[what]} is already ${c.server}'s, on port ${c.port}`);
    }
    const touched = [req.port];
    if (from) {
      this.bindings.set(from.port, { port: from.port, isolated: from.isolated });
      touched.push(from.port);
    }
    this.bindings.set(req.port, next);
    return touched;
  }
}

/** What the kernel says about one storage port, kept current by notifications. */
interface PortLink {
  ifindex: number | undefined;
  /** Enslaved to our bridge (a port taken off the bridge carries nothing for us). */
  onBridge: boolean;
  flags: number;
  oper: OperState | 'missing';
  up: boolean;
  lastChange: Date;
}

const MISSING: Omit<PortLink, 'lastChange'> = { ifindex: undefined, onBridge: false, flags: 0, oper: 'missing', up: false };

interface Events {
  change: [PortChange];
}

export class PortMap extends EventEmitter<Events> {
  private readonly links = new Map<string, PortLink>();
  private bridgeIndex = 0;
  private filter: PortFilter | undefined;
  /** Kernel programming runs one operation at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly bridge: string,
    private readonly table: PortTable,
    private readonly requests: RtnlSocket,
    private readonly events: RtnlSocket,
    private readonly log: Logger,
  ) {
    super();
  }

  /**
   * Finds the bridge and its storage ports, programs them from the configuration and starts
   * following link state. Throws DsrError(CONFIG) when the bridge or a configured port is not
   * there: a DSR must not serve with a switch it could not isolate.
   */
  static async open(config: Config, log: Logger): Promise<PortMap> {
    const sw = config.switch;
    if (!sw) throw new DsrError(ErrorCode.CONFIG, 'no storage switch configured (switch.bridge)');
    const requests = new RtnlSocket();
    let events: RtnlSocket | undefined;
    try {
      // Subscribe before the first dump, so no change falls between the two.
      events = new RtnlSocket([RTNLGRP_LINK]);
      const links = await dumpLinks(requests);
      const bridge = links.find((l) => l.name === sw.bridge);
      if (!bridge) throw new DsrError(ErrorCode.CONFIG, `switch.bridge: no link ${sw.bridge} in the DSR's network namespace`);
      const ports = sw.ports ?? links.filter((l) => l.master === bridge.index && l.name).map((l) => l.name!).sort();
      const missing = ports.filter((p) => !links.some((l) => l.name === p && l.master === bridge.index));
      if (missing.length) throw new DsrError(ErrorCode.CONFIG, `switch.ports: ${missing.join(', ')} ${missing.length > 1 ? 'are not ports' : 'is not a port'} of ${sw.bridge}`);
      const map = new PortMap(sw.bridge, PortTable.fromConfig(config, ports), requests, events, log);
      map.bridgeIndex = bridge.index;
      events.on('notification', (m) => map.onNotification(m));
      events.on('overrun', (e) => map.onOverrun(e));
      await map.serial(() => map.sync(links));
      log.info({ event: 'portmap.started', bridge: sw.bridge, ports: map.table.list() }, 'storage switch programmed');
      return map;
    } catch (e) {
      requests.close();
      events?.close();
      throw e instanceof DsrError ? e : new DsrError(ErrorCode.CONFIG, `program the storage switch: ${errorMessage(e)}`, { cause: e });
    }
  }

  /** Attaches the storage ports' traffic program: it gets the map now and after every change. */
  async attachFilter(filter: PortFilter): Promise<void> {
    this.filter = filter;
    await filter.apply(this.table.list());
  }

  /** Whether the port a server sits on carries traffic; undefined when the server has no port. */
  serverUp(server: string): boolean | undefined {
    const port = this.table.portOf(server);
    return port === undefined ? undefined : (this.links.get(port)?.up ?? false);
  }

  bindings(): PortBinding[] {
    return this.table.list();
  }

  /** The ports as the kernel has them now (flags and FDB read back), with the map's bindings. */
  async list(): Promise<PortView[]> {
    const [bridgePorts, statics, counters] = await Promise.all([
      this.requests.request('dump bridge ports', RTM_GETLINK, NLM_F_DUMP, formatLinkDump(AF_BRIDGE)),
      this.staticEntries(),
      this.filter?.counters() ?? Promise.resolve(undefined),
    ]);
    const brports = new Map(bridgePorts.map((m) => parseLink(m.payload)).map((l) => [l.index, l]));
    return this.table.list().map((b) => {
      const link = this.links.get(b.port) ?? { ...MISSING, lastChange: new Date(0) };
      const bp = link.ifindex !== undefined ? brports.get(link.ifindex)?.brport : undefined;
      const c = counters?.get(b.port);
      return {
        port: b.port,
        ifindex: link.ifindex ?? null,
        admin: (link.flags & IFF_UP) !== 0,
        carrier: (link.flags & IFF_LOWER_UP) !== 0,
        oper: link.oper,
        up: link.up,
        server: b.server ?? null,
        mac: b.mac ?? null,
        ipv4: b.ipv4 ?? null,
        isolated: bp?.isolated ?? false,
        learning: bp?.learning ?? false,
        unicastFlood: bp?.unicastFlood ?? false,
        staticFdb: b.mac !== undefined && statics.some((e) => e.ifindex === link.ifindex && e.mac === b.mac),
        lastChange: link.lastChange.toISOString(),
        ...(c && { counters: c }),
      };
    });
  }

  /** `dsr port set`: changes the map and reprograms the ports it touched. Lasts until the DSR restarts. */
  async set(req: PortSetRequest): Promise<PortView> {
    await this.serial(async () => {
      const touched = this.table.set(req);
      this.log.info({ event: 'portmap.set', request: req, ports: touched.map((p) => this.table.get(p)) }, 'port map changed');
      for (const p of touched) await this.program(p);
      await this.filter?.apply(this.table.list());
    });
    const row = (await this.list()).find((r) => r.port === req.port);
    if (!row) throw new DsrError(ErrorCode.USAGE, `no storage port ${req.port}`);
    return row;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.events.close();
    this.requests.close();
    this.removeAllListeners();
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Reads every storage port's link afresh and (re)programs those on the bridge. */
  private async sync(links: LinkInfo[]): Promise<void> {
    for (const port of this.table.ports()) {
      const link = links.find((l) => l.name === port);
      const was = this.links.get(port)?.ifindex;
      this.observe(port, link);
      if (!link || link.master !== this.bridgeIndex) continue;
      await this.program(port);
      // Re-created while notifications were lost: the filter's links went with the old device.
      if (was !== undefined && was !== link.index) await this.filter?.reattach(port);
    }
  }

  /**
   * Sets a port's flags and FDB entry from its binding, and removes static entries on the port
   * that the binding no longer names (a changed MAC, or one a previous run of the DSR pinned).
   */
  private async program(port: string): Promise<void> {
    const link = this.links.get(port);
    if (!link?.ifindex || !link.onBridge) return;
    const ifindex = link.ifindex;
    const b = this.table.get(port);
    const flags = portFlags(b);
    await this.requests.request(`set bridge port flags on ${port}`, RTM_SETLINK, 0, formatBridgePortFlags(ifindex, flags));
    for (const e of await this.staticEntries()) {
      if (e.ifindex !== ifindex || e.mac === b.mac) continue;
      await this.requests.request(`remove FDB entry ${e.mac} from ${port}`, RTM_DELNEIGH, 0, formatFdbDelete(ifindex, e.mac));
    }
    // REPLACE also moves the entry when the MAC sat on another port (the FDB is keyed by MAC).
    if (b.mac !== undefined) await this.requests.request(`add static FDB entry ${b.mac} on ${port}`, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, formatFdbEntry(ifindex, b.mac));
    this.log.debug({ event: 'portmap.programmed', port, ifindex, flags, mac: b.mac }, 'storage port programmed');
  }

  /** The static entries of our bridge's FDB. */
  private async staticEntries(): Promise<FdbEntry[]> {
    const fdb = await this.requests.request('dump the bridge FDB', RTM_GETNEIGH, NLM_F_DUMP, formatFdbDump());
    return fdb.map((m) => parseFdbEntry(m.payload)).filter((e) => isStaticFdb(e) && e.master === this.bridgeIndex);
  }

  /** Records a port's link state (undefined: gone) and emits `change` when it went up or down. */
  private observe(port: string, link: LinkInfo | undefined): void {
    const prev = this.links.get(port);
    const onBridge = link !== undefined && link.master === this.bridgeIndex;
    const next: Omit<PortLink, 'lastChange'> = link
      ? {
          ifindex: link.index,
          onBridge,
          flags: link.flags,
          oper: link.operState ?? prev?.oper ?? 'unknown',
          up: onBridge && (link.flags & IFF_UP) !== 0 && (link.flags & IFF_LOWER_UP) !== 0,
        }
      : MISSING;
    const at = new Date();
    const changed = prev === undefined || prev.up !== next.up;
    this.links.set(port, { ...next, lastChange: changed ? at : prev.lastChange });
    if (!changed) return;
    const server = this.table.get(port).server;
    const change: PortChange = { port, ...(server !== undefined && { server }), up: next.up, oper: next.oper, at };
    if (prev !== undefined) {
      const fields = { event: next.up ? 'portmap.port.up' : 'portmap.port.down', port, server, oper: next.oper };
      if (next.up) this.log.info(fields, 'storage port up');
      else this.log.warn(fields, 'storage port down');
    }
    this.emit('change', change);
  }

  private onNotification(m: NlMessage): void {
    if (this.closed || (m.type !== RTM_NEWLINK && m.type !== RTM_DELLINK)) return;
    let link: LinkInfo;
    try {
      link = parseLink(m.payload);
    } catch (e) {
      this.log.warn({ event: 'portmap.bad_notification', err: errorMessage(e) }, 'unparsable link notification');
      return;
    }
    // AF_BRIDGE's RTM_DELLINK only says a port left the bridge; the AF_UNSPEC one follows for a link that is gone.
    if (m.type === RTM_DELLINK && link.family !== AF_UNSPEC) return;
    const port = this.table.ports().find((p) => this.links.get(p)?.ifindex === link.index || (link.name !== undefined && p === link.name));
    if (port === undefined) return;
    if (m.type === RTM_DELLINK) {
      this.observe(port, undefined);
      return;
    }
    const prev = this.links.get(port);
    const onBridge = link.master === this.bridgeIndex;
    const fresh = prev === undefined || prev.ifindex !== link.index || !prev.onBridge;
    this.observe(port, link);
    // A port re-created (a new veth) or put back on the bridge has lost its flags and FDB entry.
    if (fresh && onBridge) this.reprogram(port, 'port (re)appeared on the bridge');
  }

  private onOverrun(e: Error): void {
    if (this.closed) return;
    this.log.warn({ event: 'portmap.resync', err: errorMessage(e) }, 'link notifications lost; reading link state again');
    void this.serial(async () => this.sync(await dumpLinks(this.requests))).catch((e2: unknown) =>
      this.log.error({ event: 'portmap.resync_failed', err: errorMessage(e2) }, 'cannot read link state'),
    );
  }

  private reprogram(port: string, why: string): void {
    void this.serial(async () => {
      await this.program(port);
      await this.filter?.reattach(port);
    }).catch((e: unknown) =>
      this.log.error({ event: 'portmap.program_failed', port, why, err: errorMessage(e) }, 'cannot program storage port'),
    );
  }
}

async function dumpLinks(sock: RtnlSocket): Promise<LinkInfo[]> {
  const msgs = await sock.request('dump links', RTM_GETLINK, NLM_F_DUMP, formatLinkDump(AF_UNSPEC));
  return msgs.filter((m) => m.type === RTM_NEWLINK).map((m) => parseLink(m.payload));
}
