import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, WireError } from '../../../../src/control/errors.js';
import { MAX_FRAG, openPipe, pipeBaseName, RpcFaultError, type RpcInterface, RpcPipe } from '../../../../src/control/smb2/ipc/pipe.js';
import { srvsvcInterface } from '../../../../src/control/smb2/ipc/srvsvc.js';
import {
  type BindAckPdu,
  type BindNakPdu,
  ContResult,
  decodePdu,
  DREP_LITTLE_ENDIAN,
  encodePdu,
  type FaultPdu,
  NcaStatus,
  NDR64_SYNTAX,
  NDR_SYNTAX,
  NULL_SYNTAX,
  type PContElem,
  PfcFlags,
  ProviderReason,
  PType,
  RejectReason,
  type ResponsePdu,
  type RpcPdu,
  syntaxVersion,
} from '../../../../src/control/wire/dcerpc.js';
import { SRVSVC_UUID } from '../../../../src/control/wire/srvsvc.js';
import { capture, captureCatalog, fuzzTargets } from '../../wire/fuzz-targets-rpc.js';

const FIRST = PfcFlags.PFC_FIRST_FRAG;
const LAST = PfcFlags.PFC_LAST_FRAG;
const DNE = PfcFlags.PFC_DID_NOT_EXECUTE;

/** A test interface: opnum 0 echoes, 1 returns N bytes (N from the stub), 2 has a bad stub, others do not exist. */
const ECHO_UUID = '12345678-1234-abcd-ef00-0123456789ab';
const calls: { opnum: number; stub: Buffer }[] = [];
const echo: RpcInterface = {
  name: 'echo',
  uuid: ECHO_UUID,
  version: [1, 2],
  call(opnum, stub) {
    calls.push({ opnum, stub: Buffer.from(stub) });
    if (opnum === 0) return stub;
    if (opnum === 1) return Buffer.from(Array.from({ length: stub.readUInt32LE(0) }, (_, i) => i & 0xff));
    if (opnum === 2) throw new WireError(ErrorCode.WIRE_BAD_FIELD, 'bad stub');
    throw new RpcFaultError(NcaStatus.nca_s_op_rng_error, 'no such opnum');
  },
};

function ctx(p_cont_id: number, uuid = ECHO_UUID, version = syntaxVersion(1, 0), transfer = [NDR_SYNTAX]): PContElem {
  return { p_cont_id, abstract_syntax: { if_uuid: uuid, if_version: version }, transfer_syntaxes: transfer };
}

interface BindOptions {
  max_recv_frag: number;
  call_id: number;
  PTYPE: typeof PType.BIND | typeof PType.ALTER_CONTEXT;
  auth_verifier: Buffer;
}

function bind(elems: PContElem[], extra: Partial<BindOptions> = {}): Buffer {
  return encodePdu({
    PTYPE: extra.PTYPE ?? PType.BIND,
    rpc_vers_minor: 0,
    pfc_flags: FIRST | LAST,
    packed_drep: DREP_LITTLE_ENDIAN,
    call_id: extra.call_id ?? 1,
    max_xmit_frag: 4280,
    max_recv_frag: extra.max_recv_frag ?? 4280,
    assoc_group_id: 0,
    p_context_elem: { p_cont_elem: elems },
    ...(extra.auth_verifier ? { auth_verifier: extra.auth_verifier } : {}),
  });
}

function request(call_id: number, opnum: number, stub: Buffer, flags = FIRST | LAST, p_cont_id = 0): Buffer {
  return encodePdu({
    PTYPE: PType.REQUEST,
    rpc_vers_minor: 0,
    pfc_flags: flags,
    packed_drep: DREP_LITTLE_ENDIAN,
    call_id,
    alloc_hint: stub.length,
    p_cont_id,
    opnum,
    stub,
  });
}

function drain(pipe: RpcPipe): RpcPdu[] {
  const out: RpcPdu[] = [];
  for (let m = pipe.read(0xffff); m !== undefined; m = pipe.read(0xffff)) {
    assert.equal(m.overflow, false);
    out.push(decodePdu(m.data));
  }
  return out;
}

