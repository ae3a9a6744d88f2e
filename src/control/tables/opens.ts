/**
 * The open table: every handle a client holds through the DSR, keyed by (SessionId, FileId).
 * Named pipes on IPC$ are the DSR's own; a file open on a redirected tree records its
 * server-side handle and everything needed to reopen it on another server (the failover of
 * source Fig. 7): path, access, share mode, options, oplock or lease, byte-range locks.
 */
import { randomBytes } from 'node:crypto';
import { type FileId, fileIdKey } from '../wire/smb2/file-id.js';
import { formatSessionId } from './sessions.js';

export type OpenKind = 'pipe' | 'file';

/** A byte range locked through LOCK (MS-SMB2 2.2.26.1). */
export interface LockRange {
  offset: bigint;
  length: bigint;
  exclusive: boolean;
}

/** What a redirected file open needs to be found on, and reopened on, a storage server. */
export interface FileOpen {
  /** The server holding the open; a failover or a move reopens it elsewhere. */
  server: string;
  /** The FileId the server handed out; the client sees the DSR's own. */
  backendFileId: FileId;
  /** CREATE request fields (MS-SMB2 2.2.13). */
  readonly DesiredAccess: number;
  readonly ShareAccess: number;
  readonly CreateOptions: number;
  readonly CreateDisposition: number;
  readonly FileAttributes: number;
  /** Granted OplockLevel (MS-SMB2 2.2.14), updated by breaks. */
  oplockLevel: number;
  /** Granted lease (LeaseKey, LeaseState), updated by breaks. */
  lease: { key: Buffer; state: number } | undefined;
  readonly locks: LockRange[];
}

export interface Open<T = unknown> {
  readonly sessionId: bigint;
  readonly treeId: number;
  readonly fileId: FileId;
  /** Path relative to the share, as the client sent it. */
  readonly path: string;
  readonly kind: OpenKind;
  readonly created: Date;
  /** The object behind the handle: a pipe endpoint, or a FileOpen. */
  readonly target: T;
}

export interface OpenView {
  sessionId: string;
  treeId: number;
  fileId: string;
  path: string;
  kind: string;
  created: string;
  /** File opens only. */
  server?: string;
  backendFileId?: string;
  desiredAccess?: string;
  shareAccess?: number;
  createOptions?: string;
  oplockLevel?: number;
  lease?: { key: string; state: number } | null;
  locks?: { offset: string; length: string; exclusive: boolean }[];
}

export class OpenTable {
  private readonly opens = new Map<string, Open>();
  /** Random per process so FileIds from a restarted DSR never match old ones. */
  private readonly persistentBase = randomBytes(8).readBigUInt64LE(0) & 0x7fffffffffffffffn;
  private nextVolatile = 1n;

  add<T>(sessionId: bigint, treeId: number, path: string, kind: OpenKind, target: T, now = new Date()): Open<T> {
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

  /** The first open that matches (breaks from servers name backend FileIds and LeaseKeys). */
  find(match: (o: Open) => boolean): Open | undefined {
    for (const o of this.opens.values()) if (match(o)) return o;
    return undefined;
  }

  /** Every open of a tree: what a failover or a move reopens elsewhere. */
  ofTree(sessionId: bigint, treeId: number): Open[] {
    return [...this.opens.values()].filter((o) => o.sessionId === sessionId && o.treeId === treeId);
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
    return [...this.opens.values()].map((o) => {
      const v: OpenView = { sessionId: formatSessionId(o.sessionId), treeId: o.treeId, fileId: fileIdKey(o.fileId), path: o.path, kind: o.kind, created: o.created.toISOString() };
      if (o.kind !== 'file') return v;
      const f = o.target as FileOpen;
      return {
        ...v,
        server: f.server,
        backendFileId: fileIdKey(f.backendFileId),
        desiredAccess: hex32(f.DesiredAccess),
        shareAccess: f.ShareAccess,
        createOptions: hex32(f.CreateOptions),
        oplockLevel: f.oplockLevel,
        lease: f.lease ? { key: f.lease.key.toString('hex'), state: f.lease.state } : null,
        locks: f.locks.map((l) => ({ offset: l.offset.toString(), length: l.length.toString(), exclusive: l.exclusive })),
      };
    });
  }
}

const hex32 = (v: number): string => `0x${v.toString(16).padStart(8, '0')}`;

function key(sessionId: bigint, fileId: FileId): string {
  return `${sessionId.toString(16)}/${fileIdKey(fileId)}`;
}
