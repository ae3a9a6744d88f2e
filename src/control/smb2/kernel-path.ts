/**
 * One client connection on the kernel relay (src/offload/relay.ts), phase by phase (issue 5,
 * "when to offload"): while the connection is quiet, its sessions neither sign nor encrypt and
 * every redirected tree is on one backend connection, the kernel forwards READ, WRITE, FLUSH and
 * QUERY_INFO both ways with the ids rewritten. Anything else (a CREATE, a CLOSE, a break, a
 * signed message) reaches Node, which takes the connection back before it looks at it.
 *
 * The MessageId sequences stay in lockstep while the kernel has them: client id + delta is the
 * server's id, where delta maps the lowest id the client may use onto the backend connection's
 * next one, and the server's credit grants reach the client unchanged. That needs the client's
 * window to be one range with no id used out of order, and the server to have granted at least
 * as many credits as the client holds. The two sockets stay in the kernel's sockhash from the
 * first lend on; lending arms the rules, taking back disarms them, reads what the kernel did (ids used, credits
 * passed on, messages and bytes each way), waits until every redirected byte is in its socket,
 * moves both sequences past what the kernel used, and answers the requests the kernel forwarded
 * whose responses come after: they reach Node as responses to ids its client never sent.
 */
import type { Socket } from 'node:net';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Tree } from '../tables/trees.js';
import { NtStatus } from '../wire/ntstatus.js';
import { SMB2_HEADER_SIZE, Smb2Command, Smb2Dialect, Smb2Flags } from '../wire/smb2/constants.js';
import { type FileId, fileIdKey, getFileId, REQUEST_FILE_ID_AT, setFileId } from '../wire/smb2/file-id.js';
import { Hdr, type Smb2Header } from '../wire/smb2/header.js';
import { NETBIOS_HEADER_SIZE } from '../wire/netbios.js';
import { decodeReadRequest, type ReadRequest } from '../wire/smb2/read.js';
import { ABI } from '../../offload/abi.js';
import { drained, sendCounts, unread, written, type JournalEntry, type RelayPrograms, type Released } from '../../offload/relay.js';
import type { BackendLink } from './backend.js';
import type { ConnectionState, DsrContext } from './context.js';
import type { CreditWindow } from './credits.js';
import { feedTail, pauseReading, resumeReading, type RawTail } from './transport.js';

/** What the kernel forwards: no command whose response carries a FileId (the kernel maps requests' only). */
const RELAYED = [Smb2Command.READ, Smb2Command.WRITE, Smb2Command.FLUSH, Smb2Command.QUERY_INFO] as const;
const CMD_MASK = RELAYED.reduce((m, c) => m | (1 << c), 0);
/** How long a lend lasts before Node stops reading its sockets (sink): past one small request's turn. */
const SINK_MS = 10;
/** Requests in flight one cut-through connection may have the kernel journal: an eighth of the small slots. */
const CUT_THROUGH_JOURNAL_MAX = ABI.DSR_RELAY_JOURNAL_SMALL_SLOTS / 8;
/** pauseReading's reason while the kernel has the connection. */
const SUNK = 'lent to the kernel';

/** The DSR's kernel relay and the counts of every connection's turns with it. */
export interface KernelRelay {
  programs: RelayPrograms;
  stats: KernelPathStats;
}

/** What the connection lends the kernel path. */
export interface KernelHost {
  readonly ctx: DsrContext;
  readonly state: ConnectionState;
  readonly socket: Socket;
  readonly credits: CreditWindow;
  readonly log: Logger;
  /**
   * No frame being handled, no failover or move under way, nothing in flight but requests the
   * server made async (their interim response went to the client) for commands outside `cmdMask`:
   * the verdict passes their responses, which Node answers after taking the connection back.
   */
  quiet(cmdMask: number): boolean;
  /** Bytes from the client, as if just read (the ones held while the kernel had the connection). */
  receive(chunk: Buffer): void;
  /** One message to the client as it is; `release` once its bytes are on the wire. */
  sendMessage(msg: Buffer, release?: () => void): void;
  /**
   * A request the kernel forwarded to a server that was lost before answering, as the client
   * sent it (its ids are the client's): queued as if it had just arrived, except that its
   * MessageId was consumed already.
   */
  adopt(msg: Buffer): void;
  /**
   * The rest of a READ response whose server (`lost`) went away in its middle, read from the
   * server the failover moves its tree to (ids are the client's). Rejects with why it cannot.
   */
  reread(lost: BackendLink, read: Reread): Promise<Buffer>;
  /** Node's own writes to the client wait (the tail of a server message still goes to it raw). */
  holdClientWrites(): void;
  releaseClientWrites(): void;
  close(reason: string): void;
}

