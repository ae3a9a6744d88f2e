/**
 * Discovery of a server's shares over srvsvc (issue 6, item 1): what `smbclient -L` does, as a
 * library call. SMB2 NEGOTIATE + SESSION_SETUP with an NT hash, TREE_CONNECT to IPC$, CREATE of
 * the srvsvc pipe, a DCE/RPC bind and NetrShareEnum (MS-SRVS 3.1.4.8; NetShareEnumAll on the
 * wire) at level 1, each exchange one FSCTL_PIPE_TRANSCEIVE. Only disk shares are returned.
 */
import { DsrError, ErrorCode, errorMessage } from '../errors.js';
import { Smb2Client, Smb2StatusError } from '../smb2/client.js';
import { decodePdu, DREP_LITTLE_ENDIAN, encodePdu, NDR_SYNTAX, PfcFlags, PType, syntaxVersion, type RpcPdu } from '../wire/dcerpc.js';
import { NtStatus } from '../wire/ntstatus.js';
import { encodeCloseRequest } from '../wire/smb2/close.js';
import { Smb2Command } from '../wire/smb2/constants.js';
import { decodeCreateResponse, encodeCreateRequest } from '../wire/smb2/create.js';
import type { FileId } from '../wire/smb2/file-id.js';
import { decodeIoctlResponse, encodeIoctlRequest, pipeTransceiveRequest } from '../wire/smb2/ioctl.js';
import { decodeReadResponse, encodeReadRequest } from '../wire/smb2/read.js';
import { encodeReservedBody } from '../wire/smb2/simple.js';
import { encodeTreeConnectRequest } from '../wire/smb2/tree.js';
import {
  decodeNetrShareEnumResponse,
  encodeNetrShareEnumRequest,
  MAX_PREFERRED_LENGTH,
  type ShareInfo1,
  ShareType,
  SRVSVC_UUID,
  SRVSVC_VERSION,
  SrvsvcOpnum,
  Werror,
} from '../wire/srvsvc.js';

export interface DiscoveryTarget {
  host: string;
  port?: number;
  user: string;
  domain?: string;
  ntHash: Buffer;
  timeoutMs?: number;
  /** Local address to connect from. */
  localAddress?: string;
}

export interface DiscoveredShare {
  name: string;
  comment: string;
}

/** FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE: what smbclient asks for on a pipe. */
const PIPE_ACCESS = 0x00120089 | 0x00000002;
const FILE_SHARE_READ_WRITE = 0x3;
const FILE_OPEN = 1;
const IMPERSONATION = 2;
const MAX_FRAG = 65535;
const MAX_PIPE_OUTPUT = 65536;

/** A share a client can tree-connect to for files: a disk tree, not hidden (IPC$, ADMIN$, print$ are special). */
function isDiskShare(type: number): boolean {
  return (type & 0x0fffffff) === ShareType.STYPE_DISKTREE && (type & ShareType.STYPE_SPECIAL) === 0;
}

