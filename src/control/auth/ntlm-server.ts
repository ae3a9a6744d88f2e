/**
 * The NTLMSSP server (MS-NLMP 3.2): answers a client's NEGOTIATE with a CHALLENGE and
 * verifies its NTLMv2 AUTHENTICATE against the credential table, which holds only NT hashes
 * (NTOWFv1). NTLMv1 and LM responses are refused. After a successful logon it signs and
 * verifies NTLM message signatures (SPNEGO's mechListMIC needs them).
 */
import { randomBytes } from 'node:crypto';
import { AuthError, ErrorCode } from '../errors.js';
import { NtStatus } from '../wire/ntstatus.js';
import { constantTimeEqual, rc4 } from './crypto.js';
import {
  avFlags,
  AvId,
  avString,
  avTimestamp,
  computeMic,
  decodeAuthenticateMessage,
  decodeChallengeMessage,
  decodeNegotiateMessage,
  decodeNtlmV2ClientChallenge,
  decodeToken,
  encodeAvPairs,
  encodeChallengeMessage,
  hasSessionSecurity,
  MsvAvFlags,
  NegotiateFlags as F,
  DSR_NTLM_VERSION,
  NTLMV2_RESPONSE_MIN,
  NtlmSessionSecurity,
  NtlmSigner,
  type AvPair,
  ntowfV2,
  ntProofStr,
  sessionBaseKeyV2,
  usesKeyExchange,
  withZeroMic,
} from './ntlm.js';
import { fileTime } from '../filetime.js';

/** What the server needs from the credential table (CredentialTable satisfies it). */
export interface CredentialLookup {
  lookup(name: string): { name: string; ntHash: Buffer } | undefined;
}

export interface NtlmServerOptions {
  /** NetBIOS names presented in the CHALLENGE (MsvAvNbDomainName / MsvAvNbComputerName). */
  netbiosDomain: string;
  netbiosComputer: string;
  /** DNS names (MsvAvDnsDomainName / MsvAvDnsComputerName); empty ones are left out. */
  dnsDomain: string;
  dnsComputer: string;
  /** Accept anonymous logons and unknown users (as guest). Wrong passwords always fail. */
  allowGuest: boolean;
  /** Unix time in ms, for MsvAvTimestamp (tests pin it). */
  now?: () => number;
  /** Random bytes, for the ServerChallenge (tests pin it). */
  random?: (n: number) => Buffer;
}

export type AuthKind = 'user' | 'guest' | 'anonymous';

export interface AuthResult {
  /** The credential table's spelling for 'user'; as the client sent it otherwise. */
  user: string;
  domain: string;
  workstation: string;
  kind: AuthKind;
  /** ExportedSessionKey, 16 bytes; zeros for guest and anonymous, which prove no key. */
  sessionKey: Buffer;
  /** NegotiateFlags of the AUTHENTICATE message. */
  negotiateFlags: number;
}

/** Client flags the CHALLENGE echoes when offered (MS-NLMP 3.2.5.1.1); LM_KEY and DATAGRAM are not supported. */
const ECHOED_FLAGS =
  F.NTLMSSP_REQUEST_TARGET |
  F.NTLMSSP_NEGOTIATE_SIGN |
  F.NTLMSSP_NEGOTIATE_SEAL |
  F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN |
  F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY |
  F.NTLMSSP_NEGOTIATE_VERSION |
  F.NTLMSSP_NEGOTIATE_128 |
  F.NTLMSSP_NEGOTIATE_KEY_EXCH |
  F.NTLMSSP_NEGOTIATE_56;

function badToken(what: string): AuthError {
  return new AuthError(ErrorCode.AUTH_BAD_TOKEN, what, NtStatus.STATUS_INVALID_PARAMETER);
}

/** The three messages of one exchange, as they were on the wire (the MIC covers them). */
export interface NtlmExchange {
  negotiate: Buffer;
  challenge: Buffer;
  authenticate: Buffer;
}

/**
 * MS-NLMP 3.2.5.1.2: verifies an AUTHENTICATE against the NEGOTIATE and CHALLENGE before it.
 * Pure; NtlmServer calls it with its own CHALLENGE, tests with published exchanges.
 */
