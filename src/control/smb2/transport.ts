/**
 * Direct TCP transport (MS-SMB2 2.1) for both sides of the relay: frames out without copying a
 * large payload, and reads into one shared buffer.
 *
 * Reads: a plain 'data' stream allocates a fresh buffer per socket read, and at relay rates
 * their garbage collection cost more than a third of the DSR's CPU on a bulk transfer
 * (measured: ~0.9 s per GiB). Every socket here reads into READ_BUFFER instead (the `onread`
 * option) and its FrameDecoder copies each frame out before the next read: a copy out of a
 * buffer still in the cache. One buffer serves all sockets because libuv hands each read to
 * its callback before it starts the next.
 */
import { type OnReadOpts, Socket, type Server, type SocketConstructorOpts } from 'node:net';
import { encodeFrameHeader } from '../wire/netbios.js';

const READ_BUFFER = Buffer.allocUnsafe(1 << 20);

/** Where a socket's reads go: bytes valid only until the callback returns. */
export type ChunkSink = (chunk: Buffer) => void;

/** `onread` options for a socket whose sink is set once its owner exists (reads start after that). */
export function sharedRead(): { onread: OnReadOpts; attach(sink: ChunkSink): void } {
  let sink: ChunkSink | undefined;
  return {
    onread: {
      buffer: READ_BUFFER,
      callback: (n: number, buf: Uint8Array) => {
        sink?.((buf as Buffer).subarray(0, n));
        return true;
      },
    },
    attach: (s) => (sink = s),
  };
}

interface ListenHandle {
  onconnection?: (err: number, clientHandle: unknown) => void;
}

/**
 * Hands every connection `server` accepts to `onSocket`, reading into the shared buffer.
 * net.Server has no `onread` option for accepted sockets, so the listening handle's
 * `onconnection` hook, where net.Server builds each Socket, builds it here with one. On a Node
 * without that hook, accepted sockets are plain streams feeding the same sink.
 */
export function acceptSharedRead(server: Server, onSocket: (socket: Socket, attach: (sink: ChunkSink) => void) => void): void {
  const handle = (server as unknown as { _handle?: ListenHandle })._handle;
  if (typeof handle?.onconnection !== 'function') {
    server.on('connection', (socket: Socket) => onSocket(socket, (sink) => socket.on('data', sink)));
    return;
  }
  const accepted = handle.onconnection;
  handle.onconnection = (err, clientHandle) => {
    if (err) {
      accepted.call(handle, err, clientHandle);
      return;
    }
    const read = sharedRead();
    const socket = new Socket({ handle: clientHandle, readable: true, writable: true, onread: read.onread } as SocketConstructorOpts);
    onSocket(socket, read.attach);
  };
}

/** libuv's read handle of a Node socket: Node's own stream API cannot stop a flowing socket's reads. */
type ReadHandle = { reading: boolean; readStop(): number; readStart(): number };
const readHandle = (socket: Socket): ReadHandle | undefined => (socket as unknown as { _handle?: ReadHandle })._handle;
/** Why each socket is not read now: reads start again once no reason is left. */
const stops = new WeakMap<Socket, Set<string>>();

/**
 * Node stops reading `socket` (no wake-ups, no reads) for `why` (the kernel relay has the
 * connection, or the other side is behind: backpressure) until resumeReading with the same reason
 * and every other one lifted, as net.Socket's own backpressure does.
 */
export function pauseReading(socket: Socket, why: string): void {
  let reasons = stops.get(socket);
  if (!reasons) stops.set(socket, (reasons = new Set()));
  reasons.add(why);
  const h = readHandle(socket);
  if (!h?.reading || socket.destroyed) return;
  h.reading = false;
  h.readStop();
}

export function resumeReading(socket: Socket, why: string): void {
  const reasons = stops.get(socket);
  reasons?.delete(why);
  if (reasons && reasons.size > 0) return;
  const h = readHandle(socket);
  if (!h || h.reading || socket.destroyed) return;
  h.reading = true;
  h.readStart();
}

/** The length of a frame's payload, given whole or in chunks (sendFrame). */
export const frameBytes = (payload: Buffer | readonly Buffer[]): number => (Array.isArray(payload) ? payload.reduce((n: number, p: Buffer) => n + p.length, 0) : (payload as Buffer).length);

/**
 * Writes one frame: `payload` is the frame, or the chunks it is made of (written in order,
 * never joined). `written` runs once the socket is done with the last of it (its buffer may
 * then be reused).
 */
export function sendFrame(socket: Socket, payload: Buffer | readonly Buffer[], written?: () => void): void {
  const parts = Array.isArray(payload) ? payload : [payload as Buffer];
  socket.cork();
  socket.write(encodeFrameHeader(frameBytes(payload)));
  parts.forEach((p, i) => socket.write(p, i === parts.length - 1 && written ? () => written() : undefined));
  socket.uncork();
}

/** The rest of a message that is passed on raw, not framed: `left` bytes more go to `to`, then `done` runs. */
export interface RawTail {
  left: number;
  to: (bytes: Buffer) => void;
  done: () => void;
}

/**
 * Feeds a chunk to a raw tail: what belongs to it goes to `to` (a copy: chunks are the shared
 * read buffer); returns what follows, for the usual path. True in `finished` once it is through.
 */
export function feedTail(tail: RawTail, chunk: Buffer): { rest: Buffer; finished: boolean } {
  const n = Math.min(tail.left, chunk.length);
  tail.to(Buffer.from(chunk.subarray(0, n)));
  tail.left -= n;
  if (tail.left === 0) tail.done();
  return { rest: chunk.subarray(n), finished: tail.left === 0 };
}
