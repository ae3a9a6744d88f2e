import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FsctlCode, Smb2Command, Smb2Dialect } from '../../../../src/control/wire/smb2/constants.js';
import { RELATED_FILE_ID } from '../../../../src/control/wire/smb2/file-id.js';
import {
  decodeIoctlRequest,
  decodeIoctlResponse,
  decodeValidateNegotiateInfoRequest,
  decodeValidateNegotiateInfoResponse,
  encodeIoctlRequest,
  encodeIoctlResponse,
  encodeValidateNegotiateInfoRequest,
  encodeValidateNegotiateInfoResponse,
  IoctlFlags,
  pipeTransceiveRequest,
  pipeTransceiveResponse,
} from '../../../../src/control/wire/smb2/ioctl.js';
import { ioctlCaptures as cap } from './captures.js';
import { assertInvalid, bytes, checkCodec, fileId, guid, u16, u32 } from './codec-checks.js';

checkCodec({
  name: 'IOCTL request',
  command: Smb2Command.IOCTL,
  decode: decodeIoctlRequest,
  encode: encodeIoctlRequest,
  captures: {
    ioctlReqValidateNegotiate: cap.ioctlReqValidateNegotiate,
    ioctlReqPipeTransceive: cap.ioctlReqPipeTransceive,
    ioctlReqSnapshots: cap.ioctlReqSnapshots,
  },
  arbitrary: fc.record({
    Reserved: u16,
    CtlCode: u32,
    FileId: fileId,
    Input: bytes(100),
    MaxInputResponse: u32,
    Output: bytes(40),
    MaxOutputResponse: u32,
    Flags: u32,
    Reserved2: u32,
  }),
});

checkCodec({
  name: 'IOCTL response',
  command: Smb2Command.IOCTL,
  decode: decodeIoctlResponse,
  encode: encodeIoctlResponse,
  captures: { ioctlRspValidateNegotiate: cap.ioctlRspValidateNegotiate, ioctlRspPipeTransceive: cap.ioctlRspPipeTransceive },
  arbitrary: fc.record({ Reserved: u16, CtlCode: u32, FileId: fileId, Input: bytes(40), Output: bytes(100), Flags: u32, Reserved2: u32 }),
});

test('VALIDATE_NEGOTIATE_INFO captures (smbclient -m SMB3_00 against smbd)', () => {
  const req = decodeIoctlRequest(cap.ioctlReqValidateNegotiate);
  assert.equal(req.CtlCode, FsctlCode.VALIDATE_NEGOTIATE_INFO);
  assert.deepEqual(req.FileId, RELATED_FILE_ID, 'addresses no open');
  assert.equal(req.Flags, IoctlFlags.SMB2_0_IOCTL_IS_FSCTL);
  assert.deepEqual([req.InputOffset, req.OutputOffset, req.MaxOutputResponse], [0x78, 0x78, 24]);
  const info = decodeValidateNegotiateInfoRequest(req.Input);
  assert.deepEqual(info.Dialects, [Smb2Dialect.SMB202, Smb2Dialect.SMB210, Smb2Dialect.SMB300]);
  assert.deepEqual([info.Capabilities, info.SecurityMode, info.Guid.length], [0x7f, 1, 16]);
  assert.equal(encodeValidateNegotiateInfoRequest(info).toString('hex'), req.Input.toString('hex'));

  const res = decodeIoctlResponse(cap.ioctlRspValidateNegotiate);
  assert.deepEqual([res.InputOffset, res.OutputOffset], [0x70, 0x70]);
  const answer = decodeValidateNegotiateInfoResponse(res.Output);
  assert.equal(answer.Dialect, Smb2Dialect.SMB300);
  assert.equal(answer.Guid.subarray(0, 6).toString(), 'codecb', "Samba's server GUID starts with its netbios name");
  assert.equal(encodeValidateNegotiateInfoResponse(answer).toString('hex'), res.Output.toString('hex'));
});