export async function enumerateShares(t: DiscoveryTarget): Promise<DiscoveredShare[]> {
  const timeoutMs = t.timeoutMs ?? 5000;
  const client = await Smb2Client.connect({ host: t.host, port: t.port ?? 445, timeoutMs, ...(t.localAddress !== undefined && { localAddress: t.localAddress }) });
  try {
    await client.negotiate();
    await client.sessionSetup(t.user, t.ntHash, t.domain ?? '');
    const tree = await client.request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: `\\\\${t.host}\\IPC$` }));
    const treeId = tree.hdr.TreeId;
    const created = await client.request(
      Smb2Command.CREATE,
      encodeCreateRequest({
        SecurityFlags: 0,
        RequestedOplockLevel: 0,
        ImpersonationLevel: IMPERSONATION,
        SmbCreateFlags: 0n,
        Reserved: 0n,
        DesiredAccess: PIPE_ACCESS,
        FileAttributes: 0,
        ShareAccess: FILE_SHARE_READ_WRITE,
        CreateDisposition: FILE_OPEN,
        CreateOptions: 0,
        Name: 'srvsvc',
        CreateContexts: [],
      }),
      { treeId },
    );
    const fileId = decodeCreateResponse(created.msg).FileId;
    const call = (pdu: RpcPdu) => transceive(client, treeId, fileId, encodePdu(pdu));
    const common = { rpc_vers_minor: 0, pfc_flags: PfcFlags.PFC_FIRST_FRAG | PfcFlags.PFC_LAST_FRAG, packed_drep: DREP_LITTLE_ENDIAN };
    const ack = await call({
      PTYPE: PType.BIND,
      ...common,
      call_id: 1,
      max_xmit_frag: MAX_FRAG,
      max_recv_frag: MAX_FRAG,
      assoc_group_id: 0,
      p_context_elem: {
        p_cont_elem: [{ p_cont_id: 0, abstract_syntax: { if_uuid: SRVSVC_UUID, if_version: syntaxVersion(...SRVSVC_VERSION) }, transfer_syntaxes: [NDR_SYNTAX] }],
      },
    });
    if (ack.PTYPE !== PType.BIND_ACK || ack.p_result_list.p_results[0]?.result !== 0) throw new DsrError(ErrorCode.PROTOCOL, `srvsvc bind refused by ${t.host}`);
    const stub = encodeNetrShareEnumRequest({
      ServerName: `\\\\${t.host}`,
      InfoStruct: { Level: 1, ShareInfo: { EntriesRead: 0, Buffer: null } },
      PreferedMaximumLength: MAX_PREFERRED_LENGTH,
      ResumeHandle: 0,
    });
    const res = await call({ PTYPE: PType.REQUEST, ...common, call_id: 2, alloc_hint: stub.length, p_cont_id: 0, opnum: SrvsvcOpnum.NetrShareEnum, stub });
    if (res.PTYPE === PType.FAULT) throw new DsrError(ErrorCode.PROTOCOL, `srvsvc NetrShareEnum fault 0x${res.status.toString(16)} from ${t.host}`);
    if (res.PTYPE !== PType.RESPONSE) throw new DsrError(ErrorCode.PROTOCOL, `srvsvc NetrShareEnum: unexpected PDU type ${res.PTYPE}`);
    const out = decodeNetrShareEnumResponse(res.stub);
    if (out.ReturnValue !== Werror.ERROR_SUCCESS) throw new DsrError(ErrorCode.PROTOCOL, `srvsvc NetrShareEnum on ${t.host} returned ${out.ReturnValue}`);
    await client.request(Smb2Command.CLOSE, encodeCloseRequest({ Flags: 0, Reserved: 0, FileId: fileId }), { treeId, allowError: true });
    await client.request(Smb2Command.TREE_DISCONNECT, encodeReservedBody(), { treeId, allowError: true });
    const entries = (out.InfoStruct.ShareInfo?.Buffer ?? []) as ShareInfo1[];
    return entries.filter((e) => isDiskShare(e.shi1_type)).map((e) => ({ name: e.shi1_netname ?? '', comment: e.shi1_remark ?? '' })).filter((e) => e.name !== '');
  } catch (e) {
    if (e instanceof DsrError) throw e;
    const what = e instanceof Smb2StatusError ? `status 0x${e.status.toString(16)}` : errorMessage(e);
    throw new DsrError(ErrorCode.PROTOCOL, `share discovery on ${t.host}: ${what}`, { cause: e });
  } finally {
    client.close();
  }
}

/**
 * One PDU in, one whole PDU out: FSCTL_PIPE_TRANSCEIVE, then READs while the server says the
 * pipe message did not fit (STATUS_BUFFER_OVERFLOW). Multi-fragment responses are reassembled.
 */
async function transceive(client: Smb2Client, treeId: number, fileId: FileId, pdu: Buffer): Promise<RpcPdu> {
  const r = await client.request(Smb2Command.IOCTL, encodeIoctlRequest(pipeTransceiveRequest(fileId, pdu, MAX_PIPE_OUTPUT)), { treeId });
  let bytes = Buffer.from(decodeIoctlResponse(r.msg).Output);
  let more = r.hdr.Status === NtStatus.STATUS_BUFFER_OVERFLOW;
  const frags: RpcPdu[] = [];
  for (;;) {
    while (more || bytes.length < 10 || bytes.length < bytes.readUInt16LE(8)) {
      const rr = await client.request(
        Smb2Command.READ,
        encodeReadRequest({ Padding: 0x50, Flags: 0, Length: MAX_PIPE_OUTPUT, Offset: 0n, FileId: fileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) }),
        { treeId },
      );
      bytes = Buffer.concat([bytes, decodeReadResponse(rr.msg).Data]);
      more = rr.hdr.Status === NtStatus.STATUS_BUFFER_OVERFLOW;
    }
    const len = bytes.readUInt16LE(8);
    const frag = decodePdu(bytes.subarray(0, len));
    bytes = bytes.subarray(len);
    frags.push(frag);
    if (frag.pfc_flags & PfcFlags.PFC_LAST_FRAG || (frag.PTYPE !== PType.RESPONSE && frag.PTYPE !== PType.REQUEST)) break;
  }
  const first = frags[0]!;
  if (frags.length === 1 || first.PTYPE !== PType.RESPONSE) return first;
  return { ...first, stub: Buffer.concat(frags.map((f) => (f.PTYPE === PType.RESPONSE ? f.stub : Buffer.alloc(0)))) };
}
