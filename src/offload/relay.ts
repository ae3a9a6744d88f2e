/**
 * The SMB2 relay (bpf/smb2_relay.bpf.c) as the control plane sees it: load it, hand it a client
 * connection's client socket and one backend socket with the connection's rules, and take them
 * back. Sockets are the DSR's own Node sockets (their fds); what the verdict passes still
 * arrives through Node's reads, and Node may still write on them (test/offload/relay-node).
 *
 * A connection's sockets are attached once and stay in the sockhash until it ends (release);
 * in between, its rules are armed and disarmed. Disarming takes the rules out first, so the
 * verdict passes whatever comes next, then reads what the kernel did in each direction
 * (messages, bytes, the sticky reason) and drops the id maps. Redirected bytes reach the peer socket
 * through a work queue, so before user space writes on a socket again it waits until
 * `written(socket)` has grown by the bytes the kernel forwarded to it since it was offloaded
 * (`drained`).
 *
 * With the rules' `journal`, the kernel keeps a copy of every request it forwards until it
 * forwards the final response (`journal`, `journalFrame`): what user space replays when the server
 * dies with requests unanswered. Entries outlive `disarm` (user space reads them after it) and go
 * with `journalFree` or `release`.
 *
 * Everything belongs to this process's file descriptors: close() or the process dying detaches
 * the programs and frees the maps.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { DsrError, ErrorCode, errorMessage } from '../control/errors.js';
import { component, silentLogger, type Logger } from '../control/log.js';
import {
  ABI,
  decodeRelayJournal,
  decodeRelayJournalKey,
  decodeRelayEvent,
  decodeRelaySock,
  encodeRelayConn,
  encodeRelayJournalKey,
  encodeRelayFileId,
  encodeRelayFileKey,
  encodeRelaySessionKey,
  encodeRelaySock,
  encodeRelayTreeKey,
  passReasonOf,
  RELAY_BUSY,
  RELAY_CONN,
  RELAY_EVENT,
  RELAY_COUNTERS,
  RELAY_FILE_ID,
  RELAY_FILE_KEY,
  RELAY_JOURNAL,
  RELAY_JOURNAL_SMALL,
  RELAY_JOURNAL_KEY,
  RELAY_OBJECT,
  RELAY_SESSION_KEY,
  RELAY_SOCK,
  RELAY_TREE_KEY,
  RelayMaps,
  RelayProgs,
  u32,
  u64,
  type RelayConn,
  type RelayDirection,
  type RelayCounter,
  type RelayJournal,
  type RelaySock,
} from './abi.js';
import { AttachType, BpfObject, closeFd, distPath, linkCreate, requireKernel, RingConsumer, sockBuffers, sockCookie, sockState as tcpState, sockUnread, sockWritten, UpdateFlag, type BpfMap, type ProgRunTime } from './native.js';
import type { PassReason } from './offload.js';
import { fileIdKey, type FileId } from '../control/wire/smb2/file-id.js';

/** strparser: whole messages, store and forward; cut-through: bytes as they come, headers tracked. */
export type RelayFraming = 'strparser' | 'cut-through';

/** The programs each framing links to the sockhash, and how. */
const FRAMING_PROGS: Readonly<Record<RelayFraming, readonly (readonly [string, number])[]>> = {
  strparser: [
    [RelayProgs.parser, AttachType.SK_SKB_STREAM_PARSER],
    [RelayProgs.verdictMsg, AttachType.SK_SKB_STREAM_VERDICT],
  ],
  'cut-through': [[RelayProgs.verdictCut, AttachType.SK_SKB_STREAM_VERDICT]],
};

/** A journal slot number's index in relay_journal_small, or undefined for one of relay_journal's (dsr_abi.h). */
const smallSlot = (slot: number): number | undefined => (slot >= ABI.DSR_RELAY_JOURNAL_SMALL_BASE ? slot - ABI.DSR_RELAY_JOURNAL_SMALL_BASE : undefined);

/** A socket's file descriptor (Node keeps it on the TCP handle). */
function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new DsrError(ErrorCode.BPF, 'socket has no file descriptor (closed, or not a TCP socket)');
  return fd;
}

/** Bytes handed to a socket's TCP so far, by Node's writes or the relay's redirects. */
export function written(socket: Socket): bigint {
  return sendCounts(socket).written;
}

