import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, WireError } from '../../../src/control/errors.js';
import { NdrReader, NdrWriter, readStruct, structWireSize, writeStruct } from '../../../src/control/wire/ndr.js';
import { assertOnlyWireErrors, hex } from '../../helpers/wire.js';
import { captureStub } from './fuzz-targets-rpc.js';

const isWireError = (code?: ErrorCode) => (e: unknown) => e instanceof WireError && (code === undefined || e.code === code);

const ENTRY = [
  ['name', 'wstring'],
  ['type', 'u32'],
  ['remark', 'wstring'],
] as const;

test('a unique [string] wchar_t* is a referent id, then MaximumCount, Offset, ActualCount and the NUL-terminated characters', () => {
  const w = new NdrWriter();
  w.pointer('127.0.0.1', (s) => w.wstring(s)).flush();
  w.u32(1);
  // The first bytes of rpcclient's NetrShareEnum stub: ServerName, then Level (aligned to 4).
  assert.equal(w.finish().toString('hex'), captureStub('enumLevel1').subarray(0, 40).toString('hex'));
});

test('pointees are deferred past the embedding construct, depth first', () => {
  // A pointer to a container {count, pointer to array of ENTRY}: the shape of SHARE_INFO_1_CONTAINER.
  const entries = [
    { name: 'a', type: 0, remark: 'x' },
    { name: 'bc', type: 3, remark: null },
  ];
  const w = new NdrWriter();
  w.pointer(entries, (list) => {
    w.u32(list.length);
    w.pointer(list, (l) => w.conformantArray(l, (e) => writeStruct(w, ENTRY, e)));
  });
  w.flush().u32(0xdeadbeef);
  const want = hex(`
    00000200
    02000000 04000200
    02000000 08000200 00000000 0c000200 10000200 03000000 00000000
    02000000 00000000 02000000 6100 0000
    02000000 00000000 02000000 7800 0000
    03000000 00000000 03000000 6200 6300 0000 0000
    efbeadde`);
  const bytes = w.finish();
  assert.equal(bytes.toString('hex'), want.toString('hex'));

  const r = new NdrReader(bytes);
  let got: { count: number; list: ReturnType<typeof readStruct<typeof ENTRY>>[] | null } | null = null;
  r.pointer('container', () => {
    const c = { count: r.u32('count'), list: null as ReturnType<typeof readStruct<typeof ENTRY>>[] | null };
    got = c;
    r.pointer('array', () => (c.list = r.conformantArray('array', structWireSize(ENTRY), () => readStruct(r, ENTRY))));
  });
  r.flush();
  assert.deepEqual(got, { count: 2, list: entries });
  assert.equal(r.u32('tail'), 0xdeadbeef);
});

test('scalars are naturally aligned relative to the stub start', () => {
  const w = new NdrWriter();
  w.u8(1).u16(2).u8(3).u32(4).i32(-1);
  const bytes = w.finish();
  assert.equal(bytes.toString('hex'), '0100020003000000' + '04000000' + 'ffffffff');
  const r = new NdrReader(bytes);
  assert.deepEqual([r.u8('a'), r.u16('b'), r.u8('c'), r.u32('d'), r.i32('e')], [1, 2, 3, 4, -1]);
});

test('hostile counts are typed errors, not allocations', () => {
  const huge = (prefix: string) => hex(prefix + '00000080' + '00000000' + '01000000' + '0000');
  assert.throws(() => new NdrReader(huge('')).wstring('s'), isWireError(ErrorCode.WIRE_BAD_FIELD), 'string MaximumCount 2^31');
  assert.throws(() => new NdrReader(hex('00000080 00000000')).conformantArray('a', 12, () => 0), isWireError(ErrorCode.WIRE_BAD_FIELD));
  assert.throws(() => new NdrReader(hex('ffffffff 00')).byteArray('b'), isWireError(ErrorCode.WIRE_TRUNCATED));
  assert.throws(() => new NdrReader(hex('02000000 00000000 ffffffff 61000000')).wstring('s'), isWireError(), 'ActualCount 2^32-1');
});

