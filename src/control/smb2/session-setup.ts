/**
 * SESSION_SETUP and LOGOFF, answered by the DSR itself (source Fig. 5, steps 500-530;
 * MS-SMB2 3.3.5.5, 3.3.5.6). The DSR checks the client's credentials against its own
 * credential table, generates and stores the SessionId, and derives the session's keys. Not
 * one packet goes to a storage server.
 */
import { PassReason } from '../../offload/offload.js';
import { NonceSource } from '../auth/smb2-encryption.js';
import { encryptionKeys, signingAlgorithm, signingKey } from '../auth/smb2-signing.js';
import { SpnegoServer } from '../auth/spnego.js';
import { AuthError, errorMessage } from '../errors.js';
import type { Session } from '../tables/sessions.js';
import { formatSessionId } from '../tables/sessions.js';
import { NtStatus, ntStatusName } from '../wire/ntstatus.js';
import { dialectName, SessionFlags, SessionSetupRequestFlags, Smb2Dialect, Smb2SecurityMode } from '../wire/smb2/constants.js';
import { encodeSessionSetupResponse, type SessionSetupRequest } from '../wire/smb2/session-setup.js';
import type { DsrContext, Smb2Reply, Smb2Request } from './context.js';
import { emptyReply, errorReply } from './replies.js';

function newSpnego(ctx: DsrContext): SpnegoServer {
  const { config } = ctx;
  const host = config.serverName.toLowerCase();
  return new SpnegoServer(
    {
      netbiosDomain: config.domain,
      netbiosComputer: config.serverName,
      dnsDomain: config.dnsDomain,
      dnsComputer: config.dnsDomain ? `${host}.${config.dnsDomain}` : host,
      allowGuest: config.auth.guest,
    },
    ctx.credentials,
  );
}

/** Removes a session and everything hanging off it (its trees and opens). */
export function destroySession(ctx: DsrContext, session: Session): void {
  // The session's backend sessions end with it; its connection's pool knows them.
  void ctx.pools.get(session.connectionId)?.endClientSession(session.sessionId);
  ctx.opens.release(session.sessionId);
  ctx.trees.deleteSession(session.sessionId);
  ctx.sessions.delete(session.sessionId);
  ctx.offload.removeSession(session.sessionId);
}

