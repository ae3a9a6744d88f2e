/**
 * The only door from the control plane to the fast path. The tables stay authoritative in
 * TypeScript; every change a forwarding path needs is pushed here as a rule, so a kernel
 * implementation (eBPF maps, the storage switch's port map) can mirror them without ever
 * deciding anything itself. `MemoryOffload` keeps the rules in maps: it is what runs where no
 * kernel fast path is loaded, and what unit tests compare the tables against.
 */
import { formatSessionId } from '../control/tables/sessions.js';

/** Why traffic of a session or tree stays on the user-space path (keep in sync with the kernel's reason codes). */
export const PassReason = {
  /** Signed sessions: the DSR must re-sign every message. */
  SIGNED: 'signed',
  /** The server requires signing: the DSR must sign every request to it. */
  BACKEND_SIGNED: 'backend-signed',
  /** Encrypted sessions: the DSR must decrypt and re-encrypt every message. */
  ENCRYPTED: 'encrypted',
  /** Guest and anonymous sessions carry no key and are never forwarded. */
  NO_KEY: 'no-key',
  /** A tree the DSR serves itself (IPC$). */
  LOCAL_TREE: 'local-tree',
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
