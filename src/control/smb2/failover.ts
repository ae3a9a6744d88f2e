/**
 * Failover (source Fig. 7, paragraphs 0083-0090), for one client connection: when a server's
 * connection is lost, each tree this connection had there moves to the server now active for
 * its share. The client session gets a session and a tree there; every open is reopened from
 * the open table (same path, access, share mode and options, FILE_OPEN so nothing is created or
 * truncated) and its byte-range locks are taken again; the open keeps the client's FileId and
 * gets the new server's. Requests that were in flight go again to the new server when that is
 * safe (`replayable`); the client sees a pause, not an error. A tree whose share no healthy
 * server can serve is gone: its requests get STATUS_NETWORK_NAME_DELETED, as before.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { FileOpen, Open } from '../tables/opens.js';
import type { Session } from '../tables/sessions.js';
import type { Tree } from '../tables/trees.js';
import { NtStatus, ntStatusName } from '../wire/ntstatus.js';
import { SMB2_HEADER_SIZE, Smb2Command, Smb2Dialect } from '../wire/smb2/constants.js';
import { CreateContextName, encodeLease } from '../wire/smb2/create-contexts.js';
import { CreateDisposition, decodeCreateResponse, encodeCreateRequest, ImpersonationLevel, OplockLevel } from '../wire/smb2/create.js';
import { type FileId, REQUEST_FILE_ID_AT, setFileId } from '../wire/smb2/file-id.js';
import { encodeCloseRequest } from '../wire/smb2/close.js';
import { encodeReservedBody } from '../wire/smb2/simple.js';
import { encodeLockRequest, LockFlags } from '../wire/smb2/lock.js';
import type { BackendLink } from './backend.js';
import type { ConnectionState, DsrContext } from './context.js';
import { bindTree, connectBackendTree, type Forward, type Route, rewriteForRoute } from './redirect.js';

/**
 * Requests whose effect is the same when a server sees them twice (MS-SMB2 3.3.5: READ, WRITE at
 * an offset, FLUSH, QUERY_INFO, LOCK, CLOSE of a reopened handle, a re-armed CHANGE_NOTIFY).
 * Anything else may have happened on the lost server or not: the client gets an error.
 */
const REPLAYABLE = new Set<number>([Smb2Command.READ, Smb2Command.WRITE, Smb2Command.FLUSH, Smb2Command.QUERY_INFO, Smb2Command.LOCK, Smb2Command.CLOSE, Smb2Command.CHANGE_NOTIFY]);

export function replayable(command: number, related: boolean): boolean {
  return REPLAYABLE.has(command) && !related;
}

export interface Moved {
  trees: number;
  opens: number;
  lostOpens: number;
  /** Trees whose share no other healthy server serves: the caller tries their own server again. */
  stranded: [Session, Tree][];
}

/** What one failover did, in all: `trees` moved to another server, `reconnected` back to their own. */
export interface FailoverTally {
  trees: number;
  opens: number;
  lostOpens: number;
  reconnected: number;
  dropped: number;
}

/** What moving one tree did: its old opens' FileIds on the old server, for a planned move to close. */
export interface TreeMove {
  opens: number;
  lostOpens: number;
  left: { route: Route; fileIds: FileId[] };
}

/**
 * Moves one tree to its share's active server: a tree there, every open reopened. Undefined
 * when the share has no other healthy server or the new server refuses (the caller drops it).
 */
export async function moveTree(ctx: DsrContext, conn: ConnectionState, session: Session, tree: Tree, log: Logger, sameServer = false): Promise<TreeMove | undefined> {
  const old = conn.routes.get(tree);
  const resource = ctx.resources.lookup(tree.share);
  const name = sameServer ? old?.link.server.name : resource?.active;
  const target = name !== undefined && (sameServer || (name !== old?.link.server.name && ctx.resources.healthy(name))) ? ctx.resources.server(name) : undefined;
  if (!old || !resource || !target) return undefined;
  const tlog = log.child({ share: tree.share, server: target.name });
  const c = await connectBackendTree(ctx, conn, session, target, resource.remoteName, tlog);
  if ('status' in c) {
    tlog.warn({ event: 'move.tree_failed', status: ntStatusName(c.status) }, `cannot move ${tree.share} to ${target.name}`);
    return undefined;
  }
  bindTree(ctx, conn, tree, c.route, resource.remoteName);
  const move: TreeMove = { opens: 0, lostOpens: 0, left: { route: old, fileIds: [] } };
  for (const open of openedOn(ctx, tree)) {
    const was = open.target.backendFileId;
    if (await reopen(open, c.route, tlog)) {
      move.opens++;
      move.left.fileIds.push(was);
    } else {
      ctx.opens.delete(open.sessionId, open.fileId);
      move.lostOpens++;
    }
  }
  return move;
}

/** Moves every tree of `sessions` that used the lost server connection; returns what it could not move. */
export async function moveTrees(ctx: DsrContext, conn: ConnectionState, lost: BackendLink, sessions: readonly Session[], log: Logger): Promise<Moved> {
  const moved: Moved = { trees: 0, opens: 0, lostOpens: 0, stranded: [] };
  for (const session of sessions) {
    for (const tree of ctx.trees.ofSession(session.sessionId)) {
      if (conn.routes.get(tree)?.link !== lost) continue;
      const m = await moveTree(ctx, conn, session, tree, log);
      if (!m) {
        moved.stranded.push([session, tree]);
        continue;
      }
      moved.trees++;
      moved.opens += m.opens;
      moved.lostOpens += m.lostOpens;
    }
  }
  return moved;
}