/** written(), and how many of those bytes the socket still holds (unsent or unacknowledged). */
export function sendCounts(socket: Socket): { written: bigint; queued: bigint } {
  return sockWritten(fdOf(socket));
}

/** Whether SIOCINQ on a sockhash socket counts what its verdict passed (probed once, when a relay opens: /proc/kallsyms is 5 MB). */
let psockInq: boolean | undefined;
const probePsockInq = (): boolean => (psockInq ??= /\btcp_bpf_ioctl$/m.test(readFileSync('/proc/kallsyms', 'utf8')));

/**
 * Bytes in a socket that Node has not read, or undefined where the kernel cannot say: for a
 * socket in the sockhash, SIOCINQ counts what the verdict passed only since tcp_bpf_ioctl ("bpf,
 * sockmap: Fix FIONREAD for sockmap", 2026); before it, it comes from copied_seq, which the
 * relay's redirects leave behind, so it is not asked at all.
 */
export function unread(socket: Socket): number | undefined {
  return probePsockInq() ? sockUnread(fdOf(socket)) : undefined;
}

/**
 * One of a connection's two-way id maps in the kernel (sessions, trees): the client's id to the
 * server's for requests, back for replies, and what is in.
 */
class TwoWayIds<T extends bigint | number> {
  private readonly installed = new Map<T, T>();

  constructor(
    private readonly map: BpfMap,
    private readonly key: (dir: RelayDirection, id: T) => Buffer,
    private readonly value: (id: T) => Buffer,
  ) {}

  /** Client id `c` to server id `b`, both ways; nothing written when it is in already. */
  set(c: T, b: T): void {
    if (this.installed.get(c) === b) return;
    this.remove(c);
    this.map.update(this.key('request', c), this.value(b));
    this.map.update(this.key('reply', b), this.value(c));
    this.installed.set(c, b);
  }

  remove(c: T): void {
    const b = this.installed.get(c);
    if (b === undefined) return;
    this.map.delete(this.key('request', c));
    this.installed.delete(c);
    // Another of the client's ids mapped to the same server id keeps the reply direction's key.
    if (![...this.installed.values()].includes(b)) this.map.delete(this.key('reply', b));
  }

  /** The client ids in. */
  clients(): T[] {
    return [...this.installed.keys()];
  }
}

/** One offloaded connection: its sockets and what was written to each before the kernel took over. */
interface Offloaded {
  client: Socket;
  backend: Socket;
  clientCookie: bigint;
  backendCookie: bigint;
  /**
   * The id maps installed, client's id to the server's. They stay while the connection is
   * disarmed (the verdict looks ids up only under rules) and `arm` writes only what changed:
   * a take-back and a lend cost a few map operations, not every id again.
   */
  sessions: TwoWayIds<bigint>;
  trees: TwoWayIds<number>;
  /** By fileIdKey of the client's FileId: the client's and the server's. */
  files: Map<string, readonly [FileId, FileId]>;
  /** The rules are in: the kernel forwards what they cover (else everything passes, 'no-conn'). */
  armed: boolean;
  /** Bytes of each socket the kernel forwarded or carried over to user space while armed: user space never read them. */
  clientTaken: bigint;
  backendTaken: bigint;
}

/**
 * Where user space stands in a socket's byte stream: what Node read and handed on (bytes it
 * buffered unconsumed are not), plus what the kernel took on its own (`taken`).
 */
function consumed(socket: Socket, taken: bigint): bigint {
  return BigInt(socket.bytesRead - socket.readableLength) + taken;
}

/** The ids an offloaded connection's rules map, client's first: set before its sockets go in. */
export interface RelayIds {
  sessions?: readonly (readonly [bigint, bigint])[];
  trees?: readonly (readonly [number, number])[];
  files?: readonly (readonly [FileId, FileId])[];
}

/** What the kernel did for a connection, read when it was taken back. */
export interface Released {
  /** The client socket's direction: requests forwarded to the backend. */
  request: RelaySock;
  /** The backend socket's direction: responses forwarded to the client. */
  reply: RelaySock;
}

/** A request the kernel forwarded on a journaled connection and whose final response it has not forwarded. */
export interface JournalEntry {
  /** The request's MessageId as forwarded (the server's id). */
  messageId: bigint;
  slot: number;
  /** The NetBIOS frame's length, prefix included, and how much of it the kernel copied. */
  length: number;
  copied: number;
}

/** How long disarm waits for a running verdict (a preempted ksoftirqd comes back within a few time slices). */
const SETTLE_MS = 1000;

