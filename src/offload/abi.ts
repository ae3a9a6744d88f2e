/**
 * The TypeScript mirror of bpf/include/dsr_abi.h: its constants, the layout of every map key and
 * value, and their encoders and decoders. test/offload/abi.test.ts checks this file against the
 * header (every numeric DSR_ macro) and against the BTF of the compiled objects (every struct's
 * size and member offsets), so the two sides cannot drift. Integers are little-endian (host
 * order on the x86-64 machines the objects are built for); `__be32` addresses are network order.
 */
import { isIPv4 } from 'node:net';
import { DsrError, ErrorCode } from '../control/errors.js';
import { NETBIOS_HEADER_SIZE } from '../control/wire/netbios.js';
import { NtStatus } from '../control/wire/ntstatus.js';
import {
  SMB2_COMMAND_COUNT,
  SMB2_COMPRESSION_PROTOCOL_ID,
  SMB2_HEADER_SIZE,
  SMB2_PROTOCOL_ID,
  SMB2_TRANSFORM_PROTOCOL_ID,
  Smb2Command,
  smb2CommandName,
  Smb2Flags,
} from '../control/wire/smb2/constants.js';
import { FILE_ID_SIZE, type FileId, REQUEST_FILE_ID_AT } from '../control/wire/smb2/file-id.js';
import { Hdr } from '../control/wire/smb2/header.js';
import { PassReason } from './offload.js';

/** Where a request of this command carries its FileId (REQUEST_FILE_ID_AT); only for commands that have one. */
function fileIdAt(command: Smb2Command): number {
  const at = REQUEST_FILE_ID_AT[command];
  if (at === undefined) throw new Error(`${smb2CommandName(command)} requests name no FileId`);
  return at;
}

/**
 * StructureSize of the requests the relay's verdict checks (MS-SMB2 2.2.17, 2.2.19, 2.2.21,
 * 2.2.37), as the decoders of src/control/wire/smb2 expect them (abi.test.ts checks them and the
 * body offsets below against those codecs).
 */
const CHECKED_SIZE = { FLUSH: 24, READ: 49, WRITE: 49, QUERY_INFO: 41 } as const;
/** The body bytes the verdict reads of a request: its FileId's end, or the fixed part it checks. */
const BODY_READ_MAX = Math.max(
  ...Object.values(CHECKED_SIZE).map((size) => size & ~1),
  ...REQUEST_FILE_ID_AT.filter((at) => at !== undefined).map((at) => at + FILE_ID_SIZE),
);

/** The longest request frame the relay journals: a 1 MiB READ, WRITE or QUERY_INFO with its headers (relay.maxIoSize's bound). */
const JOURNAL_FRAME_MAX = 1024 * 1024 + 4096;
/** Bytes the verdict copies per helper call; data[] has one chunk of slack for the verifier. */
const JOURNAL_CHUNK = 16384;

