import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthError } from '../../../src/control/errors.js';
import { NTLM_CLIENT_FLAGS, NtlmClient } from '../../../src/control/auth/ntlm-client.js';
import {
  AvId,
  avFlags,
  avString,
  decodeAuthenticateMessage,
  decodeChallengeMessage,
  decodeNegotiateMessage,
  decodeNtlmV2ClientChallenge,
  encodeChallengeMessage,
  findAvPair,
  NegotiateFlags as F,
} from '../../../src/control/auth/ntlm.js';
import { ntOwfV1 } from '../../../src/control/tables/credentials.js';
import { pythonWith, runPython } from './python.js';
import { NLMP } from './vectors.js';
import { fileTime } from '../../../src/control/filetime.js';

/** A client with pinned randomness: client challenge aa.., then the random session key 55.. (as in MS-NLMP 4.2). */
function specClient(now = 0) {
  const random = [NLMP.clientChallenge, NLMP.randomSessionKey];
  return new NtlmClient({
    user: NLMP.user,
    domain: NLMP.domain,
    workstation: NLMP.workstation,
    ntHash: NLMP.ntowfV1,
    random: () => random.shift()!,
    now: () => now,
  });
}

test('NEGOTIATE offers NTLMv2 essentials: Unicode, NTLM, extended session security, key exchange, signing, version', () => {
  const n = decodeNegotiateMessage(new NtlmClient({ user: 'u', domain: 'd', workstation: 'w', ntHash: Buffer.alloc(16) }).negotiate());
  assert.equal(n.NegotiateFlags, NTLM_CLIENT_FLAGS);
  const essentials = [
    F.NTLMSSP_NEGOTIATE_UNICODE,
    F.NTLMSSP_NEGOTIATE_NTLM,
    F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY,
    F.NTLMSSP_NEGOTIATE_KEY_EXCH,
    F.NTLMSSP_NEGOTIATE_SIGN,
    F.NTLMSSP_NEGOTIATE_128,
  ];
  for (const f of essentials) {
    assert.ok(n.NegotiateFlags & f, `flag 0x${f.toString(16)}`);
  }
  assert.equal(n.NegotiateFlags & F.NTLMSSP_NEGOTIATE_LM_KEY, 0);
  assert.ok(n.Version);
});

test('answering the MS-NLMP 4.2.4.3 CHALLENGE: LMv2 as in 4.2.4.2.1, key exchange, a MIC announced in MsvAvFlags', () => {
  const client = specClient(-11644473600000); // FILETIME 0, the spec's Time
  client.negotiate();
  const { token, sessionKey } = client.authenticate(NLMP.challenge);
  assert.deepEqual(sessionKey, NLMP.randomSessionKey);
  const a = decodeAuthenticateMessage(token);
  // No MsvAvTimestamp from the server, so the LM response is LMv2 (MS-NLMP 3.1.5.1.2).
  assert.deepEqual(a.LmChallengeResponse, NLMP.lmV2Response);
  assert.equal(a.UserName, 'User');
  assert.equal(a.NegotiateFlags, (NLMP.challengeFlags & NTLM_CLIENT_FLAGS) >>> 0);
  const cc = decodeNtlmV2ClientChallenge(a.NtChallengeResponse.subarray(16));
  assert.equal(cc.TimeStamp, 0n);
  assert.deepEqual(cc.ChallengeFromClient, NLMP.clientChallenge);
  assert.deepEqual(cc.AvPairs.slice(0, 2), [avString(AvId.MsvAvNbDomainName, 'Domain'), avString(AvId.MsvAvNbComputerName, 'Server')]);
  assert.equal(avFlags(cc.AvPairs), 2);
  assert.ok(a.MIC && !a.MIC.equals(Buffer.alloc(16)));
  assert.equal(client.canSign, true);
});

test('with a server timestamp the client echoes it and sends Z(24) as the LM response', () => {
  const c = decodeChallengeMessage(NLMP.challenge);
  const stamp = fileTime(Date.UTC(2024, 1, 3));
  const info = Buffer.concat([c.TargetInfo.subarray(0, -4), Buffer.from([7, 0, 8, 0]), Buffer.alloc(8), Buffer.alloc(4)]);
  info.writeBigUInt64LE(stamp, c.TargetInfo.length);
  const client = specClient(Date.UTC(1999, 0, 1));
  client.negotiate();
  const a = decodeAuthenticateMessage(client.authenticate(encodeChallengeMessage({ ...c, TargetInfo: info })).token);
  assert.deepEqual(a.LmChallengeResponse, Buffer.alloc(24));
  const cc = decodeNtlmV2ClientChallenge(a.NtChallengeResponse.subarray(16));
  assert.equal(cc.TimeStamp, stamp);
  assert.equal(findAvPair(cc.AvPairs, AvId.MsvAvTimestamp)?.readBigUInt64LE(0), stamp);
});

