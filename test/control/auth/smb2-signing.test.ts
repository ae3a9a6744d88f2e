import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  encryptionKeys,
  PreauthIntegrity,
  signingAlgorithm,
  signingKey,
  signMessage,
  verifyMessage,
} from '../../../src/control/auth/smb2-signing.js';
import { ProtocolError, WireError } from '../../../src/control/errors.js';
import { joinCompound, splitCompound } from '../../../src/control/wire/smb2/compound.js';
import { Cipher, SigningAlgorithm, Smb2Command, Smb2Dialect, Smb2Flags } from '../../../src/control/wire/smb2/constants.js';
import { header, Hdr } from '../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../src/control/wire/smb2/message.js';
import { pythonWith, runPython } from './python.js';
import { BLOG, hex } from './vectors.js';

const ALGORITHMS = [SigningAlgorithm.HMAC_SHA256, SigningAlgorithm.AES_CMAC, SigningAlgorithm.AES_GMAC];

test('signing keys: the session key for 2.x, the Microsoft example values for 3.0 and 3.1.1', () => {
  assert.deepEqual(signingKey(Smb2Dialect.SMB210, BLOG.sessionKey30), BLOG.sessionKey30);
  assert.deepEqual(signingKey(Smb2Dialect.SMB202, Buffer.alloc(32, 7)), Buffer.alloc(16, 7), 'first 16 bytes of a longer key');
  assert.deepEqual(signingKey(Smb2Dialect.SMB202, Buffer.alloc(8, 7)), Buffer.concat([Buffer.alloc(8, 7), Buffer.alloc(8)]), 'zero-padded');
  assert.deepEqual(signingKey(Smb2Dialect.SMB300, BLOG.sessionKey30), BLOG.signingKey30);
  assert.deepEqual(signingKey(Smb2Dialect.SMB302, BLOG.sessionKey30), BLOG.signingKey30);
  assert.deepEqual(signingKey(Smb2Dialect.SMB311, BLOG.sessionKey, BLOG.preauthSession), BLOG.signingKey311);
  assert.throws(() => signingKey(Smb2Dialect.SMB311, BLOG.sessionKey), ProtocolError);
  assert.throws(() => signingKey(Smb2Dialect.WILDCARD, BLOG.sessionKey), ProtocolError);
});

test('encryption and application keys match the Microsoft examples for 3.0 and 3.1.1', () => {
  assert.deepEqual(encryptionKeys(Smb2Dialect.SMB300, BLOG.sessionKey30, undefined, Cipher.AES_128_CCM), {
    serverIn: BLOG.serverIn30,
    serverOut: BLOG.serverOut30,
    applicationKey: BLOG.applicationKey30,
  });
  assert.deepEqual(encryptionKeys(Smb2Dialect.SMB311, BLOG.sessionKey, BLOG.preauthSession, Cipher.AES_128_GCM), {
    serverIn: BLOG.serverIn311,
    serverOut: BLOG.serverOut311,
    applicationKey: BLOG.applicationKey311,
  });
  assert.throws(() => encryptionKeys(Smb2Dialect.SMB210, BLOG.sessionKey, undefined, Cipher.AES_128_CCM), ProtocolError);
});

const IMPACKET = pythonWith('impacket.crypto');
// impacket's own SP800-108 KDF for the 256-bit keys no published example covers.
const IMPACKET_KDF = `
import sys
from impacket.crypto import KDF_CounterMode
key, ctx = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
for label in (b'SMBC2SCipherKey\\x00', b'SMBS2CCipherKey\\x00'):
    print(KDF_CounterMode(key, label, ctx, 256).hex())
`;

const impacketSkip = { skip: !IMPACKET && 'no python3 with impacket' };

test('AES-256 ciphers get 256-bit keys from the full session key (cross-checked with impacket)', impacketSkip, () => {
  const full = Buffer.from([...Array(32).keys()]);
  for (const cipher of [Cipher.AES_256_GCM, Cipher.AES_256_CCM]) {
    const keys = encryptionKeys(Smb2Dialect.SMB311, full, BLOG.preauthSession, cipher);
    const out = runPython(IMPACKET!, IMPACKET_KDF, [full.toString('hex'), BLOG.preauthSession.toString('hex')]);
    const [serverIn, serverOut] = out.trim().split('\n');
    assert.equal(keys.serverIn.toString('hex'), serverIn);
    assert.equal(keys.serverOut.toString('hex'), serverOut);
    assert.equal(keys.applicationKey.length, 16);
    const narrow = encryptionKeys(Smb2Dialect.SMB311, full.subarray(0, 16), BLOG.preauthSession, Cipher.AES_128_GCM);
    assert.deepEqual(keys.applicationKey, narrow.applicationKey, 'the application key always comes from the 16-byte SessionKey');
  }
});

