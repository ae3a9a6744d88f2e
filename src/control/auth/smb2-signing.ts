/**
 * SMB2 message signing (MS-SMB2 3.1.4.1, 3.1.5.1), key derivation (3.1.4.2) and the SMB 3.1.1
 * pre-authentication integrity hash (3.3.5.4, 3.3.5.5). Pure functions over buffers.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, ProtocolError, WireError } from '../errors.js';
import { Cipher, SigningAlgorithm, SMB2_HEADER_SIZE, Smb2Command, Smb2Dialect, Smb2Flags } from '../wire/smb2/constants.js';
import { Hdr } from '../wire/smb2/header.js';
import { aesCmac, aesGmac, constantTimeEqual, hmacSha256, kdfCounterHmacSha256 } from './crypto.js';

/** MS-SMB2 3.1.4.2 labels and contexts; each string carries its own terminating NUL. */
const text = (s: string) => Buffer.from(s, 'latin1');
const KDF = {
  sign30: [text('SMB2AESCMAC\0'), text('SmbSign\0')],
  in30: [text('SMB2AESCCM\0'), text('ServerIn \0')],
  out30: [text('SMB2AESCCM\0'), text('ServerOut\0')],
  app30: [text('SMB2APP\0'), text('SmbRpc\0')],
  sign311: text('SMBSigningKey\0'),
  in311: text('SMBC2SCipherKey\0'),
  out311: text('SMBS2CCipherKey\0'),
  app311: text('SMBAppKey\0'),
} as const;

const SIGNATURE_END = Hdr.Signature + 16;

/** Session.SessionKey (MS-SMB2 3.3.5.5.3): the first 16 bytes of the GSS key, right-padded with zeros. */
function sessionKey16(key: Buffer): Buffer {
  const k = Buffer.alloc(16);
  key.copy(k, 0, 0, 16);
  return k;
}

function needPreauth(preauthHash: Buffer | undefined): Buffer {
  if (preauthHash?.length !== 64) throw new ProtocolError('SMB 3.1.1 keys need the 64-byte pre-authentication hash');
  return preauthHash;
}

function unsupportedDialect(dialect: number): ProtocolError {
  return new ProtocolError(`no SMB2 keys for dialect 0x${dialect.toString(16)}`);
}

/** Session.SigningKey for a dialect (MS-SMB2 3.3.5.5.3); 3.1.1 needs the session's preauth hash. */
export function signingKey(dialect: number, sessionKey: Buffer, preauthHash?: Buffer): Buffer {
  const key = sessionKey16(sessionKey);
  switch (dialect) {
    case Smb2Dialect.SMB202:
    case Smb2Dialect.SMB210:
      return key;
    case Smb2Dialect.SMB300:
    case Smb2Dialect.SMB302:
      return kdfCounterHmacSha256(key, KDF.sign30[0], KDF.sign30[1], 128);
    case Smb2Dialect.SMB311:
      return kdfCounterHmacSha256(key, KDF.sign311, needPreauth(preauthHash), 128);
    default:
      throw unsupportedDialect(dialect);
  }
}

/**
 * The signing algorithm in force: HMAC-SHA256 for 2.x, AES-CMAC for 3.0/3.0.2, and for 3.1.1
 * the one SMB2_SIGNING_CAPABILITIES negotiated, else AES-CMAC (MS-SMB2 3.1.4.1).
 */
export function signingAlgorithm(dialect: number, negotiatedSigningAlgorithmId?: number): number {
  switch (dialect) {
    case Smb2Dialect.SMB202:
    case Smb2Dialect.SMB210:
      return SigningAlgorithm.HMAC_SHA256;
    case Smb2Dialect.SMB300:
    case Smb2Dialect.SMB302:
      return SigningAlgorithm.AES_CMAC;
    case Smb2Dialect.SMB311:
      return negotiatedSigningAlgorithmId ?? SigningAlgorithm.AES_CMAC;
    default:
      throw unsupportedDialect(dialect);
  }
}

/**
 * The AES-GMAC nonce (MS-SMB2 3.1.4.1): MessageId, then a 32-bit word whose bit 0 says the
 * sender is the server and bit 1 that the message is a CANCEL request (Samba's layout).
 */
function gmacNonce(msg: Buffer): Buffer {
  const nonce = Buffer.alloc(12);
  msg.copy(nonce, 0, Hdr.MessageId, Hdr.MessageId + 8);
  const server = msg.readUInt32LE(Hdr.Flags) & Smb2Flags.SERVER_TO_REDIR ? 1 : 0;
  const cancel = msg.readUInt16LE(Hdr.Command) === Smb2Command.CANCEL ? 2 : 0;
  nonce.writeUInt32LE(server | cancel, 8);
  return nonce;
}

