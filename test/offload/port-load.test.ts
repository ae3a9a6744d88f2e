/**
 * The port filter's counters as the control plane reads them, without a kernel: folding the
 * (server, port, direction, reason) counters into per-port and per-server views, the load
 * meter's window (test clock), and the direct-path prefix encoding.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DsrError, ErrorCode } from '../../src/control/errors.js';
import { resolveConfig } from '../../src/control/config.js';
import { encodeSwitch, parseIpv4Prefix, SWITCH } from '../../src/offload/abi.js';
import { portCounters, serverTraffic, type ServerTraffic } from '../../src/offload/port-filter.js';
import { PortLoadMeter } from '../../src/offload/port-load.js';
import type { PortCounter } from '../../src/offload/port.js';

const c = (server: number, port: number, dir: PortCounter['dir'], reason: PortCounter['reason'], packets: number, bytes: number): PortCounter => ({ server, port, dir, reason, packets, bytes });

describe('port filter counters', () => {
  const counters = [
    c(1, 0, 'ingress', 'allowed', 10, 1000),
    c(1, 0, 'ingress', 'dst-ip', 2, 120),
    c(1, 0, 'ingress', 'proto', 1, 70),
    c(1, 0, 'ingress', 'direct', 5, 500),
    c(1, 0, 'egress', 'allowed', 7, 700),
    c(2, 1, 'egress', 'open', 3, 300),
    // server1 moved to port 1 later: its load follows it.
    c(1, 1, 'egress', 'allowed', 1, 100),
    c(0, 2, 'ingress', 'unassigned', 4, 400),
    // A port index the map does not have (never produced by the DSR): ignored.
    c(0, 65535, 'ingress', 'unassigned', 9, 900),
  ];

  test('per port: allowed, dropped (every drop reason) and each reason; direct and open pass but are not allowed', () => {
    const m = portCounters(counters, ['sp1', 'sp2', 'sp3']);
    assert.deepEqual([...m.keys()], ['sp1', 'sp2', 'sp3']);
    const sp1 = m.get('sp1')!;
    assert.deepEqual(sp1.ingress.allowed, { packets: 10, bytes: 1000 });
    assert.deepEqual(sp1.ingress.dropped, { packets: 3, bytes: 190 });
    assert.deepEqual(sp1.ingress.reasons.direct, { packets: 5, bytes: 500 });
    assert.deepEqual(sp1.ingress.reasons['src-mac'], { packets: 0, bytes: 0 }, 'every reason is present');
    assert.deepEqual(sp1.egress.allowed, { packets: 7, bytes: 700 });
    const sp2 = m.get('sp2')!;
    assert.deepEqual(sp2.egress.allowed, { packets: 1, bytes: 100 });
    assert.deepEqual(sp2.egress.dropped, { packets: 0, bytes: 0 });
    assert.deepEqual(sp2.egress.reasons.open, { packets: 3, bytes: 300 });
    assert.deepEqual(m.get('sp3')!.ingress.dropped, { packets: 4, bytes: 400 });
  });

  test('per server: only allowed traffic, over every port the server used', () => {
    const t = serverTraffic(counters, ['server1', 'server2']);
    assert.deepEqual(t.get('server1'), { fromServer: { packets: 10, bytes: 1000 }, toServer: { packets: 8, bytes: 800 } });
    assert.deepEqual(t.get('server2'), { fromServer: { packets: 0, bytes: 0 }, toServer: { packets: 0, bytes: 0 } });
  });
});

describe('PortLoadMeter', () => {
  /** server1 sends 1 MB/s and receives 2 MB/s (1000 / 2000 packets/s); server2 is idle. */
  const at = (seconds: number): Map<string, ServerTraffic> =>
    new Map([
      ['server1', { fromServer: { packets: 1000 * seconds, bytes: 1e6 * seconds }, toServer: { packets: 2000 * seconds, bytes: 2e6 * seconds } }],
      ['server2', { fromServer: { packets: 0, bytes: 0 }, toServer: { packets: 0, bytes: 0 } }],
    ]);

  test('rates over the window; zero with one reading; the window slides', () => {
    let now = 0;
    const m = new PortLoadMeter(() => at(now / 1000), { intervalMs: 1000, windowMs: 3000, now: () => now });
    assert.deepEqual(m.rates().servers, []);
    m.sample();
    assert.equal(m.rates().windowSeconds, 0);
    assert.equal(m.rates().servers[0]!.total.bytesPerSecond, 0);
    for (now = 1000; now <= 10_000; now += 1000) m.sample();
    now -= 1000;
    const r = m.rates();
    assert.equal(r.windowSeconds, 3, 'the oldest reading kept is the window start');
    assert.equal(r.at, new Date(10_000).toISOString());
    const s1 = r.servers.find((s) => s.server === 'server1')!;
    assert.deepEqual(s1.fromServer, { bytesPerSecond: 1e6, packetsPerSecond: 1000 });
    assert.deepEqual(s1.toServer, { bytesPerSecond: 2e6, packetsPerSecond: 2000 });
    assert.deepEqual(s1.total, { bytesPerSecond: 3e6, packetsPerSecond: 3000 });
    assert.deepEqual(r.servers.find((s) => s.server === 'server2')!.total, { bytesPerSecond: 0, packetsPerSecond: 0 });
  });

  test('a burst inside the window averages over it; counters that go back count as zero', () => {
    let now = 0;
    let reading = at(0);
    const m = new PortLoadMeter(() => reading, { windowMs: 4000, now: () => now });
    m.sample();
    now = 2000;
    reading = at(8); // 8 MB from the server in 2 s
    m.sample();
    assert.equal(m.rates().servers[0]!.fromServer.bytesPerSecond, 4e6);
    now = 3000;
    reading = at(0);
    m.sample();
    assert.equal(m.rates().servers[0]!.fromServer.bytesPerSecond, 0);
  });

  test('start() reads at once and on a timer that does not hold the process; stop() ends it', async () => {
    let reads = 0;
    const m = new PortLoadMeter(() => (reads++, at(0)), { intervalMs: 10 });
    m.start();
    assert.equal(reads, 1);
    // A busy machine delays timers: wait for readings, not for a fixed time.
    for (let waited = 0; reads < 3 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    m.stop();
    const n = reads;
    assert.ok(n >= 3, `${n} readings`);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(reads, n);
  });
});

