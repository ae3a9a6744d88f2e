import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { aesCmac, aesGmac, constantTimeEqual, hmacMd5, kdfCounterHmacSha256, md5, Rc4, rc4 } from '../../../src/control/auth/crypto.js';
import { hex } from './vectors.js';

// RFC 4493 section 4: K, and the four example messages (prefixes of one 64-byte M).
const K = hex('2b7e151628aed2a6abf7158809cf4f3c');
const M = hex(
  '6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51',
  '30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710',
);
const RFC4493 = [
  { len: 0, mac: 'bb1d6929e95937287fa37d129b756746' },
  { len: 16, mac: '070a16b46b4d4144f79bdd9dd04a287c' },
  { len: 40, mac: 'dfa66747de9ae63030ca32611497c827' },
  { len: 64, mac: '51f0bebf7e3b9d92fc49741779363cfe' },
];

test('AES-CMAC matches RFC 4493 section 4, examples 1-4', () => {
  for (const { len, mac } of RFC4493) assert.equal(aesCmac(K, M.subarray(0, len)).toString('hex'), mac, `Mlen = ${len}`);
});

test('AES-CMAC gives the same tag however the message is split into parts', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 6 }), (data, cuts) => {
      const buf = Buffer.from(data);
      const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
      const parts = [0, ...points, buf.length].slice(1).map((end, i, ends) => buf.subarray(i === 0 ? 0 : ends[i - 1]!, end));
      assert.equal(aesCmac(K, ...parts).toString('hex'), aesCmac(K, buf).toString('hex'));
    }),
  );
});

/** A reference CMAC one AES block at a time, straight from RFC 4493 2.4, to compare large inputs with. */
function cmacByBlocks(key: Buffer, m: Buffer): Buffer {
  const enc = (b: Buffer) => {
    const c = createCipheriv('aes-128-ecb', key, null);
    c.setAutoPadding(false);
    return c.update(b);
  };
  const dbl = (b: Buffer) => {
    const n = BigInt(`0x${b.toString('hex')}`) << 1n;
    const r = (n & ((1n << 128n) - 1n)) ^ (b[0]! & 0x80 ? 0x87n : 0n);
    return Buffer.from(r.toString(16).padStart(32, '0'), 'hex');
  };
  const k1 = dbl(enc(Buffer.alloc(16)));
  const n = Math.max(1, Math.ceil(m.length / 16));
  const complete = m.length > 0 && m.length % 16 === 0;
  const last = Buffer.alloc(16);
  m.copy(last, 0, (n - 1) * 16);
  if (!complete) last[m.length - (n - 1) * 16] = 0x80;
  const sub = complete ? k1 : dbl(k1);
  let x = Buffer.alloc(16);
  for (let i = 0; i < n; i++) {
    const block = i === n - 1 ? Buffer.from(last.map((v, j) => v ^ sub[j]!)) : m.subarray(i * 16, i * 16 + 16);
    x = enc(Buffer.from(block.map((v, j) => v ^ x[j]!)));
  }
  return x;
}

test('AES-CMAC of messages larger than its 64 KiB slices matches a block-by-block CMAC', () => {
  for (const len of [65535, 65536, 65537, 200_000, 3 * 65536 + 5]) {
    const m = Buffer.alloc(len);
    for (let i = 0; i < len; i++) m[i] = (i * 7 + 3) & 0xff;
    assert.equal(aesCmac(K, m).toString('hex'), cmacByBlocks(K, m).toString('hex'), `length ${len}`);
  }
});

test('AES-GMAC matches the NIST GCM test vectors with an empty plaintext', () => {
  // gcmEncryptExtIV128.rsp, [PTlen = 0, AADlen = 128, Taglen = 128], Count = 0.
  const key = hex('77be63708971c4e240d1cb79e8d77feb');
  const iv = hex('e0e00f19fed7ba0136a797f3');
  assert.equal(aesGmac(key, iv, hex('7a43ec1d9c0a5a78a0b16533a6213cab')).toString('hex'), '209fcc8d3675ed938e9c7166709dd946');
  // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 1: zero key and IV, nothing at all.
  assert.equal(aesGmac(Buffer.alloc(16), Buffer.alloc(12)).toString('hex'), '58e2fccefa7e3061367f1d57a4e7455a');
  // Splitting the additional data does not change the tag.
  assert.equal(aesGmac(key, iv, hex('7a43ec1d9c'), hex('0a5a78a0b16533a6213cab')).toString('hex'), '209fcc8d3675ed938e9c7166709dd946');
});

