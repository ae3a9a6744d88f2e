/**
 * Redirection (source Fig. 6, paragraphs 0072-0077): a tree connect to a disk share opens (or
 * reuses) the client session's session on the share's server and tree-connects there; every
 * later request on the tree is rewritten for that server and its response rewritten back.
 *
 * The client sees only the DSR's ids. SessionId, TreeId, MessageId, credits and signatures are
 * per side (the connection does the client side); FileIds are the DSR's own, mapped through the
 * open table, because FileIds from different servers may collide in one client session and
 * because a reopened file on another server (failover) gets a new one.
 */
import { PassReason } from '../../offload/offload.js';
import { errorMessage } from '../errors.js';
import type { FileOpen, LockRange, Open } from '../tables/opens.js';
import type { StorageServer } from '../tables/resources.js';
import type { Session } from '../tables/sessions.js';
import type { Tree } from '../tables/trees.js';
import { NtStatus, ntStatusName } from '../wire/ntstatus.js';
import { ShareCap, ShareFlags, SMB2_HEADER_SIZE, Smb2Command, Smb2Dialect, Smb2Flags } from '../wire/smb2/constants.js';
import { CreateContextName, decodeLease, findCreateContext } from '../wire/smb2/create-contexts.js';
import type { CreateRequest } from '../wire/smb2/create.js';
import { decodeCreateResponse } from '../wire/smb2/create.js';
import {
  CREATE_RESPONSE_FILE_ID_AT,
  type FileId,
  getFileId,
  IOCTL_RESPONSE_FILE_ID_AT,
  isRelatedFileId,
  OPLOCK_BREAK_FILE_ID_AT,
  REQUEST_FILE_ID_AT,
  sameFileId,
  setFileId,
} from '../wire/smb2/file-id.js';
import { getFlags, Hdr, setCredit, setFlags, setSessionId, setTreeId, type Smb2Header } from '../wire/smb2/header.js';
import { LockFlags, type LockRequest } from '../wire/smb2/lock.js';
import { encodeReservedBody } from '../wire/smb2/simple.js';
import { decodeTreeConnectResponse, encodeTreeConnectRequest, encodeTreeConnectResponse, type TreeConnectResponse } from '../wire/smb2/tree.js';
import type { BackendCredentials, BackendLink, BackendSession } from './backend.js';
import { Smb2StatusError } from './client.js';
import type { ConnectionState, DsrContext, Smb2Reply, Smb2Request } from './context.js';
import type { Logger } from '../log.js';
import { errorReply } from './replies.js';

/** Where a redirected tree's requests go. */
export interface Route {
  readonly link: BackendLink;
  readonly bs: BackendSession;
  readonly backendTreeId: number;
}

/** The state one backend compound chain shares while its responses are applied, in order. */
export interface ChainState {
  /** The open the chain's last successful CREATE made (for related FileIds). */
  lastOpen: Open | undefined;
}

/** A request on its way to a server, and what to do with the server's final response. */
export interface Forward {
  /** Where it went; a replay after failover points it at the new server. */
  route: Route;
  /** The request rewritten for the server (MessageId and signature are set when sent). */
  readonly msg: Buffer;
  /** Continues a related chain whose previous message goes to the same server in the same frame. */
  readonly related: boolean;
  /** The open the request names by FileId, if any: a replay elsewhere takes its new FileId from it. */
  readonly open: Open<FileOpen> | undefined;
  /** Applies a final response to the tables and rewrites its body for the client. */
  complete(msg: Buffer, hdr: Smb2Header, chain: ChainState): void;
}

/** Share capabilities and flags the DSR does not pass on: it is neither a DFS nor a cluster (MS-SMB2 2.2.10). */
const MASKED_CAPS = ShareCap.DFS | ShareCap.CONTINUOUS_AVAILABILITY | ShareCap.SCALEOUT | ShareCap.CLUSTER | ShareCap.ASYMMETRIC | ShareCap.REDIRECT_TO_OWNER;
const MASKED_SHARE_FLAGS = ShareFlags.DFS | ShareFlags.DFS_ROOT;

