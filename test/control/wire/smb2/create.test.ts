import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Smb2Command } from '../../../../src/control/wire/smb2/constants.js';
import { CreateContextName, decodeLease } from '../../../../src/control/wire/smb2/create-contexts.js';
import {
  AccessMask,
  CreateAction,
  type CreateRequest,
  type CreateResponse,
  CreateDisposition,
  CreateOptions,
  decodeCreateRequest,
  decodeCreateResponse,
  encodeCreateRequest,
  encodeCreateResponse,
  OplockLevel,
} from '../../../../src/control/wire/smb2/create.js';
import { createCaptures as cap } from './captures.js';
import { assertInvalid, bytes, checkCodec, fileId, frame, openAttributes, u16, u32, u64, u8, utf16 } from './codec-checks.js';

const { createReqRoot, createReqSmallTxt, createReqLeaseDurableV2, createReqMxAcAlSiDHnQTWrp, createReqAppInstance } = cap;
const { createReqLeaseV2, createReqDH2C, createReqDHnC, createReqQFid } = cap;
const { createRspPlain, createRspLeaseDurableV2, createRspLeaseV2, createRspMxAc, createRspDHnQ, createRspDH2Q, createRspQFid } = cap;

const contextName = fc.oneof(
  fc.constantFrom(...Object.values(CreateContextName)),
  fc.uint8Array({ minLength: 1, maxLength: 20 }).map((b) => Buffer.from(b).toString('latin1')),
);
const contexts = fc.array(fc.record({ Name: contextName, Reserved: u16, Data: bytes(60) }), { maxLength: 4 });

const createRequest: fc.Arbitrary<CreateRequest> = fc.record({
  SecurityFlags: u8,
  RequestedOplockLevel: u8,
  ImpersonationLevel: u32,
  SmbCreateFlags: u64,
  Reserved: u64,
  DesiredAccess: u32,
  FileAttributes: u32,
  ShareAccess: u32,
  CreateDisposition: u32,
  CreateOptions: u32,
  Name: utf16(40),
  CreateContexts: contexts,
});

const createResponse: fc.Arbitrary<CreateResponse> = fc.record({
  OplockLevel: u8,
  Flags: u8,
  CreateAction: u32,
  ...openAttributes,
  Reserved2: u32,
  FileId: fileId,
  CreateContexts: contexts,
});

checkCodec({
  name: 'CREATE request',
  command: Smb2Command.CREATE,
  decode: decodeCreateRequest,
  encode: encodeCreateRequest,
  captures: {
    createReqRoot,
    createReqLeaseDurableV2,
    createReqMxAcAlSiDHnQTWrp,
    createReqAppInstance,
    createReqLeaseV2,
    createReqDH2C,
    createReqDHnC,
    createReqQFid,
  },
  arbitrary: createRequest,
});

checkCodec({
  name: 'CREATE response',
  command: Smb2Command.CREATE,
  decode: decodeCreateResponse,
  encode: encodeCreateResponse,
  captures: { createRspPlain, createRspLeaseDurableV2, createRspLeaseV2, createRspMxAc, createRspDHnQ, createRspDH2Q, createRspQFid },
  arbitrary: createResponse,
});

test('CREATE request captures decode to what smbclient and smbtorture sent', () => {
  const root = decodeCreateRequest(createReqRoot);
  assert.equal(root.Name, '');
  assert.equal(root.NameOffset, 0x78);
  assert.equal(createReqRoot.length, 64 + 57, 'an empty name still carries 1 byte of Buffer');
  assert.equal(root.DesiredAccess, AccessMask.FILE_READ_DATA | AccessMask.FILE_READ_ATTRIBUTES);
  assert.equal(root.CreateOptions, CreateOptions.FILE_DIRECTORY_FILE);
  assert.equal(root.CreateDisposition, CreateDisposition.FILE_OPEN);

  const put = decodeCreateRequest(createReqSmallTxt);
  assert.equal(put.Name, 'small.txt');
  assert.equal(put.CreateDisposition, CreateDisposition.FILE_OVERWRITE_IF);
  assert.deepEqual(put.CreateContexts, []);

  const lease = decodeCreateRequest(createReqLeaseDurableV2);
  assert.equal(lease.RequestedOplockLevel, OplockLevel.SMB2_OPLOCK_LEVEL_LEASE);
  assert.deepEqual(lease.CreateContexts.map((c) => [c.Name, c.Data.length]), [['DH2Q', 32], ['RqLs', 32]]);
  assert.equal(lease.CreateContextsOffset, 184, '8-aligned after the 62-byte name at 0x78');

  const v2 = decodeCreateRequest(createReqLeaseV2);
  assert.equal(v2.Name, 'v2_lease_breaking3.dat');
  assert.equal(decodeLease(v2.CreateContexts[0]!.Data).LeaseKey.toString('hex'), '0df0dde0fe0fdcbaf20f221f01f02345');

  const reconnect = decodeCreateRequest(createReqDH2C);
  assert.equal(reconnect.Name, '');
  assert.equal(reconnect.CreateContextsOffset, 0x78, 'with an empty name the contexts start right after the fixed part');
  assert.deepEqual(decodeCreateRequest(createReqMxAcAlSiDHnQTWrp).CreateContexts.map((c) => c.Name), ['MxAc', 'AlSi', 'DHnQ', 'TWrp']);
  assert.equal(decodeCreateRequest(createReqQFid).Name, 'smb2_open\\foo');
  assert.equal(decodeCreateRequest(createReqAppInstance).CreateContexts[1]!.Name, CreateContextName.SMB2_CREATE_APP_INSTANCE_ID);
});

