/**
 * Per-server load from the storage port filter's counters, for the resource manager (issue 6):
 * bytes and packets per second each server sends and receives through the switch, the DSR's own
 * traffic only (reason 'allowed': not the lab's direct path, not drops).
 *
 * The window: the meter reads the kernel's per-CPU counters every `intervalMs` (default 1 s) and
 * keeps the readings of the last `windowMs` (default 10 s) plus the one just before it. A rate is
 * (newest reading - oldest kept reading) / the time between them, so it averages the last
 * `windowMs` (less until the window has filled) and is at most `intervalMs` old. Reading the
 * counters costs one map walk (a few keys per server), not per packet work.
 */
import type { PacketCount } from './portmap.js';
import type { ServerTraffic } from './port-filter.js';

export interface Rate {
  bytesPerSecond: number;
  packetsPerSecond: number;
}

export interface ServerLoad {
  server: string;
  /** From the server into the switch (what it serves). */
  fromServer: Rate;
  /** From the switch to the server (what it is sent). */
  toServer: Rate;
  /** Both directions. */
  total: Rate;
}

export interface LoadReport {
  /** Seconds between the two readings the rates come from (0: only one reading yet, all rates 0). */
  windowSeconds: number;
  /** When the newest reading was taken. */
  at: string;
  servers: ServerLoad[];
}

export interface PortLoadMeterOptions {
  intervalMs?: number;
  windowMs?: number;
  /** Milliseconds; a test clock. */
  now?: () => number;
}

interface Reading {
  t: number;
  traffic: Map<string, ServerTraffic>;
}

const rate = (a: PacketCount, b: PacketCount, seconds: number): Rate =>
  seconds > 0
    ? { bytesPerSecond: Math.max(0, b.bytes - a.bytes) / seconds, packetsPerSecond: Math.max(0, b.packets - a.packets) / seconds }
    : { bytesPerSecond: 0, packetsPerSecond: 0 };

const ZERO: ServerTraffic = { fromServer: { packets: 0, bytes: 0 }, toServer: { packets: 0, bytes: 0 } };

export class PortLoadMeter {
  readonly intervalMs: number;
  readonly windowMs: number;
  private readonly now: () => number;
  private readings: Reading[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => Map<string, ServerTraffic>,
    opts: PortLoadMeterOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.windowMs = opts.windowMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Takes a reading now and then every intervalMs (the timer does not keep the process alive). */
  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one reading and forgets those the window no longer needs. */
  sample(): void {
    const t = this.now();
    this.readings.push({ t, traffic: this.read() });
    // Keep one reading at or before the window's start, so the rate spans the whole window.
    while (this.readings.length > 2 && this.readings[1]!.t <= t - this.windowMs) this.readings.shift();
  }

  /** Rates per server over the window (see the module comment); every configured server appears. */
  rates(): LoadReport {
    const first = this.readings[0];
    const last = this.readings[this.readings.length - 1];
    if (!first || !last) return { windowSeconds: 0, at: new Date(this.now()).toISOString(), servers: [] };
    const seconds = (last.t - first.t) / 1000;
    const servers = [...last.traffic].map(([server, now]) => {
      const was = first.traffic.get(server) ?? ZERO;
      const fromServer = rate(was.fromServer, now.fromServer, seconds);
      const toServer = rate(was.toServer, now.toServer, seconds);
      return {
        server,
        fromServer,
        toServer,
        total: { bytesPerSecond: fromServer.bytesPerSecond + toServer.bytesPerSecond, packetsPerSecond: fromServer.packetsPerSecond + toServer.packetsPerSecond },
      };
    });
    return { windowSeconds: seconds, at: new Date(last.t).toISOString(), servers };
  }
}
