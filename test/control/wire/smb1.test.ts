import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeSmb1Negotiate,
  encodeSmb1Negotiate,
  SMB1_DIALECT_SMB2_002,
  SMB1_DIALECT_SMB2_WILDCARD,
  type Smb1NegotiateRequest,
  smb1OffersSmb2,
} from '../../../src/control/wire/smb1.js';
import { assertMutationsTyped, assertRoundTrip, assertTruncationsTyped, encodeError, hex, rec, wireError } from '../../helpers/wire.js';

// Captured on loopback: smbclient 4.17.12 with "client min protocol = NT1" opens with this SMB1
// multi-protocol NEGOTIATE offering NT LANMAN 1.0, NT LM 0.12, SMB 2.002 and SMB 2.???.
const SAMBA_NEGOTIATE = hex(`
  ff534d4272000000001843c80000000000000000000000000000feff00000000003100024e54204c414e4d414e20312e3000024e54204c4d20302e3132000253
  4d4220322e3030320002534d4220322e3f3f3f00`);

/** SMB1 NEGOTIATE errors end the connection, so they carry no NTSTATUS. */
const framingError = (pattern: RegExp) => wireError(pattern, true);

test('a captured SMB1 multi-protocol NEGOTIATE decodes and re-encodes byte for byte', () => {
  const req = assertRoundTrip(decodeSmb1Negotiate, encodeSmb1Negotiate, SAMBA_NEGOTIATE);
  assert.deepEqual(req, {
    Status: 0,
    Flags: 0x18,
    Flags2: 0xc843,
    PIDHigh: 0,
    SecurityFeatures: Buffer.alloc(8),
    Reserved: 0,
    TID: 0,
    PIDLow: 0xfffe,
    UID: 0,
    MID: 0,
    Dialects: ['NT LANMAN 1.0', 'NT LM 0.12', SMB1_DIALECT_SMB2_002, SMB1_DIALECT_SMB2_WILDCARD],
  });
  assert.deepEqual(smb1OffersSmb2(req.Dialects), { smb2002: true, wildcard: true });
  assertTruncationsTyped(decodeSmb1Negotiate, SAMBA_NEGOTIATE);
  // Bytes after ByteCount (none are expected) do not change the result.
  assert.deepEqual(decodeSmb1Negotiate(Buffer.concat([SAMBA_NEGOTIATE, hex('00ff')])), req);
});

test('smb1OffersSmb2 tells the two SMB2 dialect strings apart', () => {
  assert.deepEqual(smb1OffersSmb2(['NT LM 0.12']), { smb2002: false, wildcard: false });
  assert.deepEqual(smb1OffersSmb2(['NT LM 0.12', 'SMB 2.002']), { smb2002: true, wildcard: false });
  assert.deepEqual(smb1OffersSmb2(['SMB 2.???']), { smb2002: false, wildcard: true });
  // Exact strings only: case and spacing matter.
  assert.deepEqual(smb1OffersSmb2(['smb 2.002', 'SMB 2.??? ']), { smb2002: false, wildcard: false });
});

test('malformed SMB1 NEGOTIATEs are refused with status-less typed errors', () => {
  const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['wrong ProtocolId', (b) => (b.writeUInt8(0xfe, 0), b), /ProtocolId/],
    ['another command', (b) => (b.writeUInt8(0x73, 4), b), /Command/],
    ['WordCount not 0', (b) => (b.writeUInt8(1, 32), b), /WordCount/],
    ['ByteCount past the end', (b) => (b.writeUInt16LE(50, 33), b), /ByteCount/],
    ['BufferFormat not 0x02', (b) => (b.writeUInt8(0x04, 35), b), /BufferFormat/],
    ['last dialect without NUL inside ByteCount', (b) => (b.writeUInt16LE(48, 33), b), /NUL/],
    ['header only', (b) => b.subarray(0, 33), /too short/],
  ];
  for (const [what, corrupt, pattern] of cases) {
    assert.throws(() => decodeSmb1Negotiate(corrupt(Buffer.from(SAMBA_NEGOTIATE))), framingError(pattern), what);
  }
  const base = decodeSmb1Negotiate(SAMBA_NEGOTIATE);
  const bad: [string, Smb1NegotiateRequest][] = [
    ['a NUL inside a dialect', { ...base, Dialects: ['SMB\u00002'] }],
    ['a non-OEM character', { ...base, Dialects: ['SMB \u20ac'] }],
    ['short SecurityFeatures', { ...base, SecurityFeatures: Buffer.alloc(4) }],
  ];
  for (const [what, req] of bad) {
    assert.throws(() => encodeSmb1Negotiate(req), encodeError, what);
  }
});

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const oem = fc.array(fc.integer({ min: 1, max: 0xff }), { maxLength: 16 }).map((codes) => String.fromCharCode(...codes));
const requestArb: fc.Arbitrary<Smb1NegotiateRequest> = rec({
  Status: fc.integer({ min: 0, max: 0xffffffff }),
  Flags: u8,
  Flags2: u16,
  PIDHigh: u16,
  SecurityFeatures: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a)),
  Reserved: u16,
  TID: u16,
  PIDLow: u16,
  UID: u16,
  MID: u16,
  Dialects: fc.array(oem, { maxLength: 8 }),
});

test('property: SMB1 NEGOTIATEs encode, decode to the same value and re-encode to the same bytes', () => {
  fc.assert(
    fc.property(requestArb, (x) => {
      const wire = encodeSmb1Negotiate(x);
      const d = decodeSmb1Negotiate(wire);
      assert.deepEqual(d, x);
      assert.equal(encodeSmb1Negotiate(d).toString('hex'), wire.toString('hex'));
    }),
  );
});

test('property: corrupted SMB1 NEGOTIATEs decode or throw a WireError', () => {
  const frames = fc.oneof(requestArb.map(encodeSmb1Negotiate), fc.constant(SAMBA_NEGOTIATE));
  assertMutationsTyped(decodeSmb1Negotiate, frames, 'SMB1 NEGOTIATE', 0, 2000);
});
