/**
 * The DSR's SMB2 front end over a real loopback socket: local session setup (source Fig. 5)
 * for every dialect, the session table, and bad input of every kind answered with the right
 * NTSTATUS or a clean close, never a crash or a leaked session.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { adminCall } from '../../src/control/admin.js';
import { Smb2Client, Smb2StatusError } from '../../src/control/smb2/client.js';
import { ntOwfV1 } from '../../src/control/tables/credentials.js';
import { NtStatus } from '../../src/control/wire/ntstatus.js';
import { encodeCreateRequest } from '../../src/control/wire/smb2/create.js';
import { SMB2_DIALECTS, Smb2Command, Smb2Dialect, Smb2Flags, dialectName } from '../../src/control/wire/smb2/constants.js';
import { encodeHeader, header } from '../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../src/control/wire/smb2/message.js';
import { encodeNegotiateRequest } from '../../src/control/wire/smb2/negotiate.js';
import { encodeReadRequest } from '../../src/control/wire/smb2/read.js';
import { encodeReservedBody } from '../../src/control/wire/smb2/simple.js';
import { decodeTreeConnectResponse, encodeTreeConnectRequest } from '../../src/control/wire/smb2/tree.js';
import { mutate, rng } from '../fuzz/mutate.js';
import { startTestServer, type TestServer, USERS } from '../helpers/server.js';

let ts: TestServer;
before(async () => {
  ts = await startTestServer();
});
after(async () => {
  await ts.stop();
});

async function connect(dialects: readonly number[] = SMB2_DIALECTS, requireSigning = false): Promise<Smb2Client> {
  const c = await Smb2Client.connect({ host: '127.0.0.1', port: ts.port, dialects, requireSigning, timeoutMs: 5000 });
  await c.negotiate();
  return c;
}

async function login(dialects: readonly number[] = SMB2_DIALECTS, requireSigning = false): Promise<Smb2Client> {
  const c = await connect(dialects, requireSigning);
  await c.sessionSetup('alice', ntOwfV1(USERS.alice));
  return c;
}

async function treeConnect(c: Smb2Client, share: string): Promise<number> {
  const r = await c.request(Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: `\\\\127.0.0.1\\${share}` }));
  decodeTreeConnectResponse(r.msg);
  return r.hdr.TreeId;
}

const sizes = () => ({ sessions: ts.server.ctx.sessions.size, trees: ts.server.ctx.trees.size, opens: ts.server.ctx.opens.size });

/** Polls until the tables are empty again (connections are torn down asynchronously). */
async function drained(): Promise<void> {
  for (let i = 0; i < 100 && Object.values(sizes()).some((n) => n > 0); i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(sizes(), { sessions: 0, trees: 0, opens: 0 });
}

/** Log lines of one event since `from`. */
const events = (name: string, from = 0) => ts.logs.slice(from).filter((l) => l.event === name);

describe('session setup answered by the DSR itself', () => {
  for (const d of SMB2_DIALECTS) {
    for (const requireSigning of [false, true]) {
      test(`${dialectName(d)}${requireSigning ? ', signing required' : ''}: a session in the table, signed when asked, gone at logoff`, async () => {
        const c = await login([d], requireSigning);
        assert.equal(c.dialect, d);
        const list = (await adminCall(ts.adminSocket, 'session.list')) as { user: string; dialect: string; state: string; signing: { required: boolean } }[];
        const mine = list.filter((s) => s.user === 'alice');
        assert.equal(mine.length, 1);
        assert.equal(mine[0]!.dialect, dialectName(d));
        assert.equal(mine[0]!.state, 'valid');
        assert.equal(mine[0]!.signing.required, requireSigning);
        // IPC$ works inside the session, signed when signing is on (the client checks signatures).
        const tid = await treeConnect(c, 'IPC$');
        await c.request(Smb2Command.TREE_DISCONNECT, encodeReservedBody(), { treeId: tid });
        await c.request(Smb2Command.LOGOFF, encodeReservedBody());
        assert.equal(ts.server.ctx.sessions.size, 0);
        c.close();
      });
    }
  }

  test('a wrong password and an unknown user both get STATUS_LOGON_FAILURE and leave no session', async () => {
    for (const [user, hash] of [
      ['alice', ntOwfV1('wrong')],
      ['mallory', ntOwfV1('whatever')],
    ] as const) {
      const c = await connect();
      const from = ts.logs.length;
      await assert.rejects(c.sessionSetup(user, hash), (e: unknown) => e instanceof Smb2StatusError && e.status === NtStatus.STATUS_LOGON_FAILURE);
      assert.equal(ts.server.ctx.sessions.size, 0);
      assert.equal(events('session.auth_failed', from).length, 1, 'one log line');
      assert.ok(!JSON.stringify(ts.logs.slice(from)).includes(USERS.alice), 'no password in the logs');
      // The connection stays usable: a correct logon on it works.
      await c.sessionSetup('alice', ntOwfV1(USERS.alice));
      c.close();
    }
    await drained();
  });

  test('the server-wide signing policy makes every session sign', async () => {
    const strict = await startTestServer({ smb2: { signing: 'required' } });
    try {
      const c = await Smb2Client.connect({ host: '127.0.0.1', port: strict.port, dialects: [Smb2Dialect.SMB302] });
      await c.negotiate();
      await c.sessionSetup('bob', ntOwfV1(USERS.bob));
      const [s] = strict.server.ctx.sessions.list();
      assert.equal(s?.signing.required, true);
      // An unsigned request on a signing session is refused (MS-SMB2 3.3.5.2.4).
      const id = c.takeMessageId();
      c.sendRaw(encodeMessage(header({ Command: Smb2Command.ECHO, MessageId: id, Credit: 1 }), encodeReservedBody()));
      assert.equal((await c.expect(id, Smb2Command.ECHO)).hdr.Status, NtStatus.STATUS_SUCCESS, 'ECHO needs no session');
      const id2 = c.takeMessageId();
      c.sendRaw(encodeMessage(header({ Command: Smb2Command.TREE_CONNECT, MessageId: id2, Credit: 1, SessionId: c.sessionId }), encodeTreeConnectRequest({ Flags: 0, Path: '\\\\x\\IPC$' })));
      assert.equal((await c.expect(id2, Smb2Command.TREE_CONNECT)).hdr.Status, NtStatus.STATUS_ACCESS_DENIED);
      c.close();
    } finally {
      await strict.stop();
    }
  });

  test('tree connect: IPC$ is local, an unknown share is STATUS_BAD_NETWORK_NAME', async () => {
    const c = await login();
    assert.ok((await treeConnect(c, 'ipc$')) > 0, 'case-insensitive');
    await assert.rejects(treeConnect(c, 'nosuchshare'), (e: unknown) => e instanceof Smb2StatusError && e.status === NtStatus.STATUS_BAD_NETWORK_NAME);
    const trees = (await adminCall(ts.adminSocket, 'tree.list')) as { share: string; kind: string }[];
    assert.deepEqual(trees.map((t) => [t.share, t.kind]), [['IPC$', 'ipc']]);
    // The fast path's rules mirror the tables: one session, its IPC$ tree kept in user space.
    const rules = (await adminCall(ts.adminSocket, 'offload.show')) as { sessions: { pass?: string }[]; trees: { share: string; pass: string }[] };
    assert.equal(rules.sessions.length, 1);
    assert.deepEqual(rules.trees.map((t) => [t.share, t.pass]), [['IPC$', 'local-tree']]);
    c.close();
    await drained();
    assert.deepEqual(ts.server.ctx.offload.snapshot().sessions, []);
    assert.deepEqual(ts.server.ctx.offload.snapshot().trees, []);
  });
});

describe('anonymous logons follow the auth.guest setting (real smbclient on loopback)', () => {
  // The server runs in this process, so the client must not block the event loop.
  const list = (port: number, ...auth: string[]) =>
    new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile('smbclient', ['-g', '-L', '//127.0.0.1', '-p', String(port), '-m', 'SMB3', ...auth], { timeout: 20000 }, (err, stdout, stderr) => {
        resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });

  test('refused by default, accepted as a null session when guests are allowed', async () => {
    const refused = await list(ts.port, '-N');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stdout + refused.stderr, /NT_STATUS_LOGON_FAILURE/);
    const named = await list(ts.port, '-U', `alice%${USERS.alice}`);
    assert.equal(named.status, 0, named.stderr);
    assert.deepEqual(named.stdout.split('\n').filter((l) => /^(Disk|IPC)\|/.test(l)).map((l) => l.split('|')[1]).sort(), ['IPC$', 'data1', 'san']);
    const open = await startTestServer({ auth: { guest: true } });
    try {
      const anon = await list(open.port, '-N');
      assert.equal(anon.status, 0, anon.stderr);
      assert.match(anon.stdout, /^Disk\|san\|/m);
      assert.ok(open.logs.some((l) => l.event === 'session.established' && l.kind === 'anonymous'));
    } finally {
      await open.stop();
    }
  });
});

