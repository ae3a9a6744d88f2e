/**
 * The command sequence window of one connection (MS-SMB2 3.3.1.1, 3.3.5.2.3): the set of
 * MessageIds a client may use. A request consumes CreditCharge consecutive ids (at least one),
 * CANCEL consumes none, and every response grants new ids at the top of the window.
 *
 * Ids are consumed mostly in order, so the window is [low, next) plus the set of ids inside it
 * already used out of order; `low` advances past used ids.
 */
export class CreditWindow {
  /** Lowest id that may still be unused. */
  private low = 0n;
  /** One past the highest id granted so far. */
  private next = 1n;
  /** Ids in [low, next) already used. */
  private readonly used = new Set<bigint>();

  constructor(readonly maxCredits: number) {}

  /** Credits the client holds: granted ids not yet used. */
  get outstanding(): number {
    return Number(this.next - this.low) - this.used.size;
  }

  /**
   * Consumes ids messageId .. messageId + charge - 1. Returns false (and consumes nothing)
   * when any of them is outside the window or already used: the caller must disconnect.
   */
  consume(messageId: bigint, charge: number): boolean {
    const n = BigInt(Math.max(charge, 1));
    if (messageId < this.low || messageId + n > this.next) return false;
    // The common case, ids used in order: no per-id bookkeeping (a 8 MiB WRITE charges 128).
    if (messageId === this.low && this.used.size === 0) {
      this.low += n;
      return true;
    }
    for (let id = messageId; id < messageId + n; id++) if (this.used.has(id)) return false;
    for (let id = messageId; id < messageId + n; id++) this.used.add(id);
    while (this.used.delete(this.low)) this.low++;
    return true;
  }

  /** The window as one range [low, next), when no id inside it was used out of order. */
  get range(): { low: bigint; next: bigint } | undefined {
    return this.used.size === 0 ? { low: this.low, next: this.next } : undefined;
  }

  /** Credits a server granted, passed on to the client as they were (the kernel relay's replies). */
  add(granted: number): void {
    this.next += BigInt(granted);
  }

  /**
   * The window back from the kernel relay, which forwarded requests using `charge` ids below
   * `end` and replies granting `granted`. Used in order (the ids from low up to end are exactly
   * `charge`), low moves to end; otherwise which ids were skipped is unknown, and the window
   * stays open below end rather than refuse an honest client (returns false then).
   */
  resync(end: bigint, charge: number, granted: number): boolean {
    this.add(granted);
    if (charge === 0) return true;
    if (end - this.low !== BigInt(charge)) return false;
    this.low = end;
    return true;
  }

  /**
   * Grants credits for a response: what the client asked for, at least one so it can never
   * run dry, capped so it never holds more than maxCredits. Returns the CreditResponse value.
   */
  grant(requested: number): number {
    const room = Math.max(this.maxCredits - this.outstanding, 0);
    const n = Math.min(Math.max(requested, 1), room);
    this.next += BigInt(n);
    return n;
  }
}
