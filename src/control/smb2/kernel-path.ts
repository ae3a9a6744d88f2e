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
import { Smb2Command, Smb2Dialect, Smb2Flags } from '../wire/smb2/constants.js';
import type { FileId } from '../wire/smb2/file-id.js';
import { Hdr, type Smb2Header } from '../wire/smb2/header.js';
import { drained, written, type RelayPrograms, type Released } from '../../offload/relay.js';
import type { BackendLink } from './backend.js';
import type { ConnectionState, DsrContext } from './context.js';
import type { CreditWindow } from './credits.js';
import { feedTail, type RawTail } from './transport.js';

/** What the kernel forwards: no command whose response carries a FileId (the kernel maps requests' only). */
const RELAYED = [Smb2Command.READ, Smb2Command.WRITE, Smb2Command.FLUSH, Smb2Command.QUERY_INFO] as const;
const CMD_MASK = RELAYED.reduce((m, c) => m | (1 << c), 0);

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
  /** No frame being handled, nothing in flight, no failover or move under way. */
  quiet(): boolean;
  /** Bytes from the client, as if just read (the ones held while the kernel had the connection). */
  receive(chunk: Buffer): void;
  /** One message to the client as it is; `release` once its bytes are on the wire. */
  sendMessage(msg: Buffer, release?: () => void): void;
  /** Node's own writes to the client wait (the tail of a server message still goes to it raw). */
  holdClientWrites(): void;
  releaseClientWrites(): void;
  close(reason: string): void;
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
  /** Take-backs in the middle of a message, whose tail Node passed on raw. */
  tails: number;
  /** READ and WRITE requests Node forwarded itself (the kernel's share is requests / (requests + these)). */
  userReadWrite: number;
  /** Why a quiet connection stayed in user space, by reason (counted once per reason and connection). */
  refused: Record<string, number>;
}

export function newKernelPathStats(): KernelPathStats {
  return { lent: 0, entries: 0, exits: {}, requests: 0, replies: 0, requestBytes: 0, replyBytes: 0, answeredLate: 0, tails: 0, userReadWrite: 0, refused: {} };
}

export class KernelPath {
  private lent: Lent | undefined;
  private returning: Promise<void> | undefined;
  /** Client bytes read while the kernel had the connection or it was being taken back. */
  private held: Buffer[] = [];
  /** Kernel-forwarded requests still to be answered through Node, on that link. */
  private late = 0;
  private waitingDrain = false;
  /** The client signs or encrypts messages: lending again would only bounce them back. */
  private never: string | undefined;
  private readonly refusedOnce = new Set<string>();

  constructor(private readonly host: KernelHost) {}

