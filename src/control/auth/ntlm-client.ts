/**
 * The NTLMSSP client (MS-NLMP 3.1): NTLMv2 with key exchange and a MIC, from an NT hash
 * alone. The DSR uses it to log on to backend servers on a client's behalf; tests use it to
 * drive NtlmServer.
 */
import { randomBytes } from 'node:crypto';
import { AuthError, ErrorCode } from '../errors.js';
import { NtStatus } from '../wire/ntstatus.js';
import { rc4 } from './crypto.js';
import {
  AvId,
  avU32,
  computeMic,
  decodeAvPairs,
  decodeChallengeMessage,
  DSR_NTLM_VERSION,
  encodeAuthenticateMessage,
  encodeNegotiateMessage,
  encodeNtlmV2ClientChallenge,
  findAvPair,
  hasSessionSecurity,
  lmV2Response,
  MIC_OFFSET,
  MsvAvFlags,
  NegotiateFlags as F,
  NtlmSessionSecurity,
  ntowfV2,
  ntProofStr,
  sessionBaseKeyV2,
  avFlags,
  decodeToken,
  NtlmSigner,
  usesKeyExchange,
} from './ntlm.js';
import { fileTime } from '../filetime.js';

export interface NtlmClientOptions {
  user: string;
  domain: string;
  workstation: string;
  /** NTOWFv1 of the password, 16 bytes. */
  ntHash: Buffer;
  random?: (n: number) => Buffer;
  /** Unix time in ms, used when the server sends no MsvAvTimestamp. */
  now?: () => number;
}

/** What the client offers (MS-NLMP 3.1.5.1.1); the CHALLENGE's flags narrow it. */
export const NTLM_CLIENT_FLAGS = [
  F.NTLMSSP_NEGOTIATE_UNICODE,
  F.NTLMSSP_REQUEST_TARGET,
  F.NTLMSSP_NEGOTIATE_SIGN,
  F.NTLMSSP_NEGOTIATE_SEAL,
  F.NTLMSSP_NEGOTIATE_NTLM,
  F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN,
  F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY,
  F.NTLMSSP_NEGOTIATE_VERSION,
  F.NTLMSSP_NEGOTIATE_128,
  F.NTLMSSP_NEGOTIATE_KEY_EXCH,
  F.NTLMSSP_NEGOTIATE_56,
].reduce((all: number, f) => (all | f) >>> 0, 0);

/** One NTLM exchange on the client side. */
export class NtlmClient extends NtlmSigner {
  private negotiateMsg: Buffer | undefined;
  private flags: number | undefined;

  constructor(private readonly options: NtlmClientOptions) {
    super();
  }

  /** The flags in force after authenticate() (the CHALLENGE's, narrowed to ours). */
  get negotiateFlags(): number {
    return this.flags ?? 0;
  }

  negotiate(): Buffer {
    this.negotiateMsg = encodeNegotiateMessage({
      NegotiateFlags: NTLM_CLIENT_FLAGS,
      DomainName: Buffer.alloc(0),
      Workstation: Buffer.alloc(0),
      Version: DSR_NTLM_VERSION,
    });
    return this.negotiateMsg;
  }

  /** MS-NLMP 3.1.5.1.2: the AUTHENTICATE answering a CHALLENGE, and the ExportedSessionKey. */
  authenticate(challenge: Buffer): { token: Buffer; sessionKey: Buffer } {
    if (!this.negotiateMsg || this.flags !== undefined) {
      throw new AuthError(ErrorCode.AUTH_BAD_TOKEN, 'NTLM CHALLENGE out of sequence', NtStatus.STATUS_INVALID_PARAMETER);
    }
    const o = this.options;
    const random = o.random ?? randomBytes;
    const chal = decodeToken(decodeChallengeMessage, challenge, 'NTLM CHALLENGE');
    const flags = (chal.NegotiateFlags & NTLM_CLIENT_FLAGS) >>> 0;
    if (!(flags & F.NTLMSSP_NEGOTIATE_UNICODE)) {
      throw new AuthError(ErrorCode.AUTH_FAILED, 'NTLM server does not offer Unicode', NtStatus.STATUS_NOT_SUPPORTED);
    }
    const serverPairs = chal.TargetInfo.length > 0 ? decodeToken(decodeAvPairs, chal.TargetInfo, 'CHALLENGE TargetInfo') : [];
    const serverTime = findAvPair(serverPairs, AvId.MsvAvTimestamp);
    const timeStamp = serverTime?.length === 8 ? serverTime.readBigUInt64LE(0) : fileTime((o.now ?? Date.now)());
    // The server's pairs come back with MsvAvFlags announcing the MIC (MS-NLMP 3.1.5.1.2).
    const micFlags = decodeToken(avFlags, serverPairs, 'MsvAvFlags') | MsvAvFlags.MIC_PRESENT;
    const pairs = [...serverPairs.filter((p) => p.AvId !== AvId.MsvAvFlags), avU32(AvId.MsvAvFlags, micFlags)];
    const clientChallenge = random(8);
    const temp = encodeNtlmV2ClientChallenge({
      RespType: 1,
      HiRespType: 1,
      TimeStamp: timeStamp,
      ChallengeFromClient: clientChallenge,
      AvPairs: pairs,
      Trailer: Buffer.alloc(4),
    });
    const responseKeyNT = ntowfV2(o.ntHash, o.user, o.domain);
    const proof = ntProofStr(responseKeyNT, chal.ServerChallenge, temp);
    const keyExchangeKey = sessionBaseKeyV2(responseKeyNT, proof);
    let sessionKey = keyExchangeKey;
    let encryptedKey: Buffer = Buffer.alloc(0);
    if (usesKeyExchange(flags)) {
      sessionKey = random(16);
      encryptedKey = rc4(keyExchangeKey, sessionKey);
    }
    const token = encodeAuthenticateMessage({
      NegotiateFlags: flags,
      // With a server timestamp the LM response is Z(24) (MS-NLMP 3.1.5.1.2).
      LmChallengeResponse: serverTime ? Buffer.alloc(24) : lmV2Response(responseKeyNT, chal.ServerChallenge, clientChallenge),
      NtChallengeResponse: Buffer.concat([proof, temp]),
      DomainName: o.domain,
      UserName: o.user,
      Workstation: o.workstation,
      EncryptedRandomSessionKey: encryptedKey,
      Version: DSR_NTLM_VERSION,
      MIC: Buffer.alloc(16),
    });
    computeMic(sessionKey, this.negotiateMsg, challenge, token).copy(token, MIC_OFFSET);
    this.flags = flags;
    if (hasSessionSecurity(flags)) this.security = new NtlmSessionSecurity(sessionKey, flags, 'client');
    return { token, sessionKey };
  }
}
