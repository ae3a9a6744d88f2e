import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  Cipher,
  HashAlgorithm,
  NegotiateContextType,
  SigningAlgorithm,
  Smb2Command,
  Smb2Dialect,
} from '../../../../src/control/wire/smb2/constants.js';
import { header } from '../../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../../src/control/wire/smb2/message.js';
import {
  CompressionAlgorithm,
  CompressionCapabilitiesFlags,
  decodeNegotiateRequest,
  decodeNegotiateResponse,
  encodeNegotiateRequest,
  encodeNegotiateResponse,
  findNegotiateContext,
  isRawNegotiateContext,
  type NegotiateContext,
  type NegotiateRequest,
  type NegotiateResponse,
  RdmaTransformId,
  TransportCapabilitiesFlags,
} from '../../../../src/control/wire/smb2/negotiate.js';
import { assertMutationsTyped, assertRoundTrip, assertTruncationsTyped, encodeError, hex, rec, wireError } from '../../../helpers/wire.js';

const msg = (body: Buffer): Buffer => encodeMessage(header({ Command: Smb2Command.NEGOTIATE }), body);
/** Re-encodes a decoded capture behind its original header. */
const again = (capture: Buffer, body: Buffer): Buffer => Buffer.concat([capture.subarray(0, 64), body]);

// Captured on loopback: smbclient 4.17.12 (-m SMB3) against smbd 4.17.12. The request offers
// 2.0.2 - 3.1.1 with PREAUTH, ENCRYPTION, SIGNING and NETNAME contexts; the response picks 3.1.1.
const SAMBA_REQ_311 = hex(`
  fe534d42400000000000000000001f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  24000500010000007f000000c07e393930e0fe4482827a3f38d6abaa70000000040000000202100200030203110300000100260000000000010020000100298a
  0bb3bcdb0a28ea163d8d053e6f75cdaf5d42177b3e4e24aad2a47aca5442000002000a0000000000040002000100040003000000000000000800080000000000
  030002000100000005001200000000003100320037002e0030002e0030002e003100`);
const SAMBA_RES_311 = hex(`
  fe534d42400000000000000000000100010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  41000100110303006831736d6200000000000000000000000f0000000000800000008000000080009889a195d27cdd01000000000000000080004a00d0000000
  604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840706c65
  6173655f69676e6f7265000000000000010026000000000001002000010091e3bed2c5a0d40a5ea7e43350043611003cc5fbbdb287dd6a0a98bf4362857b0000
  02000400000000000100020000000000080004000000000001000200`);
// Same pair with the client limited to SMB2_02: no 3.1.1, so ClientStartTime and Reserved fields.
const SAMBA_REQ_202 = hex(`
  fe534d42400000000000000000001f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  2400010001000000000000000000000000000000000000000000000000000000000000000202`);
const SAMBA_RES_202 = hex(`
  fe534d42400000000000000000000100010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  41000100020200006831736d62000000000000000000000001000000000001000000010000000100246bec96d27cdd01000000000000000080004a0000000000
  604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840706c65
  6173655f69676e6f7265`);
// smbd's answer to an SMB1 multi-protocol NEGOTIATE offering "SMB 2.???": DialectRevision 0x02FF.
const SAMBA_RES_WILDCARD = hex(`
  fe534d42400000000000000000000100010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  41000100ff0200006831736d620000000000000000000000070000000000800000008000000080009ca3eb9bd27cdd01000000000000000080004a0000000000
  604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840706c65
  6173655f69676e6f7265`);

const SPNEGO_HINT_LENGTH = 74;

