/**
 * One client TCP connection: framing, the per-message checks of MS-SMB2 3.3.5.2 in their
 * order (sequence window, session, signature, tree, body), dispatch from the command table,
 * and the reply path (credits, compound joining, signing). Handlers never see a message that
 * failed a check, and a check that fails either answers with an NTSTATUS or closes the
 * connection with one log line.
 */
import { createConnection, type Socket } from 'node:net';
import { AuthError, DsrError, ErrorCode, errorMessage, ProtocolError, WireError } from '../errors.js';
import type { Logger } from '../log.js';
import type { FileOpen } from '../tables/opens.js';
import type { Session } from '../tables/sessions.js';
import type { Tree } from '../tables/trees.js';
import { FrameDecoder, NETBIOS_HEADER_SIZE } from '../wire/netbios.js';
import { NtStatus, ntStatusName } from '../wire/ntstatus.js';
import { joinCompound, splitCompound } from '../wire/smb2/compound.js';
import {
  SMB1_PROTOCOL_ID,
  SMB2_COMPRESSION_PROTOCOL_ID,
  SessionSetupRequestFlags,
  SMB2_HEADER_SIZE,
  SMB2_TRANSFORM_PROTOCOL_ID,
  Smb2Command,
  smb2CommandName,
  Smb2Flags,
} from '../wire/smb2/constants.js';
import type { FileId } from '../wire/smb2/file-id.js';
import { decodeHeader, Hdr, setCredit, type Smb2Header } from '../wire/smb2/header.js';
import { encodeMessage } from '../wire/smb2/message.js';
import { decodeReadResponse, encodeReadRequest } from '../wire/smb2/read.js';
import { BackendLink, BackendPool } from './backend.js';
import type { InFlight, Outbound } from './client.js';
import type { ConnectionState, DsrContext, Smb2Reply, Smb2Request } from './context.js';
import { CreditWindow } from './credits.js';
import { breakToClient, type ChainState, dropTrees, type Forward, type Route } from './redirect.js';
import { type FailoverTally, type Moved, type TreeMove, leaveOld, moveTree, moveTrees, replayable, rerouteForReplay } from './failover.js';
import { COMMANDS, creditsFor, errorReply } from './dispatch.js';
import { answerSmb1Negotiate } from './negotiate.js';
import { destroySession } from './session-setup.js';
import { signReply, verifyRequest } from './signing.js';
import { decryptMessage, encryptMessage, transformSessionId } from '../auth/smb2-encryption.js';
import { framePool } from './frame-pool.js';
import { frameBytes, pauseReading, resumeReading, sendFrame } from './transport.js';
import { KernelPath, type Reread } from './kernel-path.js';

/** Thrown inside the pipeline when the connection must be closed. */
class Disconnect extends Error {}

/** A reply on its way out, before compound joining and signing. */
interface Outgoing {
  msg: Buffer;
  signWith: Session | undefined;
  onWire: ((msg: Buffer) => void) | undefined;
  after: (() => void) | undefined;
  /** Gives the bytes of `msg` back (a server's pooled frame) once they are on the wire or copied. */
  release?: () => void;
}

/** What one message of a frame left for the next one (MS-SMB2 3.3.5.2.7.2). */
interface Related {
  session?: Session;
  tree?: Tree;
  fileId?: FileId;
  /** Set when the message went to a server: its status is not known yet. */
  forward?: Forward;
  status: number;
}

/** A client request a server is working on. */
interface Forwarded {
  readonly req: Smb2Header;
  readonly session: Session;
  readonly tree: Tree | undefined;
  readonly related: boolean;
  readonly forward: Forward;
  handle: InFlight | undefined;
  /** The DSR's AsyncId once the server went async (MS-SMB2 3.3.4.2). */
  asyncId: bigint | undefined;
  /** Settles once the frame holding this request's first response is sent. */
  firstSent: Promise<void> | undefined;
  /** The request came encrypted by this session; so go its responses (MS-SMB2 3.3.4.1.4). */
  readonly encryptWith: Session | undefined;
  /** Gives the request's pooled frame back: once answered, as a replay after failover sends it again. */
  releaseRequest?: () => void;
}

/** The first response to each message of a frame; forwarded ones arrive later. */
type Slot = Outgoing | Promise<Outgoing>;

/** The messages of one frame bound for one server: sent as one compound. */
interface Batch {
  readonly items: Outbound[];
  readonly forwarded: Forwarded[];
  readonly chain: ChainState;
}

/** Credits asked of a server in one request, at most (Samba's default 'smb2 max credits'). */
const MAX_SERVER_CREDITS = 8192;

/**
 * Bytes Node may hold for a reader that is behind before it stops reading the other side, at
 * least: above what a client keeps in flight (smbclient: 16 x 1 MiB READs), which would otherwise
 * keep its transfer's requests in flight through Node, and the connection from quiet moments to
 * lend it to the kernel relay again (a failover lab get fell from 0.9 kernel share to 0.4).
 */
const MIN_BACKLOG = 16 * 1024 * 1024;
/** pauseReading's reason for the server sockets while the client is behind. */
const CLIENT_BEHIND = 'the client is behind';

/** How long a server whose connection ended gets to accept a new one before it counts as failed. */
const REACHABLE_MS = 1000;

