/**
 * Small cryptographic primitives for NTLM and SMB2 signing, over node:crypto. Every MAC takes
 * its message as several parts so callers can leave a field out (an SMB2 Signature, an NTLM
 * MIC) without copying a large message.
 */
import { createCipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';

type Parts = readonly Uint8Array[];

export function md5(...parts: Parts): Buffer {
  const h = createHash('md5');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmacMd5(key: Uint8Array, ...parts: Parts): Buffer {
  const h = createHmac('md5', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmacSha256(key: Uint8Array, ...parts: Parts): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Equal length and equal bytes, in time independent of where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * SP800-108 KDF in counter mode with HMAC-SHA256, as MS-SMB2 3.1.4.2 uses it: one block
 * (i = 1, r = 32) over i || Label || 0x00 || Context || L, all integers 32-bit big-endian.
 * MS-SMB2's labels carry their own trailing NUL; the 0x00 separator comes on top of it.
 */
export function kdfCounterHmacSha256(key: Uint8Array, label: Uint8Array, context: Uint8Array, bits: 128 | 256): Buffer {
  const be32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  };
  return hmacSha256(key, be32(1), label, Buffer.of(0), context, be32(bits)).subarray(0, bits / 8);
}

const BLOCK = 16;
/** Large parts go through the CBC cipher in slices: the ciphertext node hands back (and we drop) stays small. */
const SLICE = 64 * 1024;

function aes128Block(key: Uint8Array, block: Uint8Array): Buffer {
  const c = createCipheriv('aes-128-ecb', key, null);
  c.setAutoPadding(false);
  return c.update(block);
}

/** RFC 4493 2.3: doubling in GF(2^128). */
function dbl(b: Buffer): Buffer {
  const out = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i++) out[i] = ((b[i]! << 1) | ((b[i + 1] ?? 0) >>> 7)) & 0xff;
  if (b[0]! & 0x80) out[BLOCK - 1]! ^= 0x87;
  return out;
}

/**
 * AES-128-CMAC (RFC 4493). Node has no CMAC, so this is the CBC-MAC of every block but the
 * last through node's bulk `aes-128-cbc` (zero IV), then the last block, XORed with subkey
 * K1 (complete) or K2 (padded), through the same cipher: its output is the tag.
 */
export function aesCmac(key: Uint8Array, ...parts: Parts): Buffer {
  const k1 = dbl(aes128Block(key, Buffer.alloc(BLOCK)));
  let total = 0;
  for (const p of parts) total += p.length;
  // The last block is complete unless the message is empty or not a multiple of 16 bytes.
  const lastLen = total - (Math.max(1, Math.ceil(total / BLOCK)) - 1) * BLOCK;
  const last = Buffer.alloc(BLOCK);
  const cbc = createCipheriv('aes-128-cbc', key, Buffer.alloc(BLOCK));
  cbc.setAutoPadding(false);
  let head = total - lastLen;
  let at = 0;
  for (const p of parts) {
    for (let off = 0; off < p.length; ) {
      if (head > 0) {
        const n = Math.min(head, SLICE, p.length - off);
        cbc.update(p.subarray(off, off + n));
        head -= n;
        off += n;
      } else {
        const n = p.length - off;
        last.set(p.subarray(off), at);
        at += n;
        off += n;
      }
    }
  }
  let subkey = k1;
  if (lastLen < BLOCK) {
    last[lastLen] = 0x80;
    subkey = dbl(k1);
  }
  for (let i = 0; i < BLOCK; i++) last[i]! ^= subkey[i]!;
  return cbc.update(last);
}

/**
 * AES-GMAC (RFC 4543): AES-GCM with an empty plaintext and the message as additional data;
 * the tag is the MAC. The key size (16 or 32 bytes) picks AES-128 or AES-256.
 */
export function aesGmac(key: Uint8Array, nonce: Uint8Array, ...parts: Parts): Buffer {
  const c = createCipheriv(key.length === 32 ? 'aes-256-gcm' : 'aes-128-gcm', key, nonce);
  for (const p of parts) c.setAAD(p);
  c.final();
  return c.getAuthTag();
}

/**
 * RC4 (ARCFOUR) keeping its state across calls, as NTLM's sealing handles need. Node's
 * OpenSSL 3 only has RC4 in the legacy provider (--openssl-legacy-provider), which the DSR
 * does not require, and NTLM needs so little of it that a plain implementation is enough.
 */
export class Rc4 {
  private readonly s = new Uint8Array(256);
  private i = 0;
  private j = 0;

  constructor(key: Uint8Array) {
    if (key.length === 0 || key.length > 256) throw new RangeError(`RC4 key of ${key.length} bytes`);
    const s = this.s;
    for (let n = 0; n < 256; n++) s[n] = n;
    for (let n = 0, j = 0; n < 256; n++) {
      j = (j + s[n]! + key[n % key.length]!) & 0xff;
      const t = s[n]!;
      s[n] = s[j]!;
      s[j] = t;
    }
  }

  /** Encrypts or decrypts (the same operation) the next bytes of the stream. */
  update(data: Uint8Array): Buffer {
    const s = this.s;
    const out = Buffer.alloc(data.length);
    let { i, j } = this;
    for (let n = 0; n < data.length; n++) {
      i = (i + 1) & 0xff;
      j = (j + s[i]!) & 0xff;
      const t = s[i]!;
      s[i] = s[j]!;
      s[j] = t;
      out[n] = data[n]! ^ s[(s[i]! + s[j]!) & 0xff]!;
    }
    this.i = i;
    this.j = j;
    return out;
  }
}

/** One-shot RC4 with a fresh key schedule. */
export function rc4(key: Uint8Array, data: Uint8Array): Buffer {
  return new Rc4(key).update(data);
}
