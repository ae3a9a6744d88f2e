/**
 * Runs inside the lab's client namespace (the test process cannot reach it) and drives the DSR
 * with exact SMB2 messages through the project's own client. Prints one JSON line per step;
 * a line {"wait": name} means "reading storage counters now", and it waits for a line on stdin.
 *
 *   node redirect-worker.js <host> <port> <scenario>
 */
import { createInterface } from 'node:readline';
import { ntOwfV1 } from '../../../src/control/tables/credentials.js';
import { Smb2Client, type ClientSession, type Outbound, type Smb2Response } from '../../../src/control/smb2/client.js';
import { NtStatus, ntStatusName } from '../../../src/control/wire/ntstatus.js';
import { decodeCloseResponse, encodeCloseRequest } from '../../../src/control/wire/smb2/close.js';
import { encodeChangeNotifyRequest } from '../../../src/control/wire/smb2/change-notify.js';
import { Smb2Command, Smb2Flags } from '../../../src/control/wire/smb2/constants.js';
import { decodeCreateResponse, encodeCreateRequest } from '../../../src/control/wire/smb2/create.js';
import { type FileId, RELATED_FILE_ID } from '../../../src/control/wire/smb2/file-id.js';
import { splitCompound } from '../../../src/control/wire/smb2/compound.js';
import { decodeHeader, header } from '../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../src/control/wire/smb2/message.js';
import { decodeOplockBreak, encodeOplockBreak } from '../../../src/control/wire/smb2/oplock.js';
import { decodeReadResponse, encodeReadRequest } from '../../../src/control/wire/smb2/read.js';
import { encodeReservedBody } from '../../../src/control/wire/smb2/simple.js';
import { encodeTreeConnectRequest } from '../../../src/control/wire/smb2/tree.js';
import { encodeWriteRequest } from '../../../src/control/wire/smb2/write.js';

const [host = '198.18.0.1', portText = '445', scenario = ''] = process.argv.slice(2);
const port = Number(portText);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
async function pause(name: string): Promise<void> {
  out({ wait: name });
  await lines.next();
}
const status = (r: Smb2Response) => ntStatusName(r.hdr.Status);

async function logon(user = 'dsralice', password = 'Alice-Pass-1'): Promise<Smb2Client> {
  const c = await Smb2Client.connect({ host, port, timeoutMs: 15000 });
  await c.negotiate();
  await c.sessionSetup(user, ntOwfV1(password));
  return c;
}

async function tcon(c: Smb2Client, share: string): Promise<number> {
  return (await c.request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: `\\\\dsr\\${share}` }))).hdr.TreeId;
}

const OPLOCK_BATCH = 0x09;

/** The share root as a directory, for CHANGE_NOTIFY (FILE_LIST_DIRECTORY | SYNCHRONIZE | FILE_READ_ATTRIBUTES). */
const DIRECTORY_OPEN = {
  SecurityFlags: 0,
  RequestedOplockLevel: 0,
  ImpersonationLevel: 2,
  SmbCreateFlags: 0n,
  Reserved: 0n,
  DesiredAccess: 0x00100081,
  FileAttributes: 0,
  ShareAccess: 7,
  CreateDisposition: 1,
  CreateOptions: 0x1,
  Name: '',
  CreateContexts: [],
};

function createBody(name: string, oplock = 0, disposition = 5 /* FILE_OVERWRITE_IF */): Buffer {
  return encodeCreateRequest({
    SecurityFlags: 0,
    RequestedOplockLevel: oplock,
    ImpersonationLevel: 2,
    SmbCreateFlags: 0n,
    Reserved: 0n,
    DesiredAccess: 0x0012019f,
    FileAttributes: 0x80,
    ShareAccess: 7,
    CreateDisposition: disposition,
    CreateOptions: 0x40,
    Name: name,
    CreateContexts: [],
  });
}

async function create(c: Smb2Client, tree: number, name: string, oplock = 0, disposition?: number): Promise<{ fileId: FileId; oplock: number }> {
  const r = await c.request(Smb2Command.CREATE, createBody(name, oplock, disposition), { treeId: tree });
  const res = decodeCreateResponse(r.msg);
  return { fileId: res.FileId, oplock: res.OplockLevel };
}

const writeBody = (fileId: FileId, data: Buffer, offset = 0n) =>
  encodeWriteRequest({ Offset: offset, FileId: fileId, Channel: 0, RemainingBytes: 0, WriteChannelInfo: Buffer.alloc(0), Flags: 0, Data: data });
const readBody = (fileId: FileId, length: number, offset = 0n) =>
  encodeReadRequest({ Padding: 0, Flags: 0, Length: length, Offset: offset, FileId: fileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) });
const closeBody = (fileId: FileId) => encodeCloseRequest({ Flags: 0, Reserved: 0, FileId: fileId });

