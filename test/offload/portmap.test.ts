/** The port map's model and policy, without a kernel (the lab test programs a real bridge). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/control/config.js';
import { DsrError, ErrorCode } from '../../src/control/errors.js';
import { parsePortSet } from '../../src/control/port-admin.js';
import { portFlags, PortTable } from '../../src/offload/portmap.js';

const PORTS = ['sp1', 'sp2', 'sp3', 'sp4'];
const config = resolveConfig({
  servers: {
    server1: { address: '198.18.1.11', switchPort: 'sp1', mac: '02:00:C6:12:01:0B' },
    server2: { address: '198.18.1.12', switchPort: 'sp2' },
    server3: { address: 'nas3.example' },
  },
  switch: { bridge: 'br0', ports: PORTS },
});
const isUsage = (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE;

test('the configured placement: port, lower-case MAC, IPv4 from a literal address, every port isolated', () => {
  assert.deepEqual(PortTable.fromConfig(config, PORTS).list(), [
    { port: 'sp1', isolated: true, server: 'server1', mac: '02:00:c6:12:01:0b', ipv4: '198.18.1.11' },
    { port: 'sp2', isolated: true, server: 'server2', ipv4: '198.18.1.12' },
    { port: 'sp3', isolated: true },
    { port: 'sp4', isolated: true },
  ]);
});

test('policy: a known MAC turns learning and unknown-unicast flooding off; broadcasts (ARP) always flood', () => {
  assert.deepEqual(portFlags({ port: 'sp1', server: 's', mac: '02:00:00:00:00:01', isolated: true }), {
    isolated: true,
    learning: false,
    unicastFlood: false,
    multicastFlood: false,
    broadcastFlood: true,
  });
  assert.deepEqual(portFlags({ port: 'sp4', isolated: false }), { isolated: false, learning: true, unicastFlood: true, multicastFlood: false, broadcastFlood: true });
});

test('a server moved to another port takes its MAC and IPv4 along and empties its old port', () => {
  const t = PortTable.fromConfig(config, PORTS);
  assert.deepEqual(t.set({ port: 'sp3', server: 'server1' }), ['sp3', 'sp1']);
  assert.deepEqual(t.get('sp3'), { port: 'sp3', isolated: true, server: 'server1', mac: '02:00:c6:12:01:0b', ipv4: '198.18.1.11' });
  assert.deepEqual(t.get('sp1'), { port: 'sp1', isolated: true });
  assert.equal(t.portOf('server1'), 'sp3');
  // A new MAC with the move, then clearing it, then emptying the port.
  t.set({ port: 'sp4', server: 'server1', mac: '02:00:00:00:00:44' });
  assert.equal(t.get('sp4').mac, '02:00:00:00:00:44');
  t.set({ port: 'sp4', mac: null });
  assert.equal(t.get('sp4').mac, undefined);
  t.set({ port: 'sp4', server: null });
  assert.deepEqual(t.get('sp4'), { port: 'sp4', isolated: true });
  t.set({ port: 'sp4', isolated: false });
  assert.equal(t.get('sp4').isolated, false);
});

test('inconsistent changes are refused and change nothing', () => {
  const t = PortTable.fromConfig(config, PORTS);
  const before = t.list();
  assert.throws(() => t.set({ port: 'sp9', server: 'server3' }), isUsage);
  assert.throws(() => t.set({ port: 'sp3', server: 'nobody' }), isUsage);
  assert.throws(() => t.set({ port: 'sp3', mac: '02:00:00:00:00:03' }), /has no server/);
  assert.throws(() => t.set({ port: 'sp2', mac: '02:00:c6:12:01:0b' }), /already server1's, on port sp1/);
  assert.throws(() => t.set({ port: 'sp2', ipv4: '198.18.1.11' }), /already server1's/);
  assert.throws(() => t.set({ port: 'sp2', mac: '01:00:5e:00:00:01' }), /multicast/);
  assert.throws(() => t.set({ port: 'sp2', mac: 'zz' }), isUsage);
  assert.throws(() => t.set({ port: 'sp2', ipv4: '198.18.1' }), isUsage);
  assert.deepEqual(t.list(), before);
});

test('admin arguments: types checked, an empty change refused', () => {
  assert.deepEqual(parsePortSet({ port: 'sp1', server: 'server2', mac: null, isolated: false }), { port: 'sp1', server: 'server2', mac: null, isolated: false });
  assert.throws(() => parsePortSet({ port: 'sp1' }), /nothing to change/);
  assert.throws(() => parsePortSet({ server: 'x' }), /port is required/);
  assert.throws(() => parsePortSet({ port: 'sp1', isolated: 'yes' }), /isolated/);
  assert.throws(() => parsePortSet({ port: 'sp1', mac: 5 }), /mac/);
});

test('config: switch ports and MACs are checked', () => {
  const bad = (input: unknown, re: RegExp) => assert.throws(() => resolveConfig(input), (e: unknown) => e instanceof DsrError && re.test(e.message), String(re));
  bad({ servers: { a: { address: '10.0.0.1', switchPort: 'sp1' } } }, /servers\.a\.switchPort: needs a switch section/);
  bad({ servers: { a: { address: '10.0.0.1', mac: '02:00:00:00:00:01' } } }, /servers\.a\.mac: a MAC needs a switchPort/);
  bad({ switch: { bridge: 'br0', ports: ['sp1'] }, servers: { a: { address: '10.0.0.1', switchPort: 'sp2' } } }, /sp2 is not in switch\.ports/);
  bad(
    { switch: { bridge: 'br0' }, servers: { a: { address: '10.0.0.1', switchPort: 'sp1' }, b: { address: '10.0.0.2', switchPort: 'sp1' } } },
    /servers\.b\.switchPort: port sp1 is already a's/,
  );
  bad(
    { switch: { bridge: 'br0' }, servers: { a: { address: '10.0.0.1', switchPort: 'sp1', mac: '02:00:00:00:00:01' }, b: { address: '10.0.0.2', switchPort: 'sp2', mac: '02:00:00:00:00:01' } } },
    /MAC 02:00:00:00:00:01 is already a's/,
  );
  bad({ switch: { bridge: 'br0', ports: ['sp1', 'sp1', 'br0'] } }, /sp1 is listed twice[\s\S]*not one of its own ports/);
  bad({ switch: { bridge: 'br0' }, servers: { a: { address: '10.0.0.1', switchPort: 'sp1', mac: '03:00:00:00:00:01' } } }, /unicast/);
  bad({ switch: { bridge: 'a-name-longer-than-15' } }, /switch\.bridge/);
  assert.equal(resolveConfig({}).switch, undefined, 'no switch unless configured');
  assert.equal(resolveConfig({ switch: { bridge: 'br0' } }).switch?.isolated, true);
});
