/**
 * What the relay's reply verdict checks of the client socket before it forwards a response
 * (client_room in bpf/smb2_relay.bpf.c), on loopback sockets as root.
 *
 * The reply user space writes right after lending (dsr_relay_conn.client_base counts it): until
 * the socket has it, a response passes ('ahead') rather than go in front of it. Both framings.
 *
 * The bound on what waits for a client behind in reading (max_queued), with cut-through framing:
 * the DSR sets it only there, as a whole 1 MiB response the strparser passes to user space can
 * stall the socket (README). The verdict reads the server's socket as fast as it comes, so TCP
 * never holds the server back: what a client does not read waits in its socket's psock queue.
 * Past max_queued a response passes ('behind') instead, and the direction stays there; the
 * responses the kernel did forward reach the client whole and in order once it reads.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { written, type RelayFraming } from '../../src/offload/relay.js';
import { decodeHeader } from '../../src/control/wire/smb2/header.js';
import { Smb2Command, Smb2Flags } from '../../src/control/wire/smb2/constants.js';
import { encodeReadResponse } from '../../src/control/wire/smb2/read.js';
import { BACKEND, BUFFERS, DELTA, IDS, MIB, RULES, RelayBench, message, readBody, relaySkip, request, until } from './relay-harness.js';

const skip = relaySkip('relay client checks');
const N = 48;
const MAX_QUEUED = 2 * MIB;
/** A READ response carrying 1 MiB, for the client's request `mid`. */
const response = (mid: bigint) =>
  message({ Command: Smb2Command.READ, MessageId: mid + DELTA, Flags: Smb2Flags.SERVER_TO_REDIR, SessionId: BACKEND.session, TreeId: BACKEND.tree }, encodeReadResponse({ Reserved: 0, DataRemaining: 0, Flags: 0, Data: Buffer.alloc(MIB, Number(mid)) }));
const ids = (frames: Buffer[]) => frames.map((f) => decodeHeader(f.subarray(4)).MessageId);
/** A READ response carrying 4 KiB. */
const small = (mid: bigint) =>
  message({ Command: Smb2Command.READ, MessageId: mid + DELTA, Flags: Smb2Flags.SERVER_TO_REDIR, SessionId: BACKEND.session, TreeId: BACKEND.tree }, encodeReadResponse({ Reserved: 0, DataRemaining: 0, Flags: 0, Data: Buffer.alloc(4096, 7) }));
const READ = (mid: bigint) => request({ Command: Smb2Command.READ, MessageId: mid }, readBody());

for (const framing of ['strparser', 'cut-through'] as RelayFraming[]) {
  describe(`relay: a reply user space writes right after lending comes first (${framing})`, { skip }, () => {
    const bench = new RelayBench(framing);
    before(() => bench.open());
    after(() => bench.close());

    test("a response before the client socket has the reply passes ('ahead'); once it is in, responses are forwarded behind it", async () => {
      const relay = bench.relay;
      const p = await bench.pair();
      const reply = message({ Command: Smb2Command.CREATE, MessageId: 1n, Flags: Smb2Flags.SERVER_TO_REDIR }, Buffer.alloc(88));
      // Lent as the DSR does it before writing a CREATE's answer, which is late here.
      relay.offload(1, p.accepted, p.backend, { ...RULES, clientBase: written(p.accepted) + BigInt(reply.length) }, IDS, BUFFERS);
      p.client.write(READ(2n));
      await until('the READ at the server', () => p.atServer.frames().length === 1);
      p.server.write(small(2n));
      await until("the response in Node ('ahead')", () => p.atNodeBackend.frames().length === 1);
      assert.equal(relay.state(1).reply.sticky, 'ahead');
      assert.equal(relay.state(1).reply.msgs, 0);
      assert.equal(p.atClient.bytes.length, 0, 'nothing at the client before the reply');
      assert.ok((relay.passes().ahead ?? 0) >= 1);

      // Lent again with the reply written at once: the next response follows it.
      relay.disarm(1);
      const q = await bench.pair();
      relay.offload(2, q.accepted, q.backend, { ...RULES, clientBase: written(q.accepted) + BigInt(reply.length) }, IDS, BUFFERS);
      q.accepted.write(reply);
      q.client.write(READ(2n));
      await until('the READ at the server', () => q.atServer.frames().length === 1);
      q.server.write(small(2n));
      await until('both at the client', () => q.atClient.frames().length === 2);
      assert.deepEqual(ids(q.atClient.frames()), [1n, 2n], "Node's reply, then the kernel's response");
      assert.equal(relay.state(2).reply.sticky, undefined);
      assert.equal(relay.state(2).reply.msgs, 1);
    });
  });
}

describe('relay: a client behind in reading (cut-through)', { skip }, () => {
  const bench = new RelayBench('cut-through');
  before(() => bench.open());
  after(() => bench.close());

  test(`${N} READ responses of 1 MiB to a client that reads nothing: the kernel stops forwarding past max_queued ('behind'), the rest reach Node in order, and the client gets the forwarded ones whole once it reads`, async () => {
    const relay = bench.relay;
    const p = await bench.pair();
    // As the DSR lends: its reply to the client written right after, counted in client_base.
    const reply = message({ Command: Smb2Command.CREATE, MessageId: 0n, Flags: Smb2Flags.SERVER_TO_REDIR }, Buffer.alloc(88));
    const base = written(p.accepted) + BigInt(reply.length);
    relay.offload(1, p.accepted, p.backend, { ...RULES, maxQueued: MAX_QUEUED, clientBase: base }, IDS, BUFFERS);
    p.accepted.write(reply);
    p.client.pause();
    const mids = Array.from({ length: N }, (_, i) => BigInt(i + 1));
    p.client.write(Buffer.concat(mids.map((mid) => request({ Command: Smb2Command.READ, MessageId: mid }, readBody()))));
    await until('the READs at the server', () => p.atServer.frames().length === N);
    for (const mid of mids) p.server.write(response(mid));
    await until("the verdict to stop ('behind')", () => relay.state(1).reply.sticky === 'behind', 10_000);
    const forwarded = relay.state(1).reply.msgs;
    await until('the rest in Node', () => p.atNodeBackend.frames().length === N - forwarded, 10_000);
    assert.ok(forwarded > 0 && forwarded < N, `the kernel forwarded ${forwarded} of ${N}`);
    assert.deepEqual(ids(p.atNodeBackend.frames()), mids.slice(forwarded).map((m) => m + DELTA), 'the rest, in order, as the server sent them');
    assert.ok((relay.passes().behind ?? 0) >= 1);
    // What the kernel forwarded and the client socket could not take stayed near the bound:
    // the client's socket buffers hold the rest of what it forwarded.
    await sleep(100);
    const queued = relay.state(1).reply.bytes - Number(written(p.accepted) - base);
    assert.ok(queued <= MAX_QUEUED + 2 * MIB, `${(queued / MIB).toFixed(1)} MiB waiting for the client`);
    p.client.resume();
    await until('the forwarded responses at the client', () => p.atClient.frames().length === forwarded + 1, 10_000);
    const frames = p.atClient.frames().slice(1);
    assert.deepEqual(ids(frames), mids.slice(0, forwarded), 'in order after the reply, the client ids');
    frames.forEach((f, i) => assert.ok(f.subarray(f.length - MIB).equals(Buffer.alloc(MIB, i + 1)), `response ${i + 1} whole`));
  });
});