/** File bytes to read again, for the client's session, tree and file. */
export interface Reread {
  sessionId: bigint;
  treeId: number;
  fileId: FileId;
  offset: bigint;
  length: number;
}

/** The connection while the kernel has it. */
interface Lent {
  relay: KernelRelay;
  link: BackendLink;
  /** Backend MessageId minus client MessageId. */
  delta: bigint;
  /** The backend connection's sequence when it was lent. */
  backendNext: bigint;
  backendCredits: number;
  /** written() of each socket when it was lent: the kernel's bytes come on top. */
  clientBase: bigint;
  backendBase: bigint;
  /** Backend ids to the client's, for responses that come after the take-back. */
  sessions: Map<bigint, bigint>;
  trees: Map<number, number>;
  /** Backend FileIds (fileIdKey) to the client's, for requests taken over from the kernel's journal. */
  files: Map<string, FileId>;
  shares: string[];
}

/** Kernel-path counts of every connection since the DSR started (`dsr offload show`). */
export interface KernelPathStats {
  /** Connections the kernel has now. */
  lent: number;
  entries: number;
  /** Take-backs by what caused them. */
  exits: Record<string, number>;
  /** Messages and bytes the kernel forwarded, each way. */
  requests: number;
  replies: number;
  requestBytes: number;
  replyBytes: number;
  /** Kernel-forwarded requests answered after a take-back, through Node. */
  answeredLate: number;
  /** Kernel-forwarded requests whose server was lost, sent again by Node from the kernel's journal. */
  replayed: number;
  /** Take-backs in the middle of a message, whose tail Node passed on raw. */
  tails: number;
  /** READ responses the kernel was in the middle of when their server was lost, finished with data read from the new server. */
  refilled: number;
  /** READ and WRITE requests Node forwarded itself (the kernel's share is requests / (requests + these)). */
  userReadWrite: number;
  /** Why a quiet connection stayed in user space, by reason (counted once per reason and connection). */
  refused: Record<string, number>;
  /** Lends that lasted long enough for Node to stop reading their sockets until relay_events woke it. */
  sunk: number;
}

export function newKernelPathStats(): KernelPathStats {
  return { lent: 0, entries: 0, exits: {}, requests: 0, replies: 0, requestBytes: 0, replyBytes: 0, answeredLate: 0, replayed: 0, tails: 0, refilled: 0, userReadWrite: 0, refused: {}, sunk: 0 };
}

export class KernelPath {
  private lent: Lent | undefined;
  private returning: Promise<void> | undefined;
  /** Client bytes read while the kernel had the connection or it was being taken back. */
  private held: Buffer[] = [];
  /**
   * Requests the kernel forwarded that were unanswered when it let go, by their server
   * MessageId: their responses come through Node, and the kernel's journal keeps their frames
   * until then, in case the server is lost first.
   */
  private readonly pending = new Map<bigint, JournalEntry>();
  private pendingFrom: Lent | undefined;
  /** The bytes a pending request's journal entry lacks (the kernel let go in its middle), from the raw tail. */
  private readonly tailOf = new Map<bigint, Buffer>();
  /** Runs once the client's raw tail is through (a replay waiting for the rest of a request). */
  private afterTail: (() => void) | undefined;
  private waitingDrain = false;
  /** The client signs or encrypts messages: lending again would only bounce them back. */
  private never: string | undefined;
  /**
   * The relay whose sockhash holds the connection's sockets, from the first lend until the
   * connection ends: taking a socket out while bytes the verdict passed are unread loses them and
   * wedges the socket (its copied_seq stays behind), so not even `relay off` takes them out.
   */
  private attachedTo: KernelRelay | undefined;
  private readonly refusedOnce = new Set<string>();
  /** Node does not read the lent connection's sockets (sink); relay_events wakes it. */
  private sunk = false;
  private sinkTimer: NodeJS.Timeout | undefined;

  constructor(private readonly host: KernelHost) {}

  /**
   * The tail of a client message the kernel was forwarding when it let go (cut-through): its
   * bytes go on to the server raw as they come, and the server connection sends nothing else
   * until they are through.
   */
  private clientTail: RawTail | undefined;

  /** Set while the kernel's replies are not all in the client socket: raw bytes for it wait here, in order. */
  private clientDrain: Buffer[] | undefined;

  /** Client bytes are the kernel path's: it has the connection, is giving it back, or a message tail is still coming. */
  get holding(): boolean {
    return this.lent !== undefined || this.returning !== undefined || this.clientTail !== undefined;
  }

