/**
 * An SMB2 client connection: NEGOTIATE (all five dialects, 3.1.1 preauth integrity and
 * signing contexts), NTLM session setup with an NT hash, then requests matched to responses
 * by MessageId, signed when the session signs. The DSR uses it toward storage servers; tests
 * use it to drive the DSR with exact bytes, including bytes no well-behaved client sends.
 */
import { randomBytes } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { PreauthIntegrity, signingAlgorithm, signingKey, signMessage, verifyMessage } from '../auth/smb2-signing.js';
import { SpnegoClient } from '../auth/spnego.js';
import { DsrError, ErrorCode, ProtocolError } from '../errors.js';
import { encodeFrame, FrameDecoder, NETBIOS_MAX_LENGTH } from '../wire/netbios.js';
import { NtStatus, ntStatusName } from '../wire/ntstatus.js';
import { splitCompound } from '../wire/smb2/compound.js';
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
import { decodeHeader, header, type Smb2Header } from '../wire/smb2/header.js';
import { encodeMessage } from '../wire/smb2/message.js';
import { decodeNegotiateResponse, encodeNegotiateRequest, findNegotiateContext, type NegotiateResponse } from '../wire/smb2/negotiate.js';
import { decodeSessionSetupResponse, encodeSessionSetupRequest } from '../wire/smb2/session-setup.js';

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
  /** Per-request time limit. */
  timeoutMs?: number;
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
}

interface Waiter {
  resolve: (r: Smb2Response) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  command: number;
  allowError: boolean;
}

export class Smb2Client {
  dialect = 0;
  sessionId = 0n;
  negotiated: NegotiateResponse | undefined;
  private signKey: Buffer | undefined;
  private signAlg: number = SigningAlgorithm.HMAC_SHA256;
  private signingAlgorithmId: number | undefined;
  private preauth: PreauthIntegrity | undefined;
  private nextMessageId = 0n;
  private credits = 1;
  private readonly waiters = new Map<bigint, Waiter>();
  private readonly decoder = new FrameDecoder(NETBIOS_MAX_LENGTH);
  private closedError: Error | undefined;
  /** Every frame that arrived, for tests that look at raw bytes. */
  readonly onFrame: ((frame: Buffer) => void)[] = [];