test('a captured Samba 3.1.1 NEGOTIATE request decodes to typed contexts and re-encodes byte for byte', () => {
  const req = assertRoundTrip(decodeNegotiateRequest, (r) => again(SAMBA_REQ_311, encodeNegotiateRequest(r)), SAMBA_REQ_311);
  assert.deepEqual(req.Dialects, [Smb2Dialect.SMB202, Smb2Dialect.SMB210, Smb2Dialect.SMB300, Smb2Dialect.SMB302, Smb2Dialect.SMB311]);
  assert.equal(req.Capabilities, 0x7f);
  assert.equal(req.ClientGuid.toString('hex'), 'c07e393930e0fe4482827a3f38d6abaa');
  assert.equal(req.NegotiateContextOffset, 0x70);
  assert.equal(req.ClientStartTime, undefined);
  const list = req.NegotiateContextList ?? [];
  assert.deepEqual(
    list.map((c) => c.ContextType),
    [
      NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES,
      NegotiateContextType.ENCRYPTION_CAPABILITIES,
      NegotiateContextType.SIGNING_CAPABILITIES,
      NegotiateContextType.NETNAME_NEGOTIATE_CONTEXT_ID,
    ],
  );
  const preauth = findNegotiateContext(list, NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES);
  assert.deepEqual(preauth?.HashAlgorithms, [HashAlgorithm.SHA_512]);
  assert.equal(preauth?.Salt.toString('hex'), '298a0bb3bcdb0a28ea163d8d053e6f75cdaf5d42177b3e4e24aad2a47aca5442');
  assert.deepEqual(findNegotiateContext(list, NegotiateContextType.ENCRYPTION_CAPABILITIES)?.Ciphers, [
    Cipher.AES_128_GCM,
    Cipher.AES_128_CCM,
    Cipher.AES_256_GCM,
    Cipher.AES_256_CCM,
  ]);
  assert.deepEqual(findNegotiateContext(list, NegotiateContextType.SIGNING_CAPABILITIES)?.SigningAlgorithms, [
    SigningAlgorithm.AES_GMAC,
    SigningAlgorithm.AES_CMAC,
    SigningAlgorithm.HMAC_SHA256,
  ]);
  assert.equal(findNegotiateContext(list, NegotiateContextType.NETNAME_NEGOTIATE_CONTEXT_ID)?.NetName, '127.0.0.1');
  assert.equal(findNegotiateContext(list, NegotiateContextType.COMPRESSION_CAPABILITIES), undefined);
  // Samba places the contexts where the canonical encoding does.
  const canonical = encodeNegotiateRequest({ ...req, NegotiateContextOffset: undefined });
  assert.equal(again(SAMBA_REQ_311, canonical).toString('hex'), SAMBA_REQ_311.toString('hex'));
  assertTruncationsTyped(decodeNegotiateRequest, SAMBA_REQ_311);
});

test('a captured Samba 3.1.1 NEGOTIATE response keeps its SPNEGO hint and contexts, and re-encodes byte for byte', () => {
  const res = assertRoundTrip(decodeNegotiateResponse, (r) => again(SAMBA_RES_311, encodeNegotiateResponse(r)), SAMBA_RES_311);
  assert.equal(res.DialectRevision, Smb2Dialect.SMB311);
  assert.equal(res.MaxReadSize, 8 * 1024 * 1024);
  assert.equal(res.SystemTime, 0x01dd7cd295a18998n);
  assert.equal(res.SecurityBufferOffset, 0x80);
  assert.equal(res.SecurityBuffer.length, SPNEGO_HINT_LENGTH);
  assert.equal(res.NegotiateContextOffset, 0xd0);
  assert.equal(res.Reserved, undefined);
  const list = res.NegotiateContextList ?? [];
  assert.deepEqual(findNegotiateContext(list, NegotiateContextType.ENCRYPTION_CAPABILITIES)?.Ciphers, [Cipher.AES_128_GCM]);
  assert.deepEqual(findNegotiateContext(list, NegotiateContextType.SIGNING_CAPABILITIES)?.SigningAlgorithms, [SigningAlgorithm.AES_GMAC]);
  // Canonical placement: buffer right after the fixed part, contexts 8-aligned after it.
  const canonical = encodeNegotiateResponse({ ...res, SecurityBufferOffset: undefined, NegotiateContextOffset: undefined });
  assert.equal(again(SAMBA_RES_311, canonical).toString('hex'), SAMBA_RES_311.toString('hex'));
  assertTruncationsTyped(decodeNegotiateResponse, SAMBA_RES_311);
});

test('captured pre-3.1.1 NEGOTIATE messages carry ClientStartTime and Reserved fields instead of contexts', () => {
  const req = assertRoundTrip(decodeNegotiateRequest, (r) => again(SAMBA_REQ_202, encodeNegotiateRequest(r)), SAMBA_REQ_202);
  const fixed = { SecurityMode: 1, Reserved: 0, Capabilities: 0, ClientGuid: Buffer.alloc(16) };
  assert.deepEqual(req, { ...fixed, Dialects: [Smb2Dialect.SMB202], ClientStartTime: 0n });
  for (const capture of [SAMBA_RES_202, SAMBA_RES_WILDCARD]) {
    const res = assertRoundTrip(decodeNegotiateResponse, (r) => again(capture, encodeNegotiateResponse(r)), capture);
    assert.equal(res.Reserved, 0);
    assert.equal(res.Reserved2, 0);
    assert.equal(res.NegotiateContextList, undefined);
    assert.equal(res.SecurityBuffer.length, SPNEGO_HINT_LENGTH);
    assertTruncationsTyped(decodeNegotiateResponse, capture);
  }
  assert.equal(decodeNegotiateResponse(SAMBA_RES_WILDCARD).DialectRevision, Smb2Dialect.WILDCARD);
  assertTruncationsTyped(decodeNegotiateRequest, SAMBA_REQ_202);
});

