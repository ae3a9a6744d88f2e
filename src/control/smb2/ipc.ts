/**
 * The DSR's own IPC$ tree: named pipes served locally (source paragraph 0070: listing the
 * single system image needs no storage traffic). Only `srvsvc` is served; its catalog is the
 * resource table, so every share of every server looks like the DSR's own (paragraph 0029).
 */
import { NtStatus } from '../wire/ntstatus.js';
import { CloseFlags, type CloseRequest, encodeCloseResponse } from '../wire/smb2/close.js';
import { FsctlCode, InfoType } from '../wire/smb2/constants.js';
import { CreateAction, type CreateRequest, encodeCreateResponse, FileAttributes, type OpenAttributes } from '../wire/smb2/create.js';
import { type FileId, isRelatedFileId } from '../wire/smb2/file-id.js';
import { encodeQueryInfoResponse, FileInformationClass, type QueryInfoRequest } from '../wire/smb2/info.js';
import { encodeIoctlResponse, type IoctlRequest, pipeTransceiveResponse } from '../wire/smb2/ioctl.js';
import { encodeReadResponse, type ReadRequest } from '../wire/smb2/read.js';
import { encodeWriteResponse, type WriteRequest } from '../wire/smb2/write.js';
import { ShareType as StypeBits } from '../wire/srvsvc.js';
import type { Open } from '../tables/opens.js';
import type { DsrContext, Smb2Reply, Smb2Request } from './context.js';
import { openPipe, type RpcPipe } from './ipc/pipe.js';
import { type ShareCatalog, srvsvcInterface } from './ipc/srvsvc.js';
import { emptyReply, errorReply } from './replies.js';

/** Pipes report a one-page allocation and no end of file, as Windows and Samba do. */
const PIPE_ATTRIBUTES: OpenAttributes = {
  CreationTime: 0n,
  LastAccessTime: 0n,
  LastWriteTime: 0n,
  ChangeTime: 0n,
  AllocationSize: 4096n,
  EndofFile: 0n,
  FileAttributes: FileAttributes.FILE_ATTRIBUTE_NORMAL,
};

/** The share list srvsvc reports: the resource table, plus IPC$ itself. */
export function shareCatalog(ctx: DsrContext): ShareCatalog {
  return {
    serverName: () => ctx.config.serverName,
    serverComment: () => `dynamic session redirector ${ctx.config.name}`,
    shares: () => [
      ...ctx.resources.list().map((r) => ({ name: r.name, type: StypeBits.STYPE_DISKTREE, comment: r.comment })),
      { name: 'IPC$', type: StypeBits.STYPE_IPC | StypeBits.STYPE_SPECIAL, comment: `IPC Service (${ctx.config.serverName})` },
    ],
  };
}

/** The open a FileId names on this session, following a related compound's previous handle. */
function findPipe(req: Smb2Request, fileId: FileId): Open<RpcPipe> | undefined {
  const id = isRelatedFileId(fileId) ? req.relatedFileId : fileId;
  if (!id) return undefined;
  const o = req.ctx.opens.get(req.session!.sessionId, id);
  return o && o.treeId === req.tree!.treeId ? (o as Open<RpcPipe>) : undefined;
}

export function ipcCreate(req: Smb2Request, body: CreateRequest): Smb2Reply {
  const { ctx } = req;
  const pipe = openPipe(body.Name, [srvsvcInterface(shareCatalog(ctx))]);
  if (!pipe) {
    ctx.log.debug({ event: 'ipc.unknown_pipe', pipe: body.Name }, 'pipe not served');
    return errorReply(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND);
  }
  const open = ctx.opens.add(req.session!.sessionId, req.tree!.treeId, body.Name, 'pipe', pipe);
  return {
    status: NtStatus.STATUS_SUCCESS,
    createdFileId: open.fileId,
    body: encodeCreateResponse({
      OplockLevel: 0,
      Flags: 0,
      CreateAction: CreateAction.FILE_OPENED,
      ...PIPE_ATTRIBUTES,
      Reserved2: 0,
      FileId: open.fileId,
      CreateContexts: [],
    }),
  };
}

