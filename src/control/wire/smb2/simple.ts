/**
 * The bodies that are only a StructureSize of 4 and a Reserved field: LOGOFF (MS-SMB2 2.2.7,
 * 2.2.8), TREE_DISCONNECT (2.2.11, 2.2.12), ECHO (2.2.28, 2.2.29), CANCEL (2.2.30, request only)
 * and the FLUSH response (2.2.18).
 */
import { bodyReader, bodyWriter, finishBody } from './message.js';

export interface ReservedBody {
  Reserved: number;
}

export function decodeReservedBody(msg: Buffer, what: string): ReservedBody {
  return { Reserved: bodyReader(msg, 4, what).u16() };
}

export function encodeReservedBody(b: ReservedBody = { Reserved: 0 }): Buffer {
  const w = bodyWriter(4);
  w.u16(b.Reserved);
  return finishBody(w);
}
