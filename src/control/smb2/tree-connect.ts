/**
 * TREE_CONNECT and TREE_DISCONNECT (MS-SMB2 3.3.5.7, 3.3.5.8). IPC$ is the DSR's own tree;
 * every other name is looked up in the resource table (source Fig. 6, step 610) and redirected
 * to the server that serves it (redirect.ts).
 */
import { PassReason } from '../../offload/offload.js';
import { NtStatus } from '../wire/ntstatus.js';
import { ShareFlags, ShareType } from '../wire/smb2/constants.js';
import { encodeReservedBody } from '../wire/smb2/simple.js';
import { encodeTreeConnectResponse, type TreeConnectRequest } from '../wire/smb2/tree.js';
import type { Smb2Reply, Smb2Request } from './context.js';
import { forwardTreeDisconnect, redirectTreeConnect } from './redirect.js';
import { errorReply } from './replies.js';

/** FILE_ALL_ACCESS: what a client may do on the DSR's IPC$ tree. */
const IPC_MAXIMAL_ACCESS = 0x001f01ff;

/** "\\server\share" -> "share"; undefined when the path is not of that form. */
export function shareFromPath(path: string): string | undefined {
  const m = /^\\\\[^\\]+\\([^\\]+)$/.exec(path);
  return m?.[1];
}

export function handleTreeConnect(req: Smb2Request, body: TreeConnectRequest): Smb2Reply | Promise<Smb2Reply> {
  const session = req.session!;
  const share = shareFromPath(body.Path);
  if (share === undefined) return errorReply(NtStatus.STATUS_BAD_NETWORK_NAME);
  if (share.toUpperCase() === 'IPC$') {
    const tree = req.ctx.trees.add(session.sessionId, 'IPC$', 'ipc');
    req.ctx.offload.upsertTree({ connectionId: req.conn.id, sessionId: session.sessionId, treeId: tree.treeId, share: 'IPC$', pass: PassReason.LOCAL_TREE });
    req.ctx.log.debug({ event: 'tree.connected', share: 'IPC$', tree: tree.treeId }, 'IPC$ connected');
    return {
      status: NtStatus.STATUS_SUCCESS,
      treeId: tree.treeId,
      body: encodeTreeConnectResponse({
        ShareType: ShareType.PIPE,
        Reserved: 0,
        ShareFlags: ShareFlags.NO_CACHING,
        Capabilities: 0,
        MaximalAccess: IPC_MAXIMAL_ACCESS,
      }),
    };
  }
  const resource = req.ctx.resources.lookup(share);
  if (!resource) {
    req.ctx.log.info({ event: 'tree.unknown_share', share }, 'tree connect to a share the resource table does not have');
    return errorReply(NtStatus.STATUS_BAD_NETWORK_NAME);
  }
  return redirectTreeConnect(req, resource.name, resource.active, resource.remoteName);
}

export function handleTreeDisconnect(req: Smb2Request): Smb2Reply {
  const { sessionId } = req.session!;
  const tree = req.tree!;
  if (tree.kind === 'disk') return forwardTreeDisconnect(req);
  req.ctx.opens.release(sessionId, tree.treeId);
  req.ctx.trees.delete(sessionId, tree.treeId);
  req.ctx.offload.removeTree(sessionId, tree.treeId);
  return { status: NtStatus.STATUS_SUCCESS, body: encodeReservedBody() };
}
