/**
 * Verdict behaviours of the SMB2 relay (bpf/smb2_relay.bpf.c, commits 41afa9e and 2d6e951)
 * through src/offload/relay.ts, with both framings, on loopback sockets as root:
 *   - a FIN without data is dropped, not redirected (redirected, the peer socket got EPIPE);
 *   - a NetBIOS prefix that is no SMB2 frame passes at once ('bad-magic'), not held in the carry;
 *   - with the backend socket gone, a request skb passes 'no-peer' and `skip` covers the frames
 *     the kernel rewrote in it, whose journal entries stay; a header split at its end stays in
 *     the carry, which then follows the skb's bytes, not precedes them;
 *   - with rules.msgIdNext, requests must use MessageIds in order ('sequence'); unset, unchecked;
 *   - cut-through: a header split at the end of an skb longer than 16 KiB (bpf_skb_change_tail's
 *     bound) is carried to the next skb, itself longer than 16 KiB (bpf_skb_change_head's bound
 *     for a non-GSO skb), not passed 'error';
 *   - cut-through: a segment that repeats bytes the socket received (a client rebuilt with
 *     TCP_REPAIR by tcp-rewind.py, its send sequence 10 bytes back) loses its repeated head.
 * The server is a plain TCP server of this test that never answers on its own.
 *
 *   client --TCP--> [accepted]  relay_socks 2*conn    (requests)
 *                   [backend]   relay_socks 2*conn+1  --TCP--> server
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { RelayConn } from '../../src/offload/abi.js';
import { closeFd, enableRunTimeStats, type ProgRunTime } from '../../src/offload/native.js';
import type { RelayPrograms, RelayFraming } from '../../src/offload/relay.js';
import { Smb2Command, Smb2Flags } from '../../src/control/wire/smb2/constants.js';
import { encodeWriteRequest } from '../../src/control/wire/smb2/write.js';
import { BACKEND, BUFFERS, CLIENT, DELTA, FILE, IDS, RULES as DSR_RULES, RelayBench, Received, message, readBody, relaySkip, request, until, type Pair } from './relay-harness.js';

/** test/offload/tcp-rewind.py in the checkout (from dist/test/offload or test/offload). */
const REWIND = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../test/offload/tcp-rewind.py' : './tcp-rewind.py', import.meta.url));

const skip = relaySkip('relay verdict');

/** The DSR's rules, with CANCEL in the mask so the sequence check's CANCEL case runs. */
const RULES: RelayConn = { ...DSR_RULES, cmdMask: DSR_RULES.cmdMask | (1 << Smb2Command.CANCEL) };

const read = (mid: bigint, charge = 1) => request({ Command: Smb2Command.READ, MessageId: mid, CreditCharge: charge }, readBody());
/** A sync CANCEL of the request with `mid` (MS-SMB2 2.2.30: StructureSize 4, Reserved). */
const cancel = (mid: bigint) => request({ Command: Smb2Command.CANCEL, MessageId: mid, CreditCharge: 0 }, Buffer.from([4, 0, 0, 0]));
/** MessageId and SessionId of a frame (prefix included). */
const ids = (frame: Buffer) => [frame.readBigUInt64LE(4 + 24), frame.readBigUInt64LE(4 + 40)];

