/**
 * The storage-port filter (bpf/port.bpf.c) on the real kernel, without a lab: BPF_PROG_TEST_RUN
 * fixtures (input frame, expected verdict, expected counter delta) for every allow and drop
 * reason in both directions, the kernel probe, and PortPrograms' pinning. Needs root (bpf()).
 *
 * BPF_PROG_TEST_RUN runs a tc program as if on the caller's loopback (ifindex 1), so the
 * fixtures map ifindex 1 to the port under test. It refuses (EINVAL) IPv4 and IPv6 frames
 * shorter than their fixed header, so truncation is fed as a bare Ethernet header of ARP.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { DsrError, ErrorCode } from '../../src/control/errors.js';
import {
  ABI,
  encodePort,
  encodeSwitch,
  ipv4Bytes,
  macBytes,
  PORT,
  PORT_OBJECT,
  PORT_PASS_REASONS,
  PORT_REASONS,
  PORT_STAT,
  PORT_STAT_KEY,
  PortMaps,
  PortProgs,
  SWITCH,
  u32,
  decodePortStat,
  decodePortStatKey,
  type Direction,
  type PortReason,
} from '../../src/offload/abi.js';
import { BpfError, BpfObject, distPath, probeKernel, requireKernel, testRun, type BpfMap } from '../../src/offload/native.js';
import { PortPrograms } from '../../src/offload/port.js';

const skip = process.getuid?.() === 0 ? false : 'needs root: bpf() loads programs';
if (skip) console.log(`# port filter tests skipped: ${skip}`);

const DSR = { mac: '02:00:00:00:00:01', ip: '198.18.1.1' };
/** The DSR's second storage address, its health probes' source (set only where a fixture says `probe`). */
const PROBE = '198.18.1.2';
const S1 = { server: 1, mac: '02:00:00:00:01:01', address: '198.18.1.11' };
const S2 = { server: 2, mac: '02:00:00:00:02:02', address: '198.18.1.12' };
/** On port 3: no pinned MAC (the port learns) and isolation off. */
const S3 = { server: 3, mac: '02:00:00:00:03:03', address: '198.18.1.13' };
const CLIENT = '198.18.0.2';
const DSR_CLIENT_SIDE = '198.18.0.1';
const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const LOOPBACK_IFINDEX = 1;
/** Port indices: 0 carries server1, 1 server2, 2 nothing, 3 server3 (unpinned, isolation off). */
const EMPTY_PORT = 2;
const OPEN_PORT = 3;
/** A spare port left open (server 0, DSR_PORT_F_OPEN): a new server plugs in there and announces itself. */
const SPARE_PORT = 4;
const S4 = { mac: '02:00:00:00:04:04', address: '198.18.1.14' };

