/** Writes one Direct TCP transport frame (MS-SMB2 2.1) without copying a large payload into it. */
import type { Socket } from 'node:net';
import { encodeFrameHeader } from '../wire/netbios.js';

export function sendFrame(socket: Socket, payload: Buffer): void {
  socket.cork();
  socket.write(encodeFrameHeader(payload.length));
  socket.write(payload);
  socket.uncork();
}
