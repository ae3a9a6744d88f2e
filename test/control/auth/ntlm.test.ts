import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { rc4 } from '../../../src/control/auth/crypto.js';
import {
  AvId,
  avFlags,
  avString,
  avTimestamp,
  avU32,
  computeMic,
  decodeAuthenticateMessage,
  decodeAvPairs,
  decodeChallengeMessage,
  decodeMessageSignature,
  decodeNegotiateMessage,
  decodeNtlmV2ClientChallenge,
  encodeAuthenticateMessage,
  encodeAvPairs,
  encodeChallengeMessage,
  encodeMessageSignature,
  encodeNegotiateMessage,
  encodeNtlmV2ClientChallenge,
  lmV2Response,
  MIC_OFFSET,
  NegotiateFlags as F,
  NtlmSessionSecurity,
  ntowfV2,
  ntProofStr,
  sealKey,
  sessionBaseKeyV2,
  signKey,
  upcaseNt,
  withZeroMic,
  type AuthenticateMessage,
} from '../../../src/control/auth/ntlm.js';
import { ntOwfV1 } from '../../../src/control/tables/credentials.js';
import { assertRoundTrip, assertTruncationsTyped } from '../../helpers/wire.js';
import { BLOG, hex, NLMP, ntlmToken } from './vectors.js';
import { fileTime } from '../../../src/control/filetime.js';

test('MS-NLMP 4.2.4.1: NTOWFv2, NTProofStr, SessionBaseKey, LMv2 and the encrypted session key', () => {
  assert.deepEqual(ntOwfV1(NLMP.password), NLMP.ntowfV1);
  const responseKey = ntowfV2(NLMP.ntowfV1, NLMP.user, NLMP.domain);
  assert.equal(responseKey.toString('hex'), NLMP.ntowfV2.toString('hex'));
  // temp of 4.2.4.2.2: the client challenge with Time = 0 and the server's AV pairs.
  const nt = decodeAuthenticateMessage(NLMP.authenticate).NtChallengeResponse;
  const proof = ntProofStr(responseKey, NLMP.serverChallenge, nt.subarray(16));
  assert.equal(proof.toString('hex'), NLMP.ntProofStr.toString('hex'));
  assert.equal(sessionBaseKeyV2(responseKey, proof).toString('hex'), NLMP.sessionBaseKey.toString('hex'));
  assert.equal(lmV2Response(responseKey, NLMP.serverChallenge, NLMP.clientChallenge).toString('hex'), NLMP.lmV2Response.toString('hex'));
  assert.equal(rc4(NLMP.sessionBaseKey, NLMP.randomSessionKey).toString('hex'), NLMP.encryptedSessionKey.toString('hex'));
});

test('MS-NLMP 4.2.4.3: the CHALLENGE message decodes and re-encodes byte for byte', () => {
  const c = assertRoundTrip(decodeChallengeMessage, encodeChallengeMessage, NLMP.challenge, 'CHALLENGE');
  assert.equal(c.NegotiateFlags, NLMP.challengeFlags);
  assert.equal(c.TargetName, 'Server');
  assert.deepEqual(c.ServerChallenge, NLMP.serverChallenge);
  assert.deepEqual(c.Version, { ProductMajorVersion: 6, ProductMinorVersion: 0, ProductBuild: 6000, NTLMRevisionCurrent: 15 });
  assert.deepEqual(decodeAvPairs(c.TargetInfo), [avString(AvId.MsvAvNbDomainName, 'Domain'), avString(AvId.MsvAvNbComputerName, 'Server')]);
  assertTruncationsTyped(decodeChallengeMessage, NLMP.challenge, 'CHALLENGE');
});

