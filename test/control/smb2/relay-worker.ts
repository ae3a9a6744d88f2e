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
 * With MODE `notify`, the client keeps a CHANGE_NOTIFY pending on the share's root (as Explorer
 * does on a folder it shows) while it reads ROUNDS MiB, 8 READs in flight; then a file appears in
 * the directory (written on the server's disk, beside VERIFY) and the NOTIFY must complete with
 * the AsyncId of its interim response. A second NOTIFY is cancelled by AsyncId after 16 more READs.
 * Prints {"rounds":N,"notified":STATUS,"cancelled":STATUS} then.
 *
 * Prints {"rounds":N} when every READ came back right; any failure goes to stderr, status 1.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Smb2Client } from '../../../src/control/smb2/client.js';
import { errorMessage } from '../../../src/control/errors.js';
import { NtStatus, ntStatusName } from '../../../src/control/wire/ntstatus.js';
import { encodeChangeNotifyRequest } from '../../../src/control/wire/smb2/change-notify.js';
import { Smb2Command, Smb2Dialect, Smb2Flags } from '../../../src/control/wire/smb2/constants.js';
import { header } from '../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../src/control/wire/smb2/message.js';
import { decodeReadResponse, encodeReadRequest } from '../../../src/control/wire/smb2/read.js';
import { encodeReservedBody } from '../../../src/control/wire/smb2/simple.js';
import { openInShare, openRoot } from '../../helpers/smb2-open.js';

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
  if (mode === 'notify') {
    /** `n` 1 MiB READs from block `from` on, 8 in flight. */
    const reads = async (from: number, n: number) => {
      let next = 0;
      const one = async () => {
        while (next < n) await read(0, (from + next++) % blocks);
      };
      await Promise.all(Array.from({ length: 8 }, one));
    };
    const dirId = await openRoot(c, treeId);
    let interim: bigint | undefined;
    c.onFrame.push((f) => {
      if (f.readUInt32LE(8) === NtStatus.STATUS_PENDING) interim = f.readBigUInt64LE(32);
    });
    /** A CHANGE_NOTIFY on the root, once the DSR answered it with an interim response: its AsyncId and final response. */
    const notify = async () => {
      interim = undefined;
      const final = c.request(Smb2Command.CHANGE_NOTIFY, encodeChangeNotifyRequest({ Flags: 0, OutputBufferLength: 4096, FileId: dirId, CompletionFilter: 0x1, Reserved: 0 }), { treeId, allowError: true });
      for (let i = 0; i < 250 && interim === undefined; i++) await new Promise((r) => setTimeout(r, 20));
      if (interim === undefined) throw new Error('no interim response to the CHANGE_NOTIFY');
      return { asyncId: interim, final };
    };
    /** The final response came async, with the interim's AsyncId. */
    const settled = async (n: { asyncId: bigint; final: Promise<{ hdr: { Status: number; Flags: number; AsyncId: bigint } }> }) => {
      const { hdr } = await n.final;
      if (!(hdr.Flags & Smb2Flags.ASYNC_COMMAND) || hdr.AsyncId !== n.asyncId) throw new Error(`the CHANGE_NOTIFY's response has AsyncId ${hdr.AsyncId}, its interim ${n.asyncId}`);
      return ntStatusName(hdr.Status);
    };
    const pending = await notify();
    await reads(0, Number(rounds));
    // Long enough for the DSR to stop reading the lent sockets; the file appears on the server's disk.
    await new Promise((r) => setTimeout(r, 100));
    const touched = join(dirname(verify), `notify-${process.pid}.txt`);
    writeFileSync(touched, 'changed\n');
    // The file stays until the end: removing it now would be a change the next NOTIFY returns at once.
    const notified = await settled(pending);
    const second = await notify();
    await reads(0, 16);
    await new Promise((r) => setTimeout(r, 100));
    c.sendRaw(encodeMessage(header({ Command: Smb2Command.CANCEL, Flags: Smb2Flags.ASYNC_COMMAND, AsyncId: second.asyncId, SessionId: c.sessionId }), encodeReservedBody()));
    const cancelled = await settled(second);
    rmSync(touched, { force: true });
    await reads(0, 1);
    process.stdout.write(JSON.stringify({ rounds: Number(rounds), notified, cancelled }) + '\n');
  } else {
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
  }
} catch (e) {
  process.stderr.write(`${errorMessage(e)}\n`);
  process.exitCode = 1;
} finally {
  c.close();
}
