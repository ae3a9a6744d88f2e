/**
 * The storage switch's port filter (bpf/port.bpf.c) as the control plane sees it: load it, tell
 * it which server sits on which port, attach it to the storage ports (tcx links on ingress and
 * egress) and read its counters. Everything belongs to this process's file descriptors: close()
 * or the process dying (even by SIGKILL) detaches the programs and frees the maps. Pinning is
 * for debugging only (`pinDir`); pins are the one thing a SIGKILL leaves, and the next open()
 * with the same directory removes them.
 *
 * Interface names resolve in the caller's network namespace: run this inside the DSR's.
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { DsrError, ErrorCode } from '../control/errors.js';
import { component, silentLogger, type Logger } from '../control/log.js';
import {
  ABI,
  decodePort,
  decodePortStat,
  decodePortStatKey,
  encodePort,
  encodeSwitch,
  PORT,
  PORT_OBJECT,
  PORT_STAT,
  PORT_STAT_KEY,
  PortMaps,
  PortProgs,
  SWITCH,
  u32,
  type Ipv4Prefix,
  type PortEntry,
  type PortStat,
  type PortStatKey,
} from './abi.js';
import { AttachType, BpfObject, closeFd, distPath, ifindex, linkCreate, objectId, pin, requireKernel, unpin, type BpfMap, type ProgRunTime } from './native.js';

export interface PortProgramsOptions {
  /** The DSR's own storage address: the one peer every server may talk to (and ARP for). */
  switchAddress: string;
  /** A second address of the DSR's on the storage network (its health probes' source), allowed like the first. */
  probeAddress?: string;
  /** Debugging only: pin the maps and programs in this directory (on a bpffs; one per DSR instance). */
  pinDir?: string;
  log?: Logger;
}

export type PortCounter = PortStatKey & PortStat;

/** True when `path` lies on a mounted bpffs (as this process's mount namespace sees it). */
function onBpffs(path: string): boolean {
  let best = { point: '', type: '' };
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const point = fields[4]?.replace(/\\040/g, ' ');
    const type = fields[fields.indexOf('-') + 1];
    if (point === undefined || type === undefined) continue;
    const covers = path === point || path.startsWith(point.endsWith('/') ? point : `${point}/`);
    if (covers && point.length >= best.point.length) best = { point, type };
  }
  return best.type === 'bpf';
}

export class PortPrograms {
  private readonly links: { ifname: string; ifindex: number; fds: number[] }[] = [];
  private readonly pins: string[] = [];
  private closed = false;
  private direct: Ipv4Prefix | undefined;