test('MS-NLMP 4.2.4.3: the AUTHENTICATE message decodes and re-encodes byte for byte', () => {
  const a = assertRoundTrip(decodeAuthenticateMessage, encodeAuthenticateMessage, NLMP.authenticate, 'AUTHENTICATE');
  assert.equal(a.UserName, 'User');
  assert.equal(a.DomainName, 'Domain');
  assert.equal(a.Workstation, 'COMPUTER');
  assert.deepEqual(a.LmChallengeResponse, NLMP.lmV2Response);
  assert.deepEqual(a.NtChallengeResponse.subarray(0, 16), NLMP.ntProofStr);
  assert.deepEqual(a.EncryptedRandomSessionKey, NLMP.encryptedSessionKey);
  assert.equal(a.MIC, undefined, 'the payload starts at 72: no room for a MIC');
  const cc = decodeNtlmV2ClientChallenge(a.NtChallengeResponse.subarray(16));
  assert.equal(cc.TimeStamp, 0n);
  assert.deepEqual(cc.ChallengeFromClient, NLMP.clientChallenge);
  assert.deepEqual(cc.AvPairs, [avString(AvId.MsvAvNbDomainName, 'Domain'), avString(AvId.MsvAvNbComputerName, 'Server')]);
  assert.deepEqual(encodeNtlmV2ClientChallenge(cc), a.NtChallengeResponse.subarray(16));
  assertTruncationsTyped(decodeAuthenticateMessage, NLMP.authenticate, 'AUTHENTICATE');
});

test('MS-NLMP 4.2.4.4: signing and sealing keys, GSS_WrapEx output and its signature', () => {
  assert.deepEqual(signKey(NLMP.randomSessionKey, 'client'), NLMP.signKey);
  assert.deepEqual(sealKey(NLMP.randomSessionKey, NLMP.challengeFlags, 'client'), NLMP.sealKey);
  const client = new NtlmSessionSecurity(NLMP.randomSessionKey, NLMP.challengeFlags, 'client');
  const { sealed, signature } = client.seal(NLMP.plaintext);
  assert.equal(sealed.toString('hex'), NLMP.sealed.toString('hex'));
  assert.equal(signature.toString('hex'), NLMP.signature.toString('hex'));
  const server = new NtlmSessionSecurity(NLMP.randomSessionKey, NLMP.challengeFlags, 'server');
  assert.deepEqual(server.unseal(sealed, signature), NLMP.plaintext);
});

test('a Windows 10 exchange (Microsoft blog): NEGOTIATE, CHALLENGE and AUTHENTICATE with its MIC', () => {
  const negotiate = ntlmToken(BLOG.sessionSetupRequest1, 40);
  const challenge = ntlmToken(BLOG.sessionSetupResponse1, 148);
  const authenticate = ntlmToken(BLOG.sessionSetupRequest2, 422);
  const n = decodeNegotiateMessage(negotiate);
  assert.equal(n.NegotiateFlags, 0xe2088297);
  assert.deepEqual(n.Version, { ProductMajorVersion: 6, ProductMinorVersion: 3, ProductBuild: 9600, NTLMRevisionCurrent: 15 });
  const c = assertRoundTrip(decodeChallengeMessage, encodeChallengeMessage, challenge, 'CHALLENGE');
  assert.equal(c.NegotiateFlags, 0xe28a8215);
  assert.equal(c.ServerChallenge.toString('hex'), '0d1d8ba31179d008');
  const a = assertRoundTrip(decodeAuthenticateMessage, encodeAuthenticateMessage, authenticate, 'AUTHENTICATE');
  assert.equal(a.UserName, 'administrator');
  assert.equal(a.Workstation, 'DRIVER311');
  assert.equal(a.MIC?.toString('hex'), 'ecac77a5f385a8bf9c38c706eeeddcd3');
  const cc = decodeNtlmV2ClientChallenge(a.NtChallengeResponse.subarray(16));
  assert.equal(avFlags(cc.AvPairs), 2, 'MsvAvFlags announces the MIC');
  assert.equal(cc.ChallengeFromClient.toString('hex'), 'bc4ad05f223cc90f');

  const responseKey = ntowfV2(BLOG.ntHash, a.UserName, a.DomainName);
  assert.deepEqual(responseKey, BLOG.ntowfV2);
  const proof = ntProofStr(responseKey, c.ServerChallenge, a.NtChallengeResponse.subarray(16));
  assert.deepEqual(proof, a.NtChallengeResponse.subarray(0, 16));
  const kxkey = sessionBaseKeyV2(responseKey, proof);
  assert.deepEqual(kxkey, BLOG.keyExchangeKey);
  const exported = rc4(kxkey, a.EncryptedRandomSessionKey);
  assert.deepEqual(exported, BLOG.sessionKey);
  assert.deepEqual(computeMic(exported, negotiate, challenge, withZeroMic(authenticate)), a.MIC);
  assert.deepEqual(signKey(exported, 'server'), BLOG.serverSigningKey);
  assert.deepEqual(signKey(exported, 'client'), BLOG.clientSigningKey);
  assert.deepEqual(sealKey(exported, a.NegotiateFlags, 'server'), BLOG.serverSealingKey);
  assert.deepEqual(sealKey(exported, a.NegotiateFlags, 'client'), BLOG.clientSealingKey);
});