/** A planned move's last step: the old server's handles closed and its tree let go. */
export async function leaveOld(conn: ConnectionState, left: TreeMove['left'], log: Logger): Promise<void> {
  const { route, fileIds } = left;
  const opts = { session: route.bs.session, treeId: route.backendTreeId, allowError: true };
  try {
    for (const id of fileIds) await route.link.client.request(Smb2Command.CLOSE, encodeCloseRequest({ Flags: 0, Reserved: 0, FileId: id }), opts);
    await route.link.client.request(Smb2Command.TREE_DISCONNECT, encodeReservedBody(), opts);
  } catch (e) {
    log.info({ event: 'move.leave_failed', server: route.link.server.name, err: errorMessage(e) }, 'the old server did not take the close');
  }
  conn.backends.releaseTree(route.link, route.bs);
}

function openedOn(ctx: DsrContext, tree: Tree): Open<FileOpen>[] {
  return ctx.opens.ofTree(tree.sessionId, tree.treeId).filter((o) => o.kind === 'file') as Open<FileOpen>[];
}

/** Reopens a file on the route's server as it was opened before, and takes its locks again. */
async function reopen(open: Open<FileOpen>, route: Route, log: Logger): Promise<boolean> {
  const f = open.target;
  const client = route.link.client;
  const lease = f.lease
    ? [
        {
          Name: CreateContextName.SMB2_CREATE_REQUEST_LEASE,
          Reserved: 0,
          // A 3.x server takes a v2 lease, whose breaks carry the epoch clients of 3.x expect.
          Data: encodeLease(
            route.link.dialect >= Smb2Dialect.SMB300
              ? { LeaseKey: f.lease.key, LeaseState: f.lease.state, LeaseFlags: 0, LeaseDuration: 0n, ParentLeaseKey: Buffer.alloc(16), Epoch: 0, Reserved: 0 }
              : { LeaseKey: f.lease.key, LeaseState: f.lease.state, LeaseFlags: 0, LeaseDuration: 0n },
          ),
        },
      ]
    : [];
  const body = encodeCreateRequest({
    SecurityFlags: 0,
    RequestedOplockLevel: f.lease ? OplockLevel.SMB2_OPLOCK_LEVEL_LEASE : f.oplockLevel,
    ImpersonationLevel: ImpersonationLevel.Impersonation,
    SmbCreateFlags: 0n,
    Reserved: 0n,
    DesiredAccess: f.DesiredAccess,
    FileAttributes: f.FileAttributes,
    ShareAccess: f.ShareAccess,
    CreateDisposition: CreateDisposition.FILE_OPEN,
    CreateOptions: f.CreateOptions,
    Name: open.path,
    CreateContexts: lease,
  });
  try {
    const r = await client.request(Smb2Command.CREATE, body, { session: route.bs.session, treeId: route.backendTreeId, allowError: true });
    if (r.hdr.Status !== NtStatus.STATUS_SUCCESS) {
      log.warn({ event: 'failover.reopen_failed', path: open.path, status: ntStatusName(r.hdr.Status) }, `cannot reopen ${open.path}`);
      return false;
    }
    const res = decodeCreateResponse(r.msg);
    f.backendFileId = res.FileId;
    f.server = route.link.server.name;
    f.oplockLevel = res.OplockLevel;
    for (const l of f.locks) {
      const flags = (l.exclusive ? LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK : LockFlags.SMB2_LOCKFLAG_SHARED_LOCK) | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY;
      const lr = await client.request(
        Smb2Command.LOCK,
        encodeLockRequest({ LockSequenceNumber: 0, LockSequenceIndex: 0, FileId: res.FileId, Locks: [{ Offset: l.offset, Length: l.length, Flags: flags, Reserved: 0 }] }),
        { session: route.bs.session, treeId: route.backendTreeId, allowError: true },
      );
      if (lr.hdr.Status !== NtStatus.STATUS_SUCCESS) {
        log.warn({ event: 'failover.relock_failed', path: open.path, status: ntStatusName(lr.hdr.Status) }, `cannot take a lock of ${open.path} again`);
        return false;
      }
    }
    return true;
  } catch (e) {
    log.warn({ event: 'failover.reopen_failed', path: open.path, err: errorMessage(e) }, `cannot reopen ${open.path}`);
    return false;
  }
}

/**
 * Points an in-flight request at its tree's new route: header ids and the FileId of the
 * reopened file. False when it cannot go there (its open was not reopened).
 */
export function rerouteForReplay(fwd: Forward, command: number, route: Route): boolean {
  rewriteForRoute(fwd.msg, route);
  const at = REQUEST_FILE_ID_AT[command];
  if (at === undefined || !fwd.open) return true;
  if (fwd.open.target.server !== route.link.server.name) return false;
  setFileId(fwd.msg, SMB2_HEADER_SIZE + at, fwd.open.target.backendFileId);
  return true;
}
