/**
 * rtnetlink codecs against known byte layouts: requests byte for byte as iproute2 6.1's `bridge`
 * sends them (captured with `strace -e write=3`), and replies as Linux 6.18 sent them to the DSR
 * in the lab (sp1 on br0, isolated, learning and flooding off, a static FDB entry).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DsrError } from '../../src/control/errors.js';
import {
  AF_BRIDGE,
  formatAttr,
  formatBridgePortFlags,
  formatFdbDelete,
  formatFdbDump,
  formatFdbEntry,
  formatLinkDump,
  formatMessage,
  IFF_LOWER_UP,
  IFF_UP,
  isStaticFdb,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CREATE,
  NLM_F_MULTI,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseAttrs,
  parseError,
  parseFdbEntry,
  parseLink,
  parseMessages,
  RTM_DELNEIGH,
  RTM_NEWNEIGH,
  RTM_SETLINK,
} from '../../src/offload/rtnetlink.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const SEQ = 0x6b09ccfe;
const REQ = NLM_F_REQUEST | NLM_F_ACK;

test('static FDB entry: the bytes of `bridge fdb replace 02:d5:72:00:01:01 dev sp1 master static` (sp1 = ifindex 4)', () => {
  const msg = formatMessage({ type: RTM_NEWNEIGH, flags: REQ | NLM_F_REPLACE | NLM_F_CREATE, seq: SEQ, pid: 0 }, formatFdbEntry(4, '02:D5:72:00:01:01'));
  assert.equal(
    msg.toString('hex'),
    hex(`28000000 1c00 0505 fecc096b 00000000
         07 00 0000 04000000 4200 04 00
         0a00 0200 02d572000101 0000`).toString('hex'),
  );
});

test('FDB delete: the bytes of `bridge fdb del 02:d5:72:00:01:01 dev sp1 master`', () => {
  const msg = formatMessage({ type: RTM_DELNEIGH, flags: REQ, seq: SEQ, pid: 0 }, formatFdbDelete(4, '02:d5:72:00:01:01'));
  assert.equal(msg.toString('hex'), hex('28000000 1d00 0500 fecc096b 00000000 07000000 04000000 c000 0400 0a000200 02d572000101 0000').toString('hex'));
});

test('port flags: the bytes of `bridge link set dev sp1 isolated on learning off flood off mcast_flood off`', () => {
  const payload = formatBridgePortFlags(4, { isolated: true, learning: false, unicastFlood: false, multicastFlood: false });
  const msg = formatMessage({ type: RTM_SETLINK, flags: REQ, seq: SEQ, pid: 0 }, payload);
  assert.equal(
    msg.toString('hex'),
    hex(`44000000 1300 0500 fecc096b 00000000
         07 00 0000 04000000 00000000 00000000
         2400 0c80
           0500 0900 00000000  0500 1b00 00000000  0500 0800 00000000  0500 2100 01000000`).toString('hex'),
  );
  // Broadcast flooding, when asked for, sits between multicast flooding and learning.
  const all = parseAttrs(parseAttrs(formatBridgePortFlags(4, { broadcastFlood: true, learning: true }).subarray(16))[0]!.data);
  assert.deepEqual(all.map((a) => [a.type, a.data[0]]), [[30, 1], [8, 1]]);
});

test('dump requests are a bare ifinfomsg / ndmsg of the family', () => {
  assert.equal(formatLinkDump(AF_BRIDGE).toString('hex'), '07000000000000000000000000000000');
  assert.equal(formatFdbDump().toString('hex'), '070000000000000000000000');
});

test('MACs are checked', () => {
  assert.throws(() => formatFdbEntry(4, '02:d5:72:00:01'), DsrError);
  assert.throws(() => formatFdbEntry(4, '02-d5-72-00-01-01'), DsrError);
});

/** RTM_NEWLINK payload, AF_BRIDGE, for sp1 (ifindex 6) on br0 (ifindex 5), from Linux 6.18. */
const BRIDGE_PORT = hex(
  '07000100060000004310010000000000080003007370310008000a000500000008000400dc05000005001000060000000a000100ee109714cd3d00000800050002000000' +
  '50010c80050001000300000006000200200000000800030002000000050004000000000005000500000000000500060000000000050007000000000005001c0000000000' +
  '0500080000000000050009000000000005001b000000000005001e000100000005000a000000000005000c00000000000c000d0080003ac2c0d6df2d0c000e0080003ac2' +
  'c0d6df2d06000f00018000000600100000000000060011000180000006001200010000000500130000000000050014000000000005001d000000000006001f0000000000' +
  '05002000000000000500230000000000050024000000000005002100010000000500270000000000050028000000000005002b00000000000c0015000000000000000000' +
  '0c00160000000000000000000c0017000000000000000000050019000100000008002500000200000800260000000000080029000100000008002a0000000000',
);

