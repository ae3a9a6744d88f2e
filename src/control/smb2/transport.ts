/** Writes one Direct TCP transport frame (MS-SMB2 2.1) without copying a large payload into it. */
import type { Socket } from 'node:net';
import { encodeFrameHeader } from '../wire/netbios.js';

/** `written` runs once the socket is done with `payload` (its buffer may then be reused). */
export function sendFrame(socket: Socket, payload: Buffer, written?: () => void): void {
  socket.cork();
  socket.write(encodeFrameHeader(payload.length));
  socket.write(payload, written && (() => written()));
  socket.uncork();
}