test('canonical IOCTL encodings are the ones Samba puts on the wire', () => {
  const req = decodeIoctlRequest(cap.ioctlReqValidateNegotiate);
  const canonical = { ...req, InputOffset: undefined, OutputOffset: undefined };
  assert.equal(encodeIoctlRequest(canonical).toString('hex'), cap.ioctlReqValidateNegotiate.subarray(64).toString('hex'));
  const pipeReq = decodeIoctlRequest(cap.ioctlReqPipeTransceive);
  const built = pipeTransceiveRequest(pipeReq.FileId, Buffer.from(pipeReq.Input), pipeReq.MaxOutputResponse);
  assert.equal(encodeIoctlRequest(built).toString('hex'), cap.ioctlReqPipeTransceive.subarray(64).toString('hex'));
  const pipeRes = decodeIoctlResponse(cap.ioctlRspPipeTransceive);
  const answer = encodeIoctlResponse(pipeTransceiveResponse(pipeRes.FileId, Buffer.from(pipeRes.Output)));
  assert.equal(answer.toString('hex'), cap.ioctlRspPipeTransceive.subarray(64).toString('hex'));
  assert.equal(pipeRes.Output.readUInt8(2), 12, 'the pipe answered a DCE/RPC bind_ack');
  const none = decodeIoctlRequest(cap.ioctlReqSnapshots);
  assert.equal(encodeIoctlRequest({ ...none, InputOffset: undefined, OutputOffset: undefined }).length, 57, '0/0 offsets and 1 zero byte');
  const both = encodeIoctlResponse({ ...pipeRes, InputOffset: undefined, OutputOffset: undefined, Input: Buffer.alloc(3, 1) });
  assert.deepEqual([both.readUInt32LE(24), both.readUInt32LE(32)], [0x70, 0x78]);
});

test('IOCTL: buffers in the fixed part, overlapping or past the message are refused', () => {
  const into = Buffer.from(cap.ioctlReqPipeTransceive);
  into.writeUInt32LE(0x70, 64 + 24);
  assertInvalid(() => decodeIoctlRequest(into), /InputOffset/);
  const past = Buffer.from(cap.ioctlReqPipeTransceive);
  past.writeUInt32LE(73, 64 + 28);
  assertInvalid(() => decodeIoctlRequest(past), /InputOffset/);
  const overlap = Buffer.from(cap.ioctlReqPipeTransceive);
  overlap.writeUInt32LE(0x80, 64 + 36);
  overlap.writeUInt32LE(8, 64 + 40);
  assertInvalid(() => decodeIoctlRequest(overlap), /OutputOffset/);
  const huge = Buffer.from(cap.ioctlRspPipeTransceive);
  huge.writeUInt32LE(0xfffffff0, 64 + 32);
  assertInvalid(() => decodeIoctlResponse(huge), /OutputOffset/);
});

test('VALIDATE_NEGOTIATE_INFO: property round trip and impossible DialectCounts', () => {
  fc.assert(
    fc.property(fc.record({ Capabilities: u32, Guid: guid, SecurityMode: u16, Dialects: fc.array(u16, { maxLength: 8 }) }), (v) => {
      const b = encodeValidateNegotiateInfoRequest(v);
      assert.equal(b.length, 24 + 2 * v.Dialects.length);
      assert.deepEqual(decodeValidateNegotiateInfoRequest(b), { ...v });
    }),
  );
  fc.assert(
    fc.property(fc.record({ Capabilities: u32, Guid: guid, SecurityMode: u16, Dialect: u16 }), (v) => {
      assert.deepEqual(decodeValidateNegotiateInfoResponse(encodeValidateNegotiateInfoResponse(v)), { ...v });
    }),
  );
  const input = Buffer.from(decodeIoctlRequest(cap.ioctlReqValidateNegotiate).Input);
  input.writeUInt16LE(4, 22);
  assertInvalid(() => decodeValidateNegotiateInfoRequest(input), /DialectCount 4 does not fit 6 bytes/);
  assertInvalid(() => decodeValidateNegotiateInfoRequest(input.subarray(0, 23)), /need 24/);
  assertInvalid(() => decodeValidateNegotiateInfoResponse(Buffer.alloc(26)), /26 bytes, expected 24/);
});
