/**
 * The SMB2 relay (bpf/smb2_relay.bpf.c, strparser framing, through src/offload/relay.ts)
 * holding the DSR's own Node sockets: an accepted client socket and a backend socket, both
 * reading through the shared-read `onread` of src/control/smb2/transport.ts, as the DSR's are.
 * What a kernel offload of a DSR connection rests on: offloaded messages cross in the kernel
 * with their ids rewritten and never reach Node, FileIds included; a message the rules do not cover reaches
 * Node's onread, and the direction stays with Node after it; a socket taken out of the
 * sockhash is Node's again once every redirected byte reached its TCP (the barrier user space
 * waits on before it writes). Loopback only; the peer answering requests is a plain TCP server
 * of this test (the relay with real smbd is bench/kernel-relay's). Needs root (bpf()).
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { probeKernel } from '../../src/offload/native.js';
import { drained, RelayPrograms, unread, written, type RelayFraming } from '../../src/offload/relay.js';
import { pauseReading, resumeReading } from '../../src/control/smb2/transport.js';
import { acceptSharedRead, sharedRead } from '../../src/control/smb2/transport.js';
import { SMB2_HEADER_SIZE, Smb2Command, Smb2Flags } from '../../src/control/wire/smb2/constants.js';
import { decodeHeader, encodeHeader, type Smb2Header } from '../../src/control/wire/smb2/header.js';
import { FrameDecoder, NETBIOS_MAX_LENGTH } from '../../src/control/wire/netbios.js';
import { type FileId, getFileId, REQUEST_FILE_ID_AT } from '../../src/control/wire/smb2/file-id.js';
import { encodeReadRequest } from '../../src/control/wire/smb2/read.js';
import { encodeWriteRequest } from '../../src/control/wire/smb2/write.js';

const rootSkip = process.getuid?.() === 0 ? false : 'needs root: bpf() loads programs';
const skip = rootSkip || (probeKernel().sockmapLinks ? false : 'the kernel has no sockmap links for sk_skb programs (Linux >= 6.10)');
if (skip) console.log(`# relay with Node sockets skipped: ${skip}`);

const CONN = 7;
const CLIENT = { session: 0x1111n, tree: 5 };
const BACKEND = { session: 0x2222n, tree: 9 };
const DELTA = 1000n;
/** The DSR's FileId for the open, and the server's. */
const FILE = { client: { Persistent: 0xd5d5n, Volatile: 1n } as FileId, backend: { Persistent: 0x5e5en, Volatile: 0x77n } as FileId };
/** Every message's body: a READ or WRITE request's with no Data (the verdict checks those). */
const BODY = 49;
const MSG = 4 + SMB2_HEADER_SIZE + BODY;
/** The connection's negotiated sizes, for the verdict's checks. */
const LIMITS = { maxRead: 65536, maxWrite: 65536, maxTransact: 65536 };

/** A valid READ (4 KiB) or WRITE (no Data) body naming `fileId`. */
function naming(command: number, fileId: FileId): Buffer {
  const none = Buffer.alloc(0);
  return command === Smb2Command.READ
    ? encodeReadRequest({ Padding: 0, Flags: 0, Length: 4096, Offset: 0n, FileId: fileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: none })
    : encodeWriteRequest({ Offset: 0n, FileId: fileId, Channel: 0, RemainingBytes: 0, WriteChannelInfo: none, Flags: 0, Data: none });
}

function message(h: Partial<Smb2Header>, body: Buffer = Buffer.alloc(BODY)): Buffer {
  const hdr = encodeHeader({ CreditCharge: 1, Status: 0, Command: 0, Credit: 1, Flags: 0, NextCommand: 0, MessageId: 0n, Reserved: 0, TreeId: 0, AsyncId: 0n, SessionId: 0n, Signature: Buffer.alloc(16), ...h });
  const nb = Buffer.alloc(4);
  nb.writeUInt32BE(hdr.length + body.length);
  return Buffer.concat([nb, hdr, body]);
}

const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 400 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(ok(), `timed out waiting for ${what}`);
};

const framesInto = (into: Smb2Header[], each?: (frame: Buffer, h: Smb2Header) => void) => {
  const d = new FrameDecoder(NETBIOS_MAX_LENGTH);
  return (chunk: Buffer) => {
    for (const f of d.push(chunk)) {
      const h = decodeHeader(f);
      into.push(h);
      each?.(f, h);
    }
  };
};