describe('smb2.encryption: required (real smbclient on loopback)', () => {
  test('smbclient encrypts as told and lists shares; a client that cannot encrypt gets STATUS_ACCESS_DENIED', async () => {
    const strict = await startTestServer({ smb2: { encryption: 'required' } });
    try {
      const listed = await new Promise<{ err: Error | null; stdout: string }>((resolve) =>
        execFile('smbclient', ['-g', '-L', '//127.0.0.1', '-p', String(strict.port), '-m', 'SMB3', '-U', `alice%${USERS.alice}`], { timeout: 20000 }, (err, stdout) => resolve({ err, stdout })),
      );
      assert.equal(listed.err, null);
      assert.match(listed.stdout, /^Disk\|data1\|/m);
      const session = strict.logs.find((l) => l.event === 'session.established');
      assert.equal(session?.encryptData, true, 'the session encrypts');
      // Our own client offers no cipher, so its session could never encrypt (MS-SMB2 3.3.5.5.3).
      const c = await Smb2Client.connect({ host: '127.0.0.1', port: strict.port, dialects: [Smb2Dialect.SMB302], timeoutMs: 5000 });
      try {
        await c.negotiate();
        await assert.rejects(c.sessionSetup('alice', ntOwfV1(USERS.alice)), (e: unknown) => e instanceof Smb2StatusError && e.status === NtStatus.STATUS_ACCESS_DENIED);
        assert.equal(strict.server.ctx.sessions.size, 0, 'the refused session is gone');
      } finally {
        c.close();
      }
    } finally {
      await strict.stop();
    }
  });
});

