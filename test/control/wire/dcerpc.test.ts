import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, WireError } from '../../../src/control/errors.js';
import {
  ContResult,
  decodeHeader,
  decodePdu,
  DREP_LITTLE_ENDIAN,
  encodePdu,
  NcaStatus,
  NDR64_SYNTAX,
  NDR_SYNTAX,
  NULL_SYNTAX,
  PfcFlags,
  ProviderReason,
  PType,
  type RpcPdu,
  syntaxVersion,
  uuidFromBytes,
  uuidToBytes,
} from '../../../src/control/wire/dcerpc.js';
import { SRVSVC_UUID } from '../../../src/control/wire/srvsvc.js';
import { assertOnlyWireErrors, assertRoundTrip, assertTruncationsTyped } from '../../helpers/wire.js';
import { capture, captureNames, fuzzTargets } from './fuzz-targets-rpc.js';

const FIRST_LAST = PfcFlags.PFC_FIRST_FRAG | PfcFlags.PFC_LAST_FRAG;
const byteEdits = (max: number) => fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: max });
const isWireError = (code?: ErrorCode) => (e: unknown) => e instanceof WireError && (code === undefined || e.code === code);

test('every captured PDU round-trips exactly and its truncations are typed errors', () => {
  for (const name of captureNames) {
    const bytes = capture(name);
    assertRoundTrip(decodePdu, encodePdu, bytes, name);
    assertTruncationsTyped(decodePdu, bytes, name);
  }
});

test("rpcclient's bind: one srvsvc v3.0 context over NDR 2.0, 4280-byte fragments", () => {
  const pdu = decodePdu(capture('bind'));
  assert.deepEqual(pdu, {
    PTYPE: PType.BIND,
    rpc_vers_minor: 0,
    pfc_flags: FIRST_LAST,
    packed_drep: DREP_LITTLE_ENDIAN,
    call_id: 1,
    max_xmit_frag: 4280,
    max_recv_frag: 4280,
    assoc_group_id: 0,
    p_context_elem: {
      p_cont_elem: [
        { p_cont_id: 0, abstract_syntax: { if_uuid: SRVSVC_UUID, if_version: syntaxVersion(3, 0) }, transfer_syntaxes: [NDR_SYNTAX] },
      ],
    },
  });
});

test("smbd's bind_ack: secondary address, alignment, and the three results of a Windows-style bind", () => {
  const ack = decodePdu(capture('sambaBindAck'));
  assert.equal(ack.PTYPE, PType.BIND_ACK);
  if (ack.PTYPE !== PType.BIND_ACK) return;
  assert.equal(ack.sec_addr.toString('latin1'), '\\pipe\\srvsvc\0');
  assert.deepEqual(ack.p_result_list.p_results, [{ result: ContResult.acceptance, reason: 0, transfer_syntax: NDR_SYNTAX }]);

  const bind = decodePdu(capture('windowsStyleBind'));
  assert.ok(bind.PTYPE === PType.BIND);
  assert.deepEqual(
    bind.p_context_elem.p_cont_elem.map((e) => e.transfer_syntaxes[0]!.if_uuid),
    [NDR_SYNTAX.if_uuid, NDR64_SYNTAX.if_uuid, '6cb71c2c-9812-4540-0300-000000000000'],
  );
  const ack3 = decodePdu(capture('sambaWindowsStyleBindAck'));
  assert.ok(ack3.PTYPE === PType.BIND_ACK);
  assert.deepEqual(ack3.p_result_list.p_results, [
    { result: ContResult.acceptance, reason: 0, transfer_syntax: NDR_SYNTAX },
    {
      result: ContResult.provider_rejection,
      reason: ProviderReason.proposed_transfer_syntaxes_not_supported,
      transfer_syntax: NULL_SYNTAX,
    },
    { result: ContResult.negotiate_ack, reason: 3, transfer_syntax: NULL_SYNTAX },
  ]);
});

test('request, response, fault and bind_nak fields', () => {
  const req = decodePdu(capture('enumLevel1'));
  assert.ok(req.PTYPE === PType.REQUEST);
  assert.deepEqual([req.call_id, req.alloc_hint, req.p_cont_id, req.opnum, req.stub.length, req.object], [2, 64, 0, 15, 64, undefined]);
  const res = decodePdu(capture('sambaEnumLevel1'));
  assert.ok(res.PTYPE === PType.RESPONSE);
  assert.deepEqual([res.call_id, res.alloc_hint, res.cancel_count, res.stub.length], [2, 360, 0, 360]);
  const fault = decodePdu(capture('sambaFaultOpRng'));
  assert.ok(fault.PTYPE === PType.FAULT);
  assert.equal(fault.status, NcaStatus.nca_s_op_rng_error);
  assert.equal(fault.pfc_flags, FIRST_LAST | PfcFlags.PFC_DID_NOT_EXECUTE);
  const nak = decodePdu(capture('sambaBindNakAuth'));
  assert.ok(nak.PTYPE === PType.BIND_NAK);
  assert.deepEqual(nak.versions, [{ major: 5, minor: 0 }]);
  assert.equal(nak.trailer?.length, 3);
});

