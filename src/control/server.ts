/**
 * The DSR daemon: wires configuration, tables, the SMB2 listeners and the admin socket, and
 * owns their lifecycles. `dsr serve` runs one of these.
 */
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { AdminServer, type AdminHandler } from './admin.js';
import type { Config } from './config.js';
import { DsrError, ErrorCode, errorMessage } from './errors.js';
import { toFiletime } from './filetime.js';
import { portAdminHandlers, type PortFilterRuntime } from './port-admin.js';
import { component, type Logger } from './log.js';
import type { DsrContext } from './smb2/context.js';
import { Smb2Connection } from './smb2/connection.js';
import { acceptSharedRead } from './smb2/transport.js';
import { CredentialTable } from './tables/credentials.js';
import { OpenTable } from './tables/opens.js';
import { ResourceManager } from './resources/manager.js';
import { ResourceTable } from './tables/resources.js';
import { SessionTable } from './tables/sessions.js';
import { TreeTable } from './tables/trees.js';
import { MemoryOffload } from '../offload/offload.js';
import { RelayPrograms } from '../offload/relay.js';
import { newKernelPathStats } from './smb2/kernel-path.js';
import type { RelayMode } from './config.js';
import { KernelPortFilter } from '../offload/port-filter.js';
import { PortLoadMeter, type LoadReport } from '../offload/port-load.js';
import { type PortChange, PortMap } from '../offload/portmap.js';
import { ShareLoad } from './resources/load.js';
import { type Plan, planRebalance } from './resources/planner.js';

export class DsrServer {
  readonly ctx: DsrContext;
  private readonly listeners: Server[] = [];
  private readonly connections = new Set<Smb2Connection>();
  private admin: AdminServer | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private rebalancer: NodeJS.Timeout | undefined;
  /** The storage switch, when the config has one: link events (`change`) for the resource manager. */
  portMap: PortMap | undefined;
  /** The storage ports' tc filter and the per-server load read from its counters (the resource manager's). */
  readonly portFilter: PortFilterRuntime = { state: 'off', reason: 'no storage switch configured' };
  /** The kernel relay's state for `dsr offload show` (on, off or unsupported, and why). */
  private relayState: { state: string; reason?: string; framing?: string } = { state: 'off' };
  /** What the kernel relay did, across `dsr offload relay` off and on. */
  private readonly relayStats = newKernelPathStats();
  /** Learning and health of the storage servers: `server.failed` / `server.recovered` events. */
  manager: ResourceManager | undefined;
  private readonly log: Logger;
  private readonly root: Logger;

  constructor(readonly config: Config, root: Logger) {
    this.log = component(root, 'server');
    this.root = root;
    this.ctx = {
      config,
      log: component(root, 'smb2'),
      sessions: new SessionTable(),
      trees: new TreeTable(),
      opens: new OpenTable(),
      resources: ResourceTable.fromConfig(config, `${config.stateDir}/resources.json`),
      credentials: CredentialTable.load(config.credentials),
      offload: new MemoryOffload(),
      startTime: toFiletime(new Date()),
      pools: new Map(),
      load: new ShareLoad(),
    };
  }

  /** Addresses actually bound (port 0 in the config picks a free port, for tests). */
  addresses(): { address: string; port: number }[] {
    return this.listeners.map((l) => {
      const a = l.address();
      return typeof a === 'object' && a ? { address: a.address, port: a.port } : { address: '', port: 0 };
    });
  }

