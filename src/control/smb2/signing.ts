/** Signing on the client side of the DSR, with the keys of the client's session. */
import { signMessage, verifyMessage } from '../auth/smb2-signing.js';
import type { Session } from '../tables/sessions.js';

export function verifyRequest(msg: Buffer, session: Session): boolean {
  const s = session.secrets;
  return s !== undefined && session.signingAlgorithm !== undefined && verifyMessage(msg, s.signingKey, session.signingAlgorithm);
}

export function signReply(msg: Buffer, session: Session): void {
  const s = session.secrets;
  if (s && session.signingAlgorithm !== undefined) signMessage(msg, s.signingKey, session.signingAlgorithm);
}