  /** Client bytes Node read: kept while the kernel has the connection (which it takes back), else fed on. */
  hold(chunk: Buffer): void {
    if (this.lent === undefined && this.returning === undefined) {
      this.feedClient(chunk);
      return;
    }
    this.held.push(Buffer.from(chunk));
    void this.takeBack('client');
  }

  /** Client bytes after a take-back: a message tail first, raw to the server; then the usual path. */
  private feedClient(chunk: Buffer): void {
    if (this.clientTail) {
      const { rest, finished } = feedTail(this.clientTail, chunk);
      if (finished) this.clientTail = undefined;
      chunk = rest;
      if (chunk.length === 0) return;
    }
    this.host.receive(chunk);
  }

  /**
   * Lends the connection before a reply of `bytes` (NetBIOS header included) goes to the client,
   * then writes it (`write`): a client that pipelines its READs right behind a CREATE's answer
   * would otherwise beat the lend and keep the connection busy in Node. The reply must go into
   * the socket whole, at once: bytes Node writes later land behind what the kernel redirects there
   * meanwhile (a 1 MiB READ response written in parts had another one cut into its middle). So
   * it lends first only when the socket's send buffer has room for the reply; should the socket
   * still take part of it (memory pressure), the connection is taken back at once.
   */
  lendAround(bytes: number, write: () => void): void {
    const lent = this.lend(bytes);
    write();
    if (lent === 'no room') this.tryLend();
    if (lent !== 'lent' || this.host.socket.writableLength === 0) return;
    this.host.log.warn({ event: 'relay.partial_write', bytes, unwritten: this.host.socket.writableLength }, 'the client socket took part of a reply written after a lend: taken back');
    void this.takeBack('partial write');
  }

  /** Lends the connection to the kernel when it is quiet and the rules can carry it; true when it did. */
  tryLend(): boolean {
    return this.lend(0) === 'lent';
  }