  async start(): Promise<void> {
    try {
      // The switch is isolated before anything is served.
      if (this.config.switch) {
        this.portMap = await PortMap.open(this.config, component(this.log, 'portmap'));
        // A storage port going down fails its server at once (source Fig. 7): no waiting for TCP.
        this.portMap.on('change', (c: PortChange) => {
          if (!c.up && c.server) this.serverFailed(c.server, 'storage port down');
        });
        await this.startPortFilter(this.portMap);
      }
      this.startRelay();
      // Probes and agent heartbeats fail servers no client connection is using (and recover them).
      this.manager = new ResourceManager(this.config, this.ctx.resources, this.ctx.credentials, component(this.root, 'resources'), this.portMap, (name, why) =>
        this.serverFailed(name, why),
      );
      await this.manager.start();
      this.admin = new AdminServer(this.config.admin.socket, this.adminHandlers(), component(this.log, 'admin'));
      await this.admin.listen();
      for (const l of this.config.listen) this.listeners.push(await this.listen(l.address, l.port));
      this.sampler = setInterval(() => this.ctx.load.sample(), 1000);
      this.sampler.unref();
      if (this.config.rebalance.intervalSeconds > 0) {
        this.rebalancer = setInterval(() => void this.rebalance(false).catch((e: unknown) => this.log.error({ event: 'rebalance.failed', err: errorMessage(e) }, 'rebalancing failed')), this.config.rebalance.intervalSeconds * 1000);
        this.rebalancer.unref();
      }
    } catch (e) {
      await this.stop();
      throw e instanceof DsrError ? e : new DsrError(ErrorCode.CONFIG, `cannot start: ${errorMessage(e)}`, { cause: e });
    }
    this.log.info(
      { event: 'server.started', listen: this.addresses(), admin: this.config.admin.socket, resources: this.ctx.resources.size, users: this.ctx.credentials.list().length },
      'DSR serving',
    );
  }

  /**
   * Loads the kernel SMB2 relay (config relay.mode). A kernel without what it needs gets one
   * log line and the user-space path; the reason is kept for `dsr offload show`.
   */
  private startRelay(): void {
    const mode = this.config.relay.mode;
    if (mode === 'off') {
      this.relayState = { state: 'off', reason: 'relay.mode is off' };
      return;
    }
    this.openRelay(mode);
  }

  private openRelay(framing: Exclude<RelayMode, 'off'>): void {
    try {
      this.ctx.relay = { programs: RelayPrograms.open({ framing, log: this.log, journalSlots: this.config.relay.journalWriteSlots }), stats: this.relayStats };
      this.relayState = { state: 'on', framing };
      this.log.info({ event: 'relay.loaded', framing, maxIoSize: this.config.relay.maxIoSize }, `kernel SMB2 relay loaded (${framing})`);
    } catch (e) {
      if (!(e instanceof DsrError) || (e.code !== ErrorCode.BPF_UNSUPPORTED && e.code !== ErrorCode.BPF)) throw e;
      this.relayState = { state: 'unsupported', reason: e.message };
      this.log.warn({ event: 'relay.unsupported', err: e.message }, 'no kernel SMB2 relay: every connection stays in user space');
    }
  }

  /**
   * `dsr offload relay MODE`: the relay on (with that framing) or off while the DSR runs. Off
   * first takes every connection back from the kernel, each with nothing lost; the programs stay
   * for the connections whose sockets are in them until the last of those ends (they are not
   * lent again). New connections negotiate the message sizes of the new mode, existing ones keep
   * theirs.
   */
  private async setRelay(mode: RelayMode): Promise<Record<string, unknown>> {
    const relay = this.ctx.relay;
    if (relay && this.relayState.framing === mode) return this.relayView();
    if (relay) {
      delete this.ctx.relay;
      await Promise.all([...this.connections].map((c) => c.returnFromKernel('relay off')));
      relay.programs.retire();
      this.relayState = { state: 'off', reason: 'turned off by dsr offload relay' };
      this.log.info({ event: 'relay.off' }, 'kernel SMB2 relay off');
    }
    if (mode !== 'off') this.openRelay(mode);
    return this.relayView();
  }

  /** The kernel relay for `dsr offload show`: its state, what it forwarded and passed, what the connections did with it, its programs' run times. */
  private relayView(): Record<string, unknown> {
    const r = this.ctx.relay;
    if (!r) return { ...this.relayState };
    const { stats } = r;
    const all = stats.requests + stats.userReadWrite;
    return {
      ...this.relayState,
      ...stats,
      kernelShare: all === 0 ? null : stats.requests / all,
      counters: r.programs.counters(),
      passes: r.programs.passes(),
      programs: r.programs.runTimes(),
    };
  }