/** The 16-byte signature of one message as if its Signature field were zero. */
function computeSignature(msg: Buffer, key: Buffer, alg: number): Buffer {
  const parts = [msg.subarray(0, Hdr.Signature), Buffer.alloc(16), msg.subarray(SIGNATURE_END)];
  switch (alg) {
    case SigningAlgorithm.HMAC_SHA256:
      return hmacSha256(key, ...parts).subarray(0, 16);
    case SigningAlgorithm.AES_CMAC:
      return aesCmac(key, ...parts);
    case SigningAlgorithm.AES_GMAC:
      return aesGmac(key, gmacNonce(msg), ...parts);
    default:
      throw new ProtocolError(`SMB2 signing algorithm ${alg} is not supported`);
  }
}

/**
 * Signs one message in place: sets SMB2_FLAGS_SIGNED and writes the signature. `msg` is one
 * message of a compound chain, from its header up to its NextCommand (padding included).
 */
export function signMessage(msg: Buffer, key: Buffer, alg: number): void {
  if (msg.length < SMB2_HEADER_SIZE) throw new WireError(ErrorCode.WIRE_TRUNCATED, `cannot sign a ${msg.length}-byte SMB2 message`);
  msg.writeUInt32LE((msg.readUInt32LE(Hdr.Flags) | Smb2Flags.SIGNED) >>> 0, Hdr.Flags);
  computeSignature(msg, key, alg).copy(msg, Hdr.Signature);
}

/** Whether the message's Signature is right; constant-time, and the message is left as it was. */
export function verifyMessage(msg: Buffer, key: Buffer, alg: number): boolean {
  if (msg.length < SMB2_HEADER_SIZE) return false;
  return constantTimeEqual(computeSignature(msg, key, alg), msg.subarray(Hdr.Signature, SIGNATURE_END));
}

/**
 * SMB 3.1.1 pre-authentication integrity (MS-SMB2 3.3.5.4, 3.3.5.5): a SHA-512 chain
 * H' = SHA-512(H || message) starting from 64 zero bytes. The connection's chain covers the
 * NEGOTIATE exchange; each session clones it and adds its SESSION_SETUP messages.
 */
export class PreauthIntegrity {
  private hash: Buffer;

  constructor(initial?: Buffer) {
    if (initial && initial.length !== 64) throw new WireError(ErrorCode.WIRE_ENCODE, 'a preauth hash is 64 bytes');
    this.hash = Buffer.from(initial ?? Buffer.alloc(64));
  }

  update(msg: Buffer): this {
    this.hash = createHash('sha512').update(this.hash).update(msg).digest();
    return this;
  }

  get value(): Buffer {
    return Buffer.from(this.hash);
  }

  clone(): PreauthIntegrity {
    return new PreauthIntegrity(this.hash);
  }
}

/** SMB 3.x encryption keys, from the server's side. */
export interface EncryptionKeys {
  /** Decrypts client-to-server messages (the client's EncryptionKey). */
  serverIn: Buffer;
  /** Encrypts server-to-client messages (the client's DecryptionKey). */
  serverOut: Buffer;
  /** Session.ApplicationKey, for RPC over named pipes (16 bytes). */
  applicationKey: Buffer;
}

function is256(cipher: number): boolean {
  return cipher === Cipher.AES_256_CCM || cipher === Cipher.AES_256_GCM;
}

/**
 * MS-SMB2 3.3.5.5.3 encryption and application keys. AES-256 ciphers get 256-bit keys derived
 * from the full GSS session key (Session.FullSessionKey); everything else uses SessionKey.
 */
export function encryptionKeys(dialect: number, sessionKey: Buffer, preauthHash: Buffer | undefined, cipher: number): EncryptionKeys {
  const key = sessionKey16(sessionKey);
  switch (dialect) {
    case Smb2Dialect.SMB300:
    case Smb2Dialect.SMB302:
      return {
        serverIn: kdfCounterHmacSha256(key, KDF.in30[0], KDF.in30[1], 128),
        serverOut: kdfCounterHmacSha256(key, KDF.out30[0], KDF.out30[1], 128),
        applicationKey: kdfCounterHmacSha256(key, KDF.app30[0], KDF.app30[1], 128),
      };
    case Smb2Dialect.SMB311: {
      const context = needPreauth(preauthHash);
      const wide = is256(cipher);
      const cipherKey = wide ? sessionKey : key;
      const bits = wide ? 256 : 128;
      return {
        serverIn: kdfCounterHmacSha256(cipherKey, KDF.in311, context, bits),
        serverOut: kdfCounterHmacSha256(cipherKey, KDF.out311, context, bits),
        applicationKey: kdfCounterHmacSha256(key, KDF.app311, context, 128),
      };
    }
    default:
      throw unsupportedDialect(dialect);
  }
}
