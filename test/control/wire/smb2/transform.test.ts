import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CompressionAlgorithm } from '../../../../src/control/wire/smb2/negotiate.js';
import {
  type CompressionChainedPayload,
  CompressionFlags,
  type CompressionTransform,
  type CompressionTransformChained,
  decodeCompressionTransform,
  decodeTransformHeader,
  encodeCompressionTransform,
  encodeTransformHeader,
  TRANSFORM_HEADER_SIZE,
  TransformFlags,
  type TransformHeader,
  TransformHdr,
} from '../../../../src/control/wire/smb2/transform.js';
import { assertMutationsTyped, assertTruncationsTyped, encodeError, hex, rec, wireError } from '../../../helpers/wire.js';

/** Transform errors end the connection, so they carry no NTSTATUS. */
const framingError = (pattern: RegExp) => wireError(pattern, true);

// Captured on loopback: smbclient 4.17.12 --client-protection=encrypt against smbd 4.17.12,
// SMB 3.1.1 with AES-128-GCM. The first encrypted request (a TREE_CONNECT) and its response.
const ENCRYPTED_REQ = hex(`
  fd534d4284c9f1316930b7edce2a6a800b9c2b0301000000000000008ac1e99c000000006800000000000100dd73d35a00000000d0f8ea02255cfd4f49e12e3b
  93f16631f73b9c244768c89da25b6dc3b80c6502a3253c8e50af452e01b165ec104b9abeab46f2fe6f56ebd256ca5a75c45b6086f7bce5623701ee2a04add93c
  b33e6b609798ee823d9ba359b40b59a81d3f6c7afefe014a80aa6e8d`);
const ENCRYPTED_RES = hex(`
  fd534d42efb5412ad6a3818fcb400be83a9dcd7e010000000000000004d8e678000000005000000000000100dd73d35a000000002402e87ec688d44a5f241409
  96d342e53b7c59bda0c5a4bb652ad6b5965beef869e7903f4a4506f06dcb76c112e1cb1f8d9ab01f56d98b66137b172116015412f45aeed0798dcc8a042a4031
  94b79a47`);

const withCiphertext = (frame: Buffer, h: TransformHeader): Buffer =>
  Buffer.concat([encodeTransformHeader(h), frame.subarray(TRANSFORM_HEADER_SIZE)]);

test('captured TRANSFORM_HEADERs decode and re-encode byte for byte', () => {
  for (const frame of [ENCRYPTED_REQ, ENCRYPTED_RES]) {
    const h = decodeTransformHeader(frame);
    assert.equal(withCiphertext(frame, h).toString('hex'), frame.toString('hex'));
    assert.equal(h.Flags, TransformFlags.ENCRYPTED);
    assert.equal(h.SessionId, 0x5ad373ddn);
    assert.equal(h.OriginalMessageSize, frame.length - TRANSFORM_HEADER_SIZE);
    // A GCM nonce is 12 bytes; the last 4 of the field are zero.
    assert.equal(h.Nonce.subarray(12).toString('hex'), '00000000');
    assertTruncationsTyped(decodeTransformHeader, frame);
  }
  const req = decodeTransformHeader(ENCRYPTED_REQ);
  assert.equal(req.Signature.toString('hex'), '84c9f1316930b7edce2a6a800b9c2b03');
  assert.equal(req.Nonce.toString('hex'), '01000000000000008ac1e99c00000000');
  assert.equal(req.OriginalMessageSize, 0x68);
  // The in-place offsets agree with the decoder.
  assert.equal(ENCRYPTED_REQ.readUInt32LE(TransformHdr.OriginalMessageSize), req.OriginalMessageSize);
  assert.equal(ENCRYPTED_REQ.readUInt16LE(TransformHdr.Flags), req.Flags);
  assert.equal(ENCRYPTED_REQ.readBigUInt64LE(TransformHdr.SessionId), req.SessionId);
  assert.deepEqual(ENCRYPTED_REQ.subarray(TransformHdr.Nonce, TransformHdr.OriginalMessageSize), req.Nonce);
});

