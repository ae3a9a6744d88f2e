import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode } from '../../../../src/control/errors.js';
import {
  type CreateContext,
  CreateContextName,
  createContext,
  decodeAllocationSize,
  decodeAppInstanceId,
  decodeAppInstanceVersion,
  decodeCreateContexts,
  decodeDurableHandleReconnect,
  decodeDurableHandleReconnectV2,
  decodeDurableHandleRequest,
  decodeDurableHandleRequestV2,
  decodeDurableHandleResponse,
  decodeDurableHandleResponseV2,
  decodeLease,
  decodeQueryMaximalAccessRequest,
  decodeQueryMaximalAccessResponse,
  decodeQueryOnDiskIdResponse,
  decodeTimewarpToken,
  encodeAllocationSize,
  encodeAppInstanceId,
  encodeAppInstanceVersion,
  encodeCreateContexts,
  encodeDurableHandleReconnect,
  encodeDurableHandleReconnectV2,
  encodeDurableHandleRequest,
  encodeDurableHandleRequestV2,
  encodeDurableHandleResponse,
  encodeDurableHandleResponseV2,
  encodeLease,
  encodeQueryMaximalAccessRequest,
  encodeQueryMaximalAccessResponse,
  encodeQueryOnDiskIdResponse,
  encodeTimewarpToken,
  findCreateContext,
  isLeaseV2,
  LeaseState,
} from '../../../../src/control/wire/smb2/create-contexts.js';
import { decodeCreateRequest, decodeCreateResponse } from '../../../../src/control/wire/smb2/create.js';
import { assertOnlyWireErrors, mutated } from '../../../helpers/wire.js';
import { createCaptures as cap } from './captures.js';
import { assertInvalid, bytes, fileId, guid, project, u16, u32, u64 } from './codec-checks.js';

/** The raw chain of a captured CREATE request or response. */
function chainOf(msg: Buffer, response: boolean): Buffer {
  const at = 64 + (response ? 0x50 : 0x30);
  const offset = msg.readUInt32LE(at);
  return msg.subarray(offset, offset + msg.readUInt32LE(at + 4));
}

const capturedChains: [string, Buffer][] = [
  ['createReqLeaseDurableV2', chainOf(cap.createReqLeaseDurableV2, false)],
  ['createReqMxAcAlSiDHnQTWrp', chainOf(cap.createReqMxAcAlSiDHnQTWrp, false)],
  ['createReqAppInstance', chainOf(cap.createReqAppInstance, false)],
  ['createReqLeaseV2', chainOf(cap.createReqLeaseV2, false)],
  ['createReqQFid', chainOf(cap.createReqQFid, false)],
  ['createRspLeaseDurableV2', chainOf(cap.createRspLeaseDurableV2, true)],
  ['createRspQFid', chainOf(cap.createRspQFid, true)],
];

const dataOf = (msg: Buffer, response: boolean, name: string): Buffer => {
  const contexts = response ? decodeCreateResponse(msg).CreateContexts : decodeCreateRequest(msg).CreateContexts;
  const c = findCreateContext(contexts, name);
  assert.ok(c, `${name} present`);
  return c.Data;
};

test('captured chains re-encode byte for byte, including Samba\'s DataOffset past the name for empty data', () => {
  for (const [label, chain] of capturedChains) {
    assert.equal(encodeCreateContexts(decodeCreateContexts(chain)).toString('hex'), chain.toString('hex'), label);
  }
  const [mxac] = decodeCreateContexts(chainOf(cap.createReqMxAcAlSiDHnQTWrp, false));
  assert.deepEqual({ ...mxac, Data: mxac!.Data.length }, { Name: 'MxAc', Reserved: 0, Data: 0, NameOffset: 16, DataOffset: 24, Next: 24 });
});

