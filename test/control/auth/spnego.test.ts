import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthError } from '../../../src/control/errors.js';
import { NtlmClient } from '../../../src/control/auth/ntlm-client.js';
import type { CredentialLookup, NtlmServerOptions } from '../../../src/control/auth/ntlm-server.js';
import { NegotiateFlags as F, NtlmSessionSecurity } from '../../../src/control/auth/ntlm.js';
import {
  decodeSpnegoToken,
  encodeMechTypes,
  encodeNegTokenInit,
  encodeNegTokenResp,
  KRB5_OID,
  MS_KRB5_OID,
  NEGOEX_OID,
  NegState,
  NTLMSSP_OID,
  SpnegoClient,
  SpnegoServer,
  spnegoNegotiateToken,
  type NegTokenResp,
} from '../../../src/control/auth/spnego.js';
import { NtStatus } from '../../../src/control/wire/ntstatus.js';
import { ntOwfV1 } from '../../../src/control/tables/credentials.js';
import { PythonSession, pythonWith } from './python.js';
import { BLOG, hex, securityBuffer } from './vectors.js';

const OPTIONS: NtlmServerOptions = {
  netbiosDomain: 'DSR',
  netbiosComputer: 'DSR1',
  dnsDomain: 'dsr.example',
  dnsComputer: 'dsr1.dsr.example',
  allowGuest: false,
};
const CREDS: CredentialLookup = { lookup: (n) => (n.toLowerCase() === 'alice' ? { name: 'alice', ntHash: ntOwfV1('s3cret') } : undefined) };
const alice = (password = 's3cret') => ({ user: 'alice', domain: 'DSR', workstation: 'WS1', ntHash: ntOwfV1(password) });

function resp(token: Buffer): NegTokenResp {
  const t = decodeSpnegoToken(token);
  assert.equal(t.kind, 'resp');
  return t.resp;
}

function assertAuthError(fn: () => unknown, code: string, status: number, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof AuthError && e.code === code && e.status === status && message.test(e.message));
}
function assertFailed(fn: () => unknown, message: RegExp): void {
  assertAuthError(fn, 'DSR_AUTH_FAILED', NtStatus.STATUS_LOGON_FAILURE, message);
}
function assertBadToken(fn: () => unknown, message: RegExp): void {
  assertAuthError(fn, 'DSR_AUTH_BAD_TOKEN', NtStatus.STATUS_INVALID_PARAMETER, message);
}
const SESSION_SETUP = [BLOG.sessionSetupRequest1, BLOG.sessionSetupResponse1, BLOG.sessionSetupRequest2, BLOG.sessionSetupResponse2];

test('the NEGOTIATE response token is NegTokenInit2 offering NTLMSSP with the customary hint', () => {
  // GSS wrapper (60 48, SPNEGO OID), [0] NegTokenInit2 { [0] mechTypes { NTLMSSP },
  // [3] negHints { [0] hintName GeneralString "not_defined_in_RFC4178@please_ignore" } }.
  const want = hex(
    '6048 06062b0601050502 a03e 303c',
    'a00e 300c 060a2b06010401823702020a',
    'a32a 3028 a026 1b24 6e6f745f646566696e65645f696e5f5246433431373840706c656173655f69676e6f7265',
  );
  assert.equal(spnegoNegotiateToken().toString('hex'), want.toString('hex'));
  const t = decodeSpnegoToken(want);
  assert.equal(t.kind, 'init');
  assert.deepEqual(t.init.mechTypes, [NTLMSSP_OID]);
  assert.equal(t.init.negHints?.hintName, 'not_defined_in_RFC4178@please_ignore');
});