/** Whether a TCP connection to the server opens within `ms` (it is closed again at once). */
function reachable(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** MS-SMB2 3.3.4.1.1: a reply is signed when its request was, or when the session requires it (and has a key). */
function signsReply(req: Smb2Header, session: Session): boolean {
  return session.secrets !== undefined && ((req.Flags & Smb2Flags.SIGNED) !== 0 || session.signingRequired);
}

let nextConnectionId = 1;

/** A forwarded request the server made async, of a command outside `cmdMask`. */
const waitsAsync = (f: Forwarded, cmdMask: number): boolean => f.asyncId !== undefined && ((cmdMask >> f.req.Command) & 1) === 0;

export class Smb2Connection {
  readonly state: ConnectionState;
  private readonly decoder: FrameDecoder;
  private readonly credits: CreditWindow;
  private readonly log: Logger;
  /** Frames are handled one at a time, in arrival order. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private released = false;
  private authTimer: NodeJS.Timeout | undefined;
  /** Forwarded requests by the client's MessageId, and by the DSR's AsyncId once async. */
  private readonly inflight = new Map<bigint, Forwarded>();
  private readonly asyncs = new Map<bigint, Forwarded>();
  private nextAsyncId = 1n;
  /** Failovers of lost server connections, by the lost link (every request lost with it waits for one). */
  private readonly recovering = new Map<BackendLink, Promise<void>>();
  /** Failovers not yet done (the connection is not quiet while one runs). */
  private failingOver = 0;
  /** Trees being moved to another server: their requests wait here (in order, as the frame queue waits). */
  private readonly gates = new Map<Tree, Promise<void>>();
  /** Frames read and not yet handled. */
  private frames = 0;
  /** Replies made and not yet written (waiting for their frame's other replies). */
  private owed = 0;
  /** Frames waiting while the kernel relay's bytes are not all in the client socket yet, or the tail of a server message goes to it raw (kernel-path.ts). */
  private writesHeld: [Buffer | Buffer[], (() => void) | undefined][] | undefined;
  /** Bytes in writesHeld. */
  private heldBytes = 0;
  /** How many reasons hold them (the kernel's bytes not yet in the socket, a server message's raw tail). */
  private writeHolds = 0;
  /** Server sockets Node does not read until the client catches up (clientBehind). */
  private serverReadsStopped: Set<Socket> | undefined;
  /** Server connections whose sockets hold more of the client's requests than the backlog (serverBehind). */
  private readonly serversBehind = new Set<BackendLink>();
  /** The kernel relay's turns with this connection (while the DSR has a relay). */
  private readonly kernel: KernelPath;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: DsrContext,
    private readonly onClose: (c: Smb2Connection) => void,
  ) {
    const id = nextConnectionId++;
    const clientAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.log = ctx.log.child({ conn: id, client: clientAddress });
    const backends = new BackendPool(
      ctx,
      this.log.child({ component: 'backend' }),
      (link, msg) => this.onBreak(link, msg),
      (link, why) => this.onBackendLost(link, why),
      () => this.state.dialect,
    );
    ctx.pools.set(id, backends);
    this.state = {
      id,
      clientAddress,
      dialect: 0,
      clientGuid: Buffer.alloc(16),
      clientCapabilities: 0,
      clientSecurityMode: 0,
      clientDialects: [],
      serverSecurityMode: 0,
      serverCapabilities: 0,
      signingAlgorithmId: undefined,
      cipher: undefined,
      preauth: undefined,
      authInProgress: new Map(),
      // With the kernel relay, messages small enough to pipeline through it (config relay.maxIoSize).
      maxTransactSize: Math.min(ctx.config.smb2.maxTransactSize, ctx.relay ? ctx.config.relay.maxIoSize : Infinity),
      maxReadSize: Math.min(ctx.config.smb2.maxReadSize, ctx.relay ? ctx.config.relay.maxIoSize : Infinity),
      maxWriteSize: Math.min(ctx.config.smb2.maxWriteSize, ctx.relay ? ctx.config.relay.maxIoSize : Infinity),
      backends,
      routes: new WeakMap(),
    };
    this.decoder = new FrameDecoder(ctx.config.maxFrameBytes, (n) => framePool.take(n));
    this.credits = new CreditWindow(ctx.config.smb2.maxCredits);
    socket.setNoDelay(true);
    socket.on('error', (e) => this.log.debug({ event: 'conn.socket_error', err: e.message }, 'socket error'));
    socket.on('close', () => this.cleanup());
    // A connection that never authenticates must not hold resources forever.
    this.authTimer = setTimeout(() => {
      if (!ctx.sessions.byConnection(id).some((s) => s.state === 'valid')) this.close(`no authenticated session within ${ctx.config.limits.authTimeoutSeconds} s`);
    }, ctx.config.limits.authTimeoutSeconds * 1000);
    this.authTimer.unref();
    this.kernel = new KernelPath({
      ctx,
      state: this.state,
      socket,
      credits: this.credits,
      log: this.log,
      quiet: (cmdMask) => this.quiet(cmdMask),
      receive: (chunk) => this.receive(chunk),
      adopt: (msg) => this.adopt(msg),
      reread: (lost, read) => this.reread(lost, read),
      sendMessage: (msg, release) => this.sendReplies([{ msg, signWith: undefined, onWire: undefined, after: undefined, release }]),
      holdClientWrites: () => {
        this.writeHolds++;
        this.writesHeld ??= [];
      },
      releaseClientWrites: () => {
        if (--this.writeHolds > 0) return;
        const queued = this.writesHeld ?? [];
        this.writesHeld = undefined;
        this.heldBytes = 0;
        for (const [payload, written] of queued) this.send(payload, written);
        this.clientCaughtUp();
      },
      close: (why) => this.close(why),
    });
    this.log.debug({ event: 'conn.opened' }, 'connection opened');
  }

  get id(): number {
    return this.state.id;
  }

  /** Bytes from the client: valid only until this returns (see transport.ts). */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    // The kernel relay passed these on (a message its rules do not cover): it gives the connection back first.
    if (this.kernel.holding) {
      this.kernel.hold(chunk);
      return;
    }
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.close(errorMessage(e));
      return;
    }
    for (const f of frames) {
      this.frames++;
      this.queue = this.queue
        .then(() => this.handleFrame(f))
        .then(() => {
          this.frames--;
          this.kernel.tryLend();
        });
    }
  }

  /**
   * A request the kernel relay forwarded to a lost server, from its journal: queued like a frame
   * just read (so the failover replays it), with its MessageId already consumed.
   */
  private adopt(msg: Buffer): void {
    if (this.closed) return;
    this.frames++;
    this.queue = this.queue
      .then(() => this.handleFrame(msg, true))
      .then(() => {
        this.frames--;
        this.kernel.tryLend();
      });
  }

  /**
   * File bytes the client was being sent from a lost server (the rest of a READ response the
   * kernel relay was forwarding): read once the failover moved the tree, from its new server.
   */
  private async reread(lost: BackendLink, read: Reread): Promise<Buffer> {
    const route = await this.routeAfterFailover(lost, this.ctx.trees.get(read.sessionId, read.treeId));
    if (!route || route.link.client.isClosed) throw new DsrError(ErrorCode.PROTOCOL, 'no server serves the share now');
    const open = this.ctx.opens.get(read.sessionId, read.fileId);
    const file = open?.kind === 'file' ? (open.target as FileOpen) : undefined;
    if (!file || file.server !== route.link.server.name) throw new DsrError(ErrorCode.PROTOCOL, 'the file was not reopened');
    const body = encodeReadRequest({
      Padding: 0,
      Flags: 0,
      Length: read.length,
      Offset: read.offset,
      FileId: file.backendFileId,
      MinimumCount: read.length,
      Channel: 0,
      RemainingBytes: 0,
      ReadChannelInfo: Buffer.alloc(0),
    });
    const r = await route.link.client.request(Smb2Command.READ, body, { session: route.bs.session, treeId: route.backendTreeId, creditCharge: creditsFor(read.length) });
    const data = decodeReadResponse(r.msg).Data;
    if (data.length !== read.length) throw new DsrError(ErrorCode.PROTOCOL, `${route.link.server.name} returned ${data.length} of ${read.length} bytes`);
    return data;
  }

  /**
   * Takes the connection back from the kernel relay, if it has it (the relay is being turned
   * off). Its sockets stay in the relay's sockhash until the connection ends, so what the kernel
   * still owes the client goes out however slowly the client reads, without holding up the caller.
   */
  returnFromKernel(why: string): Promise<void> {
    return this.kernel.takeBack(why);
  }

  /**
   * Nothing read and unhandled, no reply unsent, no failover or move, and nothing forwarded and
   * unanswered but requests the server made async whose command is not in `cmdMask` (a
   * CHANGE_NOTIFY waiting for a change, as Explorer keeps one on every folder it shows): their
   * responses pass the kernel relay to Node, which answers them with the DSR's AsyncId.
   */
  private quiet(cmdMask: number): boolean {
    if (this.closed || this.frames > 0 || this.owed > 0 || this.writesHeld !== undefined || this.decoder.pending > 0 || this.gates.size > 0 || this.failingOver > 0) return false;
    for (const f of this.inflight.values()) if (!waitsAsync(f, cmdMask)) return false;
    for (const f of this.asyncs.values()) if (!waitsAsync(f, cmdMask)) return false;
    return true;
  }

  /**
   * Checks and dispatches every message of a frame in order. Messages for servers are sent
   * once the whole frame is checked, one compound per server, so related chains stay whole;
   * the frame's replies go out together when each message has its first response. The next
   * frame does not wait for servers.
   */
  private async handleFrame(received: Buffer, adopted = false): Promise<void> {
    let frame = received;
    if (this.closed) return;
    try {
      const protocol = frame.length >= 4 ? frame.readUInt32LE(0) : 0;
      if (protocol === SMB1_PROTOCOL_ID) {
        const r = answerSmb1Negotiate(this.state, this.ctx, frame, this.credits);
        if ('disconnect' in r) throw new Disconnect(r.disconnect);
        this.send(r.msg);
        return;
      }
      if (protocol === SMB2_COMPRESSION_PROTOCOL_ID) throw new Disconnect('compressed message, but compression was not negotiated');
      let encryptedBy: Session | undefined;
      if (protocol === SMB2_TRANSFORM_PROTOCOL_ID) {
        ({ plain: frame, session: encryptedBy } = this.decrypt(frame));
        framePool.release(received);
      }
      const msgs = splitCompound(frame);
      const slots: Slot[] = [];
      const batches = new Map<BackendLink, Batch>();
      let related: Related = { status: NtStatus.STATUS_SUCCESS };
      for (let i = 0; i < msgs.length; i++) {
        const r = await this.handleMessage(msgs[i]!, i > 0 ? related : undefined, batches, { last: i === msgs.length - 1, adopted }, encryptedBy);
        if (!r) continue;
        slots.push(r.out);
        related = r.related;
      }
      // A frame that is one forwarded message goes back to the pool once the server answered it.
      const only = msgs.length === 1 && batches.size === 1 ? [...batches.values()][0]!.forwarded[0] : undefined;
      if (only) only.releaseRequest = () => framePool.release(frame);
      for (const [link, b] of batches) {
        const handles = link.client.send(b.items);
        b.forwarded.forEach((f, i) => (f.handle = handles[i]));
        if (link.client.unsent > this.backlog) this.serverBehind(link);
      }
      if (slots.length === 0) return;
      if (slots.every((o): o is Outgoing => !(o instanceof Promise))) {
        this.sendReplies(slots, encryptedBy);
        return;
      }
      // A final response that arrives with its interim one must not overtake it.
      this.owed++;
      const frameSent = Promise.all(slots).then((out) => {
        this.owed--;
        this.sendReplies(out, encryptedBy);
      });
      for (const b of batches.values()) for (const f of b.forwarded) f.firstSent = frameSent;
    } catch (e) {
      // Errors that reach the frame level break its framing (a bad header, a NextCommand out of
      // bounds): the frame cannot be answered message by message, so the connection closes.
      if (e instanceof Disconnect || e instanceof WireError || e instanceof ProtocolError) {
        this.close(e.message);
        return;
      }
      this.log.error({ event: 'conn.internal_error', err: errorMessage(e), stack: (e as Error)?.stack }, 'internal error; closing connection');
      this.close('internal error');
    }
  }

  /**
   * Runs the MS-SMB2 3.3.5.2 checks for one message and its handler. `prev` is the state left
   * by the previous message of the same compound frame. A message for a server joins its
   * server's batch and gets a slot that its first response fills.
   */
  private async handleMessage(
    msg: Buffer,
    prev: Related | undefined,
    batches: Map<BackendLink, Batch>,
    place: { last: boolean; adopted: boolean },
    encryptedBy: Session | undefined,
  ): Promise<{ out: Slot; related: Related } | undefined> {
    const hdr = decodeHeader(msg);
    if (hdr.Flags & Smb2Flags.SERVER_TO_REDIR) throw new Disconnect('client sent a message flagged as a response');
    if (hdr.Flags & Smb2Flags.ASYNC_COMMAND && hdr.Command !== Smb2Command.CANCEL) throw new Disconnect('client sent an async request that is not CANCEL');
    // 3.3.5.2: nothing but NEGOTIATE before a dialect is chosen.
    if ((this.state.dialect === 0 || this.state.dialect === 0x02ff) && hdr.Command !== Smb2Command.NEGOTIATE) {
      throw new Disconnect(`${smb2CommandName(hdr.Command)} before NEGOTIATE`);
    }
    if (hdr.Command === Smb2Command.CANCEL) {
      // 3.3.5.16: CANCEL consumes no credit and gets no reply of its own.
      this.cancel(hdr);
      return undefined;
    }
    // 3.3.5.2.3 sequence window; a client outside it has lost sync and is disconnected.
    if (!place.adopted && !this.credits.consume(hdr.MessageId, this.state.dialect === 0x0202 ? 1 : hdr.CreditCharge)) {
      throw new Disconnect(`MessageId ${hdr.MessageId} (CreditCharge ${hdr.CreditCharge}) is outside the credit window`);
    }
    const isRelated = (hdr.Flags & Smb2Flags.RELATED_OPERATIONS) !== 0;
    const fail = (status: number, session?: Session) => this.reply(hdr, errorReply(status), session, isRelated);
    const def = COMMANDS[hdr.Command];
    // An unknown command is refused, not a reason to drop the client (as Windows and Samba do).
    if (!def) {
      this.log.info({ event: 'conn.unknown_command', command: hdr.Command }, 'unknown command');
      return { out: fail(NtStatus.STATUS_INVALID_PARAMETER), related: { status: NtStatus.STATUS_INVALID_PARAMETER } };
    }
    // 3.3.5.2.7.2: a related request takes its session from the previous request of the frame;
    // with none (it comes first, or that one named no valid session) it is invalid.
    if (isRelated && def.session !== 'none' && prev?.session === undefined) {
      return { out: fail(NtStatus.STATUS_INVALID_PARAMETER), related: { status: NtStatus.STATUS_INVALID_PARAMETER } };
    }
    // A related request after a failed one fails the same way.
    if (isRelated && prev && prev.status !== NtStatus.STATUS_SUCCESS && prev.status !== NtStatus.STATUS_BUFFER_OVERFLOW) {
      return { out: fail(prev.status), related: prev };
    }

    // 3.3.5.2.9 session.
    let session: Session | undefined;
    if (def.session !== 'none') {
      const sid = isRelated ? prev?.session?.sessionId : hdr.SessionId;
      session = sid !== undefined && sid !== 0n ? this.ctx.sessions.get(sid) : undefined;
      // A binding SESSION_SETUP names a session of another connection (3.3.5.5.2).
      const binding = hdr.Command === Smb2Command.SESSION_SETUP && msg.length > SMB2_HEADER_SIZE + 2 && (msg[SMB2_HEADER_SIZE + 2]! & SessionSetupRequestFlags.BINDING) !== 0;
      if (session && session.connectionId !== this.state.id && !binding) {
        // SESSION_SETUP naming another connection's session without binding: refused, signed
        // with that session's key as Samba and Windows do (its client insists on a signature).
        const foreign = hdr.Command === Smb2Command.SESSION_SETUP ? session : undefined;
        return { out: fail(NtStatus.STATUS_USER_SESSION_DELETED, foreign), related: { status: NtStatus.STATUS_USER_SESSION_DELETED } };
      }
      const allowNew = def.session === 'optional' && (sid === undefined || sid === 0n);
      if (!session && !allowNew) return { out: fail(NtStatus.STATUS_USER_SESSION_DELETED), related: { status: NtStatus.STATUS_USER_SESSION_DELETED } };
      if (session && session.state !== 'valid' && def.session === 'valid') {
        return { out: fail(NtStatus.STATUS_ACCESS_DENIED), related: { status: NtStatus.STATUS_ACCESS_DENIED } };
      }
      if (session) session.lastSeen = new Date();
    }

    // 3.3.5.2.9: a session that encrypts takes nothing in the clear but its own authentication.
    if (session?.encryptData && !encryptedBy && hdr.Command !== Smb2Command.SESSION_SETUP) {
      return { out: fail(NtStatus.STATUS_ACCESS_DENIED), related: { status: NtStatus.STATUS_ACCESS_DENIED } };
    }

    // 3.3.5.2.4 signature; an encrypted message is authenticated by its transform instead.
    if (session && session.secrets && !encryptedBy && session.connectionId === this.state.id) {
      const signed = (hdr.Flags & Smb2Flags.SIGNED) !== 0;
      if (signed && !verifyRequest(msg, session)) {
        this.log.warn({ event: 'conn.bad_signature', command: smb2CommandName(hdr.Command), session: session.sessionId.toString(16) }, 'request signature does not verify');
        return { out: fail(NtStatus.STATUS_ACCESS_DENIED), related: { status: NtStatus.STATUS_ACCESS_DENIED } };
      }
      if (!signed && session.signingRequired && session.state === 'valid' && !isRelated) {
        return { out: fail(NtStatus.STATUS_ACCESS_DENIED, session), related: { status: NtStatus.STATUS_ACCESS_DENIED } };
      }
    }

    // 3.3.5.2.11 tree.
    let tree: Tree | undefined;
    if (def.tree && session) {
      const tid = isRelated ? prev?.tree?.treeId : hdr.TreeId;
      tree = tid !== undefined ? this.ctx.trees.get(session.sessionId, tid) : undefined;
      if (!tree) return { out: fail(NtStatus.STATUS_NETWORK_NAME_DELETED, session), related: { session, status: NtStatus.STATUS_NETWORK_NAME_DELETED } };
      const gate = this.gates.get(tree);
      if (gate) await gate;
    }

    const req: Smb2Request = {
      ctx: this.ctx,
      conn: this.state,
      msg,
      hdr,
      session,
      tree,
      related: isRelated,
      relatedFileId: isRelated ? prev?.fileId : undefined,
      relatedForward: isRelated ? prev?.forward : undefined,
    };
    const ran = this.run(def.run, req);
    // A tree connect may wait seconds for a server; the frames behind it do not, so a slow or
    // dead server stays invisible to the client's other shares. Only when nothing follows it in
    // its frame (a related member would need its tree).
    if (hdr.Command === Smb2Command.TREE_CONNECT && place.last) {
      const out = ran.then(
        (r) => this.reply(hdr, r, session, isRelated),
        (e: unknown) => {
          this.log.error({ event: 'conn.internal_error', err: errorMessage(e), stack: (e as Error)?.stack }, 'internal error; closing connection');
          this.close('internal error');
          return this.reply(hdr, errorReply(NtStatus.STATUS_INTERNAL_ERROR), session, isRelated);
        },
      );
      return { out, related: { status: NtStatus.STATUS_SUCCESS } };
    }
    const r = await ran;
    if (r.disconnect) throw new Disconnect(r.disconnect);
    if (r.forward && session) {
      return { out: this.forwardMessage(hdr, session, tree, isRelated, r.forward, batches, encryptedBy, place.adopted), related: { session, tree, forward: r.forward, status: NtStatus.STATUS_SUCCESS } };
    }
    const replySession = r.signWith ?? (r.unsigned ? undefined : (r.sessionId !== undefined ? this.ctx.sessions.get(r.sessionId) : session));
    const out = this.reply(hdr, r, replySession, isRelated);
    const fileId = r.createdFileId ?? (isRelated ? prev?.fileId : undefined);
    return { out, related: { session: session ?? replySession, tree: tree ?? (r.treeId !== undefined && session ? this.ctx.trees.get(session.sessionId, r.treeId) : undefined), fileId, status: r.status } };
  }

  /** Runs a handler; a typed error with a status is answered with it, one without ends the connection. */
  private async run(handler: (req: Smb2Request) => Smb2Reply | Promise<Smb2Reply>, req: Smb2Request): Promise<Smb2Reply> {
    try {
      return await handler(req);
    } catch (e) {
      if (!(e instanceof WireError || e instanceof ProtocolError || e instanceof AuthError) || e.status === undefined) throw e;
      this.log.info({ event: 'conn.bad_request', command: smb2CommandName(req.hdr.Command), err: e.message }, 'request refused');
      return errorReply(e.status);
    }
  }

  /** Queues a message for its server; the returned slot is filled by the server's first response. */
  private forwardMessage(
    hdr: Smb2Header,
    session: Session,
    tree: Tree | undefined,
    related: boolean,
    fwd: Forward,
    batches: Map<BackendLink, Batch>,
    encryptWith: Session | undefined,
    adopted = false,
  ): Promise<Outgoing> {
    const f: Forwarded = { req: hdr, session, tree, related, forward: fwd, handle: undefined, asyncId: undefined, firstSent: undefined, encryptWith };
    this.inflight.set(hdr.MessageId, f);
    if (tree) this.ctx.load.record(tree.share, fwd.msg.length, 1);
    const link = fwd.route.link;
    if (this.ctx.relay) {
      if (hdr.Command === Smb2Command.READ || hdr.Command === Smb2Command.WRITE) this.ctx.relay.stats.userReadWrite++;
      // The kernel relay lends a connection only while the server's credit window is as wide as
      // the client's (kernel-path.ts): ask the server for what the client asks, plus the gap.
      // The client's charge for this request is spent already; the server's is not, yet.
      const charge = Math.max(fwd.msg.readUInt16LE(Hdr.CreditCharge), 1);
      const gap = Math.max(this.credits.outstanding - (link.client.sequence.credits - charge), 0);
      setCredit(fwd.msg, Math.min(Math.max(fwd.msg.readUInt16LE(Hdr.Credit), hdr.Credit) + gap, MAX_SERVER_CREDITS));
    }
    let batch = batches.get(link);
    if (!batch) batches.set(link, (batch = { items: [], forwarded: [], chain: { lastOpen: undefined } }));
    batch.forwarded.push(f);
    const { chain, items } = batch;
    return new Promise<Outgoing>((resolve) => {
      let first = true;
      const deliver = (o: Outgoing) => {
        if (first) {
          first = false;
          resolve(o);
        } else {
          this.owed++;
          void f.firstSent!.then(() => {
            this.owed--;
            this.sendReplies([o], f.encryptWith);
          });
        }
      };
      const item: Outbound = {
        msg: fwd.msg,
        session: fwd.route.bs.session,
        onResponse: (m, h, release) => {
          // A request replayed after failover pends again: the client had its interim response.
          // One taken over from the kernel relay may have had one the kernel passed on: a second
          // would be a protocol error to the client, and none is needed.
          if ((f.asyncId !== undefined || adopted) && h.Status === NtStatus.STATUS_PENDING && (h.Flags & Smb2Flags.ASYNC_COMMAND) !== 0) {
            release?.();
            return;
          }
          deliver({ ...this.fromBackend(f, m, h, chain), release });
        },
        onError: (e) => {
          const lost = f.forward.route.link;
          this.log.debug({ event: 'conn.backend_error', server: lost.server.name, err: e.message }, 'request lost with its server');
          if (!lost.client.isClosed) {
            this.finish(f);
            deliver(this.reply(hdr, errorReply(NtStatus.STATUS_NETWORK_NAME_DELETED), session, related, f.asyncId));
            return;
          }
          void this.replay(f, item).then((status) => {
            if (status === undefined) return;
            this.finish(f);
            deliver(this.reply(hdr, errorReply(status), session, related, f.asyncId));
          });
        },
      };
      items.push(item);
    });
  }

  /**
   * A server's response, rewritten in place for the client: its ids, credits from the DSR's
   * own window, and the client session's signature. An interim response gets a DSR AsyncId.
   */
  private fromBackend(f: Forwarded, m: Buffer, h: Smb2Header, chain: ChainState): Outgoing {
    const interim = h.Status === NtStatus.STATUS_PENDING && (h.Flags & Smb2Flags.ASYNC_COMMAND) !== 0;
    let credit: number;
    if (interim) {
      if (f.asyncId === undefined) {
        f.asyncId = this.nextAsyncId++;
        this.asyncs.set(f.asyncId, f);
      }
      credit = this.credits.grant(f.req.Credit);
    } else {
      if (this.log.isLevelEnabled('debug')) {
        this.log.debug({ event: 'fwd.done', command: smb2CommandName(h.Command), status: ntStatusName(h.Status), server: f.forward.route.link.server.name }, 'forwarded request answered');
      }
      f.forward.complete(m, h, chain);
      if (f.tree) this.ctx.load.record(f.tree.share, m.length, 0);
      // 3.3.4.3: credits of an async request were granted with its interim response.
      credit = f.asyncId === undefined ? this.credits.grant(f.req.Credit) : 0;
      this.finish(f);
    }
    m.writeUInt16LE(f.req.CreditCharge, Hdr.CreditCharge);
    m.writeUInt16LE(credit, Hdr.Credit);
    const isAsync = f.asyncId !== undefined;
    m.writeUInt32LE(Smb2Flags.SERVER_TO_REDIR | (isAsync ? Smb2Flags.ASYNC_COMMAND : 0) | (f.related ? Smb2Flags.RELATED_OPERATIONS : 0) | (f.req.Flags & Smb2Flags.PRIORITY_MASK), Hdr.Flags);
    m.writeBigUInt64LE(f.req.MessageId, Hdr.MessageId);
    if (isAsync) {
      m.writeBigUInt64LE(f.asyncId!, Hdr.AsyncId);
    } else {
      m.writeUInt32LE(f.req.Reserved, Hdr.Reserved);
      m.writeUInt32LE(f.tree?.treeId ?? f.req.TreeId, Hdr.TreeId);
    }
    m.writeBigUInt64LE(f.session.sessionId, Hdr.SessionId);
    m.fill(0, Hdr.Signature, Hdr.Signature + 16);
    // 3.3.4.2: interim responses are not signed.
    const live = this.ctx.sessions.get(f.session.sessionId) === f.session;
    const sign = !interim && live && !f.encryptWith && signsReply(f.req, f.session);
    return { msg: m, signWith: sign ? f.session : undefined, onWire: undefined, after: undefined };
  }

  private finish(f: Forwarded): void {
    if (this.inflight.get(f.req.MessageId) === f) this.inflight.delete(f.req.MessageId);
    if (f.asyncId !== undefined) this.asyncs.delete(f.asyncId);
    f.releaseRequest?.();
    f.releaseRequest = undefined;
  }

  /**
   * A request whose server connection was lost: once the failover of that connection is done,
   * sent again to its tree's new server when that is safe. Returns the status to answer with
   * instead, or undefined when it was sent.
   */
  private async replay(f: Forwarded, item: Outbound): Promise<number | undefined> {
    const route = await this.routeAfterFailover(f.forward.route.link, f.tree);
    if (this.closed) return undefined;
    if (!route || route.link.client.isClosed) return NtStatus.STATUS_NETWORK_NAME_DELETED;
    // It may or may not have happened on the lost server: a server would not know either.
    if (!replayable(f.req.Command, f.related)) return NtStatus.STATUS_UNEXPECTED_NETWORK_ERROR;
    if (!rerouteForReplay(f.forward, f.req.Command, route)) return NtStatus.STATUS_FILE_CLOSED;
    f.forward.route = route;
    item.session = route.bs.session;
    this.log.debug({ event: 'failover.replay', command: smb2CommandName(f.req.Command), server: route.link.server.name }, 'request replayed on the new server');
    [f.handle] = route.link.client.send([item]);
    return undefined;
  }

  /** A tree's route once the failover of `lost` is done (a tree whose own server is being tried again waits for that). */
  private async routeAfterFailover(lost: BackendLink, tree: Tree | undefined): Promise<Route | undefined> {
    await this.recover(lost, 'connection lost');
    const gate = tree ? this.gates.get(tree) : undefined;
    if (gate) await gate;
    return tree ? this.state.routes.get(tree) : undefined;
  }

  /**
   * A planned move of a share to the server now active for it (source Fig. 8, paragraphs
   * 0095-0098): each of this connection's trees on it stops taking requests, waits for its
   * requests in flight (so nothing is replayed), moves with the failover's mechanism, and takes
   * requests again; the old server's handles and tree are let go after.
   */
  async moveShare(share: string): Promise<{ trees: number; opens: number; lostOpens: number }> {
    const r = { trees: 0, opens: 0, lostOpens: 0 };
    const moving = this.ctx.sessions
      .byConnection(this.state.id)
      .flatMap((session) => this.ctx.trees.ofSession(session.sessionId).map((tree) => [session, tree] as const))
      .filter(([, tree]) => this.state.routes.has(tree) && tree.share.toLowerCase() === share.toLowerCase());
    if (moving.length === 0) return r;
    // Held before the kernel relay lets go, so the connection is not lent again to the old
    // server while its trees move (a lend right after the take-back did, and READs went on to
    // the old server).
    const reopen = this.hold(moving.map(([, tree]) => tree));
    try {
      await this.kernel.takeBack('move');
      for (const [session, tree] of moving) {
        await this.drain(tree);
        const m = await moveTree(this.ctx, this.state, session, tree, this.log);
        if (!m) continue;
        r.trees++;
        r.opens += m.opens;
        r.lostOpens += m.lostOpens;
        void leaveOld(this.state, m.left, this.log);
      }
    } finally {
      reopen();
    }
    return r;
  }

  /**
   * Stops requests on these trees until the returned function runs: a request must not reach
   * the new server before its file is reopened there (it would carry the old server's FileId).
   */
  private hold(trees: readonly Tree[]): () => void {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    for (const t of trees) this.gates.set(t, gate);
    return () => {
      for (const t of trees) if (this.gates.get(t) === gate) this.gates.delete(t);
      release();
    };
  }

  /** Waits until a tree has no request in flight but pending async ones (they never end on their own). */
  private async drain(tree: Tree): Promise<void> {
    const deadline = Date.now() + this.ctx.config.limits.backendTimeoutSeconds * 1000;
    // Requests the kernel relay forwarded are on the tree's server too (a lent connection has one).
    const busy = () => this.kernel.outstanding > 0 || [...this.inflight.values()].some((f) => f.tree === tree && f.asyncId === undefined);
    while (busy() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
  }

  /** The failover of a lost server connection (one per link, however many requests wait for it). */
  private recover(link: BackendLink, why: string): Promise<void> {
    // A closed connection closes its server links itself, failing what was in flight on them
    // (a pending CHANGE_NOTIFY): that is no lost server, and nothing is left to move.
    if (this.closed) return Promise.resolve();
    let p = this.recovering.get(link);
    if (!p) {
      this.failingOver++;
      // Kept once done: a request that fails on the lost link later waits for the same failover.
      p = this.failOver(link, why).finally(() => {
        this.failingOver--;
        this.kernel.tryLend();
      });
      this.recovering.set(link, p);
    }
    return p;
  }

  private async failOver(link: BackendLink, why: string): Promise<void> {
    await this.kernel.takeBack('server lost');
    const started = Date.now();
    const server = link.server.name;
    const sessions = this.ctx.sessions.byConnection(this.state.id);
    const held = new Map(this.treesOn(link).map((t) => [t, this.hold([t])] as const));
    try {
      // One connection ended is not a failed server (smbd ends connections on purpose, e.g. one
      // with no tree at its 60 s idle check): only a server that refuses a new connection too is
      // failed, for every client; otherwise the trees reconnect to it.
      if (this.ctx.resources.healthy(server) && !(await reachable(link.server.address, link.server.port, REACHABLE_MS))) {
        const remaps = this.ctx.resources.failServer(server, why);
        if (remaps.length > 0) this.log.warn({ event: 'failover.server_failed', server, why, remaps }, `${server} failed: ${why}`);
      }
      const moved = await moveTrees(this.ctx, this.state, link, sessions, this.log);
      const stranded = new Set(moved.stranded.map(([, t]) => t));
      for (const [t, release] of held) if (!stranded.has(t)) release();
      // No other server serves the stranded trees: their own is tried again (a late answer from
      // a loaded server fails it too), without holding up the trees that moved.
      void this.retryStranded(moved, held, link).then((tally) =>
        this.log.warn(
          { event: 'failover.done', server, ...tally, ms: Date.now() - started },
          `lost ${server}: moved ${tally.trees} tree(s) and ${tally.opens} open(s), reconnected ${tally.reconnected}, dropped ${tally.dropped}`,
        ),
      );
    } catch (e) {
      for (const release of held.values()) release();
      this.log.error({ event: 'failover.failed', server, err: errorMessage(e), stack: (e as Error)?.stack }, 'failover failed; closing connection');
      this.close('failover failed');
    }
  }

  /** Retries the trees moveTrees could not move; what the whole failover did, for its one log line. */
  private async retryStranded(moved: Moved, held: Map<Tree, () => void>, link: BackendLink): Promise<FailoverTally> {
    const tally: FailoverTally = { trees: moved.trees, opens: moved.opens, lostOpens: moved.lostOpens, reconnected: 0, dropped: 0 };
    for (const [session, tree] of moved.stranded) {
      try {
        const r = await this.reconnectOrMove(session, tree, link);
        if (!r) {
          dropTrees({ ctx: this.ctx, conn: this.state }, [tree]);
          tally.dropped++;
          continue;
        }
        if (r.sameServer) tally.reconnected++;
        else tally.trees++;
        tally.opens += r.move.opens;
        tally.lostOpens += r.move.lostOpens;
      } catch (e) {
        this.log.warn({ event: 'failover.retry_failed', server: link.server.name, err: errorMessage(e) }, 'reconnecting a stranded tree failed');
        dropTrees({ ctx: this.ctx, conn: this.state }, [tree]);
        tally.dropped++;
      } finally {
        held.get(tree)?.();
      }
    }
    return tally;
  }

  /**
   * A stranded tree back on its own server; or, once that server is failed (by this connection,
   * when it refuses a new connection, or by anyone else meanwhile), moved to wherever its share
   * went. A killed smbd's parent may still accept a connection or two before it dies too, so
   * this keeps trying for REACHABLE_MS before it gives the tree up.
   */
  private async reconnectOrMove(session: Session, tree: Tree, link: BackendLink): Promise<{ move: TreeMove; sameServer: boolean } | undefined> {
    const server = link.server.name;
    const deadline = Date.now() + REACHABLE_MS;
    for (;;) {
      if (this.ctx.resources.healthy(server)) {
        const again = await moveTree(this.ctx, this.state, session, tree, this.log, true).catch((e: unknown) => {
          this.log.info({ event: 'failover.reconnect_failed', server, err: errorMessage(e) }, 'reconnecting a tree to its own server failed');
          return undefined;
        });
        if (again) return { move: again, sameServer: true };
        if (this.ctx.resources.healthy(server) && !(await reachable(link.server.address, link.server.port, REACHABLE_MS))) {
          const remaps = this.ctx.resources.failServer(server, 'reconnect refused');
          if (remaps.length > 0) this.log.warn({ event: 'failover.server_failed', server, why: 'reconnect refused', remaps }, `${server} failed: reconnect refused`);
        }
      }
      if (!this.ctx.resources.healthy(server)) {
        const move = await moveTree(this.ctx, this.state, session, tree, this.log);
        return move && { move, sameServer: false };
      }
      if (this.closed || Date.now() > deadline) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** CANCEL (MS-SMB2 3.3.5.16): found by AsyncId or MessageId, passed to the server working on it. */
  private cancel(hdr: Smb2Header): void {
    const f = hdr.Flags & Smb2Flags.ASYNC_COMMAND ? this.asyncs.get(hdr.AsyncId) : this.inflight.get(hdr.MessageId);
    this.log.debug({ event: 'conn.cancel', async: (hdr.Flags & Smb2Flags.ASYNC_COMMAND) !== 0, found: f !== undefined, sent: f?.handle?.messageId !== undefined }, 'CANCEL');
    if (!f?.handle || f.session.sessionId !== hdr.SessionId) return;
    if (f.forward.route.link.client.cancel(f.handle, f.forward.route.bs.session)) return;
    // Still waiting for server credits: withdrawn here, so the DSR answers it.
    this.finish(f);
    this.sendReplies([this.reply(f.req, errorReply(NtStatus.STATUS_CANCELLED), f.session, false, f.asyncId)], f.encryptWith);
  }

  /** A break notification from a server, for this client connection. */
  private onBreak(link: BackendLink, msg: Buffer): void {
    const out = breakToClient({ ctx: this.ctx }, this.state.id, link, msg);
    if (!out) {
      this.log.debug({ event: 'conn.break_dropped', server: link.server.name }, 'break for an open this connection no longer has');
      return;
    }
    // A session that encrypts gets its breaks encrypted too (MS-SMB2 3.3.4.6).
    const session = this.ctx.sessions.get(out.open.sessionId);
    this.sendReplies([{ msg: out.msg, signWith: undefined, onWire: undefined, after: undefined }], session?.encryptData ? session : undefined);
  }

  /** An encrypted frame (MS-SMB2 3.3.5.2.1.1): its session's key opens it, or the connection ends. */
  private decrypt(frame: Buffer): { plain: Buffer; session: Session } {
    const session = this.ctx.sessions.get(transformSessionId(frame));
    const enc = session?.connectionId === this.state.id ? session.secrets?.encryption : undefined;
    if (!session || !enc) throw new Disconnect('encrypted message for a session that has no encryption key on this connection');
    return { plain: decryptMessage(frame, enc.in, enc.cipher), session };
  }

  /** This connection's trees routed over a backend connection. */
  private treesOn(link: BackendLink): Tree[] {
    return this.trees().filter((t) => this.state.routes.get(t)?.link === link);
  }

  /** This connection's trees. */
  private trees(): Tree[] {
    return this.ctx.sessions.byConnection(this.state.id).flatMap((s) => this.ctx.trees.ofSession(s.sessionId));
  }

  /** A server's connection ended: its trees move to the servers now active for their shares. */
  private onBackendLost(link: BackendLink, why: string): void {
    if (this.treesOn(link).length === 0 && !this.recovering.has(link)) {
      // No tree and no request on it: nothing to move, and nothing to say about the server.
      this.log.info({ event: 'conn.backend_closed', server: link.server.name, why }, `${link.server.name} closed an unused connection`);
      return;
    }
    this.log.warn({ event: 'conn.backend_lost', server: link.server.name, why }, `lost ${link.server.name}: ${why}`);
    void this.recover(link, why);
  }

  /** Builds the response message for a request (credits granted here, signing later). */
  private reply(req: Smb2Header, r: Smb2Reply, session: Session | undefined, related: boolean, asyncId?: bigint): Outgoing {
    const signed = session !== undefined && (r.signWith !== undefined ? session.secrets !== undefined : signsReply(req, session));
    const hdr: Smb2Header = {
      CreditCharge: req.CreditCharge,
      Status: r.status,
      Command: req.Command,
      Credit: asyncId === undefined ? this.credits.grant(req.Credit) : 0,
      Flags: Smb2Flags.SERVER_TO_REDIR | (related ? Smb2Flags.RELATED_OPERATIONS : 0) | (req.Flags & Smb2Flags.PRIORITY_MASK) | (asyncId === undefined ? 0 : Smb2Flags.ASYNC_COMMAND),
      NextCommand: 0,
      MessageId: req.MessageId,
      Reserved: req.Reserved,
      TreeId: r.treeId ?? req.TreeId,
      AsyncId: asyncId ?? 0n,
      SessionId: r.sessionId ?? req.SessionId,
      Signature: Buffer.alloc(16),
    };
    return { msg: encodeMessage(hdr, r.body), signWith: signed ? session : undefined, onWire: r.onWire, after: r.after };
  }

  /** Signs (or, for a request that came encrypted, encrypts) and sends a frame of replies. */
  private sendReplies(out: Outgoing[], encryptWith?: Session): void {
    if (this.closed) {
      for (const o of out) o.release?.();
      return;
    }
    // One message goes out as it is (a server's 8 MiB READ response is not copied).
    const frame = out.length === 1 ? out[0]!.msg : joinCompound(out.map((o) => o.msg));
    if (out.length === 1) frame.writeUInt32LE(0, Hdr.NextCommand);
    // Signatures cover each message as it sits in the chain, padding and NextCommand included.
    let at = 0;
    for (const o of out) {
      const next = frame.readUInt32LE(at + Hdr.NextCommand);
      const end = next === 0 ? frame.length : at + next;
      const msg = frame.subarray(at, end);
      if (o.signWith && !encryptWith) signReply(msg, o.signWith);
      o.onWire?.(msg);
      at = end;
    }
    const enc = encryptWith?.secrets?.encryption;
    const payload = enc ? encryptMessage(frame, enc.out, enc.cipher, encryptWith!.sessionId, enc.nonces) : frame;
    // Sent as is, a message's bytes are free once written; joined or encrypted, they were copied.
    const releases = out.map((o) => o.release).filter((r): r is () => void => r !== undefined);
    const write = () => {
      if (payload === out[0]!.msg) {
        this.send(payload, releases[0]);
      } else {
        this.send(payload);
        for (const r of releases) r();
      }
    };
    if (this.ctx.relay && out.every((o) => o.after === undefined)) {
      this.kernel.lendAround(NETBIOS_HEADER_SIZE + payload.length, write);
      return;
    }
    write();
    for (const o of out) o.after?.();
    this.kernel.tryLend();
  }

  private send(payload: Buffer | Buffer[], written?: () => void): void {
    if (this.writesHeld) {
      this.writesHeld.push([payload, written]);
      this.heldBytes += frameBytes(payload);
      if (this.heldBytes > this.backlog) this.clientBehind();
    } else if (!this.closed) {
      sendFrame(this.socket, payload, written);
      if (this.socket.writableLength > this.backlog) this.clientBehind();
    } else written?.();
  }

  /**
   * Backpressure bound: two of the largest messages, so a reader that keeps up never waits. Without
   * it a client that stops reading would have Node hold its whole credit window of READ responses
   * (8192 credits of 64 KiB: 512 MiB), and a server that stops reading a client's WRITEs as much.
   */
  private get backlog(): number {
    return Math.max(2 * Math.max(this.state.maxReadSize, this.state.maxWriteSize, this.state.maxTransactSize), MIN_BACKLOG);
  }

  /**
   * The client reads slower than its servers answer (Node's writes wait in its socket, or held
   * while the kernel relay's replies go in first): Node stops reading their sockets until it has
   * caught up, and TCP makes the servers wait.
   */
  private clientBehind(): void {
    if (this.serverReadsStopped) return;
    const sockets = new Set<Socket>();
    for (const t of this.trees()) {
      const route = this.state.routes.get(t);
      if (route) sockets.add(route.link.client.tcp);
    }
    this.serverReadsStopped = sockets;
    for (const s of sockets) pauseReading(s, CLIENT_BEHIND);
    this.log.debug({ event: 'conn.client_behind', queued: this.socket.writableLength, held: this.heldBytes, servers: sockets.size }, 'client behind in reading: its servers wait');
    this.socket.on('drain', this.clientCaughtUp);
  }

  /** Nothing of Node's waits for the client any more: its servers are read again. */
  private readonly clientCaughtUp = (): void => {
    const sockets = this.serverReadsStopped;
    if (!sockets || this.writesHeld || this.socket.writableLength > 0) return;
    this.socket.off('drain', this.clientCaughtUp);
    this.serverReadsStopped = undefined;
    for (const s of sockets) resumeReading(s, CLIENT_BEHIND);
  };

  /**
   * A server takes the client's requests slower than they come (in its socket's buffer, or
   * waiting for its credits): Node stops reading the client until that is back under the backlog
   * (or the server connection closes).
   */
  private serverBehind(link: BackendLink): void {
    if (this.serversBehind.has(link)) return;
    this.serversBehind.add(link);
    const why = `${link.server.name} is behind`;
    const { tcp } = link.client;
    pauseReading(this.socket, why);
    this.log.debug({ event: 'conn.server_behind', server: link.server.name, unsent: link.client.unsent }, `${link.server.name} behind in reading: the client waits`);
    const check = () => {
      if (!tcp.destroyed && link.client.unsent > this.backlog) return;
      tcp.off('drain', check);
      tcp.off('close', check);
      link.client.onCredited = undefined;
      this.serversBehind.delete(link);
      resumeReading(this.socket, why);
    };
    tcp.on('drain', check);
    tcp.on('close', check);
    link.client.onCredited = check;
  }

  /** Closes the connection with one log line saying why. */
  close(reason: string): void {
    if (this.closed) return;
    this.log.warn({ event: 'conn.closed', reason }, `closing connection: ${reason}`);
    this.closed = true;
    this.socket.destroy();
    this.cleanup();
  }

  /** Releases every session, tree, open and backend connection of this connection (idempotent). */
  private cleanup(): void {
    if (this.released) return;
    this.released = true;
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = undefined;
    this.closed = true;
    this.kernel.drop();
    this.state.backends.closeAll();
    this.ctx.pools.delete(this.state.id);
    this.inflight.clear();
    this.asyncs.clear();
    this.recovering.clear();
    for (const s of this.ctx.sessions.byConnection(this.state.id)) destroySession(this.ctx, s);
    this.onClose(this);
  }
}