function only<T extends RpcPdu>(pipe: RpcPipe, ptype: T['PTYPE']): T {
  const out = drain(pipe);
  assert.equal(out.length, 1, `expected one PDU, got ${out.map((p) => p.PTYPE).join(',')}`);
  assert.equal(out[0]!.PTYPE, ptype);
  return out[0] as T;
}

function boundEcho(max_recv_frag = 4280): RpcPipe {
  const pipe = new RpcPipe('echo', [echo]);
  pipe.write(bind([ctx(0)], { max_recv_frag }));
  only<BindAckPdu>(pipe, PType.BIND_ACK);
  calls.length = 0;
  return pipe;
}

function assertFault(pipe: RpcPipe, call_id: number, status: number, flags: number): void {
  const f = only<FaultPdu>(pipe, PType.FAULT);
  assert.deepEqual([f.call_id, f.status, f.pfc_flags], [call_id, status, flags]);
}

test("the captured bind gets smbd's bind_ack, but for the association group and \\PIPE\\ spelled as Windows does", () => {
  const pipe = openPipe('srvsvc', [srvsvcInterface(captureCatalog)])!;
  const got = pipe.transceive(capture('bind'), 4280);
  assert.ok(got && !got.overflow);
  const ours = decodePdu(got.data);
  const samba = decodePdu(capture('sambaBindAck'));
  assert.ok(ours.PTYPE === PType.BIND_ACK && samba.PTYPE === PType.BIND_ACK);
  assert.notEqual(ours.assoc_group_id, 0);
  assert.equal(ours.sec_addr.toString('latin1'), '\\PIPE\\srvsvc\0');
  assert.deepEqual(
    { ...ours, assoc_group_id: 0, sec_addr: ours.sec_addr.toString('latin1').toLowerCase() },
    { ...samba, assoc_group_id: 0, sec_addr: samba.sec_addr.toString('latin1') },
  );
});

test('a Windows-style bind: NDR accepted, NDR64 refused, bind time features acknowledged (keep-connection-on-orphan only)', () => {
  const pipe = openPipe('srvsvc', [srvsvcInterface(captureCatalog)])!;
  const ours = decodePdu(pipe.transceive(capture('windowsStyleBind'), 4280)!.data);
  const samba = decodePdu(capture('sambaWindowsStyleBindAck'));
  assert.ok(ours.PTYPE === PType.BIND_ACK && samba.PTYPE === PType.BIND_ACK);
  assert.deepEqual(ours.p_result_list.p_results.slice(0, 2), samba.p_result_list.p_results.slice(0, 2));
  assert.deepEqual(ours.p_result_list.p_results[2], { result: ContResult.negotiate_ack, reason: 0x02, transfer_syntax: NULL_SYNTAX });
});

test('context negotiation: unknown interface, wrong major, newer minor, NDR64 only', () => {
  const pipe = new RpcPipe('echo', [echo]);
  pipe.write(
    bind([
      ctx(0, SRVSVC_UUID, syntaxVersion(3, 0)),
      ctx(1, ECHO_UUID, syntaxVersion(2, 0)),
      ctx(2, ECHO_UUID, syntaxVersion(1, 3)),
      ctx(3, ECHO_UUID, syntaxVersion(1, 2), [NDR64_SYNTAX]),
      ctx(4, ECHO_UUID.toUpperCase(), syntaxVersion(1, 1), [NDR64_SYNTAX, NDR_SYNTAX]),
    ]),
  );
  const ack = only<BindAckPdu>(pipe, PType.BIND_ACK);
  const reject = (reason: number) => ({ result: ContResult.provider_rejection, reason, transfer_syntax: NULL_SYNTAX });
  assert.deepEqual(ack.p_result_list.p_results, [
    reject(ProviderReason.abstract_syntax_not_supported),
    reject(ProviderReason.abstract_syntax_not_supported),
    reject(ProviderReason.abstract_syntax_not_supported),
    reject(ProviderReason.proposed_transfer_syntaxes_not_supported),
    { result: ContResult.acceptance, reason: 0, transfer_syntax: NDR_SYNTAX },
  ]);
  pipe.write(request(2, 0, Buffer.from('hi'), FIRST | LAST, 4));
  assert.equal(only<ResponsePdu>(pipe, PType.RESPONSE).stub.toString(), 'hi');
  pipe.write(request(3, 0, Buffer.from('hi'), FIRST | LAST, 3));
  assertFault(pipe, 3, NcaStatus.nca_s_unknown_if, FIRST | LAST | DNE);
});