/**
 * Every numeric DSR_ macro of dsr_abi.h, under its C name. The SMB2 wire facts the relay's
 * verdict uses are the TypeScript codec's own constants, so the test also holds the kernel's
 * parsing to the user-space one.
 */
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
  DSR_PASS_NO_SOCK: 6,
  DSR_PASS_NO_CONN: 7,
  DSR_PASS_BAD_MAGIC: 8,
  DSR_PASS_COMPRESSED: 9,
  DSR_PASS_COMMAND: 10,
  DSR_PASS_SESSION: 11,
  DSR_PASS_TREE: 12,
  DSR_PASS_COMPOUND: 13,
  DSR_PASS_STICKY: 14,
  DSR_PASS_NO_PEER: 15,
  DSR_PASS_ERROR: 16,
  DSR_PASS_TOO_MANY: 17,
  DSR_PASS_FILE: 18,
  DSR_PASS_INVALID: 19,
  DSR_PASS_JOURNAL: 20,
  DSR_PASS_SEQUENCE: 21,
  DSR_PASS_UNREAD: 22,
  DSR_PASS_BEHIND: 23,
  DSR_PASS_AHEAD: 24,
  DSR_PASS_REASON_MAX: 25,
  DSR_RELAY_MAX_CONNS: 4096,
  DSR_RELAY_MAX_SOCKS: 8192,
  DSR_RELAY_MAX_SESSIONS: 16384,
  DSR_RELAY_MAX_TREES: 65536,
  DSR_RELAY_MAX_FILES: 65536,
  DSR_RELAY_EVENTS_BYTES: 65536,
  DSR_RELAY_DIR_REQUEST: 0,
  DSR_RELAY_DIR_REPLY: 1,
  DSR_RELAY_FWD_MSG: 0,
  DSR_RELAY_FWD_SKB: 1,
  DSR_RELAY_FWD_BYTES: 2,
  DSR_RELAY_SPLIT_HDR: 3,
  DSR_RELAY_CARRY_HELD: 4,
  DSR_RELAY_JOURNALED: 5,
  DSR_RELAY_JOURNAL_FREED: 6,
  DSR_RELAY_ERR_LOAD: 7,
  DSR_RELAY_ERR_STORE: 8,
  DSR_RELAY_ERR_TAIL: 9,
  DSR_RELAY_ERR_HEAD: 10,
  DSR_RELAY_OVERLAP: 11,
  DSR_RELAY_SEQ_GAP: 12,
  DSR_RELAY_COUNTER_MAX: 13,
  DSR_RELAY_CONN_REWRITE: 1,
  DSR_RELAY_CONN_FILES: 2,
  DSR_RELAY_CONN_JOURNAL: 4,
  DSR_RELAY_JOURNAL_SLOTS: 64,
  DSR_RELAY_JOURNAL_SLOTS_MAX: 1024,
  DSR_RELAY_JOURNAL_SMALL_BASE: 1024,
  DSR_RELAY_JOURNAL_SMALL_SLOTS: 4096,
  DSR_RELAY_JOURNAL_PER_CONN: 64,
  DSR_RELAY_JOURNAL_SMALL_FRAME_MAX: 512,
  DSR_RELAY_JOURNAL_SMALL_BYTES: 1024,
  DSR_RELAY_JOURNAL_FRAME_MAX: JOURNAL_FRAME_MAX,
  DSR_RELAY_JOURNAL_CHUNK: JOURNAL_CHUNK,
  DSR_RELAY_JOURNAL_BYTES: JOURNAL_FRAME_MAX + JOURNAL_CHUNK,
  DSR_NB_HDR_LEN: NETBIOS_HEADER_SIZE,
  DSR_SMB2_HDR_LEN: SMB2_HEADER_SIZE,
  DSR_RELAY_CARRY_MAX: NETBIOS_HEADER_SIZE + SMB2_HEADER_SIZE + BODY_READ_MAX,
  DSR_SMB2_OFF_PROTOCOL: Hdr.ProtocolId,
  DSR_SMB2_OFF_CREDIT_CHARGE: Hdr.CreditCharge,
  DSR_SMB2_OFF_STATUS: Hdr.Status,
  DSR_SMB2_OFF_COMMAND: Hdr.Command,
  DSR_SMB2_OFF_CREDIT: Hdr.Credit,
  DSR_SMB2_OFF_FLAGS: Hdr.Flags,
  DSR_SMB2_OFF_NEXT_COMMAND: Hdr.NextCommand,
  DSR_SMB2_OFF_MESSAGE_ID: Hdr.MessageId,
  DSR_SMB2_OFF_TREE_ID: Hdr.TreeId,
  DSR_SMB2_OFF_SESSION_ID: Hdr.SessionId,
  DSR_SMB2_FLAGS_ASYNC_COMMAND: Smb2Flags.ASYNC_COMMAND,
  DSR_SMB2_FLAGS_RELATED_OPERATIONS: Smb2Flags.RELATED_OPERATIONS,
  DSR_SMB2_FLAGS_SIGNED: Smb2Flags.SIGNED,
  DSR_SMB2_STATUS_PENDING: NtStatus.STATUS_PENDING,
  DSR_SMB2_MAGIC: SMB2_PROTOCOL_ID,
  DSR_SMB2_TRANSFORM_MAGIC: SMB2_TRANSFORM_PROTOCOL_ID,
  DSR_SMB2_COMPRESSED_MAGIC: SMB2_COMPRESSION_PROTOCOL_ID,
  DSR_SMB2_CMD_COUNT: SMB2_COMMAND_COUNT,
  DSR_SMB2_CMD_CLOSE: Smb2Command.CLOSE,
  DSR_SMB2_CMD_FLUSH: Smb2Command.FLUSH,
  DSR_SMB2_CMD_READ: Smb2Command.READ,
  DSR_SMB2_CMD_WRITE: Smb2Command.WRITE,
  DSR_SMB2_CMD_LOCK: Smb2Command.LOCK,
  DSR_SMB2_CMD_IOCTL: Smb2Command.IOCTL,
  DSR_SMB2_CMD_CANCEL: Smb2Command.CANCEL,
  DSR_SMB2_CMD_QUERY_DIRECTORY: Smb2Command.QUERY_DIRECTORY,
  DSR_SMB2_CMD_CHANGE_NOTIFY: Smb2Command.CHANGE_NOTIFY,
  DSR_SMB2_CMD_QUERY_INFO: Smb2Command.QUERY_INFO,
  DSR_SMB2_CMD_SET_INFO: Smb2Command.SET_INFO,
  DSR_SMB2_CMD_OPLOCK_BREAK: Smb2Command.OPLOCK_BREAK,
  DSR_SMB2_FILE_ID_LEN: FILE_ID_SIZE,
  DSR_SMB2_FILE_ID_AT_CLOSE: fileIdAt(Smb2Command.CLOSE),
  DSR_SMB2_FILE_ID_AT_FLUSH: fileIdAt(Smb2Command.FLUSH),
  DSR_SMB2_FILE_ID_AT_READ: fileIdAt(Smb2Command.READ),
  DSR_SMB2_FILE_ID_AT_WRITE: fileIdAt(Smb2Command.WRITE),
  DSR_SMB2_FILE_ID_AT_LOCK: fileIdAt(Smb2Command.LOCK),
  DSR_SMB2_FILE_ID_AT_IOCTL: fileIdAt(Smb2Command.IOCTL),
  DSR_SMB2_FILE_ID_AT_QUERY_DIRECTORY: fileIdAt(Smb2Command.QUERY_DIRECTORY),
  DSR_SMB2_FILE_ID_AT_CHANGE_NOTIFY: fileIdAt(Smb2Command.CHANGE_NOTIFY),
  DSR_SMB2_FILE_ID_AT_QUERY_INFO: fileIdAt(Smb2Command.QUERY_INFO),
  DSR_SMB2_FILE_ID_AT_SET_INFO: fileIdAt(Smb2Command.SET_INFO),
  DSR_SMB2_FILE_ID_AT_OPLOCK_BREAK: fileIdAt(Smb2Command.OPLOCK_BREAK),
  DSR_SMB2_SIZE_FLUSH: CHECKED_SIZE.FLUSH,
  DSR_SMB2_SIZE_READ: CHECKED_SIZE.READ,
  DSR_SMB2_SIZE_WRITE: CHECKED_SIZE.WRITE,
  DSR_SMB2_SIZE_QUERY_INFO: CHECKED_SIZE.QUERY_INFO,
  DSR_SMB2_READ_LENGTH_AT: 4,
  DSR_SMB2_READ_CHANNEL_INFO_AT: 44,
  DSR_SMB2_WRITE_DATA_OFFSET_AT: 2,
  DSR_SMB2_WRITE_LENGTH_AT: 4,
  DSR_SMB2_WRITE_CHANNEL_INFO_AT: 40,
  DSR_SMB2_QUERY_INFO_OUTPUT_LENGTH_AT: 4,
  DSR_SMB2_QUERY_INFO_INPUT_OFFSET_AT: 8,
  DSR_SMB2_QUERY_INFO_INPUT_LENGTH_AT: 12,
  DSR_SMB2_CREDIT_BYTES: 65536,
} as const;

