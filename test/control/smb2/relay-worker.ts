/**
 * For relay.lab.root.test.ts, run in the lab's client namespace: one unsigned SMB 3.0.2 session
 * that keeps the DSR's kernel relay letting go in the middle of things. Each round sends a 1 MiB
 * READ (which the kernel forwards) and, 0-1.4 ms later, an ECHO (which it passes, so the DSR takes
 * the connection back), often while the READ's response is under way; then checks the READ's
 * bytes against the file on the server's disk.
 *
 *   relay-worker HOST SHARE FILE VERIFY ROUNDS USER PASSWORD
 *
 * With MODE `lag` (argument 8), a round is a client that falls behind instead: it stops reading,
 * sends an ECHO (the DSR takes the connection back) and 1 to 12 READs of 1 MiB, which Node
 * forwards and answers into a socket that fills up; the last answer makes the connection quiet,
 * and the DSR may lend it again then. 20 ms later the client sends 8 more READs (the kernel's,
 * if lent) and reads again. Every response must be whole and right: a reply Node wrote only in
 * part when it lent would have the kernel's replies cut into it.
 *
 * Prints {"rounds":N} when every READ came back right; any failure goes to stderr, status 1.
 */
import { readFileSync } from 'node:fs';
import { Smb2Client } from '../../../src/control/smb2/client.js';
import { errorMessage } from '../../../src/control/errors.js';
import { Smb2Command, Smb2Dialect } from '../../../src/control/wire/smb2/constants.js';
import { decodeReadResponse, encodeReadRequest } from '../../../src/control/wire/smb2/read.js';
import { encodeReservedBody } from '../../../src/control/wire/smb2/simple.js';
import { openInShare } from '../../helpers/smb2-open.js';

const MIB = 1 << 20;
const [host, share, file, verify, rounds, user, password, mode = 'tails'] = process.argv.slice(2) as [string, string, string, string, string, string, string, string?];
const expected = readFileSync(verify);
const blocks = Math.floor(expected.length / MIB);
const c = await Smb2Client.connect({ host, port: 445, dialects: [Smb2Dialect.SMB302], timeoutMs: 20000 });
try {
  const { treeId, FileId } = await openInShare(c, { host, share, file, user, password });
  /** A 1 MiB READ of block `block`, checked against the file when its response comes. */
  const read = async (round: number, block: number): Promise<void> => {
    const r = await c.request(
      Smb2Command.READ,
      encodeReadRequest({ Padding: 0x50, Flags: 0, Length: MIB, Offset: BigInt(block * MIB), FileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) }),
      { treeId, creditCharge: 16 },
    );
    if (!decodeReadResponse(r.msg).Data.equals(expected.subarray(block * MIB, (block + 1) * MIB))) throw new Error(`round ${round}: the READ at ${block} MiB returned other bytes`);
  };
  for (let i = 0; i < Number(rounds); i++) {
    if (mode === 'lag') {
      c.tcp.pause();
      const echo = c.request(Smb2Command.ECHO, encodeReservedBody());
      const reads = Array.from({ length: 1 + (i % 12) }, (_, k) => read(i, (i + k) % blocks));
      await new Promise((resolve) => setTimeout(resolve, 20));
      reads.push(...Array.from({ length: 8 }, (_, k) => read(i, (i + 3 * k) % blocks)));
      c.tcp.resume();
      await Promise.all([echo, ...reads]);
      continue;
    }
    const done = read(i, i % blocks);
    // 0 to 1.4 ms later, spun rather than slept (a timer waits 1 ms at least): a 1 MiB response
    // takes about that long to cross, so some ECHOs land while it is under way.
    const until = process.hrtime.bigint() + BigInt((i % 15) * 100_000);
    while (process.hrtime.bigint() < until);
    await c.request(Smb2Command.ECHO, encodeReservedBody());
    await done;
  }
  process.stdout.write(JSON.stringify({ rounds: Number(rounds) }) + '\n');
} catch (e) {
  process.stderr.write(`${errorMessage(e)}\n`);
  process.exitCode = 1;
} finally {
  c.close();
}