export function acceptAuthenticate(x: NtlmExchange, creds: CredentialLookup, allowGuest: boolean): AuthResult {
  const auth = decodeToken(decodeAuthenticateMessage, x.authenticate, 'NTLM AUTHENTICATE');
  const { ServerChallenge } = decodeToken(decodeChallengeMessage, x.challenge, 'NTLM CHALLENGE');
  const who = JSON.stringify(auth.DomainName ? `${auth.DomainName}\\${auth.UserName}` : auth.UserName);
  const fail = (why: string) => new AuthError(ErrorCode.AUTH_FAILED, `NTLM logon of ${who} refused: ${why}`, NtStatus.STATUS_LOGON_FAILURE);
  const lm = auth.LmChallengeResponse;
  const nt = auth.NtChallengeResponse;
  const base = {
    domain: auth.DomainName,
    workstation: auth.Workstation,
    sessionKey: Buffer.alloc(16),
    negotiateFlags: auth.NegotiateFlags,
  };

  if (auth.UserName === '' && nt.length === 0 && (lm.length === 0 || (lm.length === 1 && lm[0] === 0))) {
    if (!allowGuest) throw fail('anonymous logon is not allowed');
    return { ...base, user: '', kind: 'anonymous' };
  }
  if (nt.length === 0) throw fail('LM-only response refused');
  if (nt.length === 24) throw fail('NTLMv1 refused');
  if (nt.length < NTLMV2_RESPONSE_MIN) throw badToken(`NtChallengeResponse of ${nt.length} bytes is neither NTLMv1 nor NTLMv2`);
  const temp = nt.subarray(16);
  const client = decodeToken(decodeNtlmV2ClientChallenge, temp, 'NTLMv2_CLIENT_CHALLENGE');
  const flags = decodeToken(avFlags, client.AvPairs, 'MsvAvFlags');

  // A UPN ("user@realm") names the same account; NTOWFv2 still uses the name as sent.
  const entry = creds.lookup(auth.UserName) ?? (auth.UserName.includes('@') ? creds.lookup(auth.UserName.split('@')[0]!) : undefined);
  if (!entry) {
    if (!allowGuest) throw fail('unknown user');
    return { ...base, user: auth.UserName, kind: 'guest' };
  }

  const responseKeyNT = ntowfV2(entry.ntHash, auth.UserName, auth.DomainName);
  const proof = ntProofStr(responseKeyNT, ServerChallenge, temp);
  if (!constantTimeEqual(proof, nt.subarray(0, 16))) throw fail('bad NTProofStr (wrong password?)');

  const keyExchangeKey = sessionBaseKeyV2(responseKeyNT, proof);
  let sessionKey = keyExchangeKey;
  if (usesKeyExchange(auth.NegotiateFlags)) {
    const encrypted = auth.EncryptedRandomSessionKey;
    if (encrypted.length !== 16) throw badToken(`EncryptedRandomSessionKey of ${encrypted.length} bytes`);
    sessionKey = rc4(keyExchangeKey, encrypted);
  }
  if (flags & MsvAvFlags.MIC_PRESENT) {
    if (!auth.MIC) throw badToken('MsvAvFlags announce a MIC the AUTHENTICATE message has no room for');
    const mic = computeMic(sessionKey, x.negotiate, x.challenge, withZeroMic(x.authenticate));
    if (!constantTimeEqual(mic, auth.MIC)) throw fail('bad MIC');
  }
  return { ...base, user: entry.name, kind: 'user', sessionKey };
}

/** One NTLM exchange on the server side; use a new instance per SESSION_SETUP sequence. */
export class NtlmServer extends NtlmSigner {
  private negotiateMsg: Buffer | undefined;
  private challengeMsg: Buffer | undefined;
  private result: AuthResult | undefined;

  constructor(private readonly options: NtlmServerOptions) {
    super();
  }

  /** The TargetName and target type: the domain when the DSR presents one distinct from its own name. */
  private target(): { name: string; flag: number } {
    const { netbiosDomain: d, netbiosComputer: c } = this.options;
    return d !== '' && d.toUpperCase() !== c.toUpperCase()
      ? { name: d, flag: F.NTLMSSP_TARGET_TYPE_DOMAIN }
      : { name: c, flag: F.NTLMSSP_TARGET_TYPE_SERVER };
  }

  /** MS-NLMP 3.2.5.1.1: the CHALLENGE answering a NEGOTIATE. */
  challenge(negotiate: Buffer): Buffer {
    if (this.negotiateMsg) throw badToken('a second NTLM NEGOTIATE in one exchange');
    const neg = decodeToken(decodeNegotiateMessage, negotiate, 'NTLM NEGOTIATE');
    if (!(neg.NegotiateFlags & F.NTLMSSP_NEGOTIATE_UNICODE)) {
      throw new AuthError(ErrorCode.AUTH_FAILED, 'NTLM client does not offer Unicode', NtStatus.STATUS_NOT_SUPPORTED);
    }
    const o = this.options;
    const target = this.target();
    const always = F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_NTLM | F.NTLMSSP_NEGOTIATE_TARGET_INFO | target.flag;
    const flags = ((neg.NegotiateFlags & ECHOED_FLAGS) | always) >>> 0;
    const info: AvPair[] = [avString(AvId.MsvAvNbDomainName, o.netbiosDomain), avString(AvId.MsvAvNbComputerName, o.netbiosComputer)];
    if (o.dnsDomain) info.push(avString(AvId.MsvAvDnsDomainName, o.dnsDomain));
    if (o.dnsComputer) info.push(avString(AvId.MsvAvDnsComputerName, o.dnsComputer));
    info.push(avTimestamp(fileTime((o.now ?? Date.now)())));
    const challenge = encodeChallengeMessage({
      NegotiateFlags: flags,
      TargetName: target.name,
      ServerChallenge: (o.random ?? randomBytes)(8),
      TargetInfo: encodeAvPairs(info),
      ...(flags & F.NTLMSSP_NEGOTIATE_VERSION ? { Version: DSR_NTLM_VERSION } : {}),
    });
    this.negotiateMsg = Buffer.from(negotiate);
    this.challengeMsg = challenge;
    return challenge;
  }

  /** MS-NLMP 3.2.5.1.2: verifies the AUTHENTICATE; throws AuthError on any failure. */
  authenticate(authenticate: Buffer, creds: CredentialLookup): AuthResult {
    if (!this.negotiateMsg || !this.challengeMsg) throw badToken('NTLM AUTHENTICATE before any CHALLENGE');
    if (this.result) throw badToken('a second NTLM AUTHENTICATE in one exchange');
    const exchange = { negotiate: this.negotiateMsg, challenge: this.challengeMsg, authenticate };
    const result = acceptAuthenticate(exchange, creds, this.options.allowGuest);
    if (result.kind === 'user' && hasSessionSecurity(result.negotiateFlags)) {
      this.security = new NtlmSessionSecurity(result.sessionKey, result.negotiateFlags, 'server');
    }
    this.result = result;
    return result;
  }
}
