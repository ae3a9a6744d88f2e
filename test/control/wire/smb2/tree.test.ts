import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import { header } from '../../../../src/control/wire/smb2/header.js';
import { encodeMessage } from '../../../../src/control/wire/smb2/message.js';
import { decodeTreeConnectRequest, encodeTreeConnectRequest, decodeTreeConnectResponse, encodeTreeConnectResponse } from '../../../../src/control/wire/smb2/tree.js';
import { assertRoundTrip, assertTruncationsTyped } from '../../../helpers/wire.js';

const msg = (body: Buffer) => encodeMessage(header({ Command: Smb2Command.TREE_CONNECT }), body);

test('TREE_CONNECT request round-trips with the path right after the fixed part', () => {
  const bytes = msg(encodeTreeConnectRequest({ Flags: 0, Path: '\\\\dsr\\IPC$' }));
  const req = assertRoundTrip(decodeTreeConnectRequest, (r) => msg(encodeTreeConnectRequest(r)), bytes);
  assert.equal(req.Path, '\\\\dsr\\IPC$');
  assert.equal(req.PathOffset, 72);
  assertTruncationsTyped(decodeTreeConnectRequest, bytes);
});

test('TREE_CONNECT request with a path pointing into the fixed part is refused', () => {
  const bytes = msg(encodeTreeConnectRequest({ Flags: 0, Path: 'x' }));
  bytes.writeUInt16LE(66, 64 + 4);
  assert.throws(() => decodeTreeConnectRequest(bytes), /PathOffset/);
});

test('TREE_CONNECT response round-trips', () => {
  const bytes = msg(encodeTreeConnectResponse({ ShareType: 2, Reserved: 0, ShareFlags: 0x30, Capabilities: 0, MaximalAccess: 0x1f01ff }));
  assertRoundTrip(decodeTreeConnectResponse, (r) => msg(encodeTreeConnectResponse(r)), bytes);
  assertTruncationsTyped(decodeTreeConnectResponse, bytes);
});