const FRESH = { skip: 0, atFrameStart: true, frameLeft: 0, carry: Buffer.alloc(0), msgs: 0, bytes: 0, journalSlot: 0, journalLeft: 0 } as const;

interface Maps {
  socks: BpfMap;
  state: BpfMap;
  /** relay_busy: odd while a verdict runs on the socket, and where its stream stands (struct dsr_relay_busy, the verdicts' alone). */
  busy: BpfMap;
  conns: BpfMap;
  sessions: BpfMap;
  trees: BpfMap;
  files: BpfMap;
  counters: BpfMap;
  passes: BpfMap;
  /** Slots 0 .. journalSlots-1 (1 MiB each)... */
  journal: BpfMap;
  journalFree: BpfMap;
  /** ...and DSR_RELAY_JOURNAL_SMALL_BASE + i, relay_journal_small's i (a READ's frame fits). */
  journalSmall: BpfMap;
  journalSmallFree: BpfMap;
  journalIndex: BpfMap;
  events: BpfMap;
}

/** How long a wait on relay_events lasts before it is made again (the pool thread is held meanwhile). */
const EVENT_WAIT_MS = 500;
/** How often the sockets of watched connections are checked for an end no skb brought (a reset). */
const CHECK_MS = 200;
/** tcpi_state of an open connection (include/net/tcp_states.h). */
const TCP_ESTABLISHED = 1;

export class RelayPrograms {
  private readonly conns = new Map<number, Offloaded>();
  private closed = false;
  private retiring = false;
  /** Connections whose sockets Node does not read, and what wakes each (watch). */
  private readonly watched = new Map<number, () => void>();
  private events: RingConsumer | undefined;
  /** A waitEvents loop runs (it ends once no connection is watched: an idle DSR does not poll). */
  private waiting = false;
  private checker: NodeJS.Timeout | undefined;

  private constructor(
    private readonly obj: BpfObject,
    private readonly maps: Maps,
    private readonly links: number[],
    private readonly log: Logger,
    readonly framing: RelayFraming,
  ) {}

  /**
   * Probes the kernel (one error naming whatever is missing), loads the relay (its journal with
   * `journalSlots` 1 MiB slots for WRITEs, DSR_RELAY_JOURNAL_SLOTS unless given) and links its
   * programs to the sockhash.
   */
  static open(opts: { framing?: RelayFraming; log?: Logger; journalSlots?: number } = {}): RelayPrograms {
    requireKernel(['btf', 'sockmapLinks']);
    probePsockInq();
    const journalSlots = opts.journalSlots ?? ABI.DSR_RELAY_JOURNAL_SLOTS;
    if (!Number.isInteger(journalSlots) || journalSlots < 1 || journalSlots > ABI.DSR_RELAY_JOURNAL_SLOTS_MAX) {
      throw new DsrError(ErrorCode.USAGE, `the relay's journal takes 1 to ${ABI.DSR_RELAY_JOURNAL_SLOTS_MAX} WRITE slots, not ${journalSlots}`);
    }
    const obj = BpfObject.load(distPath(`bpf/${RELAY_OBJECT}`), { map: RelayMaps.journal, entries: journalSlots });
    const links: number[] = [];
    const framing = opts.framing ?? 'strparser';
    try {
      const maps: Maps = {
        socks: obj.map(RelayMaps.socks, 4, 8),
        state: obj.map(RelayMaps.state, 8, RELAY_SOCK.size),
        busy: obj.map(RelayMaps.busy, 8, RELAY_BUSY.size),
        conns: obj.map(RelayMaps.conns, 4, RELAY_CONN.size),
        sessions: obj.map(RelayMaps.sessions, RELAY_SESSION_KEY.size, 8),
        trees: obj.map(RelayMaps.trees, RELAY_TREE_KEY.size, 4),
        files: obj.map(RelayMaps.files, RELAY_FILE_KEY.size, RELAY_FILE_ID.size),
        counters: obj.map(RelayMaps.counters, 4, 8, true),
        passes: obj.map(RelayMaps.passes, 4, 8, true),
        journal: obj.map(RelayMaps.journal, 4, RELAY_JOURNAL.size),
        journalSmall: obj.map(RelayMaps.journalSmall, 4, RELAY_JOURNAL_SMALL.size),
        journalSmallFree: obj.map(RelayMaps.journalSmallFree, 0, 4),
        journalFree: obj.map(RelayMaps.journalFree, 0, 4),
        journalIndex: obj.map(RelayMaps.journalIndex, RELAY_JOURNAL_KEY.size, 4),
        events: obj.map(RelayMaps.events, 0, 0),
      };
      for (let slot = 0; slot < journalSlots; slot++) maps.journalFree.push(u32(slot));
      for (let i = 0; i < ABI.DSR_RELAY_JOURNAL_SMALL_SLOTS; i++) maps.journalSmallFree.push(u32(i));
      for (const [prog, attach] of FRAMING_PROGS[framing]) links.push(linkCreate(obj.prog(prog), maps.socks.fd, attach, prog));
      return new RelayPrograms(obj, maps, links, component(opts.log ?? silentLogger, 'offload'), framing);
    } catch (e) {
      for (const l of links) closeFd(l);
      obj.close();
      throw e;
    }
  }