/** Header flags a forwarded request keeps; SIGNED is redone per side, DFS is not offered. */
const KEPT_FLAGS = Smb2Flags.PRIORITY_MASK | Smb2Flags.REPLAY_OPERATION;

/** The credentials a client session's backend session uses on a server (Fig. 6, step 625). */
function backendCredentials(ctx: DsrContext, session: Session, server: StorageServer): BackendCredentials | undefined {
  const account = ctx.config.servers[server.name]?.account;
  const user = account?.user ?? (session.kind === 'user' ? session.user : undefined);
  if (user === undefined) return undefined;
  const entry = ctx.credentials.lookup(user);
  return entry ? { user: entry.name, domain: account?.domain ?? '', ntHash: entry.ntHash } : undefined;
}

/**
 * The client session's session on `server` (opened or reused) and a tree there on
 * `remoteShare` (Fig. 6, steps 620-645), or the status that refuses it.
 */
export async function connectBackendTree(
  ctx: DsrContext,
  conn: ConnectionState,
  session: Session,
  server: StorageServer,
  remoteShare: string,
  log: Logger,
): Promise<{ route: Route; res: TreeConnectResponse } | { status: number }> {
  const creds = backendCredentials(ctx, session, server);
  if (!creds) {
    log.info({ event: 'tree.no_credentials', user: session.user, kind: session.kind }, 'no credentials for this session on the server');
    return { status: NtStatus.STATUS_ACCESS_DENIED };
  }
  let link: BackendLink;
  let bs: BackendSession;
  try {
    link = await conn.backends.link(server);
    bs = await conn.backends.session(link, session.sessionId, creds);
  } catch (e) {
    if (e instanceof Smb2StatusError) {
      log.info({ event: 'tree.backend_refused', status: ntStatusName(e.status) }, 'the server refused the backend session');
      return { status: e.status };
    }
    log.warn({ event: 'tree.backend_unreachable', err: errorMessage(e) }, 'cannot reach the server');
    return { status: NtStatus.STATUS_BAD_NETWORK_PATH };
  }
  if (!ctx.sessions.get(session.sessionId)) return { status: NtStatus.STATUS_USER_SESSION_DELETED };
  const r = await link.client
    .request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: `\\\\${server.address}\\${remoteShare}` }), { session: bs.session, allowError: true })
    .catch((e: unknown) => e as Error);
  if (r instanceof Error) {
    log.warn({ event: 'tree.backend_failed', err: r.message }, 'backend TREE_CONNECT failed');
    return { status: NtStatus.STATUS_BAD_NETWORK_PATH };
  }
  if (r.hdr.Status !== NtStatus.STATUS_SUCCESS) {
    log.info({ event: 'tree.backend_refused', status: ntStatusName(r.hdr.Status) }, 'the server refused the tree connect');
    conn.backends.releaseTree(link, bs, 0);
    return { status: r.hdr.Status };
  }
  if (!ctx.sessions.get(session.sessionId)) {
    void link.client.request(Smb2Command.TREE_DISCONNECT, encodeReservedBody(), { session: bs.session, treeId: r.hdr.TreeId, allowError: true }).catch(() => undefined);
    return { status: NtStatus.STATUS_USER_SESSION_DELETED };
  }
  conn.backends.addTree(bs);
  return { route: { link, bs, backendTreeId: r.hdr.TreeId }, res: decodeTreeConnectResponse(r.msg) };
}

/** Points a redirected tree at a route: the connection's map, the tree table and the offload rule. */
export function bindTree(ctx: DsrContext, conn: ConnectionState, tree: Tree, route: Route, remoteShare: string): void {
  const server = route.link.server;
  ctx.trees.rebind(tree, { server: server.name, address: server.address, remoteShare, sessionId: route.bs.session.sessionId, treeId: route.backendTreeId });
  conn.routes.set(tree, route);
  ctx.offload.upsertTree({
    connectionId: conn.id,
    sessionId: tree.sessionId,
    treeId: tree.treeId,
    share: tree.share,
    pass: route.bs.session.signs ? PassReason.BACKEND_SIGNED : undefined,
    backend: { server: server.name, sessionId: route.bs.session.sessionId, treeId: route.backendTreeId },
  });
}