/** Map and program names, as in the objects (bpf/*.bpf.c). */
export const PORT_OBJECT = 'port.bpf.o';
export const PortMaps = { ifs: 'dsr_port_ifs', ports: 'dsr_ports', switch: 'dsr_switch', stats: 'dsr_port_stats' } as const;
export const PortProgs = { ingress: 'dsr_port_ingress', egress: 'dsr_port_egress' } as const;
export const RELAY_OBJECT = 'smb2_relay.bpf.o';
export const RelayMaps = {
  socks: 'relay_socks',
  state: 'relay_socks_state',
  conns: 'relay_conns',
  sessions: 'relay_sessions',
  trees: 'relay_trees',
  files: 'relay_files',
  counters: 'relay_counters',
  passes: 'relay_passes',
  events: 'relay_events',
  journal: 'relay_journal',
  journalFree: 'relay_journal_free',
  journalIndex: 'relay_journal_index',
  journalSmall: 'relay_journal_small',
  journalSmallFree: 'relay_journal_small_free',
  busy: 'relay_busy',
} as const;
/** The strparser framing (parser + verdictMsg) or the cut-through one (verdictCut alone). */
export const RelayProgs = { parser: 'relay_parser', verdictMsg: 'relay_verdict_msg', verdictCut: 'relay_verdict_cut' } as const;

export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

/** The storage port filter's reason names, indexed by code (DSR_PORT_ALLOWED, DSR_PORT_DROP_*, DSR_PORT_DIRECT, DSR_PORT_OPEN). */
export const PORT_REASONS = ['allowed', 'unassigned', 'src-mac', 'src-ip', 'dst-ip', 'proto', 'malformed', 'direct', 'open'] as const;
export type PortReason = (typeof PORT_REASONS)[number];
/** The reasons whose frames pass; every other reason is a drop. 'allowed' alone is the DSR's own traffic. */
export const PORT_PASS_REASONS: ReadonlySet<PortReason> = new Set(['allowed', 'direct', 'open']);

/** The numeric pass reasons (DSR_PASS_*); 0 (DSR_PASS_NONE) means forwarded by the kernel. */
export const PASS_REASON_CODES: Readonly<Record<PassReason, number>> = {
  [PassReason.SIGNED]: ABI.DSR_PASS_SIGNED,
  [PassReason.BACKEND_SIGNED]: ABI.DSR_PASS_BACKEND_SIGNED,
  [PassReason.ENCRYPTED]: ABI.DSR_PASS_ENCRYPTED,
  [PassReason.NO_KEY]: ABI.DSR_PASS_NO_KEY,
  [PassReason.LOCAL_TREE]: ABI.DSR_PASS_LOCAL_TREE,
  [PassReason.NO_SOCK]: ABI.DSR_PASS_NO_SOCK,
  [PassReason.NO_CONN]: ABI.DSR_PASS_NO_CONN,
  [PassReason.BAD_MAGIC]: ABI.DSR_PASS_BAD_MAGIC,
  [PassReason.COMPRESSED]: ABI.DSR_PASS_COMPRESSED,
  [PassReason.COMMAND]: ABI.DSR_PASS_COMMAND,
  [PassReason.SESSION]: ABI.DSR_PASS_SESSION,
  [PassReason.TREE]: ABI.DSR_PASS_TREE,
  [PassReason.COMPOUND]: ABI.DSR_PASS_COMPOUND,
  [PassReason.STICKY]: ABI.DSR_PASS_STICKY,
  [PassReason.NO_PEER]: ABI.DSR_PASS_NO_PEER,
  [PassReason.ERROR]: ABI.DSR_PASS_ERROR,
  [PassReason.TOO_MANY]: ABI.DSR_PASS_TOO_MANY,
  [PassReason.FILE]: ABI.DSR_PASS_FILE,
  [PassReason.INVALID]: ABI.DSR_PASS_INVALID,
  [PassReason.JOURNAL]: ABI.DSR_PASS_JOURNAL,
  [PassReason.SEQUENCE]: ABI.DSR_PASS_SEQUENCE,
  [PassReason.UNREAD]: ABI.DSR_PASS_UNREAD,
  [PassReason.BEHIND]: ABI.DSR_PASS_BEHIND,
  [PassReason.AHEAD]: ABI.DSR_PASS_AHEAD,
};
const PASS_REASON_BY_CODE = new Map(Object.entries(PASS_REASON_CODES).map(([r, c]) => [c, r as PassReason]));