  /**
   * Attaches the tc filter to every storage port, fed by the port map. A kernel without the
   * feature (or a build without the objects) gets one log line and a DSR without the filter:
   * the bridge's isolation still holds. Any other failure stops the start.
   */
  private async startPortFilter(map: PortMap): Promise<void> {
    const sw = this.config.switch!;
    const rt = this.portFilter;
    rt.labDirectPath = sw.labDirectPath;
    if (!sw.filter) {
      Object.assign(rt, { state: 'off', reason: 'switch.filter is false' });
      this.log.info({ event: 'portfilter.off' }, 'storage port filter off (switch.filter: false)');
      return;
    }
    const address = sw.address ?? networkInterfaces()[sw.bridge]?.find((a) => a.family === 'IPv4')?.address;
    if (address === undefined) {
      throw new DsrError(ErrorCode.CONFIG, `switch.address: the bridge ${sw.bridge} has no IPv4 address; give switch.address, or turn the port filter off (switch.filter: false)`);
    }
    const log = component(this.log, 'portfilter');
    let filter: KernelPortFilter;
    try {
      filter = KernelPortFilter.open({ ports: map.bindings().map((b) => b.port), servers: Object.keys(this.config.servers), switchAddress: address, ...(this.config.health.source && { probeAddress: this.config.health.source }), sparePortsOpen: sw.spareports === 'open', log });
    } catch (e) {
      if (!(e instanceof DsrError) || e.code !== ErrorCode.BPF_UNSUPPORTED) throw e;
      Object.assign(rt, { state: 'unsupported', reason: e.message });
      log.warn({ event: 'portfilter.unsupported', reason: e.message }, 'running without the storage port filter; the bridge isolation still holds');
      return;
    }
    rt.filter = filter;
    await map.attachFilter(filter);
    rt.load = new PortLoadMeter(() => filter.serverTraffic());
    rt.load.start();
    Object.assign(rt, { state: 'attached', reason: undefined });
    log.info({ event: 'portfilter.attached', ports: map.bindings().map((b) => b.port), address }, 'storage port filter attached');
  }