/** TREE_CONNECT to a share of the resource table (Fig. 6, steps 615-655). */
export async function redirectTreeConnect(req: Smb2Request, shareName: string, serverName: string, remoteShare: string): Promise<Smb2Reply> {
  const { ctx, conn } = req;
  const session = req.session!;
  const server = ctx.resources.server(serverName);
  const log = ctx.log.child({ share: shareName, server: serverName });
  if (!server) {
    log.warn({ event: 'tree.no_server' }, 'the share names a server the resource table does not have');
    return errorReply(NtStatus.STATUS_BAD_NETWORK_PATH);
  }
  const c = await connectBackendTree(ctx, conn, session, server, remoteShare, log);
  if ('status' in c) return errorReply(c.status);
  const { route, res } = c;
  const tree = ctx.trees.add(session.sessionId, shareName, 'disk', undefined);
  bindTree(ctx, conn, tree, route, remoteShare);
  log.debug({ event: 'tree.redirected', tree: tree.treeId, backendTree: route.backendTreeId }, `tree ${shareName} on ${server.name}`);
  return {
    status: NtStatus.STATUS_SUCCESS,
    treeId: tree.treeId,
    body: encodeTreeConnectResponse({ ...res, ShareFlags: res.ShareFlags & ~MASKED_SHARE_FLAGS, Capabilities: res.Capabilities & ~MASKED_CAPS }),
  };
}

/** A request rewritten before for another server, rewritten for `route` (a replay after failover). */
export function rewriteForRoute(msg: Buffer, route: Route): void {
  toBackendHeader(msg, route, false);
}

/** Rewrites a client request's header for the server, in place. */
function toBackendHeader(msg: Buffer, route: Route, related: boolean): void {
  const dialect = route.link.dialect;
  setSessionId(msg, route.bs.session.sessionId);
  setTreeId(msg, route.backendTreeId);
  let flags = getFlags(msg) & KEPT_FLAGS;
  if (related) flags |= Smb2Flags.RELATED_OPERATIONS;
  // I/O priority is 3.1.1 only; an older server refuses a request that carries it.
  if (dialect < Smb2Dialect.SMB311) flags &= ~Smb2Flags.PRIORITY_MASK;
  if (dialect < Smb2Dialect.SMB300) {
    // ChannelSequence and replays are SMB 3.x; a 2.x server wants the field zero.
    flags &= ~Smb2Flags.REPLAY_OPERATION;
    msg.writeUInt32LE(0, Hdr.Status);
  }
  if (dialect === Smb2Dialect.SMB202) msg.writeUInt16LE(0, Hdr.CreditCharge);
  setFlags(msg, flags);
  // Ask for what the request costs plus a little, so the backend window never runs dry.
  setCredit(msg, Math.min(Math.max(msg.readUInt16LE(Hdr.CreditCharge), 1) + 8, 512));
  msg.fill(0, Hdr.Signature, Hdr.Signature + 16);
}

/** The file open a request names, or the status that refuses it. */
type Named = { open: Open<FileOpen> | undefined; chained: boolean } | { status: number };

function resolveFileId(req: Smb2Request, at: number, route: Route): Named {
  const off = SMB2_HEADER_SIZE + at;
  const id = getFileId(req.msg, off);
  if (isRelatedFileId(id)) {
    // The previous CREATE of a related chain: still at the server, or answered by it already.
    if (req.related && req.relatedForward?.route.link === route.link) return { open: undefined, chained: true };
    if (req.related && req.relatedFileId) return withOpen(req, req.relatedFileId, off);
    // Some FSCTLs address no file at all.
    if (req.hdr.Command === Smb2Command.IOCTL && !req.related) return { open: undefined, chained: false };
    return { status: NtStatus.STATUS_FILE_CLOSED };
  }
  return withOpen(req, id, off);
}

