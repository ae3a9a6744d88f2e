/**
 * One client TCP connection: framing, the per-message checks of MS-SMB2 3.3.5.2 in their
 * order (sequence window, session, signature, tree, body), dispatch from the command table,
 * and the reply path (credits, compound joining, signing). Handlers never see a message that
 * failed a check, and a check that fails either answers with an NTSTATUS or closes the
 * connection with one log line.
 */
import type { Socket } from 'node:net';
import { AuthError, errorMessage, ProtocolError, WireError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Session } from '../tables/sessions.js';
import type { Tree } from '../tables/trees.js';
import { FrameDecoder } from '../wire/netbios.js';
import { NtStatus } from '../wire/ntstatus.js';
import { joinCompound, splitCompound } from '../wire/smb2/compound.js';
import {
  SMB1_PROTOCOL_ID,
  SMB2_COMPRESSION_PROTOCOL_ID,
  SMB2_TRANSFORM_PROTOCOL_ID,
  Smb2Command,
  smb2CommandName,
  Smb2Flags,
} from '../wire/smb2/constants.js';
import type { FileId } from '../wire/smb2/file-id.js';
import { decodeHeader, type Smb2Header } from '../wire/smb2/header.js';
import { encodeMessage } from '../wire/smb2/message.js';
import type { ConnectionState, DsrContext, Smb2Reply, Smb2Request } from './context.js';
import { CreditWindow } from './credits.js';
import { COMMANDS, errorReply } from './dispatch.js';
import { answerSmb1Negotiate } from './negotiate.js';
import { destroySession } from './session-setup.js';
import { signReply, verifyRequest } from './signing.js';

const ALL_ONES_64 = 0xffffffffffffffffn;

/** Thrown inside the pipeline when the connection must be closed. */
class Disconnect extends Error {}

/** A reply on its way out, before compound joining and signing. */
interface Outgoing {
  msg: Buffer;
  signWith: Session | undefined;
  onWire: ((msg: Buffer) => void) | undefined;
  after: (() => void) | undefined;
}

