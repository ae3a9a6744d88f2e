/**
 * Shared pieces of the file-operation codec tests: arbitraries for wire fields and one battery
 * of checks every codec goes through (real captures, truncations, padding, properties).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SMB2_HEADER_SIZE } from '../../../../src/control/wire/smb2/constants.js';
import type { FileId } from '../../../../src/control/wire/smb2/file-id.js';
import { header } from '../../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../../src/control/wire/smb2/message.js';
import { assertOnlyWireErrors, assertTruncationsTyped, mutated } from '../../../helpers/wire.js';

/** The body of a captured message on a fresh header, or on the captured one when `original` is given. */
export function frame(command: number, body: Buffer, original?: Buffer): Buffer {
  return original ? Buffer.concat([original.subarray(0, SMB2_HEADER_SIZE), body]) : encodeMessage(header({ Command: command }), body);
}

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
export const bytes = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));
export const bytesOf = (length: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: length, maxLength: length }).map((b) => Buffer.from(b));
export const guid = bytesOf(16);
export const fileId: fc.Arbitrary<FileId> = fc.record({ Persistent: u64, Volatile: u64 });
/** The OpenAttributes fields (CREATE and CLOSE responses), to spread into a record model. */
export const openAttributes = {
  CreationTime: u64,
  LastAccessTime: u64,
  LastWriteTime: u64,
  ChangeTime: u64,
  AllocationSize: u64,
  EndofFile: u64,
  FileAttributes: u32,
};
/** Any UTF-16 code units, lone surrogates included (they survive the round trip). */
export const utf16 = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength });

/**
 * `actual` restricted to the keys `expected` has, recursively, as plain objects: decoded objects
 * also carry the offsets the encoder chose, which generated objects leave out (and fast-check
 * records have a null prototype).
 */
export function project(actual: unknown, expected: unknown): unknown {
  if (Array.isArray(expected) && Array.isArray(actual)) return actual.map((a, i) => project(a, expected[i]));
  if (expected === null || typeof expected !== 'object' || Buffer.isBuffer(expected)) return actual;
  if (actual === null || typeof actual !== 'object') return actual;
  const a = actual as Record<string, unknown>;
  return Object.fromEntries(Object.keys(expected).map((k) => [k, project(a[k], (expected as Record<string, unknown>)[k])]));
}

export interface CodecCase<T> {
  name: string;
  command: number;
  decode: (msg: Buffer) => T;
  /** Returns the body only. */
  encode: (v: T) => Buffer;
  /** Real messages (header included); each must re-encode to the same bytes. */
  captures: Record<string, Buffer>;
  arbitrary: fc.Arbitrary<T>;
}

/**
 * Registers the standard checks for one codec: byte-exact round trip of every capture, trailing
 * compound padding ignored, typed errors on every truncation; generated objects survive
 * encode -> decode -> encode with the same value and bytes; random corruption of the captures
 * either decodes (and then re-encodes) or throws a WireError, never anything else.
 */
export function checkCodec<T>(c: CodecCase<T>): void {
  const samples = Object.values(c.captures);
  test(`${c.name}: captures round-trip byte for byte and tolerate compound padding`, () => {
    for (const [label, msg] of Object.entries(c.captures)) {
      const v = c.decode(msg);
      assert.equal(frame(c.command, c.encode(v), msg).toString('hex'), msg.toString('hex'), `${label} re-encoded differently`);
      for (let pad = 1; pad < 8; pad++) {
        assert.deepEqual(c.decode(Buffer.concat([msg, Buffer.alloc(pad)])), v, `${label} with ${pad} bytes of padding`);
      }
    }
  });
  test(`${c.name}: every truncation of a capture is a typed error or decodes`, () => {
    for (const msg of samples) assertTruncationsTyped(c.decode, msg, c.name);
    for (const msg of samples) assert.throws(() => c.decode(msg.subarray(0, SMB2_HEADER_SIZE + 1)), { name: 'WireError' });
  });
  test(`${c.name}: property: generated values round-trip`, () => {
    fc.assert(
      fc.property(c.arbitrary, (v) => {
        const msg = frame(c.command, c.encode(v));
        const back = c.decode(msg);
        assert.deepEqual(project(back, v), project(v, v));
        assert.equal(frame(c.command, c.encode(back)).toString('hex'), msg.toString('hex'));
      }),
    );
  });
  test(`${c.name}: property: corrupted captures decode or throw WireError`, () => {
    fc.assert(
      fc.property(mutated(fc.constantFrom(...samples), SMB2_HEADER_SIZE), (msg) => {
        assertOnlyWireErrors(() => c.encode(c.decode(msg)), c.name);
      }),
      { numRuns: 300 },
    );
  });
}

/** Asserts that decode(msg) throws a WireError carrying STATUS_INVALID_PARAMETER whose message matches `re`. */
export function assertInvalid(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.equal((e as Error).name, 'WireError');
    assert.equal((e as { status?: number }).status, 0xc000000d);
    assert.match((e as Error).message, re);
    return true;
  });
}
