/**
 * rtnetlink messages for the storage switch (a Linux bridge), as pure codecs: no sockets here.
 * Only what the port map needs: link dumps and notifications (RTM_NEWLINK/DELLINK), bridge port
 * flags (RTM_SETLINK, AF_BRIDGE, IFLA_PROTINFO) and bridge FDB entries (RTM_NEWNEIGH/DELNEIGH/
 * GETNEIGH, AF_BRIDGE), laid out as include/uapi/linux/{netlink,rtnetlink,if_link,neighbour}.h
 * define them. Netlink is host-endian; these codecs write little-endian, and the socket layer
 * refuses to run on a big-endian host.
 */
import { DsrError, ErrorCode } from '../control/errors.js';

// struct nlmsghdr (16 bytes) and its types and flags (netlink.h).
export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_CREATE = 0x400;
/** In an NLMSG_ERROR's flags: the original request was not echoed whole / extended-ack TLVs follow. */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

// Message types (rtnetlink.h).
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;
/** The multicast group of link notifications (RTNLGRP_LINK). */
export const RTNLGRP_LINK = 1;

export const AF_UNSPEC = 0;
export const AF_BRIDGE = 7;

// struct ifinfomsg (16 bytes) attributes (if_link.h) and flags (if.h).
export const IFINFOMSG_LEN = 16;
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MASTER = 10;
export const IFLA_PROTINFO = 12;
export const IFLA_OPERSTATE = 16;
export const IFLA_CARRIER = 33;
export const IFF_UP = 0x1;
export const IFF_LOWER_UP = 0x10000;

// Bridge port attributes, nested in IFLA_PROTINFO for AF_BRIDGE (if_link.h, IFLA_BRPORT_*).
export const IFLA_BRPORT_STATE = 1;
export const IFLA_BRPORT_LEARNING = 8;
export const IFLA_BRPORT_UNICAST_FLOOD = 9;
export const IFLA_BRPORT_MCAST_FLOOD = 27;
export const IFLA_BRPORT_BCAST_FLOOD = 30;
export const IFLA_BRPORT_ISOLATED = 33;

// struct ndmsg (12 bytes), its attributes, flags and states (neighbour.h).
export const NDMSG_LEN = 12;
export const NDA_LLADDR = 2;
export const NDA_MASTER = 9;
export const NTF_SELF = 0x02;
export const NTF_MASTER = 0x04;
export const NUD_REACHABLE = 0x02;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;

const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

/** IF_OPER_* (RFC 2863 operational states), indexed by value. */
export const OPER_STATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'] as const;
export type OperState = (typeof OPER_STATES)[number];

const align4 = (n: number) => (n + 3) & ~3;

function truncated(what: string, need: number, have: number): DsrError {
  return new DsrError(ErrorCode.NETLINK, `${what}: needs ${need} bytes, has ${have}`);
}

// ---------------------------------------------------------------- attributes

/** One netlink attribute: type (flags stripped), whether it was marked nested, and its payload. */
export interface Nlattr {
  type: number;
  nested: boolean;
  data: Buffer;
}

export function formatAttr(type: number, data: Buffer, nested = false): Buffer {
  const len = NLA_HDRLEN + data.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type | (nested ? NLA_F_NESTED : 0), 2);
  data.copy(b, NLA_HDRLEN);
  return b;
}

export const u8Attr = (type: number, v: number) => formatAttr(type, Buffer.from([v]));
export const nestedAttr = (type: number, children: Buffer[]) => formatAttr(type, Buffer.concat(children), true);

