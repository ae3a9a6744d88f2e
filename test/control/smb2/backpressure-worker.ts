/**
 * For the lab tests (redirect, relay), run in the lab's client namespace: one session that gets
 * far ahead of one side, steered by the test over stdin/stdout so it can read the DSR's memory
 * meanwhile. SMB 3.1.1 with signing required, so the DSR keeps it in user space; with MODE
 * `read-lent`, SMB 3.0.2 unsigned, which the DSR lends to its kernel relay.
 *
 *   backpressure-worker HOST SHARE FILE VERIFY USER PASSWORD MODE COUNT
 *
 * MODE `read` (and `read-lent`): COUNT READs of 1 MiB of FILE with the client not reading (its
 * socket paused), so the responses pile up in front of it. MODE `write`: COUNT WRITEs of 1 MiB into FILE (created),
 * the bytes of VERIFY in order, while the test slows the server's link. Either way the worker
 * prints `ready` once its credits are in, waits for a line, sends the COUNT requests, prints
 * `stalled`, waits for another line, then reads again and checks every response (READ data
 * against VERIFY). Prints {"done":COUNT}; any failure goes to stderr, status 1.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Smb2Client } from '../../../src/control/smb2/client.js';
import { errorMessage } from '../../../src/control/errors.js';
import { Smb2Command, Smb2Dialect } from '../../../src/control/wire/smb2/constants.js';
import { encodeCloseRequest } from '../../../src/control/wire/smb2/close.js';
import { decodeReadResponse, encodeReadRequest } from '../../../src/control/wire/smb2/read.js';
import { encodeReservedBody } from '../../../src/control/wire/smb2/simple.js';
import { openInShare } from '../../helpers/smb2-open.js';
import { encodeWriteRequest } from '../../../src/control/wire/smb2/write.js';

const MIB = 1 << 20;
const CHARGE = 16;
const [host, share, file, verify, user, password, mode, count] = process.argv.slice(2) as [string, string, string, string, string, string, 'read' | 'read-lent' | 'write', string];
const n = Number(count);
const expected = readFileSync(verify);
const blocks = Math.floor(expected.length / MIB);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => {
  if ((await lines.next()).done) throw new Error('stdin closed');
};

const lent = mode === 'read-lent';
const c = await Smb2Client.connect({ host, port: 445, dialects: [lent ? Smb2Dialect.SMB302 : Smb2Dialect.SMB311], requireSigning: !lent, timeoutMs: 60000 });
try {
  const { treeId, FileId } = await openInShare(c, { host, share, file, user, password, write: mode === 'write' });
  // Every request is sent at once: the credits for all of them first. A small READ asks for them
  // when the session may be lent: the DSR forwards it and asks the server as much, and lends only
  // while the server's window is as wide as the client's.
  const credits = n * CHARGE + 64;
  if (lent) {
    await c.request(
      Smb2Command.READ,
      encodeReadRequest({ Padding: 0x50, Flags: 0, Length: 4096, Offset: 0n, FileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) }),
      { treeId, creditRequest: credits },
    );
  } else await c.request(Smb2Command.ECHO, encodeReservedBody(), { creditRequest: credits });
  process.stdout.write('ready\n');
  await nextLine();
  const block = (i: number) => expected.subarray((i % blocks) * MIB, (i % blocks) * MIB + MIB);
  let requests: Promise<void>[];
  if (mode !== 'write') {
    c.tcp.pause();
    requests = Array.from({ length: n }, async (_, i) => {
      const r = await c.request(
        Smb2Command.READ,
        encodeReadRequest({ Padding: 0x50, Flags: 0, Length: MIB, Offset: BigInt((i % blocks) * MIB), FileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) }),
        { treeId, creditCharge: CHARGE },
      );
      if (!decodeReadResponse(r.msg).Data.equals(block(i))) throw new Error(`READ ${i} returned other bytes`);
    });
  } else {
    requests = Array.from({ length: n }, async (_, i) => {
      await c.request(Smb2Command.WRITE, encodeWriteRequest({ DataOffset: 0x70, Offset: BigInt(i * MIB), FileId, Channel: 0, RemainingBytes: 0, WriteChannelInfo: Buffer.alloc(0), Flags: 0, Data: block(i) }), {
        treeId,
        creditCharge: CHARGE,
      });
    });
  }
  process.stdout.write('stalled\n');
  await nextLine();
  c.tcp.resume();
  await Promise.all(requests);
  await c.request(Smb2Command.CLOSE, encodeCloseRequest({ Flags: 0, Reserved: 0, FileId }), { treeId });
  process.stdout.write(`${JSON.stringify({ done: n })}\n`);
  process.exit(0);
} catch (e) {
  process.stderr.write(`${errorMessage(e)}\n`);
  process.exit(1);
} finally {
  c.close();
}