  /**
   * tryLend, with `writing`: the bytes of a reply Node is about to write to the client
   * (lendAround), which count as written before anything the kernel redirects there. 'no room':
   * the socket's send buffer cannot take them at once, so the lend waits for the write.
   */
  private lend(writing: number): 'lent' | 'refused' | 'no room' {
    const relay = this.host.ctx.relay;
    if (!relay || this.holding || this.clientDrain || this.pending.size > 0) return 'refused';
    const h = this.host;
    if (!h.quiet(CMD_MASK)) return 'refused';
    const why = this.refusal();
    if (typeof why === 'string') {
      this.refuse(why);
      return 'refused';
    }
    const { link, trees } = why;
    if (this.attachedTo && this.attachedTo !== relay) {
      this.refuse('its sockets are in a relay turned off since');
      return 'refused';
    }
    const backend = link.client.tcp;
    // A socket closing under the reply that made the connection quiet has no fd left to lend.
    if (h.socket.destroyed || backend.destroyed) return 'refused';
    // The trees moved to another server connection while the old one is still open (a planned
    // move lets go of its handles on it): taking its socket out of the sockhash now would drop the
    // responses the verdict passed and Node has not read. Lent again once it is closed.
    const attached = relay.programs.attached(h.state.id);
    if (attached !== undefined && attached !== backend && !attached.destroyed) {
      this.refuse('the previous server connection is still open');
      return 'refused';
    }
    // Node's own writes still queued would land after the kernel's.
    if (h.socket.writableLength > 0 || backend.writableLength > 0) {
      if (!this.waitingDrain) {
        this.waitingDrain = true;
        const again = () => {
          this.waitingDrain = false;
          this.tryLend();
        };
        (h.socket.writableLength > 0 ? h.socket : backend).once('drain', again);
      }
      return 'refused';
    }
    const range = h.credits.range!;
    const seq = link.client.sequence;
    const delta = seq.nextMessageId - range.low;
    const sessions = new Map<bigint, bigint>();
    const treeIds = new Map<number, number>();
    const files: [FileId, FileId][] = [];
    const backendFiles = new Map<string, FileId>();
    for (const t of trees) {
      const route = h.state.routes.get(t)!;
      sessions.set(route.bs.session.sessionId, t.sessionId);
      treeIds.set(route.backendTreeId, t.treeId);
      for (const o of h.ctx.opens.ofTree(t.sessionId, t.treeId)) {
        if (o.kind !== 'file') continue;
        const backendFileId = (o.target as { backendFileId: FileId }).backendFileId;
        files.push([o.fileId, backendFileId]);
        backendFiles.set(fileIdKey(backendFileId), o.fileId);
      }
    }
    // Every command the kernel forwards names an open file: with none, the next request (a
    // CREATE) would only take the connection back, a lend and a take-back on every small op.
    // The CREATE's answer lends it.
    if (files.length === 0) {
      this.refuse('no open file');
      return 'refused';
    }
    // The client's next request is in its socket, passed by the verdict and not yet read (it came
    // while the reply that made the connection quiet was worked out): the lend would fail its gate
    // ('unread') and come back with nothing forwarded. Node reads it and tries again after.
    if ((unread(h.socket) ?? 0) > 0) return 'refused';
    // A whole message must fit a socket's receive buffer (the strparser); the kernel doubles this.
    const buffers = 2 * Math.max(h.state.maxReadSize, h.state.maxWriteSize, h.state.maxTransactSize) + 64 * 1024;
    const sent = sendCounts(h.socket);
    // The reply about to be written must fit the send buffer (attach makes it 2 x buffers) at
    // once (lendAround); else the lend waits for tryLend after the write.
    if (writing > 0 && sent.queued + BigInt(writing) > BigInt(buffers)) return 'no room';
    const lent: Lent = {
      relay,
      link,
      delta,
      backendNext: seq.nextMessageId,
      backendCredits: seq.credits,
      clientBase: sent.written + BigInt(writing),
      backendBase: written(backend),
      sessions,
      trees: treeIds,
      files: backendFiles,
      shares: [...new Set(trees.map((t) => t.share))],
    };
    const { programs } = relay;
    const id = h.state.id;
    try {
      // The sockets go in once and stay (RelayPrograms.attach); a new server connection (the trees
      // moved) takes the old backend socket's place, the client's staying in: taking it out would
      // drop bytes the verdict passed and Node has not read (a failover lost client bytes so).
      if (attached === undefined) {
        programs.attach(id, h.socket, backend, buffers);
        this.attachedTo = relay;
      } else if (attached !== backend) programs.replaceBackend(id, backend, buffers);
      programs.arm(
        id,
        {
          msgIdDelta: delta,
          cmdMask: CMD_MASK,
          rewrite: true,
          files: true,
          journal: true,
          msgIdNext: range.low,
          maxRead: h.state.maxReadSize,
          maxWrite: h.state.maxWriteSize,
          maxTransact: h.state.maxTransactSize,
          clientBase: lent.clientBase,
          // With the strparser a whole 1 MiB response passed to user space can stall the socket
          // (README: driving the relay): there only the journal's cap on requests in flight
          // (DSR_RELAY_JOURNAL_PER_CONN) bounds what waits for a client. Cut-through bounds it in
          // bytes, and the cap is only a fair share of the journal's small slots.
          ...(programs.framing === 'cut-through' && { maxQueued: h.ctx.config.relay.maxQueuedBytes, journalMax: CUT_THROUGH_JOURNAL_MAX }),
        },
        { sessions: [...sessions].map(([b, c]) => [c, b] as const), trees: [...treeIds].map(([b, c]) => [c, b] as const), files },
      );
    } catch (e) {
      this.refuse(`the relay refused the rules: ${errorMessage(e)}`);
      return 'refused';
    }
    this.lent = lent;
    link.client.hold(() => void this.takeBack('server'));
    relay.stats.lent++;
    relay.stats.entries++;
    h.log.debug({ event: 'relay.lent', server: link.server.name, trees: trees.length, files: files.length, delta: delta.toString() }, 'connection lent to the kernel relay');
    this.sinkLater(lent);
    return 'lent';
  }

  /**
   * A lend that lasts (a transfer, not one small request) stops Node reading its sockets: the
   * kernel wakes a verdict socket's reader after every batch of skbs it forwards, and those
   * wake-ups were most of Node's CPU under the relay. relay_events wakes it again (surface) when
   * the verdict sends bytes to user space or sees a FIN, or a socket is no longer established.
   */
  private sinkLater(lent: Lent): void {
    clearTimeout(this.sinkTimer);
    this.sinkTimer = setTimeout(() => this.sink(lent), SINK_MS);
  }

  private sink(lent: Lent): void {
    this.sinkTimer = undefined;
    if (this.lent !== lent || this.returning || this.sunk) return;
    this.sunk = true;
    lent.relay.stats.sunk++;
    pauseReading(this.host.socket, SUNK);
    pauseReading(lent.link.client.tcp, SUNK);
    // Bytes the verdict passed before this, unread: watch wakes the connection at once.
    lent.relay.programs.watch(this.host.state.id, () => {
      this.surface(lent);
      // Woken with nothing to take back (a record before this lend): sink again later.
      if (this.lent === lent && !this.returning) this.sinkLater(lent);
    });
  }

  private surface(lent: Lent): void {
    if (!this.sunk) return;
    this.sunk = false;
    lent.relay.programs.unwatch(this.host.state.id);
    resumeReading(this.host.socket, SUNK);
    resumeReading(lent.link.client.tcp, SUNK);
  }