// Contexts Samba does not send, built from MS-SMB2 2.2.3.1.3/.5/.6, plus an unknown type (the
// Linux client's SMB3 POSIX extension context, 0x0100, 16 bytes) that must stay raw.
const OTHER_CONTEXTS: NegotiateContext[] = [
  {
    ContextType: NegotiateContextType.COMPRESSION_CAPABILITIES,
    Reserved: 0,
    Data: {
      Padding: 0,
      Flags: CompressionCapabilitiesFlags.CHAINED,
      CompressionAlgorithms: [CompressionAlgorithm.LZ77, CompressionAlgorithm.PATTERN_V1],
    },
  },
  {
    ContextType: NegotiateContextType.TRANSPORT_CAPABILITIES,
    Reserved: 0,
    Data: { Flags: TransportCapabilitiesFlags.ACCEPT_TRANSPORT_LEVEL_SECURITY },
  },
  {
    ContextType: NegotiateContextType.RDMA_TRANSFORM_CAPABILITIES,
    Reserved: 0,
    Data: { Reserved1: 0, Reserved2: 0, RDMATransformIds: [RdmaTransformId.ENCRYPTION, RdmaTransformId.SIGNING] },
  },
  { ContextType: 0x0100, Reserved: 0, Data: hex('93ad25509cb411e7b42383de968bcd7c') },
];
const OTHER_CONTEXTS_HEX = `
  0300 0c00 00000000 0200 0000 01000000 0200 0400 0000 0000
  0600 0400 00000000 01000000 0000 0000
  0700 0c00 00000000 0200 0000 00000000 0100 0200 0000 0000
  0001 1000 00000000 93ad25509cb411e7b42383de968bcd7c`;

test('COMPRESSION, TRANSPORT and RDMA contexts are typed and an unknown context stays raw, each 8-aligned', () => {
  const body = encodeNegotiateRequest({
    SecurityMode: 1,
    Reserved: 0,
    Capabilities: 0,
    ClientGuid: Buffer.alloc(16, 0xab),
    Dialects: [Smb2Dialect.SMB311],
    Reserved2: 0,
    NegotiateContextList: OTHER_CONTEXTS,
  });
  // 36 fixed + 2 dialect bytes = 102, so the first context is at 104.
  assert.equal(body.readUInt32LE(28), 104);
  assert.equal(body.readUInt16LE(32), OTHER_CONTEXTS.length);
  assert.equal(body.subarray(104 - 64).toString('hex'), hex(OTHER_CONTEXTS_HEX).toString('hex'));
  const req = decodeNegotiateRequest(msg(body));
  assert.deepEqual(req.NegotiateContextList, OTHER_CONTEXTS);
  const list = req.NegotiateContextList ?? [];
  assert.deepEqual(list.map(isRawNegotiateContext), [false, false, false, true]);
  assert.deepEqual(findNegotiateContext(list, NegotiateContextType.TRANSPORT_CAPABILITIES), { Flags: 1 });
});

test('a known context whose Data does not parse exactly is kept raw and re-encodes unchanged', () => {
  const bytes = Buffer.from(SAMBA_REQ_311);
  // ENCRYPTION_CAPABILITIES at 160 says CipherCount 4 in 10 bytes: make it 5 (too many), then 3 (2 bytes left over).
  for (const count of [5, 3]) {
    bytes.writeUInt16LE(count, 160 + 8);
    const req = assertRoundTrip(decodeNegotiateRequest, (r) => again(bytes, encodeNegotiateRequest(r)), bytes);
    const list = req.NegotiateContextList ?? [];
    assert.equal(isRawNegotiateContext(list[1]!), true);
    assert.equal(findNegotiateContext(list, NegotiateContextType.ENCRYPTION_CAPABILITIES), undefined);
    assert.ok(findNegotiateContext(list, NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES));
  }
});

