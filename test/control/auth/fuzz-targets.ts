/**
 * Fuzz targets for every authentication token decoder and for the engines that consume
 * tokens. A target may return or throw a WireError/AuthError; anything else is rethrown,
 * which is a bug. `fuzzSeeds` holds valid tokens for mutation-based fuzzing.
 */
import { NtlmClient } from '../../../src/control/auth/ntlm-client.js';
import { NtlmServer, type NtlmServerOptions } from '../../../src/control/auth/ntlm-server.js';
import {
  decodeAuthenticateMessage,
  decodeAvPairs,
  decodeChallengeMessage,
  decodeMessageSignature,
  decodeNegotiateMessage,
  decodeNtlmV2ClientChallenge,
} from '../../../src/control/auth/ntlm.js';
import { decodeSpnegoToken, SpnegoClient, SpnegoServer, spnegoNegotiateToken } from '../../../src/control/auth/spnego.js';
import { BLOG, NLMP, ntlmToken, securityBuffer } from './vectors.js';
import { onlyTypedErrors } from '../../helpers/wire.js';

const OPTIONS: NtlmServerOptions = {
  netbiosDomain: 'DSR',
  netbiosComputer: 'DSR1',
  dnsDomain: 'dsr.example',
  dnsComputer: 'dsr1.dsr.example',
  allowGuest: true,
  now: () => 0,
  random: (n) => Buffer.alloc(n, 0x11),
};
const NT_HASH = Buffer.alloc(16, 0x22);
export const CREDS = { lookup: (name: string) => (name.toLowerCase() === 'alice' ? { name: 'alice', ntHash: NT_HASH } : undefined) };
const clientOptions = {
  user: 'alice',
  domain: 'DSR',
  workstation: 'WS',
  ntHash: NT_HASH,
  random: (n: number) => Buffer.alloc(n, 0x33),
  now: () => 0,
};


/** A server that has answered a valid NEGOTIATE, ready for an AUTHENTICATE. */
export function challengedServer(): NtlmServer {
  const server = new NtlmServer(OPTIONS);
  server.challenge(new NtlmClient(clientOptions).negotiate());
  return server;
}

/** A SpnegoServer past its first leg. */
export function spnegoAfterFirstLeg(): SpnegoServer {
  const server = new SpnegoServer(OPTIONS, CREDS);
  server.step(new SpnegoClient(clientOptions).initial());
  return server;
}

export const fuzzTargets: { [name: string]: (data: Buffer) => void } = {
  'ntlm-negotiate': onlyTypedErrors(decodeNegotiateMessage),
  'ntlm-challenge': onlyTypedErrors(decodeChallengeMessage),
  'ntlm-authenticate': onlyTypedErrors(decodeAuthenticateMessage),
  'ntlm-av-pairs': onlyTypedErrors(decodeAvPairs),
  'ntlm-v2-client-challenge': onlyTypedErrors(decodeNtlmV2ClientChallenge),
  'ntlm-message-signature': onlyTypedErrors(decodeMessageSignature),
  'spnego-token': onlyTypedErrors(decodeSpnegoToken),
  'ntlm-server-negotiate': onlyTypedErrors((d) => new NtlmServer(OPTIONS).challenge(d)),
  'ntlm-server-authenticate': onlyTypedErrors((d) => challengedServer().authenticate(d, CREDS)),
  'ntlm-client-challenge': onlyTypedErrors((d) => {
    const client = new NtlmClient(clientOptions);
    client.negotiate();
    client.authenticate(d);
  }),
  'spnego-server-first': onlyTypedErrors((d) => new SpnegoServer(OPTIONS, CREDS).step(d)),
  'spnego-server-second': onlyTypedErrors((d) => spnegoAfterFirstLeg().step(d)),
  'spnego-client': onlyTypedErrors((d) => {
    const client = new SpnegoClient(clientOptions);
    client.initial();
    client.step(d);
  }),
};

/** Valid second-leg tokens for the engines above (everything random is pinned, so they stay valid). */
function validSecondLegs(): { authenticate: Buffer; spnego: Buffer } {
  const client = new NtlmClient(clientOptions);
  const challenge = new NtlmServer(OPTIONS).challenge(client.negotiate());
  const spnegoClient = new SpnegoClient(clientOptions);
  const first = new SpnegoServer(OPTIONS, CREDS).step(spnegoClient.initial());
  const second = spnegoClient.step(first.token);
  if (second.done) throw new Error('SPNEGO finished after one leg');
  return { authenticate: client.authenticate(challenge).token, spnego: second.token };
}
const valid = validSecondLegs();

const negotiate = ntlmToken(BLOG.sessionSetupRequest1, 40);
const authenticate = ntlmToken(BLOG.sessionSetupRequest2, 422);
const spnego = [BLOG.sessionSetupRequest1, BLOG.sessionSetupResponse1, BLOG.sessionSetupRequest2, BLOG.sessionSetupResponse2].map(
  securityBuffer,
);

/** Valid inputs per target, to mutate. */
export const fuzzSeeds: { [name: string]: Buffer[] } = {
  'ntlm-negotiate': [negotiate],
  'ntlm-challenge': [NLMP.challenge, ntlmToken(BLOG.sessionSetupResponse1, 148)],
  'ntlm-authenticate': [NLMP.authenticate, authenticate],
  'ntlm-av-pairs': [decodeChallengeMessage(NLMP.challenge).TargetInfo],
  'ntlm-v2-client-challenge': [decodeAuthenticateMessage(authenticate).NtChallengeResponse.subarray(16)],
  'ntlm-message-signature': [NLMP.signature],
  'spnego-token': [...spnego, spnegoNegotiateToken()],
  'ntlm-server-negotiate': [negotiate],
  'ntlm-server-authenticate': [valid.authenticate, authenticate],
  'ntlm-client-challenge': [NLMP.challenge, ntlmToken(BLOG.sessionSetupResponse1, 148)],
  'spnego-server-first': [spnego[0]!, negotiate],
  'spnego-server-second': [valid.spnego, spnego[2]!],
  'spnego-client': [spnego[1]!],
};
