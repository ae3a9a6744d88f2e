/**
 * Fuzz entry points for NEGOTIATE, SESSION_SETUP, ERROR, the transforms and the SMB1 NEGOTIATE:
 * each hands arbitrary bytes to one decoder and lets nothing but a WireError escape silently.
 * The inputs are given the fixed prefix each decoder checks first (header, StructureSize,
 * ProtocolId, tag) so that the fuzz bytes exercise the parsing behind it.
 */
import { decodeSmb1Negotiate, SMB1_COM_NEGOTIATE } from '../../../../src/control/wire/smb1.js';
import {
  SMB1_PROTOCOL_ID,
  SMB2_COMPRESSION_PROTOCOL_ID,
  SMB2_TRANSFORM_PROTOCOL_ID,
  Smb2Command,
} from '../../../../src/control/wire/smb2/constants.js';
import {
  decodeErrorResponse,
  decodeShareRedirectErrorContext,
  decodeSymbolicLinkErrorResponse,
  SYMLINK_ERROR_TAG,
} from '../../../../src/control/wire/smb2/error.js';
import { encodeHeader, header } from '../../../../src/control/wire/smb2/header.js';
import { decodeNegotiateRequest, decodeNegotiateResponse } from '../../../../src/control/wire/smb2/negotiate.js';
import { decodeSessionSetupRequest, decodeSessionSetupResponse } from '../../../../src/control/wire/smb2/session-setup.js';
import { decodeCompressionTransform, decodeTransformHeader } from '../../../../src/control/wire/smb2/transform.js';
import { onlyTypedErrors } from '../../../helpers/wire.js';

const HEADER = encodeHeader(header({ Command: Smb2Command.NEGOTIATE }));

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

/** A whole SMB2 message: header, the body's StructureSize, then the fuzz bytes. */
function body(structureSize: number, data: Buffer): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16LE(structureSize);
  return Buffer.concat([HEADER, size, data]);
}

export const fuzzTargets: { [name: string]: (data: Buffer) => void } = {
  negotiateRequest: onlyTypedErrors((d) => decodeNegotiateRequest(body(36, d))),
  negotiateResponse: onlyTypedErrors((d) => decodeNegotiateResponse(body(65, d))),
  sessionSetupRequest: onlyTypedErrors((d) => decodeSessionSetupRequest(body(25, d))),
  sessionSetupResponse: onlyTypedErrors((d) => decodeSessionSetupResponse(body(9, d))),
  errorResponse: onlyTypedErrors((d) => decodeErrorResponse(body(9, d))),
  symbolicLinkErrorResponse: onlyTypedErrors((d) =>
    decodeSymbolicLinkErrorResponse(Buffer.concat([d.subarray(0, 4), u32(SYMLINK_ERROR_TAG), d.subarray(4)])),
  ),
  shareRedirectErrorContext: onlyTypedErrors(decodeShareRedirectErrorContext),
  transformHeader: onlyTypedErrors((d) => decodeTransformHeader(Buffer.concat([u32(SMB2_TRANSFORM_PROTOCOL_ID), d]))),
  compressionTransform: onlyTypedErrors((d) => decodeCompressionTransform(Buffer.concat([u32(SMB2_COMPRESSION_PROTOCOL_ID), d]))),
  smb1Negotiate: onlyTypedErrors((d) => decodeSmb1Negotiate(Buffer.concat([u32(SMB1_PROTOCOL_ID), Buffer.of(SMB1_COM_NEGOTIATE), d]))),
};
