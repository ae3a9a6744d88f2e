/**
 * The TypeScript mirror of bpf/include/dsr_abi.h: its constants, the layout of every map key and
 * value, and their encoders and decoders. test/offload/abi.test.ts checks this file against the
 * header (every numeric DSR_ macro) and against the BTF of the compiled objects (every struct's
 * size and member offsets), so the two sides cannot drift. Integers are little-endian (host
 * order on the x86-64 machines the objects are built for); `__be32` addresses are network order.
 */
import { isIPv4 } from 'node:net';
import { DsrError, ErrorCode } from '../control/errors.js';
import { PassReason } from './offload.js';

/** Every numeric DSR_ macro of dsr_abi.h, under its C name. */
export const ABI = {
  DSR_PORT_MAX: 16,
  DSR_PORT_UNKNOWN: 65535,
  DSR_TC_NEXT: -1,
  DSR_TC_DROP: 2,
  DSR_DIR_INGRESS: 0,
  DSR_DIR_EGRESS: 1,
  DSR_PORT_ALLOWED: 0,
  DSR_PORT_DROP_UNASSIGNED: 1,
  DSR_PORT_DROP_SRC_MAC: 2,
  DSR_PORT_DROP_SRC_IP: 3,
  DSR_PORT_DROP_DST_IP: 4,
  DSR_PORT_DROP_PROTO: 5,
  DSR_PORT_DROP_MALFORMED: 6,
  DSR_PORT_DIRECT: 7,
  DSR_PORT_OPEN: 8,
  DSR_PORT_REASON_MAX: 9,
  DSR_PORT_F_OPEN: 1,
  DSR_PORT_IFS_MAX: 64,
  DSR_PORT_STATS_MAX: 4096,
  DSR_PASS_NONE: 0,
  DSR_PASS_SIGNED: 1,
  DSR_PASS_BACKEND_SIGNED: 2,
  DSR_PASS_ENCRYPTED: 3,
  DSR_PASS_NO_KEY: 4,
  DSR_PASS_LOCAL_TREE: 5,
  DSR_PASS_REASON_MAX: 6,
} as const;

/** Map and program names, as in the objects (bpf/*.bpf.c). */
export const PORT_OBJECT = 'port.bpf.o';
export const PortMaps = { ifs: 'dsr_port_ifs', ports: 'dsr_ports', switch: 'dsr_switch', stats: 'dsr_port_stats' } as const;
export const PortProgs = { ingress: 'dsr_port_ingress', egress: 'dsr_port_egress' } as const;

export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

/** The storage port filter's reason names, indexed by code (DSR_PORT_ALLOWED, DSR_PORT_DROP_*, DSR_PORT_DIRECT, DSR_PORT_OPEN). */
export const PORT_REASONS = ['allowed', 'unassigned', 'src-mac', 'src-ip', 'dst-ip', 'proto', 'malformed', 'direct', 'open'] as const;
export type PortReason = (typeof PORT_REASONS)[number];
/** The reasons whose frames pass; every other reason is a drop. 'allowed' alone is the DSR's own traffic. */
export const PORT_PASS_REASONS: ReadonlySet<PortReason> = new Set(['allowed', 'direct', 'open']);

/** The relay's numeric pass reasons (DSR_PASS_*); 0 (DSR_PASS_NONE) means forwarded by the kernel. */
export const PASS_REASON_CODES: Readonly<Record<PassReason, number>> = {
  [PassReason.SIGNED]: ABI.DSR_PASS_SIGNED,
  [PassReason.BACKEND_SIGNED]: ABI.DSR_PASS_BACKEND_SIGNED,
  [PassReason.ENCRYPTED]: ABI.DSR_PASS_ENCRYPTED,
  [PassReason.NO_KEY]: ABI.DSR_PASS_NO_KEY,
  [PassReason.LOCAL_TREE]: ABI.DSR_PASS_LOCAL_TREE,
};

export interface FieldLayout {
  offset: number;
  size: number;
}
export interface StructLayout {
  /** The C struct's name (without `struct`). */
  name: string;
  size: number;
  /** Members in declaration order. */
  fields: Readonly<Record<string, FieldLayout>>;
}

export const PORT: StructLayout = {
  name: 'dsr_port',
  size: 16,
  fields: { server: { offset: 0, size: 4 }, addr: { offset: 4, size: 4 }, mac: { offset: 8, size: 6 }, flags: { offset: 14, size: 1 }, pad: { offset: 15, size: 1 } },
};
export const SWITCH: StructLayout = {
  name: 'dsr_switch',
  size: 16,
  fields: { addr: { offset: 0, size: 4 }, direct_net: { offset: 4, size: 4 }, direct_mask: { offset: 8, size: 4 }, probe: { offset: 12, size: 4 } },
};
export const PORT_STAT_KEY: StructLayout = {
  name: 'dsr_port_stat_key',
  size: 8,
  fields: { server: { offset: 0, size: 4 }, port: { offset: 4, size: 2 }, dir: { offset: 6, size: 1 }, reason: { offset: 7, size: 1 } },
};
export const PORT_STAT: StructLayout = { name: 'dsr_port_stat', size: 16, fields: { packets: { offset: 0, size: 8 }, bytes: { offset: 8, size: 8 } } };

/** Every struct of the header, for the layout test. */
export const STRUCTS: readonly StructLayout[] = [PORT, SWITCH, PORT_STAT_KEY, PORT_STAT];