  /** Why the connection cannot be lent now, or the link and trees it would be lent with. */
  private refusal(): string | { link: BackendLink; trees: Tree[] } {
    const { ctx, state, credits } = this.host;
    if (this.never) return this.never;
    if (state.dialect < Smb2Dialect.SMB210) return 'dialect 2.0.2';
    const sessions = ctx.sessions.byConnection(state.id);
    if (sessions.length === 0 || state.authInProgress.size > 0) return 'no session';
    if (sessions.some((s) => s.state !== 'valid' || s.signingRequired || s.encryptData)) return 'a session signs or encrypts';
    const trees = sessions.flatMap((s) => ctx.trees.ofSession(s.sessionId)).filter((t) => state.routes.has(t));
    if (trees.length === 0) return 'no redirected tree';
    // The kernel's tree and FileId maps are per connection, not per session: with two sessions a
    // request of one could name the other's tree or file and reach the server.
    if (new Set(trees.map((t) => t.sessionId)).size > 1) return 'trees of more than one session';
    const links = new Set(trees.map((t) => state.routes.get(t)!.link));
    if (links.size > 1) return 'trees on more than one server';
    const link = [...links][0]!;
    if (link.client.isClosed || !link.client.quiet) return 'server connection busy';
    if (trees.some((t) => state.routes.get(t)!.bs.session.signs)) return 'the server signs';
    const range = credits.range;
    if (!range) return 'client MessageIds used out of order';
    if (link.client.sequence.credits < Number(range.next - range.low)) return 'the server granted fewer credits than the client holds';
    return { link, trees };
  }

  private refuse(why: string): void {
    if (this.refusedOnce.has(why)) return;
    this.refusedOnce.add(why);
    const stats = this.host.ctx.relay?.stats;
    if (stats) stats.refused[why] = (stats.refused[why] ?? 0) + 1;
    this.host.log.debug({ event: 'relay.refused', why }, `kept in user space: ${why}`);
  }

  /**
   * Takes the connection back from the kernel (idempotent; resolves once Node has it again and
   * has gone on with what it held). Every teardown of the connection's trees or server links
   * waits for this first.
   */
  takeBack(why: string): Promise<void> {
    if (this.returning) return this.returning;
    if (!this.lent) return Promise.resolve();
    const lent = this.lent;
    clearTimeout(this.sinkTimer);
    this.sinkTimer = undefined;
    this.surface(lent);
    this.returning = this.doTakeBack(lent, why).finally(() => {
      this.returning = undefined;
      const held = this.held.splice(0);
      for (const chunk of held) this.feedClient(chunk);
      this.tryLend();
    });
    return this.returning;
  }

