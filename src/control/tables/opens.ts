/**
 * The open table: every handle a client holds through the DSR, keyed by (SessionId, FileId).
 * Today only the DSR's own named-pipe opens on IPC$ live here; redirected file opens will
 * record their server-side handle and everything needed to reopen them elsewhere.
 */
import { randomBytes } from 'node:crypto';
import { type FileId, fileIdKey } from '../wire/smb2/file-id.js';
import { formatSessionId } from './sessions.js';

export interface Open<T = unknown> {
  readonly sessionId: bigint;
  readonly treeId: number;
  readonly fileId: FileId;
  /** Path relative to the share, as the client sent it. */
  readonly path: string;
  readonly kind: 'pipe';
  readonly created: Date;
  /** The object behind the handle (a pipe endpoint). */
  readonly target: T;
}

export interface OpenView {
  sessionId: string;
  treeId: number;
  fileId: string;
  path: string;
  kind: string;
  created: string;
}

export class OpenTable {
  private readonly opens = new Map<string, Open>();
  /** Random per process so FileIds from a restarted DSR never match old ones. */
  private readonly persistentBase = randomBytes(8).readBigUInt64LE(0) & 0x7fffffffffffffffn;
  private nextVolatile = 1n;

  add<T>(sessionId: bigint, treeId: number, path: string, kind: 'pipe', target: T, now = new Date()): Open<T> {
    const fileId: FileId = { Persistent: this.persistentBase, Volatile: this.nextVolatile++ };
    const o: Open<T> = { sessionId, treeId, fileId, path, kind, created: now, target };
    this.opens.set(key(sessionId, fileId), o);
    return o;
  }

  /** The open, only if it belongs to this session (a FileId of another session is "closed"). */
  get(sessionId: bigint, fileId: FileId): Open | undefined {
    return this.opens.get(key(sessionId, fileId));
  }

  delete(sessionId: bigint, fileId: FileId): Open | undefined {
    const k = key(sessionId, fileId);
    const o = this.opens.get(k);
    this.opens.delete(k);
    return o;
  }

  /** Removes every open of a tree (tree disconnect) or of a session (treeId undefined). */
  release(sessionId: bigint, treeId?: number): Open[] {
    const gone: Open[] = [];
    for (const [k, o] of this.opens) {
      if (o.sessionId === sessionId && (treeId === undefined || o.treeId === treeId)) {
        this.opens.delete(k);
        gone.push(o);
      }
    }
    return gone;
  }

  get size(): number {
    return this.opens.size;
  }

  list(): OpenView[] {
    return [...this.opens.values()].map((o) => ({
      sessionId: formatSessionId(o.sessionId),
      treeId: o.treeId,
      fileId: fileIdKey(o.fileId),
      path: o.path,
      kind: o.kind,
      created: o.created.toISOString(),
    }));
  }
}

function key(sessionId: bigint, fileId: FileId): string {
  return `${sessionId.toString(16)}/${fileIdKey(fileId)}`;
}