test('malformed NEGOTIATE requests are refused with typed errors', () => {
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ['wrong StructureSize', (b) => b.writeUInt16LE(37, 64), /StructureSize/],
    ['DialectCount past the end', (b) => b.writeUInt16LE(200, 66), /Dialects/],
    ['contexts over the dialect list', (b) => b.writeUInt32LE(104, 92), /NegotiateContextOffset/],
    ['contexts in the fixed part', (b) => b.writeUInt32LE(64, 92), /NegotiateContextOffset/],
    ['NegotiateContextOffset past the end', (b) => b.writeUInt32LE(0x10000, 92), /NegotiateContextOffset/],
    ['NegotiateContextCount larger than what fits', (b) => b.writeUInt16LE(20, 96), /NegotiateContextCount/],
    ['one context more than there is', (b) => b.writeUInt16LE(5, 96), /ContextType|alignment/],
    ['context DataLength past the end', (b) => b.writeUInt16LE(27, 202), /DataLength/],
  ];
  for (const [what, corrupt, pattern] of cases) {
    const bytes = Buffer.from(SAMBA_REQ_311);
    corrupt(bytes);
    assert.throws(() => decodeNegotiateRequest(bytes), wireError(pattern), what);
  }
});

test('malformed NEGOTIATE responses are refused with typed errors', () => {
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ['wrong StructureSize', (b) => b.writeUInt16LE(64, 64), /StructureSize/],
    ['SecurityBuffer in the fixed part', (b) => b.writeUInt16LE(0x70, 64 + 56), /SecurityBufferOffset/],
    ['SecurityBuffer length past the end', (b) => b.writeUInt16LE(0x200, 64 + 58), /SecurityBufferOffset/],
    ['contexts over the SecurityBuffer', (b) => b.writeUInt32LE(0xc8, 64 + 60), /NegotiateContextOffset/],
    ['NegotiateContextCount larger than what fits', (b) => b.writeUInt16LE(11, 64 + 6), /NegotiateContextCount/],
    ['context DataLength past the end', (b) => b.writeUInt16LE(9, 0x110 + 2), /DataLength/],
  ];
  for (const [what, corrupt, pattern] of cases) {
    const bytes = Buffer.from(SAMBA_RES_311);
    corrupt(bytes);
    assert.throws(() => decodeNegotiateResponse(bytes), wireError(pattern), what);
  }
});

test('encoders refuse what the wire cannot say', () => {
  const base: NegotiateRequest = {
    SecurityMode: 0,
    Reserved: 0,
    Capabilities: 0,
    ClientGuid: Buffer.alloc(16),
    Dialects: [Smb2Dialect.SMB311],
  };
  const hugeSalt: NegotiateContext = {
    ContextType: NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES,
    Reserved: 0,
    Data: { HashAlgorithms: [HashAlgorithm.SHA_512], Salt: Buffer.alloc(0x10000) },
  };
  const bad: [string, NegotiateRequest | NegotiateResponse][] = [
    ['3.1.1 with ClientStartTime', { ...base, ClientStartTime: 0n }],
    ['contexts without 3.1.1', { ...base, Dialects: [Smb2Dialect.SMB300], NegotiateContextList: OTHER_CONTEXTS }],
    ['short ClientGuid', { ...base, ClientGuid: Buffer.alloc(8) }],
    ['65536 dialects', { ...base, Dialects: new Array<number>(0x10000).fill(Smb2Dialect.SMB311) }],
    ['context list before the dialects end', { ...base, NegotiateContextOffset: 64, NegotiateContextList: OTHER_CONTEXTS }],
    ['salt over 64 KiB', { ...base, NegotiateContextList: [hugeSalt] }],
    ['response contexts without 3.1.1', { ...decodeNegotiateResponse(SAMBA_RES_202), NegotiateContextList: OTHER_CONTEXTS }],
    ['3.1.1 response with Reserved2', { ...decodeNegotiateResponse(SAMBA_RES_311), Reserved2: 0 }],
  ];
  for (const [what, x] of bad) {
    assert.throws(() => ('Dialects' in x ? encodeNegotiateRequest(x) : encodeNegotiateResponse(x)), encodeError, what);
  }
});

const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
const guid = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
const u16s = fc.array(u16, { maxLength: 6 });
const KNOWN = Object.values(NegotiateContextType) as number[];