  /**
   * Hands a connection to the kernel: attach, then arm. More ids may follow with
   * setSession/setTree/setFile.
   */
  offload(conn: number, client: Socket, backend: Socket, rules: RelayConn, ids: RelayIds = {}, buffers?: number): void {
    this.attach(conn, client, backend, buffers);
    this.arm(conn, rules, ids);
  }

  /**
   * Puts a connection's two sockets in the sockhash (backend first, so nothing the client sends
   * is redirected toward a socket not yet there), without rules: every message passes to user
   * space ('no-conn') until `arm`. They stay in until `release`: taking a socket out drops what
   * the verdict passed and user space has not read yet, and on this kernel a strparser socket
   * put back in soon after loses bytes (README: driving the relay). `buffers` fixes both sockets'
   * buffers first (sockBuffers): the strparser needs a whole message to fit.
   */
  attach(conn: number, client: Socket, backend: Socket, buffers?: number): void {
    this.checkOpen();
    if (this.conns.has(conn)) throw new DsrError(ErrorCode.USAGE, `relay connection ${conn} is already attached`);
    const o: Offloaded = {
      client,
      backend,
      clientCookie: sockCookie(fdOf(client)),
      backendCookie: sockCookie(fdOf(backend)),
      sessions: new TwoWayIds(this.maps.sessions, (dir, id) => encodeRelaySessionKey({ conn, dir, id }), u64),
      trees: new TwoWayIds(this.maps.trees, (dir, id) => encodeRelayTreeKey({ conn, dir, id }), u32),
      files: new Map(),
      armed: false,
      clientTaken: 0n,
      backendTaken: 0n,
    };
    this.conns.set(conn, o);
    try {
      this.freshState(conn, o);
      for (const cookie of [o.clientCookie, o.backendCookie]) this.maps.busy.update(u64(cookie), Buffer.alloc(RELAY_BUSY.size));
      if (buffers !== undefined) for (const s of [client, backend]) sockBuffers(fdOf(s), buffers);
      this.maps.socks.update(u32(2 * conn + 1), u64(BigInt(fdOf(backend))), UpdateFlag.NOEXIST);
      this.maps.socks.update(u32(2 * conn), u64(BigInt(fdOf(client))), UpdateFlag.NOEXIST);
    } catch (e) {
      this.release(conn);
      throw e;
    }
    this.log.debug({ event: 'relay.attached', conn });
  }

  /**
   * Both sockets' state as at the start: no sticky reason, framing at a frame start, counts 0.
   * `gated`: each socket's first skb must start where Node stands in its stream (else bytes the
   * verdict passed before are unread, and it passes too: 'unread').
   */
  private freshState(conn: number, o: Offloaded, gated = false): void {
    const expect = (s: Socket, taken: bigint) => (gated ? { expect: consumed(s, taken) } : {});
    this.maps.state.update(u64(o.clientCookie), encodeRelaySock({ conn, peerKey: 2 * conn + 1, dir: 'request', ...FRESH, ...expect(o.client, o.clientTaken) }));
    this.maps.state.update(u64(o.backendCookie), encodeRelaySock({ conn, peerKey: 2 * conn, dir: 'reply', ...FRESH, ...expect(o.backend, o.backendTaken) }));
  }