  private constructor(
    private readonly socket: Socket,
    private readonly options: Smb2ClientOptions,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      for (const f of frames) this.onResponseFrame(f);
    });
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new DsrError(ErrorCode.PROTOCOL, 'connection closed by the server')));
  }

  static connect(options: Smb2ClientOptions): Promise<Smb2Client> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: options.host, port: options.port ?? 445 });
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new Smb2Client(socket, options));
      });
      socket.once('error', reject);
    });
  }

  /** Resolves when the server closes the connection (or at once if it has). */
  get closed(): Promise<Error> {
    if (this.closedError) return Promise.resolve(this.closedError);
    return new Promise((resolve) => this.socket.once('close', () => resolve(this.closedError ?? new Error('closed'))));
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  private fail(e: Error): void {
    if (!this.closedError) this.closedError = e;
    for (const [id, w] of this.waiters) {
      clearTimeout(w.timer);
      w.reject(e);
      this.waiters.delete(id);
    }
    this.socket.destroy();
  }

  private onResponseFrame(frame: Buffer): void {
    for (const h of this.onFrame) h(frame);
    let msgs: Buffer[];
    try {
      msgs = splitCompound(frame);
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    for (const msg of msgs) {
      const hdr = decodeHeader(msg);
      this.credits += hdr.Credit;
      if (hdr.Status === NtStatus.STATUS_PENDING && hdr.Flags & Smb2Flags.ASYNC_COMMAND) continue;
      const w = this.waiters.get(hdr.MessageId);
      if (!w) continue;
      this.waiters.delete(hdr.MessageId);
      clearTimeout(w.timer);
      if (this.signKey && hdr.Flags & Smb2Flags.SIGNED && !verifyMessage(msg, this.signKey, this.signAlg)) {
        w.reject(new ProtocolError(`response to MessageId ${hdr.MessageId} has a bad signature`));
        continue;
      }
      const ok = hdr.Status === NtStatus.STATUS_SUCCESS || hdr.Status === NtStatus.STATUS_MORE_PROCESSING_REQUIRED || hdr.Status === NtStatus.STATUS_BUFFER_OVERFLOW;
      if (!ok && !w.allowError) w.reject(new Smb2StatusError(hdr.Status, hdr.Command));
      else w.resolve({ hdr, msg: Buffer.from(msg) });
    }
  }

  /** Sends one request and waits for its final response. */
  request(command: number, body: Buffer, o: RequestOptions = {}): Promise<Smb2Response> {
    const charge = o.creditCharge ?? 1;
    const messageId = this.nextMessageId;
    this.nextMessageId += BigInt(Math.max(charge, 1));
    this.credits -= Math.max(charge, 1);
    const h = header({
      Command: command,
      CreditCharge: this.dialect === Smb2Dialect.SMB202 ? 0 : charge,
      Credit: o.creditRequest ?? 64,
      Flags: o.flags ?? 0,
      MessageId: messageId,
      TreeId: o.treeId ?? 0,
      SessionId: this.sessionId,
    });
    const msg = encodeMessage(h, body);
    if (this.signKey && command !== Smb2Command.NEGOTIATE) signMessage(msg, this.signKey, this.signAlg);
    return this.sendAndWait(msg, messageId, command, o.allowError ?? false);
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
  expect(messageId: bigint, command: number): Promise<Smb2Response> {
    return this.wait(messageId, command, true);
  }

  /** Reserves a MessageId for a hand-built request (advances the sequence like a real send). */
  takeMessageId(charge = 1): bigint {
    const id = this.nextMessageId;
    this.nextMessageId += BigInt(Math.max(charge, 1));
    return id;
  }

  private sendAndWait(msg: Buffer, messageId: bigint, command: number, allowError: boolean): Promise<Smb2Response> {
    const p = this.wait(messageId, command, allowError);
    this.socket.write(encodeFrame(msg));
    this.preauthSent(command, msg);
    return p;
  }

  private wait(messageId: bigint, command: number, allowError: boolean): Promise<Smb2Response> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(messageId);
        reject(new DsrError(ErrorCode.PROTOCOL, `no response to MessageId ${messageId} within ${this.options.timeoutMs ?? 10000} ms`));
      }, this.options.timeoutMs ?? 10000);
      this.waiters.set(messageId, { resolve, reject, timer, command, allowError });
    });
  }

  private preauthSent(command: number, msg: Buffer): void {
    if (this.preauth && (command === Smb2Command.NEGOTIATE || command === Smb2Command.SESSION_SETUP)) this.preauth.update(msg);
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
    const r = await this.request(Smb2Command.NEGOTIATE, body, { creditCharge: 0, creditRequest: 1 });
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

  /** NTLM logon with the user's NT hash. Rejects with Smb2StatusError (e.g. STATUS_LOGON_FAILURE). */
  async sessionSetup(user: string, ntHash: Buffer, domain = ''): Promise<{ sessionFlags: number }> {
    try {
      return await this.logon(user, ntHash, domain);
    } catch (e) {
      // A failed logon leaves no session on the server; the next attempt starts afresh.
      this.sessionId = 0n;
      throw e;
    }
  }

  private async logon(user: string, ntHash: Buffer, domain: string): Promise<{ sessionFlags: number }> {
    const spnego = new SpnegoClient({ user, domain, workstation: 'DSR', ntHash });
    const preauth = this.preauth?.clone();
    let token = spnego.initial();
    for (;;) {
      const body = encodeSessionSetupRequest({
        Flags: 0,
        SecurityMode: Smb2SecurityMode.SIGNING_ENABLED | (this.options.requireSigning ? Smb2SecurityMode.SIGNING_REQUIRED : 0),
        Capabilities: 0,
        Channel: 0,
        SecurityBuffer: token,
        PreviousSessionId: 0n,
      });
      const h = header({ Command: Smb2Command.SESSION_SETUP, CreditCharge: 1, Credit: 64, MessageId: this.takeMessageId(), SessionId: this.sessionId });
      const msg = encodeMessage(h, body);
      preauth?.update(msg);
      const p = this.wait(h.MessageId, Smb2Command.SESSION_SETUP, false);
      this.socket.write(encodeFrame(msg));
      const r = await p;
      this.sessionId = r.hdr.SessionId;
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
      if (res.SessionFlags === 0) {
        this.signAlg = signingAlgorithm(this.dialect, this.signingAlgorithmId);
        const key = signingKey(this.dialect, step.sessionKey, preauth?.value);
        const mustSign = this.dialect === Smb2Dialect.SMB311 || this.options.requireSigning || (this.negotiated!.SecurityMode & Smb2SecurityMode.SIGNING_REQUIRED) !== 0;
        if (mustSign) {
          if (!(r.hdr.Flags & Smb2Flags.SIGNED) || !verifyMessage(r.msg, key, this.signAlg)) throw new ProtocolError('the final SESSION_SETUP response is not signed correctly');
          this.signKey = key;
        }
      }
      return { sessionFlags: res.SessionFlags };
    }
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