function eth(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  macBytes(dst).copy(h, 0);
  macBytes(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

/** IPv4 + a TCP header to port 445 (checksums are not checked by the filter). */
function ipv4(src: string, dst: string, opts: { version?: number; ihl?: number } = {}): Buffer {
  const ip = Buffer.alloc(40);
  ip[0] = ((opts.version ?? 4) << 4) | (opts.ihl ?? 5);
  ip.writeUInt16BE(ip.length, 2);
  ip[8] = 64;
  ip[9] = 6;
  ipv4Bytes(src).copy(ip, 12);
  ipv4Bytes(dst).copy(ip, 16);
  ip.writeUInt16BE(40000, 20);
  ip.writeUInt16BE(445, 22);
  ip[32] = 0x50;
  return ip;
}

function arp(op: number, sha: string, spa: string, tpa: string, opts: { hln?: number } = {}): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = opts.hln ?? 6;
  a[5] = 4;
  a.writeUInt16BE(op, 6);
  macBytes(sha).copy(a, 8);
  ipv4Bytes(spa).copy(a, 14);
  ipv4Bytes(tpa).copy(a, 24);
  return a;
}

interface Fixture {
  description: string;
  dir: Direction;
  frame: Buffer;
  /** The port ifindex 1 maps to; null: ifindex 1 is no port. */
  port?: number | null;
  reason: PortReason;
  /** The server the counter is kept under. */
  server: number;
  /** The lab's direct path is open for the client (dsr_switch.direct_*). */
  direct?: boolean;
  /** The switch knows the DSR's probe address (dsr_switch.probe). */
  probe?: boolean;
}

const FIXTURES: Fixture[] = [
  // From server1 on port 0 into the switch.
  { description: 'IPv4 server1 -> DSR', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, DSR.ip)), reason: 'allowed', server: 1 },
  { description: 'ARP request server1: who has the DSR', dir: 'ingress', frame: eth(BROADCAST, S1.mac, 0x0806, arp(1, S1.mac, S1.address, DSR.ip)), reason: 'allowed', server: 1 },
  { description: 'ARP reply server1 -> DSR', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0806, arp(2, S1.mac, S1.address, DSR.ip)), reason: 'allowed', server: 1 },
  { description: 'IPv4 with server2\'s MAC on port 0', dir: 'ingress', frame: eth(DSR.mac, S2.mac, 0x0800, ipv4(S1.address, DSR.ip)), reason: 'src-mac', server: 1 },
  { description: 'ARP whose sender hardware address is spoofed', dir: 'ingress', frame: eth(BROADCAST, S1.mac, 0x0806, arp(1, S2.mac, S1.address, DSR.ip)), reason: 'src-mac', server: 1 },
  { description: 'IPv4 with server2\'s address on port 0', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S2.address, DSR.ip)), reason: 'src-ip', server: 1 },
  { description: 'ARP with server2\'s address on port 0', dir: 'ingress', frame: eth(BROADCAST, S1.mac, 0x0806, arp(1, S1.mac, S2.address, DSR.ip)), reason: 'src-ip', server: 1 },
  { description: 'IPv4 server1 -> server2', dir: 'ingress', frame: eth(S2.mac, S1.mac, 0x0800, ipv4(S1.address, S2.address)), reason: 'dst-ip', server: 1 },
  { description: 'IPv4 server1 -> the client side', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, CLIENT)), reason: 'dst-ip', server: 1 },
  { description: 'ARP server1: who has server2', dir: 'ingress', frame: eth(BROADCAST, S1.mac, 0x0806, arp(1, S1.mac, S1.address, S2.address)), reason: 'dst-ip', server: 1 },
  { description: 'IPv6', dir: 'ingress', frame: eth('33:33:00:00:00:02', S1.mac, 0x86dd, Buffer.alloc(48)), reason: 'proto', server: 1 },
  { description: '802.1Q tagged IPv4', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x8100, Buffer.concat([Buffer.from([0, 5, 8, 0]), ipv4(S1.address, DSR.ip)])), reason: 'proto', server: 1 },
  { description: 'IPv4 header length 16', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, DSR.ip, { ihl: 4 })), reason: 'malformed', server: 1 },
  { description: 'IPv4 EtherType, version 6 header', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, DSR.ip, { version: 6 })), reason: 'malformed', server: 1 },
  { description: 'ARP with 8-byte hardware addresses', dir: 'ingress', frame: eth(BROADCAST, S1.mac, 0x0806, arp(1, S1.mac, S1.address, DSR.ip, { hln: 8 })), reason: 'malformed', server: 1 },
  { description: 'a bare Ethernet header', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0806, Buffer.alloc(0)), reason: 'malformed', server: 1 },
  { description: 'any frame on a port without a server', dir: 'ingress', port: EMPTY_PORT, frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, DSR.ip)), reason: 'unassigned', server: 0 },
  { description: 'any frame on an interface that is no port', dir: 'ingress', port: null, frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, DSR.ip)), reason: 'unassigned', server: 0 },
  // From the switch to server1 on port 0.
  { description: 'IPv4 DSR -> server1', dir: 'egress', frame: eth(S1.mac, DSR.mac, 0x0800, ipv4(DSR.ip, S1.address)), reason: 'allowed', server: 1 },
  { description: 'ARP request DSR: who has server1', dir: 'egress', frame: eth(BROADCAST, DSR.mac, 0x0806, arp(1, DSR.mac, DSR.ip, S1.address)), reason: 'allowed', server: 1 },
  { description: 'IPv4 client -> server1 (a routed direct path)', dir: 'egress', frame: eth(S1.mac, DSR.mac, 0x0800, ipv4(CLIENT, S1.address)), reason: 'src-ip', server: 1 },
  { description: 'server2\'s ARP request flooded to port 0', dir: 'egress', frame: eth(BROADCAST, S2.mac, 0x0806, arp(1, S2.mac, S2.address, DSR.ip)), reason: 'src-ip', server: 1 },
  { description: 'IPv4 DSR -> server2 flooded to port 0', dir: 'egress', frame: eth(S2.mac, DSR.mac, 0x0800, ipv4(DSR.ip, S2.address)), reason: 'dst-ip', server: 1 },
  { description: 'ARP request DSR: who has server2, on port 0', dir: 'egress', frame: eth(BROADCAST, DSR.mac, 0x0806, arp(1, DSR.mac, DSR.ip, S2.address)), reason: 'dst-ip', server: 1 },
  { description: 'IPv6 from the DSR', dir: 'egress', frame: eth('33:33:00:00:00:01', DSR.mac, 0x86dd, Buffer.alloc(48)), reason: 'proto', server: 1 },
  { description: 'IPv4 header length 16', dir: 'egress', frame: eth(S1.mac, DSR.mac, 0x0800, ipv4(DSR.ip, S1.address, { ihl: 4 })), reason: 'malformed', server: 1 },
  { description: 'any frame to a port without a server', dir: 'egress', port: EMPTY_PORT, frame: eth(S1.mac, DSR.mac, 0x0800, ipv4(DSR.ip, S1.address)), reason: 'unassigned', server: 0 },
  // The lab's direct path open for the client (198.18.0.2/32).
  { description: 'direct path: IPv4 server1 -> the client', dir: 'ingress', direct: true, frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, CLIENT)), reason: 'direct', server: 1 },
  { description: 'direct path: IPv4 client -> server1', dir: 'egress', direct: true, frame: eth(S1.mac, DSR.mac, 0x0800, ipv4(CLIENT, S1.address)), reason: 'direct', server: 1 },
  { description: "direct path: server1 -> the DSR's client-facing address stays dropped", dir: 'ingress', direct: true, frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, DSR_CLIENT_SIDE)), reason: 'dst-ip', server: 1 },
  { description: "direct path: server2's address -> the client on port 0", dir: 'ingress', direct: true, frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S2.address, CLIENT)), reason: 'src-ip', server: 1 },
  { description: 'direct path: the client -> server2, flooded to port 0', dir: 'egress', direct: true, frame: eth(S2.mac, DSR.mac, 0x0800, ipv4(CLIENT, S2.address)), reason: 'src-ip', server: 1 },
  // The DSR's probe address: allowed both ways once the switch has it, dropped otherwise.
  { description: 'probe address set: IPv4 DSR probe -> server1', dir: 'egress', probe: true, frame: eth(S1.mac, DSR.mac, 0x0800, ipv4(PROBE, S1.address)), reason: 'allowed', server: 1 },
  { description: 'probe address set: IPv4 server1 -> DSR probe', dir: 'ingress', probe: true, frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, PROBE)), reason: 'allowed', server: 1 },
  { description: 'probe address set: ARP server1 answers the probe address', dir: 'ingress', probe: true, frame: eth(DSR.mac, S1.mac, 0x0806, arp(2, S1.mac, S1.address, PROBE)), reason: 'allowed', server: 1 },
  { description: 'no probe address: IPv4 server1 -> 198.18.1.2', dir: 'ingress', frame: eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, PROBE)), reason: 'dst-ip', server: 1 },
  // Port 4: a spare port left open.
  { description: 'spare port open: IPv4 a new server -> DSR', dir: 'ingress', port: SPARE_PORT, frame: eth(DSR.mac, S4.mac, 0x0800, ipv4(S4.address, DSR.ip)), reason: 'open', server: 0 },
  { description: 'spare port open: IPv4 DSR -> the new server', dir: 'egress', port: SPARE_PORT, frame: eth(S4.mac, DSR.mac, 0x0800, ipv4(DSR.ip, S4.address)), reason: 'open', server: 0 },
  // Port 3: no pinned MAC, isolation off.
  { description: 'unpinned port: any source MAC, IPv4 server3 -> DSR', dir: 'ingress', port: OPEN_PORT, frame: eth(DSR.mac, '02:aa:bb:cc:dd:ee', 0x0800, ipv4(S3.address, DSR.ip)), reason: 'allowed', server: 3 },
  { description: 'isolation off: IPv4 server3 -> server2', dir: 'ingress', port: OPEN_PORT, frame: eth(S2.mac, S3.mac, 0x0800, ipv4(S3.address, S2.address)), reason: 'open', server: 3 },
  { description: 'isolation off: IPv4 server1 -> server3', dir: 'egress', port: OPEN_PORT, frame: eth(S3.mac, S1.mac, 0x0800, ipv4(S1.address, S3.address)), reason: 'open', server: 3 },
  { description: 'isolation off: IPv6 is still dropped', dir: 'ingress', port: OPEN_PORT, frame: eth('33:33:00:00:00:02', S3.mac, 0x86dd, Buffer.alloc(48)), reason: 'proto', server: 3 },
];