test('binds that are refused with a bind_nak', () => {
  const nak = (pipe: RpcPipe) => only<BindNakPdu>(pipe, PType.BIND_NAK);
  const ntlm = Buffer.concat([Buffer.from([10, 2, 0, 0, 0, 0, 0, 0]), Buffer.from('NTLMSSP\0')]);
  const cases: [string, Buffer, number][] = [
    ['an auth verifier', bind([ctx(0)], { auth_verifier: ntlm }), RejectReason.AUTHENTICATION_TYPE_NOT_RECOGNIZED],
    ['no contexts', bind([]), RejectReason.REASON_NOT_SPECIFIED],
    ['max_recv_frag 31', bind([ctx(0)], { max_recv_frag: 31 }), RejectReason.LOCAL_LIMIT_EXCEEDED],
    ['a truncated context list', (() => {
      const b = bind([ctx(0)]);
      b[24] = 2;
      return b;
    })(), RejectReason.REASON_NOT_SPECIFIED],
    ['rpc_vers_minor 2', (() => {
      const b = bind([ctx(0)]);
      b[1] = 2;
      return b;
    })(), RejectReason.PROTOCOL_VERSION_NOT_SUPPORTED],
  ];
  for (const [what, pdu, reason] of cases) {
    const pipe = new RpcPipe('echo', [echo]);
    pipe.write(pdu);
    const got = nak(pipe);
    assert.equal(got.provider_reject_reason, reason, what);
    assert.deepEqual(got.versions, [{ major: 5, minor: 0 }]);
    assert.equal(pipe.broken, false);
  }
  // The auth case answers what smbd answers, but for the reason.
  const pipe = new RpcPipe('echo', [echo]);
  pipe.write(bind([ctx(0)], { auth_verifier: ntlm }));
  const ours = pipe.read(100)!.data;
  const samba = capture('sambaBindNakAuth');
  ours.writeUInt16LE(0, 16);
  assert.equal(ours.toString('hex'), samba.toString('hex'));

  const twice = boundEcho();
  twice.write(bind([ctx(1)], { call_id: 2 }));
  assert.equal(nak(twice).provider_reject_reason, RejectReason.REASON_NOT_SPECIFIED);
  twice.write(request(3, 0, Buffer.from('still bound')));
  assert.equal(only<ResponsePdu>(twice, PType.RESPONSE).stub.toString(), 'still bound');
});

test('alter_context adds contexts to a bound pipe and is a protocol error before the bind', () => {
  const early = new RpcPipe('echo', [echo]);
  early.write(bind([ctx(1)], { PTYPE: PType.ALTER_CONTEXT, call_id: 4 }));
  assertFault(early, 4, NcaStatus.nca_s_proto_error, FIRST | LAST);

  const pipe = boundEcho(64);
  pipe.write(bind([ctx(1)], { PTYPE: PType.ALTER_CONTEXT, call_id: 2 }));
  const resp = only<BindAckPdu>(pipe, PType.ALTER_CONTEXT_RESP);
  assert.deepEqual([resp.call_id, resp.sec_addr.length, resp.max_xmit_frag], [2, 0, 64]);
  assert.deepEqual(resp.p_result_list.p_results, [{ result: ContResult.acceptance, reason: 0, transfer_syntax: NDR_SYNTAX }]);
  pipe.write(request(3, 0, Buffer.from('on context 1'), FIRST | LAST, 1));
  assert.equal(only<ResponsePdu>(pipe, PType.RESPONSE).p_cont_id, 1);
});

