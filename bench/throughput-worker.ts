/**
 * Small-op latency for bench/throughput, run inside the lab's client namespace: one SMB2
 * session (our client, NTLMv2, SMB 3.0.2 unsigned), one tree connect, then
 * OPS timed CREATE+CLOSE pairs on FILE and OPS timed 4 KiB READs from one open of it. Every
 * READ's data is compared, untimed, with the file's bytes as they lie on the server's disk
 * (VERIFY, a path on this machine), so a relay that answers without the server is caught.
 *
 *   throughput-worker HOST PORT SHARE FILE VERIFY OPS USER PASSWORD
 *
 * Prints one JSON line: {"dialect","openClose":[µs...],"read4k":[µs...]}. Any failure (a
 * tree connect refused with STATUS_NOT_SUPPORTED, say) goes to stderr, exit status 1.
 */
import { readFileSync } from 'node:fs';
import { Smb2Client } from '../src/control/smb2/client.js';
import { ntOwfV1 } from '../src/control/tables/credentials.js';
import { errorMessage, ProtocolError } from '../src/control/errors.js';
import { dialectName, Smb2Command, Smb2Dialect } from '../src/control/wire/smb2/constants.js';
import { encodeCloseRequest } from '../src/control/wire/smb2/close.js';
import { AccessMask, CreateDisposition, CreateOptions, decodeCreateResponse, encodeCreateRequest, ImpersonationLevel, OplockLevel, ShareAccess } from '../src/control/wire/smb2/create.js';
import type { FileId } from '../src/control/wire/smb2/file-id.js';
import { decodeReadResponse, encodeReadRequest } from '../src/control/wire/smb2/read.js';
import { encodeTreeConnectRequest } from '../src/control/wire/smb2/tree.js';

const BLOCK = 4096;
/**
 * Up to 3.0.2, where our client signs only when the server requires it (smbd does not): at 3.1.1
 * it signs every message, and AES-CMAC in JavaScript costs tens of µs per message on each side,
 * which would hide the relay's own share of the latency. smbclient does not sign either.
 */
const DIALECTS = [Smb2Dialect.SMB202, Smb2Dialect.SMB210, Smb2Dialect.SMB300, Smb2Dialect.SMB302];
/** Untimed operations first, so connection warm-up (slow start, lazy code paths) is not sampled. */
const WARMUP = 20;

const argv = process.argv.slice(2);
if (argv.length !== 8 || argv.some((a) => a === '')) {
  process.stderr.write('usage: throughput-worker HOST PORT SHARE FILE VERIFY OPS USER PASSWORD\n');
  process.exit(2);
}
const [host, port, share, file, verify, ops, user, password] = argv as [string, string, string, string, string, string, string, string];

/** Names the step in the error a path reports (the bench prints it as that path's error). */
async function step<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new ProtocolError(`${what}: ${errorMessage(e)}`, undefined, { cause: e });
  }
}

const micros = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1000;

interface Samples {
  dialect: string;
  openClose: number[];
  read4k: number[];
}

async function measure(c: Smb2Client, expected: Buffer): Promise<Samples> {
  const blocks = Math.floor(expected.length / BLOCK);
  if (blocks < 1) throw new ProtocolError(`${verify} is shorter than one ${BLOCK}-byte block`);
  await step('NEGOTIATE', () => c.negotiate());
  await step(`SESSION_SETUP as ${user}`, () => c.sessionSetup(user, ntOwfV1(password)));
  const unc = `\\\\${host}\\${share}`;
  const tree = await step(`TREE_CONNECT ${unc}`, () => c.request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: unc })));
  const treeId = tree.hdr.TreeId;

  const create = encodeCreateRequest({
    SecurityFlags: 0,
    RequestedOplockLevel: OplockLevel.SMB2_OPLOCK_LEVEL_NONE,
    ImpersonationLevel: ImpersonationLevel.Impersonation,
    SmbCreateFlags: 0n,
    Reserved: 0n,
    DesiredAccess: AccessMask.FILE_READ_DATA | AccessMask.FILE_READ_ATTRIBUTES | AccessMask.SYNCHRONIZE,
    FileAttributes: 0,
    ShareAccess: ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE,
    CreateDisposition: CreateDisposition.FILE_OPEN,
    CreateOptions: CreateOptions.FILE_NON_DIRECTORY_FILE,
    Name: file,
    CreateContexts: [],
  });
  const open = async (): Promise<FileId> => decodeCreateResponse((await c.request(Smb2Command.CREATE, create, { treeId })).msg).FileId;
  const close = (FileId: FileId) => c.request(Smb2Command.CLOSE, encodeCloseRequest({ Flags: 0, Reserved: 0, FileId }), { treeId });

  const openClose: number[] = [];
  await step(`CREATE+CLOSE ${file}`, async () => {
    for (let i = 0; i < WARMUP + Number(ops); i++) {
      const t0 = process.hrtime.bigint();
      await close(await open());
      if (i >= WARMUP) openClose.push(micros(t0));
    }
  });

  const read4k: number[] = [];
  await step(`READ ${BLOCK} bytes of ${file}`, async () => {
    const FileId = await open();
    for (let i = 0; i < WARMUP + Number(ops); i++) {
      const block = i % blocks;
      const body = encodeReadRequest({ Padding: 0x50, Flags: 0, Length: BLOCK, Offset: BigInt(block * BLOCK), FileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) });
      const t0 = process.hrtime.bigint();
      const r = await c.request(Smb2Command.READ, body, { treeId });
      const us = micros(t0);
      const data = decodeReadResponse(r.msg).Data;
      if (!data.equals(expected.subarray(block * BLOCK, (block + 1) * BLOCK))) {
        throw new ProtocolError(`READ at offset ${block * BLOCK} returned ${data.length} bytes that differ from the file on the server`);
      }
      if (i >= WARMUP) read4k.push(us);
    }
    await close(FileId);
  });

  return { dialect: dialectName(c.dialect), openClose, read4k };
}

let client: Smb2Client | undefined;
try {
  const expected = readFileSync(verify);
  client = await step(`connect ${host}:${port}`, () => Smb2Client.connect({ host, port: Number(port), dialects: DIALECTS, timeoutMs: 10000 }));
  const s = await measure(client, expected);
  const round = (xs: number[]) => xs.map((x) => Math.round(x * 10) / 10);
  process.stdout.write(JSON.stringify({ dialect: s.dialect, openClose: round(s.openClose), read4k: round(s.read4k) }) + '\n');
} catch (e) {
  process.stderr.write(`${errorMessage(e)}\n`);
  process.exitCode = 1;
} finally {
  client?.close();
}
