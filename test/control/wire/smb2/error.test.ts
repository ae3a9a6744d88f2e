import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { NtStatus } from '../../../../src/control/wire/ntstatus.js';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import {
  buildErrorBody,
  decodeErrorResponse,
  decodeShareRedirectErrorContext,
  decodeSymbolicLinkErrorResponse,
  encodeErrorResponse,
  encodeShareRedirectErrorContext,
  ErrorId,
  type ErrorResponse,
  MoveDstIpAddrType,
  type ShareRedirectErrorContext,
  SYMLINK_FLAG_RELATIVE,
} from '../../../../src/control/wire/smb2/error.js';
import { header } from '../../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../../src/control/wire/smb2/message.js';
import { assertMutationsTyped, assertRoundTrip, assertTruncationsTyped, encodeError, hex, rec, wireError } from '../../../helpers/wire.js';

const msg = (body: Buffer, Status: number = NtStatus.STATUS_ACCESS_DENIED): Buffer =>
  encodeMessage(header({ Command: Smb2Command.CREATE, Status, Flags: 1 }), body);
const again = (capture: Buffer, body: Buffer): Buffer => Buffer.concat([capture.subarray(0, 64), body]);

// Captured from smbd 4.17.12: the interim (async, STATUS_PENDING) reply to an IOCTL, whose one
// byte of ErrorData is 0x21 as Windows sends it, and STATUS_NO_MORE_FILES ending a QUERY_DIRECTORY.
const INTERIM = hex(`
  fe534d4240000000030100000b00010013000000000000000500000000000000050000000000000032cbe66d0000000000000000000000000000000000000000
  090000000000000021`);
const NO_MORE_FILES = hex(`
  fe534d4240000000060000800e00010001000000000000000900000000000000000000008961acc477c7a6250000000000000000000000000000000000000000
  090000000000000000`);

test('captured ERROR responses keep the byte sent in place of empty ErrorData and re-encode byte for byte', () => {
  const interim = assertRoundTrip(decodeErrorResponse, (r) => again(INTERIM, encodeErrorResponse(r)), INTERIM);
  assert.equal(INTERIM.readUInt32LE(8), NtStatus.STATUS_PENDING);
  assert.deepEqual(interim, { Reserved: 0, ErrorContexts: [], ErrorData: Buffer.alloc(0), ErrorDataPad: 0x21 });
  const done = assertRoundTrip(decodeErrorResponse, (r) => again(NO_MORE_FILES, encodeErrorResponse(r)), NO_MORE_FILES);
  assert.deepEqual(done, { Reserved: 0, ErrorContexts: [], ErrorData: Buffer.alloc(0), ErrorDataPad: 0 });
  // The builder for the usual case produces exactly what smbd sent.
  assert.equal(buildErrorBody().toString('hex'), NO_MORE_FILES.subarray(64).toString('hex'));
  assertTruncationsTyped(decodeErrorResponse, INTERIM);
});

test('ErrorData is ByteCount bytes; a missing pad byte is tolerated and encoded as 0', () => {
  // STATUS_BUFFER_TOO_SMALL carries the 4-byte required length (MS-SMB2 2.2.2.2).
  const body = buildErrorBody(hex('00010000'));
  assert.equal(body.toString('hex'), '09000000' + '04000000' + '00010000');
  assert.equal(decodeErrorResponse(msg(body)).ErrorData.readUInt32LE(0), 0x100);
  const bare = msg(hex('0900 0000 00000000'));
  assert.deepEqual(decodeErrorResponse(bare), { Reserved: 0, ErrorContexts: [], ErrorData: Buffer.alloc(0) });
  assert.equal(encodeErrorResponse(decodeErrorResponse(bare)).toString('hex'), '090000000000000000');
});

// MS-SMB2 2.2.2.2.2: one IPv4 destination (10.0.0.5) and the share name "share".
const SHARE_REDIRECT: ShareRedirectErrorContext = {
  StructureSize: 48,
  NotificationType: 3,
  Reserved: 0,
  TargetType: 0,
  IPAddrMoveList: [{ Type: MoveDstIpAddrType.V4, Reserved: 0, Address: Buffer.concat([hex('0a000005'), Buffer.alloc(12)]) }],
  ResourceName: 'share',
};
const SHARE_REDIRECT_HEX = `
  30000000 03000000 30000000 0a000000 0000 0000 01000000
  01000000 00000000 0a000005 000000000000000000000000
  7300 6800 6100 7200 6500`;