describe('storage port filter: BPF_PROG_TEST_RUN fixtures', { skip }, () => {
  let obj: BpfObject;
  let ifs: BpfMap;
  let stats: BpfMap;
  let sw: BpfMap;

  before(() => {
    obj = BpfObject.load(distPath(`bpf/${PORT_OBJECT}`));
    ifs = obj.map(PortMaps.ifs, 4, 4);
    stats = obj.map(PortMaps.stats, PORT_STAT_KEY.size, PORT_STAT.size, true);
    const ports = obj.map(PortMaps.ports, 4, PORT.size);
    ports.update(u32(0), encodePort(S1));
    ports.update(u32(1), encodePort(S2));
    ports.update(u32(OPEN_PORT), encodePort({ server: S3.server, address: S3.address, open: true }));
    ports.update(u32(SPARE_PORT), encodePort({ server: 0, address: '0.0.0.0', open: true }));
    sw = obj.map(PortMaps.switch, 4, SWITCH.size);
  });
  after(() => obj?.close());

  /** Counter key (as JSON) -> packets and bytes, summed over CPUs. */
  function counters(): Map<string, { packets: number; bytes: number }> {
    return new Map(
      stats.keys().map((k) => {
        const sum = stats
          .slots(stats.lookup(k) ?? Buffer.alloc(stats.valueBytes))
          .map(decodePortStat)
          .reduce((a, b) => ({ packets: a.packets + b.packets, bytes: a.bytes + b.bytes }));
        return [JSON.stringify(decodePortStatKey(k)), sum];
      }),
    );
  }

  test('every reason code has a fixture in some direction', () => {
    assert.deepEqual(new Set(FIXTURES.map((f) => f.reason)), new Set(PORT_REASONS));
  });

  for (const f of FIXTURES) {
    const passes = PORT_PASS_REASONS.has(f.reason);
    test(`${f.dir}: ${f.description} -> ${passes ? 'continue' : 'drop'} (${f.reason})`, () => {
      const port = f.port === undefined ? 0 : f.port;
      sw.update(u32(0), encodeSwitch({ address: DSR.ip, ...(f.probe && { probe: PROBE }), ...(f.direct && { direct: { address: CLIENT, length: 32 } }) }));
      if (port === null) ifs.delete(u32(LOOPBACK_IFINDEX));
      else ifs.update(u32(LOOPBACK_IFINDEX), u32(port));
      const before = counters();
      const r = testRun(obj.prog(f.dir === 'ingress' ? PortProgs.ingress : PortProgs.egress), f.frame);
      assert.equal(r.retval, passes ? ABI.DSR_TC_NEXT : ABI.DSR_TC_DROP, 'verdict');
      assert.deepEqual(r.data, f.frame, 'the filter never changes a frame');
      const key = JSON.stringify({ server: f.server, port: port ?? ABI.DSR_PORT_UNKNOWN, dir: f.dir, reason: f.reason });
      const after = counters();
      const was = before.get(key) ?? { packets: 0, bytes: 0 };
      assert.deepEqual(after.get(key), { packets: was.packets + 1, bytes: was.bytes + f.frame.length }, `counter ${key}`);
      for (const [k, v] of after) if (k !== key) assert.deepEqual(v, before.get(k), `no other counter moves (${k})`);
    });
  }
});

