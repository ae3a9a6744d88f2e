/**
 * src/offload/abi.ts against bpf/include/dsr_abi.h, so the two sides cannot drift: struct sizes
 * and member offsets from BTF (`bpftool -j btf dump file`) of every compiled object and of the
 * header compiled alone (so a struct no program's BTF carries, like the ring buffer's record, is
 * checked too), map and program names, the numeric DSR_ macros as the compiler sees them
 * (`clang -dM -E`), and the attach and program types native.ts passes to the kernel from the
 * build's vmlinux.h. Needs the build (npm run build), not root.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  ABI,
  decodePort,
  decodePortStatKey,
  decodeRelayConn,
  decodeRelayEvent,
  decodeRelayFileId,
  decodeRelayFileKey,
  decodeRelayJournal,
  decodeRelayJournalKey,
  decodeRelaySessionKey,
  decodeRelaySock,
  decodeRelayTreeKey,
  encodePort,
  encodePortStatKey,
  encodeRelayConn,
  encodeRelayFileId,
  encodeRelayFileKey,
  encodeRelayJournalKey,
  encodeRelaySessionKey,
  encodeRelaySock,
  encodeRelayTreeKey,
  encodeSwitch,
  PASS_REASON_CODES,
  passReasonOf,
  PORT_OBJECT,
  PortMaps,
  PortProgs,
  RELAY_COUNTERS,
  RELAY_DIRECTIONS,
  RELAY_JOURNAL,
  RELAY_JOURNAL_SMALL,
  RELAY_OBJECT,
  RelayMaps,
  RelayProgs,
  type RelaySock,
  STRUCTS,
  type StructLayout,
} from '../../src/offload/abi.js';
import { PassReason } from '../../src/offload/offload.js';
import { REQUEST_FILE_ID_AT } from '../../src/control/wire/smb2/file-id.js';
import { SMB2_HEADER_SIZE, Smb2Command } from '../../src/control/wire/smb2/constants.js';
import { creditsFor } from '../../src/control/smb2/dispatch.js';
import { decodeFlushRequest, encodeFlushRequest } from '../../src/control/wire/smb2/flush.js';
import { decodeQueryInfoRequest, encodeQueryInfoRequest } from '../../src/control/wire/smb2/info.js';
import { decodeReadRequest, encodeReadRequest } from '../../src/control/wire/smb2/read.js';
import { decodeWriteRequest, encodeWriteRequest } from '../../src/control/wire/smb2/write.js';
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

const abiValue = (name: string): number | undefined => (ABI as Readonly<Record<string, number>>)[name];
/** The C spelling of a TypeScript name: 'backend-signed' -> BACKEND_SIGNED. */
const macroCase = (name: string): string => name.toUpperCase().replaceAll('-', '_');

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

/** Map (VAR of .maps) and program (FUNC) names in the object's BTF. */
function btfNames(object: string): Set<string> {
  return new Set([...btfTypes(object).values()].filter((t) => t.kind === 'VAR' || t.kind === 'FUNC').map((t) => t.name ?? ''));
}