test('typed context data decode to what smbtorture and smbd exchanged', () => {
  const dh2q = decodeDurableHandleRequestV2(dataOf(cap.createReqLeaseDurableV2, false, 'DH2Q'));
  assert.deepEqual(dh2q, { Timeout: 0, Flags: 0, Reserved: 0n, CreateGuid: Buffer.from('1397e95e67be00499a09bcb0bd7225a0', 'hex') });
  const lease = decodeLease(dataOf(cap.createReqLeaseDurableV2, false, 'RqLs'));
  assert.equal(isLeaseV2(lease), false);
  assert.equal(lease.LeaseKey.toString('hex'), '63897b4f000000009c7684b0ffffffff');
  assert.deepEqual(decodeDurableHandleResponseV2(dataOf(cap.createRspLeaseDurableV2, true, 'DH2Q')), { Timeout: 60000, Flags: 0 });
  const granted = decodeLease(dataOf(cap.createRspLeaseDurableV2, true, 'RqLs'));
  assert.equal(granted.LeaseState, LeaseState.SMB2_LEASE_READ_CACHING | LeaseState.SMB2_LEASE_HANDLE_CACHING);

  const v2 = decodeLease(dataOf(cap.createReqLeaseV2, false, 'RqLs'));
  assert.ok(isLeaseV2(v2));
  assert.deepEqual({ ...v2, LeaseKey: v2.LeaseKey.toString('hex'), ParentLeaseKey: v2.ParentLeaseKey.toString('hex') }, {
    LeaseKey: '0df0dde0fe0fdcbaf20f221f01f02345',
    LeaseState: 7,
    LeaseFlags: 0,
    LeaseDuration: 0n,
    ParentLeaseKey: '00000000000000000000000000000000',
    Epoch: 0x11,
    Reserved: 0,
  });
  const v2granted = decodeLease(dataOf(cap.createRspLeaseV2, true, 'RqLs'));
  assert.ok(isLeaseV2(v2granted) && v2granted.Epoch === 0x12);

  assert.deepEqual(decodeQueryMaximalAccessRequest(dataOf(cap.createReqMxAcAlSiDHnQTWrp, false, 'MxAc')), {});
  assert.deepEqual(decodeAllocationSize(dataOf(cap.createReqMxAcAlSiDHnQTWrp, false, 'AlSi')), { AllocationSize: 0x100000n });
  assert.deepEqual(decodeDurableHandleRequest(dataOf(cap.createReqMxAcAlSiDHnQTWrp, false, 'DHnQ')), { DurableRequest: Buffer.alloc(16) });
  assert.deepEqual(decodeTimewarpToken(dataOf(cap.createReqMxAcAlSiDHnQTWrp, false, 'TWrp')), { Timestamp: 10000n });
  assert.deepEqual(decodeQueryMaximalAccessResponse(dataOf(cap.createRspMxAc, true, 'MxAc')), { QueryStatus: 0, MaximalAccess: 0x001f01ff });
  assert.deepEqual(decodeDurableHandleResponse(dataOf(cap.createRspDHnQ, true, 'DHnQ')), { Reserved: 0n });
  assert.deepEqual(decodeDurableHandleResponseV2(dataOf(cap.createRspDH2Q, true, 'DH2Q')), { Timeout: 300000, Flags: 0 });
  assert.deepEqual(decodeQueryOnDiskIdResponse(dataOf(cap.createRspQFid, true, 'QFid')), {
    DiskFileId: 0x20e3c3n,
    VolumeId: 0xfe00n,
    Reserved: Buffer.alloc(16),
  });
  assert.deepEqual(decodeDurableHandleReconnect(dataOf(cap.createReqDHnC, false, 'DHnC')), {
    Data: { Persistent: 0xe9a296f8n, Volatile: 0xd378c3a7n },
  });
  assert.deepEqual(decodeDurableHandleReconnectV2(dataOf(cap.createReqDH2C, false, 'DH2C')), {
    FileId: { Persistent: 0x03532819n, Volatile: 0xc15db710n },
    CreateGuid: Buffer.from('d5cb73b6e6730f4d8eb029ceef7d2b87', 'hex'),
    Flags: 0,
  });
  const app = decodeAppInstanceId(dataOf(cap.createReqAppInstance, false, CreateContextName.SMB2_CREATE_APP_INSTANCE_ID));
  assert.deepEqual(app, { StructureSize: 20, Reserved: 0, AppInstanceId: Buffer.from('a09dc2e361fa7e44b814d210387f9f1f', 'hex') });
});

test('canonical chains: name at 16, data 8-aligned, Next padded to 8 except after the last context', () => {
  const chain = encodeCreateContexts([createContext('MxAc'), createContext('DH2Q', Buffer.alloc(32, 0xaa)), createContext('QFid')]);
  assert.equal(chain.readUInt32LE(0), 24, 'MxAc: 16 + 4-byte name, padded');
  assert.equal(chain.readUInt16LE(10), 0, 'empty data has offset 0');
  assert.equal(chain.readUInt32LE(24), 56);
  assert.equal(chain.readUInt16LE(24 + 10), 24);
  assert.equal(chain.length, 24 + 56 + 20);
  assert.equal(chain.readUInt32LE(80), 0);
});

