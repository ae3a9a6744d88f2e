/**
 * src/offload/abi.ts against bpf/include/dsr_abi.h, so the two sides cannot drift: struct sizes
 * and member offsets from the BTF of every compiled object (`bpftool -j btf dump file`), the
 * numeric DSR_ macros as the compiler sees them (`clang -dM -E`), and the attach and program
 * types native.ts passes to the kernel from the build's vmlinux.h. Needs the build
 * (npm run build), not root.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  ABI,
  decodePort,
  decodePortStatKey,
  encodePort,
  encodePortStatKey,
  encodeSwitch,
  PASS_REASON_CODES,
  STRUCTS,
  type StructLayout,
} from '../../src/offload/abi.js';
import { PassReason } from '../../src/offload/offload.js';
import { AttachType, distPath, ProgType } from '../../src/offload/native.js';

const HEADER = fileURLToPath(new URL('../../../bpf/include/dsr_abi.h', import.meta.url));

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

function btfTypes(object: string): Map<number, BtfType> {
  // Debian installs bpftool in /usr/sbin, which a user's PATH may lack.
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const doc = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object], { encoding: 'utf8', maxBuffer: 64 << 20, env })) as { types: BtfType[] };
  return new Map(doc.types.map((t) => [t.id, t]));
}

function typeSize(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  if (t.kind === 'ARRAY') return (t.nr_elems ?? 0) * typeSize(types, t.type_id ?? 0);
  if (t.size !== undefined) return t.size;
  return typeSize(types, t.type_id ?? 0);
}

/** The layout of every dsr_* struct in the object's BTF, in StructLayout form. */
function btfLayouts(object: string): Map<string, StructLayout> {
  const types = btfTypes(object);
  const layouts = new Map<string, StructLayout>();
  for (const t of types.values()) {
    if (t.kind !== 'STRUCT' || !t.name?.startsWith('dsr_')) continue;
    const fields = Object.fromEntries((t.members ?? []).map((m) => [m.name, { offset: m.bits_offset / 8, size: typeSize(types, m.type_id) }]));
    layouts.set(t.name, { name: t.name, size: t.size ?? 0, fields });
  }
  return layouts;
}

const objects = readdirSync(distPath('bpf')).filter((f) => f.endsWith('.bpf.o'));

