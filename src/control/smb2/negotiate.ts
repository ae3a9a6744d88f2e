/**
 * NEGOTIATE, answered by the DSR itself (MS-SMB2 3.3.5.3, 3.3.5.4; source Fig. 5): the
 * dialect, signing policy, limits and 3.1.1 contexts are the DSR's choice for the client
 * side, independent of any storage server.
 */
import { randomBytes } from 'node:crypto';
import { PreauthIntegrity } from '../auth/smb2-signing.js';
import { spnegoNegotiateToken } from '../auth/spnego.js';
import { toFiletime } from '../filetime.js';
import { NtStatus } from '../wire/ntstatus.js';
import { decodeSmb1Negotiate, smb1OffersSmb2 } from '../wire/smb1.js';
import {
  Cipher,
  dialectName,
  HashAlgorithm,
  NegotiateContextType,
  SigningAlgorithm,
  Smb2Command,
  Smb2Dialect,
  Smb2Flags,
  Smb2GlobalCap,
  Smb2SecurityMode,
} from '../wire/smb2/constants.js';
import { encodeHeader, header } from '../wire/smb2/header.js';
import {
  encodeNegotiateResponse,
  findNegotiateContext,
  type NegotiateContext,
  type NegotiateRequest,
  type NegotiateResponse,
} from '../wire/smb2/negotiate.js';
import type { ConnectionState, DsrContext, Smb2Reply, Smb2Request } from './context.js';
import type { CreditWindow } from './credits.js';
import { errorReply } from './replies.js';

/** 2.0.2 has no multi-credit requests, so no message may exceed 64 KiB (MS-SMB2 3.3.5.4). */
const SMB202_MAX_IO = 65536;
/**
 * Preference order when a 3.1.1 client offers several signing algorithms: AES-GMAC first, as
 * Samba and Windows Server 2022 choose. It is also the only one under which clients put the real
 * MessageId in a CANCEL sent before the interim response (Samba bug 14855; Windows does the
 * same), so only then can such a CANCEL be routed to the right server.
 */
const SIGNING_PREFERENCE = [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC, SigningAlgorithm.HMAC_SHA256];

function serverSecurityMode(ctx: DsrContext): number {
  return Smb2SecurityMode.SIGNING_ENABLED | (ctx.config.smb2.signing === 'required' ? Smb2SecurityMode.SIGNING_REQUIRED : 0);
}

/** Ciphers in preference order, GCM first (faster, and what Windows and Samba choose). */
const CIPHER_PREFERENCE = [Cipher.AES_128_GCM, Cipher.AES_128_CCM, Cipher.AES_256_GCM, Cipher.AES_256_CCM];

/**
 * What the DSR offers on the client side. 3.0 and 3.0.2 announce encryption with
 * CAP_ENCRYPTION to a client that sets it; 3.1.1 negotiates a cipher in a context instead.
 */
function serverCapabilities(dialect: number, cipher: number | undefined): number {
  let caps = dialect >= Smb2Dialect.SMB210 ? Smb2GlobalCap.LARGE_MTU : 0;
  if (cipher !== undefined && (dialect === Smb2Dialect.SMB300 || dialect === Smb2Dialect.SMB302)) caps |= Smb2GlobalCap.ENCRYPTION;
  return caps;
}

/** The response body for a chosen dialect; contexts only for 3.1.1. */
function negotiateBody(ctx: DsrContext, conn: ConnectionState, dialect: number, contexts: NegotiateContext[]): Buffer {
  const io = (v: number) => (dialect === Smb2Dialect.SMB202 || dialect === Smb2Dialect.WILDCARD ? Math.min(v, SMB202_MAX_IO) : v);
  const res: NegotiateResponse = {
    SecurityMode: serverSecurityMode(ctx),
    DialectRevision: dialect,
    ServerGuid: ctx.config.serverGuid,
    Capabilities: serverCapabilities(dialect, conn.cipher),
    MaxTransactSize: io(conn.maxTransactSize),
    MaxReadSize: io(conn.maxReadSize),
    MaxWriteSize: io(conn.maxWriteSize),
    SystemTime: toFiletime(new Date()),
    ServerStartTime: 0n,
    SecurityBuffer: spnegoNegotiateToken(),
    ...(dialect === Smb2Dialect.SMB311 ? { NegotiateContextList: contexts } : {}),
  };
  return encodeNegotiateResponse(res);
}