const contextArb: fc.Arbitrary<CreateContext> = fc.record({
  Name: fc.oneof(
    fc.constantFrom(...Object.values(CreateContextName)),
    fc.uint8Array({ minLength: 1, maxLength: 24 }).map((b) => Buffer.from(b).toString('latin1')),
  ),
  Reserved: u16,
  Data: bytes(80),
});

test('property: generated chains round-trip', () => {
  fc.assert(
    fc.property(fc.array(contextArb, { maxLength: 6 }), (contexts) => {
      const chain = encodeCreateContexts(contexts);
      const back = decodeCreateContexts(chain);
      assert.deepEqual(project(back, contexts), project(contexts, contexts));
      assert.equal(encodeCreateContexts(back).toString('hex'), chain.toString('hex'));
      for (const c of back) assert.equal((c.NameOffset! + (c.Next ?? 0)) % 8, 0);
    }),
  );
});

test('property: corrupted chains decode or throw WireError', () => {
  fc.assert(
    fc.property(mutated(fc.constantFrom(...capturedChains.map(([, c]) => c))), (b) => {
      assertOnlyWireErrors(() => encodeCreateContexts(decodeCreateContexts(b)), 'create contexts');
    }),
    { numRuns: 500 },
  );
});

test('malformed chains are refused with STATUS_INVALID_PARAMETER', () => {
  const two = encodeCreateContexts([createContext('AlSi', Buffer.alloc(8)), createContext('TWrp', Buffer.alloc(8))]);
  const edit = (at: number, v: number, width: 2 | 4 = 4): Buffer => {
    const b = Buffer.from(two);
    if (width === 4) b.writeUInt32LE(v, at);
    else b.writeUInt16LE(v, at);
    return b;
  };
  assertInvalid(() => decodeCreateContexts(edit(0, 28)), /Next 28 .*unaligned/);
  assertInvalid(() => decodeCreateContexts(edit(0, 8)), /Next 8/);
  assertInvalid(() => decodeCreateContexts(edit(0, 64)), /Next 64/);
  assertInvalid(() => decodeCreateContexts(edit(0, 56)), /Next 56/);
  assertInvalid(() => decodeCreateContexts(edit(4, 8, 2)), /name 8\+4/);
  assertInvalid(() => decodeCreateContexts(edit(6, 0, 2)), /name 16\+0/);
  assertInvalid(() => decodeCreateContexts(edit(6, 40, 2)), /name 16\+40/);
  assertInvalid(() => decodeCreateContexts(edit(10, 20, 2)), /data 20\+8/);
  assertInvalid(() => decodeCreateContexts(edit(10, 16, 2)), /data 16\+8 .*overlaps/);
  assertInvalid(() => decodeCreateContexts(edit(12, 9)), /data 24\+9/);
  assertInvalid(() => decodeCreateContexts(two.subarray(0, 40)), /need 16 bytes|Next 32/);
  assertInvalid(() => decodeCreateContexts(two.subarray(0, 10)), /need 16 bytes/);
  assert.deepEqual(decodeCreateContexts(Buffer.alloc(0)), []);
});

test('encoders refuse values the wire cannot carry', () => {
  const encodeErr = { code: ErrorCode.WIRE_ENCODE };
  assert.throws(() => encodeCreateContexts([{ ...createContext('MxAc'), Next: 24 }]), encodeErr);
  assert.throws(() => encodeCreateContexts([createContext('\u0100abc')]), encodeErr);
  assert.throws(() => encodeCreateContexts([createContext('')]), encodeErr);
  assert.throws(() => encodeCreateContexts([{ ...createContext('MxAc'), NameOffset: 8 }]), encodeErr);
  assert.throws(() => encodeLease({ LeaseKey: Buffer.alloc(15), LeaseState: 0, LeaseFlags: 0, LeaseDuration: 0n }), encodeErr);
});

