/**
 * Shared checks for codecs: exact round trips, typed errors on every truncation and on
 * random corruption, and stream feeding split at every byte.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AuthError, ErrorCode, WireError } from '../../src/control/errors.js';
import { encodeFrame, FrameDecoder } from '../../src/control/wire/netbios.js';

/** decode(bytes) then encode gives the same bytes; returns the decoded value. */
export function assertRoundTrip<T>(decode: (b: Buffer) => T, encode: (v: T) => Buffer, bytes: Buffer, what = 'message'): T {
  const v = decode(bytes);
  const again = encode(v);
  assert.equal(again.toString('hex'), bytes.toString('hex'), `${what}: re-encoded bytes differ`);
  return v;
}

/** Runs fn; it may return, or throw a WireError, but nothing else. */
export function assertOnlyWireErrors(fn: () => unknown, what: string): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof WireError)) {
      assert.fail(`${what}: threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message} instead of a WireError`);
    }
  }
}

/** Every strict prefix of `bytes` either decodes or throws a WireError. */
export function assertTruncationsTyped(decode: (b: Buffer) => unknown, bytes: Buffer, what = 'message'): void {
  for (let n = 0; n < bytes.length; n++) {
    assertOnlyWireErrors(() => decode(Buffer.from(bytes.subarray(0, n))), `${what} truncated to ${n}`);
  }
}

/**
 * Frames `payloads`, feeds the stream to a FrameDecoder split at every byte position (two
 * pushes) and one byte at a time, and checks the same payloads come out each time.
 */
export function assertSplitFeeding(payloads: Buffer[], maxFrame = 1 << 20): void {
  const stream = Buffer.concat(payloads.map(encodeFrame));
  const want = payloads.map((p) => p.toString('hex'));
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder(maxFrame);
    const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
    assert.deepEqual(got.map((p) => p.toString('hex')), want, `split at ${cut}`);
    assert.equal(d.pending, 0);
  }
  const d = new FrameDecoder(maxFrame);
  const got: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) got.push(...d.push(stream.subarray(i, i + 1)));
  assert.deepEqual(got.map((p) => p.toString('hex')), want, 'byte at a time');
}

/** Hex with any whitespace, in one or more pieces, as captures are laid out in the tests. */
export const hex = (...parts: string[]): Buffer => Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');

/** fc.record with an ordinary prototype, so that deepStrictEqual can compare it with decoded objects. */
export const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(model, { noNullPrototype: true });

/**
 * Valid messages with one to eight bytes at or after `from` overwritten, and sometimes cut short,
 * for the "decodes or throws a WireError" properties of the tests.
 */
export function mutated(valid: fc.Arbitrary<Buffer>, from = 0): fc.Arbitrary<Buffer> {
  const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 });
  return fc.tuple(valid, edits, fc.option(fc.nat())).map(([bytes, changes, cut]) => {
    const out = Buffer.from(bytes);
    const span = out.length - from;
    if (span > 0) for (const [i, v] of changes) out[from + (i % span)] = v;
    return cut === null ? out : out.subarray(0, cut % (out.length + 1));
  });
}

/** Property: every mutation of a `valid` message decodes or throws a WireError. */
export function assertMutationsTyped(
  decode: (b: Buffer) => unknown,
  valid: fc.Arbitrary<Buffer>,
  what: string,
  from = 0,
  numRuns = 1000,
): void {
  fc.assert(fc.property(mutated(valid, from), (b) => assertOnlyWireErrors(() => decode(b), what)), { numRuns });
}

/** assert.throws predicate: a WireError whose message matches; with `statusless`, also one that ends the connection. */
export const wireError =
  (pattern: RegExp, statusless = false) =>
  (e: unknown): boolean =>
    e instanceof WireError && pattern.test(e.message) && (!statusless || e.status === undefined);

/** assert.throws predicate: an encoder refused its input. */
export const encodeError = (e: unknown): boolean => e instanceof WireError && e.code === ErrorCode.WIRE_ENCODE;

/**
 * A fuzz target (Jazzer.js shape) around `fn`: typed errors (WireError, and AuthError for
 * tokens) are the expected answer to bad bytes; anything else escapes as a finding.
 */
export function onlyTypedErrors(fn: (data: Buffer) => unknown): (data: Buffer) => void {
  return (data) => {
    try {
      fn(data);
    } catch (e) {
      if (!(e instanceof WireError || e instanceof AuthError)) throw e;
    }
  };
}