/** Every struct the header declares, from the header compiled alone with a global pointer to each. */
function headerLayouts(): Map<string, StructLayout> {
  const names = [...readFileSync(HEADER, 'utf8').matchAll(/^struct (dsr_\w+) \{/gm)].map((m) => m[1] ?? '');
  const dir = mkdtempSync(join(tmpdir(), 'dsr-abi-'));
  try {
    const src = join(dir, 'abi.c');
    writeFileSync(src, ['#include "vmlinux.h"', '#include "dsr_abi.h"', ...names.map((n) => `struct ${n} *${n}_p;`), ''].join('\n'));
    execFileSync('clang', ['-g', '-O2', '-target', 'bpf', `-I${distPath('bpf')}`, `-I${dirname(HEADER)}`, '-c', src, '-o', join(dir, 'abi.o')]);
    const layouts = btfLayouts(join(dir, 'abi.o'));
    assert.deepEqual([...layouts.keys()].sort(), [...names].sort(), 'the header\'s structs in its BTF');
    return layouts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const mirrored = new Map(STRUCTS.map((s) => [s.name, s]));

/** A BTF layout against abi.ts's, member order included (deepEqual on plain objects ignores key order). */
function assertMirrored(layout: StructLayout, where: string): void {
  const mine = mirrored.get(layout.name);
  assert.ok(mine, `struct ${layout.name} (in ${where}) has no layout in abi.ts STRUCTS`);
  assert.deepEqual(Object.keys(layout.fields), Object.keys(mine.fields), `struct ${layout.name} member order`);
  assert.deepEqual(layout, mine, `struct ${layout.name} in ${where}`);
}

const objects = readdirSync(distPath('bpf')).filter((f) => f.endsWith('.bpf.o'));

describe('abi.ts mirrors dsr_abi.h', () => {
  test('the build produced both programs\' objects', () => {
    assert.ok(objects.includes(PORT_OBJECT) && objects.includes(RELAY_OBJECT), `dist/bpf has ${objects.join(', ') || 'nothing'}: run npm run build`);
  });

  test('every dsr_ struct in the objects\' BTF has abi.ts\'s size, members and offsets', () => {
    for (const o of objects) for (const layout of btfLayouts(distPath(`bpf/${o}`)).values()) assertMirrored(layout, o);
  });

  test('every struct of the header, compiled alone, has abi.ts\'s layout, and abi.ts mirrors no other', () => {
    const layouts = headerLayouts();
    for (const layout of layouts.values()) assertMirrored(layout, 'dsr_abi.h');
    assert.deepEqual([...mirrored.keys()].filter((n) => !layouts.has(n)), [], 'abi.ts structs the header lacks');
  });

  test('map and program names are the objects\'', () => {
    const expected: [string, Record<string, string>][] = [
      [PORT_OBJECT, { ...PortMaps, ...PortProgs }],
      [RELAY_OBJECT, { ...RelayMaps, ...RelayProgs }],
    ];
    for (const [o, names] of expected) {
      const found = btfNames(distPath(`bpf/${o}`));
      for (const n of Object.values(names)) assert.ok(found.has(n), `${n} in ${o}`);
    }
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

  test('PassReason.X is DSR_PASS_X, for every DSR_PASS_ macro but NONE and REASON_MAX', () => {
    for (const [key, reason] of Object.entries(PassReason)) {
      assert.equal(PASS_REASON_CODES[reason], abiValue(`DSR_PASS_${key}`), key);
      assert.equal(passReasonOf(PASS_REASON_CODES[reason]), reason);
    }
    const macros = Object.keys(ABI).filter((k) => k.startsWith('DSR_PASS_') && k !== 'DSR_PASS_NONE' && k !== 'DSR_PASS_REASON_MAX');
    assert.deepEqual(macros.sort(), Object.keys(PassReason).map((k) => `DSR_PASS_${k}`).sort());
    assert.equal(passReasonOf(ABI.DSR_PASS_NONE), undefined);
  });

  test('relay counters and directions sit at their DSR_RELAY_ codes', () => {
    RELAY_COUNTERS.forEach((name, i) => assert.equal(abiValue(`DSR_RELAY_${macroCase(name)}`), i, name));
    assert.equal(RELAY_COUNTERS.length, ABI.DSR_RELAY_COUNTER_MAX);
    RELAY_DIRECTIONS.forEach((name, i) => assert.equal(abiValue(`DSR_RELAY_DIR_${macroCase(name)}`), i, name));
  });

  test('a DSR_SMB2_FILE_ID_AT_ macro for exactly the commands of REQUEST_FILE_ID_AT, at its offset; DSR_SMB2_CMD_X is Smb2Command.X', () => {
    const fromTable = Object.entries(Smb2Command)
      .filter(([, c]) => REQUEST_FILE_ID_AT[c] !== undefined)
      .map(([name, c]) => [`DSR_SMB2_FILE_ID_AT_${name}`, REQUEST_FILE_ID_AT[c]]);
    const fromAbi = Object.entries(ABI).filter(([k]) => k.startsWith('DSR_SMB2_FILE_ID_AT_'));
    assert.deepEqual(Object.fromEntries(fromAbi), Object.fromEntries(fromTable));
    for (const [k, v] of Object.entries(ABI).filter(([k]) => k.startsWith('DSR_SMB2_CMD_') && k !== 'DSR_SMB2_CMD_COUNT')) {
      assert.equal(v, (Smb2Command as Readonly<Record<string, number>>)[k.slice('DSR_SMB2_CMD_'.length)], k);
    }
    assert.equal(ABI.DSR_RELAY_CARRY_MAX, ABI.DSR_NB_HDR_LEN + ABI.DSR_SMB2_HDR_LEN + ABI.DSR_SMB2_SIZE_READ - 1, "READ's fixed part, past every FileId");
  });

  test("the requests the verdict checks: StructureSize and field offsets are the codecs', and what the decoders refuse", () => {
    const fileId = { Persistent: 1n, Volatile: 2n };
    const none = Buffer.alloc(0);
    const msg = (body: Buffer) => Buffer.concat([Buffer.alloc(SMB2_HEADER_SIZE), body]);
    // Distinct values in each checked field, read back at the ABI's offsets.
    const read = encodeReadRequest({ Padding: 0, Flags: 0, Length: 0x123456, Offset: 0n, FileId: fileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(3), ReadChannelInfoOffset: 0x70 });
    assert.equal(read.readUInt16LE(0), ABI.DSR_SMB2_SIZE_READ);
    assert.equal(read.readUInt32LE(ABI.DSR_SMB2_READ_LENGTH_AT), 0x123456);
    assert.deepEqual([read.readUInt16LE(ABI.DSR_SMB2_READ_CHANNEL_INFO_AT), read.readUInt16LE(ABI.DSR_SMB2_READ_CHANNEL_INFO_AT + 2)], [0x70, 3]);
    const data = Buffer.alloc(5);
    const write = encodeWriteRequest({ Offset: 0n, FileId: fileId, Channel: 0, RemainingBytes: 0, WriteChannelInfo: Buffer.alloc(2), Flags: 0, Data: data, DataOffset: 0x78 });
    assert.equal(write.readUInt16LE(0), ABI.DSR_SMB2_SIZE_WRITE);
    assert.equal(write.readUInt16LE(ABI.DSR_SMB2_WRITE_DATA_OFFSET_AT), 0x78);
    assert.equal(write.readUInt32LE(ABI.DSR_SMB2_WRITE_LENGTH_AT), 5);
    assert.deepEqual([write.readUInt16LE(ABI.DSR_SMB2_WRITE_CHANNEL_INFO_AT), write.readUInt16LE(ABI.DSR_SMB2_WRITE_CHANNEL_INFO_AT + 2)], [0x80, 2]);
    const flush = encodeFlushRequest({ Reserved1: 0, Reserved2: 0, FileId: fileId });
    assert.equal(flush.readUInt16LE(0), ABI.DSR_SMB2_SIZE_FLUSH);
    const qi = encodeQueryInfoRequest({ InfoType: 1, FileInfoClass: 5, OutputBufferLength: 0x4321, Reserved: 0, AdditionalInformation: 0, Flags: 0, FileId: fileId, InputBuffer: Buffer.alloc(7), InputBufferOffset: 0x68 });
    assert.equal(qi.readUInt16LE(0), ABI.DSR_SMB2_SIZE_QUERY_INFO);
    assert.equal(qi.readUInt32LE(ABI.DSR_SMB2_QUERY_INFO_OUTPUT_LENGTH_AT), 0x4321);
    assert.equal(qi.readUInt16LE(ABI.DSR_SMB2_QUERY_INFO_INPUT_OFFSET_AT), 0x68);
    assert.equal(qi.readUInt32LE(ABI.DSR_SMB2_QUERY_INFO_INPUT_LENGTH_AT), 7);
    // What the verdict takes as the fixed part: a READ with a 48-byte body (no Buffer byte) is
    // accepted, 47 bytes and another StructureSize are not.
    const read48 = encodeReadRequest({ Padding: 0, Flags: 0, Length: 1, Offset: 0n, FileId: fileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: none }).subarray(0, ABI.DSR_SMB2_SIZE_READ - 1);
    assert.doesNotThrow(() => decodeReadRequest(msg(read48)));
    assert.throws(() => decodeReadRequest(msg(read48.subarray(0, 47))));
    const resized = (body: Buffer, size: number) => {
      const b = Buffer.from(body);
      b.writeUInt16LE(size, 0);
      return msg(b);
    };
    assert.throws(() => decodeReadRequest(resized(read, 48)), /StructureSize/);
    assert.throws(() => decodeWriteRequest(resized(write, 48)), /StructureSize/);
    assert.throws(() => decodeFlushRequest(resized(flush, 25)), /StructureSize/);
    assert.throws(() => decodeQueryInfoRequest(resized(qi, 40)), /StructureSize/);
    // WRITE Data before the variable part, or past the message.
    const w = Buffer.from(write);
    w.writeUInt16LE(SMB2_HEADER_SIZE + ABI.DSR_SMB2_SIZE_WRITE - 2, ABI.DSR_SMB2_WRITE_DATA_OFFSET_AT);
    assert.throws(() => decodeWriteRequest(msg(w)), /DataOffset/);
    // One credit per started DSR_SMB2_CREDIT_BYTES, as the dispatch counts them.
    assert.deepEqual([creditsFor(ABI.DSR_SMB2_CREDIT_BYTES), creditsFor(ABI.DSR_SMB2_CREDIT_BYTES + 1)], [1, 2]);
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

  test('dsr_relay_sock round-trips; the carry is as long as carry_len says; counts left out are 0', () => {
    const counts = { msgs: 5, bytes: 0x1_0000_0001, charge: 9, msgIdEnd: 0x1_0000_0002n, credits: 3, interims: 1 };
    const r: RelaySock = {
      conn: 7,
      peerKey: 15,
      dir: 'reply',
      sticky: 'no-peer',
      skip: 3,
      atFrameStart: false,
      frameLeft: 100,
      carry: Buffer.from('00000042fe534d42', 'hex'),
      ...counts,
      journalSlot: 63,
      journalLeft: 0x10_0000,
      expect: 0x1_0000_0003n,
      tail: { messageId: 0x41n, dataOffset: 0x50, dataLength: 0x10_0000 },
    };
    const b = encodeRelaySock(r);
    assert.equal(b.length, 232);
    assert.equal(b.subarray(0, 40).toString('hex'), '07000000' + '0f000000' + '01000000' + '0f000000' + '03000000' + '00000000' + '64000000' + '08000000' + '00000042fe534d42');
    assert.equal(
      b.subarray(148).toString('hex'),
      '01000000' + '0500000000000000' + '0100000001000000' + '0900000000000000' + '0200000001000000' + '0300000000000000' + '0100000000000000' + '3f000000' + '00001000' + '0300000001000000' + '4200000000000000' + '50000000' + '00001000',
    );
    assert.deepEqual(decodeRelaySock(b), r);
    const fresh = { conn: 1, peerKey: 3, dir: 'request' as const, skip: 0, atFrameStart: true, frameLeft: 0, carry: Buffer.alloc(0) };
    const zero = { msgs: 0, bytes: 0, charge: 0, msgIdEnd: 0n, credits: 0, interims: 0, journalSlot: 0, journalLeft: 0 };
    assert.deepEqual(decodeRelaySock(encodeRelaySock(fresh)), { ...fresh, ...zero }, 'not sticky: sticky 0, left out; no expect: gate 0, left out; no tail: 0, left out');
    assert.deepEqual(decodeRelaySock(encodeRelaySock({ ...fresh, tail: { messageId: 0n, dataOffset: 0, dataLength: 0 } })).tail, { messageId: 0n, dataOffset: 0, dataLength: 0 }, 'MessageId 0 is a tail (stored + 1)');
    assert.equal(encodeRelaySock(fresh).readUInt32LE(148), 0, 'gate 0');
    assert.deepEqual(decodeRelaySock(encodeRelaySock({ ...fresh, expect: 0n })).expect, 0n, 'a gate at offset 0 is a gate');
  });

  test('dsr_relay_conn, session and tree keys encode as the header lays them out', () => {
    const limits = { maxRead: 0x40000, maxWrite: 0x100000, maxTransact: 0x10000 };
    const c = { msgIdDelta: -3n, cmdMask: 0x7ffe0, rewrite: true, ...limits };
    assert.equal(encodeRelayConn(c).toString('hex'), 'fdffffffffffffff' + 'e0ff0700' + '01000000' + '00000400' + '00001000' + '00000100' + '00000000' + '0000000000000000' + '0000000000000000' + '00000000' + '00000000', 'journaled 0: the verdict counts');
    assert.deepEqual(decodeRelayConn(encodeRelayConn(c)), c);
    const next = { ...c, msgIdNext: 0x0102030405n };
    assert.equal(encodeRelayConn(next).subarray(32, 40).toString('hex'), '0504030201000000', 'msg_id_next');
    assert.deepEqual(decodeRelayConn(encodeRelayConn(next)), next);
    const bounded = { ...c, maxQueued: 0x2000000, clientBase: 0x0a0b0c0dn };
    assert.equal(encodeRelayConn(bounded).readUInt32LE(28), 0x2000000, 'max_queued');
    assert.equal(encodeRelayConn(bounded).subarray(40, 48).toString('hex'), '0d0c0b0a00000000', 'client_base');
    assert.deepEqual(decodeRelayConn(encodeRelayConn(bounded)), bounded);
    const capped = { ...c, journal: true, journalMax: 1024 };
    assert.equal(encodeRelayConn(capped).readUInt32LE(52), 1024, 'journal_max');
    assert.deepEqual(decodeRelayConn(encodeRelayConn(capped)), capped);
    const files = { msgIdDelta: 5n, cmdMask: (1 << Smb2Command.READ) | (1 << Smb2Command.CLOSE), rewrite: true, files: true, ...limits };
    assert.equal(encodeRelayConn(files).subarray(0, 16).toString('hex'), '0500000000000000' + '40010000' + '03000000', 'flags REWRITE | FILES');
    assert.deepEqual(decodeRelayConn(encodeRelayConn(files)), files);
    assert.equal(encodeRelayConn({ ...files, rewrite: false }).readUInt32LE(12), 0, 'FILES only with REWRITE');
    const journal = { ...files, journal: true };
    assert.equal(encodeRelayConn(journal).readUInt32LE(12), 7, 'flags REWRITE | FILES | JOURNAL');
    assert.deepEqual(decodeRelayConn(encodeRelayConn(journal)), journal);
    assert.equal(encodeRelayConn({ ...c, rewrite: false, journal: true }).readUInt32LE(12), 4, 'JOURNAL without REWRITE');
    const sk = { conn: 2, dir: 'reply' as const, id: 0x1122334455667788n };
    assert.equal(encodeRelaySessionKey(sk).toString('hex'), '02000000' + '01000000' + '8877665544332211');
    assert.deepEqual(decodeRelaySessionKey(encodeRelaySessionKey(sk)), sk);
    const tk = { conn: 2, dir: 'request' as const, id: 0x11 };
    assert.equal(encodeRelayTreeKey(tk).toString('hex'), '02000000' + '00000000' + '11000000' + '00000000');
    assert.deepEqual(decodeRelayTreeKey(encodeRelayTreeKey(tk)), tk);
  });

  test('dsr_relay_journal_key encodes as the header lays it out; dsr_relay_journal decodes its first `copied` bytes', () => {
    const k = { conn: 9, msgId: 0x1122334455667788n };
    assert.equal(encodeRelayJournalKey(k).toString('hex'), '09000000' + '00000000' + '8877665544332211');
    assert.deepEqual(decodeRelayJournalKey(encodeRelayJournalKey(k)), k);
    const v = Buffer.alloc(RELAY_JOURNAL.size);
    Buffer.from('09000000' + '0a000000' + '03000000' + '00000000' + '8877665544332211' + 'aabbccdd', 'hex').copy(v);
    assert.deepEqual(decodeRelayJournal(v), { conn: 9, len: 10, copied: 3, msgId: k.msgId, data: Buffer.from('aabbcc', 'hex') });
    v.writeUInt32LE(11, 8);
    assert.throws(() => decodeRelayJournal(v), /11 of 10 bytes copied/);
    assert.throws(() => decodeRelayJournal(Buffer.alloc(24)), /24 bytes, expected 1069080/);
    // A small slot: the same header, data[] of 1 KiB, at most 512 bytes copied.
    const small = Buffer.alloc(RELAY_JOURNAL_SMALL.size);
    v.subarray(0, 28).copy(small);
    small.writeUInt32LE(3, 8);
    assert.deepEqual(decodeRelayJournal(small, true), { conn: 9, len: 10, copied: 3, msgId: k.msgId, data: Buffer.from('aabbcc', 'hex') });
    small.writeUInt32LE(600, 4);
    small.writeUInt32LE(513, 8);
    assert.throws(() => decodeRelayJournal(small, true), /513 of 600 bytes copied/);
    assert.throws(() => decodeRelayJournal(v, true), /expected 1048/);
  });

  test('dsr_relay_file_key and dsr_relay_file_id encode as the header lays them out', () => {
    const k = { conn: 9, fileId: { Persistent: 0x1122334455667788n, Volatile: 0x99n } };
    assert.equal(encodeRelayFileKey(k).toString('hex'), '09000000' + '00000000' + '8877665544332211' + '9900000000000000');
    assert.deepEqual(decodeRelayFileKey(encodeRelayFileKey(k)), k);
    assert.equal(encodeRelayFileId(k.fileId).toString('hex'), '8877665544332211' + '9900000000000000');
    assert.deepEqual(decodeRelayFileId(encodeRelayFileId(k.fileId)), k.fileId);
  });

  test('with FileIds mapped, commands whose responses carry a FileId are refused in cmd_mask', () => {
    const limits = { maxRead: 65536, maxWrite: 65536, maxTransact: 65536 };
    for (const c of [Smb2Command.CREATE, Smb2Command.IOCTL, Smb2Command.OPLOCK_BREAK]) {
      assert.throws(() => encodeRelayConn({ msgIdDelta: 0n, cmdMask: (1 << Smb2Command.READ) | (1 << c), rewrite: true, files: true, ...limits }), /with FileIds mapped/);
      assert.doesNotThrow(() => encodeRelayConn({ msgIdDelta: 0n, cmdMask: 1 << c, rewrite: true, ...limits }), 'FileIds as they are: allowed');
    }
  });

  test('dsr_relay_conn limits that are not 32-bit sizes are refused', () => {
    const ok = { msgIdDelta: 0n, cmdMask: 1 << Smb2Command.READ, rewrite: true, maxRead: 65536, maxWrite: 65536, maxTransact: 65536 };
    assert.throws(() => encodeRelayConn({ ...ok, maxRead: 2 ** 32 }), /max_read 4294967296 is not a 32-bit size/);
    assert.throws(() => encodeRelayConn({ ...ok, maxTransact: 1.5 }), /max_transact 1.5/);
  });

  test('dsr_relay_event decodes; a record without a known reason or direction is refused', () => {
    const ev = (dir: number, reason: number) => Buffer.from([7, 0, 0, 0, dir, 0, 0, 0, reason, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeRelayEvent(ev(1, 15)), { conn: 7, dir: 'reply', reason: 'no-peer' });
    assert.deepEqual(decodeRelayEvent(ev(0, 1)), { conn: 7, dir: 'request', reason: 'signed' });
    assert.deepEqual(decodeRelayEvent(ev(0, 0)), { conn: 7, dir: 'request', reason: 'fin' });
    assert.deepEqual(decodeRelayEvent(ev(0, 19)), { conn: 7, dir: 'request', reason: 'invalid' });
    assert.deepEqual(decodeRelayEvent(ev(0, 20)), { conn: 7, dir: 'request', reason: 'journal' });
    assert.deepEqual(decodeRelayEvent(ev(0, 21)), { conn: 7, dir: 'request', reason: 'sequence' });
    assert.throws(() => decodeRelayEvent(ev(0, ABI.DSR_PASS_REASON_MAX)), /unknown pass reason 25/);
    assert.throws(() => decodeRelayEvent(ev(2, 1)), /unknown direction 2/);
  });

  test('bad addresses and lengths are refused', () => {
    assert.throws(() => encodePort({ server: 1, address: '198.18.1', mac: '02:00:00:00:01:0a' }), /not an IPv4 address/);
    assert.throws(() => encodePort({ server: 1, address: '198.18.1.1', mac: '02:00:00:00:01' }), /not a MAC address/);
    assert.throws(() => decodePort(Buffer.alloc(15)), /15 bytes, expected 16/);
    assert.throws(() => decodeRelaySock(Buffer.alloc(199)), /199 bytes, expected 232/);
    assert.throws(() => encodeRelaySock({ conn: 1, peerKey: 3, dir: 'request', skip: 0, atFrameStart: true, frameLeft: 0, carry: Buffer.alloc(117) }), /117 carried bytes, at most 116/);
    assert.throws(() => decodeRelayFileKey(Buffer.alloc(16)), /16 bytes, expected 24/);
  });
});