test('the Windows 10 SPNEGO tokens of the Microsoft blog decode and re-encode byte for byte', () => {
  const tokens = SESSION_SETUP.map(securityBuffer);
  const [init, r1, r2, r3] = tokens.map(decodeSpnegoToken);
  assert.equal(init?.kind, 'init');
  if (init?.kind !== 'init' || r1?.kind !== 'resp' || r2?.kind !== 'resp' || r3?.kind !== 'resp') return;
  assert.deepEqual(init.init.mechTypes, [NTLMSSP_OID]);
  assert.equal(init.init.mechToken?.subarray(0, 8).toString('latin1'), 'NTLMSSP\0');
  assert.deepEqual(r1.resp, { negState: NegState.ACCEPT_INCOMPLETE, supportedMech: NTLMSSP_OID, responseToken: r1.resp.responseToken });
  assert.equal(r2.resp.negState, NegState.ACCEPT_INCOMPLETE);
  assert.equal(r2.resp.mechListMIC?.toString('hex'), '0100000063775a9a5fd97f0600000000');
  assert.deepEqual(r3.resp, { negState: NegState.ACCEPT_COMPLETED, mechListMIC: hex('010000003b453cdc3524164200000000') });
  assert.equal(encodeNegTokenInit(init.init).toString('hex'), tokens[0]!.toString('hex'));
  [r1, r2, r3].forEach((r, i) => assert.equal(encodeNegTokenResp(r.resp).toString('hex'), tokens[i + 1]!.toString('hex')));
  // The NEGOTIATE response's token: Windows 10 offers NegoEx first, with a NegoEx mechToken.
  const negotiate = decodeSpnegoToken(BLOG.negotiateResponse.subarray(128, 128 + 320));
  assert.equal(negotiate.kind, 'init');
  if (negotiate.kind === 'init') assert.deepEqual(negotiate.init.mechTypes, [NEGOEX_OID, NTLMSSP_OID]);
});

test('mechListMIC both ways matches Windows: the client MIC verifies, the server MIC is the one Windows sent', () => {
  const mechTypes = decodeSpnegoToken(securityBuffer(BLOG.sessionSetupRequest1));
  assert.equal(mechTypes.kind, 'init');
  if (mechTypes.kind !== 'init') return;
  assert.deepEqual(mechTypes.init.mechTypesDer, encodeMechTypes([NTLMSSP_OID]));
  const flags = 0xe2888215; // the AUTHENTICATE's NegotiateFlags
  const server = new NtlmSessionSecurity(BLOG.sessionKey, flags, 'server');
  assert.equal(server.verify(mechTypes.init.mechTypesDer!, hex('0100000063775a9a5fd97f0600000000')), true);
  assert.equal(server.sign(mechTypes.init.mechTypesDer!).toString('hex'), '010000003b453cdc3524164200000000');
});

test('SpnegoServer and SpnegoClient: two legs, MICs both ways, the same session key', () => {
  const server = new SpnegoServer(OPTIONS, CREDS);
  const client = new SpnegoClient(alice());
  const leg1 = server.step(client.initial());
  assert.equal(leg1.done, false);
  const r1 = resp(leg1.token);
  assert.equal(r1.negState, NegState.ACCEPT_INCOMPLETE);
  assert.equal(r1.supportedMech, NTLMSSP_OID);
  const c2 = client.step(leg1.token);
  assert.equal(c2.done, false);
  if (c2.done) return;
  assert.ok(resp(c2.token).mechListMIC, 'the client sends a mechListMIC');
  const leg2 = server.step(c2.token);
  assert.equal(leg2.done, true);
  if (!leg2.done) return;
  assert.equal(leg2.result.user, 'alice');
  const r2 = resp(leg2.token);
  assert.equal(r2.negState, NegState.ACCEPT_COMPLETED);
  assert.ok(r2.mechListMIC);
  assert.equal(r2.responseToken, undefined);
  const c3 = client.step(leg2.token);
  assert.deepEqual(c3, { done: true, sessionKey: leg2.result.sessionKey });
  assertBadToken(() => server.step(c2.token), /already over/);
});

test('a wrong password or a forged mechListMIC fails the logon; a client without MIC gets none', () => {
  const wrong = new SpnegoServer(OPTIONS, CREDS);
  const bad = new SpnegoClient(alice('nope'));
  const c = bad.step(wrong.step(bad.initial()).token);
  assert.equal(c.done, false);
  if (c.done) return;
  assertFailed(() => wrong.step(c.token), /NTProofStr/);

  const run = (mic: (m: Buffer) => Buffer | undefined) => {
    const server = new SpnegoServer(OPTIONS, CREDS);
    const client = new SpnegoClient(alice());
    const step = client.step(server.step(client.initial()).token);
    assert.equal(step.done, false);
    if (step.done) throw new Error('unreachable');
    const r = resp(step.token);
    return () => server.step(encodeNegTokenResp({ ...r, mechListMIC: mic(r.mechListMIC!) }));
  };
  assertFailed(run((m) => Buffer.from(m.map((b, i) => (i === 6 ? b ^ 1 : b)))), /bad mechListMIC/);
  const plain = run(() => undefined)();
  assert.equal(plain.done, true);
  assert.equal(resp(plain.token).mechListMIC, undefined);
});

