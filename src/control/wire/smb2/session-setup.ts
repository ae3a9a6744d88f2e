/** SESSION_SETUP (MS-SMB2 2.2.5, 2.2.6). Flag constants are in constants.ts. */
import { sliceField } from '../cursor.js';
import { bodyReader, bodyWriter, finishVariableBody, fixedEnd, placeBuffer16 } from './message.js';

/** MS-SMB2 2.2.5 SMB2 SESSION_SETUP Request. */
export interface SessionSetupRequest {
  /** SessionSetupRequestFlags (BINDING); 0 before SMB 3.0. */
  Flags: number;
  SecurityMode: number;
  Capabilities: number;
  Channel: number;
  /** Header-relative; undefined when encoding means "right after the fixed part". */
  SecurityBufferOffset?: number;
  /** The GSS token (SPNEGO / NTLMSSP), possibly empty. */
  SecurityBuffer: Buffer;
  PreviousSessionId: bigint;
}

/** MS-SMB2 2.2.6 SMB2 SESSION_SETUP Response. */
export interface SessionSetupResponse {
  SessionFlags: number;
  /** Header-relative; undefined when encoding means "right after the fixed part". */
  SecurityBufferOffset?: number;
  SecurityBuffer: Buffer;
}

const REQUEST_SIZE = 25;
const RESPONSE_SIZE = 9;

export function decodeSessionSetupRequest(msg: Buffer): SessionSetupRequest {
  const r = bodyReader(msg, REQUEST_SIZE, 'SESSION_SETUP request');
  const Flags = r.u8();
  const SecurityMode = r.u8();
  const Capabilities = r.u32();
  const Channel = r.u32();
  const SecurityBufferOffset = r.u16();
  const length = r.u16();
  const PreviousSessionId = r.u64();
  const buf = sliceField(msg, SecurityBufferOffset, length, 'SESSION_SETUP SecurityBufferOffset', fixedEnd(REQUEST_SIZE));
  return { Flags, SecurityMode, Capabilities, Channel, SecurityBufferOffset, SecurityBuffer: Buffer.from(buf), PreviousSessionId };
}

export function encodeSessionSetupRequest(req: SessionSetupRequest): Buffer {
  const w = bodyWriter(REQUEST_SIZE);
  w.u8(req.Flags).u8(req.SecurityMode).u32(req.Capabilities).u32(req.Channel);
  const at = w.pos;
  w.zeros(4).u64(req.PreviousSessionId);
  placeBuffer16(w, at, req.SecurityBuffer, 'SESSION_SETUP SecurityBuffer', req.SecurityBufferOffset);
  return finishVariableBody(w, REQUEST_SIZE);
}

export function decodeSessionSetupResponse(msg: Buffer): SessionSetupResponse {
  const r = bodyReader(msg, RESPONSE_SIZE, 'SESSION_SETUP response');
  const SessionFlags = r.u16();
  const SecurityBufferOffset = r.u16();
  const length = r.u16();
  const buf = sliceField(msg, SecurityBufferOffset, length, 'SESSION_SETUP SecurityBufferOffset', fixedEnd(RESPONSE_SIZE));
  return { SessionFlags, SecurityBufferOffset, SecurityBuffer: Buffer.from(buf) };
}

export function encodeSessionSetupResponse(res: SessionSetupResponse): Buffer {
  const w = bodyWriter(RESPONSE_SIZE);
  w.u16(res.SessionFlags);
  const at = w.pos;
  w.zeros(4);
  placeBuffer16(w, at, res.SecurityBuffer, 'SESSION_SETUP SecurityBuffer', res.SecurityBufferOffset);
  return finishVariableBody(w, RESPONSE_SIZE);
}
