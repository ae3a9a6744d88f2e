import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { NtStatus } from '../../../../src/control/wire/ntstatus.js';
import { SessionSetupRequestFlags, Smb2Command, Smb2SecurityMode } from '../../../../src/control/wire/smb2/constants.js';
import { header } from '../../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../../src/control/wire/smb2/message.js';
import {
  decodeSessionSetupRequest,
  decodeSessionSetupResponse,
  encodeSessionSetupRequest,
  encodeSessionSetupResponse,
  type SessionSetupRequest,
  type SessionSetupResponse,
} from '../../../../src/control/wire/smb2/session-setup.js';
import { assertMutationsTyped, assertRoundTrip, assertTruncationsTyped, encodeError, hex, rec, wireError } from '../../../helpers/wire.js';

const msg = (body: Buffer): Buffer => encodeMessage(header({ Command: Smb2Command.SESSION_SETUP }), body);
const again = (capture: Buffer, body: Buffer): Buffer => Buffer.concat([capture.subarray(0, 64), body]);

// Captured on loopback: anonymous smbclient 4.17.12 against smbd 4.17.12 (SMB 3.1.1). Round 1
// carries SPNEGO(NTLMSSP NEGOTIATE) and gets STATUS_MORE_PROCESSING_REQUIRED with the CHALLENGE;
// round 2 carries the (anonymous) AUTHENTICATE and gets a signed success with the final token.
const SS1_REQ = hex(`
  fe534d42400001000000000001000020100000000000000001000000000000000000000000000000000000000000000000000000000000000000000000000000
  19000001010000000000000058004a000000000000000000604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa22a04284e544c4d5353
  5000010000001582086200000000280000000000000028000000060100000000000f`);
const SS1_RES = hex(`
  fe534d4240000100160000c00100010011000000000000000100000000000000000000000000000032cbe66d0000000000000000000000000000000000000000
  0900000048009700a18194308191a0030a0101a10c060a2b06010401823702020aa27c047a4e544c4d53535000020000000a000a003800000015828a62eb194b
  b8357dbae300000000000000003800380042000000060100000000000f4800310053004d00420002000a004800310053004d00420001000a004800310053004d
  004200040000000300040076006d000700080098c3a895d27cdd0100000000`);
const SS2_REQ = hex(`
  fe534d4240000100000000000100002010000000000000000200000000000000000000000000000032cbe66d0000000000000000000000000000000000000000
  190000010100000000000000580074000000000000000000a1723070a26e046c4e544c4d53535000030000000000000058000000000000005800000000000000
  5800000000000000580000000400040058000000100010005c000000158a0062060100000000000f486a9042a858e0b4903edf32fe28412c56004d00fc956326
  5640718623f02b58570038f3`);
const SS2_RES = hex(`
  fe534d4240000100000000000100002011000000000000000200000000000000000000000000000032cbe66d0000000000000000000000000000000000000000
  0900000048000900a1073005a0030a0100`);

test('captured SESSION_SETUP requests decode and re-encode byte for byte, canonical placement included', () => {
  for (const capture of [SS1_REQ, SS2_REQ]) {
    const req = assertRoundTrip(decodeSessionSetupRequest, (r) => again(capture, encodeSessionSetupRequest(r)), capture);
    assert.equal(req.Flags, 0);
    assert.equal(req.SecurityMode, Smb2SecurityMode.SIGNING_ENABLED);
    assert.equal(req.SecurityBufferOffset, 0x58);
    assert.equal(req.PreviousSessionId, 0n);
    const canonical = encodeSessionSetupRequest({ ...req, SecurityBufferOffset: undefined });
    assert.equal(again(capture, canonical).toString('hex'), capture.toString('hex'));
    assertTruncationsTyped(decodeSessionSetupRequest, capture);
  }
  // Round 1 is SPNEGO NegTokenInit (0x60) wrapping NTLMSSP NEGOTIATE; round 2 a NegTokenResp (0xa1) with AUTHENTICATE.
  const first = decodeSessionSetupRequest(SS1_REQ).SecurityBuffer;
  assert.equal(first[0], 0x60);
  assert.equal(first.subarray(first.indexOf('NTLMSSP') + 8).readUInt32LE(0), 1);
  const second = decodeSessionSetupRequest(SS2_REQ).SecurityBuffer;
  assert.equal(second.length, 0x74);
  assert.equal(second.subarray(second.indexOf('NTLMSSP') + 8).readUInt32LE(0), 3);
});

