/**
 * The relay's request journal (DSR_RELAY_CONN_JOURNAL, issue 5 "nothing lost") through
 * src/offload/relay.ts, with both framings, on loopback sockets as root: every request the kernel
 * forwards is kept, byte for byte as the server received it, until the kernel forwards its final
 * response; what cannot be journaled passes to user space. The server is a plain TCP server of
 * this test that answers only when told to, so requests stay unanswered as long as a test wants.
 *
 *   client --TCP--> [accepted]  relay_socks 2*conn    (requests: journaled when forwarded)
 *                   [backend]   relay_socks 2*conn+1  --TCP--> server (answers when told)
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { ABI } from '../../src/offload/abi.js';
import type { RelayPrograms, RelayFraming } from '../../src/offload/relay.js';
import { NtStatus } from '../../src/control/wire/ntstatus.js';
import { SMB2_HEADER_SIZE, Smb2Command, Smb2Flags } from '../../src/control/wire/smb2/constants.js';
import { encodeReadResponse } from '../../src/control/wire/smb2/read.js';
import { encodeWriteRequest } from '../../src/control/wire/smb2/write.js';
import { BACKEND, BUFFERS, DELTA, FILE, IDS, MIB, RULES, RelayBench, message, readBody, relaySkip, request, until, type Pair } from './relay-harness.js';

const skip = relaySkip('relay journal');

const read = (mid: bigint) => request({ Command: Smb2Command.READ, MessageId: mid }, readBody());
/** The server's answer to a request the kernel forwarded: its final response, or an interim one. */
const response = (command: number, serverMid: bigint, interim = false) =>
  interim
    ? message({ Command: command, MessageId: serverMid, Status: NtStatus.STATUS_PENDING, Flags: Smb2Flags.SERVER_TO_REDIR | Smb2Flags.ASYNC_COMMAND, AsyncId: 0x77n, SessionId: BACKEND.session }, Buffer.alloc(8))
    : message({ Command: command, MessageId: serverMid, Flags: Smb2Flags.SERVER_TO_REDIR, SessionId: BACKEND.session, TreeId: BACKEND.tree }, Buffer.alloc(16));

