/**
 * The port map's `PortFilter` in the kernel: PortPrograms (bpf/port.bpf.c) attached to every
 * storage port of the `switch` configuration and kept in step with the port map. Port index i
 * is the i-th storage port of the map; server ids are 1 + the server's position in the
 * configuration's `servers` (stable for one run, which is as long as the counters live).
 *
 * The programs attach on the first apply(), after every port has its entry, so no frame meets a
 * port the filter does not know yet. Everything is held by this process's fds: stop or a crash
 * detaches it. Interface names resolve in the caller's network namespace (the DSR's).
 */
import { DsrError, ErrorCode } from '../control/errors.js';
import type { Logger } from '../control/log.js';
import { ABI, PORT_PASS_REASONS, PORT_REASONS, type Ipv4Prefix, type PortEntry, type PortReason } from './abi.js';
import type { ProgRunTime } from './native.js';
import { PortPrograms, type PortCounter } from './port.js';
import type { PacketCount, PortBinding, PortCounters, PortDirectionCounters, PortFilter } from './portmap.js';

export interface KernelPortFilterOptions {
  /** The storage ports, in the port map's order (port index = position). */
  ports: readonly string[];
  /** The configured server names, in the configuration's order (server id = position + 1). */
  servers: readonly string[];
  /** The DSR's storage address: the one peer every server may talk to. */
  switchAddress: string;
  /** The DSR's health-probe source on the storage network, when it has its own. */
  probeAddress?: string;
  /** Ports with no server pass traffic (isolation still holds) instead of dropping it: `switch.spareports`. */
  sparePortsOpen?: boolean;
  log: Logger;
}

/** Allowed traffic of one server (all its ports), per direction: what its load is made of. */
export interface ServerTraffic {
  /** From the server into the switch (what it serves: READ replies). */
  fromServer: PacketCount;
  /** From the switch to the server (what it is sent: WRITE requests). */
  toServer: PacketCount;
}

const zero = (): PacketCount => ({ packets: 0, bytes: 0 });
const add = (a: PacketCount, b: PacketCount): void => {
  a.packets += b.packets;
  a.bytes += b.bytes;
};

function emptyDirection(): PortDirectionCounters {
  return { allowed: zero(), dropped: zero(), reasons: Object.fromEntries(PORT_REASONS.map((r) => [r, zero()])) as Record<PortReason, PacketCount> };
}

/** Folds the kernel's (server, port, direction, reason) counters into per-port views (pure). */
export function portCounters(counters: readonly PortCounter[], ports: readonly string[]): Map<string, PortCounters> {
  const out = new Map(ports.map((p) => [p, { ingress: emptyDirection(), egress: emptyDirection() }]));
  for (const c of counters) {
    const view = out.get(ports[c.port] ?? '');
    if (!view) continue;
    const d = view[c.dir];
    add(d.reasons[c.reason], c);
    if (c.reason === 'allowed') add(d.allowed, c);
    else if (!PORT_PASS_REASONS.has(c.reason)) add(d.dropped, c);
  }
  return out;
}

/** The allowed traffic per server name, whichever ports it crossed (pure). */
export function serverTraffic(counters: readonly PortCounter[], servers: readonly string[]): Map<string, ServerTraffic> {
  const out = new Map(servers.map((s) => [s, { fromServer: zero(), toServer: zero() }]));
  for (const c of counters) {
    if (c.reason !== 'allowed') continue;
    const t = out.get(servers[c.server - 1] ?? '');
    if (t) add(c.dir === 'ingress' ? t.fromServer : t.toServer, c);
  }
  return out;
}

export class KernelPortFilter implements PortFilter {
  private attached = false;

  private constructor(
    private readonly programs: PortPrograms,
    private readonly opts: KernelPortFilterOptions,
  ) {}

  /**
   * Loads the programs (the kernel probe runs first: DsrError(BPF_UNSUPPORTED) names what is
   * missing); they attach on the first apply().
   */
  static open(opts: KernelPortFilterOptions): KernelPortFilter {
    if (opts.ports.length > ABI.DSR_PORT_MAX) {
      throw new DsrError(ErrorCode.CONFIG, `switch.ports: ${opts.ports.length} ports, the port filter takes at most ${ABI.DSR_PORT_MAX} (or set switch.filter: false)`);
    }
    return new KernelPortFilter(PortPrograms.open({ switchAddress: opts.switchAddress, ...(opts.probeAddress && { probeAddress: opts.probeAddress }), log: opts.log }), opts);
  }

  /** The kernel entry of a binding: a server's port needs its IPv4 address (else the port drops everything). */
  private entry(b: PortBinding): PortEntry | undefined {
    // A spare port: server 0, open, so a server plugged in there can announce itself.
    if (b.server === undefined) return this.opts.sparePortsOpen ? { server: 0, address: '0.0.0.0', open: true } : undefined;
    const id = this.opts.servers.indexOf(b.server) + 1;
    if (id === 0 || b.ipv4 === undefined) {
      this.opts.log.warn({ event: 'portfilter.port.closed', port: b.port, server: b.server }, 'the port filter drops everything on this port: its server has no IPv4 address');
      return undefined;
    }
    return { server: id, address: b.ipv4, ...(b.mac !== undefined && { mac: b.mac }), ...(!b.isolated && { open: true }) };
  }

  apply(bindings: readonly PortBinding[]): Promise<void> {
    for (const b of bindings) {
      const index = this.opts.ports.indexOf(b.port);
      if (index < 0) throw new DsrError(ErrorCode.USAGE, `the port filter has no port ${b.port}`);
      this.programs.setPort(index, this.entry(b));
    }
    if (!this.attached) {
      this.programs.attach(this.opts.ports);
      this.attached = true;
    }
    return Promise.resolve();
  }

  reattach(port: string): Promise<void> {
    if (this.attached) this.programs.reattach(this.opts.ports.indexOf(port));
    return Promise.resolve();
  }

  counters(): Promise<Map<string, PortCounters>> {
    return Promise.resolve(portCounters(this.programs.counters(), this.opts.ports));
  }

  /** Allowed traffic per server since the filter was loaded (monotonic; PortLoadMeter turns it into rates). */
  serverTraffic(): Map<string, ServerTraffic> {
    return serverTraffic(this.programs.counters(), this.opts.servers);
  }

  /** Opens (a prefix) or closes (undefined) the lab's direct path through the filter. */
  setDirectPeer(peer: Ipv4Prefix | undefined): void {
    this.programs.setDirectPeer(peer);
    this.opts.log.warn({ event: peer ? 'portfilter.direct.on' : 'portfilter.direct.off', peer: peer && `${peer.address}/${peer.length}` }, peer ? 'lab direct path open through the port filter' : 'lab direct path closed');
  }

  directPeer(): Ipv4Prefix | undefined {
    return this.programs.directPeer();
  }

  kernelIds(): { progs: number[]; maps: number[]; links: number[] } {
    return this.programs.kernelIds();
  }

  runTimes(): Record<string, ProgRunTime> {
    return this.programs.runTimes();
  }

  /** Detaches and frees everything; idempotent. */
  close(): void {
    this.programs.close();
  }
}