  /**
   * Gives an attached connection's traffic to the kernel: fresh state and counts, the ids (those
   * installed and not in `ids` go, the others are written where they changed), the rules last.
   */
  arm(conn: number, rules: RelayConn, ids: RelayIds = {}): void {
    const o = this.offloaded(conn);
    if (o.armed) throw new DsrError(ErrorCode.USAGE, `relay connection ${conn} is already armed`);
    this.freshState(conn, o, true);
    const sessions = new Map(ids.sessions ?? []);
    const trees = new Map(ids.trees ?? []);
    const files = new Set((ids.files ?? []).map(([c]) => fileIdKey(c)));
    for (const c of o.sessions.clients()) if (!sessions.has(c)) o.sessions.remove(c);
    for (const c of o.trees.clients()) if (!trees.has(c)) o.trees.remove(c);
    for (const [key, [c]] of [...o.files]) if (!files.has(key)) this.dropFile(conn, o, c);
    for (const [c, b] of sessions) o.sessions.set(c, b);
    for (const [c, b] of trees) o.trees.set(c, b);
    for (const [c, b] of ids.files ?? []) this.setFile(conn, c, b);
    this.maps.conns.update(u32(conn), encodeRelayConn(rules));
    o.armed = true;
    this.log.debug({ event: 'relay.armed', conn });
  }

  /**
   * Takes an attached connection's traffic back, its sockets staying in the sockhash: the rules
   * go first (the verdict passes every message after, whole with the strparser), then what the
   * kernel did is read. The ids stay for the next arm.
   */
  disarm(conn: number): Released {
    const o = this.offloaded(conn);
    this.maps.conns.delete(u32(conn));
    o.armed = false;
    this.settle(o);
    const done = { request: this.sockState(o.clientCookie, conn), reply: this.sockState(o.backendCookie, conn) };
    o.clientTaken += BigInt(done.request.bytes + done.request.carry.length);
    o.backendTaken += BigInt(done.reply.bytes + done.reply.carry.length);
    this.log.debug({ event: 'relay.disarmed', conn, requests: done.request.msgs, replies: done.reply.msgs });
    return done;
  }

  /**
   * Waits until no verdict runs on either socket (relay_busy even): one that found the rules
   * just before disarm deleted them may still move the state on. They run for microseconds, or a
   * time slice when ksoftirqd is preempted under load.
   */
  private settle(o: Offloaded): void {
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (const end = Date.now() + SETTLE_MS; ; ) {
      const running = [o.clientCookie, o.backendCookie].some((c) => ((this.maps.busy.lookup(u64(c))?.readUInt32LE(0) ?? 0) & 1) === 1);
      if (!running) return;
      if (Date.now() > end) throw new DsrError(ErrorCode.BPF, `a relay verdict still runs on a socket ${SETTLE_MS} ms after its rules were taken out`);
      Atomics.wait(pause, 0, 0, 0.2);
    }
  }

  private dropIds(conn: number, o: Offloaded): void {
    for (const c of o.sessions.clients()) o.sessions.remove(c);
    for (const c of o.trees.clients()) o.trees.remove(c);
    for (const [c] of [...o.files.values()]) this.dropFile(conn, o, c);
  }

  /** Whether a connection's sockets are in the sockhash, and with which backend socket. */
  attached(conn: number): Socket | undefined {
    return this.conns.get(conn)?.backend;
  }

  /**
   * A disarmed connection's trees moved to another server connection: its backend socket is
   * swapped for `backend`, the client socket staying in the sockhash (taking it out would drop
   * what the verdict passed and Node has not read yet). The old backend socket's unread bytes go
   * with it: its server is gone or left.
   */
  replaceBackend(conn: number, backend: Socket, buffers?: number): void {
    const o = this.offloaded(conn);
    if (o.armed) throw new DsrError(ErrorCode.USAGE, `relay connection ${conn} is armed: disarm it before its backend changes`);
    this.maps.socks.delete(u32(2 * conn + 1));
    this.maps.state.delete(u64(o.backendCookie));
    this.maps.busy.delete(u64(o.backendCookie));
    o.backend = backend;
    o.backendTaken = 0n;
    o.backendCookie = sockCookie(fdOf(backend));
    this.maps.state.update(u64(o.backendCookie), encodeRelaySock({ conn, peerKey: 2 * conn, dir: 'reply', ...FRESH }));
    this.maps.busy.update(u64(o.backendCookie), Buffer.alloc(RELAY_BUSY.size));
    if (buffers !== undefined) sockBuffers(fdOf(backend), buffers);
    this.maps.socks.update(u32(2 * conn + 1), u64(BigInt(fdOf(backend))), UpdateFlag.NOEXIST);
    this.log.debug({ event: 'relay.backend_replaced', conn });
  }

