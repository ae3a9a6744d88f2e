import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthError } from '../../../src/control/errors.js';
import { NtlmClient } from '../../../src/control/auth/ntlm-client.js';
import { acceptAuthenticate, NtlmServer, type CredentialLookup, type NtlmServerOptions } from '../../../src/control/auth/ntlm-server.js';
import {
  AvId,
  decodeAuthenticateMessage,
  decodeAvPairs,
  decodeChallengeMessage,
  encodeAuthenticateMessage,
  encodeNegotiateMessage,
  findAvPair,
  MIC_OFFSET,
  NegotiateFlags as F,
  type AuthenticateMessage,
} from '../../../src/control/auth/ntlm.js';
import { NtStatus } from '../../../src/control/wire/ntstatus.js';
import { ntOwfV1 } from '../../../src/control/tables/credentials.js';
import { pythonWith, runPython } from './python.js';
import { BLOG, NLMP, ntlmToken } from './vectors.js';
import { fileTime } from '../../../src/control/filetime.js';

const NOW = Date.UTC(2024, 0, 2, 3, 4, 5);
const OPTIONS: NtlmServerOptions = {
  netbiosDomain: 'DSR',
  netbiosComputer: 'DSR1',
  dnsDomain: 'dsr.example',
  dnsComputer: 'dsr1.dsr.example',
  allowGuest: false,
  now: () => NOW,
  random: (n) => Buffer.alloc(n, 0x11),
};

function table(users: Record<string, string>): CredentialLookup {
  const entries = Object.entries(users).map(([name, password]) => ({ name, ntHash: ntOwfV1(password) }));
  return { lookup: (name) => entries.find((u) => u.name.toLowerCase() === name.toLowerCase()) };
}
const CREDS = table({ Alice: 'correct horse', bob: 'hunter2' });

function negotiateWith(flags: number): Buffer {
  return encodeNegotiateMessage({ NegotiateFlags: flags, DomainName: Buffer.alloc(0), Workstation: Buffer.alloc(0) });
}

function logon(user: string, password: string, options: Partial<NtlmServerOptions> = {}, creds = CREDS) {
  const server = new NtlmServer({ ...OPTIONS, ...options });
  const client = new NtlmClient({ user, domain: 'DSR', workstation: 'WS1', ntHash: ntOwfV1(password) });
  const challenge = server.challenge(client.negotiate());
  const { token, sessionKey } = client.authenticate(challenge);
  return { server, client, challenge, token, clientKey: sessionKey, run: () => server.authenticate(token, creds) };
}

