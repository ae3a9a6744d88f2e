import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, WireError } from '../../../src/control/errors.js';
import { encodeFrame, FrameDecoder } from '../../../src/control/wire/netbios.js';
import { assertSplitFeeding } from '../../helpers/wire.js';

test('frames survive every split of the stream', () => {
  assertSplitFeeding([Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(300, 7), Buffer.from([1])]);
});

test('keepalives are dropped, other session types close the stream', () => {
  const d = new FrameDecoder(100);
  assert.deepEqual(d.push(Buffer.concat([Buffer.from([0x85, 0, 0, 0]), encodeFrame(Buffer.from('x'))])), [Buffer.from('x')]);
  assert.throws(() => new FrameDecoder(100).push(Buffer.from([0x81, 0, 0, 4])), (e: unknown) => e instanceof WireError && e.code === ErrorCode.WIRE_FRAMING && e.status === undefined);
});

test('a frame over the maximum is refused as soon as its header arrives', () => {
  const d = new FrameDecoder(1000);
  assert.throws(() => d.push(Buffer.from([0, 0, 0x03, 0xe9])), (e: unknown) => e instanceof WireError && e.code === ErrorCode.WIRE_OVERSIZE);
  assert.deepEqual(new FrameDecoder(1000).push(encodeFrame(Buffer.alloc(1000))).map((b) => b.length), [1000]);
});

test('property: any payloads, any chunking, same frames', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), fc.array(fc.nat(40), { maxLength: 20 }), (payloads, cuts) => {
      const bufs = payloads.map((p) => Buffer.from(p));
      const stream = Buffer.concat(bufs.map(encodeFrame));
      const d = new FrameDecoder(64);
      const got: Buffer[] = [];
      let at = 0;
      for (const c of cuts) {
        got.push(...d.push(stream.subarray(at, at + c)));
        at = Math.min(stream.length, at + c);
      }
      got.push(...d.push(stream.subarray(at)));
      assert.deepEqual(got.map((b) => b.toString('hex')), bufs.map((b) => b.toString('hex')));
    }),
  );
});

test('property: frames never share bytes with the chunks, so a reader may reuse its buffer', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 600 }), { maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }), (payloads, cuts) => {
      const stream = Buffer.concat(payloads.map((p) => encodeFrame(Buffer.from(p))));
      const d = new FrameDecoder(1 << 20);
      // One buffer for every read, overwritten after each push: as a socket's `onread` buffer is.
      const reused = Buffer.alloc(97);
      const got: Buffer[] = [];
      for (let at = 0, i = 0; at < stream.length; i++) {
        const n = Math.min(cuts[i % cuts.length]!, stream.length - at);
        stream.copy(reused, 0, at, at + n);
        got.push(...d.push(reused.subarray(0, n)));
        reused.fill(0xee);
        at += n;
      }
      assert.deepEqual(got, payloads.map((p) => Buffer.from(p)));
      assert.equal(d.pending, 0);
    }),
  );
});
