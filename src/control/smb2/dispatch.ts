/**
 * The command table (ksmbd style): for every SMB2 command, what the request must name (a
 * session, a tree), how its body is decoded — which validates every field before anything
 * acts on it — the credit check of multi-credit requests, and the handler.
 */
import { NtStatus } from '../wire/ntstatus.js';
import { decodeChangeNotifyRequest } from '../wire/smb2/change-notify.js';
import { decodeCloseRequest } from '../wire/smb2/close.js';
import { FsctlCode, Smb2Command, Smb2Dialect } from '../wire/smb2/constants.js';
import { decodeCreateRequest } from '../wire/smb2/create.js';
import { decodeFlushRequest } from '../wire/smb2/flush.js';
import { decodeQueryInfoRequest, decodeSetInfoRequest } from '../wire/smb2/info.js';
import { decodeIoctlRequest, type IoctlRequest } from '../wire/smb2/ioctl.js';
import { decodeLockRequest } from '../wire/smb2/lock.js';
import { decodeNegotiateRequest } from '../wire/smb2/negotiate.js';
import { decodeOplockBreakMessage } from '../wire/smb2/oplock.js';
import { decodeQueryDirectoryRequest } from '../wire/smb2/query-directory.js';
import { decodeReadRequest } from '../wire/smb2/read.js';
import { decodeSessionSetupRequest } from '../wire/smb2/session-setup.js';
import { decodeReservedBody } from '../wire/smb2/simple.js';
import { decodeTreeConnectRequest } from '../wire/smb2/tree.js';
import { decodeWriteRequest } from '../wire/smb2/write.js';
import type { ConnectionState, Smb2Reply, Smb2Request } from './context.js';
import { ipcClose, ipcCreate, ipcFlush, ipcIoctl, ipcQueryInfo, ipcRead, ipcWrite } from './ipc.js';
import { handleNegotiate } from './negotiate.js';
import { emptyReply, errorReply } from './replies.js';
import { handleLogoff, handleSessionSetup } from './session-setup.js';
import { handleTreeConnect, handleTreeDisconnect } from './tree-connect.js';
import { forward, forwardBreakAck, forwardClose, forwardCreate, forwardLock } from './redirect.js';
import { handleValidateNegotiate } from './validate-negotiate.js';

export { errorReply };

/** What a request must name before its handler runs (MS-SMB2 3.3.5.2.9). */
export type SessionRule =
  /** No session is looked up (NEGOTIATE, ECHO). */
  | 'none'
  /** SessionId 0 starts a new session; otherwise it must name one of this connection's (SESSION_SETUP). */
  | 'optional'
  /** A valid session of this connection. */
  | 'valid';

export interface Command {
  readonly session: SessionRule;
  /** The TreeId must name a tree of the session (3.3.5.2.11). */
  readonly tree: boolean;
  /** Decodes the body of `msg`, throwing the WireError a malformed one deserves (used by `run`, and by the fuzzer). */
  validate(msg: Buffer): void;
  run(req: Smb2Request): Smb2Reply | Promise<Smb2Reply>;
}

type Handler<T> = (req: Smb2Request, body: T) => Smb2Reply | Promise<Smb2Reply>;

interface CommandSpec<T> {
  session: SessionRule;
  tree: boolean;
  /** Decodes and validates the body; throws a WireError with the status to answer. */
  decode: (msg: Buffer) => T;
  /** Bytes the request moves (for the CreditCharge check) and the most it may move. */
  size?: (body: T, conn: ConnectionState) => { bytes: number; max: number };
  run: Handler<T>;
}

/** Credits a payload of this size costs: one per 64 KiB (MS-SMB2 3.1.5.2). */
export function creditsFor(bytes: number): number {
  return bytes <= 0 ? 1 : Math.ceil(bytes / 65536);
}

function command<T>(spec: CommandSpec<T>): Command {
  return {
    session: spec.session,
    tree: spec.tree,
    validate(msg) {
      spec.decode(msg);
    },
    run(req) {
      const body = spec.decode(req.msg);
      if (spec.size) {
        const { bytes, max } = spec.size(body, req.conn);
        // 3.3.5.2.5: a request larger than the negotiated maximum, or a CreditCharge too small
        // for its payload, is refused (2.0.2 has no multi-credit requests to check).
        if (bytes > max) return errorReply(NtStatus.STATUS_INVALID_PARAMETER);
        if (req.conn.dialect !== Smb2Dialect.SMB202 && Math.max(req.hdr.CreditCharge, 1) < creditsFor(bytes)) {
          return errorReply(NtStatus.STATUS_INVALID_PARAMETER);
        }
      }
      return spec.run(req, body);
    },
  };
}

/** Picks the handler by the kind of tree the request names: the DSR's IPC$ or a redirected share. */
function onTree<T>(handlers: { ipc: Handler<T>; disk?: Handler<T> }): Handler<T> {
  const disk = handlers.disk ?? ((req: Smb2Request) => forward(req));
  return (req, body) => (req.tree!.kind === 'disk' ? disk(req, body) : handlers.ipc(req, body));
}

const notOnPipes: Handler<unknown> = () => errorReply(NtStatus.STATUS_NOT_SUPPORTED);

