/**
 * SMB 3.x message encryption (MS-SMB2 3.1.4.3): AES-CCM or AES-GCM over the whole message (a
 * compound chain counts as one), with the TRANSFORM_HEADER from Nonce to its end as additional
 * data and the tag in its Signature field. Keys come from `encryptionKeys` (smb2-signing.ts).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DsrError, ErrorCode, ProtocolError } from '../errors.js';
import { Cipher } from '../wire/smb2/constants.js';
import { decodeTransformHeader, encodeTransformHeader, TRANSFORM_HEADER_SIZE, TransformFlags, TransformHdr } from '../wire/smb2/transform.js';

const TAG = 16;

function algorithm(cipher: number): { name: 'aes-128-ccm' | 'aes-128-gcm' | 'aes-256-ccm' | 'aes-256-gcm'; nonce: number; ccm: boolean } {
  switch (cipher) {
    case Cipher.AES_128_CCM:
      return { name: 'aes-128-ccm', nonce: 11, ccm: true };
    case Cipher.AES_128_GCM:
      return { name: 'aes-128-gcm', nonce: 12, ccm: false };
    case Cipher.AES_256_CCM:
      return { name: 'aes-256-ccm', nonce: 11, ccm: true };
    case Cipher.AES_256_GCM:
      return { name: 'aes-256-gcm', nonce: 12, ccm: false };
    default:
      throw new DsrError(ErrorCode.AUTH_FAILED, `unknown cipher ${cipher}`);
  }
}

/**
 * Nonces never repeat under one key: a random 4-byte prefix per sender and a 64-bit counter
 * (MS-SMB2 3.3.4.1.4 leaves the choice to the server as long as nonces are unique).
 */
export class NonceSource {
  private readonly prefix = randomBytes(4);
  private counter = 0n;

  next(length: number): Buffer {
    const n = Buffer.alloc(16);
    this.prefix.copy(n, 0);
    n.writeBigUInt64LE(this.counter++, 4);
    n.fill(0, length);
    return n;
  }
}

/** Encrypts one message (or compound chain) for the peer: TRANSFORM_HEADER + ciphertext. */
export function encryptMessage(plain: Buffer, key: Buffer, cipher: number, sessionId: bigint, nonces: NonceSource): Buffer {
  const alg = algorithm(cipher);
  const nonce = nonces.next(alg.nonce);
  const header = encodeTransformHeader({ Signature: Buffer.alloc(16), Nonce: nonce, OriginalMessageSize: plain.length, Reserved: 0, Flags: TransformFlags.ENCRYPTED, SessionId: sessionId });
  const aad = header.subarray(TransformHdr.Nonce, TRANSFORM_HEADER_SIZE);
  const c = alg.ccm ? createCipheriv(alg.name as 'aes-128-ccm', key, nonce.subarray(0, alg.nonce), { authTagLength: TAG }) : createCipheriv(alg.name as 'aes-128-gcm', key, nonce.subarray(0, alg.nonce), { authTagLength: TAG });
  c.setAAD(aad, { plaintextLength: plain.length });
  const body = Buffer.concat([c.update(plain), c.final()]);
  c.getAuthTag().copy(header, TransformHdr.Signature);
  return Buffer.concat([header, body]);
}

/** The SessionId a TRANSFORM_HEADER names (to find the key), after checking its framing. */
export function transformSessionId(frame: Buffer): bigint {
  return decodeTransformHeader(frame).SessionId;
}

/**
 * Decrypts and authenticates an encrypted frame. A bad tag, size or flag is a ProtocolError
 * without status: MS-SMB2 3.3.5.2.1 drops the connection.
 */
export function decryptMessage(frame: Buffer, key: Buffer, cipher: number): Buffer {
  const h = decodeTransformHeader(frame);
  const alg = algorithm(cipher);
  const body = frame.subarray(TRANSFORM_HEADER_SIZE);
  if (h.Flags !== TransformFlags.ENCRYPTED || h.OriginalMessageSize !== body.length) {
    throw new ProtocolError(`TRANSFORM_HEADER Flags ${h.Flags} / OriginalMessageSize ${h.OriginalMessageSize} do not match a ${body.length}-byte message`);
  }
  const nonce = h.Nonce.subarray(0, alg.nonce);
  const d = alg.ccm ? createDecipheriv(alg.name as 'aes-128-ccm', key, nonce, { authTagLength: TAG }) : createDecipheriv(alg.name as 'aes-128-gcm', key, nonce, { authTagLength: TAG });
  d.setAuthTag(h.Signature);
  d.setAAD(frame.subarray(TransformHdr.Nonce, TRANSFORM_HEADER_SIZE), { plaintextLength: body.length });
  try {
    return Buffer.concat([d.update(body), d.final()]);
  } catch {
    throw new ProtocolError('encrypted message does not authenticate');
  }
}
