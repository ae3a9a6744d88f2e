/** Reply shapes shared by the handlers. */
import { NtStatus } from '../wire/ntstatus.js';
import { buildErrorBody } from '../wire/smb2/error.js';
import { encodeReservedBody } from '../wire/smb2/simple.js';
import type { Smb2Reply } from './context.js';

/** An error response (MS-SMB2 2.2.2, 3.3.4.4) with the given status. */
export function errorReply(status: number): Smb2Reply {
  return { status, body: buildErrorBody() };
}

/** STATUS_SUCCESS with a body that is only StructureSize 4 + Reserved (LOGOFF, ECHO, FLUSH, TREE_DISCONNECT). */
export function emptyReply(): Smb2Reply {
  return { status: NtStatus.STATUS_SUCCESS, body: encodeReservedBody() };
}
