/**
 * Real Samba traffic as a byte stream: every captured SMB2 message framed one after another,
 * fed to the frame decoder split at every byte (and one byte at a time), must come out as the
 * same messages, and each must pass the server's request validation or be refused with a
 * typed error, exactly as when it arrives whole.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WireError } from '../../../src/control/errors.js';
import { COMMANDS } from '../../../src/control/smb2/dispatch.js';
import { encodeFrame, FrameDecoder } from '../../../src/control/wire/netbios.js';
import { Smb2Flags } from '../../../src/control/wire/smb2/constants.js';
import { decodeHeader } from '../../../src/control/wire/smb2/header.js';
import { assertSplitFeeding } from '../../helpers/wire.js';
import * as captures from './smb2/captures.js';

const messages: Buffer[] = Object.values(captures).flatMap((group) => Object.values(group as Record<string, Buffer>));

/** What the server's validation makes of one message (some were captured out of compounds): 'ok' or the WireError's message. */
function verdict(msg: Buffer): string {
  const hdr = decodeHeader(msg);
  if (hdr.Flags & Smb2Flags.SERVER_TO_REDIR) return 'response';
  try {
    COMMANDS[hdr.Command]!.validate(msg);
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof WireError, String(e));
    return e.message;
  }
}

test(`${messages.length} captured messages survive every split of the stream`, () => {
  assert.ok(messages.length > 40);
  assertSplitFeeding(messages);
});

test('every captured request passes the command table validation the same way whole or streamed', () => {
  const whole = messages.map(verdict);
  assert.ok(whole.filter((v) => v === 'ok').length >= 20, `the captured requests are valid: ${whole.join(', ')}`);
  const stream = Buffer.concat(messages.map(encodeFrame));
  const d = new FrameDecoder(1 << 20);
  const streamed: string[] = [];
  for (let i = 0; i < stream.length; i += 7) for (const f of d.push(stream.subarray(i, i + 7))) streamed.push(verdict(f));
  assert.deepEqual(streamed, whole);
});