/** Asserts an AuthError with this code and status whose message matches, and that no secret leaked into it. */
function assertAuthError(fn: () => unknown, code: string, status: number, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AuthError, `expected AuthError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.status, status);
    assert.match(e.message, message);
    for (const secret of ['correct horse', 'hunter2', ntOwfV1('correct horse').toString('hex'), ntOwfV1('hunter2').toString('hex')]) {
      assert.ok(!e.message.includes(secret), 'no secret in the message');
    }
    return true;
  });
}
function assertFailed(fn: () => unknown, message: RegExp): void {
  assertAuthError(fn, 'DSR_AUTH_FAILED', NtStatus.STATUS_LOGON_FAILURE, message);
}
function assertBadToken(fn: () => unknown, message: RegExp): void {
  assertAuthError(fn, 'DSR_AUTH_BAD_TOKEN', NtStatus.STATUS_INVALID_PARAMETER, message);
}

test('MS-NLMP 4.2.4.3: the specification exchange is accepted and yields the random session key', () => {
  const x = { negotiate: Buffer.alloc(0), challenge: NLMP.challenge, authenticate: NLMP.authenticate };
  const r = acceptAuthenticate(x, table({ user: NLMP.password }), false);
  assert.deepEqual(r, {
    user: 'user',
    domain: 'Domain',
    workstation: 'COMPUTER',
    kind: 'user',
    sessionKey: NLMP.randomSessionKey,
    negotiateFlags: 0xe2888235,
  });
});

test('a Windows 10 logon (Microsoft blog) is accepted, MIC included; any tampering is refused', () => {
  const x = {
    negotiate: ntlmToken(BLOG.sessionSetupRequest1, 40),
    challenge: ntlmToken(BLOG.sessionSetupResponse1, 148),
    authenticate: ntlmToken(BLOG.sessionSetupRequest2, 422),
  };
  const creds = table({ Administrator: BLOG.password });
  const r = acceptAuthenticate(x, creds, false);
  assert.equal(r.kind, 'user');
  assert.equal(r.user, 'Administrator');
  assert.equal(r.domain, 'SUT311');
  assert.deepEqual(r.sessionKey, BLOG.sessionKey);

  const badMic = Buffer.from(x.authenticate);
  badMic[MIC_OFFSET]! ^= 1;
  assertFailed(() => acceptAuthenticate({ ...x, authenticate: badMic }, creds, false), /bad MIC/);
  // The MIC covers the NEGOTIATE too: a downgraded NEGOTIATE (no KEY_EXCH) is caught.
  const negotiate = Buffer.from(x.negotiate);
  negotiate[15]! &= ~0x40;
  assertFailed(() => acceptAuthenticate({ ...x, negotiate }, creds, false), /bad MIC/);
  assertFailed(() => acceptAuthenticate(x, table({ Administrator: 'Password01' }), false), /NTProofStr/);
});

test('the CHALLENGE echoes the client flags it supports and carries names, timestamp and version', () => {
  const server = new NtlmServer(OPTIONS);
  const c = decodeChallengeMessage(server.challenge(ntlmToken(BLOG.sessionSetupRequest1, 40)));
  const want = [
    F.NTLMSSP_NEGOTIATE_UNICODE,
    F.NTLMSSP_REQUEST_TARGET,
    F.NTLMSSP_NEGOTIATE_SIGN,
    F.NTLMSSP_NEGOTIATE_NTLM,
    F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN,
    F.NTLMSSP_TARGET_TYPE_DOMAIN,
    F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY,
    F.NTLMSSP_NEGOTIATE_TARGET_INFO,
    F.NTLMSSP_NEGOTIATE_VERSION,
    F.NTLMSSP_NEGOTIATE_128,
    F.NTLMSSP_NEGOTIATE_KEY_EXCH,
    F.NTLMSSP_NEGOTIATE_56,
  ].reduce((a: number, b) => a | b, 0);
  // Windows offered 0xe2088297: OEM and LM_KEY are dropped, TARGET_INFO and the target type added.
  assert.equal((c.NegotiateFlags >>> 0).toString(16), (want >>> 0).toString(16));
  assert.equal(c.TargetName, 'DSR');
  assert.deepEqual(c.ServerChallenge, Buffer.alloc(8, 0x11));
  assert.ok(c.Version);
  const pairs = decodeAvPairs(c.TargetInfo);
  assert.deepEqual(
    pairs.map((p) => p.AvId),
    [AvId.MsvAvNbDomainName, AvId.MsvAvNbComputerName, AvId.MsvAvDnsDomainName, AvId.MsvAvDnsComputerName, AvId.MsvAvTimestamp],
  );
  assert.equal(findAvPair(pairs, AvId.MsvAvDnsComputerName)?.toString('utf16le'), 'dsr1.dsr.example');
  assert.equal(findAvPair(pairs, AvId.MsvAvTimestamp)?.readBigUInt64LE(0), fileTime(NOW));

  // A minimal client gets a minimal CHALLENGE; a server named like its domain is TARGET_TYPE_SERVER.
  const plain = new NtlmServer({ ...OPTIONS, netbiosDomain: 'dsr1', dnsDomain: '', dnsComputer: '' });
  const p = decodeChallengeMessage(plain.challenge(negotiateWith(F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_NTLM)));
  const minimal = F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_NTLM | F.NTLMSSP_NEGOTIATE_TARGET_INFO | F.NTLMSSP_TARGET_TYPE_SERVER;
  assert.equal(p.NegotiateFlags, minimal);
  assert.equal(p.TargetName, 'DSR1');
  assert.equal(p.Version, undefined);
  assert.equal(decodeAvPairs(p.TargetInfo).length, 3);
});

test('a client without Unicode, a malformed NEGOTIATE and out-of-order calls are refused', () => {
  const oem = negotiateWith(F.NTLM_NEGOTIATE_OEM | F.NTLMSSP_NEGOTIATE_NTLM);
  assertAuthError(() => new NtlmServer(OPTIONS).challenge(oem), 'DSR_AUTH_FAILED', NtStatus.STATUS_NOT_SUPPORTED, /Unicode/);
  assertBadToken(() => new NtlmServer(OPTIONS).challenge(Buffer.from('NTLMSSP\0\x01')), /malformed NTLM NEGOTIATE/);
  assertBadToken(() => new NtlmServer(OPTIONS).authenticate(NLMP.authenticate, CREDS), /before any CHALLENGE/);
  const { server, client, run } = logon('alice', 'correct horse');
  assertBadToken(() => server.challenge(client.negotiate()), /second NTLM NEGOTIATE/);
  run();
  assertBadToken(run, /second NTLM AUTHENTICATE/);
});

test('NtlmClient logs on: same ExportedSessionKey both sides, canonical user name, signatures both ways', () => {
  const { server, client, clientKey, run } = logon('ALICE', 'correct horse');
  const r = run();
  assert.equal(r.kind, 'user');
  assert.equal(r.user, 'Alice');
  assert.equal(r.domain, 'DSR');
  assert.equal(r.workstation, 'WS1');
  assert.deepEqual(r.sessionKey, clientKey);
  assert.equal(r.negotiateFlags, client.negotiateFlags);
  assert.ok(server.canSign);
  const msg = Buffer.from('mechTypes');
  assert.equal(server.verify(msg, client.sign(msg)), true);
  assert.equal(client.verify(msg, server.sign(msg)), true);
  assert.equal(server.verify(msg, client.sign(Buffer.from('other'))), false);
});

test('wrong password, unknown user, NTLMv1 and LM-only responses fail with STATUS_LOGON_FAILURE', () => {
  assertFailed(logon('bob', 'hunter3').run, /"DSR\\\\bob" refused: bad NTProofStr/);
  assertFailed(logon('carol', 'x').run, /unknown user/);
  const { server, token } = logon('bob', 'hunter2');
  const v1 = encodeAuthenticateMessage({
    NegotiateFlags: F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_NTLM,
    LmChallengeResponse: Buffer.alloc(24, 1),
    NtChallengeResponse: Buffer.alloc(24, 2),
    DomainName: 'DSR',
    UserName: 'bob',
    Workstation: 'WS1',
    EncryptedRandomSessionKey: Buffer.alloc(0),
  });
  assertFailed(() => server.authenticate(v1, CREDS), /NTLMv1 refused/);
  const lmOnly = logon('bob', 'hunter2');
  const edited = (changes: Partial<AuthenticateMessage>) =>
    encodeAuthenticateMessage({ ...decodeAuthenticateMessage(token), MIC: undefined, ...changes });
  const lm = edited({ NtChallengeResponse: Buffer.alloc(0), LmChallengeResponse: Buffer.alloc(24, 1) });
  assertFailed(() => lmOnly.server.authenticate(lm, CREDS), /LM-only/);
  const short = logon('bob', 'hunter2');
  const truncated = edited({ NtChallengeResponse: Buffer.alloc(30) });
  assertBadToken(() => short.server.authenticate(truncated, CREDS), /neither NTLMv1 nor NTLMv2/);
});

test('anonymous and unknown users are accepted only with allowGuest, with a zero key and no signing', () => {
  const anon = (allowGuest: boolean) => {
    const server = new NtlmServer({ ...OPTIONS, allowGuest });
    const challenge = server.challenge(new NtlmClient({ user: '', domain: '', workstation: 'WS1', ntHash: Buffer.alloc(16) }).negotiate());
    assert.ok(challenge.length > 0);
    const token = encodeAuthenticateMessage({
      NegotiateFlags: F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_ANONYMOUS,
      LmChallengeResponse: Buffer.alloc(1),
      NtChallengeResponse: Buffer.alloc(0),
      DomainName: '',
      UserName: '',
      Workstation: 'WS1',
      EncryptedRandomSessionKey: Buffer.alloc(0),
    });
    return { server, run: () => server.authenticate(token, CREDS) };
  };
  assertFailed(anon(false).run, /anonymous logon is not allowed/);
  const a = anon(true);
  const r = a.run();
  assert.equal(r.kind, 'anonymous');
  assert.equal(r.user, '');
  assert.deepEqual(r.sessionKey, Buffer.alloc(16));
  assert.equal(a.server.canSign, false);
  assertAuthError(() => a.server.sign(Buffer.alloc(1)), 'DSR_AUTH_FAILED', NtStatus.STATUS_ACCESS_DENIED, /no NTLM session security/);

  const guest = logon('carol', 'whatever', { allowGuest: true });
  const g = guest.run();
  assert.equal(g.kind, 'guest');
  assert.equal(g.user, 'carol');
  assert.deepEqual(g.sessionKey, Buffer.alloc(16));
  assert.equal(guest.server.canSign, false);
  // A known user with a wrong password is never turned into a guest.
  assertFailed(logon('bob', 'nope', { allowGuest: true }).run, /NTProofStr/);
});

test('a UPN user name finds the account; NTOWFv2 still uses the name as sent', () => {
  const r = logon('bob@dsr.example', 'hunter2').run();
  assert.equal(r.kind, 'user');
  assert.equal(r.user, 'bob');
});

const IMPACKET = pythonWith('impacket.ntlm');
const IMPACKET_CLIENT = `
import sys
from impacket import ntlm
if sys.argv[1] == 'type1':
    print(ntlm.getNTLMSSPType1('WS', '', signingRequired=True, use_ntlmv2=True).getData().hex())
else:
    t1 = ntlm.NTLMAuthNegotiate(); t1.fromString(bytes.fromhex(sys.argv[2]))
    t3, key = ntlm.getNTLMSSPType3(t1, bytes.fromhex(sys.argv[3]), sys.argv[4], sys.argv[5], 'DSR', use_ntlmv2=sys.argv[6] == '1')
    print(t3.getData().hex(), key.hex())
`;

const impacketSkip = { skip: !IMPACKET && 'no python3 with impacket' };

test('impacket as the client: NTLMv2 logs on with the same key; NTLMv1 and bad passwords are refused; anonymous', impacketSkip, () => {
  const py = IMPACKET!;
  const attempt = (user: string, password: string, v2: boolean, allowGuest = false) => {
    const server = new NtlmServer({ ...OPTIONS, allowGuest });
    const type1 = runPython(py, IMPACKET_CLIENT, ['type1']).trim();
    const type2 = server.challenge(Buffer.from(type1, 'hex')).toString('hex');
    const [type3, key] = runPython(py, IMPACKET_CLIENT, ['type3', type1, type2, user, password, v2 ? '1' : '0']).trim().split(' ');
    return { key: key!, run: () => server.authenticate(Buffer.from(type3!, 'hex'), CREDS) };
  };
  const ok = attempt('alice', 'correct horse', true);
  const r = ok.run();
  assert.equal(r.user, 'Alice');
  assert.equal(r.sessionKey.toString('hex'), ok.key);
  assertFailed(attempt('alice', 'correct horse', false).run, /NTLMv1 refused/);
  assertFailed(attempt('alice', 'wrong', true).run, /NTProofStr/);
  assert.equal(attempt('', '', true, true).run().kind, 'anonymous');
});