export function handleNegotiate(req: Smb2Request, body: NegotiateRequest): Smb2Reply {
  const { conn, ctx } = req;
  // 3.3.5.3.1/3.3.5.4: a second NEGOTIATE on a connection is a protocol violation.
  if (conn.dialect !== 0 && conn.dialect !== Smb2Dialect.WILDCARD) return { ...errorReply(NtStatus.STATUS_INVALID_PARAMETER), disconnect: 'second NEGOTIATE on the connection' };
  if (req.hdr.Flags & Smb2Flags.SIGNED) return errorReply(NtStatus.STATUS_INVALID_PARAMETER);
  if (body.Dialects.length === 0) return errorReply(NtStatus.STATUS_INVALID_PARAMETER);
  const common = ctx.config.smb2.dialects.filter((d) => body.Dialects.includes(d));
  const dialect = common.length ? Math.max(...common) : undefined;
  if (dialect === undefined) {
    ctx.log.info({ event: 'negotiate.no_common_dialect', offered: body.Dialects.map(dialectName) }, 'no dialect in common with the client');
    return errorReply(NtStatus.STATUS_NOT_SUPPORTED);
  }

  const contexts: NegotiateContext[] = [];
  let preauth: PreauthIntegrity | undefined;
  let signingAlgorithmId: number | undefined;
  let cipher: number | undefined;
  if (dialect === Smb2Dialect.SMB311) {
    const offered = body.NegotiateContextList ?? [];
    // 3.3.5.4: each context type at most once, and preauth integrity is mandatory.
    const types = offered.map((c) => c.ContextType);
    if (new Set(types).size !== types.length) return errorReply(NtStatus.STATUS_INVALID_PARAMETER);
    const integrity = findNegotiateContext(offered, NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES);
    if (!integrity) return errorReply(NtStatus.STATUS_INVALID_PARAMETER);
    if (!integrity.HashAlgorithms.includes(HashAlgorithm.SHA_512)) return errorReply(NtStatus.STATUS_SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP);
    contexts.push({
      ContextType: NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES,
      Reserved: 0,
      Data: { HashAlgorithms: [HashAlgorithm.SHA_512], Salt: randomBytes(32) },
    });
    const signing = findNegotiateContext(offered, NegotiateContextType.SIGNING_CAPABILITIES);
    if (signing) {
      signingAlgorithmId = SIGNING_PREFERENCE.find((a) => signing.SigningAlgorithms.includes(a));
      if (signingAlgorithmId !== undefined) {
        contexts.push({ ContextType: NegotiateContextType.SIGNING_CAPABILITIES, Reserved: 0, Data: { SigningAlgorithms: [signingAlgorithmId] } });
      }
    }
    const encryption = findNegotiateContext(offered, NegotiateContextType.ENCRYPTION_CAPABILITIES);
    if (encryption && ctx.config.smb2.encryption !== 'off') {
      cipher = CIPHER_PREFERENCE.find((c) => encryption.Ciphers.includes(c));
      // 3.3.5.4: no cipher in common is answered with the single cipher 0.
      contexts.push({ ContextType: NegotiateContextType.ENCRYPTION_CAPABILITIES, Reserved: 0, Data: { Ciphers: [cipher ?? 0] } });
    }
    // Compression is not offered: its context is left out (3.3.5.4).
    preauth = new PreauthIntegrity().update(req.msg);
  } else if ((dialect === Smb2Dialect.SMB300 || dialect === Smb2Dialect.SMB302) && body.Capabilities & Smb2GlobalCap.ENCRYPTION && ctx.config.smb2.encryption !== 'off') {
    cipher = Cipher.AES_128_CCM;
  }

  conn.dialect = dialect;
  conn.clientDialects = [...body.Dialects];
  conn.clientSecurityMode = body.SecurityMode;
  conn.clientCapabilities = body.Capabilities;
  conn.clientGuid = Buffer.from(body.ClientGuid);
  conn.serverSecurityMode = serverSecurityMode(ctx);
  conn.cipher = cipher;
  conn.serverCapabilities = serverCapabilities(dialect, cipher);
  conn.signingAlgorithmId = signingAlgorithmId;
  conn.preauth = preauth;
  ctx.log.debug({ event: 'negotiate.done', dialect: dialectName(dialect) }, 'negotiated');
  return {
    status: NtStatus.STATUS_SUCCESS,
    body: negotiateBody(ctx, conn, dialect, contexts),
    onWire: preauth ? (msg) => preauth.update(msg) : undefined,
  };
}

/**
 * The SMB1 multi-protocol NEGOTIATE some clients send first (MS-SMB2 3.3.5.3): answered with
 * an SMB2 NEGOTIATE response, DialectRevision 0x02FF when "SMB 2.???" is offered (the client
 * then sends an SMB2 NEGOTIATE), 0x0202 when only "SMB 2.002" is. Returns the response
 * message, or a reason to disconnect.
 */
export function answerSmb1Negotiate(conn: ConnectionState, ctx: DsrContext, frame: Buffer, credits: CreditWindow): { msg: Buffer } | { disconnect: string } {
  if (conn.dialect !== 0) return { disconnect: 'SMB1 NEGOTIATE after negotiation' };
  const smb1 = decodeSmb1Negotiate(frame);
  const offers = smb1OffersSmb2(smb1.Dialects);
  const can202 = ctx.config.smb2.dialects.includes(Smb2Dialect.SMB202);
  const canLater = ctx.config.smb2.dialects.some((d) => d > Smb2Dialect.SMB202);
  let dialect: number;
  if (offers.wildcard && canLater) dialect = Smb2Dialect.WILDCARD;
  else if (offers.smb2002 && can202) dialect = Smb2Dialect.SMB202;
  else return { disconnect: 'SMB1 NEGOTIATE offers no SMB2 dialect; SMB1 is not served' };
  // The SMB1 request counts as MessageId 0 of the SMB2 sequence (3.3.5.3.1).
  credits.consume(0n, 1);
  conn.dialect = dialect;
  conn.serverSecurityMode = serverSecurityMode(ctx);
  conn.serverCapabilities = serverCapabilities(dialect, undefined);
  const h = header({
    Command: Smb2Command.NEGOTIATE,
    Flags: Smb2Flags.SERVER_TO_REDIR,
    Credit: credits.grant(1),
    Reserved: 0,
  });
  return { msg: Buffer.concat([encodeHeader(h), negotiateBody(ctx, conn, dialect, [])]) };
}