/** The PassReason of a DSR_PASS_* code; undefined for DSR_PASS_NONE and unknown codes. */
export const passReasonOf = (code: number): PassReason | undefined => PASS_REASON_BY_CODE.get(code);

/** The relay's counters that are not pass reasons (map relay_counters), indexed by DSR_RELAY_* code. */
export const RELAY_COUNTERS = ['fwd-msg', 'fwd-skb', 'fwd-bytes', 'split-hdr', 'carry-held', 'journaled', 'journal-freed', 'err-load', 'err-store', 'err-tail', 'err-head', 'overlap', 'seq-gap'] as const;
export type RelayCounter = (typeof RELAY_COUNTERS)[number];

/** A relay socket's direction by what arrives on it, indexed by DSR_RELAY_DIR_*. */
export const RELAY_DIRECTIONS = ['request', 'reply'] as const;
export type RelayDirection = (typeof RELAY_DIRECTIONS)[number];

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

export const RELAY_SOCK: StructLayout = {
  name: 'dsr_relay_sock',
  size: 232,
  fields: {
    conn: { offset: 0, size: 4 },
    peer_key: { offset: 4, size: 4 },
    dir: { offset: 8, size: 4 },
    sticky: { offset: 12, size: 4 },
    skip: { offset: 16, size: 4 },
    at_nb: { offset: 20, size: 4 },
    frame_left: { offset: 24, size: 4 },
    carry_len: { offset: 28, size: 4 },
    carry: { offset: 32, size: ABI.DSR_RELAY_CARRY_MAX },
    gate: { offset: 148, size: 4 },
    msgs: { offset: 152, size: 8 },
    bytes: { offset: 160, size: 8 },
    charge: { offset: 168, size: 8 },
    msg_id_end: { offset: 176, size: 8 },
    credits: { offset: 184, size: 8 },
    interims: { offset: 192, size: 8 },
    journal_slot: { offset: 200, size: 4 },
    journal_left: { offset: 204, size: 4 },
    expect: { offset: 208, size: 8 },
    tail_msg_id: { offset: 216, size: 8 },
    tail_data_offset: { offset: 224, size: 4 },
    tail_data_length: { offset: 228, size: 4 },
  },
};
export const RELAY_CONN: StructLayout = {
  name: 'dsr_relay_conn',
  size: 56,
  fields: {
    msg_id_delta: { offset: 0, size: 8 },
    cmd_mask: { offset: 8, size: 4 },
    flags: { offset: 12, size: 4 },
    max_read: { offset: 16, size: 4 },
    max_write: { offset: 20, size: 4 },
    max_transact: { offset: 24, size: 4 },
    max_queued: { offset: 28, size: 4 },
    msg_id_next: { offset: 32, size: 8 },
    client_base: { offset: 40, size: 8 },
    journaled: { offset: 48, size: 4 },
    journal_max: { offset: 52, size: 4 },
  },
};
export const RELAY_SESSION_KEY: StructLayout = {
  name: 'dsr_relay_session_key',
  size: 16,
  fields: { conn: { offset: 0, size: 4 }, dir: { offset: 4, size: 4 }, session_id: { offset: 8, size: 8 } },
};
export const RELAY_TREE_KEY: StructLayout = {
  name: 'dsr_relay_tree_key',
  size: 16,
  fields: { conn: { offset: 0, size: 4 }, dir: { offset: 4, size: 4 }, tree_id: { offset: 8, size: 4 }, pad: { offset: 12, size: 4 } },
};
export const RELAY_FILE_KEY: StructLayout = {
  name: 'dsr_relay_file_key',
  size: 24,
  fields: { conn: { offset: 0, size: 4 }, pad: { offset: 4, size: 4 }, persistent: { offset: 8, size: 8 }, volatile_: { offset: 16, size: 8 } },
};
export const RELAY_FILE_ID: StructLayout = {
  name: 'dsr_relay_file_id',
  size: 16,
  fields: { persistent: { offset: 0, size: 8 }, volatile_: { offset: 8, size: 8 } },
};
export const RELAY_JOURNAL: StructLayout = {
  name: 'dsr_relay_journal',
  size: 24 + ABI.DSR_RELAY_JOURNAL_BYTES,
  fields: {
    conn: { offset: 0, size: 4 },
    len: { offset: 4, size: 4 },
    copied: { offset: 8, size: 4 },
    pad: { offset: 12, size: 4 },
    msg_id: { offset: 16, size: 8 },
    data: { offset: 24, size: ABI.DSR_RELAY_JOURNAL_BYTES },
  },
};
export const RELAY_JOURNAL_SMALL: StructLayout = {
  name: 'dsr_relay_journal_small',
  size: 24 + ABI.DSR_RELAY_JOURNAL_SMALL_BYTES,
  fields: { ...RELAY_JOURNAL.fields, data: { offset: 24, size: ABI.DSR_RELAY_JOURNAL_SMALL_BYTES } },
};
export const RELAY_JOURNAL_KEY: StructLayout = {
  name: 'dsr_relay_journal_key',
  size: 16,
  fields: { conn: { offset: 0, size: 4 }, pad: { offset: 4, size: 4 }, msg_id: { offset: 8, size: 8 } },
};
export const RELAY_EVENT: StructLayout = {
  name: 'dsr_relay_event',
  size: 16,
  fields: { conn: { offset: 0, size: 4 }, dir: { offset: 4, size: 4 }, reason: { offset: 8, size: 4 }, pad: { offset: 12, size: 4 } },
};