  private listen(address: string, port: number): Promise<Server> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', (e) => reject(new DsrError(ErrorCode.CONFIG, `cannot listen on ${address}:${port}: ${e.message}`, { cause: e })));
      server.listen({ host: address, port }, () => {
        acceptSharedRead(server, (socket, attach) => {
          if (this.connections.size >= this.config.limits.maxConnections) {
            this.log.warn({ event: 'server.connection_refused', client: socket.remoteAddress, limit: this.config.limits.maxConnections }, 'connection limit reached');
            socket.destroy();
            return;
          }
          const conn = new Smb2Connection(socket, this.ctx, (c) => this.connections.delete(c));
          attach((chunk) => conn.receive(chunk));
          this.connections.add(conn);
        });
        resolve(server);
      });
    });
  }

  /** The plan that would even out the shares' measured load (`dsr rebalance --dry-run`). */
  private rebalancePlan(): Plan {
    const { resources, load } = this.ctx;
    const rates = load.rates();
    return planRebalance(
      {
        servers: resources.listServers().map((s) => ({ name: s.name, healthy: resources.healthy(s.name) })),
        shares: resources.list().map((r) => ({ name: r.name, load: rates.get(r.name.toLowerCase()) ?? { bytesPerSecond: 0, opsPerSecond: 0 }, servers: r.servers, active: r.active })),
      },
      { threshold: this.config.rebalance.threshold },
    );
  }

  /** Plans and, unless `dryRun`, carries the moves out one by one, live. */
  private async rebalance(dryRun: boolean): Promise<{ plan: Plan; moved: unknown[] }> {
    const plan = this.rebalancePlan();
    const moved: unknown[] = [];
    if (dryRun || plan.moves.length === 0) return { plan, moved };
    this.log.warn({ event: 'rebalance.start', moves: plan.moves }, `rebalancing: ${plan.moves.length} move(s)`);
    for (const m of plan.moves) moved.push(await this.moveShare(m.share, m.to));
    return { plan, moved };
  }

  /** `dsr resource move`: the share's new server serves it for every client, live. */
  private async moveShare(share: string, to: string): Promise<unknown> {
    const started = Date.now();
    const remap = this.ctx.resources.move(share, to);
    const moved = await Promise.all([...this.connections].map((c) => c.moveShare(remap.share)));
    const total = moved.reduce((a, m) => ({ trees: a.trees + m.trees, opens: a.opens + m.opens, lostOpens: a.lostOpens + m.lostOpens }), { trees: 0, opens: 0, lostOpens: 0 });
    const result = { ...remap, ...total, ms: Date.now() - started };
    this.log.warn({ event: 'resource.moved', ...result }, `${remap.share} moved from ${remap.from} to ${to}`);
    return result;
  }

  /** Moves the failed server's shares and ends every connection to it; each client connection then fails its trees over. */
  private serverFailed(name: string, why: string): void {
    const remaps = this.ctx.resources.failServer(name, why);
    this.log.warn({ event: 'server.failed', server: name, why, remaps }, `${name} failed: ${why}`);
    for (const pool of this.ctx.pools.values()) pool.abandon(name);
  }

  private adminHandlers(): Record<string, AdminHandler> {
    const { sessions, trees, opens, resources, offload } = this.ctx;
    return {
      'session.list': () => sessions.list(),
      'tree.list': () => trees.list(),
      'open.list': () => opens.list(),
      'resource.list': () => resources.list(),
      'server.list': () => resources.listServers(),
      'server.discover': async (args) => {
        const name = args.server;
        if (typeof name !== 'string') throw new DsrError(ErrorCode.USAGE, 'server.discover needs a server name');
        if (!this.manager) throw new DsrError(ErrorCode.ADMIN, 'the resource manager is not running');
        return this.manager.discover(name);
      },
      'backend.list': async () => (await Promise.all([...this.ctx.pools.entries()].map(async ([connectionId, p]) => (await p.view()).map((b) => ({ connectionId, ...b }))))).flat(),
      'offload.show': async () => ({ ...offload.snapshot(), relay: this.relayView(), ports: await this.portFilterView() }),
      'relay.set': (a) => {
        const mode = String(a.mode ?? '');
        if (!['off', 'strparser', 'cut-through'].includes(mode)) throw new DsrError(ErrorCode.USAGE, `relay mode must be off, strparser or cut-through, not '${mode}'`);
        return this.setRelay(mode as RelayMode);
      },
      'resource.move': (a) => this.moveShare(String(a.share ?? ''), String(a.to ?? '')),
      'rebalance.run': (a) => this.rebalance(a.dryRun === true),
      ...portAdminHandlers(() => this.portMap, this.portFilter),
      status: () => ({
        name: this.config.name,
        pid: process.pid,
        listen: this.addresses(),
        connections: this.connections.size,
        sessions: sessions.size,
        trees: trees.size,
        opens: opens.size,
        backendConnections: [...this.ctx.pools.values()].reduce((n, p) => n + p.size, 0),
        announcements: this.manager?.stats,
      }),
    };
  }

  /**
   * Bytes and packets per second from and to each server through the storage switch (the port
   * filter's 'allowed' counters, read every second, averaged over 10 s: PortLoadMeter); undefined
   * when the filter is not attached. What the resource manager compares.
   */
  serverLoad(): LoadReport | undefined {
    return this.portFilter.load?.rates();
  }

  /** The port filter for `dsr offload show`: its state, kernel ids (for bpftool), programs' run times, counters per port and load per server. */
  private async portFilterView(): Promise<Record<string, unknown>> {
    const { state, reason, filter, load } = this.portFilter;
    const peer = filter?.directPeer();
    const counters = filter ? await filter.counters() : undefined;
    return {
      filter: state,
      ...(reason !== undefined && { reason }),
      ...(filter && { directPeer: peer ? `${peer.address}/${peer.length}` : null, kernelIds: filter.kernelIds(), programs: filter.runTimes() }),
      ...(counters && { counters: (this.portMap?.bindings() ?? []).map((b) => ({ port: b.port, server: b.server ?? null, ...counters.get(b.port) })) }),
      ...(load && { load: load.rates() }),
    };
  }

  async stop(): Promise<void> {
    for (const c of [...this.connections]) c.close('DSR shutting down');
    await Promise.all(this.listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
    this.listeners.length = 0;
    clearInterval(this.sampler);
    clearInterval(this.rebalancer);
    await this.admin?.close();
    this.admin = undefined;
    this.portFilter.load?.stop();
    this.portFilter.filter?.close();
    delete this.portFilter.load;
    delete this.portFilter.filter;
    Object.assign(this.portFilter, { state: 'off', reason: 'the DSR stopped' });
    this.manager?.stop();
    this.manager = undefined;
    this.portMap?.close();
    this.portMap = undefined;
    this.ctx.relay?.programs.close();
    delete this.ctx.relay;
    this.relayState = { state: 'off', reason: 'the DSR stopped' };
  }
}
