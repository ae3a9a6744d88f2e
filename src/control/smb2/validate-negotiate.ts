/**
 * FSCTL_VALIDATE_NEGOTIATE_INFO (MS-SMB2 3.3.5.15.12): an SMB 3.0/3.0.2 client re-checks, over a
 * signed request, that nobody tampered with its NEGOTIATE. Any mismatch ends the connection.
 */
import { NtStatus } from '../wire/ntstatus.js';
import { Smb2Dialect } from '../wire/smb2/constants.js';
import {
  decodeValidateNegotiateInfoRequest,
  encodeIoctlResponse,
  encodeValidateNegotiateInfoResponse,
  type IoctlRequest,
} from '../wire/smb2/ioctl.js';
import type { Smb2Reply, Smb2Request } from './context.js';
import { errorReply } from './replies.js';

const RESPONSE_SIZE = 24;

export function handleValidateNegotiate(req: Smb2Request, body: IoctlRequest): Smb2Reply {
  const { conn, ctx } = req;
  // 3.1.1 protects the negotiation with preauth integrity instead; the request is not expected.
  if (conn.dialect === Smb2Dialect.SMB311) return { ...errorReply(NtStatus.STATUS_INVALID_PARAMETER), disconnect: 'VALIDATE_NEGOTIATE_INFO on an SMB 3.1.1 connection' };
  if (body.MaxOutputResponse < RESPONSE_SIZE) return errorReply(NtStatus.STATUS_INVALID_PARAMETER);
  const v = decodeValidateNegotiateInfoRequest(body.Input);
  const same =
    v.Capabilities === conn.clientCapabilities &&
    v.Guid.equals(conn.clientGuid) &&
    v.SecurityMode === conn.clientSecurityMode &&
    v.Dialects.length === conn.clientDialects.length &&
    v.Dialects.every((d, i) => d === conn.clientDialects[i]);
  if (!same) return { ...errorReply(NtStatus.STATUS_ACCESS_DENIED), disconnect: 'VALIDATE_NEGOTIATE_INFO does not match the NEGOTIATE' };
  const output = encodeValidateNegotiateInfoResponse({
    Capabilities: conn.serverCapabilities,
    Guid: ctx.config.serverGuid,
    SecurityMode: conn.serverSecurityMode,
    Dialect: conn.dialect,
  });
  return {
    status: NtStatus.STATUS_SUCCESS,
    body: encodeIoctlResponse({ Reserved: 0, CtlCode: body.CtlCode, FileId: body.FileId, Input: Buffer.alloc(0), Output: output, Flags: 0, Reserved2: 0 }),
  };
}
