/**
 * An rtnetlink socket over the `netlink` package's raw socket (its only native part): requests
 * with sequence numbers, ACKs and dumps, and multicast notifications. Message layouts live in
 * rtnetlink.ts; this file only moves bytes. The socket belongs to the network namespace of the
 * process that opens it: the DSR's own.
 */
import { EventEmitter } from 'node:events';
import { endianness } from 'node:os';
import { constants } from 'node:os';
import { RawNetlinkSocket } from 'netlink';
import { DsrError, ErrorCode, SystemError, errorMessage } from '../control/errors.js';
import {
  formatMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  parseError,
  parseMessages,
  type NlMessage,
} from './rtnetlink.js';

const NETLINK_ROUTE = 0;
const DEFAULT_TIMEOUT_MS = 3000;
/** Room for a burst of link notifications (every port flapping at once) before ENOBUFS. */
const EVENT_RCVBUF = 1 << 20;

const errnoName = (errno: number) => Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;

/** A kernel refusal: `operation` names the step, `errno` the kernel's reason. */
export class NetlinkError extends SystemError {
  constructor(operation: string, errno: number, detail?: string) {
    super(ErrorCode.NETLINK, operation, `${errnoName(errno)}${detail ? `: ${detail}` : ''}`, errno);
  }
}

interface Pending {
  operation: string;
  dump: boolean;
  replies: NlMessage[];
  resolve: (m: NlMessage[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Events {
  /** A message nobody asked for: a multicast notification. */
  notification: [NlMessage];
  /** The socket lost notifications (ENOBUFS) or failed: state must be read again. */
  overrun: [Error];
}

export class RtnlSocket extends EventEmitter<Events> {
  private readonly raw: RawNetlinkSocket;
  private readonly pending = new Map<number, Pending>();
  private seq = 1;
  private closed = false;
  /** One request in flight: the kernel refuses a second dump on a socket with EBUSY. */
  private queue: Promise<unknown> = Promise.resolve();

  /** Opens a NETLINK_ROUTE socket; with groups, it also receives those multicast groups' notifications. */
  constructor(groups: number[] = []) {
    super();
    if (endianness() !== 'LE') throw new DsrError(ErrorCode.NETLINK, 'netlink codecs are little-endian; this host is big-endian');
    try {
      this.raw = new RawNetlinkSocket(NETLINK_ROUTE, groups.length ? { recvBufferSize: EVENT_RCVBUF, sendBufferSize: 0 } : undefined);
      for (const g of groups) this.raw.addMembership(g);
    } catch (e) {
      throw new DsrError(ErrorCode.NETLINK, `open a netlink socket: ${errorMessage(e)}`, { cause: e });
    }
    this.raw.on('message', (b) => this.receive(b));
    this.raw.on('error', (e) => this.emit('overrun', e));
    // Only requests keep the process alive; a notification socket must not hold a stopping daemon.
    this.raw.unref();
  }

  /** Sends a request and resolves with its replies: a dump's entries, or [] for an ACK. */
  request(operation: string, type: number, flags: number, payload: Buffer, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<NlMessage[]> {
    const run = this.queue.then(() => this.send(operation, type, flags, payload, timeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private send(operation: string, type: number, flags: number, payload: Buffer, timeoutMs: number): Promise<NlMessage[]> {
    if (this.closed) return Promise.reject(new DsrError(ErrorCode.NETLINK, `${operation}: the netlink socket is closed`));
    const seq = this.seq;
    this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    const msg = formatMessage({ type, flags: flags | NLM_F_REQUEST | NLM_F_ACK, seq, pid: 0 }, payload);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(seq, new DsrError(ErrorCode.NETLINK, `${operation}: no answer from the kernel within ${timeoutMs} ms`)), timeoutMs);
      this.pending.set(seq, { operation, dump, replies: [], resolve, reject, timer });
      if (this.pending.size === 1) this.raw.ref();
      this.raw.send(msg, {}, (e) => {
        if (e) this.settle(seq, new NetlinkError(operation, e.errno ?? 0, 'send failed'));
      });
    });
  }

  /** Resolves (no error) or rejects the request `seq` and forgets it. */
  private settle(seq: number, error?: Error): void {
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    clearTimeout(p.timer);
    if (this.pending.size === 0) this.raw.unref();
    if (error) p.reject(error);
    else p.resolve(p.replies);
  }

  private receive(b: Buffer): void {
    let msgs: NlMessage[];
    try {
      msgs = parseMessages(b);
    } catch (e) {
      this.emit('overrun', e instanceof Error ? e : new Error(String(e)));
      return;
    }
    for (const m of msgs) {
      const p = m.seq !== 0 ? this.pending.get(m.seq) : undefined;
      if (!p) {
        if (m.type !== NLMSG_NOOP && m.type !== NLMSG_ERROR && m.type !== NLMSG_DONE) this.emit('notification', m);
        continue;
      }
      if (m.type === NLMSG_ERROR) {
        const err = parseError(m);
        this.settle(m.seq, err.errno === 0 ? undefined : new NetlinkError(p.operation, err.errno, err.message));
      } else if (m.type === NLMSG_DONE) {
        // A dump that changed under the kernel's feet is incomplete: the caller retries.
        this.settle(m.seq, m.flags & NLM_F_DUMP_INTR ? new DsrError(ErrorCode.NETLINK, `${p.operation}: dump interrupted by a change`) : undefined);
      } else if (m.type === NLMSG_OVERRUN) {
        this.settle(m.seq, new DsrError(ErrorCode.NETLINK, `${p.operation}: kernel reported an overrun`));
      } else {
        p.replies.push(m);
        // A reply that is not part of a dump (no NLM_F_MULTI) is the whole answer.
        if (!p.dump && !(m.flags & NLM_F_MULTI)) this.settle(m.seq);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const seq of [...this.pending.keys()]) this.settle(seq, new DsrError(ErrorCode.NETLINK, 'the netlink socket was closed'));
    this.raw.close();
  }
}
