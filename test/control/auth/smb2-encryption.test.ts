/**
 * SMB 3.x encryption: round trips for every cipher, tampering detected, nonces unique, and the
 * ciphertext checked by an independent AEAD (PyCryptodome, which impacket's SMB3 uses) with the
 * TRANSFORM_HEADER as additional data.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { decryptMessage, encryptMessage, NonceSource, transformSessionId } from '../../../src/control/auth/smb2-encryption.js';
import { Cipher } from '../../../src/control/wire/smb2/constants.js';
import { TRANSFORM_HEADER_SIZE, TransformHdr } from '../../../src/control/wire/smb2/transform.js';
import { pythonWith, runPython } from './python.js';

const CIPHERS = [
  ['AES-128-CCM', Cipher.AES_128_CCM, 16],
  ['AES-128-GCM', Cipher.AES_128_GCM, 16],
  ['AES-256-CCM', Cipher.AES_256_CCM, 32],
  ['AES-256-GCM', Cipher.AES_256_GCM, 32],
] as const;

const PY = pythonWith('Cryptodome.Cipher.AES');

const PY_DECRYPT = `
import sys
from Cryptodome.Cipher import AES
key, frame, mode = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3]
tag, nonce, aad, body = frame[4:20], frame[20:36], frame[20:52], frame[52:]
c = AES.new(key, AES.MODE_CCM, nonce=nonce[:11], mac_len=16) if mode == 'ccm' else AES.new(key, AES.MODE_GCM, nonce=nonce[:12])
c.update(aad)
print(c.decrypt_and_verify(body, tag).hex())
`;

describe('SMB2 encryption', () => {
  for (const [name, cipher, keyLength] of CIPHERS) {
    test(`${name}: what is encrypted decrypts, and a changed bit anywhere is refused`, () => {
      const key = randomBytes(keyLength);
      const plain = randomBytes(1000);
      const frame = encryptMessage(plain, key, cipher, 0x1122334455667788n, new NonceSource());
      assert.equal(frame.length, TRANSFORM_HEADER_SIZE + plain.length);
      assert.equal(transformSessionId(frame), 0x1122334455667788n);
      assert.notDeepEqual(frame.subarray(TRANSFORM_HEADER_SIZE), plain);
      assert.deepEqual(decryptMessage(frame, key, cipher), plain);
      for (const at of [TransformHdr.Signature, TransformHdr.Nonce, TransformHdr.SessionId, TRANSFORM_HEADER_SIZE + 500]) {
        const bad = Buffer.from(frame);
        bad[at]! ^= 1;
        assert.throws(() => decryptMessage(bad, key, cipher), /authenticate|OriginalMessageSize/);
      }
      assert.throws(() => decryptMessage(frame, randomBytes(keyLength), cipher), /authenticate/);
    });
  }

  test('nonces never repeat for one sender', () => {
    const n = new NonceSource();
    const seen = new Set<string>();
    for (let i = 0; i < 10000; i++) seen.add(n.next(11).toString('hex'));
    assert.equal(seen.size, 10000);
    assert.deepEqual(n.next(11).subarray(11), Buffer.alloc(5), 'unused nonce bytes are zero (MS-SMB2 2.2.41)');
  });

  test('an independent AEAD (PyCryptodome) opens what the DSR sealed', { skip: !PY && 'no python3 with PyCryptodome' }, () => {
    for (const [, cipher, keyLength] of CIPHERS) {
      const key = randomBytes(keyLength);
      const plain = randomBytes(333);
      const frame = encryptMessage(plain, key, cipher, 7n, new NonceSource());
      const mode = cipher === Cipher.AES_128_CCM || cipher === Cipher.AES_256_CCM ? 'ccm' : 'gcm';
      assert.equal(runPython(PY!, PY_DECRYPT, [key.toString('hex'), frame.toString('hex'), mode]).trim(), plain.toString('hex'));
    }
  });
});