test('a server without key exchange or extended session security narrows what the client does', () => {
  const c = decodeChallengeMessage(NLMP.challenge);
  const client = specClient();
  client.negotiate();
  const flags = F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_NTLM | F.NTLMSSP_NEGOTIATE_SIGN;
  const { token, sessionKey } = client.authenticate(encodeChallengeMessage({ ...c, NegotiateFlags: flags }));
  const a = decodeAuthenticateMessage(token);
  assert.equal(a.NegotiateFlags, flags);
  assert.equal(a.EncryptedRandomSessionKey.length, 0);
  assert.notDeepEqual(sessionKey, NLMP.randomSessionKey, 'without KEY_EXCH the key is the KeyExchangeKey');
  assert.equal(client.canSign, false);
});

test('out-of-order calls, a malformed CHALLENGE and a server without Unicode are AuthErrors', () => {
  const client = specClient();
  assert.throws(() => client.authenticate(NLMP.challenge), (e) => e instanceof AuthError && /out of sequence/.test(e.message));
  client.negotiate();
  const truncated = NLMP.challenge.subarray(0, 30);
  assert.throws(() => client.authenticate(truncated), (e) => e instanceof AuthError && e.code === 'DSR_AUTH_BAD_TOKEN');
  const oem = encodeChallengeMessage({ ...decodeChallengeMessage(NLMP.challenge), NegotiateFlags: F.NTLM_NEGOTIATE_OEM });
  assert.throws(() => client.authenticate(oem), (e) => e instanceof AuthError && /Unicode/.test(e.message));
  const ok = specClient();
  ok.negotiate();
  ok.authenticate(NLMP.challenge);
  assert.throws(() => ok.authenticate(NLMP.challenge), /out of sequence/);
});

const IMPACKET = pythonWith('impacket.ntlm', 'Cryptodome.Cipher.ARC4');
// impacket parses our AUTHENTICATE and recomputes NTProofStr, the session key and the MIC with its own code.
const IMPACKET_VERIFY = `
import sys, hmac, hashlib
from impacket import ntlm
from Cryptodome.Cipher import ARC4
neg, chal, auth = (bytes.fromhex(x) for x in sys.argv[1:4])
user, password, domain = sys.argv[4:7]
c = ntlm.NTLMAuthChallenge(chal)
a = ntlm.NTLMAuthChallengeResponse()
a.fromString(auth)
nt = a['ntlm']
key = ntlm.NTOWFv2(a['user_name'].decode('utf-16le'), password, a['domain_name'].decode('utf-16le'))
proof = hmac.new(key, c['challenge'] + nt[16:], hashlib.md5).digest()
assert proof == nt[:16], 'NTProofStr'
base = hmac.new(key, proof, hashlib.md5).digest()
exported = ARC4.new(base).decrypt(a['session_key'])
zeroed = auth[:72] + bytes(16) + auth[88:]
assert hmac.new(exported, neg + chal + zeroed, hashlib.md5).digest() == auth[72:88], 'MIC'
print(a['user_name'].decode('utf-16le'), exported.hex())
`;

const impacketSkip = { skip: !IMPACKET && 'no python3 with impacket' };

test('impacket verifies the AUTHENTICATE: NTProofStr, ExportedSessionKey and MIC', impacketSkip, () => {
  const client = new NtlmClient({ user: 'Zoë', domain: 'DSR', workstation: 'WS', ntHash: ntOwfV1('pässword') });
  const negotiate = client.negotiate();
  const { token, sessionKey } = client.authenticate(NLMP.challenge);
  const tokens = [negotiate, NLMP.challenge, token].map((t) => t.toString('hex'));
  const out = runPython(IMPACKET!, IMPACKET_VERIFY, [...tokens, 'Zoë', 'pässword', 'DSR']);
  assert.equal(out.trim(), `Zoë ${sessionKey.toString('hex')}`);
});