/** Sends hand-made messages as one compound frame and waits for every final response. */
function compound(c: Smb2Client, session: ClientSession, parts: { command: number; body: Buffer; tree: number; related?: boolean }[]): Promise<Smb2Response[]> {
  const items: Outbound[] = [];
  const done = parts.map(
    (p) =>
      new Promise<Smb2Response>((resolve, reject) => {
        const related = p.related === true;
        const msg = encodeMessage(
          header({ Command: p.command, CreditCharge: 1, Credit: 8, TreeId: related ? 0xffffffff : p.tree, SessionId: related ? 0xffffffffffffffffn : session.sessionId, Flags: related ? Smb2Flags.RELATED_OPERATIONS : 0 }),
          p.body,
        );
        const interim = (h: Smb2Response['hdr']) => h.Status === NtStatus.STATUS_PENDING && (h.Flags & Smb2Flags.ASYNC_COMMAND) !== 0;
        items.push({ msg, session, onResponse: (m, h) => (interim(h) ? undefined : resolve({ hdr: h, msg: Buffer.from(m) })), onError: reject });
      }),
  );
  c.send(items);
  return Promise.all(done);
}

/**
 * A session on data1 whose CHANGE_NOTIFY on the root the DSR answered with an interim response
 * (within 2 s; `interim` undefined if not): that response's fields, and the final one to come.
 */
async function pendingNotify(): Promise<{ c: Smb2Client; interim: { asyncId: bigint; credit: number; signed: boolean } | undefined; final: Promise<Smb2Response> }> {
  const c = await logon();
  const t = await tcon(c, 'data1');
  const dir = await c.request(Smb2Command.CREATE, encodeCreateRequest({ ...DIRECTORY_OPEN }), { treeId: t });
  const fileId = decodeCreateResponse(dir.msg).FileId;
  let interim: { asyncId: bigint; credit: number; signed: boolean } | undefined;
  c.onFrame.push((f) => {
    if (f.readUInt32LE(8) === NtStatus.STATUS_PENDING) interim = { asyncId: f.readBigUInt64LE(32), credit: f.readUInt16LE(14), signed: (f.readUInt32LE(16) & Smb2Flags.SIGNED) !== 0 };
  });
  const final = c.request(Smb2Command.CHANGE_NOTIFY, encodeChangeNotifyRequest({ Flags: 0, OutputBufferLength: 4096, FileId: fileId, CompletionFilter: 0x17, Reserved: 0 }), { treeId: t, allowError: true });
  // A client that hangs up leaves it unanswered.
  final.catch(() => undefined);
  for (let i = 0; i < 100 && !interim; i++) await new Promise((r) => setTimeout(r, 20));
  return { c, interim, final };
}