  /** The client session's id and its backend session's, both ways (nothing written when they are in already). */
  setSession(conn: number, clientSessionId: bigint, backendSessionId: bigint): void {
    this.offloaded(conn).sessions.set(clientSessionId, backendSessionId);
  }

  /** A client TreeId and the backend's, both ways (nothing written when they are in already). */
  setTree(conn: number, clientTreeId: number, backendTreeId: number): void {
    this.offloaded(conn).trees.set(clientTreeId, backendTreeId);
  }

  /**
   * A client FileId and the server's (requests only: the rules' `files` must be set for them to
   * be used); nothing written when it is in already.
   */
  setFile(conn: number, clientFileId: FileId, backendFileId: FileId): void {
    const o = this.offloaded(conn);
    const key = fileIdKey(clientFileId);
    const had = o.files.get(key);
    if (had && fileIdKey(had[1]) === fileIdKey(backendFileId)) return;
    this.maps.files.update(encodeRelayFileKey({ conn, fileId: clientFileId }), encodeRelayFileId(backendFileId));
    o.files.set(key, [clientFileId, backendFileId]);
  }

  /** A FileId closed: a request naming it passes to user space (reason 'file'). */
  removeFile(conn: number, clientFileId: FileId): void {
    this.dropFile(conn, this.offloaded(conn), clientFileId);
  }

  private dropFile(conn: number, o: Offloaded, clientFileId: FileId): void {
    this.maps.files.delete(encodeRelayFileKey({ conn, fileId: clientFileId }));
    o.files.delete(fileIdKey(clientFileId));
  }

  /** What the kernel has done in each direction of an offloaded connection so far. */
  state(conn: number): Released {
    const o = this.offloaded(conn);
    return { request: this.sockState(o.clientCookie, conn), reply: this.sockState(o.backendCookie, conn) };
  }

  private sockState(cookie: bigint, conn: number): RelaySock {
    const v = this.maps.state.lookup(u64(cookie));
    if (!v) throw new DsrError(ErrorCode.BPF, `relay connection ${conn}: a socket's state is gone`);
    return decodeRelaySock(v);
  }

  /**
   * Takes a connection back for good: its sockets leave the sockhash (nothing more is
   * redirected), then what the kernel did is read and the connection's rules go. Undefined for a
   * connection that was not attached.
   */
  release(conn: number): Released | undefined {
    const o = this.conns.get(conn);
    if (!o) return undefined;
    this.wake(conn);
    this.conns.delete(conn);
    this.maps.socks.delete(u32(2 * conn));
    this.maps.socks.delete(u32(2 * conn + 1));
    let done: Released | undefined;
    try {
      done = { request: this.sockState(o.clientCookie, conn), reply: this.sockState(o.backendCookie, conn) };
    } catch {
      // attach() failed half way: there is nothing to read.
    }
    this.maps.state.delete(u64(o.clientCookie));
    this.maps.state.delete(u64(o.backendCookie));
    this.maps.busy.delete(u64(o.clientCookie));
    this.maps.busy.delete(u64(o.backendCookie));
    this.maps.conns.delete(u32(conn));
    this.dropIds(conn, o);
    for (const k of this.maps.journalIndex.keys()) {
      const key = decodeRelayJournalKey(k);
      if (key.conn === conn) this.journalFree(conn, key.msgId);
    }
    this.log.debug({ event: 'relay.released', conn, requests: done?.request.msgs, replies: done?.reply.msgs });
    if (this.retiring && this.conns.size === 0) this.close();
    return done;
  }

  /**
   * Requests of this connection the kernel forwarded and whose final response it has not
   * forwarded, by MessageId. Each read copies a slot (a little over 1 MiB for a WRITE's, 1 KiB for a READ's).
   */
  journal(conn: number): JournalEntry[] {
    this.checkOpen();
    const found = new Map<bigint, JournalEntry>();
    for (const k of this.maps.journalIndex.keys()) {
      const key = decodeRelayJournalKey(k);
      if (key.conn !== conn || found.has(key.msgId)) continue;
      const v = this.maps.journalIndex.lookup(k);
      if (!v) continue; // freed since the walk saw it
      const slot = v.readUInt32LE(0);
      const e = this.slotEntry(slot);
      // A slot freed and taken again since is another request's.
      if (e?.conn !== conn || e.msgId !== key.msgId) continue;
      found.set(key.msgId, { messageId: key.msgId, slot, length: e.len, copied: e.copied });
    }
    return [...found.values()].sort((a, b) => (a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0));
  }