export const RELAY_BUSY: StructLayout = {
  name: 'dsr_relay_busy',
  size: 16,
  fields: { busy: { offset: 0, size: 4 }, seq_set: { offset: 4, size: 4 }, next_seq: { offset: 8, size: 4 }, pad: { offset: 12, size: 4 } },
};

/** Every struct of the header, for the layout test. */
export const STRUCTS: readonly StructLayout[] = [PORT, SWITCH, PORT_STAT_KEY, PORT_STAT, RELAY_SOCK, RELAY_CONN, RELAY_SESSION_KEY, RELAY_TREE_KEY, RELAY_FILE_KEY, RELAY_FILE_ID, RELAY_JOURNAL, RELAY_JOURNAL_SMALL, RELAY_JOURNAL_KEY, RELAY_EVENT, RELAY_BUSY];

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

export function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
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

function relayDirection(s: StructLayout, code: number): RelayDirection {
  const dir = RELAY_DIRECTIONS[code];
  if (dir === undefined) throw new DsrError(ErrorCode.BPF, `struct ${s.name}: unknown direction ${code}`);
  return dir;
}

function passReason(s: StructLayout, code: number): PassReason {
  const reason = passReasonOf(code);
  if (reason === undefined) throw new DsrError(ErrorCode.BPF, `struct ${s.name}: unknown pass reason ${code}`);
  return reason;
}

/**
 * The counts struct dsr_relay_sock keeps of what the kernel forwarded in one direction, what
 * taking the connection back reads (dsr_abi.h says what each means); numbers are exact up to 2^53.
 */
export interface RelaySockCounts {
  /** Headers forwarded (replies: interim and final responses). */
  msgs: number;
  /** Bytes forwarded: the barrier user space waits on before it writes to the peer itself. */
  bytes: number;
  /** Requests: the sum of max(CreditCharge, 1), CANCEL aside. */
  charge: number;
  /** Requests: the highest client MessageId + max(CreditCharge, 1), CANCEL aside; 0n: none. */
  msgIdEnd: bigint;
  /** Replies: the sum of CreditResponse. */
  credits: number;
  /** Replies: interim responses (STATUS_PENDING, async). */
  interims: number;
}

/** struct dsr_relay_sock: one offloaded socket, as user space installs it and the verdict keeps it. */
export interface RelaySock extends RelaySockCounts {
  conn: number;
  /** relay_socks key of the peer socket. */
  peerKey: number;
  dir: RelayDirection;
  /** Set: the direction passes everything to user space, since a message passed for this reason. */
  sticky?: PassReason;
  /** Cut-through: where the next header starts in the next skb (once sticky: in the passed bytes). */
  skip: number;
  /** The next header starts a NetBIOS frame (else it is a compound's next header). */
  atFrameStart: boolean;
  frameLeft: number;
  /** The split header's bytes held for the next skb. */
  carry: Buffer;
  /** Cut-through, journaled: the slot of the request frame being copied, and its bytes still to come (0: none). */
  journalSlot: number;
  journalLeft: number;
  /**
   * Replies, cut-through, journaled: the final response whose last `skip` bytes are still to
   * come (its request's journal entry stays until they go), by its server MessageId, and a
   * successful READ response's DataOffset and DataLength (0: another response, or unknown).
   */
  tail?: { messageId: bigint; dataOffset: number; dataLength: number };
  /**
   * Set until the first skb after arming: the stream offset it must start at (what user space
   * consumed of the socket), else it passes ('unread'). Unset: not checked.
   */
  expect?: bigint;
}

/** What user space installs: counts and the journal cursor left out are 0 (a re-arm passes the counts it read back). */
export type RelaySockInit = Omit<RelaySock, keyof RelaySockCounts | 'journalSlot' | 'journalLeft'> &
  Partial<RelaySockCounts> &
  Partial<Pick<RelaySock, 'journalSlot' | 'journalLeft'>>;