function withOpen(req: Smb2Request, id: FileId, off: number): Named {
  const o = req.ctx.opens.get(req.session!.sessionId, id);
  // A FileId of another session, another tree, or a pipe is closed as far as this request goes.
  if (!o || o.kind !== 'file' || o.treeId !== req.tree!.treeId) return { status: NtStatus.STATUS_FILE_CLOSED };
  const open = o as Open<FileOpen>;
  setFileId(req.msg, off, open.target.backendFileId);
  return { open, chained: false };
}

/** The route of a redirected tree (undefined once its server is gone). */
function routeOf(req: Smb2Request, tree: Tree): Route | undefined {
  return req.conn.routes.get(tree);
}

/**
 * Forwards a request on a redirected tree. `onFinal` sees the final response with the open the
 * request named (or the chain's, for a related FileId) and may update the tables.
 */
export function forward(req: Smb2Request, onFinal?: (msg: Buffer, hdr: Smb2Header, open: Open<FileOpen> | undefined) => void, tree = req.tree!): Smb2Reply {
  const route = routeOf(req, tree);
  if (!route) return errorReply(NtStatus.STATUS_NETWORK_NAME_DELETED);
  const at = req.hdr.Command === Smb2Command.OPLOCK_BREAK && req.msg.readUInt16LE(SMB2_HEADER_SIZE) !== 24 ? undefined : REQUEST_FILE_ID_AT[req.hdr.Command];
  let named: Named = { open: undefined, chained: false };
  if (at !== undefined) {
    named = resolveFileId(req, at, route);
    if ('status' in named) return errorReply(named.status);
  }
  const { open, chained } = named;
  return forwarded(req, route, open, (msg, hdr, chain) => {
    const target = open ?? (chained ? (chain.lastOpen as Open<FileOpen> | undefined) : undefined);
    // An IOCTL response echoes the FileId; the client must see its own.
    if (hdr.Command === Smb2Command.IOCTL && hdr.Status === NtStatus.STATUS_SUCCESS && target && msg.length >= SMB2_HEADER_SIZE + IOCTL_RESPONSE_FILE_ID_AT + 16) {
      setFileId(msg, SMB2_HEADER_SIZE + IOCTL_RESPONSE_FILE_ID_AT, target.fileId);
    }
    onFinal?.(msg, hdr, target);
  });
}

/** The reply that sends a request, its header rewritten for the route's server, to that server. */
function forwarded(req: Smb2Request, route: Route, open: Open<FileOpen> | undefined, complete: Forward['complete']): Smb2Reply {
  const related = req.related && req.relatedForward?.route.link === route.link;
  toBackendHeader(req.msg, route, related);
  return { status: NtStatus.STATUS_PENDING, body: Buffer.alloc(0), forward: { route, msg: req.msg, related, open, complete } };
}

/** CREATE on a redirected tree: the response's FileId becomes a DSR FileId in the open table. */
export function forwardCreate(req: Smb2Request, body: CreateRequest): Smb2Reply {
  const { ctx } = req;
  const session = req.session!;
  const tree = req.tree!;
  const route = routeOf(req, tree);
  if (!route) return errorReply(NtStatus.STATUS_NETWORK_NAME_DELETED);
  return forwarded(req, route, undefined, (msg, hdr, chain) => {
    chain.lastOpen = undefined;
    if (hdr.Status !== NtStatus.STATUS_SUCCESS || !ctx.sessions.get(session.sessionId) || !ctx.trees.get(session.sessionId, tree.treeId)) return;
    const res = decodeCreateResponse(msg);
    const lease = findCreateContext(res.CreateContexts, CreateContextName.SMB2_CREATE_REQUEST_LEASE);
    const l = lease ? decodeLease(lease.Data) : undefined;
    const file: FileOpen = {
      server: route.link.server.name,
      backendFileId: res.FileId,
      DesiredAccess: body.DesiredAccess,
      ShareAccess: body.ShareAccess,
      CreateOptions: body.CreateOptions,
      CreateDisposition: body.CreateDisposition,
      FileAttributes: body.FileAttributes,
      oplockLevel: res.OplockLevel,
      lease: l ? { key: Buffer.from(l.LeaseKey), state: l.LeaseState } : undefined,
      locks: [],
    };
    const open = ctx.opens.add(session.sessionId, tree.treeId, body.Name, 'file', file);
    setFileId(msg, SMB2_HEADER_SIZE + CREATE_RESPONSE_FILE_ID_AT, open.fileId);
    chain.lastOpen = open;
  });
}