test('string rules: Offset 0, 1 <= ActualCount <= MaximumCount, terminating NUL', () => {
  const cases: [string, string][] = [
    ['offset 1', '02000000 01000000 01000000 0000'],
    ['actual 0', '02000000 00000000 00000000'],
    ['actual > max', '01000000 00000000 02000000 61000000'],
    ['no NUL', '02000000 00000000 02000000 61006200'],
    ['truncated', '02000000 00000000 02000000 6100'],
  ];
  for (const [what, h] of cases) assert.throws(() => new NdrReader(hex(h)).wstring('s'), isWireError(), what);
  assert.equal(new NdrReader(hex('03000000 00000000 02000000 6100 0000 0000')).wstring('s'), 'a');
});

test('sized byte arrays must match their size_is field both ways', () => {
  const SD = [
    ['reserved', 'u32'],
    ['sd', 'bytes'],
  ] as const;
  const w = new NdrWriter();
  writeStruct(w, SD, { reserved: 3, sd: Buffer.from([1, 2, 3]) });
  const bytes = w.finish();
  const r = new NdrReader(bytes);
  const v = readStruct(r, SD);
  r.flush();
  assert.deepEqual(v, { reserved: 3, sd: Buffer.from([1, 2, 3]) });
  assert.throws(() => writeStruct(new NdrWriter(), SD, { reserved: 2, sd: Buffer.from([1, 2, 3]) }), isWireError(ErrorCode.WIRE_ENCODE));
  bytes.writeUInt32LE(2, 0);
  const bad = new NdrReader(bytes);
  readStruct(bad, SD);
  assert.throws(() => bad.flush(), isWireError(ErrorCode.WIRE_BAD_FIELD));
});

test('writeStruct refuses values of the wrong type', () => {
  const loose = { name: 'a', type: '1', remark: null } as unknown as { name: string; type: number; remark: null };
  assert.throws(() => writeStruct(new NdrWriter(), ENTRY, loose), isWireError(ErrorCode.WIRE_ENCODE));
});

const entryArb = fc.record({
  name: fc.option(fc.string({ unit: 'binary', maxLength: 20 }), { nil: null }),
  type: fc.nat({ max: 0xffffffff }),
  remark: fc.option(fc.string({ maxLength: 20 }), { nil: null }),
});

function writeEntries(entries: { name: string | null; type: number; remark: string | null }[]): Buffer {
  const w = new NdrWriter();
  w.pointer(entries, (l) => w.conformantArray(l, (e) => writeStruct(w, ENTRY, e)));
  return w.finish();
}

function readEntries(b: Buffer): unknown {
  const r = new NdrReader(b);
  let out: unknown = null;
  r.pointer('list', () => (out = r.conformantArray('list', structWireSize(ENTRY), () => readStruct(r, ENTRY))));
  r.flush();
  return out;
}

test('property: arrays of structures with strings round-trip', () => {
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 8 }), (entries) => {
      // Lone surrogates do not survive UTF-16 either way; compare what the wire can carry.
      const canon = entries.map((e) => ({ ...e, name: e.name === null ? null : Buffer.from(e.name, 'utf16le').toString('utf16le') }));
      assert.deepEqual(readEntries(writeEntries(entries)), canon);
    }),
  );
});

test('property: truncated or corrupted encodings only raise WireErrors', () => {
  fc.assert(
    fc.property(fc.array(entryArb, { minLength: 1, maxLength: 4 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (entries, at, v) => {
      const b = writeEntries(entries);
      assertOnlyWireErrors(() => readEntries(b.subarray(0, at % b.length)), 'truncated');
      b[at % b.length] = v;
      assertOnlyWireErrors(() => readEntries(b), 'corrupted');
    }),
  );
});