export function encodeRelaySock(r: RelaySockInit): Buffer {
  const s = RELAY_SOCK;
  if (r.carry.length > ABI.DSR_RELAY_CARRY_MAX) throw new DsrError(ErrorCode.BPF, `struct ${s.name}: ${r.carry.length} carried bytes, at most ${ABI.DSR_RELAY_CARRY_MAX}`);
  const b = Buffer.alloc(s.size);
  b.writeUInt32LE(r.conn, off(s, 'conn'));
  b.writeUInt32LE(r.peerKey, off(s, 'peer_key'));
  b.writeUInt32LE(RELAY_DIRECTIONS.indexOf(r.dir), off(s, 'dir'));
  b.writeUInt32LE(r.sticky ? PASS_REASON_CODES[r.sticky] : ABI.DSR_PASS_NONE, off(s, 'sticky'));
  b.writeUInt32LE(r.skip, off(s, 'skip'));
  b.writeUInt32LE(r.atFrameStart ? 1 : 0, off(s, 'at_nb'));
  b.writeUInt32LE(r.frameLeft, off(s, 'frame_left'));
  b.writeUInt32LE(r.carry.length, off(s, 'carry_len'));
  r.carry.copy(b, off(s, 'carry'));
  b.writeBigUInt64LE(BigInt(r.msgs ?? 0), off(s, 'msgs'));
  b.writeBigUInt64LE(BigInt(r.bytes ?? 0), off(s, 'bytes'));
  b.writeBigUInt64LE(BigInt(r.charge ?? 0), off(s, 'charge'));
  b.writeBigUInt64LE(r.msgIdEnd ?? 0n, off(s, 'msg_id_end'));
  b.writeBigUInt64LE(BigInt(r.credits ?? 0), off(s, 'credits'));
  b.writeBigUInt64LE(BigInt(r.interims ?? 0), off(s, 'interims'));
  b.writeUInt32LE(r.journalSlot ?? 0, off(s, 'journal_slot'));
  b.writeUInt32LE(r.journalLeft ?? 0, off(s, 'journal_left'));
  b.writeUInt32LE(r.expect === undefined ? 0 : 1, off(s, 'gate'));
  b.writeBigUInt64LE(r.expect ?? 0n, off(s, 'expect'));
  if (r.tail) {
    b.writeBigUInt64LE(r.tail.messageId + 1n, off(s, 'tail_msg_id'));
    b.writeUInt32LE(r.tail.dataOffset, off(s, 'tail_data_offset'));
    b.writeUInt32LE(r.tail.dataLength, off(s, 'tail_data_length'));
  }
  return b;
}

export function decodeRelaySock(b: Buffer): RelaySock {
  const s = RELAY_SOCK;
  checkLength(s, b);
  const tailMsgId = b.readBigUInt64LE(off(s, 'tail_msg_id'));
  const sticky = b.readUInt32LE(off(s, 'sticky'));
  const carryLen = b.readUInt32LE(off(s, 'carry_len'));
  if (carryLen > ABI.DSR_RELAY_CARRY_MAX) throw new DsrError(ErrorCode.BPF, `struct ${s.name}: carry_len ${carryLen}`);
  return {
    conn: b.readUInt32LE(off(s, 'conn')),
    peerKey: b.readUInt32LE(off(s, 'peer_key')),
    dir: relayDirection(s, b.readUInt32LE(off(s, 'dir'))),
    ...(sticky !== ABI.DSR_PASS_NONE && { sticky: passReason(s, sticky) }),
    skip: b.readUInt32LE(off(s, 'skip')),
    atFrameStart: b.readUInt32LE(off(s, 'at_nb')) !== 0,
    frameLeft: b.readUInt32LE(off(s, 'frame_left')),
    carry: Buffer.from(b.subarray(off(s, 'carry'), off(s, 'carry') + carryLen)),
    msgs: Number(b.readBigUInt64LE(off(s, 'msgs'))),
    bytes: Number(b.readBigUInt64LE(off(s, 'bytes'))),
    charge: Number(b.readBigUInt64LE(off(s, 'charge'))),
    msgIdEnd: b.readBigUInt64LE(off(s, 'msg_id_end')),
    credits: Number(b.readBigUInt64LE(off(s, 'credits'))),
    interims: Number(b.readBigUInt64LE(off(s, 'interims'))),
    journalSlot: b.readUInt32LE(off(s, 'journal_slot')),
    journalLeft: b.readUInt32LE(off(s, 'journal_left')),
    ...(b.readUInt32LE(off(s, 'gate')) !== 0 && { expect: b.readBigUInt64LE(off(s, 'expect')) }),
    ...(tailMsgId !== 0n && {
      tail: {
        messageId: tailMsgId - 1n,
        dataOffset: b.readUInt32LE(off(s, 'tail_data_offset')),
        dataLength: b.readUInt32LE(off(s, 'tail_data_length')),
      },
    }),
  };
}

/** struct dsr_relay_conn: a connection's rules. */
export interface RelayConn {
  /** Backend MessageId = client MessageId + delta. */
  msgIdDelta: bigint;
  /** Bit n: SMB2 command n may be forwarded by the kernel. */
  cmdMask: number;
  /** Look ids up and write them (DSR_RELAY_CONN_REWRITE); off: framing only. */
  rewrite: boolean;
  /** With rewrite: requests' FileIds are mapped through relay_files too (DSR_RELAY_CONN_FILES). */
  files?: boolean;
  /**
   * Keep a copy of every request forwarded until its final response is (DSR_RELAY_CONN_JOURNAL,
   * RelayPrograms.journal); a compound request then passes ('compound'), one that cannot be
   * journaled too ('journal').
   */
  journal?: boolean;
  /**
   * The connection's negotiated MaxReadSize, MaxWriteSize and MaxTransactSize: a READ, WRITE or
   * QUERY_INFO request larger than these (or otherwise not provably valid) passes to user space
   * ('invalid'), which answers it.
   */
  maxRead: number;
  maxWrite: number;
  maxTransact: number;
  /**
   * The client MessageId the next request must carry (the low end of its window when lent):
   * a request with another passes ('sequence'). Unset: not checked.
   */
  msgIdNext?: bigint;
  /**
   * Responses forwarded to the client and not yet taken by its socket, at most (they wait in its
   * psock's queue); past it a response passes ('behind'). Unset: no bound. Needs clientBase.
   */
  maxQueued?: number;
  /**
   * written() of the client socket when the rules go in, plus a reply user space writes right
   * after: no response is forwarded before the socket has it all ('ahead'). Unset: unchecked.
   */
  clientBase?: bigint;
  /**
   * With journal: the journal entries (requests forwarded and not answered) the connection may
   * hold; one more passes ('journal'). Unset: DSR_RELAY_JOURNAL_PER_CONN.
   */
  journalMax?: number;
}