describe('bad input: an NTSTATUS or a clean close, one log line, nothing leaked', () => {
  /** Sends raw bytes on a negotiated connection and waits for the server to close it. */
  async function expectClose(bytes: Buffer, negotiate = true, event = 'conn.closed'): Promise<void> {
    const c = negotiate ? await connect() : await Smb2Client.connect({ host: '127.0.0.1', port: ts.port, timeoutMs: 5000 });
    const from = ts.logs.length;
    c.writeBytes(bytes);
    await c.closed;
    assert.ok(c.isClosed);
    await drained();
    assert.equal(events(event, from).length, 1, `one ${event} line`);
  }

  const frame = (payload: Buffer) => Buffer.concat([Buffer.from([0, payload.length >> 16, (payload.length >> 8) & 0xff, payload.length & 0xff]), payload]);

  test('a frame longer than the maximum is refused from its header alone', async () => {
    await expectClose(Buffer.from([0x00, 0xff, 0xff, 0xff]));
  });

  test('a NetBIOS session request (port 139 framing) closes the connection', async () => {
    await expectClose(Buffer.from([0x81, 0, 0, 4, 1, 2, 3, 4]), false);
  });

  test('bytes that are not SMB close the connection', async () => {
    await expectClose(frame(Buffer.from('GET / HTTP/1.1\r\n\r\n' + ' '.repeat(64))), false);
  });

  test('any request before NEGOTIATE closes the connection', async () => {
    await expectClose(frame(encodeMessage(header({ Command: Smb2Command.SESSION_SETUP }), Buffer.alloc(30))), false);
  });

  test('a MessageId outside the credit window closes the connection', async () => {
    await expectClose(frame(encodeMessage(header({ Command: Smb2Command.ECHO, MessageId: 1000n }), encodeReservedBody())));
  });

  test('an unknown command is refused with STATUS_INVALID_PARAMETER and the connection stays', async () => {
    const c = await connect();
    const id = c.takeMessageId();
    c.sendRaw(encodeMessage(header({ Command: 0x13, MessageId: id, Credit: 1 }), encodeReservedBody()));
    assert.equal((await c.expect(id, 0x13)).hdr.Status, NtStatus.STATUS_INVALID_PARAMETER);
    const echo = c.takeMessageId();
    c.sendRaw(encodeMessage(header({ Command: Smb2Command.ECHO, MessageId: echo, Credit: 1 }), encodeReservedBody()));
    assert.equal((await c.expect(echo, Smb2Command.ECHO)).hdr.Status, NtStatus.STATUS_SUCCESS);
  });

  test('a compound whose NextCommand points outside the frame closes the connection', async () => {
    const c = await connect();
    const m = encodeMessage(header({ Command: Smb2Command.ECHO, MessageId: c.takeMessageId(), NextCommand: 4096 }), encodeReservedBody());
    c.sendRaw(m);
    await c.closed;
  });

  test('a NEGOTIATE with a wrong StructureSize gets STATUS_INVALID_PARAMETER and the connection lives on', async () => {
    const c = await Smb2Client.connect({ host: '127.0.0.1', port: ts.port, timeoutMs: 5000 });
    const body = encodeNegotiateRequest({ SecurityMode: 1, Reserved: 0, Capabilities: 0, ClientGuid: Buffer.alloc(16), Dialects: [0x0210] });
    body.writeUInt16LE(35, 0);
    const id = c.takeMessageId();
    c.sendRaw(encodeMessage(header({ Command: Smb2Command.NEGOTIATE, MessageId: id, Credit: 1 }), body));
    const r = await c.expect(id, Smb2Command.NEGOTIATE);
    assert.equal(r.hdr.Status, NtStatus.STATUS_INVALID_PARAMETER);
    assert.equal(r.hdr.Flags & Smb2Flags.SERVER_TO_REDIR, Smb2Flags.SERVER_TO_REDIR);
    // Nothing was negotiated, so a real NEGOTIATE still works.
    await c.negotiate();
    assert.ok(c.dialect > 0);
    c.close();
  });

  test('a second NEGOTIATE closes the connection', async () => {
    const c = await connect();
    c.sendRaw(encodeMessage(header({ Command: Smb2Command.NEGOTIATE, MessageId: c.takeMessageId() }), encodeNegotiateRequest({ SecurityMode: 1, Reserved: 0, Capabilities: 0, ClientGuid: Buffer.alloc(16), Dialects: [0x0210] })));
    await c.closed;
  });

  test('no dialect in common: STATUS_NOT_SUPPORTED', async () => {
    const c = await Smb2Client.connect({ host: '127.0.0.1', port: ts.port, timeoutMs: 5000 });
    const id = c.takeMessageId();
    c.sendRaw(encodeMessage(header({ Command: Smb2Command.NEGOTIATE, MessageId: id }), encodeNegotiateRequest({ SecurityMode: 1, Reserved: 0, Capabilities: 0, ClientGuid: Buffer.alloc(16), Dialects: [0x0222] })));
    assert.equal((await c.expect(id, Smb2Command.NEGOTIATE)).hdr.Status, NtStatus.STATUS_NOT_SUPPORTED);
    c.close();
  });

  test('a garbage security blob fails the logon and leaves no session', async () => {
    const c = await connect();
    const body = Buffer.alloc(24 + 16, 0x5a);
    body.writeUInt16LE(25, 0);
    body.writeUInt16LE(64 + 24, 12);
    body.writeUInt16LE(16, 14);
    const id = c.takeMessageId();
    c.sendRaw(encodeMessage(header({ Command: Smb2Command.SESSION_SETUP, MessageId: id }), body));
    const r = await c.expect(id, Smb2Command.SESSION_SETUP);
    assert.ok(r.hdr.Status === NtStatus.STATUS_INVALID_PARAMETER || r.hdr.Status === NtStatus.STATUS_LOGON_FAILURE);
    assert.equal(ts.server.ctx.sessions.size, 0);
    c.close();
  });

  test('unknown SessionId, TreeId and FileId get the statuses Windows gives', async () => {
    const c = await login();
    const send = async (command: number, body: Buffer, fields: { SessionId?: bigint; TreeId?: number; CreditCharge?: number }) => {
      const id = c.takeMessageId(fields.CreditCharge ?? 1);
      c.sendRaw(encodeMessage(header({ Command: command, MessageId: id, Credit: 8, CreditCharge: 1, SessionId: c.sessionId, ...fields }), body));
      return (await c.expect(id, command)).hdr.Status;
    };
    const tconBody = encodeTreeConnectRequest({ Flags: 0, Path: '\\\\x\\IPC$' });
    assert.equal(await send(Smb2Command.TREE_CONNECT, tconBody, { SessionId: 0x1234n }), NtStatus.STATUS_USER_SESSION_DELETED);
    const read = (fileId: { Persistent: bigint; Volatile: bigint }, length = 1024) =>
      encodeReadRequest({ Padding: 0, Flags: 0, Length: length, Offset: 0n, FileId: fileId, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) });
    assert.equal(await send(Smb2Command.READ, read({ Persistent: 1n, Volatile: 1n }), { TreeId: 0xdead }), NtStatus.STATUS_NETWORK_NAME_DELETED);
    const tid = await treeConnect(c, 'IPC$');
    assert.equal(await send(Smb2Command.READ, read({ Persistent: 1n, Volatile: 1n }), { TreeId: tid }), NtStatus.STATUS_FILE_CLOSED);
    // A FileId that belongs to another session is closed for this one.
    const other = await login();
    const otherTid = await treeConnect(other, 'IPC$');
    const created = await other.request(Smb2Command.CREATE, encodeCreateRequest({
      SecurityFlags: 0, RequestedOplockLevel: 0, ImpersonationLevel: 2, SmbCreateFlags: 0n, Reserved: 0n, DesiredAccess: 0x0012019f,
      FileAttributes: 0, ShareAccess: 3, CreateDisposition: 1, CreateOptions: 0, Name: 'srvsvc', CreateContexts: [],
    }), { treeId: otherTid });
    const fileId = { Persistent: created.msg.readBigUInt64LE(64 + 64), Volatile: created.msg.readBigUInt64LE(64 + 72) };
    assert.equal(await send(Smb2Command.READ, read(fileId), { TreeId: tid }), NtStatus.STATUS_FILE_CLOSED);
    // Oversize READ, and a CreditCharge that lies about the payload (3.3.5.2.5).
    assert.equal(await send(Smb2Command.READ, read(fileId, 16 * 1024 * 1024), { TreeId: tid, CreditCharge: 64 }), NtStatus.STATUS_INVALID_PARAMETER);
    assert.equal(await send(Smb2Command.READ, read(fileId, 1024 * 1024), { TreeId: tid, CreditCharge: 1 }), NtStatus.STATUS_INVALID_PARAMETER);
    assert.equal(ts.server.ctx.opens.size, 1, 'the other session still has its pipe open');
    c.close();
    other.close();
    await drained();
  });

  test('a truncated frame followed by a disconnect leaks nothing', async () => {
    const c = await login();
    const m = encodeMessage(header({ Command: Smb2Command.ECHO, MessageId: c.takeMessageId() }), encodeReservedBody());
    c.writeBytes(Buffer.concat([Buffer.from([0, 0, 1, 0]), m]));
    c.close();
    await drained();
  });

  test('a connection that never authenticates is closed after the auth timeout', { timeout: 15000 }, async () => {
    const quick = await startTestServer({ limits: { authTimeoutSeconds: 0.3, maxConnections: 10, maxSessionsPerConnection: 8 } });
    try {
      const c = await Smb2Client.connect({ host: '127.0.0.1', port: quick.port });
      await c.negotiate();
      await c.closed;
      assert.ok(quick.logs.some((l) => l.event === 'conn.closed' && /no authenticated session/.test(String(l.reason))));
    } finally {
      await quick.stop();
    }
  });

  test('300 mutated requests over the socket: each answered or the connection closed, the server lives on', { timeout: 60000 }, async () => {
    const rand = rng(7);
    const seedBodies: [number, Buffer][] = [
      [Smb2Command.TREE_CONNECT, encodeTreeConnectRequest({ Flags: 0, Path: '\\\\127.0.0.1\\IPC$' })],
      [Smb2Command.CREATE, encodeCreateRequest({ SecurityFlags: 0, RequestedOplockLevel: 0, ImpersonationLevel: 2, SmbCreateFlags: 0n, Reserved: 0n, DesiredAccess: 0x0012019f, FileAttributes: 0, ShareAccess: 3, CreateDisposition: 1, CreateOptions: 0, Name: 'srvsvc', CreateContexts: [] })],
      [Smb2Command.READ, encodeReadRequest({ Padding: 0, Flags: 0, Length: 1024, Offset: 0n, FileId: { Persistent: 1n, Volatile: 1n }, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) })],
      [Smb2Command.ECHO, encodeReservedBody()],
      [Smb2Command.LOGOFF, encodeReservedBody()],
    ];
    let c = await login();
    let tid = await treeConnect(c, 'IPC$');
    let answered = 0;
    let closed = 0;
    for (let i = 0; i < 300; i++) {
      const [command, body] = seedBodies[i % seedBodies.length]!;
      let mutatedBody = body;
      for (let k = 0; k < 1 + (i % 3); k++) mutatedBody = mutate(mutatedBody, rand);
      const id = c.takeMessageId();
      c.sendRaw(encodeMessage(header({ Command: command, MessageId: id, Credit: 4, CreditCharge: 1, SessionId: c.sessionId, TreeId: tid }), mutatedBody));
      try {
        await c.expect(id, command);
        answered++;
        if (command === Smb2Command.LOGOFF) throw new Error('logged off');
      } catch {
        if (!c.isClosed) c.close();
        closed++;
        c = await login();
        tid = await treeConnect(c, 'IPC$');
      }
    }
    assert.ok(answered > 100, `${answered} answered, ${closed} closed`);
    c.close();
    await drained();
    const fresh = await login();
    fresh.close();
    await drained();
  });

  test('an SMB1 negotiate offering SMB 2.??? is answered with 0x02FF', async () => {
    const c = await Smb2Client.connect({ host: '127.0.0.1', port: ts.port, timeoutMs: 5000 });
    const smb1 = Buffer.alloc(32 + 3);
    smb1.writeUInt32LE(0x424d53ff, 0);
    smb1[4] = 0x72;
    const dialects = Buffer.from('\x02NT LM 0.12\0\x02SMB 2.002\0\x02SMB 2.???\0', 'latin1');
    smb1.writeUInt16LE(dialects.length, 33);
    const got = new Promise<Buffer>((resolve) => c.onFrame.push(resolve));
    c.sendRaw(Buffer.concat([smb1, dialects]));
    const res = await got;
    assert.equal(res.readUInt16LE(64 + 4), 0x02ff, 'DialectRevision');
    assert.equal(encodeHeader(header({ Command: 0 })).length, 64);
    c.close();
  });
});
