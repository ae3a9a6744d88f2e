/**
 * RelayPrograms.watch (src/offload/relay.ts) with both framings, on loopback sockets as root:
 * Node stops reading a lent connection's sockets, and relay_events (or the socket check) wakes
 * it, once, when the verdict sends bytes to user space, when a peer's FIN reaches the verdict,
 * or when a socket is reset (no skb brings that); a message the kernel forwards wakes nothing.
 * The server is a plain TCP server of this test that never answers on its own.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type RelayFraming, type RelayPrograms } from '../../src/offload/relay.js';
import { pauseReading, resumeReading } from '../../src/control/smb2/transport.js';
import { Smb2Command } from '../../src/control/wire/smb2/constants.js';
import { BUFFERS, IDS, RULES, RelayBench, readBody, relaySkip, request, until, type Pair } from './relay-harness.js';

const skip = relaySkip('relay watch');

const read = (mid: bigint) => request({ Command: Smb2Command.READ, MessageId: mid }, readBody());
/** An ECHO request (MS-SMB2 2.2.28): not in the rules' commands, so it goes to user space. */
const echo = (mid: bigint) => request({ Command: Smb2Command.ECHO, MessageId: mid }, Buffer.from([4, 0, 0, 0]));

for (const framing of ['strparser', 'cut-through'] as RelayFraming[]) {
  describe(`relay watch (${framing})`, { skip }, () => {
    const bench = new RelayBench(framing);
    let relay: RelayPrograms;
    let nextConn = 1;

    /** A fresh pair, offloaded, Node reading neither socket, watched: the count of wake-ups. */
    async function watched(): Promise<[Pair, { wakes: number }]> {
      const conn = nextConn++;
      const p = await bench.pair(true);
      relay.offload(conn, p.accepted, p.backend, RULES, IDS, BUFFERS);
      pauseReading(p.accepted, 'test');
      pauseReading(p.backend, 'test');
      const woken = { wakes: 0 };
      relay.watch(conn, () => {
        woken.wakes++;
        resumeReading(p.accepted, 'test');
        resumeReading(p.backend, 'test');
      });
      return [p, woken];
    }

    before(() => {
      bench.open();
      relay = bench.relay;
    });

    after(() => bench.close());

    test('a READ the kernel forwards wakes nothing; an ECHO it sends to user space wakes Node once, which then reads it', async () => {
      const [p, woken] = await watched();
      p.client.write(read(1n));
      await until('the READ at the server', () => p.atServer.bytes.length === read(1n).length);
      await sleep(300);
      assert.equal(woken.wakes, 0, 'not woken by a forwarded message');
      p.client.write(echo(2n));
      await until('the wake-up', () => woken.wakes > 0);
      await until('the ECHO in Node', () => p.atNode.bytes.length === echo(2n).length);
      p.client.write(echo(3n));
      await until('the second ECHO in Node', () => p.atNode.bytes.length === 2 * echo(2n).length);
      assert.equal(woken.wakes, 1, 'woken once');
    });

    test("the client's FIN wakes Node, which reads the end of the stream", async () => {
      const [p, woken] = await watched();
      let ended = false;
      p.accepted.on('end', () => (ended = true));
      p.client.end();
      await until('the wake-up', () => woken.wakes === 1);
      await until('the end of the stream in Node', () => ended);
    });

    test("a reset of the server's connection wakes Node (no skb brings it)", async () => {
      const [p, woken] = await watched();
      p.backend.on('error', () => undefined);
      p.server.resetAndDestroy();
      await until('the wake-up', () => woken.wakes === 1, 3000);
    });
  });
}