/**
 * Commands whose responses carry a FileId (CREATE, IOCTL, oplock breaks): the kernel rewrites
 * FileIds in requests only, so with FileIds mapped these must stay in user space.
 */
export const RELAY_FILE_ID_REPLY_COMMANDS: readonly Smb2Command[] = [Smb2Command.CREATE, Smb2Command.IOCTL, Smb2Command.OPLOCK_BREAK];

export function encodeRelayConn(r: RelayConn): Buffer {
  const s = RELAY_CONN;
  const files = r.rewrite && r.files === true;
  const refused = files ? RELAY_FILE_ID_REPLY_COMMANDS.filter((c) => (r.cmdMask >>> c) & 1) : [];
  if (refused.length) {
    throw new DsrError(ErrorCode.BPF, `struct ${s.name}: ${refused.map(smb2CommandName).join(', ')} in cmd_mask with FileIds mapped (their responses carry a FileId the kernel does not map)`);
  }
  const b = Buffer.alloc(s.size);
  b.writeBigInt64LE(r.msgIdDelta, off(s, 'msg_id_delta'));
  b.writeUInt32LE(r.cmdMask >>> 0, off(s, 'cmd_mask'));
  b.writeUInt32LE(
    (r.rewrite ? ABI.DSR_RELAY_CONN_REWRITE : 0) | (files ? ABI.DSR_RELAY_CONN_FILES : 0) | (r.journal === true ? ABI.DSR_RELAY_CONN_JOURNAL : 0),
    off(s, 'flags'),
  );
  for (const [field, value] of [['max_read', r.maxRead], ['max_write', r.maxWrite], ['max_transact', r.maxTransact], ['max_queued', r.maxQueued ?? 0], ['journal_max', r.journalMax ?? 0]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new DsrError(ErrorCode.BPF, `struct ${s.name}: ${field} ${value} is not a 32-bit size`);
    b.writeUInt32LE(value, off(s, field));
  }
  b.writeBigUInt64LE(r.msgIdNext ?? 0n, off(s, 'msg_id_next'));
  b.writeBigUInt64LE(r.clientBase ?? 0n, off(s, 'client_base'));
  return b;
}

export function decodeRelayConn(b: Buffer): RelayConn {
  const s = RELAY_CONN;
  checkLength(s, b);
  const flags = b.readUInt32LE(off(s, 'flags'));
  const files = (flags & ABI.DSR_RELAY_CONN_FILES) !== 0;
  const journal = (flags & ABI.DSR_RELAY_CONN_JOURNAL) !== 0;
  return {
    msgIdDelta: b.readBigInt64LE(off(s, 'msg_id_delta')),
    cmdMask: b.readUInt32LE(off(s, 'cmd_mask')),
    rewrite: (flags & ABI.DSR_RELAY_CONN_REWRITE) !== 0,
    ...(files && { files }),
    ...(journal && { journal }),
    maxRead: b.readUInt32LE(off(s, 'max_read')),
    maxWrite: b.readUInt32LE(off(s, 'max_write')),
    maxTransact: b.readUInt32LE(off(s, 'max_transact')),
    ...(b.readBigUInt64LE(off(s, 'msg_id_next')) !== 0n && { msgIdNext: b.readBigUInt64LE(off(s, 'msg_id_next')) }),
    ...(b.readUInt32LE(off(s, 'max_queued')) !== 0 && { maxQueued: b.readUInt32LE(off(s, 'max_queued')) }),
    ...(b.readBigUInt64LE(off(s, 'client_base')) !== 0n && { clientBase: b.readBigUInt64LE(off(s, 'client_base')) }),
    ...(b.readUInt32LE(off(s, 'journal_max')) !== 0 && { journalMax: b.readUInt32LE(off(s, 'journal_max')) }),
  };
}

/**
 * struct dsr_relay_session_key (id: the SessionId) and struct dsr_relay_tree_key (id: the
 * TreeId): an id as seen on one socket of a connection, the key to the id for the peer.
 */
export interface RelayIdKey<Id extends bigint | number> {
  conn: number;
  dir: RelayDirection;
  id: Id;
}
export type RelaySessionKey = RelayIdKey<bigint>;
export type RelayTreeKey = RelayIdKey<number>;

/** The id field's size says its type: 8 bytes a bigint, 4 a number. */
function encodeIdKey(s: StructLayout, field: string, k: RelayIdKey<bigint | number>): Buffer {
  const b = Buffer.alloc(s.size);
  b.writeUInt32LE(k.conn, off(s, 'conn'));
  b.writeUInt32LE(RELAY_DIRECTIONS.indexOf(k.dir), off(s, 'dir'));
  if (typeof k.id === 'bigint') b.writeBigUInt64LE(k.id, off(s, field));
  else b.writeUInt32LE(k.id, off(s, field));
  return b;
}

function decodeIdKey(s: StructLayout, field: string, b: Buffer): RelayIdKey<bigint | number> {
  checkLength(s, b);
  const id = s.fields[field]?.size === 8 ? b.readBigUInt64LE(off(s, field)) : b.readUInt32LE(off(s, field));
  return { conn: b.readUInt32LE(off(s, 'conn')), dir: relayDirection(s, b.readUInt32LE(off(s, 'dir'))), id };
}

export const encodeRelaySessionKey = (k: RelaySessionKey): Buffer => encodeIdKey(RELAY_SESSION_KEY, 'session_id', k);
export const decodeRelaySessionKey = (b: Buffer): RelaySessionKey => decodeIdKey(RELAY_SESSION_KEY, 'session_id', b) as RelaySessionKey;
export const encodeRelayTreeKey = (k: RelayTreeKey): Buffer => encodeIdKey(RELAY_TREE_KEY, 'tree_id', k);
export const decodeRelayTreeKey = (b: Buffer): RelayTreeKey => decodeIdKey(RELAY_TREE_KEY, 'tree_id', b) as RelayTreeKey;

/** struct dsr_relay_file_key: a FileId the client holds on a connection, the key to the server's. */
export interface RelayFileKey {
  conn: number;
  fileId: FileId;
}

/** The FileId halves of a struct that has them (persistent, volatile_). */
function writeFileIdFields(s: StructLayout, b: Buffer, id: FileId): Buffer {
  b.writeBigUInt64LE(id.Persistent, off(s, 'persistent'));
  b.writeBigUInt64LE(id.Volatile, off(s, 'volatile_'));
  return b;
}

function readFileIdFields(s: StructLayout, b: Buffer): FileId {
  checkLength(s, b);
  return { Persistent: b.readBigUInt64LE(off(s, 'persistent')), Volatile: b.readBigUInt64LE(off(s, 'volatile_')) };
}

export function encodeRelayFileKey(k: RelayFileKey): Buffer {
  const b = Buffer.alloc(RELAY_FILE_KEY.size);
  b.writeUInt32LE(k.conn, off(RELAY_FILE_KEY, 'conn'));
  return writeFileIdFields(RELAY_FILE_KEY, b, k.fileId);
}

export function decodeRelayFileKey(b: Buffer): RelayFileKey {
  const fileId = readFileIdFields(RELAY_FILE_KEY, b);
  return { conn: b.readUInt32LE(off(RELAY_FILE_KEY, 'conn')), fileId };
}

/** struct dsr_relay_file_id: the server's FileId, relay_files' value. */
export const encodeRelayFileId = (id: FileId): Buffer => writeFileIdFields(RELAY_FILE_ID, Buffer.alloc(RELAY_FILE_ID.size), id);
export const decodeRelayFileId = (b: Buffer): FileId => readFileIdFields(RELAY_FILE_ID, b);

/** struct dsr_relay_journal_key: a journaled request, by connection and the MessageId the server saw. */
export interface RelayJournalKey {
  conn: number;
  msgId: bigint;
}

export function encodeRelayJournalKey(k: RelayJournalKey): Buffer {
  const b = Buffer.alloc(RELAY_JOURNAL_KEY.size);
  b.writeUInt32LE(k.conn, off(RELAY_JOURNAL_KEY, 'conn'));
  b.writeBigUInt64LE(k.msgId, off(RELAY_JOURNAL_KEY, 'msg_id'));
  return b;
}

export function decodeRelayJournalKey(b: Buffer): RelayJournalKey {
  checkLength(RELAY_JOURNAL_KEY, b);
  return { conn: b.readUInt32LE(off(RELAY_JOURNAL_KEY, 'conn')), msgId: b.readBigUInt64LE(off(RELAY_JOURNAL_KEY, 'msg_id')) };
}

/** struct dsr_relay_journal: one journaled request frame; `data` is its first `copied` bytes. */
export interface RelayJournal {
  conn: number;
  /** The NetBIOS frame's length, prefix included. */
  len: number;
  copied: number;
  msgId: bigint;
  data: Buffer;
}

/**
 * struct dsr_relay_journal, or dsr_relay_journal_small (`small`: a slot of relay_journal_small).
 * `data` is a view of `b` (a map value is over 1 MiB: copy only what is kept).
 */
export function decodeRelayJournal(b: Buffer, small = false): RelayJournal {
  const s = small ? RELAY_JOURNAL_SMALL : RELAY_JOURNAL;
  checkLength(s, b);
  const len = b.readUInt32LE(off(s, 'len'));
  const copied = b.readUInt32LE(off(s, 'copied'));
  if (copied > len || copied > (small ? ABI.DSR_RELAY_JOURNAL_SMALL_FRAME_MAX : ABI.DSR_RELAY_JOURNAL_FRAME_MAX)) throw new DsrError(ErrorCode.BPF, `struct ${s.name}: ${copied} of ${len} bytes copied`);
  return {
    conn: b.readUInt32LE(off(s, 'conn')),
    len,
    copied,
    msgId: b.readBigUInt64LE(off(s, 'msg_id')),
    data: b.subarray(off(s, 'data'), off(s, 'data') + copied),
  };
}

/** struct dsr_relay_event: a direction of a connection went to user space. */
export interface RelayEvent {
  conn: number;
  dir: RelayDirection;
  /** Why the direction went to user space, or 'fin': the peer's FIN reached the verdict. */
  reason: PassReason | 'fin';
}

export function decodeRelayEvent(b: Buffer): RelayEvent {
  const s = RELAY_EVENT;
  checkLength(s, b);
  const reason = b.readUInt32LE(off(s, 'reason'));
  return { conn: b.readUInt32LE(off(s, 'conn')), dir: relayDirection(s, b.readUInt32LE(off(s, 'dir'))), reason: reason === ABI.DSR_PASS_NONE ? 'fin' : passReason(s, reason) };
}