const contextArb: fc.Arbitrary<NegotiateContext> = fc.oneof(
  rec({
    ContextType: fc.constant(NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES),
    Reserved: u32,
    Data: rec({ HashAlgorithms: u16s, Salt: bytes(48) }),
  }),
  rec({ ContextType: fc.constant(NegotiateContextType.ENCRYPTION_CAPABILITIES), Reserved: u32, Data: rec({ Ciphers: u16s }) }),
  rec({
    ContextType: fc.constant(NegotiateContextType.COMPRESSION_CAPABILITIES),
    Reserved: u32,
    Data: rec({ Padding: u16, Flags: u32, CompressionAlgorithms: u16s }),
  }),
  rec({
    ContextType: fc.constant(NegotiateContextType.NETNAME_NEGOTIATE_CONTEXT_ID),
    Reserved: u32,
    Data: rec({ NetName: fc.string({ unit: 'grapheme', maxLength: 20 }) }),
  }),
  rec({ ContextType: fc.constant(NegotiateContextType.TRANSPORT_CAPABILITIES), Reserved: u32, Data: rec({ Flags: u32 }) }),
  rec({
    ContextType: fc.constant(NegotiateContextType.RDMA_TRANSFORM_CAPABILITIES),
    Reserved: u32,
    Data: rec({ Reserved1: u16, Reserved2: u32, RDMATransformIds: u16s }),
  }),
  rec({ ContextType: fc.constant(NegotiateContextType.SIGNING_CAPABILITIES), Reserved: u32, Data: rec({ SigningAlgorithms: u16s }) }),
  rec({ ContextType: u16.filter((t) => !KNOWN.includes(t)), Reserved: u32, Data: bytes(40) }),
);

const fixedRequest = { SecurityMode: u16, Reserved: u16, Capabilities: u32, ClientGuid: guid };
const requestArb: fc.Arbitrary<NegotiateRequest> = fc.oneof(
  rec({
    ...fixedRequest,
    Dialects: fc.tuple(u16s, u16s).map(([a, b]) => [...a, Smb2Dialect.SMB311, ...b]),
    Reserved2: u16,
    NegotiateContextList: fc.array(contextArb, { maxLength: 5 }),
  }),
  rec({ ...fixedRequest, Dialects: u16s.map((d) => d.filter((x) => x !== Smb2Dialect.SMB311)), ClientStartTime: u64 }),
);

const fixedResponse = {
  SecurityMode: u16,
  ServerGuid: guid,
  Capabilities: u32,
  MaxTransactSize: u32,
  MaxReadSize: u32,
  MaxWriteSize: u32,
  SystemTime: u64,
  ServerStartTime: u64,
  SecurityBuffer: bytes(90),
};
const responseArb: fc.Arbitrary<NegotiateResponse> = fc.oneof(
  rec({ ...fixedResponse, DialectRevision: fc.constant(Smb2Dialect.SMB311), NegotiateContextList: fc.array(contextArb, { maxLength: 5 }) }),
  rec({ ...fixedResponse, DialectRevision: u16.filter((d) => d !== Smb2Dialect.SMB311), Reserved: u16, Reserved2: u32 }),
);

/** What decoding the canonical encoding of `x` must give: x plus the offsets the encoder chose. */
function withOffsets<T extends object>(x: T, decoded: T, keys: (keyof T)[]): T {
  const out = { ...x };
  for (const k of keys) if (decoded[k] !== undefined) out[k] = decoded[k];
  return out;
}

test('property: NEGOTIATE requests encode, decode to the same value and re-encode to the same bytes', () => {
  fc.assert(
    fc.property(requestArb, (x) => {
      const wire = msg(encodeNegotiateRequest(x));
      const d = decodeNegotiateRequest(wire);
      assert.deepEqual(d, withOffsets(x, d, ['NegotiateContextOffset']));
      assert.equal(msg(encodeNegotiateRequest(d)).toString('hex'), wire.toString('hex'));
      const offset = d.NegotiateContextOffset ?? 0;
      if (offset !== 0) assert.equal(offset % 8, 0);
    }),
  );
});

test('property: NEGOTIATE responses encode, decode to the same value and re-encode to the same bytes', () => {
  fc.assert(
    fc.property(responseArb, (x) => {
      const wire = msg(encodeNegotiateResponse(x));
      const d = decodeNegotiateResponse(wire);
      assert.deepEqual(d, withOffsets(x, d, ['SecurityBufferOffset', 'NegotiateContextOffset']));
      assert.equal(msg(encodeNegotiateResponse(d)).toString('hex'), wire.toString('hex'));
    }),
  );
});

test('property: corrupted NEGOTIATE messages decode or throw a WireError', () => {
  const requests = fc.oneof(requestArb.map((x) => msg(encodeNegotiateRequest(x))), fc.constant(SAMBA_REQ_311));
  const responses = fc.oneof(responseArb.map((x) => msg(encodeNegotiateResponse(x))), fc.constant(SAMBA_RES_311));
  assertMutationsTyped(decodeNegotiateRequest, requests, 'NEGOTIATE request', 64, 2000);
  assertMutationsTyped(decodeNegotiateResponse, responses, 'NEGOTIATE response', 64, 2000);
});