const scenarios: Record<string, () => Promise<void>> = {
  /** Requests a DSR must refuse itself after tree connect, and a share it does not have. */
  async malformed() {
    const a = await logon();
    const b = await logon('dsrbob', 'Bob-Pass-2');
    const ta = await tcon(a, 'data1');
    const tb = await tcon(b, 'data2');
    const fa = await create(a, ta, 'malformed-a.bin');
    await create(b, tb, 'malformed-b.bin');
    await pause('before');
    const r: Record<string, string> = {};
    r.badTree = status(await a.request(Smb2Command.READ, readBody(fa.fileId, 4096), { treeId: 0x7777, allowError: true }));
    // Alice's FileId used on Bob's session and tree.
    r.otherSession = status(await b.request(Smb2Command.READ, readBody(fa.fileId, 4096), { treeId: tb, allowError: true }));
    r.unknownFileId = status(await a.request(Smb2Command.READ, readBody({ Persistent: 1n, Volatile: 2n }, 4096), { treeId: ta, allowError: true }));
    r.oversizeRead = status(await a.request(Smb2Command.READ, readBody(fa.fileId, 16 * 1024 * 1024), { treeId: ta, creditCharge: 256, allowError: true }));
    r.chargeLie = status(await a.request(Smb2Command.WRITE, writeBody(fa.fileId, Buffer.alloc(256 * 1024)), { treeId: ta, creditCharge: 1, allowError: true }));
    r.unknownShare = status(await a.request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: '\\\\dsr\\nosuchshare' }), { allowError: true }));
    out({ results: r });
    await pause('after');
    a.close();
    b.close();
  },

  /** Shares whose server refuses them or cannot be reached. */
  async refusals() {
    const c = await logon();
    const tc = async (share: string) => status(await c.request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: `\\\\dsr\\${share}` }), { allowError: true }));
    const missing = await tc('missing');
    // The unreachable server holds up its own tree connect, not the one sent after it.
    const order: string[] = [];
    const ghost = tc('ghost').then((st) => (order.push('ghost'), st));
    const data1 = tc('data1').then((st) => (order.push('data1'), st));
    out({ missing, ghost: await ghost, data1: await data1, order });
    c.close();
  },

  /** Related chains stay on one server; unrelated members for two servers come back in order, in one frame. */
  async compound() {
    const c = await logon();
    const s = c.session!;
    const t1 = await tcon(c, 'data1');
    const t2 = await tcon(c, 'data2');
    const payload = Buffer.from('compound through the DSR\n');
    const chain = await compound(c, s, [
        { command: Smb2Command.CREATE, body: createBody('chain.txt'), tree: t1 },
        { command: Smb2Command.WRITE, body: writeBody(RELATED_FILE_ID, payload), tree: t1, related: true },
        { command: Smb2Command.CLOSE, body: closeBody(RELATED_FILE_ID), tree: t1, related: true },
    ]);
    out({ related: chain.map(status), closeFlags: decodeCloseResponse(chain[2]!.msg).Flags });
    const f1 = await create(c, t1, 'chain.txt', 0, 1 /* FILE_OPEN: what the chain wrote */);
    const f2 = await create(c, t2, 'other.txt');
    await c.request(Smb2Command.WRITE, writeBody(f2.fileId, Buffer.from('second server\n')), { treeId: t2 });
    // The first responses of both members come in one frame; a member the server took async
    // (smbd does under load) has its final response in a frame of its own later (MS-SMB2 3.3.4.1.3).
    let firstFrame: bigint[] | undefined;
    c.onFrame.push((frame) => (firstFrame ??= splitCompound(frame).map((m) => decodeHeader(m).MessageId)));
    const split = await compound(c, s, [
        { command: Smb2Command.READ, body: readBody(f1.fileId, 1024), tree: t1 },
        { command: Smb2Command.READ, body: readBody(f2.fileId, 1024), tree: t2 },
    ]);
    out({
      unrelated: split.map(status),
      firstFrame: firstFrame?.map(String),
      sent: split.map((r) => r.hdr.MessageId.toString()),
      data: split.map((r) => decodeReadResponse(r.msg).Data.toString()),
    });
    c.close();
  },

  /** A CHANGE_NOTIFY goes async at the server; CANCEL by AsyncId ends it with STATUS_CANCELLED. */
  async cancel() {
    const { c, interim, final: notify } = await pendingNotify();
    if (!interim) throw new Error('no interim response');
    const cancel = encodeMessage(header({ Command: Smb2Command.CANCEL, Flags: Smb2Flags.ASYNC_COMMAND, AsyncId: interim.asyncId, SessionId: c.sessionId }), encodeReservedBody());
    c.sendRaw(cancel);
    const final = await notify;
    out({ interim, final: status(final), finalAsync: (final.hdr.Flags & Smb2Flags.ASYNC_COMMAND) !== 0, finalAsyncId: final.hdr.AsyncId, finalCredit: final.hdr.Credit });
    c.close();
  },

  /** A client that hangs up while its CHANGE_NOTIFY pends at the server. */
  async hangup() {
    const { c, interim } = await pendingNotify();
    out({ pending: interim !== undefined });
    c.close();
  },

  /** Two connections open one file with batch oplocks: the break reaches the first with its own FileId, and its ack gets the second in. */
  async oplock() {
    const a = await logon();
    const b = await logon();
    const ta = await tcon(a, 'data2');
    const tb = await tcon(b, 'data2');
    const fa = await create(a, ta, 'oplock.bin', OPLOCK_BATCH);
    let breakSeen: { fileId: FileId; level: number } | undefined;
    a.onUnsolicited = (msg) => {
      const n = decodeOplockBreak(msg);
      breakSeen = { fileId: n.FileId, level: n.OplockLevel };
      void a.request(Smb2Command.OPLOCK_BREAK, encodeOplockBreak({ OplockLevel: n.OplockLevel, Reserved: 0, Reserved2: 0, FileId: n.FileId }), { treeId: ta, allowError: true }).then((r) =>
        out({ ack: status(r), ackLevel: decodeOplockBreak(r.msg).OplockLevel, ackFileIdMatches: decodeOplockBreak(r.msg).FileId.Volatile === fa.fileId.Volatile }),
      );
    };
    const second = await b.request(Smb2Command.CREATE, createBody('oplock.bin', OPLOCK_BATCH, 1 /* FILE_OPEN */), { treeId: tb, allowError: true });
    await new Promise((r) => setTimeout(r, 200));
    out({
      firstOplock: fa.oplock,
      breakFileIdMatches: breakSeen !== undefined && breakSeen.fileId.Persistent === fa.fileId.Persistent && breakSeen.fileId.Volatile === fa.fileId.Volatile,
      breakLevel: breakSeen?.level,
      second: status(second),
    });
    a.close();
    b.close();
  },

  /** Trees on three servers, then TREE_DISCONNECT and LOGOFF release exactly theirs. */
  async teardown() {
    const c = await logon();
    const trees = [await tcon(c, 'data1'), await tcon(c, 'data2'), await tcon(c, 'data3')];
    const f = await create(c, trees[0]!, 'teardown.bin');
    await pause('three-trees');
    await c.request(Smb2Command.TREE_DISCONNECT, encodeReservedBody(), { treeId: trees[2]! });
    await pause('data3-disconnected');
    await c.request(Smb2Command.CLOSE, closeBody(f.fileId), { treeId: trees[0]! });
    await c.logoff(c.session!);
    await pause('logged-off');
    c.close();
  },
};

const run = scenarios[scenario];
if (!run) {
  out({ error: `unknown scenario ${scenario}` });
  process.exit(2);
}
run().then(
  () => process.exit(0),
  (e: unknown) => {
    out({ error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  },
);