  private constructor(
    private readonly obj: BpfObject,
    private readonly maps: { ifs: BpfMap; ports: BpfMap; switch: BpfMap; stats: BpfMap },
    private readonly addresses: { address: string; probe?: string },
    private readonly pinDir: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Probes the kernel (one error naming whatever is missing), loads the programs and sets the switch's address. */
  static open(opts: PortProgramsOptions): PortPrograms {
    requireKernel(['btf', 'tcx']);
    const obj = BpfObject.load(distPath(`bpf/${PORT_OBJECT}`));
    try {
      const maps = {
        ifs: obj.map(PortMaps.ifs, 4, 4),
        ports: obj.map(PortMaps.ports, 4, PORT.size),
        switch: obj.map(PortMaps.switch, 4, SWITCH.size),
        stats: obj.map(PortMaps.stats, PORT_STAT_KEY.size, PORT_STAT.size, true),
      };
      const addresses = { address: opts.switchAddress, ...(opts.probeAddress && { probe: opts.probeAddress }) };
      maps.switch.update(u32(0), encodeSwitch(addresses));
      const pinDir = opts.pinDir === undefined ? undefined : resolve(opts.pinDir);
      const p = new PortPrograms(obj, maps, addresses, pinDir, component(opts.log ?? silentLogger, 'offload'));
      if (pinDir) p.pinAll(pinDir);
      return p;
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  private pinAll(dir: string): void {
    if (!onBpffs(dir)) throw new DsrError(ErrorCode.USAGE, `pin directory ${dir} is not on a bpffs; mount one first: mount -t bpf bpf <dir>`);
    mkdirSync(dir, { recursive: true });
    // Pins a killed instance left behind: views only, nobody depends on them.
    const stale = readdirSync(dir);
    for (const name of stale) unpin(`${dir}/${name}`);
    if (stale.length) this.log.warn({ event: 'offload.pins.stale', dir, removed: stale });
    try {
      for (const [name, fd] of [
        ...Object.values(this.maps).map((m) => [m.name, m.fd] as const),
        ...Object.values(PortProgs).map((n) => [n, this.obj.prog(n)] as const),
      ]) {
        pin(fd, `${dir}/${name}`);
        this.pins.push(`${dir}/${name}`);
      }
    } catch (e) {
      this.unpinAll();
      throw e;
    }
  }

  private unpinAll(): void {
    for (const path of this.pins.splice(0)) unpin(path);
    if (this.pinDir) rmdirSync(this.pinDir);
  }

  /**
   * Attaches the filter to both directions of each interface; the array index is the port
   * index (the lab's sp1..sp4 are ports 0..3). Ports without a server drop everything, so
   * setPort() first.
   */
  attach(ifnames: readonly string[]): void {
    this.checkOpen();
    if (this.links.length) throw new DsrError(ErrorCode.USAGE, `the port filter is already attached to ${this.links.map((l) => l.ifname).join(', ')}`);
    if (ifnames.length > ABI.DSR_PORT_MAX) throw new DsrError(ErrorCode.USAGE, `${ifnames.length} ports: at most ${ABI.DSR_PORT_MAX}`);
    try {
      ifnames.forEach((ifname, port) => {
        const link = { ifname, ifindex: 0, fds: [] as number[] };
        this.links.push(link);
        this.link(link, port);
      });
    } catch (e) {
      this.detach();
      throw e;
    }
    this.log.info({ event: 'offload.ports.attached', ports: ifnames });
  }

  /** Maps the interface (as it is now) to its port index and links both programs to it. */
  private link(link: { ifname: string; ifindex: number; fds: number[] }, port: number): void {
    link.ifindex = ifindex(link.ifname);
    this.maps.ifs.update(u32(link.ifindex), u32(port));
    link.fds.push(linkCreate(this.obj.prog(PortProgs.ingress), link.ifindex, AttachType.TCX_INGRESS, `${PortProgs.ingress} to ${link.ifname}`));
    link.fds.push(linkCreate(this.obj.prog(PortProgs.egress), link.ifindex, AttachType.TCX_EGRESS, `${PortProgs.egress} to ${link.ifname}`));
  }

  /**
   * Attaches port `port` again, to the interface that has its name now: a re-created interface
   * (a new veth) has a new ifindex, and its old links went with the old device.
   */
  reattach(port: number): void {
    this.checkOpen();
    const link = this.links[port];
    if (!link) throw new DsrError(ErrorCode.USAGE, `port index ${port} is not attached`);
    for (const fd of link.fds.splice(0)) closeFd(fd);
    this.maps.ifs.delete(u32(link.ifindex));
    this.link(link, port);
    this.log.info({ event: 'offload.ports.reattached', port: link.ifname, ifindex: link.ifindex });
  }

  /** Puts a server on a port (or none: everything on the port is then dropped). */
  setPort(port: number, entry: PortEntry | undefined): void {
    this.checkOpen();
    if (!Number.isInteger(port) || port < 0 || port >= ABI.DSR_PORT_MAX) throw new DsrError(ErrorCode.USAGE, `port index ${port}: 0 to ${ABI.DSR_PORT_MAX - 1}`);
    this.maps.ports.update(u32(port), encodePort(entry ?? { server: 0, address: '0.0.0.0' }));
  }

  /**
   * The lab's direct-path peer (a prefix), or undefined for none: IPv4 between a port's server
   * and the peer then passes, counted as 'direct'. Only a lab routing the client to the servers
   * for a baseline sets it.
   */
  setDirectPeer(peer: Ipv4Prefix | undefined): void {
    this.checkOpen();
    this.maps.switch.update(u32(0), encodeSwitch({ ...this.addresses, ...(peer && { direct: peer }) }));
    this.direct = peer;
  }

  directPeer(): Ipv4Prefix | undefined {
    return this.direct;
  }

  /** The server on a port, or undefined. */
  getPort(port: number): PortEntry | undefined {
    this.checkOpen();
    const value = this.maps.ports.lookup(u32(port));
    const entry = value && decodePort(value);
    return entry && entry.server !== 0 ? entry : undefined;
  }

  /** Every counter, summed over the CPUs. */
  counters(): PortCounter[] {
    this.checkOpen();
    const stats = this.maps.stats;
    return stats.keys().flatMap((key) => {
      const value = stats.lookup(key);
      if (!value) return [];
      const sum = stats.slots(value).map(decodePortStat).reduce((a, b) => ({ packets: a.packets + b.packets, bytes: a.bytes + b.bytes }));
      return [{ ...decodePortStatKey(key), ...sum }];
    });
  }

  /** The programs' time on a CPU and runs (counted while run-time stats are on). */
  runTimes(): Record<string, ProgRunTime> {
    this.checkOpen();
    return this.obj.runTimes(Object.values(PortProgs));
  }

  /** The kernel ids of the programs, maps and links (for `bpftool ... show id N`). */
  kernelIds(): { progs: number[]; maps: number[]; links: number[] } {
    this.checkOpen();
    return {
      progs: Object.values(PortProgs).map((n) => objectId(this.obj.prog(n))),
      maps: Object.values(this.maps).map((m) => objectId(m.fd)),
      links: this.links.flatMap((l) => l.fds.map(objectId)),
    };
  }

  private detach(): void {
    for (const link of this.links.splice(0)) for (const fd of link.fds) closeFd(fd);
  }

  /** Detaches, frees the maps and removes the pins; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.detach();
    } finally {
      this.obj.close();
      this.unpinAll();
    }
    this.log.info({ event: 'offload.ports.closed' });
  }

  private checkOpen(): void {
    if (this.closed) throw new DsrError(ErrorCode.BPF, 'the port filter is closed');
  }
}