interface Typed<T> {
  name: string;
  arb: fc.Arbitrary<T>;
  encode: (v: T) => Buffer;
  decode: (b: Buffer) => T;
  sizes: number[];
}
const typed = <T>(t: Typed<T>): Typed<unknown> => t as Typed<unknown>;
const leaseV1 = { LeaseKey: guid, LeaseState: u32, LeaseFlags: u32, LeaseDuration: u64 };
const typedCodecs = [
  typed({
    name: 'DHnQ request',
    arb: fc.record({ DurableRequest: guid }),
    encode: encodeDurableHandleRequest,
    decode: decodeDurableHandleRequest,
    sizes: [16],
  }),
  typed({
    name: 'DHnQ response',
    arb: fc.record({ Reserved: u64 }),
    encode: encodeDurableHandleResponse,
    decode: decodeDurableHandleResponse,
    sizes: [8],
  }),
  typed({ name: 'DHnC', arb: fc.record({ Data: fileId }), encode: encodeDurableHandleReconnect, decode: decodeDurableHandleReconnect, sizes: [16] }),
  typed({
    name: 'MxAc request',
    arb: fc.record({ Timestamp: u64 }, { requiredKeys: [] }),
    encode: encodeQueryMaximalAccessRequest,
    decode: decodeQueryMaximalAccessRequest,
    sizes: [0, 8],
  }),
  typed({
    name: 'MxAc response',
    arb: fc.record({ QueryStatus: u32, MaximalAccess: u32 }),
    encode: encodeQueryMaximalAccessResponse,
    decode: decodeQueryMaximalAccessResponse,
    sizes: [8],
  }),
  typed({ name: 'AlSi', arb: fc.record({ AllocationSize: u64 }), encode: encodeAllocationSize, decode: decodeAllocationSize, sizes: [8] }),
  typed({ name: 'TWrp', arb: fc.record({ Timestamp: u64 }), encode: encodeTimewarpToken, decode: decodeTimewarpToken, sizes: [8] }),
  typed({
    name: 'QFid response',
    arb: fc.record({ DiskFileId: u64, VolumeId: u64, Reserved: guid }),
    encode: encodeQueryOnDiskIdResponse,
    decode: decodeQueryOnDiskIdResponse,
    sizes: [32],
  }),
  typed({
    name: 'RqLs',
    arb: fc.oneof(fc.record(leaseV1), fc.record({ ...leaseV1, ParentLeaseKey: guid, Epoch: u16, Reserved: u16 })),
    encode: encodeLease,
    decode: decodeLease,
    sizes: [32, 52],
  }),
  typed({
    name: 'DH2Q request',
    arb: fc.record({ Timeout: u32, Flags: u32, Reserved: u64, CreateGuid: guid }),
    encode: encodeDurableHandleRequestV2,
    decode: decodeDurableHandleRequestV2,
    sizes: [32],
  }),
  typed({
    name: 'DH2Q response',
    arb: fc.record({ Timeout: u32, Flags: u32 }),
    encode: encodeDurableHandleResponseV2,
    decode: decodeDurableHandleResponseV2,
    sizes: [8],
  }),
  typed({
    name: 'DH2C',
    arb: fc.record({ FileId: fileId, CreateGuid: guid, Flags: u32 }),
    encode: encodeDurableHandleReconnectV2,
    decode: decodeDurableHandleReconnectV2,
    sizes: [36],
  }),
  typed({
    name: 'APP_INSTANCE_ID',
    arb: fc.record({ StructureSize: u16, Reserved: u16, AppInstanceId: guid }),
    encode: encodeAppInstanceId,
    decode: decodeAppInstanceId,
    sizes: [20],
  }),
  typed({
    name: 'APP_INSTANCE_VERSION',
    arb: fc.record({ StructureSize: u16, Reserved: u16, Padding: u32, AppInstanceVersionHigh: u64, AppInstanceVersionLow: u64 }),
    encode: encodeAppInstanceVersion,
    decode: decodeAppInstanceVersion,
    sizes: [24],
  }),
];

for (const t of typedCodecs) {
  test(`${t.name} data: property round trip, and every other length is refused`, () => {
    fc.assert(
      fc.property(t.arb, (v) => {
        const data = t.encode(v);
        assert.ok(t.sizes.includes(data.length));
        const back = t.decode(data);
        assert.deepEqual(back, project(v, v));
        assert.equal(t.encode(back).toString('hex'), data.toString('hex'));
      }),
      { numRuns: 50 },
    );
    for (let n = 0; n <= 60; n++) {
      if (!t.sizes.includes(n)) assertInvalid(() => t.decode(Buffer.alloc(n)), /data is \d+ bytes/);
    }
  });
}