  private async doTakeBack(lent: Lent, why: string): Promise<void> {
    const h = this.host;
    const { stats } = lent.relay;
    this.lent = undefined;
    stats.lent--;
    stats.exits[why] = (stats.exits[why] ?? 0) + 1;
    let r: Released;
    try {
      r = lent.relay.programs.disarm(h.state.id);
    } catch (e) {
      h.close(`cannot take the connection back from the kernel relay: ${errorMessage(e)}`);
      return;
    }
    const { request, reply } = r;
    stats.requests += request.msgs;
    stats.replies += reply.msgs;
    stats.requestBytes += request.bytes;
    stats.replyBytes += reply.bytes;
    // The resource manager's load figures: what the kernel moved, spread over the lent shares.
    for (const share of lent.shares) {
      h.ctx.load.record(share, request.bytes / lent.shares.length, request.msgs / lent.shares.length);
      h.ctx.load.record(share, reply.bytes / lent.shares.length, 0);
    }
    const client = lent.link.client;
    const backendGone = client.isClosed;
    // Node's writes to the client wait until the kernel's replies are in its socket, which takes
    // as long as the client takes to read them: the take-back itself (a move, a failover) does not.
    this.clientDrain = [];
    h.holdClientWrites();
    void drained(h.socket, lent.clientBase, reply.bytes)
      .catch(() => false)
      .then((ok) => {
        const raw = this.clientDrain ?? [];
        this.clientDrain = undefined;
        if (!ok) {
          h.close(`the kernel relay's bytes did not reach the client socket`);
          return;
        }
        for (const bytes of raw) h.socket.write(bytes);
        h.releaseClientWrites();
        this.tryLend();
      });
    // A server lost while its socket still waits for the kernel's bytes (it stopped reading, then
    // died) is a server lost: the requests are in the journal and go again to the share's new
    // server. Only a live server that never takes them closes the client.
    if (!backendGone && !(await drained(client.tcp, lent.backendBase, request.bytes)) && !client.isClosed) {
      h.close(`the kernel relay's bytes did not reach the server socket`);
      return;
    }
    const late = request.msgs - (reply.msgs - reply.interims);
    // The journal holds every request the kernel forwarded and saw no final response to, and
    // the ones it rewrote in bytes it then passed, for Node to send on raw: those are in none of
    // its counts, so their ids are added here.
    let entries: JournalEntry[] = [];
    let end = request.msgIdEnd;
    let charge = request.charge;
    // The final response the kernel was in the middle of: its request's entry stays until the
    // response's last byte, and says what to read elsewhere if the server is lost before.
    const tail = reply.skip > 0 ? reply.tail : undefined;
    let tailEntry: JournalEntry | undefined;
    if (late > 0 || request.skip > 0 || tail) {
      try {
        entries = lent.relay.programs.journal(h.state.id);
        tailEntry = tail && entries.find((e) => e.messageId === tail.messageId);
        entries = entries.filter((e) => e !== tailEntry);
        for (const e of entries) {
          const id = e.messageId - lent.delta;
          if (request.charge > 0 && id < request.msgIdEnd) continue;
          const n = Math.max(lent.relay.programs.journalFrame(e).readUInt16LE(NETBIOS_HEADER_SIZE + Hdr.CreditCharge), 1);
          charge += n;
          if (id + BigInt(n) > end) end = id + BigInt(n);
        }
      } catch (e) {
        h.close(`cannot read the kernel relay's journal: ${errorMessage(e)}`);
        return;
      }
    }
    const inOrder = h.credits.resync(end, charge, reply.credits);
    const used = charge > 0 ? end - (lent.backendNext - lent.delta) : 0n;
    const next = lent.backendNext + used;
    const sticky = request.sticky ?? reply.sticky;
    if (sticky === 'signed' || sticky === 'encrypted') this.never = `the client sends ${sticky} messages`;
    // Only when debug is on: a take-back is on the small-op path (every CREATE or CLOSE).
    if (h.log.isLevelEnabled('debug')) {
      h.log.debug(
        {
          event: 'relay.taken_back',
          why,
          requests: request.msgs,
          replies: reply.msgs,
          late,
          journaled: entries.length,
          partial: entries.filter((e) => e.copied < e.length).map((e) => e.length - e.copied),
          tails: [request.skip, reply.skip],
          replyTail: tail && { messageId: tail.messageId.toString(), journaled: tailEntry !== undefined, dataOffset: tail.dataOffset, dataLength: tail.dataLength },
          bytes: [request.bytes, reply.bytes],
          frameLeft: [request.frameLeft, reply.frameLeft],
          carried: request.carry.length,
          inOrder,
          sticky,
        },
        'connection taken back from the kernel relay',
      );
    }
    if (entries.length < late) {
      h.close(`the kernel relay's journal has ${entries.length} of the ${late} requests it forwarded unanswered`);
      return;
    }
    // Cut-through may let go in the middle of a message, or with a header's first bytes in its
    // carry: the rest of the message goes on raw, and a compound's later member cannot be picked
    // up alone (a strparser always lets go between messages).
    if ((request.skip > 0 && !request.atFrameStart && request.frameLeft > request.skip) || (reply.skip > 0 && !reply.atFrameStart && reply.frameLeft > reply.skip)) {
      h.close('the kernel relay let go inside a compound');
      return;
    }
    // A header's first bytes the kernel held back come before anything Node has read since; but
    // with a tail, the skb they were cut from passed (its redirect failed: no peer), and they
    // follow that skb's bytes, the tail.
    const carry = Buffer.from(request.carry);
    if (carry.length > 0 && request.skip === 0) this.held.unshift(carry);
    if (request.skip > 0) {
      client.holdSends();
      const to = client.tcp;
      // The request the kernel was journaling when it let go: the tail's last bytes are the ones
      // its journal entry lacks, kept until its response comes, in case its server is lost first.
      const partial = entries.find((e) => e.copied < e.length);
      const lacking = partial ? partial.length - partial.copied : 0;
      let journaled = request.skip - lacking;
      const rest: Buffer[] = [];
      this.clientTail = {
        left: request.skip,
        to: (bytes) => {
          if (partial && journaled >= 0) {
            const skipped = Math.min(journaled, bytes.length);
            journaled -= skipped;
            if (skipped < bytes.length) rest.push(bytes.subarray(skipped));
          }
          if (!to.destroyed) to.write(bytes);
        },
        done: () => {
          client.releaseSends();
          if (partial && journaled >= 0) this.tailOf.set(partial.messageId, Buffer.concat(rest));
          if (carry.length > 0) this.host.receive(carry);
          const then = this.afterTail;
          this.afterTail = undefined;
          then?.();
        },
      };
      lent.relay.stats.tails++;
    }
    let replyTail = reply.skip > 0;
    let tailLeft = reply.skip;
    const toClient = (bytes: Buffer) => (this.clientDrain ? this.clientDrain.push(bytes) : h.socket.write(bytes));
    const tailDone = () => {
      if (!replyTail) return;
      replyTail = false;
      if (tailEntry) this.freeJournal(lent, tailEntry.messageId);
      h.releaseClientWrites();
    };
    if (replyTail) {
      h.holdClientWrites();
      lent.relay.stats.tails++;
      // A server gone before the tail is through leaves the client with half a message: a READ
      // response's rest is read from the share's new server, anything else closes the client.
      void client.closed.then(() => {
        if (!replyTail) return;
        const lost = `${lent.link.server.name} went away in the middle of a message`;
        const rest = tailEntry && tail ? this.restOfRead(lent, tailEntry, tail, reply.frameLeft, tailLeft) : 'no journal entry';
        if (typeof rest === 'string') {
          h.close(`${lost} (${rest})`);
          return;
        }
        h.reread(lent.link, rest).then(
          (data) => {
            if (!replyTail) return;
            toClient(data);
            lent.relay.stats.refilled++;
            h.log.info({ event: 'relay.refilled', server: lent.link.server.name, bytes: data.length }, `the last ${data.length} bytes of a READ response were read again after ${lent.link.server.name} was lost`);
            tailDone();
          },
          (e: unknown) => h.close(`${lost}, and its rest could not be read again: ${errorMessage(e)}`),
        );
      });
    }
    if (entries.length > 0) {
      for (const e of entries) this.pending.set(e.messageId, e);
      this.pendingFrom = lent;
      client.onStray = (msg, hdr, release) => this.answerLate(lent, msg, hdr, release);
      if (backendGone) this.replay(lent);
      else void client.closed.then(() => this.replay(lent));
    }
    client.takeBack(
      { nextMessageId: next, credits: lent.backendCredits + reply.credits - Number(used) },
      {
        carry: reply.carry,
        raw: reply.skip,
        to: (bytes) => {
          tailLeft -= bytes.length;
          toClient(bytes);
        },
        done: tailDone,
      },
    );
  }