test('malformed TRANSFORM_HEADERs are refused with status-less typed errors', () => {
  const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['wrong ProtocolId', (b) => (b.writeUInt8(0xfe, 0), b), /ProtocolId/],
    ['shorter than the header', (b) => b.subarray(0, 51), /shorter/],
    ['OriginalMessageSize larger than the ciphertext', (b) => (b.writeUInt32LE(0x69, 36), b), /OriginalMessageSize/],
    ['OriginalMessageSize smaller than the ciphertext', (b) => (b.writeUInt32LE(0x67, 36), b), /OriginalMessageSize/],
  ];
  for (const [what, corrupt, pattern] of cases) {
    assert.throws(() => decodeTransformHeader(corrupt(Buffer.from(ENCRYPTED_REQ))), framingError(pattern), what);
  }
  const h = decodeTransformHeader(ENCRYPTED_REQ);
  assert.throws(() => encodeTransformHeader({ ...h, Nonce: h.Nonce.subarray(0, 12) }), encodeError);
});

// MS-SMB2 2.2.42.1 laid out by hand: LZ4, 4 leading bytes left uncompressed, then the compressed segment.
const UNCHAINED_HEX = 'fc534d42 00100000 0500 0000 04000000 61626364 78797a';
// MS-SMB2 2.2.42.2 laid out by hand: a NONE payload (CHAINED, first), an LZ77 payload with its
// OriginalPayloadSize, then a Pattern_V1 payload (2.2.42.2.2: byte 0x00 repeated 0x100 times).
const CHAINED_HEX = `
  fc534d42 00110000
  0000 0100 04000000 fe534d42
  0200 0000 07000000 00100000 78797a
  0400 0000 08000000 00000000 00010000`;
const CHAINED: CompressionTransformChained = {
  OriginalCompressedSegmentSize: 0x1100,
  Payloads: [
    { CompressionAlgorithm: CompressionAlgorithm.NONE, Flags: CompressionFlags.CHAINED, Data: hex('fe534d42') },
    { CompressionAlgorithm: CompressionAlgorithm.LZ77, Flags: CompressionFlags.NONE, OriginalPayloadSize: 0x1000, Data: hex('78797a') },
    { CompressionAlgorithm: CompressionAlgorithm.PATTERN_V1, Flags: CompressionFlags.NONE, Data: hex('0000000000010000') },
  ],
};

test('COMPRESSION_TRANSFORM_HEADER: both forms decode to what the spec describes and re-encode byte for byte', () => {
  const unchained = hex(UNCHAINED_HEX);
  assert.deepEqual(decodeCompressionTransform(unchained), {
    OriginalCompressedSegmentSize: 0x1000,
    CompressionAlgorithm: CompressionAlgorithm.LZ4,
    UncompressedData: hex('61626364'),
    CompressedData: hex('78797a'),
  });
  assert.equal(encodeCompressionTransform(decodeCompressionTransform(unchained)).toString('hex'), unchained.toString('hex'));
  const chained = hex(CHAINED_HEX);
  assert.deepEqual(decodeCompressionTransform(chained), CHAINED);
  assert.equal(encodeCompressionTransform(CHAINED).toString('hex'), chained.toString('hex'));
  assertTruncationsTyped(decodeCompressionTransform, unchained);
  assertTruncationsTyped(decodeCompressionTransform, chained);
});

