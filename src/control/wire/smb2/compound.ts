/**
 * Compound chains (MS-SMB2 3.2.4.1.4, 3.3.5.2.7): several SMB2 messages in one frame, each
 * header's NextCommand giving the offset of the next, 8-byte aligned; the last has 0.
 */
import { ErrorCode, WireError } from '../../errors.js';
import { NtStatus } from '../ntstatus.js';
import { SMB2_HEADER_SIZE } from './constants.js';
import { checkHeader, Hdr } from './header.js';

/**
 * Splits a frame into its messages (views, no copy). Each message ends where the next begins;
 * the last one runs to the end of the frame. A NextCommand that is unaligned, too small or
 * points past the frame breaks the framing of the whole chain, so it carries no status.
 */
export function splitCompound(frame: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const msg = frame.subarray(at);
    checkHeader(msg);
    const next = msg.readUInt32LE(Hdr.NextCommand);
    if (next === 0) {
      out.push(msg);
      return out;
    }
    if (next % 8 !== 0 || next < SMB2_HEADER_SIZE || next >= msg.length) {
      throw new WireError(ErrorCode.WIRE_BAD_OFFSET, `NextCommand ${next} at offset ${at} is invalid for a ${frame.length}-byte frame`, NtStatus.STATUS_INVALID_PARAMETER);
    }
    out.push(msg.subarray(0, next));
    at += next;
  }
}

/**
 * Joins messages into one compound frame: pads each but the last to 8 bytes and writes its
 * NextCommand (the last gets 0). Messages are copied; the inputs are not modified.
 */
export function joinCompound(msgs: Buffer[]): Buffer {
  if (msgs.length === 0) throw new WireError(ErrorCode.WIRE_ENCODE, 'a compound chain needs at least one message');
  if (msgs.length === 1) {
    const only = Buffer.from(msgs[0]!);
    only.writeUInt32LE(0, Hdr.NextCommand);
    return only;
  }
  let total = 0;
  const sizes = msgs.map((m, i) => {
    const size = i === msgs.length - 1 ? m.length : (m.length + 7) & ~7;
    total += size;
    return size;
  });
  const out = Buffer.alloc(total);
  let at = 0;
  msgs.forEach((m, i) => {
    m.copy(out, at);
    out.writeUInt32LE(i === msgs.length - 1 ? 0 : sizes[i]!, at + Hdr.NextCommand);
    at += sizes[i]!;
  });
  return out;
}