  /**
   * What a READ response's last `left` bytes hold, from its request's journal entry (ids made
   * the client's): the file range to read again, or why there is none. The kernel read the
   * response's DataOffset and DataLength; the data must end its frame (`frameLen` bytes).
   */
  private restOfRead(lent: Lent, entry: JournalEntry, tail: { dataOffset: number; dataLength: number }, frameLen: number, left: number): Reread | string {
    if (tail.dataOffset === 0) return 'not a READ response';
    if (tail.dataOffset + tail.dataLength !== frameLen || left > tail.dataLength) return 'the rest is not all READ data';
    if (entry.copied < entry.length) return 'its request is not whole in the journal';
    let msg: Buffer;
    try {
      msg = Buffer.from(lent.relay.programs.journalFrame(entry).subarray(NETBIOS_HEADER_SIZE));
    } catch (e) {
      return errorMessage(e);
    }
    if (msg.readUInt16LE(Hdr.Command) !== Smb2Command.READ) return 'its request is not a READ';
    this.toClient(lent, msg);
    let req: ReadRequest;
    try {
      req = decodeReadRequest(msg);
    } catch (e) {
      return errorMessage(e);
    }
    if (tail.dataLength > req.Length) return 'more data than was asked for';
    return {
      sessionId: msg.readBigUInt64LE(Hdr.SessionId),
      treeId: msg.readUInt32LE(Hdr.TreeId),
      fileId: req.FileId,
      offset: req.Offset + BigInt(tail.dataLength - left),
      length: left,
    };
  }

  /** A response to a request the kernel forwarded, arriving after the take-back: sent on as the kernel would have. */
  private answerLate(lent: Lent, msg: Buffer, hdr: Smb2Header, release?: () => void): void {
    const entry = this.pendingFrom === lent ? this.pending.get(hdr.MessageId) : undefined;
    if (!entry) {
      this.host.log.debug({ event: 'relay.stray_dropped', messageId: hdr.MessageId.toString() }, 'response to no request');
      release?.();
      return;
    }
    const interim = hdr.Status === NtStatus.STATUS_PENDING && (hdr.Flags & Smb2Flags.ASYNC_COMMAND) !== 0;
    if (!interim) {
      this.pending.delete(hdr.MessageId);
      this.tailOf.delete(hdr.MessageId);
      this.freeJournal(lent, hdr.MessageId);
    }
    this.toClient(lent, msg);
    this.host.credits.add(hdr.Credit);
    this.host.sendMessage(msg, release);
    if (interim) return;
    lent.relay.stats.answeredLate++;
    if (this.pending.size === 0) {
      this.endPending(lent);
      this.tryLend();
    }
  }

