/**
 * The relay's bound on what waits for a client behind in reading (dsr_relay_conn.max_queued), on
 * loopback sockets as root, with cut-through framing: the DSR sets it only there, as a whole
 * 1 MiB response the strparser passes to user space can stall the socket (README). The verdict reads the server's socket as fast as
 * it comes, so TCP never holds the server back: what a client does not read waits in its
 * socket's psock queue. Past max_queued a response passes to user space ('behind') instead, and
 * the direction stays there; the responses the kernel did forward reach the client whole and in
 * order once it reads.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { written } from '../../src/offload/relay.js';
import { decodeHeader } from '../../src/control/wire/smb2/header.js';
import { Smb2Command, Smb2Flags } from '../../src/control/wire/smb2/constants.js';
import { encodeReadResponse } from '../../src/control/wire/smb2/read.js';
import { BACKEND, BUFFERS, DELTA, IDS, MIB, RULES, RelayBench, message, readBody, relaySkip, request, until } from './relay-harness.js';

const skip = relaySkip('relay behind');
const N = 48;
const MAX_QUEUED = 2 * MIB;
/** A READ response carrying 1 MiB, for the client's request `mid`. */
const response = (mid: bigint) =>
  message({ Command: Smb2Command.READ, MessageId: mid + DELTA, Flags: Smb2Flags.SERVER_TO_REDIR, SessionId: BACKEND.session, TreeId: BACKEND.tree }, encodeReadResponse({ Reserved: 0, DataRemaining: 0, Flags: 0, Data: Buffer.alloc(MIB, Number(mid)) }));
const ids = (frames: Buffer[]) => frames.map((f) => decodeHeader(f.subarray(4)).MessageId);

describe('relay: a client behind in reading (cut-through)', { skip }, () => {
  const bench = new RelayBench('cut-through');
  before(() => bench.open());
  after(() => bench.close());

  test(`${N} READ responses of 1 MiB to a client that reads nothing: the kernel stops forwarding past max_queued ('behind'), the rest reach Node in order, and the client gets the forwarded ones whole once it reads`, async () => {
    const relay = bench.relay;
    const p = await bench.pair();
    const base = written(p.accepted);
    relay.offload(1, p.accepted, p.backend, { ...RULES, maxQueued: MAX_QUEUED, clientBase: base }, IDS, BUFFERS);
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
    await until('the forwarded responses at the client', () => p.atClient.frames().length === forwarded, 10_000);
    const frames = p.atClient.frames();
    assert.deepEqual(ids(frames), mids.slice(0, forwarded), 'in order, the client ids');
    frames.forEach((f, i) => assert.ok(f.subarray(f.length - MIB).equals(Buffer.alloc(MIB, i + 1)), `response ${i + 1} whole`));
  });
});