test('a client preferring Kerberos is steered to NTLMSSP with no token, then logs on over three legs', () => {
  const server = new SpnegoServer(OPTIONS, CREDS);
  const mechTypes = [MS_KRB5_OID, KRB5_OID, NEGOEX_OID, NTLMSSP_OID];
  const first = server.step(encodeNegTokenInit({ mechTypes, mechToken: Buffer.from('a Kerberos AP-REQ') }));
  assert.equal(first.done, false);
  assert.deepEqual(resp(first.token), { negState: NegState.ACCEPT_INCOMPLETE, supportedMech: NTLMSSP_OID });
  const ntlm = new NtlmClient(alice());
  const second = server.step(encodeNegTokenResp({ responseToken: ntlm.negotiate() }));
  const challenge = resp(second.token).responseToken!;
  const { token, sessionKey } = ntlm.authenticate(challenge);
  // The MIC covers the client's whole original list.
  const last = server.step(encodeNegTokenResp({ responseToken: token, mechListMIC: ntlm.sign(encodeMechTypes(mechTypes)) }));
  assert.equal(last.done, true);
  if (!last.done) return;
  assert.deepEqual(last.result.sessionKey, sessionKey);
  assert.equal(ntlm.verify(encodeMechTypes(mechTypes), resp(last.token).mechListMIC!), true);
});

test('raw NTLMSSP without SPNEGO, and an empty first token answered with the NegTokenInit2', () => {
  const server = new SpnegoServer(OPTIONS, CREDS);
  assert.deepEqual(server.step(Buffer.alloc(0)), { done: false, token: spnegoNegotiateToken() });
  const ntlm = new NtlmClient(alice());
  const challenge = server.step(ntlm.negotiate());
  assert.equal(challenge.token.subarray(0, 8).toString('latin1'), 'NTLMSSP\0');
  const done = server.step(ntlm.authenticate(challenge.token).token);
  assert.equal(done.done, true);
  assert.equal(done.token.length, 0);
});

test('unsupported mechanisms, wrong token kinds and malformed DER are AuthErrors, never crashes', () => {
  assertAuthError(
    () => new SpnegoServer(OPTIONS, CREDS).step(encodeNegTokenInit({ mechTypes: [KRB5_OID], mechToken: Buffer.alloc(4) })),
    'DSR_AUTH_FAILED',
    NtStatus.STATUS_NOT_SUPPORTED,
    /no NTLMSSP/,
  );
  assertBadToken(() => new SpnegoServer(OPTIONS, CREDS).step(encodeNegTokenResp({ negState: 1 })), /not a NegTokenInit/);
  for (const bad of ['6003060100', '30030a0101', 'a1053003a0010a', 'a10530030a0109', 'a1073005a0030a0109', '6048', 'a1023000ff']) {
    assertBadToken(() => new SpnegoServer(OPTIONS, CREDS).step(hex(bad)), /SPNEGO/);
  }
  const spent = new SpnegoServer(OPTIONS, CREDS);
  assert.throws(() => spent.step(hex('a1023000ff')));
  assertBadToken(() => spent.step(new SpnegoClient(alice()).initial()), /already over/);
});

test('guest logons complete without any mechListMIC', () => {
  const server = new SpnegoServer({ ...OPTIONS, allowGuest: true }, CREDS);
  const client = new SpnegoClient({ ...alice(), user: 'mallory' });
  const step = client.step(server.step(client.initial()).token);
  if (step.done) throw new Error('unreachable');
  const last = server.step(step.token);
  assert.equal(last.done, true);
  if (!last.done) return;
  assert.equal(last.result.kind, 'guest');
  assert.equal(resp(last.token).mechListMIC, undefined);
  assert.equal(client.step(last.token).done, true);
});