describe('abi.ts mirrors dsr_abi.h', () => {
  test('the build produced BPF objects', () => {
    assert.ok(objects.length > 0, 'no dist/bpf/*.bpf.o: run npm run build');
  });

  test('every dsr_ struct in the objects\' BTF has abi.ts\'s size, members and offsets', () => {
    const mirrored = new Map(STRUCTS.map((s) => [s.name, s]));
    const seen = new Set<string>();
    for (const o of objects) {
      for (const [name, layout] of btfLayouts(distPath(`bpf/${o}`))) {
        const mine = mirrored.get(name);
        assert.ok(mine, `struct ${name} (in ${o}) has no layout in abi.ts STRUCTS`);
        // deepEqual on plain objects ignores key order: compare the member order too.
        assert.deepEqual(Object.keys(layout.fields), Object.keys(mine.fields), `struct ${name} member order`);
        assert.deepEqual(layout, mine, `struct ${name} in ${o}`);
        seen.add(name);
      }
    }
    assert.deepEqual([...mirrored.keys()].filter((n) => !seen.has(n)), [], 'abi.ts structs that no object uses');
  });

  test('every numeric DSR_ macro of the header has abi.ts\'s value, and nothing else is in ABI', () => {
    const macros = new Map<string, number>();
    for (const line of execFileSync('clang', ['-dM', '-E', '-x', 'c', HEADER], { encoding: 'utf8' }).split('\n')) {
      const m = /^#define (DSR_\w+) (-?\d+)$/.exec(line);
      if (m?.[1] && m[2]) macros.set(m[1], Number(m[2]));
    }
    assert.ok(macros.size > 10, 'macros found');
    assert.deepEqual(Object.fromEntries([...macros].sort()), Object.fromEntries(Object.entries(ABI).sort()));
  });

  test('every macro of the header is a plain number, so the comparison above sees all of them', () => {
    const defines = [...readFileSync(HEADER, 'utf8').matchAll(/^#define (DSR_\w+)(.*)$/gm)].filter((m) => m[1] !== 'DSR_ABI_H');
    for (const m of defines) assert.match(m[2] ?? '', /^ -?\d+$/, `#define ${m[1]}${m[2]}`);
  });

  test('pass reason codes: one per PassReason, distinct, below DSR_PASS_REASON_MAX, 0 reserved for forwarded', () => {
    const codes = Object.values(PassReason).map((r) => PASS_REASON_CODES[r]);
    assert.equal(new Set(codes).size, codes.length);
    for (const c of codes) assert.ok(c > ABI.DSR_PASS_NONE && c < ABI.DSR_PASS_REASON_MAX);
    assert.equal(ABI.DSR_PASS_REASON_MAX, codes.length + 1);
  });

  test('attach and program types match the running kernel\'s enums (vmlinux.h of the build)', () => {
    const vmlinux = readFileSync(distPath('bpf/vmlinux.h'), 'utf8');
    const value = (name: string) => Number(new RegExp(`\\b${name} = (\\d+),`).exec(vmlinux)?.[1]);
    assert.deepEqual(
      { ...AttachType },
      {
        SK_SKB_STREAM_PARSER: value('BPF_SK_SKB_STREAM_PARSER'),
        SK_SKB_STREAM_VERDICT: value('BPF_SK_SKB_STREAM_VERDICT'),
        TCX_INGRESS: value('BPF_TCX_INGRESS'),
        TCX_EGRESS: value('BPF_TCX_EGRESS'),
      },
    );
    assert.deepEqual({ ...ProgType }, { SCHED_CLS: value('BPF_PROG_TYPE_SCHED_CLS'), SK_SKB: value('BPF_PROG_TYPE_SK_SKB') });
  });
});

describe('abi.ts codecs', () => {
  test('dsr_port round-trips; addresses are network order, integers little-endian', () => {
    const p = { server: 0x01020304, address: '198.18.1.11', mac: '02:00:00:00:01:0a' };
    const b = encodePort(p);
    assert.equal(b.toString('hex'), '04030201' + 'c612010b' + '02000000010a' + '0000');
    assert.deepEqual(decodePort(b), p);
    const open = { server: 5, address: '198.18.1.13', open: true };
    const o = encodePort(open);
    assert.equal(o.toString('hex'), '05000000' + 'c612010d' + '000000000000' + '0100', 'no MAC pinned: zeros; flags DSR_PORT_F_OPEN');
    assert.deepEqual(decodePort(o), open);
  });

  test('dsr_switch and dsr_port_stat_key encode as the header lays them out', () => {
    assert.equal(encodeSwitch({ address: '198.18.1.1' }).toString('hex'), 'c6120101' + '00'.repeat(12), 'no direct-path peer, no probe address');
    assert.equal(encodeSwitch({ address: '198.18.1.1', probe: '198.18.1.2' }).toString('hex'), 'c6120101' + '00'.repeat(8) + 'c6120102', 'the probe address last');
    const k = { server: 3, port: 2, dir: 'egress' as const, reason: 'dst-ip' as const };
    const b = encodePortStatKey(k);
    assert.equal(b.toString('hex'), '03000000' + '0200' + '01' + '04');
    assert.deepEqual(decodePortStatKey(b), k);
  });

  test('bad addresses and lengths are refused', () => {
    assert.throws(() => encodePort({ server: 1, address: '198.18.1', mac: '02:00:00:00:01:0a' }), /not an IPv4 address/);
    assert.throws(() => encodePort({ server: 1, address: '198.18.1.1', mac: '02:00:00:00:01' }), /not a MAC address/);
    assert.throws(() => decodePort(Buffer.alloc(15)), /15 bytes, expected 16/);
  });
});