test('3.1.1 error contexts are 8-aligned, and a Share Redirect context round-trips', () => {
  const redirect = encodeShareRedirectErrorContext(SHARE_REDIRECT);
  assert.equal(redirect.toString('hex'), hex(SHARE_REDIRECT_HEX).toString('hex'));
  const res: ErrorResponse = {
    Reserved: 0,
    ErrorContexts: [
      { ErrorId: ErrorId.DEFAULT, ErrorContextData: hex('0102030405') },
      { ErrorId: ErrorId.SHARE_REDIRECT, ErrorContextData: redirect },
    ],
    ErrorData: Buffer.alloc(0),
  };
  const body = encodeErrorResponse(res);
  // Context 1 is 8 + 5 bytes from body offset 8, so context 2 starts at 24 after 3 bytes of padding.
  assert.equal(body.subarray(0, 24).toString('hex'), '0900' + '02' + '00' + '52000000' + '05000000' + '00000000' + '0102030405' + '000000');
  assert.equal(body.readUInt32LE(4), 16 + 8 + redirect.length);
  const wire = msg(body, NtStatus.STATUS_BAD_NETWORK_NAME);
  const decoded = assertRoundTrip(decodeErrorResponse, (r) => msg(encodeErrorResponse(r), NtStatus.STATUS_BAD_NETWORK_NAME), wire);
  assert.deepEqual(decoded, res);
  const context = decoded.ErrorContexts[1]!.ErrorContextData;
  assert.deepEqual(decodeShareRedirectErrorContext(context), { ...SHARE_REDIRECT, ResourceNameOffset: 48 });
  assertTruncationsTyped(decodeErrorResponse, wire);
  assertTruncationsTyped(decodeShareRedirectErrorContext, redirect);
});

// MS-SMB2 2.2.2.2.1 laid out by hand: PrintName "b" at 0, SubstituteName "a\b" at 2, 10 bytes unparsed.
const SYMLINK_HEX = `
  20000000 53594d4c 0c0000a0 1400 0a00 0200 0600 0000 0200 01000000
  6200 6100 5c00 6200`;

test('a Symbolic Link Error Response decodes its names from PathBuffer', () => {
  const data = hex(SYMLINK_HEX);
  const expected = { ReparseTag: 0xa000000c, UnparsedPathLength: 10, Flags: SYMLINK_FLAG_RELATIVE, SubstituteName: 'a\\b', PrintName: 'b' };
  assert.deepEqual(decodeSymbolicLinkErrorResponse(data), expected);
  const wire = msg(buildErrorBody(data), NtStatus.STATUS_STOPPED_ON_SYMLINK);
  assert.deepEqual(decodeSymbolicLinkErrorResponse(decodeErrorResponse(wire).ErrorData), expected);
  assertTruncationsTyped(decodeSymbolicLinkErrorResponse, data);
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ['wrong SymLinkErrorTag', (b) => b.writeUInt32LE(0x4c4d5954, 4), /SymLinkErrorTag/],
    ['SymLinkLength past the end', (b) => b.writeUInt32LE(0x22, 0), /SymLinkLength/],
    ['SymLinkLength shorter than the fixed part', (b) => b.writeUInt32LE(0x10, 0), /SymLinkLength/],
    ['ReparseDataLength disagreeing', (b) => b.writeUInt16LE(0x16, 12), /ReparseDataLength/],
    ['SubstituteName past PathBuffer', (b) => b.writeUInt16LE(4, 16), /SubstituteNameOffset/],
    ['PrintName of odd length', (b) => b.writeUInt16LE(1, 22), /odd length/],
  ];
  for (const [what, corrupt, pattern] of cases) {
    const bytes = Buffer.from(data);
    corrupt(bytes);
    assert.throws(() => decodeSymbolicLinkErrorResponse(bytes), wireError(pattern), what);
  }
});