/** Parses a run of attributes; a length that runs past the end is an error, trailing padding is not. */
export function parseAttrs(b: Buffer, what = 'attributes'): Nlattr[] {
  const out: Nlattr[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= b.length) {
    const len = b.readUInt16LE(off);
    const raw = b.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN || off + len > b.length) throw truncated(`${what}: attribute ${raw & NLA_TYPE_MASK} at ${off}`, len, b.length - off);
    out.push({ type: raw & NLA_TYPE_MASK, nested: (raw & NLA_F_NESTED) !== 0, data: b.subarray(off + NLA_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

const attr = (attrs: Nlattr[], type: number) => attrs.find((a) => a.type === type)?.data;
const attrU8 = (attrs: Nlattr[], type: number) => {
  const d = attr(attrs, type);
  return d && d.length >= 1 ? d[0] : undefined;
};
const attrU32 = (attrs: Nlattr[], type: number) => {
  const d = attr(attrs, type);
  return d && d.length >= 4 ? d.readUInt32LE(0) : undefined;
};
/** IFLA_IFNAME is NUL-terminated. */
const attrString = (attrs: Nlattr[], type: number) => {
  const d = attr(attrs, type);
  if (!d) return undefined;
  const nul = d.indexOf(0);
  return d.subarray(0, nul < 0 ? d.length : nul).toString('utf8');
};

// ---------------------------------------------------------------- MAC addresses

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** '02:00:c6:12:01:0b' -> 6 bytes. */
export function macBytes(mac: string): Buffer {
  const m = mac.toLowerCase();
  if (!MAC_RE.test(m)) throw new DsrError(ErrorCode.USAGE, `invalid MAC address ${JSON.stringify(mac)}: six hex octets separated by colons`);
  return Buffer.from(m.replace(/:/g, ''), 'hex');
}

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

// ---------------------------------------------------------------- whole messages

export interface NlHeader {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

/** nlmsghdr + payload, padded to 4 bytes. */
export function formatMessage(h: NlHeader, payload: Buffer): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(h.type, 4);
  b.writeUInt16LE(h.flags, 6);
  b.writeUInt32LE(h.seq >>> 0, 8);
  b.writeUInt32LE(h.pid >>> 0, 12);
  payload.copy(b, NLMSG_HDRLEN);
  return b;
}

export interface NlMessage extends NlHeader {
  payload: Buffer;
}

/** Splits one datagram into its messages. */
export function parseMessages(b: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= b.length) {
    const len = b.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > b.length) throw truncated(`netlink message at ${off}`, len, b.length - off);
    out.push({
      type: b.readUInt16LE(off + 4),
      flags: b.readUInt16LE(off + 6),
      seq: b.readUInt32LE(off + 8),
      pid: b.readUInt32LE(off + 12),
      payload: b.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** An NLMSG_ERROR: errno 0 is an ACK. `message` is the kernel's extended ack text, when it sent one. */
export interface NlError {
  errno: number;
  message?: string;
}

export function parseError(m: NlMessage): NlError {
  if (m.payload.length < 4) throw truncated('NLMSG_ERROR', 4, m.payload.length);
  const errno = 0 - m.payload.readInt32LE(0);
  if (!(m.flags & NLM_F_ACK_TLVS) || m.payload.length < 4 + NLMSG_HDRLEN) return { errno };
  // The request comes back after the error code: its header only when capped, else whole.
  const echoed = m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : m.payload.readUInt32LE(4);
  const tlvs = m.payload.subarray(Math.min(m.payload.length, 4 + align4(echoed)));
  const msg = attrString(parseAttrs(tlvs, 'extended ack'), NLMSGERR_ATTR_MSG);
  return msg ? { errno, message: msg } : { errno };
}

// ---------------------------------------------------------------- links

function formatIfinfomsg(family: number, index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** RTM_GETLINK payload for a dump: AF_UNSPEC lists every link, AF_BRIDGE every bridge port with its IFLA_PROTINFO. */
export function formatLinkDump(family: number): Buffer {
  return formatIfinfomsg(family, 0);
}

/** The bridge port flags the port map sets; absent fields are left as they are. */
export interface BridgePortFlags {
  learning?: boolean;
  unicastFlood?: boolean;
  multicastFlood?: boolean;
  broadcastFlood?: boolean;
  isolated?: boolean;
}

const BRPORT_ATTRS: [keyof BridgePortFlags, number][] = [
  ['unicastFlood', IFLA_BRPORT_UNICAST_FLOOD],
  ['multicastFlood', IFLA_BRPORT_MCAST_FLOOD],
  ['broadcastFlood', IFLA_BRPORT_BCAST_FLOOD],
  ['learning', IFLA_BRPORT_LEARNING],
  ['isolated', IFLA_BRPORT_ISOLATED],
];

/**
 * RTM_SETLINK payload setting bridge port flags: what `bridge link set dev X isolated on learning
 * off flood off ...` sends (ifinfomsg AF_BRIDGE, IFLA_PROTINFO|NLA_F_NESTED of u8 IFLA_BRPORT_*).
 */
export function formatBridgePortFlags(ifindex: number, f: BridgePortFlags): Buffer {
  const children = BRPORT_ATTRS.filter(([k]) => f[k] !== undefined).map(([k, t]) => u8Attr(t, f[k] ? 1 : 0));
  return Buffer.concat([formatIfinfomsg(AF_BRIDGE, ifindex), nestedAttr(IFLA_PROTINFO, children)]);
}

export interface LinkInfo {
  family: number;
  index: number;
  /** IFF_* flags: IFF_UP is the administrative state, IFF_LOWER_UP the carrier. */
  flags: number;
  name?: string;
  /** ifindex of the bridge (or bond) this link is enslaved to. */
  master?: number;
  address?: string;
  operState?: OperState;
  carrier?: boolean;
  /** Present on AF_BRIDGE messages about a bridge port. */
  brport?: Required<BridgePortFlags> & { state?: number };
}

/** Parses an RTM_NEWLINK/RTM_DELLINK payload (a dump entry or a notification). */
export function parseLink(payload: Buffer): LinkInfo {
  if (payload.length < IFINFOMSG_LEN) throw truncated('ifinfomsg', IFINFOMSG_LEN, payload.length);
  const attrs = parseAttrs(payload.subarray(IFINFOMSG_LEN), 'link attributes');
  const link: LinkInfo = { family: payload.readUInt8(0), index: payload.readInt32LE(4), flags: payload.readUInt32LE(8) };
  const name = attrString(attrs, IFLA_IFNAME);
  if (name !== undefined) link.name = name;
  const master = attrU32(attrs, IFLA_MASTER);
  if (master !== undefined) link.master = master;
  const address = attr(attrs, IFLA_ADDRESS);
  if (address?.length === 6) link.address = formatMac(address);
  const oper = attrU8(attrs, IFLA_OPERSTATE);
  if (oper !== undefined) link.operState = OPER_STATES[oper] ?? 'unknown';
  const carrier = attrU8(attrs, IFLA_CARRIER);
  if (carrier !== undefined) link.carrier = carrier !== 0;
  const protinfo = attr(attrs, IFLA_PROTINFO);
  // AF_INET6 also sends an IFLA_PROTINFO (its own, nested); only AF_BRIDGE's is a bridge port's.
  if (protinfo && link.family === AF_BRIDGE) {
    const p = parseAttrs(protinfo, 'IFLA_PROTINFO');
    const flag = (t: number) => attrU8(p, t) === 1;
    link.brport = {
      learning: flag(IFLA_BRPORT_LEARNING),
      unicastFlood: flag(IFLA_BRPORT_UNICAST_FLOOD),
      multicastFlood: flag(IFLA_BRPORT_MCAST_FLOOD),
      broadcastFlood: flag(IFLA_BRPORT_BCAST_FLOOD),
      isolated: flag(IFLA_BRPORT_ISOLATED),
    };
    const state = attrU8(p, IFLA_BRPORT_STATE);
    if (state !== undefined) link.brport.state = state;
  }
  return link;
}

// ---------------------------------------------------------------- bridge FDB

function formatNdmsg(family: number, ifindex: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}

/**
 * RTM_NEWNEIGH payload for a static FDB entry on a bridge port: what `bridge fdb add|replace MAC
 * dev PORT master static` sends. The state is NUD_NOARP|NUD_REACHABLE: NUD_NOARP makes the entry
 * static (never aged, never moved by learning); NUD_PERMANENT would instead make it a *local*
 * entry, delivered to the bridge itself rather than forwarded out of the port.
 */
export function formatFdbEntry(ifindex: number, mac: string): Buffer {
  return Buffer.concat([formatNdmsg(AF_BRIDGE, ifindex, NUD_NOARP | NUD_REACHABLE, NTF_MASTER), formatAttr(NDA_LLADDR, macBytes(mac))]);
}

/** RTM_DELNEIGH payload removing a bridge FDB entry (the state is not matched on delete). */
export function formatFdbDelete(ifindex: number, mac: string): Buffer {
  return Buffer.concat([formatNdmsg(AF_BRIDGE, ifindex, NUD_NOARP | NUD_PERMANENT, NTF_MASTER), formatAttr(NDA_LLADDR, macBytes(mac))]);
}

/** RTM_GETNEIGH payload dumping the bridge FDB (every bridge in the namespace). */
export function formatFdbDump(): Buffer {
  return formatNdmsg(AF_BRIDGE, 0, 0, 0);
}

export interface FdbEntry {
  ifindex: number;
  mac: string;
  state: number;
  flags: number;
  /** The bridge, for entries of the bridge's own table (NTF_MASTER). */
  master?: number;
}

export function parseFdbEntry(payload: Buffer): FdbEntry {
  if (payload.length < NDMSG_LEN) throw truncated('ndmsg', NDMSG_LEN, payload.length);
  const attrs = parseAttrs(payload.subarray(NDMSG_LEN), 'neighbour attributes');
  const lladdr = attr(attrs, NDA_LLADDR);
  const entry: FdbEntry = {
    ifindex: payload.readInt32LE(4),
    mac: lladdr?.length === 6 ? formatMac(lladdr) : '',
    state: payload.readUInt16LE(8),
    flags: payload.readUInt8(10),
  };
  const master = attrU32(attrs, NDA_MASTER);
  if (master !== undefined) entry.master = master;
  return entry;
}

/**
 * A static entry in a bridge's own table (what formatFdbEntry creates): the kernel reports those
 * with NDA_MASTER and NUD_NOARP; local ones carry NUD_PERMANENT, learned ones neither.
 */
export function isStaticFdb(e: FdbEntry): boolean {
  return e.master !== undefined && (e.state & NUD_NOARP) !== 0 && (e.state & NUD_PERMANENT) === 0;
}