test('faults: no context, unknown opnum, undecodable stub, as smbd flags them', () => {
  const unbound = new RpcPipe('echo', [echo]);
  unbound.write(request(7, 0, Buffer.alloc(4)));
  assertFault(unbound, 7, NcaStatus.nca_s_unknown_if, FIRST | LAST | DNE);

  const pipe = boundEcho();
  const samba = (name: 'sambaFaultOpRng' | 'sambaFaultNdr') => decodePdu(capture(name)) as FaultPdu;
  pipe.write(request(2, 200, Buffer.alloc(0)));
  assertFault(pipe, 2, samba('sambaFaultOpRng').status, samba('sambaFaultOpRng').pfc_flags);
  pipe.write(request(2, 2, Buffer.alloc(0)));
  assertFault(pipe, 2, samba('sambaFaultNdr').status, samba('sambaFaultNdr').pfc_flags);
  pipe.write(request(8, 0, Buffer.alloc(0), FIRST | LAST, 5));
  assertFault(pipe, 8, NcaStatus.nca_s_unknown_if, FIRST | LAST | DNE);
  assert.deepEqual(calls.map((c) => c.opnum), [200, 2]);
});

test('responses are fragmented to the max_recv_frag the client bound with', () => {
  const pipe = boundEcho(70);
  const size = Buffer.alloc(4);
  size.writeUInt32LE(203);
  pipe.write(request(5, 1, size));
  const frags = drain(pipe) as ResponsePdu[];
  assert.equal(frags.length, 6);
  let at = 0;
  frags.forEach((f, i) => {
    assert.equal(f.call_id, 5);
    assert.equal(f.pfc_flags, (i === 0 ? FIRST : 0) | (i === frags.length - 1 ? LAST : 0));
    assert.equal(f.alloc_hint, 203 - at);
    assert.ok(encodePdu(f).length <= 70);
    if (i < frags.length - 1) assert.equal(f.stub.length, 40);
    at += f.stub.length;
  });
  assert.deepEqual(Buffer.concat(frags.map((f) => f.stub)), Buffer.from(Array.from({ length: 203 }, (_, i) => i & 0xff)));
  const big = boundEcho(0xffff);
  size.writeUInt32LE(10000);
  big.write(request(6, 1, size));
  assert.ok(drain(big).every((f) => encodePdu(f).length <= MAX_FRAG));
});

test('fragmented requests are reassembled, whatever the write boundaries', () => {
  const parts = [Buffer.from('first '), Buffer.from('second '), Buffer.from('third')];
  const stream = Buffer.concat([
    request(9, 0, parts[0]!, FIRST),
    request(9, 0, parts[1]!, 0),
    request(9, 0, parts[2]!, LAST),
    request(10, 0, Buffer.from('x')),
  ]);
  for (const cut of [1, 7, 16, 17, 40, stream.length]) {
    const pipe = boundEcho();
    for (let at = 0; at < stream.length; at += cut) pipe.write(stream.subarray(at, at + cut));
    const out = drain(pipe) as ResponsePdu[];
    assert.deepEqual(out.map((r) => [r.call_id, r.stub.toString()]), [[9, 'first second third'], [10, 'x']], `chunks of ${cut}`);
  }
});

test('fragments out of sequence are protocol errors; the refused call is then ignored to its last fragment', () => {
  const pipe = boundEcho();
  pipe.write(request(1, 0, Buffer.from('orphan'), 0));
  assertFault(pipe, 1, NcaStatus.nca_s_proto_error, FIRST | LAST);
  pipe.write(request(1, 0, Buffer.from('rest'), LAST));
  assert.deepEqual(drain(pipe), []);

  pipe.write(request(2, 0, Buffer.from('a'), FIRST));
  pipe.write(request(3, 0, Buffer.from('b'), 0));
  assertFault(pipe, 3, NcaStatus.nca_s_proto_error, FIRST | LAST);
  pipe.write(request(4, 0, Buffer.from('c'), FIRST));
  pipe.write(request(5, 0, Buffer.from('d'), FIRST | LAST));
  assertFault(pipe, 5, NcaStatus.nca_s_proto_error, FIRST | LAST);
  pipe.write(request(6, 0, Buffer.from('fresh')));
  assert.equal(only<ResponsePdu>(pipe, PType.RESPONSE).stub.toString(), 'fresh');
  assert.deepEqual(calls.map((c) => c.stub.toString()), ['fresh']);
});