  /**
   * The tail of a client message the kernel was forwarding when it let go (cut-through): its
   * bytes go on to the server raw as they come, and the server connection sends nothing else
   * until they are through.
   */
  private clientTail: RawTail | undefined;

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
   * Lends the connection to the kernel when it is quiet and the rules can carry it. `writing`:
   * the bytes of a reply Node is about to write to the client, which count as written before
   * anything the kernel redirects there.
   */
  tryLend(writing = 0): void {
    const relay = this.host.ctx.relay;
    if (!relay || this.holding || this.late > 0) return;
    const h = this.host;
    if (!h.quiet()) return;
    const why = this.refusal();
    if (typeof why === 'string') {
      this.refuse(why);
      return;
    }
    const { link, trees } = why;
    const backend = link.client.tcp;
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
      return;
    }
    const range = h.credits.range!;
    const seq = link.client.sequence;
    const delta = seq.nextMessageId - range.low;
    const sessions = new Map<bigint, bigint>();
    const treeIds = new Map<number, number>();
    const files: [FileId, FileId][] = [];
    for (const t of trees) {
      const route = h.state.routes.get(t)!;
      sessions.set(route.bs.session.sessionId, t.sessionId);
      treeIds.set(route.backendTreeId, t.treeId);
      for (const o of h.ctx.opens.ofTree(t.sessionId, t.treeId)) {
        if (o.kind === 'file') files.push([o.fileId, (o.target as { backendFileId: FileId }).backendFileId]);
      }
    }
    const lent: Lent = {
      relay,
      link,
      delta,
      backendNext: seq.nextMessageId,
      backendCredits: seq.credits,
      clientBase: written(h.socket) + BigInt(writing),
      backendBase: written(backend),
      sessions,
      trees: treeIds,
      shares: [...new Set(trees.map((t) => t.share))],
    };
    // A whole message must fit a socket's receive buffer (the strparser); the kernel doubles this.
    const buffers = 2 * Math.max(h.state.maxReadSize, h.state.maxWriteSize, h.state.maxTransactSize) + 64 * 1024;
    const { programs } = relay;
    const id = h.state.id;
    try {
      // The sockets go in once and stay (RelayPrograms.attach); only a new server connection (the
      // trees moved) takes the old pair out.
      const attached = programs.attached(id);
      if (attached !== undefined && attached !== backend) programs.release(id);
      if (programs.attached(id) === undefined) programs.attach(id, h.socket, backend, buffers);
      programs.arm(
        id,
        { msgIdDelta: delta, cmdMask: CMD_MASK, rewrite: true, files: true, maxRead: h.state.maxReadSize, maxWrite: h.state.maxWriteSize, maxTransact: h.state.maxTransactSize },
        { sessions: [...sessions].map(([b, c]) => [c, b] as const), trees: [...treeIds].map(([b, c]) => [c, b] as const), files },
      );
    } catch (e) {
      this.refuse(`the relay refused the rules: ${errorMessage(e)}`);
      return;
    }
    this.lent = lent;
    link.client.hold(() => void this.takeBack('server'));
    relay.stats.lent++;
    relay.stats.entries++;
    h.log.debug({ event: 'relay.lent', server: link.server.name, trees: trees.length, files: files.length, delta: delta.toString() }, 'connection lent to the kernel relay');
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
    const inClient = await drained(h.socket, lent.clientBase, reply.bytes);
    const inBackend = backendGone || (await drained(client.tcp, lent.backendBase, request.bytes));
    if (!inClient || !inBackend) {
      h.close(`the kernel relay's bytes did not reach the ${inClient ? 'server' : 'client'} socket`);
      return;
    }
    const inOrder = h.credits.resync(request.msgIdEnd, request.charge, reply.credits);
    const used = request.charge > 0 ? request.msgIdEnd - (lent.backendNext - lent.delta) : 0n;
    const next = lent.backendNext + used;
    const late = request.msgs - (reply.msgs - reply.interims);
    const sticky = request.sticky ?? reply.sticky;
    if (sticky === 'signed' || sticky === 'encrypted') this.never = `the client sends ${sticky} messages`;
    h.log.debug(
      { event: 'relay.taken_back', why, requests: request.msgs, replies: reply.msgs, late, inOrder, sticky },
      'connection taken back from the kernel relay',
    );
    if (late > 0 && backendGone) {
      // Their bytes went with the server connection; Node never saw them to send them again.
      h.close(`${late} request(s) the kernel forwarded were lost with ${lent.link.server.name}`);
      return;
    }
    // Cut-through may let go in the middle of a message, or with a header's first bytes in its
    // carry: the rest of the message goes on raw, and a compound's later member cannot be picked
    // up alone (a strparser always lets go between messages).
    if ((request.skip > 0 && !request.atFrameStart && request.frameLeft > request.skip) || (reply.skip > 0 && !reply.atFrameStart && reply.frameLeft > reply.skip)) {
      h.close('the kernel relay let go inside a compound');
      return;
    }
    // A header's first bytes the kernel held back come before anything Node has read since.
    if (request.carry.length > 0) this.held.unshift(Buffer.from(request.carry));
    if (request.skip > 0) {
      client.holdSends();
      const to = client.tcp;
      this.clientTail = { left: request.skip, to: (bytes) => to.write(bytes), done: () => client.releaseSends() };
      lent.relay.stats.tails++;
    }
    let replyTail = reply.skip > 0;
    if (replyTail) {
      h.holdClientWrites();
      lent.relay.stats.tails++;
      // A server gone before the tail is through leaves the client with half a message.
      void client.closed.then(() => {
        if (replyTail) h.close(`${lent.link.server.name} went away in the middle of a message`);
      });
    }
    this.late = late;
    if (late > 0) client.onStray = (msg, hdr, release) => this.answerLate(lent, next, msg, hdr, release);
    client.takeBack(
      { nextMessageId: next, credits: lent.backendCredits + reply.credits - Number(used) },
      {
        carry: reply.carry,
        raw: reply.skip,
        to: (bytes) => h.socket.write(bytes),
        done: () => {
          if (!replyTail) return;
          replyTail = false;
          h.releaseClientWrites();
        },
      },
    );
  }

  /** A response to a request the kernel forwarded, arriving after the take-back: sent on as the kernel would have. */
  private answerLate(lent: Lent, end: bigint, msg: Buffer, hdr: Smb2Header, release?: () => void): void {
    if (hdr.MessageId < lent.backendNext || hdr.MessageId >= end || this.late === 0) {
      this.host.log.debug({ event: 'relay.stray_dropped', messageId: hdr.MessageId.toString() }, 'response to no request');
      release?.();
      return;
    }
    const interim = hdr.Status === NtStatus.STATUS_PENDING && (hdr.Flags & Smb2Flags.ASYNC_COMMAND) !== 0;
    msg.writeBigUInt64LE(hdr.MessageId - lent.delta, Hdr.MessageId);
    msg.writeBigUInt64LE(lent.sessions.get(hdr.SessionId) ?? hdr.SessionId, Hdr.SessionId);
    if (!(hdr.Flags & Smb2Flags.ASYNC_COMMAND)) msg.writeUInt32LE(lent.trees.get(hdr.TreeId) ?? hdr.TreeId, Hdr.TreeId);
    this.host.credits.add(hdr.Credit);
    this.host.sendMessage(msg, release);
    if (interim) return;
    lent.relay.stats.answeredLate++;
    if (--this.late === 0) {
      lent.link.client.onStray = undefined;
      this.tryLend();
    }
  }

  /** The connection is closing: the kernel lets go of its sockets at once (nothing to deliver). */
  drop(): void {
    this.host.ctx.relay?.programs.release(this.host.state.id);
    const lent = this.lent;
    if (!lent) return;
    this.lent = undefined;
    lent.relay.stats.lent--;
    lent.relay.stats.exits.closed = (lent.relay.stats.exits.closed ?? 0) + 1;
  }
}