export function handleSessionSetup(req: Smb2Request, body: SessionSetupRequest): Smb2Reply {
  const { ctx, conn } = req;
  if (body.Flags & SessionSetupRequestFlags.BINDING) {
    // Multichannel is not offered, so there is no session to bind a second channel to.
    return errorReply(NtStatus.STATUS_REQUEST_NOT_ACCEPTED);
  }
  let session = req.session;
  let pending = session ? conn.authInProgress.get(session.sessionId) : undefined;
  if (!session) {
    if (ctx.sessions.byConnection(conn.id).length >= ctx.config.limits.maxSessionsPerConnection) {
      ctx.log.warn({ event: 'session.limit', limit: ctx.config.limits.maxSessionsPerConnection }, 'too many sessions on one connection');
      return errorReply(NtStatus.STATUS_REQUEST_NOT_ACCEPTED);
    }
    try {
      ctx.credentials.reload();
    } catch (e) {
      ctx.log.error({ event: 'session.credentials_unreadable', err: errorMessage(e) }, 'the credential table cannot be read');
      return errorReply(NtStatus.STATUS_LOGON_FAILURE);
    }
    session = ctx.sessions.create(conn.id, conn.clientAddress, conn.dialect);
  }
  if (!pending) {
    // A new session, or re-authentication of a valid one (3.3.5.5.2).
    pending = { spnego: newSpnego(ctx), preauth: session.state === 'in-progress' ? conn.preauth?.clone() : undefined, reauth: session.state === 'valid' };
    conn.authInProgress.set(session.sessionId, pending);
  }
  pending.preauth?.update(req.msg);

  let step;
  try {
    step = pending.spnego.step(body.SecurityBuffer);
  } catch (e) {
    conn.authInProgress.delete(session.sessionId);
    destroySession(ctx, session);
    const status = e instanceof AuthError ? e.status : NtStatus.STATUS_LOGON_FAILURE;
    ctx.log.info({ event: 'session.auth_failed', reason: errorMessage(e), status: ntStatusName(status) }, 'authentication failed');
    return { ...errorReply(status), sessionId: session.sessionId, unsigned: true };
  }

  if (!step.done) {
    const preauth = pending.preauth;
    return {
      status: NtStatus.STATUS_MORE_PROCESSING_REQUIRED,
      body: encodeSessionSetupResponse({ SessionFlags: 0, SecurityBuffer: step.token }),
      sessionId: session.sessionId,
      unsigned: true,
      onWire: preauth ? (msg) => preauth.update(msg) : undefined,
    };
  }

  conn.authInProgress.delete(session.sessionId);
  const r = step.result;
  const s = session;
  s.user = r.user;
  s.domain = r.domain;
  s.workstation = r.workstation;
  s.kind = r.kind;
  let sessionFlags = 0;
  if (r.kind === 'anonymous') sessionFlags |= SessionFlags.IS_NULL;
  if (r.kind === 'guest') sessionFlags |= SessionFlags.IS_GUEST;
  // Guest and anonymous logons prove no key, so they cannot sign (3.3.5.5.3).
  const hasKey = r.kind === 'user';
  // 3.3.5.5.3: a DSR that requires encryption refuses sessions that cannot encrypt.
  if (!pending.reauth && ctx.config.smb2.encryption === 'required' && (!hasKey || conn.cipher === undefined || conn.cipher === 0)) {
    destroySession(ctx, s);
    ctx.log.info({ event: 'session.encryption_required', user: r.user, kind: r.kind }, 'encryption is required, but this session cannot encrypt');
    return { ...errorReply(NtStatus.STATUS_ACCESS_DENIED), sessionId: s.sessionId, unsigned: true };
  }
  if (!pending.reauth) {
    if (hasKey) {
      s.signingRequired = ctx.config.smb2.signing === 'required' || (body.SecurityMode & Smb2SecurityMode.SIGNING_REQUIRED) !== 0;
      s.signingAlgorithm = signingAlgorithm(s.dialect, conn.signingAlgorithmId);
      s.secrets = { sessionKey: Buffer.from(r.sessionKey), signingKey: signingKey(s.dialect, r.sessionKey, pending.preauth?.value) };
      if (conn.cipher) {
        const keys = encryptionKeys(s.dialect, r.sessionKey, pending.preauth?.value, conn.cipher);
        s.secrets.encryption = { in: keys.serverIn, out: keys.serverOut, cipher: conn.cipher, nonces: new NonceSource() };
        s.encryptData = ctx.config.smb2.encryption === 'required';
        if (s.encryptData) sessionFlags |= SessionFlags.ENCRYPT_DATA;
      }
    }
    s.state = 'valid';
    ctx.offload.upsertSession({
      connectionId: conn.id,
      sessionId: s.sessionId,
      dialect: s.dialect,
      pass: !hasKey ? PassReason.NO_KEY : s.encryptData ? PassReason.ENCRYPTED : s.signingRequired ? PassReason.SIGNED : undefined,
    });
    closePreviousSession(ctx, s, body.PreviousSessionId);
  }
  ctx.log.info(
    { event: pending.reauth ? 'session.reauthenticated' : 'session.established', session: formatSessionId(s.sessionId), user: r.user, kind: r.kind, dialect: dialectName(s.dialect), signing: s.signingRequired, encryptData: s.encryptData },
    `session for ${r.kind === 'user' ? r.user : r.kind}`,
  );
  // 3.1.1 clients insist on a signed final response; others get one when signing is required.
  const sign = hasKey && (s.dialect === Smb2Dialect.SMB311 || s.signingRequired);
  return {
    status: NtStatus.STATUS_SUCCESS,
    body: encodeSessionSetupResponse({ SessionFlags: sessionFlags, SecurityBuffer: step.token }),
    sessionId: s.sessionId,
    ...(sign ? { signWith: s } : { unsigned: true }),
  };
}

/** PreviousSessionId (3.3.5.5.3): a reconnecting client's old session of the same user goes away. */
function closePreviousSession(ctx: DsrContext, s: Session, previous: bigint): void {
  if (previous === 0n || previous === s.sessionId) return;
  const old = ctx.sessions.get(previous);
  if (!old || old.user.toLowerCase() !== s.user.toLowerCase() || old.kind !== 'user') return;
  destroySession(ctx, old);
  ctx.log.info({ event: 'session.replaced', old: formatSessionId(previous), session: formatSessionId(s.sessionId) }, 'previous session closed');
}

export function handleLogoff(req: Smb2Request): Smb2Reply {
  const { ctx } = req;
  const session = req.session!;
  // The response is signed with the session's key, so the session goes only once it is sent.
  return {
    ...emptyReply(),
    after: () => {
      destroySession(ctx, session);
      ctx.log.info({ event: 'session.logoff', session: formatSessionId(session.sessionId), user: session.user }, 'logoff');
    },
  };
}