test('an oversized reassembly is refused once and its remaining fragments dropped', () => {
  const pipe = boundEcho();
  const chunk = Buffer.alloc(60000);
  pipe.write(request(3, 0, chunk, FIRST));
  for (let i = 0; i < 4; i++) pipe.write(request(3, 0, chunk, 0));
  assertFault(pipe, 3, NcaStatus.nca_s_proto_error, FIRST | LAST);
  pipe.write(request(3, 0, chunk, 0));
  pipe.write(request(3, 0, chunk, LAST));
  assert.deepEqual(drain(pipe), []);
  assert.equal(calls.length, 0);
});

test('orphaned drops the call being reassembled; co_cancel is ignored; server-only PDUs are protocol errors', () => {
  const pipe = boundEcho();
  const other = (PTYPE: 18 | 19 | 2, call_id: number) => {
    const common = { rpc_vers_minor: 0, pfc_flags: FIRST | LAST, packed_drep: DREP_LITTLE_ENDIAN, call_id };
    return encodePdu(
      PTYPE === PType.RESPONSE
        ? { PTYPE, ...common, alloc_hint: 0, p_cont_id: 0, cancel_count: 0, stub: Buffer.alloc(0) }
        : { PTYPE, ...common, body: Buffer.alloc(0) },
    );
  };
  pipe.write(request(4, 0, Buffer.from('half'), FIRST));
  pipe.write(other(PType.CO_CANCEL, 4));
  pipe.write(other(PType.ORPHANED, 4));
  assert.deepEqual(drain(pipe), []);
  pipe.write(request(5, 0, Buffer.from('whole')));
  assert.equal(only<ResponsePdu>(pipe, PType.RESPONSE).stub.toString(), 'whole');
  pipe.write(other(PType.RESPONSE, 6));
  assertFault(pipe, 6, NcaStatus.nca_s_proto_error, FIRST | LAST);
  const short = request(7, 0, Buffer.alloc(0)).subarray(0, 20);
  short.writeUInt16LE(20, 8);
  pipe.write(short);
  assertFault(pipe, 7, NcaStatus.nca_s_proto_error, FIRST | LAST);
});

test('message-mode reads: a short read overflows and the rest follows', () => {
  const pipe = boundEcho();
  pipe.write(Buffer.concat([request(2, 0, Buffer.from('0123456789')), request(3, 0, Buffer.from('x'))]));
  const whole = encodePdu({
    PTYPE: PType.RESPONSE,
    rpc_vers_minor: 0,
    pfc_flags: FIRST | LAST,
    packed_drep: DREP_LITTLE_ENDIAN,
    call_id: 2,
    alloc_hint: 10,
    p_cont_id: 0,
    cancel_count: 0,
    stub: Buffer.from('0123456789'),
  });
  assert.equal(pipe.available, whole.length + 25);
  const a = pipe.read(16)!;
  assert.deepEqual([a.overflow, a.data.toString('hex')], [true, whole.subarray(0, 16).toString('hex')]);
  const b = pipe.read(10)!;
  assert.deepEqual([b.overflow, b.data.toString('hex')], [true, whole.subarray(16, 26).toString('hex')]);
  const c = pipe.read(100)!;
  assert.deepEqual([c.overflow, c.data.toString('hex')], [false, whole.subarray(26).toString('hex')]);
  assert.equal((decodePdu(pipe.read(25)!.data) as ResponsePdu).call_id, 3);
  assert.equal(pipe.read(100), undefined);
  assert.equal(pipe.transceive(request(4, 0, Buffer.from('z')).subarray(0, 10), 100), undefined);
});