test('the preauth integrity chain reproduces the Microsoft example, and clones are independent', () => {
  const connection = new PreauthIntegrity();
  assert.deepEqual(connection.value, Buffer.alloc(64));
  connection.update(BLOG.negotiateRequest);
  assert.deepEqual(connection.value, BLOG.preauthAfterNegotiateRequest);
  connection.update(BLOG.negotiateResponse);
  assert.deepEqual(connection.value, BLOG.preauthAfterNegotiateResponse);
  const session = connection.clone().update(BLOG.sessionSetupRequest1).update(BLOG.sessionSetupResponse1).update(BLOG.sessionSetupRequest2);
  assert.deepEqual(session.value, BLOG.preauthSession);
  assert.deepEqual(connection.value, BLOG.preauthAfterNegotiateResponse, 'the connection chain is untouched');
  connection.value.fill(0);
  assert.deepEqual(connection.value, BLOG.preauthAfterNegotiateResponse, 'value is a copy');
  assert.throws(() => new PreauthIntegrity(Buffer.alloc(32)), WireError);
});

test('signing the final SESSION_SETUP response of the Microsoft example gives Windows\' AES-CMAC signature', () => {
  const signed = BLOG.sessionSetupResponse2;
  assert.equal(verifyMessage(signed, BLOG.signingKey311, SigningAlgorithm.AES_CMAC), true);
  const copy = Buffer.from(signed);
  copy.fill(0, Hdr.Signature, Hdr.Signature + 16);
  copy.writeUInt32LE(copy.readUInt32LE(Hdr.Flags) & ~Smb2Flags.SIGNED, Hdr.Flags);
  signMessage(copy, BLOG.signingKey311, signingAlgorithm(Smb2Dialect.SMB311));
  assert.equal(copy.toString('hex'), signed.toString('hex'));
  const tampered = Buffer.from(signed);
  tampered[tampered.length - 1]! ^= 1;
  assert.equal(verifyMessage(tampered, BLOG.signingKey311, SigningAlgorithm.AES_CMAC), false);
  assert.equal(verifyMessage(signed, BLOG.signingKey30, SigningAlgorithm.AES_CMAC), false, 'wrong key');
});

function sampleMessage(fields: Parameters<typeof header>[0], body = Buffer.from('body bytes of some length')): Buffer {
  return encodeMessage(header({ MessageId: 42n, SessionId: 0x100000000019n, ...fields }), body);
}

const MESSAGE_ID = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

test('every algorithm signs in place and verifies without changing the message', () => {
  const key = Buffer.alloc(16, 0x5a);
  for (const alg of ALGORITHMS) {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), MESSAGE_ID, fc.boolean(), fc.nat(), (body, messageId, response, flip) => {
        const flags = response ? Smb2Flags.SERVER_TO_REDIR : 0;
        const msg = sampleMessage({ Command: Smb2Command.READ, MessageId: messageId, Flags: flags }, Buffer.from(body));
        signMessage(msg, key, alg);
        assert.ok(msg.readUInt32LE(Hdr.Flags) & Smb2Flags.SIGNED);
        const before = Buffer.from(msg);
        assert.equal(verifyMessage(msg, key, alg), true);
        assert.deepEqual(msg, before);
        // Any bit outside the Signature field is covered.
        const at = flip % (msg.length - 16);
        msg[at < Hdr.Signature ? at : at + 16]! ^= 0x80;
        assert.equal(verifyMessage(msg, key, alg), false);
      }),
      { numRuns: 50 },
    );
  }
});

const CRYPTODOME = pythonWith('Cryptodome.Cipher.AES', 'Cryptodome.Hash.CMAC');
// Independent MACs: HMAC-SHA256 from hashlib, CMAC and GCM from PyCryptodome, the GMAC nonce per MS-SMB2 3.1.4.1.
const PY_SIGN = `
import sys, hmac, hashlib, struct
from Cryptodome.Cipher import AES
from Cryptodome.Hash import CMAC
key, msg = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
m = msg[:48] + bytes(16) + msg[64:]
flags, = struct.unpack_from('<I', msg, 16)
command, = struct.unpack_from('<H', msg, 12)
nonce = msg[24:32] + struct.pack('<I', (flags & 1) | (2 if command == 0x0c else 0))
g = AES.new(key, AES.MODE_GCM, nonce=nonce)
g.update(m)
g.encrypt(b'')
print(hmac.new(key, m, hashlib.sha256).hexdigest()[:32], CMAC.new(key, m, ciphermod=AES).hexdigest(), g.digest().hex())
`;