describe('direct-path prefix and switch settings', () => {
  test('a.b.c.d/n in dsr_switch: network and mask in network order; none = all zero', () => {
    const b = encodeSwitch({ address: '198.18.1.1', direct: parseIpv4Prefix('198.18.0.77/24') });
    assert.equal(b.length, SWITCH.size);
    assert.equal(b.toString('hex'), 'c6120101' + 'c6120000' + 'ffffff00' + '00000000');
    assert.equal(encodeSwitch({ address: '198.18.1.1', direct: parseIpv4Prefix('198.18.0.2/32') }).toString('hex'), 'c6120101c6120002ffffffff00000000');
    assert.equal(encodeSwitch({ address: '198.18.1.1' }).toString('hex'), 'c6120101' + '00'.repeat(12));
    for (const bad of ['198.18.0.2', '198.18.0.2/33', 'x/8', '198.18.0/24']) {
      assert.throws(() => parseIpv4Prefix(bad), (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE, bad);
    }
  });

  test('config: the filter is on by default, labDirectPath off; switch.address must be IPv4', () => {
    const base = { servers: {}, switch: { bridge: 'br0' } };
    const sw = resolveConfig(base).switch!;
    assert.equal(sw.filter, true);
    assert.equal(sw.labDirectPath, false);
    assert.equal(sw.address, undefined);
    assert.equal(resolveConfig({ ...base, switch: { bridge: 'br0', filter: false, address: '10.0.0.1' } }).switch!.filter, false);
    assert.throws(() => resolveConfig({ ...base, switch: { bridge: 'br0', address: 'fe80::1' } }), /switch\.address/);
  });
});
