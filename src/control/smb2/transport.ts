/** Writes one Direct TCP transport frame (MS-SMB2 2.1) without copying a large payload into it. */
import type { Socket } from 'node:net';
import { encodeFrameHeader } from '../wire/netbios.js';

/**
 * `payload` is the frame, or the chunks it is made of (written in order, never joined).
 * `written` runs once the socket is done with the last of it (its buffer may then be reused).
 */
export function sendFrame(socket: Socket, payload: Buffer | readonly Buffer[], written?: () => void): void {
  const parts = Array.isArray(payload) ? payload : [payload as Buffer];
  socket.cork();
  socket.write(encodeFrameHeader(parts.reduce((n, p) => n + p.length, 0)));
  parts.forEach((p, i) => socket.write(p, i === parts.length - 1 && written ? () => written() : undefined));
  socket.uncork();
}