for (const framing of ['strparser', 'cut-through'] as RelayFraming[]) {
  describe(`the relay's request journal (${framing})`, { skip }, () => {
    const bench = new RelayBench(framing);
    let relay: RelayPrograms;
    const counter = (name: 'journaled' | 'journal-freed' | 'fwd-skb') => relay.counters()[name];
    const pair = () => bench.pair();

    before(() => {
      bench.open();
      relay = bench.relay;
    });

    after(() => bench.close());

    describe('one connection, journal on', () => {
      const CONN = 1;
      let p: Pair;
      /** After a pass the request direction stays with user space: the test takes it back and lends it again. */
      const rearm = () => {
        relay.disarm(CONN);
        relay.arm(CONN, RULES, IDS);
      };

      before(async () => {
        p = await pair();
        relay.offload(CONN, p.accepted, p.backend, RULES, IDS, BUFFERS);
      });

      test('a READ forwarded leaves one entry in a small slot: the frame the server received, MessageId as forwarded', async () => {
        const journaled = counter('journaled');
        p.client.write(read(10n));
        await until('the READ at the server', () => p.atServer.frames().length === 1);
        const entries = relay.journal(CONN);
        const frame = p.atServer.frames()[0]!;
        assert.deepEqual(entries.map((e) => [e.messageId, e.length, e.copied]), [[10n + DELTA, frame.length, frame.length]]);
        const small = entries[0]!.slot - ABI.DSR_RELAY_JOURNAL_SMALL_BASE;
        assert.ok(small >= 0 && small < ABI.DSR_RELAY_JOURNAL_SMALL_SLOTS, `slot ${entries[0]!.slot} is a small one`);
        assert.deepEqual(relay.journalFrame(entries[0]!), frame);
        assert.equal(frame.readBigUInt64LE(4 + 40), BACKEND.session, 'the backend ids, as the server got them');
        assert.equal(counter('journaled'), journaled + 1);
        assert.equal(p.atNode.bytes.length, 0);
      });

      test('an interim response leaves the entry; the final response frees it', async () => {
        const freed = counter('journal-freed');
        p.server.write(response(Smb2Command.READ, 10n + DELTA, true));
        await until('the interim response at the client', () => p.atClient.frames().length === 1);
        assert.deepEqual(relay.journal(CONN).map((e) => e.messageId), [10n + DELTA]);
        p.server.write(response(Smb2Command.READ, 10n + DELTA));
        await until('the final response at the client', () => p.atClient.frames().length === 2);
        assert.equal(p.atClient.frames()[1]!.readBigUInt64LE(4 + 24), 10n, "the client's MessageId");
        assert.deepEqual(relay.journal(CONN), []);
        assert.equal(counter('journal-freed'), freed + 1);
      });

      test('a header split across sends is journaled whole, once its frame goes', async () => {
        const frame = read(11n);
        p.client.write(frame.subarray(0, 30));
        await sleep(30);
        p.client.write(frame.subarray(30));
        await until('the READ at the server', () => p.atServer.frames().length === 2);
        const [entry] = relay.journal(CONN);
        assert.deepEqual(relay.journalFrame(entry!), p.atServer.frames()[1]);
        p.server.write(response(Smb2Command.READ, 11n + DELTA));
        await until('the journal empty', () => relay.journal(CONN).length === 0);
      });

      test('a 1 MiB WRITE sent in 64 KiB pieces is journaled whole (cut-through: one skb at a time)', async () => {
        const data = Buffer.alloc(MIB);
        for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i * 2654435761 >>> 0, i);
        const body = encodeWriteRequest({ Offset: 0n, FileId: FILE.client, Channel: 0, RemainingBytes: 0, WriteChannelInfo: Buffer.alloc(0), Flags: 0, Data: data });
        const frame = request({ Command: Smb2Command.WRITE, MessageId: 12n, CreditCharge: 16 }, body);
        const skbs = counter('fwd-skb');
        for (let at = 0; at < frame.length; at += 65536) {
          p.client.write(frame.subarray(at, at + 65536));
          await sleep(2);
        }
        await until('the WRITE at the server', () => p.atServer.frames().length === 3);
        const atServer = p.atServer.frames()[2]!;
        assert.equal(atServer.length, frame.length);
        const [entry] = relay.journal(CONN);
        assert.deepEqual([entry!.messageId, entry!.length, entry!.copied], [12n + DELTA, frame.length, frame.length]);
        assert.ok(entry!.slot < ABI.DSR_RELAY_JOURNAL_SLOTS, `slot ${entry!.slot} is one of the 1 MiB ones`);
        assert.ok(relay.journalFrame(entry!).equals(atServer), 'the journaled frame is the bytes the server received');
        if (framing === 'cut-through') assert.ok(counter('fwd-skb') - skbs >= 16, `forwarded in ${counter('fwd-skb') - skbs} skbs`);
        p.server.write(response(Smb2Command.WRITE, 12n + DELTA));
        await until('the journal empty', () => relay.journal(CONN).length === 0);
      });

      test("a READ response in two pieces keeps its request's entry until its last byte; cut-through names it in the reply's state, with its DataOffset and DataLength", async () => {
        p.client.write(read(20n));
        await until('the READ at the server', () => p.atServer.frames().length === 4);
        const data = Buffer.alloc(200_000, 0x5a);
        const rsp = message(
          { Command: Smb2Command.READ, MessageId: 20n + DELTA, Flags: Smb2Flags.SERVER_TO_REDIR, SessionId: BACKEND.session, TreeId: BACKEND.tree },
          encodeReadResponse({ Reserved: 0, DataRemaining: 0, Flags: 0, Data: data }),
        );
        const freed = counter('journal-freed');
        const half = 100_000;
        const atClient = () => p.atClient.bytes.length;
        const before = atClient();
        p.server.write(rsp.subarray(0, half));
        if (framing === 'cut-through') await until('the first piece at the client', () => atClient() === before + half);
        else await sleep(50);
        assert.deepEqual(relay.journal(CONN).map((e) => e.messageId), [20n + DELTA], 'the entry stays');
        const { reply } = relay.state(CONN);
        if (framing === 'cut-through') {
          assert.equal(reply.skip, rsp.length - half, 'the rest of the frame is still to come');
          assert.deepEqual(reply.tail, { messageId: 20n + DELTA, dataOffset: SMB2_HEADER_SIZE + 16, dataLength: data.length });
        } else {
          assert.equal(reply.tail, undefined, 'a whole frame is never forwarded in part');
        }
        p.server.write(rsp.subarray(half));
        await until('the response at the client', () => p.atClient.frames().length === 5);
        assert.equal(p.atClient.frames()[4]!.length, rsp.length);
        assert.deepEqual(relay.journal(CONN), []);
        assert.equal(counter('journal-freed'), freed + 1);
        assert.equal(relay.state(CONN).reply.tail, undefined);
      });

      test("a compound passes 'compound', untouched, before anything of it is journaled", async () => {
        const passes = relay.passes().compound ?? 0;
        const journaled = counter('journaled');
        const first = readBody();
        const padded = Buffer.concat([first, Buffer.alloc(56 - first.length)]);
        const chained = request({ Command: Smb2Command.READ, MessageId: 13n, NextCommand: SMB2_HEADER_SIZE + 56 }, padded);
        const second = request({ Command: Smb2Command.READ, MessageId: 14n }, readBody());
        const compound = Buffer.concat([chained.subarray(0, 4), chained.subarray(4), second.subarray(4)]);
        compound.writeUInt32BE(compound.length - 4, 0);
        p.client.write(compound);
        await until('the compound in Node', () => p.atNode.bytes.length === compound.length);
        assert.deepEqual(p.atNode.bytes, compound, 'the bytes as the client sent them');
        assert.equal(p.atServer.frames().length, 4, 'the server got nothing');
        assert.equal(relay.passes().compound, passes + 1);
        assert.equal(relay.state(CONN).request.sticky, 'compound');
        assert.equal(counter('journaled'), journaled);
        assert.deepEqual(relay.journal(CONN), []);
        rearm();
      });

      test("with the connection's share of entries taken the next request passes 'journal'; disarm leaves the entries, journalFree lets one go", async () => {
        const n = ABI.DSR_RELAY_JOURNAL_PER_CONN;
        const seen = p.atServer.frames().length;
        const before = p.atNode.bytes.length;
        p.client.write(Buffer.concat(Array.from({ length: n }, (_, i) => read(100n + BigInt(i)))));
        await until(`${n} READs at the server`, () => p.atServer.frames().length === seen + n);
        assert.equal(relay.journal(CONN).length, n);
        const passes = relay.passes().journal ?? 0;
        const extra = read(100n + BigInt(n));
        p.client.write(extra);
        await until('the last READ in Node', () => p.atNode.bytes.length === before + extra.length);
        assert.deepEqual(p.atNode.bytes.subarray(before), extra, 'untouched');
        assert.equal(relay.passes().journal, passes + 1);
        assert.equal(relay.state(CONN).request.sticky, 'journal');
        relay.disarm(CONN);
        const entries = relay.journal(CONN);
        assert.deepEqual(
          entries.map((e) => e.messageId),
          Array.from({ length: n }, (_, i) => 100n + BigInt(i) + DELTA),
        );
        assert.equal(new Set(entries.map((e) => e.slot)).size, n, 'one slot each');
        const frames = p.atServer.frames().slice(seen);
        assert.ok(entries.every((e, i) => relay.journalFrame(e).equals(frames[i]!)));
        relay.journalFree(CONN, 100n + DELTA);
        relay.journalFree(CONN, 100n + DELTA);
        assert.equal(relay.journal(CONN).length, n - 1, 'freed once');
        assert.throws(() => relay.journalFrame(entries[0]!), /no longer holds/);
        relay.arm(CONN, RULES, IDS);
      });

      test('release frees every entry of the connection', () => {
        assert.equal(relay.journal(CONN).length, ABI.DSR_RELAY_JOURNAL_PER_CONN - 1);
        relay.release(CONN);
        assert.deepEqual(relay.journal(CONN), []);
      });
    });

    test("after release its slots are free again: three connections each journal their share of READs, more than the 1 MiB slots, with no 'journal' pass", async () => {
      const n = ABI.DSR_RELAY_JOURNAL_PER_CONN;
      const passes = relay.passes().journal ?? 0;
      const conns = [2, 4, 5];
      assert.ok(conns.length * n > ABI.DSR_RELAY_JOURNAL_SLOTS);
      const pairs = await Promise.all(conns.map(() => pair()));
      conns.forEach((conn, k) => relay.offload(conn, pairs[k]!.accepted, pairs[k]!.backend, RULES, IDS, BUFFERS));
      for (const p of pairs) p.client.write(Buffer.concat(Array.from({ length: n }, (_, i) => read(BigInt(i)))));
      for (const p of pairs) await until(`${n} READs at the server`, () => p.atServer.frames().length === n);
      for (const conn of conns) assert.equal(relay.journal(conn).length, n);
      assert.equal(relay.passes().journal ?? 0, passes);
      // Each answered: every entry goes, and the connections' shares with them.
      for (const p of pairs) p.server.write(Buffer.concat(Array.from({ length: n }, (_, i) => response(Smb2Command.READ, BigInt(i) + DELTA))));
      for (const p of pairs) await until(`${n} responses at the client`, () => p.atClient.frames().length === n);
      for (const conn of conns) assert.deepEqual(relay.journal(conn), []);
      // The share counts down as entries go: a full share of READs fits again.
      const p = pairs[0]!;
      p.client.write(Buffer.concat(Array.from({ length: n }, (_, i) => read(BigInt(n + i)))));
      await until(`${n} more READs at the server`, () => p.atServer.frames().length === 2 * n);
      assert.equal(relay.passes().journal ?? 0, passes);
      for (const conn of conns) relay.release(conn);
    });

    test("the rules' journalMax sets the connection's share: that many READs in flight are forwarded, the next passes 'journal'", async () => {
      const CONN = 6;
      const max = ABI.DSR_RELAY_JOURNAL_PER_CONN + 36;
      const p = await pair();
      relay.offload(CONN, p.accepted, p.backend, { ...RULES, journalMax: max }, IDS, BUFFERS);
      const passes = relay.passes().journal ?? 0;
      p.client.write(Buffer.concat(Array.from({ length: max }, (_, i) => read(BigInt(i)))));
      await until(`${max} READs at the server`, () => p.atServer.frames().length === max);
      assert.equal(relay.journal(CONN).length, max);
      assert.equal(relay.passes().journal ?? 0, passes);
      const extra = read(BigInt(max));
      p.client.write(extra);
      await until('the next READ in Node', () => p.atNode.bytes.length === extra.length);
      assert.equal(relay.passes().journal, passes + 1);
      relay.release(CONN);
    });

    test("loaded with 8 WRITE slots (relay.journalWriteSlots): 8 WRITEs in flight are journaled, the 9th passes 'journal' while READs still take small slots", async () => {
      const small = new RelayBench(framing, 8);
      small.open();
      try {
        const r = small.relay;
        const p = await small.pair();
        r.offload(1, p.accepted, p.backend, RULES, IDS, BUFFERS);
        const write = (mid: bigint) =>
          request({ Command: Smb2Command.WRITE, MessageId: mid }, encodeWriteRequest({ Offset: 0n, FileId: FILE.client, Channel: 0, RemainingBytes: 0, WriteChannelInfo: Buffer.alloc(0), Flags: 0, Data: Buffer.alloc(4096, 7) }));
        p.client.write(Buffer.concat([...Array.from({ length: 8 }, (_, i) => write(BigInt(i))), read(8n)]));
        await until('8 WRITEs and a READ at the server', () => p.atServer.frames().length === 9);
        const entries = r.journal(1);
        assert.deepEqual(entries.map((e) => e.slot < ABI.DSR_RELAY_JOURNAL_SMALL_BASE).sort(), [false, ...Array<boolean>(8).fill(true)], 'eight 1 MiB slots and a small one');
        assert.deepEqual(entries.filter((e) => e.slot < 8).map((e) => e.slot).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
        const extra = write(9n);
        p.client.write(extra);
        await until('the 9th WRITE in Node', () => p.atNode.bytes.length === extra.length);
        assert.equal(r.passes().journal, 1);
        r.release(1);
      } finally {
        small.close();
      }
    });

    test('with journal off nothing is journaled, and a compound is forwarded as before', async () => {
      const CONN = 3;
      const p = await pair();
      relay.offload(CONN, p.accepted, p.backend, { ...RULES, journal: false }, IDS, BUFFERS);
      const journaled = counter('journaled');
      const first = readBody();
      const chained = request({ Command: Smb2Command.READ, MessageId: 1n, NextCommand: SMB2_HEADER_SIZE + 56 }, Buffer.concat([first, Buffer.alloc(56 - first.length)]));
      const second = request({ Command: Smb2Command.READ, MessageId: 2n }, readBody());
      const compound = Buffer.concat([chained, second.subarray(4)]);
      compound.writeUInt32BE(compound.length - 4, 0);
      p.client.write(Buffer.concat([read(0n), compound]));
      await until('both frames at the server', () => p.atServer.frames().length === 2);
      assert.deepEqual(relay.journal(CONN), []);
      assert.equal(counter('journaled'), journaled);
      assert.equal(p.atNode.bytes.length, 0);
      p.server.write(response(Smb2Command.READ, DELTA));
      await until('the response at the client', () => p.atClient.frames().length === 1);
      relay.release(CONN);
    });
  });
}