export function ipcClose(req: Smb2Request, body: CloseRequest): Smb2Reply {
  const open = findPipe(req, body.FileId);
  if (!open) return errorReply(NtStatus.STATUS_FILE_CLOSED);
  req.ctx.opens.delete(open.sessionId, open.fileId);
  const post = (body.Flags & CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB) !== 0;
  const zero: OpenAttributes = { CreationTime: 0n, LastAccessTime: 0n, LastWriteTime: 0n, ChangeTime: 0n, AllocationSize: 0n, EndofFile: 0n, FileAttributes: 0 };
  return { status: NtStatus.STATUS_SUCCESS, body: encodeCloseResponse({ Flags: body.Flags & CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB, Reserved: 0, ...(post ? PIPE_ATTRIBUTES : zero) }) };
}

export function ipcWrite(req: Smb2Request, body: WriteRequest): Smb2Reply {
  const open = findPipe(req, body.FileId);
  if (!open) return errorReply(NtStatus.STATUS_FILE_CLOSED);
  const pipe = open.target;
  pipe.write(body.Data);
  if (pipe.broken) return errorReply(NtStatus.STATUS_PIPE_DISCONNECTED);
  return {
    status: NtStatus.STATUS_SUCCESS,
    body: encodeWriteResponse({ Reserved: 0, Count: body.Data.length, Remaining: 0, WriteChannelInfoOffset: 0, WriteChannelInfoLength: 0 }),
  };
}

/** A pipe's answer as a READ or IOCTL status: a message longer than asked for is STATUS_BUFFER_OVERFLOW. */
function pipeStatus(pipe: RpcPipe, got: { overflow: boolean } | undefined): number {
  if (pipe.broken) return NtStatus.STATUS_PIPE_DISCONNECTED;
  // Every call completes inside the write, so an empty pipe means the client read without asking.
  if (!got) return NtStatus.STATUS_PIPE_EMPTY;
  return got.overflow ? NtStatus.STATUS_BUFFER_OVERFLOW : NtStatus.STATUS_SUCCESS;
}

export function ipcRead(req: Smb2Request, body: ReadRequest): Smb2Reply {
  const open = findPipe(req, body.FileId);
  if (!open) return errorReply(NtStatus.STATUS_FILE_CLOSED);
  const got = open.target.read(body.Length);
  const status = pipeStatus(open.target, got);
  if (!got) return errorReply(status);
  return { status, body: encodeReadResponse({ Reserved: 0, DataRemaining: 0, Flags: 0, Data: got.data }) };
}

export function ipcIoctl(req: Smb2Request, body: IoctlRequest): Smb2Reply {
  if (body.CtlCode !== FsctlCode.PIPE_TRANSCEIVE) return errorReply(NtStatus.STATUS_INVALID_DEVICE_REQUEST);
  const open = findPipe(req, body.FileId);
  if (!open) return errorReply(NtStatus.STATUS_FILE_CLOSED);
  const got = open.target.transceive(body.Input, body.MaxOutputResponse);
  const status = pipeStatus(open.target, got);
  if (!got) return errorReply(status);
  return { status, body: encodeIoctlResponse(pipeTransceiveResponse(open.fileId, got.data)) };
}

export function ipcQueryInfo(req: Smb2Request, body: QueryInfoRequest): Smb2Reply {
  const open = findPipe(req, body.FileId);
  if (!open) return errorReply(NtStatus.STATUS_FILE_CLOSED);
  if (body.InfoType !== InfoType.FILE || body.FileInfoClass !== FileInformationClass.FileStandardInformation) return errorReply(NtStatus.STATUS_NOT_SUPPORTED);
  // MS-FSCC 2.4.41 FILE_STANDARD_INFORMATION: AllocationSize, EndOfFile, NumberOfLinks, DeletePending, Directory, Reserved.
  const info = Buffer.alloc(24);
  info.writeBigInt64LE(PIPE_ATTRIBUTES.AllocationSize, 0);
  info.writeUInt32LE(1, 16);
  if (body.OutputBufferLength < info.length) return errorReply(NtStatus.STATUS_INFO_LENGTH_MISMATCH);
  return { status: NtStatus.STATUS_SUCCESS, body: encodeQueryInfoResponse({ OutputBuffer: info }) };
}

export function ipcFlush(req: Smb2Request, fileId: FileId): Smb2Reply {
  return findPipe(req, fileId) ? emptyReply() : errorReply(NtStatus.STATUS_FILE_CLOSED);
}