test('NEGOTIATE round-trips with and without VERSION; a 32-byte one has none', () => {
  const withVersion = encodeNegotiateMessage({
    NegotiateFlags: F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_VERSION | F.NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED,
    DomainName: Buffer.from('DOM'),
    Workstation: Buffer.from('WS'),
    Version: { ProductMajorVersion: 10, ProductMinorVersion: 0, ProductBuild: 19041, NTLMRevisionCurrent: 15 },
  });
  const m = assertRoundTrip(decodeNegotiateMessage, encodeNegotiateMessage, withVersion, 'NEGOTIATE');
  assert.equal(m.DomainName.toString(), 'DOM');
  assert.equal(m.Workstation.toString(), 'WS');
  assert.equal(withVersion.readUInt32LE(20), 40, 'DomainName right after the Version');
  // impacket's NEGOTIATE: 32 bytes, no VERSION (tests/SMB_RPC/test_ntlm.py).
  const short = hex('4e544c4d5353500001000000318200600000000000000000000000000000000000');
  assert.equal(decodeNegotiateMessage(short.subarray(0, 32)).Version, undefined);
  assertTruncationsTyped(decodeNegotiateMessage, withVersion, 'NEGOTIATE');
});

test('NTLM decoders refuse bad signatures, message types and offsets with typed errors', () => {
  const wrongSig = Buffer.from(NLMP.challenge);
  wrongSig[0] = 0x4d;
  assert.throws(() => decodeChallengeMessage(wrongSig), { name: 'WireError', code: 'DSR_AUTH_BAD_TOKEN' });
  assert.throws(() => decodeAuthenticateMessage(NLMP.challenge), /MessageType is 2, expected 3/);
  const outside = Buffer.from(NLMP.challenge);
  outside.writeUInt32LE(0x1000, 44);
  assert.throws(() => decodeChallengeMessage(outside), { name: 'WireError', code: 'DSR_WIRE_BAD_OFFSET' });
  const intoFixed = Buffer.from(NLMP.authenticate);
  intoFixed.writeUInt32LE(8, 16);
  assert.throws(() => decodeAuthenticateMessage(intoFixed), { code: 'DSR_WIRE_BAD_OFFSET' });
  const oddName = Buffer.from(NLMP.authenticate);
  oddName.writeUInt16LE(7, 36);
  assert.throws(() => decodeAuthenticateMessage(oddName), /UTF-16 string of odd length/);
});

test('AUTHENTICATE with a MIC round-trips and withZeroMic clears exactly the MIC', () => {
  const m: AuthenticateMessage = {
    NegotiateFlags: F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_KEY_EXCH,
    LmChallengeResponse: Buffer.alloc(24),
    NtChallengeResponse: Buffer.alloc(60, 7),
    DomainName: 'Dömain',
    UserName: 'üser',
    Workstation: 'WS',
    EncryptedRandomSessionKey: Buffer.alloc(16, 9),
    MIC: Buffer.alloc(16, 0xee),
  };
  const bytes = encodeAuthenticateMessage(m);
  const back = assertRoundTrip(decodeAuthenticateMessage, encodeAuthenticateMessage, bytes, 'AUTHENTICATE');
  assert.equal(back.DomainName, 'Dömain');
  assert.deepEqual(back.Version, { ProductMajorVersion: 0, ProductMinorVersion: 0, ProductBuild: 0, NTLMRevisionCurrent: 0 });
  const zero = withZeroMic(bytes);
  assert.deepEqual(zero.subarray(MIC_OFFSET, MIC_OFFSET + 16), Buffer.alloc(16));
  const withoutMic = (b: Buffer) => Buffer.concat([b.subarray(0, MIC_OFFSET), b.subarray(MIC_OFFSET + 16)]);
  assert.deepEqual(withoutMic(zero), withoutMic(bytes));
  // Without UNICODE the strings are OEM bytes.
  const oem = encodeAuthenticateMessage({ ...m, NegotiateFlags: 0, MIC: undefined, DomainName: 'D', UserName: 'u', Workstation: '' });
  assert.equal(decodeAuthenticateMessage(oem).UserName, 'u');
  assert.equal(oem.readUInt16LE(36), 1);
});