// RFC 6229 section 2: key stream bytes at offsets 0, 16, 240 and 4096 (values cross-checked with PyCryptodome's ARC4).
const RFC6229 = [
  {
    key: '0102030405',
    at: {
      0: 'b2396305f03dc027ccc3524a0a1118a8',
      16: '6982944f18fc82d589c403a47a0d0919',
      240: '28cb1132c96ce286421dcaadb8b69eae',
      4096: 'ff25b58995996707e51fbdf08b34d875',
    },
  },
  { key: '01020304050607', at: { 0: '293f02d47f37c9b633f2af5285feb46b', 4096: 'e74b0b9731227fd37c0ec08a47ddd8b8' } },
  { key: '0102030405060708090a0b0c0d0e0f10', at: { 0: '9ac7cc9a609d1ef7b2932899cde41b97', 1520: 'b40110c4190b5622a96116b0017ed297' } },
  { key: '833222772a', at: { 0: '80ad97bdc973df8a2e879e92a497efda', 4096: 'bf42c3018c2f7c66bfde524975768115' } },
];

test('RC4 key streams match RFC 6229', () => {
  for (const { key, at } of RFC6229) {
    const stream = rc4(hex(key), Buffer.alloc(4112));
    for (const [off, want] of Object.entries(at)) {
      assert.equal(stream.subarray(+off, +off + 16).toString('hex'), want, `key ${key} offset ${off}`);
    }
  }
});

test('RC4 keeps its state across calls: chunks equal one pass', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), fc.nat(300), (key, data, cut) => {
      const at = cut % (data.length + 1);
      const r = new Rc4(key);
      const chunked = Buffer.concat([r.update(data.subarray(0, at)), r.update(data.subarray(at))]);
      assert.deepEqual(chunked, rc4(key, data));
      assert.deepEqual(rc4(key, chunked), Buffer.from(data));
    }),
  );
});

test('KDF in counter mode matches the MS-SMB2 3.0 signing key of the Microsoft example', () => {
  // "SMB 2 and SMB 3 security in Windows 10" (see vectors.ts): SessionKey 7CD4... -> SigningKey 0B7E...
  const key = kdfCounterHmacSha256(hex('7cd451825d0450d235424e44ba6e78cc'), Buffer.from('SMB2AESCMAC\0'), Buffer.from('SmbSign\0'), 128);
  assert.equal(key.toString('hex'), '0b7e9c5cac36c0f6ea9ab275298cedce');
  const wide = kdfCounterHmacSha256(hex('7cd451825d0450d235424e44ba6e78cc'), Buffer.from('SMB2AESCMAC\0'), Buffer.from('SmbSign\0'), 256);
  assert.equal(wide.length, 32);
  assert.notEqual(wide.subarray(0, 16).toString('hex'), key.toString('hex'), 'L is part of the input');
});

test('MD5 and HMAC-MD5 match RFC 1321 and RFC 2104 examples, parts or not', () => {
  assert.equal(md5(Buffer.from('abc')).toString('hex'), '900150983cd24fb0d6963f7d28e17f72');
  assert.equal(md5(Buffer.from('a'), Buffer.from('bc')).toString('hex'), '900150983cd24fb0d6963f7d28e17f72');
  // RFC 2104 test case 2: key "Jefe", data "what do ya want for nothing?".
  const mac = hmacMd5(Buffer.from('Jefe'), Buffer.from('what do ya want '), Buffer.from('for nothing?'));
  assert.equal(mac.toString('hex'), '750c783e6ab0b503eaa86e310a5db738');
});

test('constantTimeEqual compares length and content', () => {
  assert.equal(constantTimeEqual(hex('0102'), hex('0102')), true);
  assert.equal(constantTimeEqual(hex('0102'), hex('0103')), false);
  assert.equal(constantTimeEqual(hex('0102'), hex('010203')), false);
});
