/**
 * The connection table (source paragraphs 0011, 0072-0074): each tree a client session has
 * connected, keyed by (SessionId, TreeId). The DSR hands out its own TreeIds; a redirected tree
 * records the server and the backend session and tree it maps to (Fig. 6, step 650).
 */
import { formatSessionId } from './sessions.js';

/** 'ipc': the DSR's own IPC$; 'disk': a share redirected to a storage server. */
export type TreeKind = 'ipc' | 'disk';

/** Where a redirected tree lives on the storage side. */
export interface TreeBackend {
  /** Server name in the configuration. */
  readonly server: string;
  readonly address: string;
  /** The share name on that server. */
  readonly remoteShare: string;
  readonly sessionId: bigint;
  readonly treeId: number;
}

export interface Tree {
  readonly sessionId: bigint;
  readonly treeId: number;
  /** The share name as the client typed it, without the server part. */
  readonly share: string;
  readonly kind: TreeKind;
  /** Where a redirected tree goes; a failover or a move rebinds it (`rebind`). */
  backend: TreeBackend | undefined;
  readonly created: Date;
}

export interface TreeView {
  sessionId: string;
  treeId: number;
  share: string;
  kind: TreeKind;
  /** For redirected trees: the server and the backend ids this tree maps to. */
  server: string | null;
  backendSessionId: string | null;
  backendTreeId: number | null;
  created: string;
}

export class TreeTable {
  /** sessionId -> treeId -> tree. */
  private readonly trees = new Map<bigint, Map<number, Tree>>();
  private nextId = 1;

  add(sessionId: bigint, share: string, kind: TreeKind, backend?: TreeBackend, now = new Date()): Tree {
    let bySession = this.trees.get(sessionId);
    if (!bySession) this.trees.set(sessionId, (bySession = new Map()));
    // TreeIds are per session; 0 and 0xFFFFFFFF are reserved (MS-SMB2 3.2.4.1.1, 2.2.1.2).
    let id = this.nextId;
    while (id === 0 || id === 0xffffffff || bySession.has(id)) id = (id + 1) >>> 0;
    this.nextId = (id + 1) >>> 0;
    const t: Tree = { sessionId, treeId: id, share, kind, backend, created: now };
    bySession.set(id, t);
    return t;
  }

  /** Points a redirected tree at other backend ids (a new server after a failover or a move). */
  rebind(tree: Tree, backend: TreeBackend): void {
    tree.backend = backend;
  }

  get(sessionId: bigint, treeId: number): Tree | undefined {
    return this.trees.get(sessionId)?.get(treeId);
  }

  delete(sessionId: bigint, treeId: number): Tree | undefined {
    const bySession = this.trees.get(sessionId);
    const t = bySession?.get(treeId);
    if (!t) return undefined;
    bySession!.delete(treeId);
    if (bySession!.size === 0) this.trees.delete(sessionId);
    return t;
  }

  /** Removes and returns every tree of a session (logoff, disconnect). */
  deleteSession(sessionId: bigint): Tree[] {
    const bySession = this.trees.get(sessionId);
    this.trees.delete(sessionId);
    return bySession ? [...bySession.values()] : [];
  }

  /** Every tree of a session. */
  ofSession(sessionId: bigint): Tree[] {
    return [...(this.trees.get(sessionId)?.values() ?? [])];
  }

  get size(): number {
    let n = 0;
    for (const m of this.trees.values()) n += m.size;
    return n;
  }

  list(): TreeView[] {
    return [...this.trees.values()].flatMap((m) =>
      [...m.values()].map((t) => ({
        sessionId: formatSessionId(t.sessionId),
        treeId: t.treeId,
        share: t.share,
        kind: t.kind,
        server: t.backend?.server ?? null,
        backendSessionId: t.backend ? formatSessionId(t.backend.sessionId) : null,
        backendTreeId: t.backend?.treeId ?? null,
        created: t.created.toISOString(),
      })),
    );
  }
}