/** CLOSE: the open leaves the table once the server closed it (or says it was never open). */
export function forwardClose(req: Smb2Request): Smb2Reply {
  return forward(req, (_m, hdr, open) => {
    if (open && (hdr.Status === NtStatus.STATUS_SUCCESS || hdr.Status === NtStatus.STATUS_FILE_CLOSED)) req.ctx.opens.delete(open.sessionId, open.fileId);
  });
}

/** LOCK: granted ranges are recorded, so a reopen elsewhere can take them again. */
export function forwardLock(req: Smb2Request, body: LockRequest): Smb2Reply {
  return forward(req, (_m, hdr, open) => {
    if (!open || hdr.Status !== NtStatus.STATUS_SUCCESS) return;
    applyLocks(open.target.locks, body);
  });
}

/** Applies a successful LOCK request to the recorded ranges (MS-SMB2 3.3.5.14). */
export function applyLocks(locks: LockRange[], body: LockRequest): void {
  for (const l of body.Locks) {
    if (l.Flags & LockFlags.SMB2_LOCKFLAG_UNLOCK) {
      const i = locks.findIndex((r) => r.offset === l.Offset && r.length === l.Length);
      if (i >= 0) locks.splice(i, 1);
    } else {
      locks.push({ offset: l.Offset, length: l.Length, exclusive: (l.Flags & LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK) !== 0 });
    }
  }
}

/** TREE_DISCONNECT: the tree and its opens go once the server let go of its tree. */
export function forwardTreeDisconnect(req: Smb2Request): Smb2Reply {
  const tree = req.tree!;
  const session = req.session!;
  const route = routeOf(req, tree);
  const drop = () => {
    req.ctx.opens.release(session.sessionId, tree.treeId);
    if (req.ctx.trees.delete(session.sessionId, tree.treeId) && route) req.conn.backends.releaseTree(route.link, route.bs);
    req.conn.routes.delete(tree);
    req.ctx.offload.removeTree(session.sessionId, tree.treeId);
  };
  if (!route) {
    drop();
    return errorReply(NtStatus.STATUS_NETWORK_NAME_DELETED);
  }
  return forward(req, () => drop());
}

/** A file open granted the lease with this LeaseKey. */
function holdsLease(o: Open, key: Buffer): boolean {
  return o.kind === 'file' && (o.target as FileOpen).lease?.key.equals(key) === true;
}

