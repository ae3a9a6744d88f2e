/**
 * Fuzz targets for the file-operation codecs: each feeds arbitrary bytes to one decoder (after a
 * valid 64-byte header for whole-message decoders), re-encodes whatever decodes, and rethrows
 * anything that is not a WireError. Pure and fast; the driver supplies the bytes.
 */
import * as changeNotify from '../../../../src/control/wire/smb2/change-notify.js';
import * as close from '../../../../src/control/wire/smb2/close.js';
import * as ctx from '../../../../src/control/wire/smb2/create-contexts.js';
import * as create from '../../../../src/control/wire/smb2/create.js';
import * as flush from '../../../../src/control/wire/smb2/flush.js';
import { encodeHeader, header } from '../../../../src/control/wire/smb2/header.js';
import * as info from '../../../../src/control/wire/smb2/info.js';
import * as ioctl from '../../../../src/control/wire/smb2/ioctl.js';
import * as lock from '../../../../src/control/wire/smb2/lock.js';
import * as oplock from '../../../../src/control/wire/smb2/oplock.js';
import * as queryDirectory from '../../../../src/control/wire/smb2/query-directory.js';
import * as read from '../../../../src/control/wire/smb2/read.js';
import * as write from '../../../../src/control/wire/smb2/write.js';
import { onlyTypedErrors } from '../../../helpers/wire.js';

const HEADER = encodeHeader(header({ Command: 0 }));

/** A target for a decoder of raw bytes (context data, IOCTL payloads). */
function raw<T>(decode: (b: Buffer) => T, encode: (v: T) => Buffer): (data: Buffer) => void {
  return onlyTypedErrors((data) => encode(decode(data)));
}

/** A target for a decoder of whole messages: `data` is the body. */
function body<T>(decode: (msg: Buffer) => T, encode: (v: T) => Buffer): (data: Buffer) => void {
  return onlyTypedErrors((data) => encode(decode(Buffer.concat([HEADER, data]))));
}

export const fuzzTargets: { [name: string]: (data: Buffer) => void } = {
  'smb2.create.request': body(create.decodeCreateRequest, create.encodeCreateRequest),
  'smb2.create.response': body(create.decodeCreateResponse, create.encodeCreateResponse),
  'smb2.create-contexts.chain': raw(ctx.decodeCreateContexts, ctx.encodeCreateContexts),
  'smb2.create-contexts.DHnQ-request': raw(ctx.decodeDurableHandleRequest, ctx.encodeDurableHandleRequest),
  'smb2.create-contexts.DHnQ-response': raw(ctx.decodeDurableHandleResponse, ctx.encodeDurableHandleResponse),
  'smb2.create-contexts.DHnC': raw(ctx.decodeDurableHandleReconnect, ctx.encodeDurableHandleReconnect),
  'smb2.create-contexts.MxAc-request': raw(ctx.decodeQueryMaximalAccessRequest, ctx.encodeQueryMaximalAccessRequest),
  'smb2.create-contexts.MxAc-response': raw(ctx.decodeQueryMaximalAccessResponse, ctx.encodeQueryMaximalAccessResponse),
  'smb2.create-contexts.AlSi': raw(ctx.decodeAllocationSize, ctx.encodeAllocationSize),
  'smb2.create-contexts.TWrp': raw(ctx.decodeTimewarpToken, ctx.encodeTimewarpToken),
  'smb2.create-contexts.QFid-response': raw(ctx.decodeQueryOnDiskIdResponse, ctx.encodeQueryOnDiskIdResponse),
  'smb2.create-contexts.RqLs': raw(ctx.decodeLease, ctx.encodeLease),
  'smb2.create-contexts.DH2Q-request': raw(ctx.decodeDurableHandleRequestV2, ctx.encodeDurableHandleRequestV2),
  'smb2.create-contexts.DH2Q-response': raw(ctx.decodeDurableHandleResponseV2, ctx.encodeDurableHandleResponseV2),
  'smb2.create-contexts.DH2C': raw(ctx.decodeDurableHandleReconnectV2, ctx.encodeDurableHandleReconnectV2),
  'smb2.create-contexts.app-instance-id': raw(ctx.decodeAppInstanceId, ctx.encodeAppInstanceId),
  'smb2.create-contexts.app-instance-version': raw(ctx.decodeAppInstanceVersion, ctx.encodeAppInstanceVersion),
  'smb2.close.request': body(close.decodeCloseRequest, close.encodeCloseRequest),
  'smb2.close.response': body(close.decodeCloseResponse, close.encodeCloseResponse),
  'smb2.flush.request': body(flush.decodeFlushRequest, flush.encodeFlushRequest),
  'smb2.read.request': body(read.decodeReadRequest, read.encodeReadRequest),
  'smb2.read.response': body(read.decodeReadResponse, read.encodeReadResponse),
  'smb2.write.request': body(write.decodeWriteRequest, write.encodeWriteRequest),
  'smb2.write.response': body(write.decodeWriteResponse, write.encodeWriteResponse),
  'smb2.lock.request': body(lock.decodeLockRequest, lock.encodeLockRequest),
  'smb2.lock.response': body(lock.decodeLockResponse, lock.encodeLockResponse),
  'smb2.ioctl.request': body(ioctl.decodeIoctlRequest, ioctl.encodeIoctlRequest),
  'smb2.ioctl.response': body(ioctl.decodeIoctlResponse, ioctl.encodeIoctlResponse),
  'smb2.ioctl.validate-negotiate-request': raw(ioctl.decodeValidateNegotiateInfoRequest, ioctl.encodeValidateNegotiateInfoRequest),
  'smb2.ioctl.validate-negotiate-response': raw(ioctl.decodeValidateNegotiateInfoResponse, ioctl.encodeValidateNegotiateInfoResponse),
  'smb2.query-directory.request': body(queryDirectory.decodeQueryDirectoryRequest, queryDirectory.encodeQueryDirectoryRequest),
  'smb2.query-directory.response': body(queryDirectory.decodeQueryDirectoryResponse, queryDirectory.encodeQueryDirectoryResponse),
  'smb2.change-notify.request': body(changeNotify.decodeChangeNotifyRequest, changeNotify.encodeChangeNotifyRequest),
  'smb2.change-notify.response': body(changeNotify.decodeChangeNotifyResponse, changeNotify.encodeChangeNotifyResponse),
  'smb2.query-info.request': body(info.decodeQueryInfoRequest, info.encodeQueryInfoRequest),
  'smb2.query-info.response': body(info.decodeQueryInfoResponse, info.encodeQueryInfoResponse),
  'smb2.set-info.request': body(info.decodeSetInfoRequest, info.encodeSetInfoRequest),
  'smb2.set-info.response': body(info.decodeSetInfoResponse, info.encodeSetInfoResponse),
  'smb2.oplock-break': body(oplock.decodeOplockBreakMessage, oplock.encodeOplockBreakMessage),
};