  /**
   * The frame of a journal entry: `copied` bytes (as the kernel has them now), NetBIOS prefix
   * included, backend ids. Throws if the entry was let go since journal() listed it.
   */
  journalFrame(entry: JournalEntry): Buffer {
    const e = this.slotEntry(entry.slot);
    // A slot let go keeps its bytes: the index says whether it still holds this request.
    const indexed = e && this.maps.journalIndex.lookup(encodeRelayJournalKey({ conn: e.conn, msgId: entry.messageId }))?.readUInt32LE(0);
    if (e?.msgId !== entry.messageId || e.len !== entry.length || indexed !== entry.slot) {
      throw new DsrError(ErrorCode.BPF, `journal slot ${entry.slot} no longer holds MessageId ${entry.messageId}`);
    }
    return Buffer.from(e.data);
  }

  /** Lets an entry go (its response came through user space, or user space took the request over); nothing if it is gone already. */
  journalFree(conn: number, messageId: bigint): void {
    this.checkOpen();
    // Whoever deletes the index entry (this, or the verdict on a final response) frees the slot.
    const slot = this.maps.journalIndex.take(encodeRelayJournalKey({ conn, msgId: messageId }));
    if (!slot) return;
    const small = smallSlot(slot.readUInt32LE(0));
    if (small === undefined) this.maps.journalFree.push(slot);
    else this.maps.journalSmallFree.push(u32(small));
  }

  private slotEntry(slot: number): RelayJournal | undefined {
    const small = smallSlot(slot);
    const v = small === undefined ? this.maps.journal.lookup(u32(slot)) : this.maps.journalSmall.lookup(u32(small));
    return v && decodeRelayJournal(v, small !== undefined);
  }

  /** Connections the kernel holds now. */
  get size(): number {
    return this.conns.size;
  }

  /** The attached programs' time on a CPU and runs (counted while run-time stats are on). */
  runTimes(): Record<string, ProgRunTime> {
    this.checkOpen();
    return this.obj.runTimes(FRAMING_PROGS[this.framing].map(([prog]) => prog));
  }

  /** The relay's counters, summed over the CPUs. */
  counters(): Record<RelayCounter, number> {
    this.checkOpen();
    return Object.fromEntries(RELAY_COUNTERS.map((name, i) => [name, this.sum(this.maps.counters, i)])) as Record<RelayCounter, number>;
  }

  /** Messages passed to user space, by reason (reasons never seen are left out). */
  passes(): Partial<Record<PassReason, number>> {
    this.checkOpen();
    const out: Partial<Record<PassReason, number>> = {};
    for (let code = 1; ; code++) {
      const reason = passReasonOf(code);
      if (reason === undefined) return out;
      const n = this.sum(this.maps.passes, code);
      if (n > 0) out[reason] = n;
    }
  }

  private sum(map: BpfMap, index: number): number {
    const v = map.lookup(u32(index));
    return v ? map.slots(v).reduce((n, s) => n + Number(s.readBigUInt64LE(0)), 0) : 0;
  }

  private offloaded(conn: number): Offloaded {
    this.checkOpen();
    const o = this.conns.get(conn);
    if (!o) throw new DsrError(ErrorCode.USAGE, `relay connection ${conn} is not offloaded`);
    return o;
  }

  /**
   * No more lending: the relay closes once the last connection attached is released (its
   * connection ended). Taking their sockets out sooner would drop what the verdict passed
   * and user space has not read (and wedge the socket: its copied_seq stays behind), and what the
   * kernel redirected that the peer has not taken yet.
   */
  retire(): void {
    this.retiring = true;
    if (this.conns.size === 0) this.close();
  }

  /** The relay is retired and waits for its last connection. */
  get retired(): boolean {
    return this.retiring;
  }

  /**
   * Calls `wake` once, when the verdict sends something of an attached connection to user space
   * (a direction turns sticky), a peer's FIN reaches it, or one of its sockets is no longer
   * established (a reset, which brings no skb): Node need not read the connection's sockets
   * until then. The kernel wakes a verdict socket's reader after every batch of skbs, the ones
   * it forwarded too, and those wake-ups were most of Node's CPU under the relay.
   */
  watch(conn: number, wake: () => void): void {
    this.checkOpen();
    const o = this.offloaded(conn);
    this.watched.set(conn, wake);
    this.events ??= new RingConsumer(this.maps.events.fd);
    if (!this.waiting) void this.waitEvents(this.events);
    this.checker ??= setInterval(() => this.checkWatched(), CHECK_MS);
    // A record put in before the watch went unheeded: what it said is still in the state.
    if (this.passed(conn, o)) this.wake(conn);
  }