test('malformed COMPRESSION_TRANSFORM_HEADERs are refused with status-less typed errors', () => {
  const cases: [string, string, (b: Buffer) => Buffer, RegExp][] = [
    ['wrong ProtocolId', UNCHAINED_HEX, (b) => (b.writeUInt8(0xfd, 0), b), /ProtocolId/],
    ['unknown Flags', UNCHAINED_HEX, (b) => (b.writeUInt16LE(2, 10), b), /Flags/],
    ['Offset past the end', UNCHAINED_HEX, (b) => (b.writeUInt32LE(8, 12), b), /Offset/],
    ['payload header cut short', CHAINED_HEX, (b) => b.subarray(0, b.length - 12), /cut short/],
    ['payload Length past the end', CHAINED_HEX, (b) => (b.writeUInt32LE(9, 39), b), /Length/],
    ['LZ77 payload too short for OriginalPayloadSize', 'fc534d42 00000000 0200 0100 03000000 78797a', (b) => b, /Length/],
  ];
  for (const [what, source, corrupt, pattern] of cases) {
    assert.throws(() => decodeCompressionTransform(corrupt(hex(source))), framingError(pattern), what);
  }
  const payloads = CHAINED.Payloads;
  const unsized = { ...payloads[1]!, Flags: CompressionFlags.CHAINED, OriginalPayloadSize: undefined };
  const encodeErrors: [string, CompressionTransform][] = [
    ['LZ77 without OriginalPayloadSize', { OriginalCompressedSegmentSize: 0, Payloads: [unsized] }],
    ['NONE with OriginalPayloadSize', { OriginalCompressedSegmentSize: 0, Payloads: [{ ...payloads[0]!, OriginalPayloadSize: 1 }] }],
    ['a chain not starting with CHAINED', { OriginalCompressedSegmentSize: 0, Payloads: payloads.slice(1) }],
    ['an empty chain', { OriginalCompressedSegmentSize: 0, Payloads: [] }],
  ];
  for (const [what, t] of encodeErrors) assert.throws(() => encodeCompressionTransform(t), encodeError, what);
});

const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytes = (minLength: number, maxLength: number) => fc.uint8Array({ minLength, maxLength }).map((a) => Buffer.from(a));
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const headerArb = fc
  .tuple(rec({ Signature: bytes(16, 16), Nonce: bytes(16, 16), Reserved: u16, Flags: u16, SessionId: u64 }), bytes(0, 200))
  .map(([fields, ciphertext]) => {
    const header: TransformHeader = { ...fields, OriginalMessageSize: ciphertext.length };
    return { header, frame: Buffer.concat([encodeTransformHeader(header), ciphertext]) };
  });

/** The algorithms whose payloads carry OriginalPayloadSize (MS-SMB2 2.2.42.2.1). */
const SIZED: number[] = [
  CompressionAlgorithm.LZNT1,
  CompressionAlgorithm.LZ77,
  CompressionAlgorithm.LZ77_HUFFMAN,
  CompressionAlgorithm.LZ4,
];
const payloadArb: fc.Arbitrary<CompressionChainedPayload> = fc
  .tuple(rec({ CompressionAlgorithm: u16, Flags: u16, Data: bytes(0, 40) }), u32)
  .map(([p, size]) => (SIZED.includes(p.CompressionAlgorithm) ? { ...p, OriginalPayloadSize: size } : p));
const compressionArb: fc.Arbitrary<CompressionTransform> = fc.oneof(
  rec({ OriginalCompressedSegmentSize: u32, CompressionAlgorithm: u16, UncompressedData: bytes(0, 40), CompressedData: bytes(0, 40) }),
  rec({
    OriginalCompressedSegmentSize: u32,
    Payloads: fc
      .tuple(payloadArb, fc.array(payloadArb, { maxLength: 4 }))
      .map(([first, rest]) => [{ ...first, Flags: CompressionFlags.CHAINED }, ...rest]),
  }),
);

test('property: transforms encode, decode to the same value and re-encode to the same bytes', () => {
  fc.assert(
    fc.property(headerArb, ({ header, frame }) => {
      const d = decodeTransformHeader(frame);
      assert.deepEqual(d, header);
      assert.equal(withCiphertext(frame, d).toString('hex'), frame.toString('hex'));
    }),
  );
  fc.assert(
    fc.property(compressionArb, (t) => {
      const wire = encodeCompressionTransform(t);
      const d = decodeCompressionTransform(wire);
      assert.deepEqual(d, t);
      assert.equal(encodeCompressionTransform(d).toString('hex'), wire.toString('hex'));
    }),
  );
});

test('property: corrupted transforms decode or throw a WireError', () => {
  const encrypted = fc.oneof(headerArb.map((x) => x.frame), fc.constant(ENCRYPTED_REQ));
  assertMutationsTyped(decodeTransformHeader, encrypted, 'TRANSFORM_HEADER');
  const compressed = fc.oneof(compressionArb.map(encodeCompressionTransform), fc.constant(hex(CHAINED_HEX)));
  assertMutationsTyped(decodeCompressionTransform, compressed, 'COMPRESSION_TRANSFORM_HEADER', 0, 2000);
});