test('object UUIDs and auth verifiers round-trip', () => {
  const withObject: RpcPdu = {
    PTYPE: PType.REQUEST,
    rpc_vers_minor: 1,
    pfc_flags: FIRST_LAST | PfcFlags.PFC_OBJECT_UUID,
    packed_drep: DREP_LITTLE_ENDIAN,
    call_id: 9,
    alloc_hint: 4,
    p_cont_id: 1,
    opnum: 3,
    object: '01234567-89ab-cdef-0123-456789abcdef',
    stub: Buffer.from([1, 2, 3, 4]),
    auth_verifier: Buffer.from('0a06000000000000' + '01000000aabbccddeeff001122334455', 'hex'),
  };
  const bytes = encodePdu(withObject);
  assert.equal(bytes.readUInt16LE(8), 24 + 16 + 4 + 8 + 16);
  assert.equal(bytes.readUInt16LE(10), 16);
  assert.deepEqual(decodePdu(bytes), withObject);
  assert.throws(() => encodePdu({ ...withObject, object: undefined }), isWireError(ErrorCode.WIRE_ENCODE));
  assert.throws(() => encodePdu({ ...withObject, auth_verifier: Buffer.alloc(8) }), isWireError(ErrorCode.WIRE_ENCODE));

  const bind = decodePdu(capture('bind'));
  assert.ok(bind.PTYPE === PType.BIND);
  const ntlmssp = Buffer.concat([Buffer.from([10, 2, 4, 0, 0, 0, 0, 0]), Buffer.from('NTLMSSP\0')]);
  const authBind = { ...bind, trailer: Buffer.alloc(4), auth_verifier: ntlmssp };
  assert.deepEqual(decodePdu(encodePdu(authBind)), authBind);
});

test('a big-endian data representation is refused as a typed error', () => {
  const bytes = capture('bind');
  bytes[4] = 0x00; // integer representation 0 = big-endian
  assert.throws(() => decodeHeader(bytes), (e: unknown) => isWireError(ErrorCode.WIRE_BAD_FIELD)(e) && /big-endian/.test(String(e)));
  assert.throws(() => decodePdu(bytes), isWireError(ErrorCode.WIRE_BAD_FIELD));
});

test('header and length rules', () => {
  const cases: [string, (b: Buffer) => void][] = [
    ['rpc_vers 4', (b) => (b[0] = 4)],
    ['rpc_vers_minor 2', (b) => (b[1] = 2)],
    ['PTYPE 21', (b) => (b[2] = 21)],
    ['frag_length longer than the PDU', (b) => b.writeUInt16LE(b.length + 1, 8)],
    ['frag_length shorter than the PDU', (b) => b.writeUInt16LE(b.length - 1, 8)],
    ['frag_length under 16', (b) => b.writeUInt16LE(15, 8)],
    ['auth_length beyond the PDU', (b) => b.writeUInt16LE(b.length, 10)],
    ['a context list longer than the PDU', (b) => (b[24] = 2)],
  ];
  for (const [what, corrupt] of cases) {
    const b = capture('bind');
    corrupt(b);
    assert.throws(() => decodePdu(b), isWireError(), what);
  }
  // decodeHeader only needs rpc_vers, drep and frag_length to frame a PDU.
  const b = capture('bind');
  b[1] = 7;
  assert.equal(decodeHeader(b.subarray(0, 16)).frag_length, 72);
});

test('non-zero sec_addr padding is refused; non-zero reserved fields are kept', () => {
  const ack = capture('sambaBindAck');
  ack[39] = 1; // the pad byte after '\pipe\srvsvc\0'
  assert.throws(() => decodePdu(ack), isWireError(ErrorCode.WIRE_BAD_FIELD));
  const bind = capture('bind');
  bind[25] = 7; // p_cont_list reserved
  bind[31] = 9; // p_cont_elem reserved
  const pdu = assertRoundTrip(decodePdu, encodePdu, bind);
  assert.ok(pdu.PTYPE === PType.BIND);
  assert.equal(pdu.p_context_elem.reserved, 7);
  assert.equal(pdu.p_context_elem.p_cont_elem[0]!.reserved, 9);
});

test('PTYPEs without a model keep their body raw', () => {
  const bytes = capture('bind');
  bytes[2] = PType.AUTH3;
  const pdu = assertRoundTrip(decodePdu, encodePdu, bytes);
  assert.ok(pdu.PTYPE === PType.AUTH3);
  assert.equal(pdu.body.length, 72 - 16);
});

test('UUID text form: C706 byte order, and only valid text is encoded', () => {
  assert.equal(uuidToBytes(NDR_SYNTAX.if_uuid).toString('hex'), '045d888aeb1cc9119fe808002b104860');
  assert.throws(() => uuidToBytes('not-a-uuid'), isWireError(ErrorCode.WIRE_ENCODE));
  fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (a) => {
    const b = Buffer.from(a);
    assert.deepEqual(uuidToBytes(uuidFromBytes(b)), b);
  }));
});

test('property: mutated captures decode to a WireError or to a PDU that re-encodes exactly', () => {
  const seeds = captureNames.map(capture);
  fc.assert(
    fc.property(fc.constantFrom(...seeds), byteEdits(6), (seed, edits) => {
      const b = Buffer.from(seed);
      for (const [at, v] of edits) b[at % b.length] = v;
      assertOnlyWireErrors(() => fuzzTargets['dcerpc.pdu']!(b), 'mutated PDU');
    }),
    { numRuns: 3000 },
  );
});

test('property: arbitrary bytes never throw anything but a WireError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (a) => fuzzTargets['dcerpc.pdu']!(Buffer.from(a))), { numRuns: 2000 });
});