for (const framing of ['strparser', 'cut-through'] as RelayFraming[]) {
  describe(`relay verdict (${framing})`, { skip }, () => {
    const bench = new RelayBench(framing);
    let relay: RelayPrograms;
    let nextConn = 1;
    // Half open, so the kernel may still forward requests to a server that sent its FIN.
    const pair = () => bench.pair(true);

    /** A fresh pair, offloaded with `rules`: its connection id. */
    async function offloaded(rules: RelayConn = RULES): Promise<[number, Pair]> {
      const conn = nextConn++;
      const p = await pair();
      relay.offload(conn, p.accepted, p.backend, rules, IDS, BUFFERS);
      return [conn, p];
    }

    before(() => {
      bench.open();
      relay = bench.relay;
    });

    after(() => bench.close());

    test("a FIN from the server without data is dropped: the client socket gets no EPIPE, Node reads the backend's end, both directions still carry bytes", async () => {
      const [conn, p] = await offloaded();
      p.client.write(read(10n));
      await until('the READ at the server', () => p.atServer.frames().length === 1);
      p.server.end();
      await until("the server's FIN read on the backend socket", () => p.atNodeBackend.ended);
      // A redirected FIN failed on the client socket asynchronously (the relay's work queue).
      await sleep(100);
      assert.deepEqual([p.atNode.errors, p.atNode.ended, p.accepted.destroyed], [[], false, false], 'the client socket is intact');
      assert.deepEqual([p.atClient.errors, p.atClient.ended, p.atClient.bytes.length], [[], false, 0], 'the client saw nothing');
      assert.equal(p.atNodeBackend.bytes.length, 0);
      // Node answers the client itself (what it does when it takes requests over)...
      const reply = message({ Command: Smb2Command.READ, MessageId: 10n, Flags: Smb2Flags.SERVER_TO_REDIR, SessionId: CLIENT.session }, Buffer.alloc(16));
      p.accepted.write(reply);
      await until("Node's reply at the client", () => p.atClient.frames().length === 1);
      assert.deepEqual(p.atClient.bytes, reply);
      // ...and the kernel still forwards requests to the half-closed backend.
      p.client.write(read(11n));
      await until('the second READ at the server', () => p.atServer.frames().length === 2);
      assert.deepEqual(ids(p.atServer.frames()[1]!), [11n + DELTA, BACKEND.session]);
      assert.deepEqual([p.atNode.errors, p.atNodeBackend.errors, p.atNode.bytes.length], [[], [], 0]);
      assert.equal(relay.state(conn).reply.sticky, undefined, 'the FIN is no pass');
      relay.release(conn);
    });

    test("the attached programs' run time and runs count while run-time stats are on, and only then", async () => {
      const verdict = framing === 'strparser' ? 'relay_verdict_msg' : 'relay_verdict_cut';
      const runs = () => relay.runTimes()[verdict]!;
      assert.deepEqual(Object.keys(relay.runTimes()).sort(), framing === 'strparser' ? ['relay_parser', 'relay_verdict_msg'] : ['relay_verdict_cut']);
      const [conn, p] = await offloaded();
      const stats = enableRunTimeStats();
      let on: ProgRunTime;
      try {
        const before = runs();
        p.client.write(read(20n));
        await until('the READ at the server', () => p.atServer.frames().length === 1);
        on = runs();
        assert.ok(on.runCnt > before.runCnt && on.runTimeNs > before.runTimeNs, `the verdict that forwarded the READ counted: ${JSON.stringify([before, on])}`);
      } finally {
        closeFd(stats);
      }
      // Another process (a bench) may hold stats on too: the sysctl says whether anyone does.
      if (readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() === '0') {
        p.client.write(read(21n));
        await until('the second READ at the server', () => p.atServer.frames().length === 2);
        assert.deepEqual(runs(), on, 'with the stats off nothing counts');
      }
      relay.release(conn);
    });

    const notSmb2 = [
      // A Samba client's "suicide" message: type 0x74, length 1, one byte.
      ['the 5-byte suicide message (type 0x74)', Buffer.from([0x74, 0x00, 0x00, 0x01, 0x5d])],
      ['a session message shorter than an SMB2 header', Buffer.concat([Buffer.from([0, 0, 0, 8]), Buffer.from('12345678')])],
    ] as const;
    for (const [name, bytes] of notSmb2) {
      test(`${name}, alone in an skb, passes 'bad-magic' at once, untouched and not held in the carry`, async () => {
        const [conn, p] = await offloaded();
        const held = relay.counters()['carry-held'];
        const passes = relay.passes()['bad-magic'] ?? 0;
        p.client.write(bytes);
        // Held in the carry it would stay there until the client sent more: never, here.
        await until('the bytes in Node', () => p.atNode.bytes.length === bytes.length, 1000);
        assert.deepEqual(p.atNode.bytes, bytes);
        assert.equal(relay.passes()['bad-magic'], passes + 1);
        assert.equal(relay.counters()['carry-held'], held, 'nothing held in the carry');
        const st = relay.state(conn).request;
        assert.deepEqual([st.sticky, st.skip, st.atFrameStart, st.carry.length], ['bad-magic', 0, true, 0], 'user space frames from the first byte');
        // Sticky: a request after it is Node's too.
        p.client.write(read(1n));
        await until('the READ in Node', () => p.atNode.bytes.length === bytes.length + read(1n).length);
        assert.equal(p.atServer.bytes.length, 0, 'the server got nothing');
        relay.release(conn);
      });
    }

    test("with the backend socket gone, a request skb passes 'no-peer': skip covers the frames the kernel rewrote, and their journal entries stay", async () => {
      const [conn, p] = await offloaded();
      const passes = relay.passes()['no-peer'] ?? 0;
      // Closing the socket takes it out of the sockhash.
      p.backend.destroy();
      await until('the server to see the close', () => p.atServer.ended);
      const sent = [read(10n), read(11n)];
      p.client.write(Buffer.concat(sent));
      await until('both READs in Node', () => p.atNode.bytes.length === sent[0]!.length + sent[1]!.length);
      assert.equal(relay.passes()['no-peer'], passes + 1);
      const done = relay.disarm(conn);
      assert.equal(done.request.sticky, 'no-peer');
      assert.deepEqual([done.request.msgs, done.request.bytes], [0, 0], 'nothing counted as forwarded');
      // The strparser's verdict sees one frame at a time (the second passes 'sticky', untouched);
      // cut-through rewrites every header of the skb before the redirect fails.
      const rewritten = framing === 'strparser' ? 1 : 2;
      const frames = p.atNode.frames();
      assert.equal(done.request.skip, sent.slice(0, rewritten).reduce((n, f) => n + f.length, 0), 'skip: the rewritten frames');
      assert.deepEqual(
        frames.map(ids),
        sent.map((f, i) => (i < rewritten ? [ids(f)[0]! + DELTA, BACKEND.session] : ids(f))),
        'rewritten up to skip, as sent after',
      );
      const entries = relay.journal(conn);
      assert.deepEqual(
        entries.map((e) => [e.messageId, e.length, e.copied]),
        sent.slice(0, rewritten).map((f, i) => [10n + BigInt(i) + DELTA, f.length, f.length]),
      );
      assert.ok(entries.every((e, i) => relay.journalFrame(e).equals(frames[i]!)), 'the journal holds the bytes Node got');
      relay.release(conn);
      assert.deepEqual(relay.journal(conn), []);
    });

    if (framing === 'cut-through') {
      // 24 KiB: past bpf_skb_change_tail's bound; 8 KiB: within it, the 32 KiB skb after it past bpf_skb_change_head's.
      for (const first of [24, 8]) {
        test(`a header split at the end of a ${first} KiB skb is carried to the next, a 32 KiB one: both WRITEs reach the server rewritten, nothing passed`, async () => {
          const [, p] = await offloaded();
          const before = { counters: relay.counters(), passes: relay.passes() };
          const data = [randomBytes(first * 1024), randomBytes(32 * 1024)];
          const write = (i: number, ids: typeof CLIENT, fileId: typeof FILE.client, delta: bigint) =>
            message(
              { Command: Smb2Command.WRITE, MessageId: 30n + BigInt(i) + delta, CreditCharge: 1, SessionId: ids.session, TreeId: ids.tree },
              encodeWriteRequest({ Offset: 0n, FileId: fileId, Channel: 0, RemainingBytes: 0, WriteChannelInfo: Buffer.alloc(0), Flags: 0, Data: data[i]! }),
            );
          const sent = [0, 1].map((i) => write(i, CLIENT, FILE.client, 0n));
          const want = [0, 1].map((i) => write(i, BACKEND, FILE.backend, DELTA));
          // 30 bytes of the second header end the first skb (loopback: one write, one skb).
          p.client.write(Buffer.concat([sent[0]!, sent[1]!.subarray(0, 30)]));
          await until('the first WRITE at the server', () => p.atServer.bytes.length === sent[0]!.length);
          p.client.write(sent[1]!.subarray(30));
          await until('both WRITEs at the server', () => p.atServer.bytes.length === sent[0]!.length + sent[1]!.length);
          assert.ok(p.atServer.bytes.equals(Buffer.concat(want)), 'both frames rewritten, their data intact');
          assert.equal(p.atNode.bytes.length, 0, 'nothing passed to Node');
          const counters = relay.counters();
          assert.equal(counters['split-hdr'] - before.counters['split-hdr'], 1, 'one header carried');
          for (const err of ['err-load', 'err-store', 'err-tail', 'err-head'] as const) assert.equal(counters[err], before.counters[err], err);
          assert.deepEqual(relay.passes(), before.passes);
        });
      }

      test('a segment that starts 10 bytes before the end of what the socket received (a retransmission cut differently) loses its repeated head: the next READ reaches the server once, rewritten', async () => {
        const srv = createServer();
        const dsr = createServer();
        await Promise.all([srv, dsr].map((x) => new Promise<void>((r) => x.listen(0, '127.0.0.1', r))));
        let accepted: Socket | undefined;
        let server: Socket | undefined;
        dsr.on('connection', (x) => (accepted = x));
        srv.on('connection', (x) => (server = x));
        const sent = [read(50n), read(51n)];
        const rewind = spawn('python3', [REWIND, '127.0.0.1', String((dsr.address() as AddressInfo).port), sent[0]!.toString('hex'), sent[1]!.toString('hex'), '10'], { stdio: ['pipe', 'pipe', 'inherit'] });
        const out: string[] = [];
        rewind.stdout.on('data', (c: Buffer) => out.push(c.toString()));
        try {
          await until('the client connection', () => accepted !== undefined);
          const backend = connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, noDelay: true });
          await until('the server connection', () => server !== undefined);
          const atServer = new Received(server!);
          const atNode = new Received(accepted!);
          const conn = 900;
          const before = relay.counters();
          relay.offload(conn, accepted!, backend, RULES, IDS, BUFFERS);
          rewind.stdin.write('go\n');
          await until('the first READ at the server', () => atServer.bytes.length === sent[0]!.length);
          rewind.stdin.write('go\n');
          await until('the second send', () => out.join('').includes('sent'));
          await until('the second READ at the server', () => atServer.bytes.length >= sent[0]!.length + sent[1]!.length);
          await sleep(100);
          assert.deepEqual(atServer.frames().map(ids), sent.map((f) => [ids(f)[0]! + DELTA, BACKEND.session]), 'each READ once, rewritten');
          assert.equal(atServer.bytes.length, sent[0]!.length + sent[1]!.length, 'no byte twice');
          assert.equal(atNode.bytes.length, 0, 'nothing passed to Node');
          assert.equal(relay.counters().overlap - before.overlap, 1, 'one repeated head taken off');
          relay.release(conn);
          backend.destroy();
        } finally {
          rewind.stdin.end('\n');
          rewind.kill();
          accepted?.destroy();
          server?.destroy();
          await Promise.all([srv, dsr].map((x) => new Promise((r) => x.close(r))));
        }
      });

      test("with the backend socket gone, a header split at the end of the skb: the skb passes 'no-peer' cut before it, skip covers it, the carry holds the header's first bytes (they follow the skb)", async () => {
        const [conn, p] = await offloaded();
        p.backend.destroy();
        await until('the server to see the close', () => p.atServer.ended);
        const sent = [read(40n), read(41n)];
        p.client.write(Buffer.concat([sent[0]!, sent[1]!.subarray(0, 30)]));
        await until('the first READ in Node', () => p.atNode.bytes.length === sent[0]!.length);
        p.client.write(sent[1]!.subarray(30));
        await until('the rest in Node', () => p.atNode.bytes.length === sent[0]!.length + sent[1]!.length - 30);
        const done = relay.disarm(conn);
        assert.deepEqual([done.request.sticky, done.request.skip], ['no-peer', sent[0]!.length]);
        assert.ok(done.request.carry.equals(sent[1]!.subarray(0, 30)), "the carry: the second header's first 30 bytes");
        const node = p.atNode.bytes;
        assert.deepEqual(ids(node), [40n + DELTA, BACKEND.session], 'the first READ rewritten');
        assert.ok(node.subarray(sent[0]!.length).equals(sent[1]!.subarray(30)), 'then the bytes after the carry, as sent');
        relay.release(conn);
      });

      test("with the backend socket gone, a WRITE whose frame runs past its first skb: skip is the whole frame, the journal keeps what it copied", async () => {
        const [conn, p] = await offloaded();
        p.backend.destroy();
        await until('the server to see the close', () => p.atServer.ended);
        const data = Buffer.alloc(128 * 1024, 0xab);
        const frame = request(
          { Command: Smb2Command.WRITE, MessageId: 20n, CreditCharge: 2 },
          encodeWriteRequest({ Offset: 0n, FileId: FILE.client, Channel: 0, RemainingBytes: 0, WriteChannelInfo: Buffer.alloc(0), Flags: 0, Data: data }),
        );
        p.client.write(frame.subarray(0, 1000));
        await until('the first piece in Node', () => p.atNode.bytes.length === 1000);
        p.client.write(frame.subarray(1000));
        await until('the WRITE in Node', () => p.atNode.bytes.length === frame.length);
        const done = relay.disarm(conn);
        assert.deepEqual([done.request.sticky, done.request.skip], ['no-peer', frame.length], 'skip runs to the end of the rewritten frame');
        assert.deepEqual(ids(p.atNode.bytes), [20n + DELTA, BACKEND.session]);
        assert.ok(p.atNode.bytes.subarray(1000).equals(frame.subarray(1000)), 'the tail as sent');
        const [entry] = relay.journal(conn);
        assert.deepEqual([entry!.messageId, entry!.length, entry!.copied], [20n + DELTA, frame.length, 1000]);
        assert.ok(relay.journalFrame(entry!).equals(p.atNode.bytes.subarray(0, 1000)));
        relay.release(conn);
      });
    }

    describe('MessageIds in order (rules.msgIdNext)', () => {
      const N = 100n;
      let conn: number;
      let p: Pair;
      const rearm = (rules: RelayConn) => {
        relay.disarm(conn);
        relay.arm(conn, rules, IDS);
      };

      before(async () => {
        [conn, p] = await offloaded({ ...RULES, msgIdNext: N });
      });

      test("a first request that is not msgIdNext passes 'sequence', untouched", async () => {
        const passes = relay.passes().sequence ?? 0;
        const first = read(N + 1n);
        p.client.write(first);
        await until('the READ in Node', () => p.atNode.bytes.length === first.length);
        assert.deepEqual(p.atNode.bytes, first);
        assert.equal(relay.passes().sequence, passes + 1);
        assert.equal(relay.state(conn).request.sticky, 'sequence');
        assert.equal(p.atServer.bytes.length, 0);
        rearm({ ...RULES, msgIdNext: N });
      });

      test("N, then N + CreditCharge are forwarded (a CANCEL between them is not checked); a gap passes 'sequence' untouched", async () => {
        const before = p.atNode.bytes.length;
        p.client.write(read(N));
        await until('the first READ at the server', () => p.atServer.frames().length === 1);
        // CreditCharge 2: the next request is N + 3; the CANCEL takes no id.
        p.client.write(Buffer.concat([read(N + 1n, 2), cancel(N + 1n), read(N + 3n)]));
        await until('three more at the server', () => p.atServer.frames().length === 4);
        assert.deepEqual(
          p.atServer.frames().map(ids),
          [N, N + 1n, N + 1n, N + 3n].map((m) => [m + DELTA, BACKEND.session]),
        );
        const passes = relay.passes().sequence ?? 0;
        const gap = read(N + 5n);
        p.client.write(gap);
        await until('the gap in Node', () => p.atNode.bytes.length === before + gap.length);
        assert.deepEqual(p.atNode.bytes.subarray(before), gap, 'as the client sent it');
        assert.equal(relay.passes().sequence, passes + 1);
        assert.equal(p.atServer.frames().length, 4);
        const st = relay.state(conn).request;
        assert.deepEqual([st.sticky, st.msgs, st.charge, st.msgIdEnd], ['sequence', 4, 4, N + 4n], 'the counts stop before the gap');
      });

      test('unset, ids are not checked', async () => {
        rearm(RULES);
        const before = p.atServer.frames().length;
        const mids = [7n, 3n, 50n];
        for (const m of mids) {
          p.client.write(read(m));
          await until(`READ ${m} at the server`, () => p.atServer.frames().length === before + mids.indexOf(m) + 1);
        }
        assert.deepEqual(
          p.atServer.frames().slice(before).map((f) => ids(f)[0]),
          mids.map((m) => m + DELTA),
        );
        assert.equal(relay.state(conn).request.sticky, undefined);
        relay.release(conn);
      });
    });
  });
}
