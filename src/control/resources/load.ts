/**
 * Load per share as the DSR measures it (source paragraph 0094): bytes and operations its
 * user-space path forwards for each share, as rates over a sliding window. The rebalancer
 * compares them (`trafficLoad` in planner.ts turns one into a number); the kernel fast path's
 * counters join them when traffic is offloaded.
 */
export interface ShareRate {
  bytesPerSecond: number;
  opsPerSecond: number;
}

interface Totals {
  bytes: number;
  ops: number;
}

export class ShareLoad {
  private readonly totals = new Map<string, Totals>();
  /** Snapshots of the totals, oldest first, one per `sample()`. */
  private readonly history: { at: number; totals: Map<string, Totals> }[] = [];

  /** @param windowMs how far back rates look (the oldest snapshot kept). */
  constructor(readonly windowMs = 10_000) {}

  /** One request (ops 1) or response (ops 0) of `bytes` on a share. */
  record(share: string, bytes: number, ops: number): void {
    const key = share.toLowerCase();
    let t = this.totals.get(key);
    if (!t) this.totals.set(key, (t = { bytes: 0, ops: 0 }));
    t.bytes += bytes;
    t.ops += ops;
  }

  /** Takes a snapshot (the daemon calls this every second) and forgets those past the window. */
  sample(now = Date.now()): void {
    this.history.push({ at: now, totals: new Map([...this.totals].map(([k, v]) => [k, { ...v }])) });
    while (this.history.length > 2 && now - this.history[1]!.at >= this.windowMs) this.history.shift();
  }

  /** Rates per share (lower-case name) since the oldest snapshot in the window; empty before two snapshots. */
  rates(now = Date.now()): Map<string, ShareRate> {
    const out = new Map<string, ShareRate>();
    const first = this.history[0];
    if (!first || now <= first.at) return out;
    const seconds = (now - first.at) / 1000;
    for (const [k, t] of this.totals) {
      const was = first.totals.get(k) ?? { bytes: 0, ops: 0 };
      out.set(k, { bytesPerSecond: (t.bytes - was.bytes) / seconds, opsPerSecond: (t.ops - was.ops) / seconds });
    }
    return out;
  }
}