/** The relay with one framing, a client, the DSR's two sockets reading as the DSR's do, and a server; what each party received. */
interface Fixture {
  relay: RelayPrograms;
  client: Socket;
  accepted: Socket;
  backend: Socket;
  /** Messages as each party received them, whole (headers decoded). */
  atServer: Smb2Header[];
  /** The FileId of each READ/WRITE the server received. */
  serverFileIds: FileId[];
  atClient: Smb2Header[];
  atNode: { client: Smb2Header[]; backend: Smb2Header[] };
  close(): Promise<void>;
}

async function fixture(framing: RelayFraming): Promise<Fixture> {
  const f = { atServer: [], serverFileIds: [], atClient: [], atNode: { client: [], backend: [] } } as unknown as Fixture;
  const relay = RelayPrograms.open({ framing });
  // The storage server's stand-in: answers every request with a response of the same ids.
  const server = createServer((s) => {
    const seen = framesInto(f.atServer, (frame, h) => {
      if (h.Command === Smb2Command.READ || h.Command === Smb2Command.WRITE) f.serverFileIds.push(getFileId(frame, SMB2_HEADER_SIZE + REQUEST_FILE_ID_AT[h.Command]!));
    });
    s.on('data', (chunk: Buffer) => {
      const before = f.atServer.length;
      seen(chunk);
      for (const h of f.atServer.slice(before)) s.write(message({ ...h, Flags: Smb2Flags.SERVER_TO_REDIR, Credit: 1 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dsr: Server = createServer();
  let got: Socket | undefined;
  acceptSharedRead(dsr, (s, attach) => {
    got = s;
    attach(framesInto(f.atNode.client));
  });
  await new Promise<void>((r) => dsr.listen(0, '127.0.0.1', r));
  const read = sharedRead();
  const backend = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, onread: read.onread });
  read.attach(framesInto(f.atNode.backend));
  await new Promise((r) => backend.once('connect', r));
  const client = connect({ host: '127.0.0.1', port: (dsr.address() as { port: number }).port });
  client.on('data', framesInto(f.atClient));
  await new Promise((r) => client.once('connect', r));
  await until('the DSR to accept', () => got !== undefined);
  return Object.assign(f, {
    relay,
    client,
    accepted: got!,
    backend,
    close: async () => {
      for (const s of [client, got, backend]) s?.destroy();
      await new Promise((r) => server.close(r));
      await new Promise((r) => dsr.close(r));
      relay.close();
    },
  });
}

describe("the SMB2 relay holding the DSR's Node sockets", { skip }, () => {
  let f: Fixture;
  let relay: RelayPrograms;
  let client: Socket;
  let accepted: Socket;
  let backend: Socket;
  /** What the client socket had taken when it was offloaded. */
  let clientBase: bigint;
  let atServer: Smb2Header[];
  let serverFileIds: FileId[];
  let atClient: Smb2Header[];
  let atNode: Fixture['atNode'];

  before(async () => {
    f = await fixture('strparser');
    ({ relay, client, accepted, backend, atServer, serverFileIds, atClient, atNode } = f);
  });

  after(() => f?.close());

  test('offloaded READs and WRITEs cross in the kernel with SessionId, TreeId, MessageId and FileId rewritten; Node sees none; the counts a take-back needs are kept', async () => {
    // Node answered something on the client socket before (the DSR's own replies up to now).
    accepted.write(message({ Command: Smb2Command.TREE_CONNECT, MessageId: 9n, Flags: Smb2Flags.SERVER_TO_REDIR }));
    await until('the first reply at the client', () => atClient.length === 1);
    clientBase = written(accepted);
    assert.equal(clientBase, BigInt(MSG), 'written() counts what Node wrote');
    relay.offload(CONN, accepted, backend, { msgIdDelta: DELTA, cmdMask: (1 << Smb2Command.READ) | (1 << Smb2Command.WRITE), rewrite: true, files: true, ...LIMITS });
    relay.setSession(CONN, CLIENT.session, BACKEND.session);
    relay.setTree(CONN, CLIENT.tree, BACKEND.tree);
    relay.setFile(CONN, FILE.client, FILE.backend);

    const sent = [Smb2Command.READ, Smb2Command.WRITE, Smb2Command.READ].map((Command, i) => ({ Command, MessageId: BigInt(10 + i) }));
    client.write(Buffer.concat(sent.map((m) => message({ ...m, SessionId: CLIENT.session, TreeId: CLIENT.tree }, naming(m.Command, FILE.client)))));
    await until('three replies at the client', () => atClient.length === 4);
    assert.deepEqual(
      atServer.map((h) => [h.Command, h.MessageId, h.SessionId, h.TreeId]),
      sent.map((m) => [m.Command, m.MessageId + DELTA, BACKEND.session, BACKEND.tree]),
    );
    assert.deepEqual(
      atClient.slice(1).map((h) => [h.Command, h.MessageId, h.SessionId, h.TreeId]),
      sent.map((m) => [m.Command, m.MessageId, CLIENT.session, CLIENT.tree]),
    );
    assert.deepEqual(serverFileIds, [FILE.backend, FILE.backend, FILE.backend], "the server's FileId");
    assert.deepEqual([atNode.client.length, atNode.backend.length], [0, 0], 'nothing reached Node');
    const st = relay.state(CONN);
    // What taking the connection back resynchronises the credit windows with.
    assert.deepEqual([st.request.msgs, st.request.bytes, st.request.charge, st.request.msgIdEnd, st.request.sticky], [3, 3 * MSG, 3, 13n, undefined]);
    assert.deepEqual([st.reply.msgs, st.reply.bytes, st.reply.credits, st.reply.interims, st.reply.sticky], [3, 3 * MSG, 3, 0, undefined]);
    assert.ok(relay.counters()['fwd-msg'] >= 6);
  });

  test("a command the rules do not offload reaches Node's onread untouched, and the direction stays with Node after it", async () => {
    client.write(message({ Command: Smb2Command.CREATE, MessageId: 13n, SessionId: CLIENT.session, TreeId: CLIENT.tree }));
    client.write(message({ Command: Smb2Command.READ, MessageId: 14n, SessionId: CLIENT.session, TreeId: CLIENT.tree }, naming(Smb2Command.READ, FILE.client)));
    await until('two requests in Node', () => atNode.client.length === 2);
    assert.deepEqual(
      atNode.client.map((h) => [h.Command, h.MessageId, h.SessionId, h.TreeId]),
      [
        [Smb2Command.CREATE, 13n, CLIENT.session, CLIENT.tree],
        [Smb2Command.READ, 14n, CLIENT.session, CLIENT.tree],
      ],
    );
    assert.equal(atServer.length, 3, 'the server saw neither');
    assert.equal(relay.state(CONN).request.sticky, 'command');
    assert.ok((relay.passes().command ?? 0) >= 1);
  });

  test("taken back, the sockets are Node's again once every redirected byte is in TCP: their bytes reach onread, Node's writes follow the kernel's", async () => {
    const done = relay.release(CONN)!;
    assert.equal(relay.size, 0);
    assert.deepEqual([done.request.msgs, done.reply.msgs, done.reply.bytes], [3, 3, 3 * MSG]);
    assert.ok(await drained(accepted, clientBase, done.reply.bytes), 'the redirected replies are in the client socket');
    accepted.write(message({ Command: Smb2Command.CREATE, MessageId: 13n, Flags: Smb2Flags.SERVER_TO_REDIR, SessionId: CLIENT.session, TreeId: CLIENT.tree }));
    await until("Node's reply at the client", () => atClient.length === 5);
    assert.deepEqual([atClient[4]!.Command, atClient[4]!.MessageId], [Smb2Command.CREATE, 13n]);
    assert.equal(written(accepted), clientBase + BigInt(4 * MSG));
    client.write(message({ Command: Smb2Command.READ, MessageId: 15n, SessionId: CLIENT.session, TreeId: CLIENT.tree }));
    backend.write(message({ Command: Smb2Command.READ, MessageId: 99n }));
    await until('both in Node', () => atNode.client.length === 3 && atNode.backend.length === 1);
    assert.deepEqual([atNode.client[2]!.MessageId, atNode.backend[0]!.MessageId], [15n, 99n]);
    assert.equal(atServer.at(-1)!.MessageId, 99n, "Node's own write went to the server as it was");
  });
});

for (const framing of ['strparser', 'cut-through'] as const) {
  describe(`the relay (${framing}) re-armed while bytes it passed before are still unread by Node`, { skip }, () => {
    let f: Fixture;
    before(async () => (f = await fixture(framing)));
    after(() => f?.close());
    const rules = { msgIdDelta: DELTA, cmdMask: (1 << Smb2Command.READ) | (1 << Smb2Command.WRITE), rewrite: true, files: true, ...LIMITS };
    const ids = { sessions: [[CLIENT.session, BACKEND.session]], trees: [[CLIENT.tree, BACKEND.tree]], files: [[FILE.client, FILE.backend]] } as const;
    const read = (MessageId: bigint) => message({ Command: Smb2Command.READ, MessageId, SessionId: CLIENT.session, TreeId: CLIENT.tree }, naming(Smb2Command.READ, FILE.client));
    const messageIds = (hs: Smb2Header[]) => hs.map((h) => h.MessageId);

    test('with every passed byte read, the request after arming is the kernel’s, and again after a take-back (where Node stands counts what the kernel forwarded)', async () => {
      const { relay, client, accepted } = f;
      relay.attach(CONN, accepted, f.backend);
      client.write(read(10n));
      await until('the verdict to pass it to Node', () => f.atNode.client.length === 1);
      for (const id of [11n, 12n]) {
        relay.arm(CONN, rules, ids);
        client.write(read(id));
        await until('the response at the client', () => f.atClient.length === Number(id - 10n));
        const st = relay.disarm(CONN);
        assert.deepEqual([st.request.msgs, st.request.sticky, st.reply.msgs, st.reply.sticky], [1, undefined, 1, undefined]);
      }
      assert.deepEqual(messageIds(f.atServer), [11n + DELTA, 12n + DELTA]);
      assert.deepEqual(messageIds(f.atClient), [11n, 12n]);
      assert.deepEqual(f.serverFileIds, [FILE.backend, FILE.backend], "the server's FileId, the second time from the maps the first arm wrote");
      assert.equal(f.atNode.client.length, 1, 'Node saw neither');
      assert.equal(relay.passes().unread, undefined);
      // Ids left out of an arm go: the FileId closed since, a READ naming it is Node's.
      relay.arm(CONN, rules, { ...ids, files: [] });
      client.write(read(13n));
      await until('it in Node', () => f.atNode.client.length === 2);
      assert.equal(relay.disarm(CONN).request.sticky, 'file');
    });

    test("they keep their place: the first skb after arming passes ('unread'), and so does all after it, in order; the server sees none", async () => {
      const { relay, client, accepted } = f;
      // Node does not read for a while (its event loop is busy elsewhere): the bytes stay in the kernel.
      pauseReading(accepted, 'test');
      const passed = () => Object.values(relay.passes()).reduce((n, k) => n + k, 0);
      const before = passed();
      client.write(read(14n));
      await until('the verdict to pass it', () => passed() > before);
      // What the DSR asks before a lend (kernel-path.ts), where the kernel can say.
      const inq = unread(accepted);
      if (inq === undefined) console.log('# SIOCINQ on a sockhash socket: this kernel has no tcp_bpf_ioctl, not asserted');
      else assert.equal(inq, read(14n).length, 'SIOCINQ counts the passed READ Node has not read');
      relay.arm(CONN, rules, ids);
      client.write(read(15n));
      await until('the verdict to pass the next', () => relay.state(CONN).request.sticky !== undefined);
      resumeReading(accepted, 'test');
      await until('both in Node', () => f.atNode.client.length === 4);
      assert.deepEqual(messageIds(f.atNode.client), [10n, 13n, 14n, 15n]);
      if (inq !== undefined) assert.equal(unread(accepted), 0, 'and nothing once Node read it');
      assert.equal(f.atServer.length, 2, 'the kernel forwarded neither');
      assert.equal(relay.state(CONN).request.sticky, 'unread');
      assert.equal(relay.passes().unread, 1);
    });

    test('retired (relay off) with a connection attached, the relay keeps its sockets, passing to Node, and closes once the last is released', async () => {
      const { relay, client } = f;
      relay.disarm(CONN);
      relay.retire();
      assert.equal(relay.retired, true);
      assert.equal(relay.size, 1);
      // With the strparser the socket may be stalled by now: once a whole message passed while
      // Node did not read (the test above), later ones can stop reaching the verdict (README).
      if (framing === 'cut-through') {
        client.write(read(16n));
        await until('it in Node', () => f.atNode.client.length === 5);
        assert.equal(f.atNode.client.at(-1)!.MessageId, 16n);
      }
      assert.equal(relay.state(CONN).request.conn, CONN, 'its state is still there');
      relay.release(CONN);
      assert.throws(() => relay.passes(), /the relay is closed/);
    });
  });
}
