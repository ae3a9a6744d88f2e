/**
 * An SMB2 client connection: NEGOTIATE (all five dialects, 3.1.1 preauth integrity and
 * signing contexts), NTLM session setup with an NT hash, then requests matched to responses
 * by MessageId. The DSR uses it toward storage servers, with many sessions on one connection
 * (one per client session, paragraphs 0075-0077); tests use it to drive the DSR with exact
 * bytes, including bytes no well-behaved client sends.
 *
 * This object is the one authority for the connection's MessageIds (MS-SMB2 3.2.4.1.3): every
 * request, forwarded or its own, takes its ids here, and waits here when the server has not
 * granted enough credits.
 */
import { randomBytes } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { PreauthIntegrity, signingAlgorithm, signingKey, signMessage, verifyMessage } from '../auth/smb2-signing.js';
import { SpnegoClient } from '../auth/spnego.js';
import { DsrError, ErrorCode, ProtocolError } from '../errors.js';
import { encodeFrame, FrameDecoder, NETBIOS_MAX_LENGTH } from '../wire/netbios.js';
import { NtStatus, ntStatusName } from '../wire/ntstatus.js';
import { joinCompound, splitCompound } from '../wire/smb2/compound.js';
import {
  HashAlgorithm,
  NegotiateContextType,
  SigningAlgorithm,
  Smb2Command,
  SMB2_DIALECTS,
  Smb2Dialect,
  Smb2Flags,
  Smb2GlobalCap,
  Smb2SecurityMode,
} from '../wire/smb2/constants.js';
import { decodeHeader, Hdr, header, setMessageId, type Smb2Header } from '../wire/smb2/header.js';
import { encodeMessage } from '../wire/smb2/message.js';
import { decodeNegotiateResponse, encodeNegotiateRequest, findNegotiateContext, type NegotiateResponse } from '../wire/smb2/negotiate.js';
import { decodeSessionSetupResponse, encodeSessionSetupRequest } from '../wire/smb2/session-setup.js';
import { encodeReservedBody } from '../wire/smb2/simple.js';
import { framePool } from './frame-pool.js';
import { feedTail, type RawTail, sendFrame, sharedRead } from './transport.js';


/** MessageId of unsolicited messages: oplock and lease break notifications (MS-SMB2 3.3.4.6). */
export const UNSOLICITED_MESSAGE_ID = 0xffffffffffffffffn;

/** A response whose Status is an error, as seen by the caller of a request. */
export class Smb2StatusError extends DsrError {
  constructor(
    readonly status: number,
    readonly command: number,
  ) {
    super(ErrorCode.PROTOCOL, `${ntStatusName(status)} for command ${command}`);
  }
}

export interface Smb2ClientOptions {
  host: string;
  port?: number;
  /** Dialects to offer; all five by default. */
  dialects?: readonly number[];
  /** Ask the server to sign everything (SecurityMode SIGNING_REQUIRED). */
  requireSigning?: boolean;
  /** Per-request time limit for `request` (forwarded requests have none: a READ may pend forever). */
  timeoutMs?: number;
  /** Source address to connect from. */
  localAddress?: string;
}

export interface Smb2Response {
  hdr: Smb2Header;
  /** The whole response message, header included. */
  msg: Buffer;
}

export interface RequestOptions {
  treeId?: number;
  creditCharge?: number;
  /** Credits to ask for (default 64). */
  creditRequest?: number;
  flags?: number;
  /** Resolve with error statuses instead of rejecting. */
  allowError?: boolean;
  /** Session to send on (default: the one `sessionSetup` made). */
  session?: ClientSession;
}

/** One authenticated session on this connection. */
export interface ClientSession {
  readonly sessionId: bigint;
  /** Requests are signed with `signKey` (the server or the caller wants signing). */
  readonly signs: boolean;
  readonly signKey: Buffer | undefined;
  readonly signAlg: number;
  readonly sessionFlags: number;
}

