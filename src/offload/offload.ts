/**
 * The only door from the control plane to the fast path. The tables stay authoritative in
 * TypeScript; every change a forwarding path needs is pushed here as a rule, so a kernel
 * implementation (eBPF maps, the storage switch's port map) can mirror them without ever
 * deciding anything itself. `MemoryOffload` keeps the rules in maps: it is what runs where no
 * kernel fast path is loaded, and what unit tests compare the tables against.
 */
import { formatSessionId } from '../control/tables/sessions.js';

/**
 * Why traffic went to user space instead of the kernel fast path: one list (DSR_PASS_* of
 * bpf/include/dsr_abi.h, PASS_REASON_CODES in abi.ts) for the decisions the DSR makes before it
 * offloads, which a session or tree rule's `pass` carries (SIGNED .. LOCAL_TREE), and the relay
 * verdict's own, counted per message (SIGNED and ENCRYPTED when the message says so, NO_SOCK ..
 * JOURNAL).
 */
export const PassReason = {
  /** Signed sessions: the DSR must re-sign every message (the verdict: SMB2_FLAGS_SIGNED). */
  SIGNED: 'signed',
  /** The server requires signing: the DSR must sign every request to it. */
  BACKEND_SIGNED: 'backend-signed',
  /** Encrypted sessions: the DSR must decrypt and re-encrypt every message (the verdict: a transform header). */
  ENCRYPTED: 'encrypted',
  /** Guest and anonymous sessions carry no key and are never forwarded. */
  NO_KEY: 'no-key',
  /** A tree the DSR serves itself (IPC$). */
  LOCAL_TREE: 'local-tree',
  /** The socket is not offloaded (no state for its cookie). */
  NO_SOCK: 'no-sock',
  /** No rules for the socket's connection. */
  NO_CONN: 'no-conn',
  /** No SMB2 header where one should be (SMB1, garbage). */
  BAD_MAGIC: 'bad-magic',
  /** A compression transform header. */
  COMPRESSED: 'compressed',
  /** A command the connection's rules do not offload. */
  COMMAND: 'command',
  /** A SessionId with no rule. */
  SESSION: 'session',
  /** A TreeId with no rule. */
  TREE: 'tree',
  /** A compound the rules don't cover (too long, or a bad NextCommand). */
  COMPOUND: 'compound',
  /** The direction had already gone to user space. */
  STICKY: 'sticky',
  /** The redirect failed: the peer socket left the sockhash. */
  NO_PEER: 'no-peer',
  /** A BPF helper failed. */
  ERROR: 'error',
  /** More headers in one skb than the cut-through verdict's loop bound. */
  TOO_MANY: 'too-many',
  /** A request's FileId with no rule, or a request too short for its FileId. */
  FILE: 'file',
  /**
   * A request the verdict cannot prove valid: bad StructureSize, larger than the negotiated
   * maximum, a CreditCharge too small for its size, a buffer outside the message; user space
   * answers it.
   */
  INVALID: 'invalid',
  /**
   * A journaled connection's request the kernel could not keep a copy of (no journal slot free,
   * the frame too long, its MessageId already journaled); user space forwards it.
   */
  JOURNAL: 'journal',
  /** A request whose MessageId does not follow the last one the kernel forwarded (ids used out of order). */
  SEQUENCE: 'sequence',
  /** The first skb after arming does not start where user space stopped reading: bytes passed before are still unread. */
  UNREAD: 'unread',
  /** A response while more than the rules' maxQueued bytes the kernel forwarded wait for the client's socket: the client is behind in reading. */
  BEHIND: 'behind',
  /** A response before the client socket has the reply user space wrote right after lending the connection: it would go in front of it. */
  AHEAD: 'ahead',
} as const;
export type PassReason = (typeof PassReason)[keyof typeof PassReason];

export interface SessionRule {
  connectionId: number;
  sessionId: bigint;
  dialect: number;
  /** Undefined when the session's traffic could be forwarded by the fast path. */
  pass: PassReason | undefined;
}

export interface TreeRule {
  connectionId: number;
  sessionId: bigint;
  treeId: number;
  share: string;
  pass: PassReason | undefined;
  /** A redirected tree's ids on its server: what a rewrite rule maps the client's ids to. */
  backend?: { server: string; sessionId: bigint; treeId: number };
}

export interface OffloadSnapshot {
  kind: string;
  sessions: (Omit<SessionRule, 'sessionId'> & { sessionId: string })[];
  trees: (Omit<TreeRule, 'sessionId' | 'backend'> & { sessionId: string; backend?: { server: string; sessionId: string; treeId: number } })[];
}

export interface Offload {
  readonly kind: string;
  upsertSession(rule: SessionRule): void;
  /** Removes the session and every tree rule under it. */
  removeSession(sessionId: bigint): void;
  upsertTree(rule: TreeRule): void;
  removeTree(sessionId: bigint, treeId: number): void;
  snapshot(): OffloadSnapshot;
}

export class MemoryOffload implements Offload {
  readonly kind = 'memory';
  private readonly sessions = new Map<bigint, SessionRule>();
  private readonly trees = new Map<string, TreeRule>();

  upsertSession(rule: SessionRule): void {
    this.sessions.set(rule.sessionId, { ...rule });
  }

  removeSession(sessionId: bigint): void {
    this.sessions.delete(sessionId);
    for (const [k, t] of this.trees) if (t.sessionId === sessionId) this.trees.delete(k);
  }

  upsertTree(rule: TreeRule): void {
    this.trees.set(`${rule.sessionId}/${rule.treeId}`, { ...rule });
  }

  removeTree(sessionId: bigint, treeId: number): void {
    this.trees.delete(`${sessionId}/${treeId}`);
  }

  snapshot(): OffloadSnapshot {
    return {
      kind: this.kind,
      sessions: [...this.sessions.values()].map((s) => ({ ...s, sessionId: formatSessionId(s.sessionId) })),
      trees: [...this.trees.values()].map(({ backend, ...t }) => ({
        ...t,
        sessionId: formatSessionId(t.sessionId),
        ...(backend ? { backend: { ...backend, sessionId: formatSessionId(backend.sessionId) } } : {}),
      })),
    };
  }
}