  /**
   * The server was lost before answering requests the kernel forwarded: Node sends them again
   * from the kernel's journal, as if the client had just sent them, and the failover replays
   * them on the share's new server like its own (connection.ts `replay`).
   */
  private replay(lent: Lent): void {
    if (this.pendingFrom !== lent || this.pending.size === 0) return;
    const entries = [...this.pending.values()].sort((a, b) => (a.messageId < b.messageId ? -1 : 1));
    // A request the kernel let go of in its middle is whole once the client's tail is through.
    if (this.clientTail && entries.some((e) => e.copied < e.length && !this.tailOf.has(e.messageId))) {
      this.afterTail = () => this.replay(lent);
      return;
    }
    const tails = new Map(this.tailOf);
    this.endPending(lent);
    const { programs, stats } = lent.relay;
    const msgs: Buffer[] = [];
    let partial = 0;
    for (const e of entries) {
      try {
        const frame = programs.journalFrame(e);
        const whole = e.copied < e.length ? Buffer.concat([frame, tails.get(e.messageId) ?? Buffer.alloc(0)]) : frame;
        if (whole.length === e.length) msgs.push(whole.subarray(NETBIOS_HEADER_SIZE));
        else partial++;
      } catch (err) {
        this.host.close(`cannot read the kernel relay's journal: ${errorMessage(err)}`);
        return;
      } finally {
        this.freeJournal(lent, e.messageId);
      }
    }
    if (partial > 0) {
      this.host.close(`${partial} request(s) the kernel was forwarding were lost with ${lent.link.server.name}, not whole in its journal`);
      return;
    }
    for (const m of msgs) {
      this.toClient(lent, m);
      this.host.adopt(m);
    }
    stats.replayed += msgs.length;
    this.host.log.info({ event: 'relay.replayed', server: lent.link.server.name, requests: msgs.length }, `${msgs.length} request(s) the kernel forwarded to ${lent.link.server.name} go again through Node`);
  }

  private endPending(lent: Lent): void {
    this.pending.clear();
    this.tailOf.clear();
    this.pendingFrom = undefined;
    if (lent.link.client.onStray) lent.link.client.onStray = undefined;
  }

  private freeJournal(lent: Lent, messageId: bigint): void {
    try {
      lent.relay.programs.journalFree(this.host.state.id, messageId);
    } catch (e) {
      this.host.log.warn({ event: 'relay.journal_error', err: errorMessage(e) }, 'cannot free a kernel relay journal entry');
    }
  }

  /** A message of the kernel's, with the server's ids, as the client knows it (and a request's FileId). */
  private toClient(lent: Lent, msg: Buffer): void {
    const flags = msg.readUInt32LE(Hdr.Flags);
    msg.writeBigUInt64LE(msg.readBigUInt64LE(Hdr.MessageId) - lent.delta, Hdr.MessageId);
    const sid = msg.readBigUInt64LE(Hdr.SessionId);
    msg.writeBigUInt64LE(lent.sessions.get(sid) ?? sid, Hdr.SessionId);
    if (!(flags & Smb2Flags.ASYNC_COMMAND)) {
      const tid = msg.readUInt32LE(Hdr.TreeId);
      msg.writeUInt32LE(lent.trees.get(tid) ?? tid, Hdr.TreeId);
    }
    const at = flags & Smb2Flags.SERVER_TO_REDIR ? undefined : REQUEST_FILE_ID_AT[msg.readUInt16LE(Hdr.Command)];
    if (at === undefined) return;
    const fileId = lent.files.get(fileIdKey(getFileId(msg, SMB2_HEADER_SIZE + at)));
    if (fileId) setFileId(msg, SMB2_HEADER_SIZE + at, fileId);
  }

  /** Requests the kernel forwarded whose responses are still to come through Node. */
  get outstanding(): number {
    return this.pending.size;
  }

  /** The connection is closing: the kernel lets go of its sockets at once (nothing to deliver). */
  drop(): void {
    this.attachedTo?.programs.release(this.host.state.id);
    this.attachedTo = undefined;
    this.pending.clear();
    this.tailOf.clear();
    this.afterTail = undefined;
    this.pendingFrom = undefined;
    const lent = this.lent;
    if (!lent) return;
    this.lent = undefined;
    lent.relay.stats.lent--;
    lent.relay.stats.exits.closed = (lent.relay.stats.exits.closed ?? 0) + 1;
  }
}