function ioctl(req: Smb2Request, body: IoctlRequest): Smb2Reply | Promise<Smb2Reply> {
  // VALIDATE_NEGOTIATE_INFO addresses the connection, not a file, on whatever tree it names.
  if (body.CtlCode === FsctlCode.VALIDATE_NEGOTIATE_INFO) return handleValidateNegotiate(req, body);
  // The DSR offers no multichannel, and a server's answer would hand the client its storage-side addresses.
  if (body.CtlCode === FsctlCode.QUERY_NETWORK_INTERFACE_INFO) return errorReply(NtStatus.STATUS_NOT_SUPPORTED);
  // The DSR is not a DFS root (it masks the servers' DFS capability): its single system image
  // needs no referrals, and a server's would name the server itself.
  if (body.CtlCode === FsctlCode.DFS_GET_REFERRALS || body.CtlCode === FsctlCode.DFS_GET_REFERRALS_EX) return errorReply(NtStatus.STATUS_FS_DRIVER_REQUIRED);
  return onTree({ ipc: ipcIoctl })(req, body);
}

const maxTransact = (_b: unknown, c: ConnectionState) => c.maxTransactSize;

/** Indexed by Command. */
export const COMMANDS: readonly (Command | undefined)[] = (() => {
  const t: (Command | undefined)[] = [];
  t[Smb2Command.NEGOTIATE] = command({ session: 'none', tree: false, decode: decodeNegotiateRequest, run: handleNegotiate });
  t[Smb2Command.SESSION_SETUP] = command({ session: 'optional', tree: false, decode: decodeSessionSetupRequest, run: handleSessionSetup });
  t[Smb2Command.LOGOFF] = command({ session: 'valid', tree: false, decode: (m) => decodeReservedBody(m, 'LOGOFF request'), run: handleLogoff });
  t[Smb2Command.TREE_CONNECT] = command({ session: 'valid', tree: false, decode: decodeTreeConnectRequest, run: handleTreeConnect });
  t[Smb2Command.TREE_DISCONNECT] = command({ session: 'valid', tree: true, decode: (m) => decodeReservedBody(m, 'TREE_DISCONNECT request'), run: handleTreeDisconnect });
  t[Smb2Command.CREATE] = command({ session: 'valid', tree: true, decode: decodeCreateRequest, run: onTree({ ipc: ipcCreate, disk: forwardCreate }) });
  t[Smb2Command.CLOSE] = command({ session: 'valid', tree: true, decode: decodeCloseRequest, run: onTree({ ipc: ipcClose, disk: forwardClose }) });
  t[Smb2Command.FLUSH] = command({ session: 'valid', tree: true, decode: decodeFlushRequest, run: onTree({ ipc: (req, b) => ipcFlush(req, b.FileId) }) });
  t[Smb2Command.READ] = command({
    session: 'valid',
    tree: true,
    decode: decodeReadRequest,
    size: (b, c) => ({ bytes: b.Length, max: c.maxReadSize }),
    run: onTree({ ipc: ipcRead }),
  });
  t[Smb2Command.WRITE] = command({
    session: 'valid',
    tree: true,
    decode: decodeWriteRequest,
    size: (b, c) => ({ bytes: b.Data.length, max: c.maxWriteSize }),
    run: onTree({ ipc: ipcWrite }),
  });
  t[Smb2Command.LOCK] = command({ session: 'valid', tree: true, decode: decodeLockRequest, run: onTree({ ipc: notOnPipes, disk: forwardLock }) });
  t[Smb2Command.IOCTL] = command({
    session: 'valid',
    tree: true,
    decode: decodeIoctlRequest,
    size: (b, c) => ({ bytes: Math.max(b.Input.length + b.Output.length, b.MaxInputResponse + b.MaxOutputResponse), max: maxTransact(b, c) }),
    run: ioctl,
  });
  t[Smb2Command.ECHO] = command({ session: 'none', tree: false, decode: (m) => decodeReservedBody(m, 'ECHO request'), run: () => emptyReply() });
  t[Smb2Command.QUERY_DIRECTORY] = command({
    session: 'valid',
    tree: true,
    decode: decodeQueryDirectoryRequest,
    size: (b, c) => ({ bytes: b.OutputBufferLength, max: maxTransact(b, c) }),
    run: onTree({ ipc: notOnPipes }),
  });
  t[Smb2Command.CHANGE_NOTIFY] = command({
    session: 'valid',
    tree: true,
    decode: decodeChangeNotifyRequest,
    size: (b, c) => ({ bytes: b.OutputBufferLength, max: maxTransact(b, c) }),
    run: onTree({ ipc: notOnPipes }),
  });
  t[Smb2Command.QUERY_INFO] = command({
    session: 'valid',
    tree: true,
    decode: decodeQueryInfoRequest,
    size: (b, c) => ({ bytes: Math.max(b.InputBuffer.length, b.OutputBufferLength), max: maxTransact(b, c) }),
    run: onTree({ ipc: ipcQueryInfo }),
  });
  t[Smb2Command.SET_INFO] = command({
    session: 'valid',
    tree: true,
    decode: decodeSetInfoRequest,
    size: (b, c) => ({ bytes: b.Buffer.length, max: maxTransact(b, c) }),
    run: onTree({ ipc: notOnPipes }),
  });
  // Acknowledgments are routed by the open they name (FileId or LeaseKey), not by TreeId.
  t[Smb2Command.OPLOCK_BREAK] = command({ session: 'valid', tree: false, decode: decodeOplockBreakMessage, run: forwardBreakAck });
  return t;
})();
