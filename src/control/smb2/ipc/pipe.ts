/**
 * A DCE/RPC endpoint behind a named pipe on IPC$, with message-mode pipe semantics: every PDU
 * the server sends is one message. No I/O and no timers: the SMB2 layer feeds WRITE / IOCTL
 * (FSCTL_PIPE_TRANSCEIVE) bytes in and drains READ / IOCTL replies out.
 *
 * Connection-oriented RPC (C706 chapter 12, MS-RPCE 3.3): one bind per pipe, alter_context for
 * more contexts, NDR 2.0 only, no RPC-level authentication (the SMB session already
 * authenticated the user). Malformed PDUs get a fault or bind_nak while the header can still be
 * trusted to frame them; otherwise the pipe is marked broken and stays silent.
 */
import { DsrError, ErrorCode, WireError } from '../../errors.js';
import {
  BIND_TIME_FEATURE_PREFIX,
  type BindPdu,
  ContResult,
  decodeHeader,
  decodePdu,
  DREP_LITTLE_ENDIAN,
  encodePdu,
  NcaStatus,
  NDR_SYNTAX,
  NULL_SYNTAX,
  type PContElem,
  PfcFlags,
  ProviderReason,
  type PResult,
  PType,
  RejectReason,
  type RequestPdu,
  RPC_HEADER_SIZE,
  RPC_RESPONSE_HEADER_SIZE,
  type RpcHeader,
  type RpcPdu,
  type SyntaxId,
} from '../../wire/dcerpc.js';

/** One RPC interface served on a pipe. */
export interface RpcInterface {
  /** The pipe it is served on, e.g. 'srvsvc'. */
  readonly name: string;
  /** Abstract syntax UUID, lower case. */
  readonly uuid: string;
  readonly version: readonly [major: number, minor: number];
  /**
   * Runs one call and returns the NDR response stub. Throws RpcFaultError to answer a fault
   * (nca_s_op_rng_error for an unknown opnum), WireError when the request stub is undecodable.
   */
  call(opnum: number, stub: Buffer): Buffer;
}

/** Thrown by an RpcInterface to answer a fault PDU with `status` (an nca_s_* value). */
export class RpcFaultError extends DsrError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(ErrorCode.PROTOCOL, message);
    this.status = status;
  }
}

/** Largest fragment sent or advertised: what Windows and Samba use on named pipes. */
export const MAX_FRAG = 4280;
/** A response fragment must carry its header and at least one 8-byte slice of stub. */
const MIN_RECV_FRAG = RPC_RESPONSE_HEADER_SIZE + 8;
/** Largest reassembled request stub; srvsvc requests are a few hundred bytes. */
const MAX_REQUEST_STUB = 256 * 1024;
/** Bind time features acknowledged (MS-RPCE 2.2.2.14): keeping the connection after an orphaned PDU is free. */
const SUPPORTED_FEATURES = 0x02;

let nextAssocGroup = 0x00005350;

/** 'srvsvc', '\PIPE\srvsvc', '\srvsvc', 'PIPE\SRVSVC' all name the same pipe. */
export function pipeBaseName(name: string): string {
  return name.replace(/^\\+/, '').replace(/^pipe\\+/i, '').toLowerCase();
}

/** A new pipe for `name` serving the interfaces registered on it, or undefined if none is. */
export function openPipe(name: string, ifaces: readonly RpcInterface[]): RpcPipe | undefined {
  const base = pipeBaseName(name);
  const served = ifaces.filter((i) => i.name.toLowerCase() === base);
  return served.length === 0 ? undefined : new RpcPipe(served[0]!.name, served);
}

