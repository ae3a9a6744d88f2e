/**
 * What the lab's SMB2 workers (relay-worker, backpressure-worker) do first: NEGOTIATE, a session,
 * a tree connect to the share and an open of one file, to read or to write from scratch; and an
 * open of the share's root.
 */
import type { Smb2Client } from '../../src/control/smb2/client.js';
import { ntOwfV1 } from '../../src/control/tables/credentials.js';
import { Smb2Command } from '../../src/control/wire/smb2/constants.js';
import { AccessMask, CreateDisposition, CreateOptions, decodeCreateResponse, encodeCreateRequest, ImpersonationLevel, OplockLevel, ShareAccess } from '../../src/control/wire/smb2/create.js';
import type { FileId } from '../../src/control/wire/smb2/file-id.js';
import { encodeTreeConnectRequest } from '../../src/control/wire/smb2/tree.js';

export async function openInShare(
  c: Smb2Client,
  o: { host: string; share: string; file: string; user: string; password: string; write?: boolean },
): Promise<{ treeId: number; FileId: FileId }> {
  await c.negotiate();
  await c.sessionSetup(o.user, ntOwfV1(o.password));
  const treeId = (await c.request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: `\\\\${o.host}\\${o.share}` }))).hdr.TreeId;
  const FileId = await open(c, treeId, {
    DesiredAccess: (o.write ? AccessMask.FILE_WRITE_DATA : AccessMask.FILE_READ_DATA) | AccessMask.SYNCHRONIZE,
    ShareAccess: ShareAccess.FILE_SHARE_READ,
    CreateDisposition: o.write ? CreateDisposition.FILE_OVERWRITE_IF : CreateDisposition.FILE_OPEN,
    CreateOptions: CreateOptions.FILE_NON_DIRECTORY_FILE,
    Name: o.file,
  });
  return { treeId, FileId };
}

/** An open of the share's root directory to list it or watch it (CHANGE_NOTIFY). */
export function openRoot(c: Smb2Client, treeId: number): Promise<FileId> {
  return open(c, treeId, {
    DesiredAccess: AccessMask.FILE_LIST_DIRECTORY | AccessMask.FILE_READ_ATTRIBUTES | AccessMask.SYNCHRONIZE,
    ShareAccess: ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE,
    CreateDisposition: CreateDisposition.FILE_OPEN,
    CreateOptions: CreateOptions.FILE_DIRECTORY_FILE,
    Name: '',
  });
}

async function open(c: Smb2Client, treeId: number, o: { DesiredAccess: number; ShareAccess: number; CreateDisposition: number; CreateOptions: number; Name: string }): Promise<FileId> {
  const created = await c.request(
    Smb2Command.CREATE,
    encodeCreateRequest({
      SecurityFlags: 0,
      RequestedOplockLevel: OplockLevel.SMB2_OPLOCK_LEVEL_NONE,
      ImpersonationLevel: ImpersonationLevel.Impersonation,
      SmbCreateFlags: 0n,
      Reserved: 0n,
      FileAttributes: 0,
      CreateContexts: [],
      ...o,
    }),
    { treeId },
  );
  return decodeCreateResponse(created.msg).FileId;
}