/** One message handed to `send`: the caller built it; this client sets MessageId and signs it. */
export interface Outbound {
  /** A complete request message, header included; MessageId, NextCommand and Signature are overwritten. */
  msg: Buffer;
  session: ClientSession | undefined;
  /**
   * Every response to it: the interim STATUS_PENDING one (if any) and the final one. `release`
   * is given when the message is the only one in a pooled frame: whoever keeps `msg` past this
   * call calls it once done with the bytes (else the frame is left to the garbage collector).
   */
  onResponse(msg: Buffer, hdr: Smb2Header, release?: () => void): void;
  /** The connection failed before the final response. */
  onError(e: Error): void;
  /** Sees the message exactly as sent (preauth integrity hashing). */
  onSent?(msg: Buffer): void;
  /** Runs once the socket no longer needs the message's bytes. */
  onWritten?(): void;
}

/** Where a sent request is: its MessageId once sent, its AsyncId once the server went async. */
export interface InFlight {
  messageId: bigint | undefined;
  asyncId: bigint | undefined;
  done: boolean;
}

interface Pending {
  out: Outbound;
  handle: InFlight;
}

/** The bytes of a chain's messages. */
const chainBytes = (items: readonly Outbound[]): number => items.reduce((n, o) => n + o.msg.length, 0);

/** Hands a response to its request; a response the caller cannot use (malformed body) fails that request alone. */
function deliver(out: Outbound, msg: Buffer, hdr: Smb2Header, release?: () => void): void {
  try {
    out.onResponse(msg, hdr, release);
  } catch (e) {
    out.onError(e instanceof Error ? e : new Error(String(e)));
  }
}

export class Smb2Client {
  dialect = 0;
  /** The session `sessionSetup` made (0 before). */
  sessionId = 0n;
  negotiated: NegotiateResponse | undefined;
  private defaultSession: ClientSession | undefined;
  private signingAlgorithmId: number | undefined;
  private preauth: PreauthIntegrity | undefined;
  private nextMessageId = 0n;
  /** Credits granted and not yet used. */
  private credits = 1;
  private readonly pending = new Map<bigint, Pending>();
  /** Chains waiting for credits, in order. */
  private readonly waiting: { items: Outbound[]; handles: InFlight[] }[] = [];
  /** Bytes of the chains waiting for credits. */
  private waitingBytes = 0;
  /** Runs after chains that waited for credits went out (`unsent` dropped; the socket's 'drain' says the rest). */
  onCredited: (() => void) | undefined;
  private readonly decoder = new FrameDecoder(NETBIOS_MAX_LENGTH, (n) => framePool.take(n));
  private closedError: Error | undefined;
  /** Every frame that arrived, for tests that look at raw bytes. */
  readonly onFrame: ((frame: Buffer) => void)[] = [];
  /** Oplock and lease break notifications (MessageId all ones). */
  onUnsolicited: ((msg: Buffer, hdr: Smb2Header) => void) | undefined;
  /** Runs once when the connection ends, for whatever reason. */
  onClosed: ((e: Error) => void) | undefined;
  /**
   * Responses to MessageIds this client did not send: requests the kernel relay forwarded on
   * this connection before user space took it back. Without a handler they are dropped.
   */
  onStray: ((msg: Buffer, hdr: Smb2Header, release?: () => void) => void) | undefined;
  /** While the kernel relay holds the connection: what Node still reads, copied, for later. */
  private held: Buffer[] | undefined;
  private onHeld: (() => void) | undefined;
  /** The tail of a message the kernel relay was forwarding when it let go: passed on raw, not framed. */
  private rawTail: RawTail | undefined;
  /** Requests wait (the kernel relay's tail of a client message is still going to the server). */
  private sendsHeld = false;

