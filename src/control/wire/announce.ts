/**
 * The announce agent's datagram (issue 6, item 1; source paragraphs 0068-0069): a storage server
 * tells the DSR, over the storage network, which shares it serves and how loaded it is. One UDP
 * datagram per announcement, each carrying the whole state (a lost one costs nothing but a
 * heartbeat), authenticated with HMAC-SHA256 under a key shared with the DSR.
 *
 *   0   4  magic "DSRA"
 *   4   1  version (1)
 *   5   3  reserved, 0
 *   8  32  HMAC-SHA256(key, bytes 0..7 || bytes 40..end)
 *  40   n  payload: UTF-8 JSON (AnnouncePayload)
 *
 * Replay protection lives in the payload: `boot` (random per agent start), `seq` (strictly
 * increasing within a boot) and `time` (the agent's clock); `ReplayGuard` rejects a stale time or
 * a (boot, seq) it has already accepted. Pure: no sockets, no timers.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ErrorCode, WireError } from '../errors.js';

export const ANNOUNCE_MAGIC = Buffer.from('DSRA', 'ascii');
export const ANNOUNCE_VERSION = 1;
export const ANNOUNCE_HEADER_SIZE = 40;
const MAC_OFFSET = 8;
const MAC_SIZE = 32;
/** Stays under a single unfragmented UDP datagram on the lab's links and any sane LAN. */
export const ANNOUNCE_MAX_SIZE = 8 * 1024;
/** The UDP port the DSR listens on for announcements (on its storage address only). */
export { ANNOUNCE_PORT } from '../defaults.js';

const serverName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/);

const payloadSchema = z.object({
  server: serverName,
  /** Random per agent start (16 hex digits): a restarted agent starts a new sequence. */
  boot: z.string().regex(/^[0-9a-f]{16}$/),
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** The agent's clock, ms since the epoch. */
  time: z.number().int().min(0),
  kind: z.enum(['start', 'change', 'heartbeat', 'stop']),
  /** How often the agent sends; the DSR's heartbeat timeout is its own setting. */
  intervalMs: z.number().int().min(1).max(3_600_000),
  /** The SMB port the server's smbd listens on. */
  smbPort: z.number().int().min(1).max(65535),
  shares: z
    .array(
      z.object({
        name: z.string().min(1).max(80),
        comment: z.string().max(256).default(''),
        /** Bytes used and total on the share's file system (statfs), when the agent could read them. */
        usedBytes: z.number().min(0).optional(),
        totalBytes: z.number().min(0).optional(),
      }),
    )
    .max(256),
  load: z.object({
    /** Busy share of all CPUs since the previous announcement, 0..1. */
    cpu: z.number().min(0).max(1),
    cpus: z.number().int().min(1),
    load1: z.number().min(0),
    memTotalBytes: z.number().min(0),
    memAvailableBytes: z.number().min(0),
  }),
});

export type AnnouncePayload = z.output<typeof payloadSchema>;
export type AnnounceInput = z.input<typeof payloadSchema>;

function mac(key: Buffer, datagram: Buffer): Buffer {
  return createHmac('sha256', key).update(datagram.subarray(0, MAC_OFFSET)).update(datagram.subarray(ANNOUNCE_HEADER_SIZE)).digest();
}

export function encodeAnnouncement(payload: AnnounceInput, key: Buffer): Buffer {
  const body = Buffer.from(JSON.stringify(payloadSchema.parse(payload)), 'utf8');
  const d = Buffer.alloc(ANNOUNCE_HEADER_SIZE + body.length);
  if (d.length > ANNOUNCE_MAX_SIZE) throw new WireError(ErrorCode.WIRE_ENCODE, `announcement of ${d.length} bytes exceeds ${ANNOUNCE_MAX_SIZE}`);
  ANNOUNCE_MAGIC.copy(d, 0);
  d[4] = ANNOUNCE_VERSION;
  body.copy(d, ANNOUNCE_HEADER_SIZE);
  mac(key, d).copy(d, MAC_OFFSET);
  return d;
}

/** Why an announcement was refused; each is a counter on the DSR. */
export type AnnounceRejection = 'malformed' | 'bad-mac' | 'stale' | 'replayed' | 'address-mismatch';

export class AnnounceError extends WireError {
  constructor(
    readonly reason: AnnounceRejection,
    message: string,
  ) {
    super(reason === 'malformed' ? ErrorCode.WIRE_BAD_FIELD : ErrorCode.AUTH_FAILED, message);
  }
}

/**
 * Checks framing and the MAC (constant time) before looking at the payload, so nothing from an
 * unauthenticated sender is parsed beyond the fixed header.
 */
export function decodeAnnouncement(datagram: Buffer, key: Buffer): AnnouncePayload {
  if (datagram.length < ANNOUNCE_HEADER_SIZE || datagram.length > ANNOUNCE_MAX_SIZE) throw new AnnounceError('malformed', `announcement of ${datagram.length} bytes`);
  if (!datagram.subarray(0, 4).equals(ANNOUNCE_MAGIC)) throw new AnnounceError('malformed', 'not an announcement (magic)');
  if (datagram[4] !== ANNOUNCE_VERSION) throw new AnnounceError('malformed', `announcement version ${datagram[4]}`);
  if (!timingSafeEqual(mac(key, datagram), datagram.subarray(MAC_OFFSET, MAC_OFFSET + MAC_SIZE))) throw new AnnounceError('bad-mac', 'announcement MAC does not verify');
  let json: unknown;
  try {
    json = JSON.parse(datagram.subarray(ANNOUNCE_HEADER_SIZE).toString('utf8'));
  } catch {
    throw new AnnounceError('malformed', 'announcement payload is not JSON');
  }
  const r = payloadSchema.safeParse(json);
  if (!r.success) throw new AnnounceError('malformed', `announcement payload: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

/**
 * Freshness and replay: an announcement must be stamped within `windowMs` of the DSR's clock,
 * and its (boot, seq) must be newer than every one accepted from that boot. Boots are forgotten
 * once their last announcement is older than the window, by which time any replay of them is
 * stale anyway.
 */
export class ReplayGuard {
  /** server -> boot -> last accepted seq and when. */
  private readonly boots = new Map<string, Map<string, { seq: number; at: number }>>();

  constructor(private readonly windowMs: number) {}

  /** Throws AnnounceError('stale' | 'replayed'); records the announcement when it passes. */
  check(p: Pick<AnnouncePayload, 'server' | 'boot' | 'seq' | 'time'>, now: number): void {
    if (Math.abs(now - p.time) > this.windowMs) throw new AnnounceError('stale', `announcement stamped ${now - p.time} ms from now (window ${this.windowMs} ms)`);
    let boots = this.boots.get(p.server);
    if (!boots) this.boots.set(p.server, (boots = new Map()));
    for (const [b, v] of boots) if (now - v.at > this.windowMs) boots.delete(b);
    const last = boots.get(p.boot);
    if (last && p.seq <= last.seq) throw new AnnounceError('replayed', `announcement seq ${p.seq} of boot ${p.boot} after ${last.seq}`);
    boots.set(p.boot, { seq: p.seq, at: now });
  }
}

/** Reads a key file: hex (at least 32 digits = 128 bits), refused when others can read it. */
export function parseKeyText(text: string, path: string): Buffer {
  const hex = text.trim();
  if (!/^([0-9a-fA-F]{2}){16,}$/.test(hex)) throw new WireError(ErrorCode.CONFIG, `${path}: expected a hex key of at least 32 digits`);
  return Buffer.from(hex, 'hex');
}