test('malformed ERROR responses and Share Redirect contexts are refused with typed errors', () => {
  const noData = { Reserved: 0, ErrorData: Buffer.alloc(0) };
  const twoContexts = encodeErrorResponse({ ...noData, ErrorContexts: [{ ErrorId: ErrorId.DEFAULT, ErrorContextData: hex('01020304') }] });
  const cases: [string, Buffer, (b: Buffer) => void, RegExp][] = [
    ['wrong StructureSize', INTERIM, (b) => b.writeUInt16LE(8, 64), /StructureSize/],
    ['ByteCount past the end', INTERIM, (b) => b.writeUInt32LE(2, 68), /ByteCount/],
    ['ErrorContextCount larger than what fits', msg(twoContexts), (b) => b.writeUInt8(2, 66), /ErrorDataLength|alignment/],
    ['ErrorDataLength past ByteCount', msg(twoContexts), (b) => b.writeUInt32LE(5, 72), /ErrorDataLength/],
  ];
  for (const [what, capture, corrupt, pattern] of cases) {
    const bytes = Buffer.from(capture);
    corrupt(bytes);
    assert.throws(() => decodeErrorResponse(bytes), wireError(pattern), what);
  }
  const redirect = hex(SHARE_REDIRECT_HEX);
  const redirectCases: [string, (b: Buffer) => void, RegExp][] = [
    ['IPAddrCount larger than what fits', (b) => b.writeUInt32LE(2, 20), /IPAddrCount/],
    ['ResourceName over the address list', (b) => b.writeUInt32LE(40, 8), /ResourceNameOffset/],
    ['ResourceNameLength past the end', (b) => b.writeUInt32LE(12, 12), /ResourceNameOffset/],
  ];
  for (const [what, corrupt, pattern] of redirectCases) {
    const bytes = Buffer.from(redirect);
    corrupt(bytes);
    assert.throws(() => decodeShareRedirectErrorContext(bytes), wireError(pattern), what);
  }
  const empty = { ErrorId: ErrorId.DEFAULT, ErrorContextData: Buffer.alloc(0) };
  const shortAddress = { Type: MoveDstIpAddrType.V4, Reserved: 0, Address: hex('0a000005') };
  const encodeErrors: [string, () => Buffer][] = [
    ['256 contexts', () => encodeErrorResponse({ ...noData, ErrorContexts: Array.from({ length: 256 }, () => empty) })],
    ['a pad byte with ErrorData', () => encodeErrorResponse({ Reserved: 0, ErrorContexts: [], ErrorData: hex('00'), ErrorDataPad: 0 })],
    ['a short address', () => encodeShareRedirectErrorContext({ ...SHARE_REDIRECT, IPAddrMoveList: [shortAddress] })],
  ];
  for (const [what, encode] of encodeErrors) assert.throws(encode, encodeError, what);
});

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytes = (maxLength: number, minLength = 0) => fc.uint8Array({ minLength, maxLength }).map((a) => Buffer.from(a));
const contextArb = rec({ ErrorId: u32, ErrorContextData: bytes(30) });
const errorArb: fc.Arbitrary<ErrorResponse> = fc
  .tuple(rec({ Reserved: u8, ErrorContexts: fc.array(contextArb, { maxLength: 4 }), ErrorData: bytes(30) }), u8)
  .map(([res, pad]) => (res.ErrorContexts.length === 0 && res.ErrorData.length === 0 ? { ...res, ErrorDataPad: pad } : res));
const redirectArb: fc.Arbitrary<ShareRedirectErrorContext> = rec({
  StructureSize: u32,
  NotificationType: u32,
  Reserved: u16,
  TargetType: u16,
  IPAddrMoveList: fc.array(rec({ Type: u32, Reserved: u32, Address: bytes(16, 16) }), { maxLength: 3 }),
  ResourceName: fc.string({ unit: 'grapheme', maxLength: 20 }),
});

test('property: ERROR responses and Share Redirect contexts encode, decode to the same value and re-encode to the same bytes', () => {
  fc.assert(
    fc.property(errorArb, (x) => {
      const wire = msg(encodeErrorResponse(x));
      const d = decodeErrorResponse(wire);
      assert.deepEqual(d, x);
      assert.equal(msg(encodeErrorResponse(d)).toString('hex'), wire.toString('hex'));
    }),
  );
  fc.assert(
    fc.property(redirectArb, (x) => {
      const wire = encodeShareRedirectErrorContext(x);
      const d = decodeShareRedirectErrorContext(wire);
      const nameAt = x.ResourceName.length > 0 ? 24 + 24 * x.IPAddrMoveList.length : 0;
      assert.deepEqual(d, { ...x, ResourceNameOffset: nameAt });
      assert.equal(encodeShareRedirectErrorContext(d).toString('hex'), wire.toString('hex'));
    }),
  );
});

test('property: corrupted ERROR data decodes or throws a WireError', () => {
  const errors = fc.oneof(errorArb.map((x) => msg(encodeErrorResponse(x))), fc.constant(INTERIM));
  assertMutationsTyped(decodeErrorResponse, errors, 'ERROR response', 64);
  const redirects = fc.oneof(redirectArb.map(encodeShareRedirectErrorContext), fc.constant(hex(SHARE_REDIRECT_HEX)));
  assertMutationsTyped(decodeShareRedirectErrorContext, redirects, 'Share Redirect');
  assertMutationsTyped(decodeSymbolicLinkErrorResponse, fc.constant(hex(SYMLINK_HEX)), 'Symbolic Link');
});