const off = (s: StructLayout, field: string): number => {
  const f = s.fields[field];
  if (!f) throw new Error(`${s.name} has no field ${field}`);
  return f.offset;
};

function checkLength(s: StructLayout, b: Buffer): void {
  if (b.length !== s.size) throw new DsrError(ErrorCode.BPF, `struct ${s.name}: ${b.length} bytes, expected ${s.size}`);
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function ipv4Bytes(address: string): Buffer {
  if (!isIPv4(address)) throw new DsrError(ErrorCode.USAGE, `not an IPv4 address: ${JSON.stringify(address)}`);
  return Buffer.from(address.split('.').map(Number));
}

export const formatIpv4 = (b: Buffer): string => [...b.subarray(0, 4)].join('.');

export function macBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new DsrError(ErrorCode.USAGE, `not a MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

export const formatMac = (b: Buffer): string => [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** struct dsr_port: the server on one storage port; server 0 = no server. */
export interface PortEntry {
  server: number;
  address: string;
  /** Absent: not pinned (the port learns), so any source MAC passes. */
  mac?: string;
  /** Isolation off (DSR_PORT_F_OPEN): frames failing only the address checks pass as 'open'. */
  open?: boolean;
}

const NO_MAC = '00:00:00:00:00:00';

export function encodePort(p: PortEntry): Buffer {
  const b = Buffer.alloc(PORT.size);
  b.writeUInt32LE(p.server, off(PORT, 'server'));
  ipv4Bytes(p.address).copy(b, off(PORT, 'addr'));
  macBytes(p.mac ?? NO_MAC).copy(b, off(PORT, 'mac'));
  b.writeUInt8(p.open ? ABI.DSR_PORT_F_OPEN : 0, off(PORT, 'flags'));
  return b;
}

export function decodePort(b: Buffer): PortEntry {
  checkLength(PORT, b);
  const mac = formatMac(b.subarray(off(PORT, 'mac')));
  const open = (b.readUInt8(off(PORT, 'flags')) & ABI.DSR_PORT_F_OPEN) !== 0;
  return {
    server: b.readUInt32LE(off(PORT, 'server')),
    address: formatIpv4(b.subarray(off(PORT, 'addr'))),
    ...(mac !== NO_MAC && { mac }),
    ...(open && { open }),
  };
}

/** An IPv4 prefix, `a.b.c.d/n`: the lab's direct-path peer. */
export interface Ipv4Prefix {
  address: string;
  length: number;
}

export function parseIpv4Prefix(text: string): Ipv4Prefix {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const length = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1]!) || length > 32) throw new DsrError(ErrorCode.USAGE, `not an IPv4 prefix (a.b.c.d/n): ${JSON.stringify(text)}`);
  return { address: m[1]!, length };
}

/** struct dsr_switch; `direct` absent: no direct-path peer; `probe`: the DSR's second storage address (health probes). */
export function encodeSwitch(s: { address: string; probe?: string; direct?: Ipv4Prefix }): Buffer {
  const b = Buffer.alloc(SWITCH.size);
  ipv4Bytes(s.address).copy(b, off(SWITCH, 'addr'));
  if (s.probe) ipv4Bytes(s.probe).copy(b, off(SWITCH, 'probe'));
  if (s.direct) {
    const mask = s.direct.length === 0 ? 0 : (0xffffffff << (32 - s.direct.length)) >>> 0;
    const net = (ipv4Bytes(s.direct.address).readUInt32BE(0) & mask) >>> 0;
    b.writeUInt32BE(net, off(SWITCH, 'direct_net'));
    b.writeUInt32BE(mask, off(SWITCH, 'direct_mask'));
  }
  return b;
}

/** struct dsr_port_stat_key, with the codes named. */
export interface PortStatKey {
  server: number;
  port: number;
  dir: Direction;
  reason: PortReason;
}

export function encodePortStatKey(k: PortStatKey): Buffer {
  const b = Buffer.alloc(PORT_STAT_KEY.size);
  b.writeUInt32LE(k.server, off(PORT_STAT_KEY, 'server'));
  b.writeUInt16LE(k.port, off(PORT_STAT_KEY, 'port'));
  b.writeUInt8(DIRECTIONS.indexOf(k.dir), off(PORT_STAT_KEY, 'dir'));
  b.writeUInt8(PORT_REASONS.indexOf(k.reason), off(PORT_STAT_KEY, 'reason'));
  return b;
}

export function decodePortStatKey(b: Buffer): PortStatKey {
  checkLength(PORT_STAT_KEY, b);
  const dir = DIRECTIONS[b.readUInt8(off(PORT_STAT_KEY, 'dir'))];
  const reason = PORT_REASONS[b.readUInt8(off(PORT_STAT_KEY, 'reason'))];
  if (dir === undefined || reason === undefined) throw new DsrError(ErrorCode.BPF, `struct dsr_port_stat_key: unknown code in ${b.toString('hex')}`);
  return { server: b.readUInt32LE(off(PORT_STAT_KEY, 'server')), port: b.readUInt16LE(off(PORT_STAT_KEY, 'port')), dir, reason };
}

/** struct dsr_port_stat; numbers are exact up to 2^53 (8 PiB). */
export interface PortStat {
  packets: number;
  bytes: number;
}

export function decodePortStat(b: Buffer): PortStat {
  checkLength(PORT_STAT, b);
  return { packets: Number(b.readBigUInt64LE(off(PORT_STAT, 'packets'))), bytes: Number(b.readBigUInt64LE(off(PORT_STAT, 'bytes'))) };
}