function sameUuid(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function isNdr(s: SyntaxId): boolean {
  return sameUuid(s.if_uuid, NDR_SYNTAX.if_uuid) && s.if_version === NDR_SYNTAX.if_version;
}

/** The feature bitmask of a bind time feature negotiation syntax (MS-RPCE 3.3.1.5.3), if it is one. */
function featureBits(s: SyntaxId): number | undefined {
  if (!s.if_uuid.toLowerCase().startsWith(BIND_TIME_FEATURE_PREFIX) || s.if_version !== 1) return undefined;
  // The first octet after the prefix is Bitmask[0] (MS-RPCE 2.2.2.14).
  return parseInt(s.if_uuid.slice(BIND_TIME_FEATURE_PREFIX.length, BIND_TIME_FEATURE_PREFIX.length + 2), 16);
}

interface PendingCall {
  call_id: number;
  p_cont_id: number;
  opnum: number;
  rpc_vers_minor: number;
  chunks: Buffer[];
  size: number;
}

export class RpcPipe {
  private isBroken = false;
  private input: Buffer = Buffer.alloc(0);
  private readonly output: Buffer[] = [];
  private readonly contexts = new Map<number, RpcInterface>();
  private bound = false;
  private xmitFrag = MAX_FRAG;
  private recvFrag = MAX_FRAG;
  private assocGroupId = nextAssocGroup++;
  private pending: PendingCall | undefined;
  /** A call whose remaining fragments are dropped after it was refused. */
  private discarding: number | undefined;

  constructor(
    readonly name: string,
    private readonly ifaces: readonly RpcInterface[],
  ) {}

  /** Set when the byte stream can no longer be framed; the SMB layer then answers STATUS_PIPE_DISCONNECTED. */
  get broken(): boolean {
    return this.isBroken;
  }

  /** Bytes of all queued response messages (for FSCTL_PIPE_PEEK and the busy check of a transceive). */
  get available(): number {
    return this.output.reduce((n, m) => n + m.length, 0);
  }

  /** Client bytes: any number of whole or partial PDUs. Responses are queued for read(). */
  write(data: Buffer): void {
    if (this.isBroken) return;
    this.input = this.input.length === 0 ? Buffer.from(data) : Buffer.concat([this.input, data]);
    while (this.input.length >= RPC_HEADER_SIZE) {
      let header: RpcHeader;
      try {
        header = decodeHeader(this.input);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        this.break();
        return;
      }
      if (this.input.length < header.frag_length) return;
      const frag = this.input.subarray(0, header.frag_length);
      this.input = this.input.subarray(header.frag_length);
      this.handle(frag, header);
    }
  }

  /**
   * The next queued message, or its first maxLength bytes with overflow set (the caller answers
   * STATUS_BUFFER_OVERFLOW and the rest comes with the following reads); undefined if none.
   */
  read(maxLength: number): { data: Buffer; overflow: boolean } | undefined {
    const msg = this.output[0];
    if (msg === undefined) return undefined;
    const n = Math.max(0, maxLength);
    if (msg.length <= n) {
      this.output.shift();
      return { data: msg, overflow: false };
    }
    this.output[0] = msg.subarray(n);
    return { data: msg.subarray(0, n), overflow: true };
  }

  /** FSCTL_PIPE_TRANSCEIVE: write, then read. */
  transceive(input: Buffer, maxOutput: number): { data: Buffer; overflow: boolean } | undefined {
    this.write(input);
    return this.read(maxOutput);
  }

  private break(): void {
    this.isBroken = true;
    this.input = Buffer.alloc(0);
    this.output.length = 0;
    this.contexts.clear();
    this.pending = undefined;
  }

  private send(pdu: RpcPdu): void {
    this.output.push(encodePdu(pdu));
  }

  private handle(frag: Buffer, header: RpcHeader): void {
    let pdu: RpcPdu;
    try {
      pdu = decodePdu(frag);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      const minorOk = header.rpc_vers_minor <= 1;
      const minor = minorOk ? header.rpc_vers_minor : 0;
      if (header.PTYPE === PType.BIND) {
        this.nak(header.call_id, minor, minorOk ? RejectReason.REASON_NOT_SPECIFIED : RejectReason.PROTOCOL_VERSION_NOT_SUPPORTED);
      } else {
        this.fault(header.call_id, minor, 0, NcaStatus.nca_s_proto_error);
      }
      return;
    }
    switch (pdu.PTYPE) {
      case PType.BIND:
        return this.bind(pdu);
      case PType.ALTER_CONTEXT:
        return this.alterContext(pdu);
      case PType.REQUEST:
        return this.request(pdu);
      case PType.CO_CANCEL:
        // Calls complete synchronously inside write(): there is never one left to cancel.
        return;
      case PType.ORPHANED:
        if (this.pending?.call_id === pdu.call_id) this.pending = undefined;
        return;
      default:
        this.fault(pdu.call_id, pdu.rpc_vers_minor, 0, NcaStatus.nca_s_proto_error);
    }
  }

  private nak(call_id: number, rpc_vers_minor: number, provider_reject_reason: number): void {
    // 21 bytes with one version, padded to 24 as Samba does.
    this.send({
      PTYPE: PType.BIND_NAK,
      rpc_vers_minor,
      pfc_flags: PfcFlags.PFC_FIRST_FRAG | PfcFlags.PFC_LAST_FRAG,
      packed_drep: DREP_LITTLE_ENDIAN,
      call_id,
      provider_reject_reason,
      versions: [{ major: 5, minor: 0 }],
      trailer: Buffer.alloc(3),
    });
  }

  private fault(call_id: number, rpc_vers_minor: number, p_cont_id: number, status: number, didNotExecute = false): void {
    this.send({
      PTYPE: PType.FAULT,
      rpc_vers_minor,
      pfc_flags: PfcFlags.PFC_FIRST_FRAG | PfcFlags.PFC_LAST_FRAG | (didNotExecute ? PfcFlags.PFC_DID_NOT_EXECUTE : 0),
      packed_drep: DREP_LITTLE_ENDIAN,
      call_id,
      alloc_hint: 0,
      p_cont_id,
      cancel_count: 0,
      status,
      stub: Buffer.alloc(0),
    });
  }

  /** Presentation context negotiation (C706 12.6.3.1, MS-RPCE 3.3.1.5.3 and 3.3.1.5.6). */
  private negotiate(elem: PContElem): PResult {
    const reject = (reason: number): PResult => ({ result: ContResult.provider_rejection, reason, transfer_syntax: NULL_SYNTAX });
    const features = elem.transfer_syntaxes.length === 1 ? featureBits(elem.transfer_syntaxes[0]!) : undefined;
    if (features !== undefined) {
      return { result: ContResult.negotiate_ack, reason: features & SUPPORTED_FEATURES, transfer_syntax: NULL_SYNTAX };
    }
    const major = elem.abstract_syntax.if_version & 0xffff;
    const minor = elem.abstract_syntax.if_version >>> 16;
    // A server interface serves clients of the same major version and an equal or older minor one.
    const iface = this.ifaces.find(
      (i) => sameUuid(i.uuid, elem.abstract_syntax.if_uuid) && i.version[0] === major && minor <= i.version[1],
    );
    if (iface === undefined) return reject(ProviderReason.abstract_syntax_not_supported);
    if (!elem.transfer_syntaxes.some(isNdr)) return reject(ProviderReason.proposed_transfer_syntaxes_not_supported);
    this.contexts.set(elem.p_cont_id, iface);
    return { result: ContResult.acceptance, reason: 0, transfer_syntax: NDR_SYNTAX };
  }

  private bind(pdu: BindPdu): void {
    const nak = (reason: number) => this.nak(pdu.call_id, pdu.rpc_vers_minor, reason);
    if (pdu.auth_verifier !== undefined) return nak(RejectReason.AUTHENTICATION_TYPE_NOT_RECOGNIZED);
    if (this.bound || pdu.p_context_elem.p_cont_elem.length === 0) return nak(RejectReason.REASON_NOT_SPECIFIED);
    if (pdu.max_recv_frag < MIN_RECV_FRAG) return nak(RejectReason.LOCAL_LIMIT_EXCEEDED);
    this.bound = true;
    this.xmitFrag = Math.min(pdu.max_recv_frag, MAX_FRAG);
    this.recvFrag = Math.min(pdu.max_xmit_frag, MAX_FRAG);
    if (pdu.assoc_group_id !== 0) this.assocGroupId = pdu.assoc_group_id;
    this.acceptContexts(pdu, PType.BIND_ACK, Buffer.from(`\\PIPE\\${this.name}\0`, 'latin1'));
  }

  private alterContext(pdu: BindPdu): void {
    if (!this.bound || pdu.auth_verifier !== undefined || pdu.p_context_elem.p_cont_elem.length === 0) {
      return this.fault(pdu.call_id, pdu.rpc_vers_minor, 0, NcaStatus.nca_s_proto_error);
    }
    // An alter_context_resp carries no secondary address (C706 12.6.4.2).
    this.acceptContexts(pdu, PType.ALTER_CONTEXT_RESP, Buffer.alloc(0));
  }

  /** bind_ack or alter_context_resp: the negotiated fragment sizes and one result per offered context. */
  private acceptContexts(pdu: BindPdu, PTYPE: typeof PType.BIND_ACK | typeof PType.ALTER_CONTEXT_RESP, sec_addr: Buffer): void {
    this.send({
      PTYPE,
      rpc_vers_minor: pdu.rpc_vers_minor,
      pfc_flags: PfcFlags.PFC_FIRST_FRAG | PfcFlags.PFC_LAST_FRAG,
      packed_drep: DREP_LITTLE_ENDIAN,
      call_id: pdu.call_id,
      max_xmit_frag: this.xmitFrag,
      max_recv_frag: this.recvFrag,
      assoc_group_id: this.assocGroupId,
      sec_addr,
      p_result_list: { p_results: pdu.p_context_elem.p_cont_elem.map((e) => this.negotiate(e)) },
    });
  }

  /** Reassembles fragmented requests (C706 12.6.4.9); a fragment out of sequence is a protocol error. */
  private request(pdu: RequestPdu): void {
    const first = (pdu.pfc_flags & PfcFlags.PFC_FIRST_FRAG) !== 0;
    const last = (pdu.pfc_flags & PfcFlags.PFC_LAST_FRAG) !== 0;
    if (this.discarding === pdu.call_id && !first) {
      if (last) this.discarding = undefined;
      return;
    }
    this.discarding = undefined;
    const refuse = () => {
      this.pending = undefined;
      if (!last) this.discarding = pdu.call_id;
      this.fault(pdu.call_id, pdu.rpc_vers_minor, pdu.p_cont_id, NcaStatus.nca_s_proto_error);
    };
    const continues = this.pending !== undefined && this.pending.call_id === pdu.call_id;
    if (pdu.auth_verifier !== undefined || (first ? this.pending !== undefined : !continues)) return refuse();
    const { call_id, p_cont_id, opnum, rpc_vers_minor } = pdu;
    const call = this.pending ?? { call_id, p_cont_id, opnum, rpc_vers_minor, chunks: [], size: 0 };
    call.size += pdu.stub.length;
    if (call.size > MAX_REQUEST_STUB) return refuse();
    call.chunks.push(pdu.stub);
    if (!last) {
      this.pending = call;
      return;
    }
    this.pending = undefined;
    this.dispatch(call, Buffer.concat(call.chunks));
  }

  private dispatch(call: PendingCall, stub: Buffer): void {
    const fault = (status: number, didNotExecute: boolean) => this.fault(call.call_id, call.rpc_vers_minor, call.p_cont_id, status, didNotExecute);
    const iface = this.contexts.get(call.p_cont_id);
    if (iface === undefined) return fault(NcaStatus.nca_s_unknown_if, true);
    let out: Buffer;
    try {
      out = iface.call(call.opnum, stub);
    } catch (e) {
      // An opnum out of range never ran; any other fault happened during the call.
      if (e instanceof RpcFaultError) return fault(e.status, e.status === NcaStatus.nca_s_op_rng_error);
      if (e instanceof WireError) return fault(NcaStatus.nca_s_fault_ndr, false);
      throw e;
    }
    this.respond(call, out);
  }

  /** Response fragments of at most the client's max_recv_frag, stub sliced in multiples of 8. */
  private respond(call: PendingCall, stub: Buffer): void {
    const room = Math.floor((this.xmitFrag - RPC_RESPONSE_HEADER_SIZE) / 8) * 8;
    let at = 0;
    do {
      const n = Math.min(room, stub.length - at);
      const flags = (at === 0 ? PfcFlags.PFC_FIRST_FRAG : 0) | (at + n === stub.length ? PfcFlags.PFC_LAST_FRAG : 0);
      this.send({
        PTYPE: PType.RESPONSE,
        rpc_vers_minor: call.rpc_vers_minor,
        pfc_flags: flags,
        packed_drep: DREP_LITTLE_ENDIAN,
        call_id: call.call_id,
        alloc_hint: stub.length - at,
        p_cont_id: call.p_cont_id,
        cancel_count: 0,
        stub: stub.subarray(at, at + n),
      });
      at += n;
    } while (at < stub.length);
  }
}
