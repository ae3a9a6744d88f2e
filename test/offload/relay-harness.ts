/**
 * What the relay's root tests on loopback sockets share (relay-journal, relay-verdict): a
 * client connection as the DSR holds it (the client's socket, its accepted end, a backend
 * socket and a plain TCP server of the test that answers only when told), the ids the rules
 * map, and SMB2 frames to send through it.
 *
 *   client --TCP--> [accepted]  relay_socks 2*conn    (requests)
 *                   [backend]   relay_socks 2*conn+1  --TCP--> server
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RelayConn } from '../../src/offload/abi.js';
import { probeKernel } from '../../src/offload/native.js';
import { RelayPrograms, type RelayFraming } from '../../src/offload/relay.js';
import { Smb2Command } from '../../src/control/wire/smb2/constants.js';
import type { FileId } from '../../src/control/wire/smb2/file-id.js';
import { encodeHeader, type Smb2Header } from '../../src/control/wire/smb2/header.js';
import { encodeReadRequest } from '../../src/control/wire/smb2/read.js';

/** Why these tests cannot run here, or false. */
export function relaySkip(what: string): string | false {
  const rootSkip = process.getuid?.() === 0 ? false : 'needs root: bpf() loads programs';
  const skip = rootSkip || (probeKernel().sockmapLinks ? false : 'the kernel has no sockmap links for sk_skb programs (Linux >= 6.10)');
  if (skip) console.log(`# ${what} skipped: ${skip}`);
  return skip;
}

export const MIB = 1024 * 1024;
export const CLIENT = { session: 0x1111n, tree: 5 };
export const BACKEND = { session: 0x2222n, tree: 9 };
export const DELTA = 1000n;
export const FILE = { client: { Persistent: 0xd5d5n, Volatile: 1n } as FileId, backend: { Persistent: 0x5e5en, Volatile: 0x77n } as FileId };
export const IDS = { sessions: [[CLIENT.session, BACKEND.session]] as const, trees: [[CLIENT.tree, BACKEND.tree]] as const, files: [[FILE.client, FILE.backend]] as const };
/** The rules the DSR installs (kernel-path.ts), msgIdNext aside. */
export const RULES: RelayConn = {
  msgIdDelta: DELTA,
  cmdMask: (1 << Smb2Command.READ) | (1 << Smb2Command.WRITE),
  rewrite: true,
  files: true,
  journal: true,
  maxRead: MIB,
  maxWrite: MIB,
  maxTransact: 65536,
};
/** Both sockets' buffers: the strparser holds a whole 1 MiB WRITE (the kernel doubles this). */
export const BUFFERS = 4 * MIB;

/** One NetBIOS frame: the header (defaults, then `h`) and `body`. */
export function message(h: Partial<Smb2Header>, body: Buffer): Buffer {
  const hdr = encodeHeader({ CreditCharge: 1, Status: 0, Command: 0, Credit: 1, Flags: 0, NextCommand: 0, MessageId: 0n, Reserved: 0, TreeId: 0, AsyncId: 0n, SessionId: 0n, Signature: Buffer.alloc(16), ...h });
  const nb = Buffer.alloc(4);
  nb.writeUInt32BE(hdr.length + body.length);
  return Buffer.concat([nb, hdr, body]);
}

/** A request of the client's session and tree. */
export const request = (h: Partial<Smb2Header>, body: Buffer) => message({ SessionId: CLIENT.session, TreeId: CLIENT.tree, ...h }, body);
/** A 4 KiB READ body on the client's FileId. */
export const readBody = () => encodeReadRequest({ Padding: 0, Flags: 0, Length: 4096, Offset: 0n, FileId: FILE.client, MinimumCount: 0, Channel: 0, RemainingBytes: 0, ReadChannelInfo: Buffer.alloc(0) });

export async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await sleep(5);
  assert.ok(ok(), `timed out waiting for ${what}`);
}

/** Everything a socket received, its NetBIOS frames, and whether it saw end-of-stream or an error. */
export class Received {
  private chunks: Buffer[] = [];
  ended = false;
  errors: string[] = [];
  constructor(socket: Socket) {
    socket.on('data', (c: Buffer) => this.chunks.push(c));
    socket.on('end', () => (this.ended = true));
    socket.on('error', (e: NodeJS.ErrnoException) => this.errors.push(e.code ?? e.message));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  frames(): Buffer[] {
    const b = this.bytes;
    const out: Buffer[] = [];
    for (let at = 0; at + 4 <= b.length; ) {
      const end = at + 4 + b.readUInt32BE(at);
      if (end > b.length) break;
      out.push(b.subarray(at, end));
      at = end;
    }
    return out;
  }
}

/** One client connection as the DSR holds it, and what each socket received. */
export interface Pair {
  client: Socket;
  accepted: Socket;
  backend: Socket;
  server: Socket;
  atServer: Received;
  atClient: Received;
  /** What reached Node on the relay's sockets (passed by the verdict). */
  atNode: Received;
  atNodeBackend: Received;
}

/** The relay loaded with one framing, and the pairs a test made (closed with it). */
export class RelayBench {
  relay!: RelayPrograms;
  private servers: Server[] = [];
  private readonly pairs: Pair[] = [];

  /** `journalSlots`: the journal's 1 MiB slots (RelayPrograms.open). */
  constructor(
    private readonly framing: RelayFraming,
    private readonly journalSlots?: number,
  ) {}

  open(): void {
    this.relay = RelayPrograms.open({ framing: this.framing, ...(this.journalSlots !== undefined && { journalSlots: this.journalSlots }) });
  }

  /** A new pair; `halfOpen`: the backend socket stays writable after the server's FIN. */
  async pair(halfOpen = false): Promise<Pair> {
    let server: Socket | undefined;
    const srv = createServer((s) => (server = s));
    let accepted: Socket | undefined;
    const dsr = createServer((s) => (accepted = s));
    this.servers.push(srv, dsr);
    await Promise.all([srv, dsr].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    const backend = connect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, noDelay: true, allowHalfOpen: halfOpen });
    const client = connect({ host: '127.0.0.1', port: (dsr.address() as { port: number }).port, noDelay: true });
    await until('both connections', () => server !== undefined && accepted !== undefined);
    const p = {
      client,
      accepted: accepted!,
      backend,
      server: server!,
      atServer: new Received(server!),
      atClient: new Received(client),
      atNode: new Received(accepted!),
      atNodeBackend: new Received(backend),
    };
    this.pairs.push(p);
    return p;
  }

  async close(): Promise<void> {
    for (const p of this.pairs) for (const s of [p.client, p.accepted, p.backend, p.server]) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    this.servers = [];
    this.relay?.close();
  }
}