/** OPLOCK_BREAK acknowledgment: routed by FileId (oplock) or LeaseKey (lease) to the open's server. */
export function forwardBreakAck(req: Smb2Request): Smb2Reply {
  const session = req.session!;
  const isLease = req.msg.readUInt16LE(SMB2_HEADER_SIZE) === 36;
  let open: Open<FileOpen> | undefined;
  if (isLease) {
    const key = req.msg.subarray(SMB2_HEADER_SIZE + 8, SMB2_HEADER_SIZE + 24);
    open = req.ctx.opens.find((o) => o.sessionId === session.sessionId && holdsLease(o, key)) as Open<FileOpen> | undefined;
    if (!open) return errorReply(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND);
  } else {
    const id = getFileId(req.msg, SMB2_HEADER_SIZE + OPLOCK_BREAK_FILE_ID_AT);
    const o = req.ctx.opens.get(session.sessionId, id);
    if (!o || o.kind !== 'file') return errorReply(NtStatus.STATUS_FILE_CLOSED);
    open = o as Open<FileOpen>;
  }
  const tree = req.ctx.trees.get(session.sessionId, open.treeId);
  if (!tree) return errorReply(NtStatus.STATUS_FILE_CLOSED);
  const target = open;
  return forward(
    { ...req, tree },
    (msg, hdr) => {
      if (hdr.Status !== NtStatus.STATUS_SUCCESS) return;
      if (isLease) {
        if (target.target.lease) target.target.lease.state = msg.readUInt32LE(SMB2_HEADER_SIZE + 24);
      } else {
        target.target.oplockLevel = msg.readUInt8(SMB2_HEADER_SIZE + 2);
        setFileId(msg, SMB2_HEADER_SIZE + OPLOCK_BREAK_FILE_ID_AT, target.fileId);
      }
    },
    tree,
  );
}

/**
 * An oplock or lease break notification from a server, rewritten for the client connection
 * whose backend connection it came on (MS-SMB2 3.3.4.6, 3.3.4.7). Returns undefined when it
 * names nothing this connection has open (the open was closed meanwhile).
 */
export function breakToClient(req: Pick<Smb2Request, 'ctx'>, connectionId: number, link: BackendLink, msg: Buffer): { msg: Buffer; open: Open } | undefined {
  const { ctx } = req;
  if (msg.length < SMB2_HEADER_SIZE + 2) return undefined;
  const size = msg.readUInt16LE(SMB2_HEADER_SIZE);
  const mine = (o: Open) => o.kind === 'file' && (o.target as FileOpen).server === link.server.name && ctx.sessions.get(o.sessionId)?.connectionId === connectionId;
  let open: Open<FileOpen> | undefined;
  if (size === 24 && msg.length >= SMB2_HEADER_SIZE + 24) {
    const id = getFileId(msg, SMB2_HEADER_SIZE + OPLOCK_BREAK_FILE_ID_AT);
    open = ctx.opens.find((o) => mine(o) && sameFileId((o.target as FileOpen).backendFileId, id)) as Open<FileOpen> | undefined;
    if (!open) return undefined;
    open.target.oplockLevel = msg.readUInt8(SMB2_HEADER_SIZE + 2);
    setFileId(msg, SMB2_HEADER_SIZE + OPLOCK_BREAK_FILE_ID_AT, open.fileId);
  } else if (size === 44 && msg.length >= SMB2_HEADER_SIZE + 44) {
    const key = msg.subarray(SMB2_HEADER_SIZE + 8, SMB2_HEADER_SIZE + 24);
    open = ctx.opens.find((o) => mine(o) && holdsLease(o, key)) as Open<FileOpen> | undefined;
    if (!open) return undefined;
  } else {
    return undefined;
  }
  // Notifications carry no session or tree, or the open's; the client must see its own ids.
  const backendSession = msg.readBigUInt64LE(Hdr.SessionId);
  setSessionId(msg, backendSession === 0n ? 0n : open.sessionId);
  if (msg.readUInt32LE(Hdr.TreeId) !== 0) setTreeId(msg, open.treeId);
  setCredit(msg, 0);
  setFlags(msg, Smb2Flags.SERVER_TO_REDIR);
  msg.fill(0, Hdr.Signature, Hdr.Signature + 16);
  return { msg, open };
}

/** Trees whose server is gone and no other can serve: they and their opens are gone for this client connection. */
export function dropTrees(req: Pick<Smb2Request, 'ctx' | 'conn'>, trees: readonly Tree[]): void {
  for (const t of trees) {
    req.ctx.opens.release(t.sessionId, t.treeId);
    req.ctx.trees.delete(t.sessionId, t.treeId);
    req.conn.routes.delete(t);
    req.ctx.offload.removeTree(t.sessionId, t.treeId);
  }
}