const cryptodomeSkip = { skip: !CRYPTODOME && 'no python3 with PyCryptodome' };

test('signatures agree with PyCryptodome and hashlib, GMAC nonce of responses and CANCEL included', cryptodomeSkip, () => {
  const key = hex('73fe7a9a77bef0bde49c650d8ccb5f76');
  // SMB2_FLAGS_SIGNED is set first: it is part of what gets signed.
  const cases = [
    sampleMessage({ Command: Smb2Command.CREATE, Flags: Smb2Flags.SIGNED }),
    sampleMessage({ Command: Smb2Command.CREATE, Flags: Smb2Flags.SIGNED | Smb2Flags.SERVER_TO_REDIR }, Buffer.alloc(5000, 3)),
    sampleMessage({ Command: Smb2Command.CANCEL, MessageId: 0xfedcba9876543210n, Flags: Smb2Flags.SIGNED | Smb2Flags.ASYNC_COMMAND }),
  ];
  for (const msg of cases) {
    const want = runPython(CRYPTODOME!, PY_SIGN, [key.toString('hex'), msg.toString('hex')]).trim().split(' ');
    ALGORITHMS.forEach((alg, i) => {
      const copy = Buffer.from(msg);
      signMessage(copy, key, alg);
      assert.equal(copy.subarray(Hdr.Signature, Hdr.Signature + 16).toString('hex'), want[i], `algorithm ${alg}`);
    });
  }
});

test('each message of a compound chain is signed over its padding and verifies after the split', () => {
  const key = Buffer.alloc(16, 1);
  const msgs = [
    sampleMessage({ Command: Smb2Command.CREATE, Flags: Smb2Flags.SERVER_TO_REDIR }, Buffer.alloc(13, 1)),
    sampleMessage({ Command: Smb2Command.READ, Flags: Smb2Flags.SERVER_TO_REDIR | Smb2Flags.RELATED_OPERATIONS }, Buffer.alloc(7, 2)),
    sampleMessage({ Command: Smb2Command.CLOSE, Flags: Smb2Flags.SERVER_TO_REDIR | Smb2Flags.RELATED_OPERATIONS }, Buffer.alloc(24, 3)),
  ];
  const frame = joinCompound(msgs);
  const parts = splitCompound(frame);
  for (const p of parts) signMessage(p, key, SigningAlgorithm.AES_CMAC);
  for (const p of splitCompound(frame)) assert.equal(verifyMessage(p, key, SigningAlgorithm.AES_CMAC), true);
  // The padding after the first message is covered.
  const padded = splitCompound(frame)[0]!;
  padded[padded.length - 1]! ^= 1;
  assert.equal(verifyMessage(padded, key, SigningAlgorithm.AES_CMAC), false);
});

test('algorithm selection by dialect, and refusals', () => {
  assert.equal(signingAlgorithm(Smb2Dialect.SMB202), SigningAlgorithm.HMAC_SHA256);
  assert.equal(signingAlgorithm(Smb2Dialect.SMB210), SigningAlgorithm.HMAC_SHA256);
  assert.equal(signingAlgorithm(Smb2Dialect.SMB300), SigningAlgorithm.AES_CMAC);
  assert.equal(signingAlgorithm(Smb2Dialect.SMB302, SigningAlgorithm.AES_GMAC), SigningAlgorithm.AES_CMAC);
  assert.equal(signingAlgorithm(Smb2Dialect.SMB311), SigningAlgorithm.AES_CMAC);
  assert.equal(signingAlgorithm(Smb2Dialect.SMB311, SigningAlgorithm.AES_GMAC), SigningAlgorithm.AES_GMAC);
  assert.throws(() => signingAlgorithm(Smb2Dialect.WILDCARD), ProtocolError);
  assert.throws(() => signMessage(Buffer.alloc(63), Buffer.alloc(16), SigningAlgorithm.AES_CMAC), WireError);
  assert.equal(verifyMessage(Buffer.alloc(63), Buffer.alloc(16), SigningAlgorithm.AES_CMAC), false);
  assert.throws(() => signMessage(sampleMessage({ Command: 0 }), Buffer.alloc(16), 7), ProtocolError);
});