  private constructor(
    private readonly socket: Socket,
    private readonly options: Smb2ClientOptions,
  ) {
    socket.setNoDelay(true);
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new DsrError(ErrorCode.PROTOCOL, 'connection closed by the server')));
  }

  static connect(options: Smb2ClientOptions): Promise<Smb2Client> {
    return new Promise((resolve, reject) => {
      const read = sharedRead();
      const socket = createConnection({ host: options.host, port: options.port ?? 445, ...(options.localAddress ? { localAddress: options.localAddress } : {}), onread: read.onread });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new DsrError(ErrorCode.PROTOCOL, `connect to ${options.host}:${options.port ?? 445} timed out`));
      }, options.timeoutMs ?? 10000);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', reject);
        const client = new Smb2Client(socket, options);
        read.attach((chunk) => client.onChunk(chunk));
        resolve(client);
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /** Resolves when the connection ends (or at once if it has). */
  get closed(): Promise<Error> {
    if (this.closedError) return Promise.resolve(this.closedError);
    return new Promise((resolve) => this.socket.once('close', () => resolve(this.closedError ?? new Error('closed'))));
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /** Requests sent and not finally answered, plus those waiting for credits. */
  get inFlight(): number {
    return this.pending.size + this.waiting.reduce((n, w) => n + w.items.length, 0);
  }

  /** The TCP socket, for the kernel relay (src/offload/relay.ts) to hold. */
  get tcp(): Socket {
    return this.socket;
  }

  /**
   * Nothing sent unanswered but requests the server made async (an interim response came),
   * nothing waiting for credits, no partial frame, not held, no raw tail under way.
   */
  get quiet(): boolean {
    if (this.waiting.length > 0 || this.decoder.pending > 0 || this.held !== undefined || this.rawTail !== undefined || this.sendsHeld) return false;
    for (const p of this.pending.values()) if (p.handle.asyncId === undefined) return false;
    return true;
  }

  /** The MessageId sequence (MS-SMB2 3.2.4.1.3): the next id, and credits granted and not used. */
  get sequence(): { nextMessageId: bigint; credits: number } {
    return { nextMessageId: this.nextMessageId, credits: this.credits };
  }

  /**
   * The kernel relay takes the connection: from now on every chunk Node reads is kept and
   * `onHeld` runs (the caller takes the connection back), until `takeBack`.
   */
  hold(onHeld: () => void): void {
    this.held = [];
    this.onHeld = onHeld;
  }

  /**
   * The connection back from the kernel relay, with the sequence it left (the ids and credits
   * the kernel used and passed on); what arrived meanwhile is handled now, in order.
   */
  takeBack(sequence: { nextMessageId: bigint; credits: number }, tail?: { carry: Buffer; raw: number; to: (bytes: Buffer) => void; done: () => void }): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.onHeld = undefined;
    this.nextMessageId = sequence.nextMessageId;
    this.credits = sequence.credits;
    // The carry follows a raw tail (the skb it was cut from passed), else precedes what was held.
    const carry = tail?.carry.length ? tail.carry : undefined;
    if (tail && tail.raw > 0) {
      this.rawTail = {
        left: tail.raw,
        to: tail.to,
        done: () => {
          this.rawTail = undefined;
          tail.done();
          if (carry) this.onChunk(carry);
        },
      };
    } else {
      tail?.done();
      if (carry) this.onChunk(carry);
    }
    for (const chunk of held) this.onChunk(chunk);
    this.drain();
  }

  /** Requests wait until `releaseSends` (bytes of the kernel relay's still go to the server first). */
  holdSends(): void {
    this.sendsHeld = true;
  }

  releaseSends(): void {
    this.sendsHeld = false;
    this.drain();
  }

  /** The session `sessionSetup` made. */
  get session(): ClientSession | undefined {
    return this.defaultSession;
  }

  private fail(e: Error): void {
    if (this.closedError) return;
    this.closedError = e;
    const all = [...this.pending.values()].map((p) => p.out);
    for (const w of this.waiting.splice(0)) all.push(...w.items);
    this.waitingBytes = 0;
    this.pending.clear();
    for (const o of all) o.onError(e);
    this.socket.destroy();
    this.onClosed?.(e);
  }

  private onResponseFrame(frame: Buffer): void {
    for (const h of this.onFrame) h(frame);
    try {
      this.dispatchResponses(splitCompound(frame));
    } catch (e) {
      // A server that breaks framing or headers cannot be trusted with the rest of the stream.
      this.fail(e as Error);
    }
  }

  /** Bytes read into the shared buffer: copied out as frames before this returns. */
  private onChunk(chunk: Buffer): void {
    if (this.closedError) return;
    if (this.held) {
      this.held.push(Buffer.from(chunk));
      this.onHeld?.();
      return;
    }
    if (this.rawTail) {
      const { rest, finished } = feedTail(this.rawTail, chunk);
      if (finished) this.rawTail = undefined;
      chunk = rest;
      if (chunk.length === 0) return;
    }
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    for (const f of frames) this.onResponseFrame(f);
  }

  private dispatchResponses(msgs: Buffer[]): void {
    // Only a frame holding one message can be handed on whole (a compound's parts share it).
    const release = msgs.length === 1 ? () => framePool.release(msgs[0]!) : undefined;
    for (const msg of msgs) {
      const hdr = decodeHeader(msg);
      this.credits += hdr.Credit;
      if (hdr.MessageId === UNSOLICITED_MESSAGE_ID) {
        this.onUnsolicited?.(msg, hdr);
        continue;
      }
      const p = this.pending.get(hdr.MessageId);
      if (!p) {
        this.onStray?.(msg, hdr, release);
        continue;
      }
      if (hdr.Status === NtStatus.STATUS_PENDING && hdr.Flags & Smb2Flags.ASYNC_COMMAND) {
        p.handle.asyncId = hdr.AsyncId;
        deliver(p.out, msg, hdr);
        continue;
      }
      this.pending.delete(hdr.MessageId);
      p.handle.done = true;
      const s = p.out.session;
      if (s?.signKey && s.signs && hdr.Flags & Smb2Flags.SIGNED && !verifyMessage(msg, s.signKey, s.signAlg)) {
        p.out.onError(new ProtocolError(`response to MessageId ${hdr.MessageId} has a bad signature`));
        continue;
      }
      deliver(p.out, msg, hdr, release);
    }
    this.drain();
  }

  private charge(msg: Buffer): number {
    return this.dialect === Smb2Dialect.SMB202 ? 1 : Math.max(msg.readUInt16LE(Hdr.CreditCharge), 1);
  }

  /**
   * Sends messages as one compound frame (a single message is a chain of one): each takes
   * CreditCharge consecutive MessageIds and is signed with its session when that session
   * signs. Waits, in order, while the server has not granted enough credits.
   */
  send(items: Outbound[]): InFlight[] {
    const handles = items.map(() => ({ messageId: undefined, asyncId: undefined, done: false }));
    if (this.closedError) {
      for (const o of items) o.onError(this.closedError);
      return handles;
    }
    this.waiting.push({ items, handles });
    this.waitingBytes += chainBytes(items);
    this.drain(false);
    return handles;
  }

  /** Bytes held for the server: in the socket's buffer, or waiting for credits. */
  get unsent(): number {
    return this.socket.writableLength + this.waitingBytes;
  }

  private drain(credited = true): void {
    let sent = false;
    while (this.waiting.length > 0 && !this.closedError && !this.sendsHeld) {
      const w = this.waiting[0]!;
      const need = w.items.reduce((n, o) => n + this.charge(o.msg), 0);
      // With nothing in flight no credit can arrive; the server would rather refuse than hang.
      if (need > this.credits && this.pending.size > 0) break;
      this.waiting.shift();
      this.waitingBytes -= chainBytes(w.items);
      this.transmit(w.items, w.handles);
      sent = true;
    }
    if (sent && credited) this.onCredited?.();
  }

  private transmit(items: Outbound[], handles: InFlight[]): void {
    items.forEach((o, i) => {
      const charge = this.charge(o.msg);
      const id = this.nextMessageId;
      this.nextMessageId += BigInt(charge);
      this.credits -= charge;
      setMessageId(o.msg, id);
      handles[i]!.messageId = id;
      this.pending.set(id, { out: o, handle: handles[i]! });
    });
    // A message sent alone may come from inside a client's compound: it must not point past itself.
    if (items.length === 1) items[0]!.msg.writeUInt32LE(0, Hdr.NextCommand);
    const frame = items.length === 1 ? items[0]!.msg : joinCompound(items.map((o) => o.msg));
    let at = 0;
    for (const o of items) {
      const next = frame.readUInt32LE(at + Hdr.NextCommand);
      const end = next === 0 ? frame.length : at + next;
      const msg = frame.subarray(at, end);
      if (this.signs(o)) signMessage(msg, o.session!.signKey!, o.session!.signAlg);
      o.onSent?.(msg);
      at = end;
    }
    if (items.length === 1) {
      sendFrame(this.socket, frame, items[0]!.onWritten);
    } else {
      // joinCompound copied the messages: their own buffers are free already.
      sendFrame(this.socket, frame);
      for (const o of items) o.onWritten?.();
    }
  }

  /** Whether a request goes out signed. */
  private signs(o: Outbound): boolean {
    const s = o.session;
    const command = o.msg.readUInt16LE(Hdr.Command);
    // 3.1.1 servers refuse an unsigned TREE_CONNECT from a signing-capable session (MS-SMB2 3.3.5.2.4).
    const sign = s?.signs || (command === Smb2Command.TREE_CONNECT && this.dialect === Smb2Dialect.SMB311);
    return sign === true && s?.signKey !== undefined && command !== Smb2Command.NEGOTIATE;
  }

  /**
   * Asks the server to cancel a request (MS-SMB2 3.2.4.24). A request still waiting for
   * credits is withdrawn instead; returns false then, and the caller answers it itself.
   */
  cancel(handle: InFlight, session: ClientSession | undefined): boolean {
    if (handle.done) return true;
    if (handle.messageId === undefined) {
      for (const w of this.waiting) {
        const i = w.handles.indexOf(handle);
        if (i < 0) continue;
        w.handles.splice(i, 1);
        this.waitingBytes -= w.items.splice(i, 1)[0]!.msg.length;
        if (w.items.length === 0) this.waiting.splice(this.waiting.indexOf(w), 1);
        handle.done = true;
        return false;
      }
      return true;
    }
    const isAsync = handle.asyncId !== undefined;
    const h = header({
      Command: Smb2Command.CANCEL,
      MessageId: isAsync ? 0n : handle.messageId,
      Flags: isAsync ? Smb2Flags.ASYNC_COMMAND : 0,
      AsyncId: handle.asyncId ?? 0n,
      SessionId: session?.sessionId ?? 0n,
    });
    const msg = encodeMessage(h, encodeReservedBody());
    if (session?.signs && session.signKey) signMessage(msg, session.signKey, session.signAlg);
    sendFrame(this.socket, msg);
    return true;
  }

  /** Sends one request and waits for its final response. */
  request(command: number, body: Buffer, o: RequestOptions = {}): Promise<Smb2Response> {
    const session = o.session ?? this.defaultSession;
    const h = header({
      Command: command,
      CreditCharge: this.dialect === Smb2Dialect.SMB202 ? 0 : (o.creditCharge ?? 1),
      Credit: o.creditRequest ?? 64,
      Flags: o.flags ?? 0,
      TreeId: o.treeId ?? 0,
      SessionId: session?.sessionId ?? this.sessionId,
    });
    return this.exchange(encodeMessage(h, body), session, o.allowError ?? false);
  }

  /** Sends a built message (MessageId assigned here) and waits for its final response. */
  private exchange(msg: Buffer, session: ClientSession | undefined, allowError: boolean, onSent?: (m: Buffer) => void): Promise<Smb2Response> {
    return new Promise((resolve, reject) => {
      const limit = this.options.timeoutMs ?? 10000;
      const timer = setTimeout(() => {
        if (handle.messageId !== undefined) this.pending.delete(handle.messageId);
        reject(new DsrError(ErrorCode.PROTOCOL, `no response to MessageId ${handle.messageId} within ${limit} ms`));
      }, limit);
      const [handle] = this.send([
        {
          msg,
          session,
          onSent,
          onResponse: (m, hdr) => {
            if (!handle?.done) return;
            clearTimeout(timer);
            const ok = hdr.Status === NtStatus.STATUS_SUCCESS || hdr.Status === NtStatus.STATUS_MORE_PROCESSING_REQUIRED || hdr.Status === NtStatus.STATUS_BUFFER_OVERFLOW;
            if (!ok && !allowError) reject(new Smb2StatusError(hdr.Status, hdr.Command));
            else resolve({ hdr, msg: Buffer.from(m) });
          },
          onError: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        },
      ]) as [InFlight];
    });
  }

  /** Sends bytes as one frame without looking at them (for malformed-input tests). */
  sendRaw(payload: Buffer): void {
    this.socket.write(encodeFrame(payload));
  }

  /** Sends raw bytes (not framed). */
  writeBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits for the response to a MessageId sent with sendRaw. */
  expect(messageId: bigint, _command: number): Promise<Smb2Response> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const limit = this.options.timeoutMs ?? 10000;
      const timer = setTimeout(() => {
        this.pending.delete(messageId);
        reject(new DsrError(ErrorCode.PROTOCOL, `no response to MessageId ${messageId} within ${limit} ms`));
      }, limit);
      const handle: InFlight = { messageId, asyncId: undefined, done: false };
      const out: Outbound = {
        msg: Buffer.alloc(0),
        session: undefined,
        onResponse: (m, hdr) => {
          if (!handle.done) return;
          clearTimeout(timer);
          resolve({ hdr, msg: Buffer.from(m) });
        },
        onError: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.pending.set(messageId, { out, handle });
    });
  }

  /** Reserves a MessageId for a hand-built request (advances the sequence like a real send). */
  takeMessageId(charge = 1): bigint {
    const id = this.nextMessageId;
    this.nextMessageId += BigInt(Math.max(charge, 1));
    this.credits -= Math.max(charge, 1);
    return id;
  }

  async negotiate(): Promise<NegotiateResponse> {
    const dialects = [...(this.options.dialects ?? SMB2_DIALECTS)];
    const has311 = dialects.includes(Smb2Dialect.SMB311);
    if (has311) this.preauth = new PreauthIntegrity();
    const body = encodeNegotiateRequest({
      SecurityMode: Smb2SecurityMode.SIGNING_ENABLED | (this.options.requireSigning ? Smb2SecurityMode.SIGNING_REQUIRED : 0),
      Reserved: 0,
      Capabilities: Smb2GlobalCap.LARGE_MTU,
      ClientGuid: randomBytes(16),
      Dialects: dialects,
      ...(has311
        ? {
            NegotiateContextList: [
              { ContextType: NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES, Reserved: 0, Data: { HashAlgorithms: [HashAlgorithm.SHA_512], Salt: randomBytes(32) } },
              { ContextType: NegotiateContextType.SIGNING_CAPABILITIES, Reserved: 0, Data: { SigningAlgorithms: [SigningAlgorithm.AES_CMAC, SigningAlgorithm.HMAC_SHA256] } },
            ],
          }
        : {}),
    });
    const msg = encodeMessage(header({ Command: Smb2Command.NEGOTIATE, Credit: 1 }), body);
    const r = await this.exchange(msg, undefined, false, (m) => this.preauth?.update(m));
    const res = decodeNegotiateResponse(r.msg);
    this.dialect = res.DialectRevision;
    if (this.dialect === Smb2Dialect.SMB311) {
      this.preauth?.update(r.msg);
      this.signingAlgorithmId = findNegotiateContext(res.NegotiateContextList ?? [], NegotiateContextType.SIGNING_CAPABILITIES)?.SigningAlgorithms[0];
    } else {
      this.preauth = undefined;
    }
    this.negotiated = res;
    return res;
  }

  /** The server requires every request signed (its NEGOTIATE SecurityMode). */
  get serverRequiresSigning(): boolean {
    return ((this.negotiated?.SecurityMode ?? 0) & Smb2SecurityMode.SIGNING_REQUIRED) !== 0;
  }

  /**
   * NTLM logon with the user's NT hash; this session becomes the default for `request`.
   * Rejects with Smb2StatusError (e.g. STATUS_LOGON_FAILURE).
   */
  async sessionSetup(user: string, ntHash: Buffer, domain = ''): Promise<{ sessionFlags: number }> {
    const s = await this.logon(user, ntHash, domain);
    this.defaultSession = s;
    this.sessionId = s.sessionId;
    return { sessionFlags: s.sessionFlags };
  }

  /**
   * One more NTLM session on this connection. Its requests are signed when the server or the
   * caller requires signing; the final SESSION_SETUP response is verified whenever it is signed.
   */
  async logon(user: string, ntHash: Buffer, domain = ''): Promise<ClientSession> {
    const spnego = new SpnegoClient({ user, domain, workstation: 'DSR', ntHash });
    const preauth = this.preauth?.clone();
    let token = spnego.initial();
    let sessionId = 0n;
    for (;;) {
      const body = encodeSessionSetupRequest({
        Flags: 0,
        SecurityMode: Smb2SecurityMode.SIGNING_ENABLED | (this.options.requireSigning ? Smb2SecurityMode.SIGNING_REQUIRED : 0),
        Capabilities: 0,
        Channel: 0,
        SecurityBuffer: token,
        PreviousSessionId: 0n,
      });
      const msg = encodeMessage(header({ Command: Smb2Command.SESSION_SETUP, CreditCharge: 1, Credit: 64, SessionId: sessionId }), body);
      const r = await this.exchange(msg, undefined, false, (m) => preauth?.update(m));
      sessionId = r.hdr.SessionId;
      const res = decodeSessionSetupResponse(r.msg);
      if (r.hdr.Status === NtStatus.STATUS_MORE_PROCESSING_REQUIRED) {
        preauth?.update(r.msg);
        const step = spnego.step(res.SecurityBuffer);
        if (step.done) throw new ProtocolError('the server wants more after NTLM completed');
        token = step.token;
        continue;
      }
      const step = spnego.step(res.SecurityBuffer);
      if (!step.done) throw new ProtocolError('NTLM did not complete');
      const signAlg = signingAlgorithm(this.dialect, this.signingAlgorithmId);
      // Guest and anonymous sessions have no key to sign with (MS-SMB2 3.2.5.3.1).
      if (res.SessionFlags !== 0) return { sessionId, signs: false, signKey: undefined, signAlg, sessionFlags: res.SessionFlags };
      const key = signingKey(this.dialect, step.sessionKey, preauth?.value);
      const signs = this.options.requireSigning === true || this.serverRequiresSigning;
      if (this.dialect === Smb2Dialect.SMB311 || signs) {
        if (!(r.hdr.Flags & Smb2Flags.SIGNED) || !verifyMessage(r.msg, key, signAlg)) throw new ProtocolError('the final SESSION_SETUP response is not signed correctly');
      }
      return { sessionId, signs, signKey: key, signAlg, sessionFlags: res.SessionFlags };
    }
  }

  /** Ends a session (MS-SMB2 3.2.4.21); the connection stays. */
  async logoff(session: ClientSession): Promise<void> {
    await this.request(Smb2Command.LOGOFF, encodeReservedBody(), { session, allowError: true });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