describe('libbpf shim', { skip }, () => {
  test('a test run with a context (struct __sk_buff) hands it back; a missing program is ENOENT with the operation', () => {
    const obj = BpfObject.load(distPath(`bpf/${PORT_OBJECT}`));
    try {
      const ctx = Buffer.alloc(192);
      ctx.writeUInt32LE(0x5eed, 8); // __sk_buff.mark, one of the fields a test run may set
      const r = testRun(obj.prog(PortProgs.ingress), eth(DSR.mac, S1.mac, 0x0800, ipv4(S1.address, DSR.ip)), { ctx });
      assert.equal(r.retval, ABI.DSR_TC_DROP, 'no port configured: dropped');
      assert.equal(r.ctx?.readUInt32LE(8), 0x5eed);
      assert.throws(
        () => obj.prog('nope'),
        (e: unknown) => e instanceof BpfError && e.code === ErrorCode.BPF && e.errno === 2 && /^find program nope in .*: ENOENT/.test(e.message),
      );
    } finally {
      obj.close();
    }
  });
});

describe('kernel probe', { skip }, () => {
  test('this kernel has BTF, tcx links and sockmap links', () => {
    assert.deepEqual(probeKernel(), { bpf: true, btf: true, tcx: true, sockmapLinks: true });
  });

  test('a missing feature is one error naming each missing piece', () => {
    assert.throws(
      () => requireKernel(['btf', 'tcx', 'sockmapLinks'], { bpf: true, btf: true, tcx: false, sockmapLinks: false }),
      (e: unknown) => e instanceof DsrError && e.code === ErrorCode.BPF_UNSUPPORTED && /lacks tcx links.*; sockmap links/.test(e.message),
    );
    assert.throws(
      () => requireKernel(['tcx'], { bpf: false, btf: true, tcx: false, sockmapLinks: false }),
      (e: unknown) => e instanceof DsrError && /lacks permission to load BPF programs \(run as root[^;]*$/.test(e.message),
      'without bpf() only the permission is named',
    );
  });
});

describe('PortPrograms without a lab', { skip }, () => {
  test('setPort and getPort round-trip; counters start empty', () => {
    const p = PortPrograms.open({ switchAddress: DSR.ip });
    try {
      p.setPort(3, S2);
      assert.deepEqual(p.getPort(3), S2);
      p.setPort(3, undefined);
      assert.equal(p.getPort(3), undefined);
      assert.deepEqual(p.counters(), []);
      assert.throws(() => p.setPort(ABI.DSR_PORT_MAX, S1), (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE);
    } finally {
      p.close();
    }
    assert.throws(() => p.counters(), (e: unknown) => e instanceof DsrError && e.code === ErrorCode.BPF);
  });

  test('pins are opt-in, one directory per instance on a bpffs, removed on close', () => {
    const mnt = mkdtempSync('/run/dsr-bpf-test-');
    assert.throws(() => PortPrograms.open({ switchAddress: DSR.ip, pinDir: `${mnt}/a` }), /not on a bpffs/);
    execFileSync('mount', ['-t', 'bpf', 'bpf', mnt]);
    try {
      const a = PortPrograms.open({ switchAddress: DSR.ip, pinDir: `${mnt}/a` });
      const b = PortPrograms.open({ switchAddress: DSR.ip, pinDir: `${mnt}/b` });
      const names = [...Object.values(PortMaps), ...Object.values(PortProgs)].sort();
      assert.deepEqual(readdirSync(`${mnt}/a`).sort(), names);
      assert.deepEqual(readdirSync(`${mnt}/b`).sort(), names, 'a second instance has its own directory');
      const show = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', `${mnt}/a/${PortMaps.ports}`], { encoding: 'utf8' })) as { name: string };
      assert.equal(show.name, PortMaps.ports);
      a.close();
      b.close();
      assert.equal(existsSync(`${mnt}/a`), false);
      assert.equal(existsSync(`${mnt}/b`), false);
      // A pin a killed instance left behind: the next open of that directory removes it.
      mkdirSync(`${mnt}/c`);
      execFileSync('bpftool', ['map', 'create', `${mnt}/c/stale`, 'type', 'array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'stale']);
      const c = PortPrograms.open({ switchAddress: DSR.ip, pinDir: `${mnt}/c` });
      assert.deepEqual(readdirSync(`${mnt}/c`).sort(), names);
      c.close();
      assert.equal(existsSync(`${mnt}/c`), false);
    } finally {
      execFileSync('umount', [mnt]);
      rmdirSync(mnt);
    }
  });
});