test('a bridge port as the kernel reports it: name, master, carrier, operstate and port flags', () => {
  const l = parseLink(BRIDGE_PORT);
  assert.equal(l.family, AF_BRIDGE);
  assert.equal(l.index, 6);
  assert.equal(l.name, 'sp1');
  assert.equal(l.master, 5);
  assert.equal(l.address, 'ee:10:97:14:cd:3d');
  assert.equal(l.operState, 'up');
  assert.ok(l.flags & IFF_UP && l.flags & IFF_LOWER_UP);
  assert.deepEqual(l.brport, { isolated: true, learning: false, unicastFlood: false, multicastFlood: false, broadcastFlood: true, state: 3 });
});

test('every truncation of a link message is a DsrError or a shorter parse, never another exception', () => {
  for (let n = 0; n < BRIDGE_PORT.length; n++) {
    try {
      parseLink(BRIDGE_PORT.subarray(0, n));
    } catch (e) {
      assert.ok(e instanceof DsrError, `at ${n}: ${String(e)}`);
    }
  }
});

test('FDB entries: static (NUD_NOARP, bridge master), local (NUD_PERMANENT) and a port driver\'s own (NTF_SELF)', () => {
  const stat = parseFdbEntry(hex('0700000006000000400000000a0002000200c612010b0000080009000500000008000f000000000014000300000000006a0d00006a0d000000000000'));
  assert.deepEqual(stat, { ifindex: 6, mac: '02:00:c6:12:01:0b', state: 0x40, flags: 0, master: 5 });
  assert.equal(isStaticFdb(stat), true);
  const local = parseFdbEntry(hex('0700000006000000800000000a000200ee109714cd3d0000080009000500000008000f00000000001400030000000000d20f0000d20f000000000000'));
  assert.equal(local.mac, 'ee:10:97:14:cd:3d');
  assert.equal(isStaticFdb(local), false);
  const self = parseFdbEntry(hex('0700000006000000800002000a0002003333000000010000'));
  assert.deepEqual(self, { ifindex: 6, mac: '33:33:00:00:00:01', state: 0x80, flags: 2 });
  assert.equal(isStaticFdb(self), false);
});

test('messages, ACKs and errors', () => {
  const ack = formatMessage({ type: NLMSG_ERROR, flags: 0x100, seq: 7, pid: 99 }, hex('00000000 28000000 1c00 0505 07000000 00000000'));
  const done = formatMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 8, pid: 99 }, hex('00000000'));
  const [a, d] = parseMessages(Buffer.concat([ack, done]));
  assert.deepEqual([a!.type, a!.seq, d!.type, d!.flags], [NLMSG_ERROR, 7, NLMSG_DONE, NLM_F_MULTI]);
  assert.deepEqual(parseError(a!), { errno: 0 });
  // EEXIST with an extended ack: the request's header only (capped), then NLMSGERR_ATTR_MSG.
  const text = Buffer.from('FDB entry already exists\0');
  const nack = formatMessage(
    { type: NLMSG_ERROR, flags: 0x100 | NLM_F_ACK_TLVS, seq: 9, pid: 99 },
    Buffer.concat([hex('efffffff'), hex('28000000 1c00 0505 09000000 00000000'), formatAttr(1, text)]),
  );
  assert.deepEqual(parseError(parseMessages(nack)[0]!), { errno: 17, message: 'FDB entry already exists' });
  assert.throws(() => parseMessages(ack.subarray(0, ack.length - 4)), DsrError);
  assert.throws(() => parseAttrs(hex('0800 0300 6162')), DsrError);
});
