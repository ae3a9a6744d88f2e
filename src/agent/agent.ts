/**
 * `dsr agent`: the announce agent that runs beside smbd on each storage server (issue 6, item 1;
 * source paragraph 0068: "servers ... broadcast what resources they are providing to the DSR
 * automatically upon startup"). It reads the server's smb.conf for its disk shares and /proc for
 * its load, and sends one signed UDP datagram (wire/announce.ts) to the DSR's storage address:
 * at start, when the shares change (smb.conf watched, and re-read on every heartbeat), and
 * every `intervalMs` as a heartbeat. A stop (SIGTERM) sends a last `stop` announcement.
 *
 * Transport: UDP, because an announcement is small, idempotent (it carries the whole state) and
 * periodic; a lost datagram is replaced by the next heartbeat, and the DSR keeps no connection
 * per server. The key is read once from a 0600 file and never logged.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, statfsSync, watch, type FSWatcher } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { errorMessage } from '../control/errors.js';
import type { Logger } from '../control/log.js';
import { readKeyFile } from '../control/resources/manager.js';
import { encodeAnnouncement, type AnnounceInput } from '../control/wire/announce.js';

export interface AgentOptions {
  /** The server's name as the DSR will know it. */
  server: string;
  /** The DSR's storage address and announce port. */
  dsr: { address: string; port: number };
  smbConf: string;
  keyFile: string;
  intervalMs: number;
  smbPort: number;
  /** Local address to send from (the server's storage address); the kernel picks by default. */
  localAddress?: string;
}

export interface ConfShare {
  name: string;
  comment: string;
  path: string;
}

/**
 * The disk shares of an smb.conf (smb.conf(5)): every section but [global], [homes] and
 * [printers] that has a path and is not printable or marked unavailable. Includes, macros and
 * registry shares are beyond this reader.
 */
export function parseSmbConfShares(text: string): ConfShare[] {
  const shares: ConfShare[] = [];
  let cur: { name: string; params: Map<string, string> } | undefined;
  const flush = () => {
    if (!cur) return;
    const key = cur.name.toLowerCase();
    const p = cur.params;
    const yes = (k: string) => /^(yes|true|1|on)$/i.test(p.get(k) ?? '');
    const no = (k: string) => /^(no|false|0|off)$/i.test(p.get(k) ?? '');
    const special = key === 'global' || key === 'homes' || key === 'printers' || key === 'ipc$';
    if (!special && p.has('path') && !yes('printable') && !yes('print ok') && !no('available') && !no('browseable') && !no('browsable')) {
      shares.push({ name: cur.name, comment: p.get('comment') ?? '', path: p.get('path')! });
    }
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      flush();
      cur = { name: section[1]!.trim(), params: new Map() };
      continue;
    }
    const eq = line.indexOf('=');
    if (cur && eq > 0) cur.params.set(line.slice(0, eq).trim().toLowerCase().replace(/\s+/g, ' '), line.slice(eq + 1).trim());
  }
  flush();
  return shares;
}

/** CPU busy/total jiffies from /proc/stat's first line. */
function cpuTimes(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function memInfo(): { total: number; available: number } {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { total: kb('MemTotal'), available: kb('MemAvailable') };
}

export class AnnounceAgent {
  private readonly boot = randomBytes(8).toString('hex');
  private seq = 0;
  private readonly key: Buffer;
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  private lastShares = '';
  private lastCpu = cpuTimes();
  sent = 0;

  constructor(
    private readonly opts: AgentOptions,
    private readonly log: Logger,
  ) {
    this.key = readKeyFile(opts.keyFile);
  }

  async start(): Promise<void> {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ ...(this.opts.localAddress !== undefined && { address: this.opts.localAddress }), port: 0 }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    // Unreachable DSR (ICMP errors) or a down link: logged at debug, the next heartbeat retries.
    sock.on('error', (e) => this.log.debug({ event: 'agent.send_error', err: e.message }));
    this.socket = sock;
    try {
      // smb.conf is usually replaced, not edited in place: watch its directory.
      this.watcher = watch(dirname(this.opts.smbConf), () => this.announce('change', true));
    } catch (e) {
      this.log.warn({ event: 'agent.watch_failed', err: errorMessage(e) }, 'cannot watch smb.conf; re-reading it on every heartbeat only');
    }
    this.announce('start');
    this.timer = setInterval(() => this.announce('heartbeat'), this.opts.intervalMs);
    this.log.info({ event: 'agent.started', server: this.opts.server, dsr: this.opts.dsr, intervalMs: this.opts.intervalMs, boot: this.boot }, 'announce agent running');
  }

  private shares(): AnnounceInput['shares'] {
    let text: string;
    try {
      text = readFileSync(this.opts.smbConf, 'utf8');
    } catch (e) {
      this.log.warn({ event: 'agent.conf_unreadable', path: this.opts.smbConf, err: errorMessage(e) }, 'cannot read smb.conf');
      return [];
    }
    return parseSmbConfShares(text).map((s) => {
      try {
        const st = statfsSync(s.path);
        return { name: s.name, comment: s.comment, usedBytes: (st.blocks - st.bfree) * st.bsize, totalBytes: st.blocks * st.bsize };
      } catch {
        return { name: s.name, comment: s.comment };
      }
    });
  }

  private load(): AnnounceInput['load'] {
    const now = cpuTimes();
    const dt = now.total - this.lastCpu.total;
    const cpu = dt > 0 ? Math.min(1, Math.max(0, (now.busy - this.lastCpu.busy) / dt)) : 0;
    this.lastCpu = now;
    const mem = memInfo();
    const load1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    return { cpu, cpus: availableParallelism(), load1, memTotalBytes: mem.total, memAvailableBytes: mem.available };
  }

  /** Sends the whole state; a heartbeat that finds the shares changed is sent as a `change`. */
  announce(kind: 'start' | 'change' | 'heartbeat' | 'stop', fromWatch = false): void {
    if (!this.socket) return;
    const shares = this.shares();
    const digest = JSON.stringify(shares.map((s) => [s.name, s.comment]));
    if (fromWatch && digest === this.lastShares) return;
    if (kind === 'heartbeat' && digest !== this.lastShares && this.lastShares !== '') kind = 'change';
    if (kind === 'change') this.log.info({ event: 'agent.shares_changed', shares: shares.map((s) => s.name) }, 'shares changed');
    this.lastShares = digest;
    const datagram = encodeAnnouncement(
      { server: this.opts.server, boot: this.boot, seq: ++this.seq, time: Date.now(), kind, intervalMs: this.opts.intervalMs, smbPort: this.opts.smbPort, shares, load: this.load() },
      this.key,
    );
    this.socket.send(datagram, this.opts.dsr.port, this.opts.dsr.address);
    this.sent++;
  }

  /** Says goodbye (the DSR stops expecting heartbeats) and closes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
    const sock = this.socket;
    if (!sock) return;
    this.announce('stop');
    this.socket = undefined;
    await new Promise<void>((resolve) => setTimeout(resolve, 20));
    sock.close();
  }
}