test('a stream that cannot be framed breaks the pipe for good', () => {
  const corruptions: [string, (b: Buffer) => void][] = [
    ['rpc_vers 4', (b) => (b[0] = 4)],
    ['big-endian drep', (b) => (b[4] = 0)],
    ['frag_length 10', (b) => b.writeUInt16LE(10, 8)],
  ];
  for (const [what, corrupt] of corruptions) {
    const pipe = boundEcho();
    pipe.write(request(2, 0, Buffer.from('queued')));
    const bad = request(3, 0, Buffer.from('x'));
    corrupt(bad);
    pipe.write(bad);
    assert.equal(pipe.broken, true, what);
    assert.equal(pipe.read(100), undefined, what);
    pipe.write(request(4, 0, Buffer.from('y')));
    assert.equal(pipe.read(100), undefined, what);
  }
});

test('pipe names are case-insensitive, with or without \\PIPE\\ or a leading backslash', () => {
  const ifaces = [srvsvcInterface(captureCatalog), echo];
  for (const name of ['srvsvc', 'SRVSVC', '\\PIPE\\srvsvc', '\\pipe\\SrvSvc', 'PIPE\\srvsvc', '\\srvsvc', '\\\\srvsvc']) {
    assert.equal(openPipe(name, ifaces)?.name, 'srvsvc', name);
  }
  assert.equal(openPipe('\\PIPE\\echo', ifaces)?.name, 'echo');
  assert.equal(openPipe('wkssvc', ifaces), undefined);
  assert.equal(openPipe('\\PIPE\\', ifaces), undefined);
  assert.equal(pipeBaseName('\\PIPE\\lsarpc'), 'lsarpc');
});

const SEEDS = [
  'bind',
  'windowsStyleBind',
  'enumLevel1',
  'enumLevel2',
  'enumLevel1Resume',
  'getInfoLevel2',
  'getInfoLevel502',
  'serverInfo101',
] as const;
const byteEdits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 });

test('property: mutated captured PDUs never make the pipe throw, and every answer is a well-formed PDU', () => {
  const answers = new Set<number>([PType.BIND_ACK, PType.BIND_NAK, PType.ALTER_CONTEXT_RESP, PType.RESPONSE, PType.FAULT]);
  fc.assert(
    fc.property(fc.constantFrom(...SEEDS), byteEdits, (seed, edits) => {
      const b = capture(seed);
      for (const [at, v] of edits) b[at % b.length] = v;
      const pipe = openPipe('srvsvc', [srvsvcInterface(captureCatalog)])!;
      pipe.write(capture('bind'));
      pipe.write(b);
      const out = drain(pipe);
      if (pipe.broken) assert.deepEqual(out, []);
      for (const pdu of out) assert.ok(answers.has(pdu.PTYPE), `answered PTYPE ${pdu.PTYPE}`);
    }),
    { numRuns: 2000 },
  );
});

test('the pipe fuzz target survives arbitrary bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (a) => fuzzTargets['rpc.pipe']!(Buffer.from(a))), { numRuns: 1000 });
});

test('property: any chunking of a conversation gives the same answers', () => {
  const conversation = Buffer.concat([capture('bind'), capture('enumLevel1'), capture('getInfoLevel2'), capture('serverInfo101')]);
  const whole = openPipe('srvsvc', [srvsvcInterface(captureCatalog)])!;
  whole.write(conversation);
  const want = drain(whole).map((p) => encodePdu(p).toString('hex'));
  assert.equal(want.length, 4);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 80 }), { maxLength: 40 }), (cuts) => {
      const pipe = openPipe('srvsvc', [srvsvcInterface(captureCatalog)])!;
      let at = 0;
      for (const c of cuts) {
        pipe.write(conversation.subarray(at, at + c));
        at = Math.min(conversation.length, at + c);
      }
      pipe.write(conversation.subarray(at));
      const got = drain(pipe).map((p) => encodePdu(p).toString('hex'));
      // The association group differs per pipe; compare everything else.
      assert.deepEqual(got.slice(1), want.slice(1));
      assert.equal(got[0]!.slice(0, 40) + got[0]!.slice(48), want[0]!.slice(0, 40) + want[0]!.slice(48));
    }),
    { numRuns: 300 },
  );
});
