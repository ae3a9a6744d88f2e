/**
 * Shared checks for codecs: exact round trips, typed errors on every truncation and on
 * random corruption, and stream feeding split at every byte.
 */
import assert from 'node:assert/strict';
import { WireError } from '../../src/control/errors.js';
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