  unwatch(conn: number): void {
    this.watched.delete(conn);
    if (this.watched.size === 0 && this.checker) {
      clearInterval(this.checker);
      this.checker = undefined;
    }
  }

  private wake(conn: number): void {
    const wake = this.watched.get(conn);
    if (!wake) return;
    this.unwatch(conn);
    wake();
  }

  private async waitEvents(ring: RingConsumer): Promise<void> {
    this.waiting = true;
    try {
      // Records put in while nobody waits stay in the ring; the next watch's first poll reads
      // them, and waking a connection an old record names is harmless (it sinks again).
      while (this.events === ring && this.watched.size > 0) {
        let got: Buffer | 'lost';
        try {
          got = await ring.poll(EVENT_WAIT_MS);
        } catch (e) {
          this.log.warn({ event: 'relay.events_failed', err: errorMessage(e) }, 'cannot read the relay events: every watched connection is woken');
          got = 'lost';
          await new Promise((resolve) => setTimeout(resolve, EVENT_WAIT_MS));
        }
        if (got === 'lost') for (const conn of [...this.watched.keys()]) this.wake(conn);
        else for (let at = 0; at + RELAY_EVENT.size <= got.length; at += RELAY_EVENT.size) this.wake(decodeRelayEvent(got.subarray(at, at + RELAY_EVENT.size)).conn);
      }
    } finally {
      this.waiting = false;
    }
  }

  /**
   * Wakes the watched connections that need it without a record (one put in before watch, or
   * lost to a full ring): a direction sticky (which stays so until the next arm), or a socket
   * no longer established.
   */
  private checkWatched(): void {
    for (const conn of [...this.watched.keys()]) {
      const o = this.conns.get(conn);
      if (!o || this.passed(conn, o) || [o.client, o.backend].some((s) => s.destroyed || tcpState(fdOf(s)) !== TCP_ESTABLISHED)) this.wake(conn);
    }
  }

  /** Whether the verdict sent something of the connection to user space since it was armed. */
  private passed(conn: number, o: Offloaded): boolean {
    return this.sockState(o.clientCookie, conn).sticky !== undefined || this.sockState(o.backendCookie, conn).sticky !== undefined;
  }

  /** Takes every connection back, detaches and frees the maps; idempotent. */
  close(): void {
    if (this.closed) return;
    this.retiring = false;
    for (const conn of [...this.watched.keys()]) this.wake(conn);
    this.events?.close();
    this.events = undefined;
    for (const conn of [...this.conns.keys()]) this.release(conn);
    this.closed = true;
    for (const l of this.links.splice(0)) closeFd(l);
    this.obj.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new DsrError(ErrorCode.BPF, 'the relay is closed');
  }
}

/**
 * Waits until `socket` has taken `bytes` more than `base` (written() when it was offloaded):
 * every byte the kernel redirected to it is in its TCP queue, so a write of user space's lands
 * after them. While the TCP send queue holds bytes the peer has not taken (a client that reads
 * slowly or not at all), the kernel cannot hand over more: that is waited for as long as the
 * connection lives, as a server waits for it. False when the socket closes, or when nothing came
 * for `stallMs` with the queue empty: the kernel kept bytes it should have sent (the caller
 * closes the connection).
 */
export async function drained(socket: Socket, base: bigint, bytes: number, stallMs = 2000): Promise<boolean> {
  if (socket.destroyed) return false;
  // Nothing redirected: nothing to wait for (and two syscalls saved on every small op's take-back).
  if (bytes === 0) return true;
  const want = base + BigInt(bytes);
  let last = -1n;
  let since = Date.now();
  let pause = 1;
  for (;;) {
    if (socket.destroyed) return false;
    const { written: now, queued } = sendCounts(socket);
    if (now >= want) return true;
    if (now !== last) {
      last = now;
      since = Date.now();
      pause = 1;
    } else if (queued > 0n) {
      since = Date.now();
      pause = Math.min(pause * 2, 100);
    } else if (Date.now() - since > stallMs) return false;
    await new Promise((r) => setTimeout(r, pause));
  }
}