test('captured SESSION_SETUP responses decode and re-encode byte for byte', () => {
  for (const capture of [SS1_RES, SS2_RES]) {
    const res = assertRoundTrip(decodeSessionSetupResponse, (r) => again(capture, encodeSessionSetupResponse(r)), capture);
    assert.equal(res.SessionFlags, 0);
    assert.equal(res.SecurityBufferOffset, 0x48);
    const canonical = encodeSessionSetupResponse({ ...res, SecurityBufferOffset: undefined });
    assert.equal(again(capture, canonical).toString('hex'), capture.toString('hex'));
    assertTruncationsTyped(decodeSessionSetupResponse, capture);
  }
  assert.equal(SS1_RES.readUInt32LE(8), NtStatus.STATUS_MORE_PROCESSING_REQUIRED);
  assert.equal(decodeSessionSetupResponse(SS1_RES).SecurityBuffer.length, 0x97);
  assert.equal(decodeSessionSetupResponse(SS2_RES).SecurityBuffer.toString('hex'), 'a1073005a0030a0100');
});

test('an empty security buffer still sends the one byte an odd StructureSize promises', () => {
  const req: SessionSetupRequest = {
    Flags: SessionSetupRequestFlags.BINDING,
    SecurityMode: 0,
    Capabilities: 0,
    Channel: 0,
    SecurityBuffer: Buffer.alloc(0),
    PreviousSessionId: 0x1122334455667788n,
  };
  const body = encodeSessionSetupRequest(req);
  assert.equal(body.length, 25);
  assert.equal(body.readUInt16LE(12), 0);
  assert.deepEqual(decodeSessionSetupRequest(msg(body)), { ...req, SecurityBufferOffset: 0 });
  assert.equal(encodeSessionSetupResponse({ SessionFlags: 1, SecurityBuffer: Buffer.alloc(0) }).length, 9);
});

test('malformed SESSION_SETUP messages are refused with typed errors', () => {
  const cases: [string, Buffer, (b: Buffer) => void, (b: Buffer) => unknown, RegExp][] = [
    ['request StructureSize', SS1_REQ, (b) => b.writeUInt16LE(24, 64), decodeSessionSetupRequest, /StructureSize/],
    ['request buffer in the fixed part', SS1_REQ, (b) => b.writeUInt16LE(0x50, 76), decodeSessionSetupRequest, /SecurityBufferOffset/],
    ['request length past the end', SS1_REQ, (b) => b.writeUInt16LE(0x4b, 78), decodeSessionSetupRequest, /SecurityBufferOffset/],
    ['response StructureSize', SS1_RES, (b) => b.writeUInt16LE(8, 64), decodeSessionSetupResponse, /StructureSize/],
    ['response buffer in the fixed part', SS1_RES, (b) => b.writeUInt16LE(0x44, 68), decodeSessionSetupResponse, /SecurityBufferOffset/],
    ['response length past the end', SS1_RES, (b) => b.writeUInt16LE(0x98, 70), decodeSessionSetupResponse, /SecurityBufferOffset/],
  ];
  for (const [what, capture, corrupt, decode, pattern] of cases) {
    const bytes = Buffer.from(capture);
    corrupt(bytes);
    assert.throws(() => decode(bytes), wireError(pattern), what);
  }
  const big = { SessionFlags: 0, SecurityBuffer: Buffer.alloc(0x10000) };
  assert.throws(() => encodeSessionSetupResponse(big), encodeError);
});

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const token = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
const requestArb: fc.Arbitrary<SessionSetupRequest> = rec({
  Flags: u8,
  SecurityMode: u8,
  Capabilities: u32,
  Channel: u32,
  SecurityBuffer: token,
  PreviousSessionId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
});
const responseArb: fc.Arbitrary<SessionSetupResponse> = rec({ SessionFlags: u16, SecurityBuffer: token });

test('property: SESSION_SETUP messages encode, decode to the same value and re-encode to the same bytes', () => {
  fc.assert(
    fc.property(requestArb, (x) => {
      const wire = msg(encodeSessionSetupRequest(x));
      const d = decodeSessionSetupRequest(wire);
      assert.deepEqual(d, { ...x, SecurityBufferOffset: x.SecurityBuffer.length > 0 ? 0x58 : 0 });
      assert.equal(msg(encodeSessionSetupRequest(d)).toString('hex'), wire.toString('hex'));
    }),
  );
  fc.assert(
    fc.property(responseArb, (x) => {
      const wire = msg(encodeSessionSetupResponse(x));
      const d = decodeSessionSetupResponse(wire);
      assert.deepEqual(d, { ...x, SecurityBufferOffset: x.SecurityBuffer.length > 0 ? 0x48 : 0 });
      assert.equal(msg(encodeSessionSetupResponse(d)).toString('hex'), wire.toString('hex'));
    }),
  );
});

test('property: corrupted SESSION_SETUP messages decode or throw a WireError', () => {
  const requests = fc.oneof(requestArb.map((x) => msg(encodeSessionSetupRequest(x))), fc.constant(SS2_REQ));
  const responses = fc.oneof(responseArb.map((x) => msg(encodeSessionSetupResponse(x))), fc.constant(SS1_RES));
  assertMutationsTyped(decodeSessionSetupRequest, requests, 'SESSION_SETUP request', 64);
  assertMutationsTyped(decodeSessionSetupResponse, responses, 'SESSION_SETUP response', 64);
});