test('AV_PAIR lists: encode/decode, EOL required, helpers, flags of the wrong size refused', () => {
  const pairs = [avString(AvId.MsvAvNbComputerName, 'DSR'), avU32(AvId.MsvAvFlags, 2), avTimestamp(fileTime(Date.UTC(2015, 5, 24)))];
  const bytes = encodeAvPairs(pairs);
  assert.deepEqual(decodeAvPairs(bytes), pairs);
  assert.deepEqual(decodeAvPairs(Buffer.concat([bytes, Buffer.alloc(8, 0xff)])), pairs, 'bytes after EOL are ignored');
  assert.throws(() => decodeAvPairs(bytes.subarray(0, bytes.length - 4)), { name: 'WireError', code: 'DSR_WIRE_TRUNCATED' });
  assert.equal(avFlags(pairs), 2);
  assert.equal(avFlags([]), 0);
  assert.throws(() => avFlags([{ AvId: AvId.MsvAvFlags, Value: Buffer.alloc(2) }]), { code: 'DSR_AUTH_BAD_TOKEN' });
  // The blog's MsvAvTimestamp A1A1F5ADCBAED001 is "06/24/2015, 22:18:21.389456 UTC" (and 100 ns more).
  assert.equal(0x01d0aecbadf5a1a1n - fileTime(Date.UTC(2015, 5, 24, 22, 18, 21, 389)), 4561n);
});

test('NTLMv2_CLIENT_CHALLENGE refuses response types other than 1/1', () => {
  const cc = encodeNtlmV2ClientChallenge({
    RespType: 1,
    HiRespType: 1,
    TimeStamp: 5n,
    ChallengeFromClient: Buffer.alloc(8),
    AvPairs: [],
    Trailer: Buffer.alloc(4),
  });
  const v2 = Buffer.from(cc);
  v2[0] = 2;
  assert.throws(() => decodeNtlmV2ClientChallenge(v2), /RespType 2\/1/);
  assertTruncationsTyped(decodeNtlmV2ClientChallenge, cc, 'client challenge');
});

test('NTLMSSP_MESSAGE_SIGNATURE round-trips and must be 16 bytes', () => {
  const s = { Version: 1, Checksum: hex('7fb38ec5c55d4976'), SeqNum: 7 };
  assert.deepEqual(decodeMessageSignature(encodeMessageSignature(s)), s);
  assert.throws(() => decodeMessageSignature(Buffer.alloc(15)), { code: 'DSR_AUTH_BAD_TOKEN' });
});

test('session security: each side verifies what the other signs, in sequence, and nothing else', () => {
  const key = Buffer.alloc(16, 0x42);
  const flags =
    F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | F.NTLMSSP_NEGOTIATE_KEY_EXCH | F.NTLMSSP_NEGOTIATE_128 | F.NTLMSSP_NEGOTIATE_SIGN;
  for (const f of [flags, flags & ~F.NTLMSSP_NEGOTIATE_KEY_EXCH]) {
    const client = new NtlmSessionSecurity(key, f, 'client');
    const server = new NtlmSessionSecurity(key, f, 'server');
    for (let i = 0; i < 3; i++) {
      const msg = Buffer.from(`message ${i}`);
      const sig = client.sign(msg);
      assert.equal(sig.readUInt32LE(12), i, 'SeqNum counts up');
      assert.equal(server.verify(msg, sig), true);
      assert.equal(client.verify(msg, server.sign(msg)), true);
    }
    const msg = Buffer.from('tampered');
    const sig = client.sign(msg);
    assert.equal(server.verify(Buffer.from('Tampered'), sig), false);
    // Replaying the same signature later fails: the sequence number moved on.
    assert.equal(server.verify(msg, sig), false);
    assert.equal(server.verify(msg, Buffer.alloc(8)), false);
  }
});

test('upcaseNt keeps the length of every name (no "SS" for the sharp s)', () => {
  assert.equal(upcaseNt('administrator'), 'ADMINISTRATOR');
  assert.equal(upcaseNt('straße'), 'STRAßE');
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => assert.equal(upcaseNt(s).length, s.length)));
});