test('CREATE request: the UTF-16 terminator smbclient sends after NameLength is ignored like padding', () => {
  const req = decodeCreateRequest(createReqSmallTxt);
  assert.equal(createReqSmallTxt.length, 0x78 + 18 + 2);
  assert.equal(createReqSmallTxt.readUInt16LE(0x78 + 18), 0);
  const again = frame(Smb2Command.CREATE, encodeCreateRequest(req), createReqSmallTxt);
  assert.equal(again.toString('hex'), createReqSmallTxt.subarray(0, 0x78 + 18).toString('hex'));
});

test('CREATE response captures decode to what smbd answered', () => {
  const plain = decodeCreateResponse(createRspPlain);
  assert.equal(createRspPlain.length, 64 + 88, 'Samba sends no Buffer byte without contexts');
  assert.equal(plain.CreateAction, CreateAction.FILE_CREATED);
  assert.equal(plain.CreateContextsOffset, 0);
  const mxac = decodeCreateResponse(createRspMxAc);
  assert.equal(mxac.CreateAction, CreateAction.FILE_OVERWRITTEN);
  assert.equal(mxac.AllocationSize, 1048576n);
  assert.equal(mxac.CreateContextsOffset, 0x98);
  const lease = decodeCreateResponse(createRspLeaseDurableV2);
  assert.equal(lease.OplockLevel, OplockLevel.SMB2_OPLOCK_LEVEL_LEASE);
  assert.deepEqual(lease.FileId, { Persistent: 3902496598n, Volatile: 3761466998n });
  assert.deepEqual(lease.CreateContexts.map((c) => c.Name), ['DH2Q', 'RqLs']);
});

test('CREATE request encodes with the name at 0x78 and the contexts 8-aligned after it', () => {
  const req: CreateRequest = {
    SecurityFlags: 0,
    RequestedOplockLevel: OplockLevel.SMB2_OPLOCK_LEVEL_BATCH,
    ImpersonationLevel: 2,
    SmbCreateFlags: 0n,
    Reserved: 0n,
    DesiredAccess: AccessMask.GENERIC_READ,
    FileAttributes: 0,
    ShareAccess: 7,
    CreateDisposition: CreateDisposition.FILE_OPEN,
    CreateOptions: 0,
    Name: 'a\\b.txt',
    CreateContexts: [{ Name: 'MxAc', Reserved: 0, Data: Buffer.alloc(0) }],
  };
  const body = encodeCreateRequest(req);
  assert.equal(body.readUInt16LE(0x2c), 0x78);
  assert.equal(body.readUInt16LE(0x2e), 14);
  assert.equal(body.readUInt32LE(0x30), 0x88, '0x78 + 14 rounded up to 8');
  assert.equal(body.readUInt32LE(0x34), 20, 'the last context is not padded');
  assert.equal(body.length, 0x88 + 20 - 64);
  assert.equal(encodeCreateRequest({ ...req, Name: '', CreateContexts: [] }).length, 57);
});

test('CREATE response without contexts is the fixed part alone; with contexts they start at 0x98', () => {
  const res = decodeCreateResponse(createRspPlain);
  assert.equal(encodeCreateResponse({ ...res, CreateContextsOffset: undefined }).length, 88);
  const qfid = { Name: 'QFid', Reserved: 0, Data: Buffer.alloc(32, 1) };
  const body = encodeCreateResponse({ ...res, CreateContextsOffset: undefined, CreateContexts: [qfid] });
  assert.equal(body.readUInt32LE(0x50), 0x98);
  assert.equal(body.readUInt32LE(0x54), 56);
});

test('CREATE request: malformed name and context offsets are refused with STATUS_INVALID_PARAMETER', () => {
  const intoFixed = Buffer.from(createReqSmallTxt);
  intoFixed.writeUInt16LE(0x70, 64 + 0x2c);
  assertInvalid(() => decodeCreateRequest(intoFixed), /NameOffset/);
  const pastEnd = Buffer.from(createReqSmallTxt);
  pastEnd.writeUInt16LE(100, 64 + 0x2e);
  assertInvalid(() => decodeCreateRequest(pastEnd), /NameOffset/);
  const oddName = Buffer.from(createReqSmallTxt);
  oddName.writeUInt16LE(17, 64 + 0x2e);
  assertInvalid(() => decodeCreateRequest(oddName), /odd length/);
  const overName = Buffer.from(createReqLeaseDurableV2);
  overName.writeUInt32LE(0x80, 64 + 0x30);
  assertInvalid(() => decodeCreateRequest(overName), /CreateContextsOffset/);
  const longChain = Buffer.from(createReqLeaseDurableV2);
  longChain.writeUInt32LE(200, 64 + 0x34);
  assertInvalid(() => decodeCreateRequest(longChain), /CreateContextsOffset/);
});

test('CREATE response: a context chain running past the message is refused', () => {
  const bad = Buffer.from(createRspMxAc);
  bad.writeUInt32LE(33, 64 + 0x54);
  assertInvalid(() => decodeCreateResponse(bad), /CreateContextsOffset/);
  const bad2 = Buffer.from(createRspMxAc);
  bad2.writeUInt32LE(0x90, 64 + 0x50);
  assertInvalid(() => decodeCreateResponse(bad2), /CreateContextsOffset/);
});

test('CREATE decoders keep the context data as views into the message', () => {
  const msg = Buffer.from(createRspQFid);
  const data = decodeCreateResponse(msg).CreateContexts[0]!.Data;
  assert.equal(data.buffer, msg.buffer);
  assert.equal(frame(Smb2Command.CREATE, encodeCreateResponse(decodeCreateResponse(msg)), msg).equals(msg), true);
});
