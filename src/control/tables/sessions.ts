/**
 * The session table (source Fig. 5, paragraphs 0066-0067): the DSR generates and stores each
 * client's SessionId itself. Keys live here in memory only; `view()` is what leaves the
 * process (admin socket, logs) and carries no secret.
 */
import { randomBytes } from 'node:crypto';
import type { NonceSource } from '../auth/smb2-encryption.js';
import { Cipher, dialectName, SigningAlgorithm } from '../wire/smb2/constants.js';

export type SessionState = 'in-progress' | 'valid';
export type SessionKind = 'user' | 'guest' | 'anonymous';

export interface SessionSecrets {
  /** ExportedSessionKey from NTLM (MS-SMB2 3.3.5.5.3 Session.SessionKey). */
  sessionKey: Buffer;
  signingKey: Buffer;
  /** Session.EncryptionKey / DecryptionKey (server side), when the connection negotiated a cipher. */
  encryption?: { in: Buffer; out: Buffer; cipher: number; nonces: NonceSource };
}

export interface Session {
  readonly sessionId: bigint;
  readonly connectionId: number;
  readonly clientAddress: string;
  state: SessionState;
  user: string;
  domain: string;
  workstation: string;
  kind: SessionKind | undefined;
  dialect: number;
  /** Session.SigningRequired (MS-SMB2 3.3.1.8). */
  signingRequired: boolean;
  /** SigningAlgorithm id (MS-SMB2 2.2.3.1.7); undefined until keys exist. */
  signingAlgorithm: number | undefined;
  /** Session.EncryptData (MS-SMB2 3.3.1.8): every request must come, and every response goes, encrypted. */
  encryptData: boolean;
  secrets: SessionSecrets | undefined;
  readonly created: Date;
  lastSeen: Date;
}

/** What `dsr session list` shows: no keys, ids as hex strings. */
export interface SessionView {
  sessionId: string;
  connectionId: number;
  clientAddress: string;
  state: SessionState;
  user: string;
  domain: string;
  kind: SessionKind | null;
  dialect: string;
  signing: { required: boolean; algorithm: string | null };
  /** The cipher when the session can encrypt; `required` is Session.EncryptData. */
  encryption: { required: boolean; cipher: string | null };
  created: string;
  lastSeen: string;
}

export function formatSessionId(id: bigint): string {
  return `0x${id.toString(16).padStart(16, '0')}`;
}

export class SessionTable {
  private readonly sessions = new Map<bigint, Session>();

  /** Creates an in-progress session with a fresh SessionId (never 0 or all ones). */
  create(connectionId: number, clientAddress: string, dialect: number, now = new Date()): Session {
    let id: bigint;
    do id = randomBytes(8).readBigUInt64LE(0);
    while (id === 0n || id === 0xffffffffffffffffn || this.sessions.has(id));
    const s: Session = {
      sessionId: id,
      connectionId,
      clientAddress,
      state: 'in-progress',
      user: '',
      domain: '',
      workstation: '',
      kind: undefined,
      dialect,
      signingRequired: false,
      signingAlgorithm: undefined,
      encryptData: false,
      secrets: undefined,
      created: now,
      lastSeen: now,
    };
    this.sessions.set(id, s);
    return s;
  }

  get(id: bigint): Session | undefined {
    return this.sessions.get(id);
  }

  delete(id: bigint): boolean {
    return this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  byConnection(connectionId: number): Session[] {
    return [...this.sessions.values()].filter((s) => s.connectionId === connectionId);
  }

  list(): SessionView[] {
    return [...this.sessions.values()].map(view);
  }
}

const SIGNING_NAMES: Record<number, string> = {
  [SigningAlgorithm.HMAC_SHA256]: 'HMAC-SHA256',
  [SigningAlgorithm.AES_CMAC]: 'AES-CMAC',
  [SigningAlgorithm.AES_GMAC]: 'AES-GMAC',
};

const CIPHER_NAMES: Record<number, string> = {
  [Cipher.AES_128_CCM]: 'AES-128-CCM',
  [Cipher.AES_128_GCM]: 'AES-128-GCM',
  [Cipher.AES_256_CCM]: 'AES-256-CCM',
  [Cipher.AES_256_GCM]: 'AES-256-GCM',
};

function view(s: Session): SessionView {
  return {
    sessionId: formatSessionId(s.sessionId),
    connectionId: s.connectionId,
    clientAddress: s.clientAddress,
    state: s.state,
    user: s.user,
    domain: s.domain,
    kind: s.kind ?? null,
    dialect: dialectName(s.dialect),
    signing: { required: s.signingRequired, algorithm: s.signingAlgorithm === undefined ? null : (SIGNING_NAMES[s.signingAlgorithm] ?? String(s.signingAlgorithm)) },
    encryption: { required: s.encryptData, cipher: s.secrets?.encryption ? (CIPHER_NAMES[s.secrets.encryption.cipher] ?? String(s.secrets.encryption.cipher)) : null },
    created: s.created.toISOString(),
    lastSeen: s.lastSeen.toISOString(),
  };
}