let nextConnectionId = 1;

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

  constructor(
    private readonly socket: Socket,
    private readonly ctx: DsrContext,
    private readonly onClose: (c: Smb2Connection) => void,
  ) {
    const id = nextConnectionId++;
    const clientAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
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
      preauth: undefined,
      authInProgress: new Map(),
      maxTransactSize: ctx.config.smb2.maxTransactSize,
      maxReadSize: ctx.config.smb2.maxReadSize,
      maxWriteSize: ctx.config.smb2.maxWriteSize,
    };
    this.log = ctx.log.child({ conn: id, client: clientAddress });
    this.decoder = new FrameDecoder(ctx.config.maxFrameBytes);
    this.credits = new CreditWindow(ctx.config.smb2.maxCredits);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.log.debug({ event: 'conn.socket_error', err: e.message }, 'socket error'));
    socket.on('close', () => this.cleanup());
    // A connection that never authenticates must not hold resources forever.
    this.authTimer = setTimeout(() => {
      if (!ctx.sessions.byConnection(id).some((s) => s.state === 'valid')) this.close(`no authenticated session within ${ctx.config.limits.authTimeoutSeconds} s`);
    }, ctx.config.limits.authTimeoutSeconds * 1000);
    this.authTimer.unref();
    this.log.debug({ event: 'conn.opened' }, 'connection opened');
  }

  get id(): number {
    return this.state.id;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.close(errorMessage(e));
      return;
    }
    for (const f of frames) {
      this.queue = this.queue.then(() => this.handleFrame(f));
    }
  }

  private async handleFrame(frame: Buffer): Promise<void> {
    if (this.closed) return;
    try {
      const protocol = frame.length >= 4 ? frame.readUInt32LE(0) : 0;
      if (protocol === SMB1_PROTOCOL_ID) {
        const r = answerSmb1Negotiate(this.state, this.ctx, frame, this.credits);
        if ('disconnect' in r) throw new Disconnect(r.disconnect);
        this.send(r.msg);
        return;
      }
      if (protocol === SMB2_TRANSFORM_PROTOCOL_ID || protocol === SMB2_COMPRESSION_PROTOCOL_ID) {
        throw new Disconnect('encrypted or compressed message, but neither was negotiated');
      }
      const msgs = splitCompound(frame);
      const out: Outgoing[] = [];
      let related: { session?: Session; tree?: Tree; fileId?: FileId; status: number } = { status: NtStatus.STATUS_SUCCESS };
      for (let i = 0; i < msgs.length; i++) {
        const r = await this.handleMessage(msgs[i]!, i > 0 ? related : undefined);
        if (!r) continue;
        out.push(r.out);
        related = r.related;
      }
      if (out.length > 0) this.sendReplies(out);
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
   * by the previous message of the same compound frame.
   */
  private async handleMessage(
    msg: Buffer,
    prev: { session?: Session; tree?: Tree; fileId?: FileId; status: number } | undefined,
  ): Promise<{ out: Outgoing; related: { session?: Session; tree?: Tree; fileId?: FileId; status: number } } | undefined> {
    const hdr = decodeHeader(msg);
    if (hdr.Flags & Smb2Flags.SERVER_TO_REDIR) throw new Disconnect('client sent a message flagged as a response');
    if (hdr.Flags & Smb2Flags.ASYNC_COMMAND && hdr.Command !== Smb2Command.CANCEL) throw new Disconnect('client sent an async request that is not CANCEL');
    // 3.3.5.2: nothing but NEGOTIATE before a dialect is chosen.
    if ((this.state.dialect === 0 || this.state.dialect === 0x02ff) && hdr.Command !== Smb2Command.NEGOTIATE) {
      throw new Disconnect(`${smb2CommandName(hdr.Command)} before NEGOTIATE`);
    }
    if (hdr.Command === Smb2Command.CANCEL) {
      // 3.3.5.16: CANCEL consumes no credit and gets no reply. Nothing the DSR answers itself
      // is ever pending, so there is nothing to cancel yet.
      return undefined;
    }
    const def = COMMANDS[hdr.Command];
    if (!def) throw new Disconnect(`unknown command 0x${hdr.Command.toString(16)}`);
    // 3.3.5.2.3 sequence window; a client outside it has lost sync and is disconnected.
    if (!this.credits.consume(hdr.MessageId, this.state.dialect === 0x0202 ? 1 : hdr.CreditCharge)) {
      throw new Disconnect(`MessageId ${hdr.MessageId} (CreditCharge ${hdr.CreditCharge}) is outside the credit window`);
    }
    const isRelated = prev !== undefined && (hdr.Flags & Smb2Flags.RELATED_OPERATIONS) !== 0;
    const fail = (status: number, session?: Session) => this.reply(hdr, errorReply(status), session, isRelated);

    // 3.3.5.2.7.2: a related request after a failed one fails the same way.
    if (isRelated && prev.status !== NtStatus.STATUS_SUCCESS && prev.status !== NtStatus.STATUS_BUFFER_OVERFLOW) {
      return { out: fail(prev.status), related: prev };
    }

    // 3.3.5.2.9 session.
    let session: Session | undefined;
    if (def.session !== 'none') {
      const sid = isRelated && hdr.SessionId === ALL_ONES_64 ? prev.session?.sessionId : hdr.SessionId;
      session = sid !== undefined && sid !== 0n ? this.ctx.sessions.get(sid) : undefined;
      if (session && session.connectionId !== this.state.id) session = undefined;
      const allowNew = def.session === 'optional' && (sid === undefined || sid === 0n);
      if (!session && !allowNew) return { out: fail(NtStatus.STATUS_USER_SESSION_DELETED), related: { status: NtStatus.STATUS_USER_SESSION_DELETED } };
      if (session && session.state !== 'valid' && def.session === 'valid') {
        return { out: fail(NtStatus.STATUS_ACCESS_DENIED), related: { status: NtStatus.STATUS_ACCESS_DENIED } };
      }
      if (session) session.lastSeen = new Date();
    }

    // 3.3.5.2.4 signature.
    if (session && session.secrets) {
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
      const tid = isRelated && hdr.TreeId === 0xffffffff ? prev.tree?.treeId : hdr.TreeId;
      tree = tid !== undefined ? this.ctx.trees.get(session.sessionId, tid) : undefined;
      if (!tree) return { out: fail(NtStatus.STATUS_NETWORK_NAME_DELETED, session), related: { session, status: NtStatus.STATUS_NETWORK_NAME_DELETED } };
    }

    const req: Smb2Request = {
      ctx: this.ctx,
      conn: this.state,
      msg,
      hdr,
      session,
      tree,
      relatedFileId: isRelated ? prev.fileId : undefined,
    };
    let r: Smb2Reply;
    try {
      r = await def.run(req);
    } catch (e) {
      // A typed error with a status is answered with it; one without ends the connection.
      if (!(e instanceof WireError || e instanceof ProtocolError || e instanceof AuthError) || e.status === undefined) throw e;
      this.log.info({ event: 'conn.bad_request', command: smb2CommandName(hdr.Command), err: e.message }, 'request refused');
      r = errorReply(e.status);
    }
    if (r.disconnect) throw new Disconnect(r.disconnect);
    const replySession = r.signWith ?? (r.unsigned ? undefined : (r.sessionId !== undefined ? this.ctx.sessions.get(r.sessionId) : session));
    const out = this.reply(hdr, r, replySession, isRelated);
    const fileId = r.createdFileId ?? (isRelated ? prev.fileId : undefined);
    return { out, related: { session: session ?? replySession, tree: tree ?? (r.treeId !== undefined && session ? this.ctx.trees.get(session.sessionId, r.treeId) : undefined), fileId, status: r.status } };
  }

  /** Builds the response message for a request (credits granted here, signing later). */
  private reply(req: Smb2Header, r: Smb2Reply, session: Session | undefined, related: boolean): Outgoing {
    const signed = session?.secrets !== undefined && (r.signWith !== undefined || (req.Flags & Smb2Flags.SIGNED) !== 0 || session.signingRequired);
    const hdr: Smb2Header = {
      CreditCharge: req.CreditCharge,
      Status: r.status,
      Command: req.Command,
      Credit: this.credits.grant(req.Credit),
      Flags: Smb2Flags.SERVER_TO_REDIR | (related ? Smb2Flags.RELATED_OPERATIONS : 0) | (req.Flags & Smb2Flags.PRIORITY_MASK),
      NextCommand: 0,
      MessageId: req.MessageId,
      Reserved: req.Reserved,
      TreeId: r.treeId ?? req.TreeId,
      AsyncId: 0n,
      SessionId: r.sessionId ?? req.SessionId,
      Signature: Buffer.alloc(16),
    };
    return { msg: encodeMessage(hdr, r.body), signWith: signed ? session : undefined, onWire: r.onWire, after: r.after };
  }

  private sendReplies(out: Outgoing[]): void {
    const frame = joinCompound(out.map((o) => o.msg));
    // Signatures cover each message as it sits in the chain, padding and NextCommand included.
    let at = 0;
    for (const o of out) {
      const next = frame.readUInt32LE(at + 20);
      const end = next === 0 ? frame.length : at + next;
      const msg = frame.subarray(at, end);
      if (o.signWith) signReply(msg, o.signWith);
      o.onWire?.(msg);
      at = end;
    }
    this.send(frame);
    for (const o of out) o.after?.();
  }

  private send(payload: Buffer): void {
    if (this.closed) return;
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32BE(payload.length, 0);
    this.socket.cork();
    this.socket.write(h);
    this.socket.write(payload);
    this.socket.uncork();
  }

  /** Closes the connection with one log line saying why. */
  close(reason: string): void {
    if (this.closed) return;
    this.log.warn({ event: 'conn.closed', reason }, `closing connection: ${reason}`);
    this.closed = true;
    this.socket.destroy();
    this.cleanup();
  }

  /** Releases every session, tree and open of this connection (idempotent). */
  private cleanup(): void {
    if (this.released) return;
    this.released = true;
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = undefined;
    this.closed = true;
    for (const s of this.ctx.sessions.byConnection(this.state.id)) destroySession(this.ctx, s);
    this.onClose(this);
  }
}