test('SpnegoClient refuses a rejecting server and a server MIC that does not verify', () => {
  const client = new SpnegoClient(alice());
  client.initial();
  assertFailed(() => client.step(encodeNegTokenResp({ negState: NegState.REJECT })), /rejected/);
  const server = new SpnegoServer(OPTIONS, CREDS);
  const c = new SpnegoClient(alice());
  const step = c.step(server.step(c.initial()).token);
  if (step.done) throw new Error('unreachable');
  const last = server.step(step.token);
  const forged = encodeNegTokenResp({ negState: NegState.ACCEPT_COMPLETED, mechListMIC: Buffer.alloc(16, 1) });
  assert.equal(last.done, true);
  assertFailed(() => c.step(forged), /does not verify/);
});

const SAMBA = pythonWith('samba.gensec', 'samba.credentials');
// Samba's own SPNEGO client, the code smbclient runs: it starts from our NEGOTIATE token.
const SAMBA_CLIENT = `
import sys
import samba.gensec as gensec
from samba import param
from samba.credentials import Credentials, DONT_USE_KERBEROS
user, password, first = sys.argv[1:4]
lp = param.LoadParm()
creds = Credentials()
creds.guess(lp)
if user:
    creds.set_username(user); creds.set_password(password); creds.set_domain('DSR')
else:
    creds.set_anonymous()
creds.set_workstation('SAMBA')
creds.set_kerberos_state(DONT_USE_KERBEROS)
g = gensec.Security.start_client({'lp_ctx': lp, 'target_hostname': 'dsr1'})
g.set_credentials(creds)
g.want_feature(gensec.FEATURE_SESSION_KEY)
g.start_mech_by_sasl_name('GSS-SPNEGO')
token = bytes.fromhex(first)
while True:
    try:
        done, out = g.update(token)
    except Exception as e:
        print('error', e, flush=True)
        sys.exit(0)
    print('done' if done else 'more', out.hex(), flush=True)
    if done:
        break
    token = bytes.fromhex(sys.stdin.readline().strip())
print('key', g.session_key().hex() if user else '-', flush=True)
`;

/** Runs Samba's client against a SpnegoServer; returns what the server concluded and Samba's last words. */
async function sambaLogon(user: string, password: string, allowGuest = false) {
  const server = new SpnegoServer({ ...OPTIONS, allowGuest }, CREDS);
  const py = new PythonSession(SAMBA!, SAMBA_CLIENT, [user, password, spnegoNegotiateToken().toString('hex')]);
  const seen: NegTokenResp[] = [];
  try {
    let line = await py.next();
    for (;;) {
      const [kind, data = ''] = line.split(' ');
      if (kind !== 'more') return { line, final: undefined, seen };
      const token = Buffer.from(data, 'hex');
      const t = decodeSpnegoToken(token);
      if (t.kind === 'resp') seen.push(t.resp);
      const step = server.step(token);
      if (step.done) {
        const answer = await py.send(step.token.toString('hex'));
        return { line: answer.startsWith('done') ? await py.next() : answer, final: step, seen };
      }
      line = await py.send(step.token.toString('hex'));
    }
  } finally {
    py.close();
  }
}

const sambaSkip = { skip: !SAMBA && 'no python3 with samba' };

test('Samba gensec (smbclient\'s SPNEGO) logs on, exchanges mechListMICs and derives the same key', sambaSkip, async () => {
  const r = await sambaLogon('alice', 's3cret');
  assert.ok(r.final?.done);
  assert.ok(r.seen.at(-1)?.mechListMIC, 'Samba sent a mechListMIC');
  assert.ok(resp(r.final.token).mechListMIC, 'we answered with ours');
  assert.equal(r.line, `key ${r.final.result.sessionKey.toString('hex')}`);
  assert.equal(r.final.result.negotiateFlags & F.NTLMSSP_NEGOTIATE_KEY_EXCH, F.NTLMSSP_NEGOTIATE_KEY_EXCH);
});

test('Samba gensec: a wrong password is refused by the server; anonymous works with allowGuest', sambaSkip, async () => {
  await assert.rejects(sambaLogon('alice', 'wrong'), (e: unknown) => e instanceof AuthError && e.status === NtStatus.STATUS_LOGON_FAILURE);
  const anon = await sambaLogon('', '', true);
  assert.equal(anon.final?.result.kind, 'anonymous');
  assert.equal(anon.line, 'key -');
});
