/**
 * Fuzz entry points for NEGOTIATE, SESSION_SETUP, ERROR, the transforms and the SMB1 NEGOTIATE:
 * each hands arbitrary bytes to one decoder and lets nothing but a WireError escape silently.
 * The inputs are given the fixed prefix each decoder checks first (header, StructureSize,
 * ProtocolId, tag) so that the fuzz bytes exercise the parsing behind it.
 */
import fc from 'fast-check';
import { ErrorCode, WireError } from '../../../../src/control/errors.js';
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
import { assertOnlyWireErrors } from '../../../helpers/wire.js';

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

function onlyWireErrors(decode: (data: Buffer) => unknown): (data: Buffer) => void {
  return (data) => {
    try {
      decode(data);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
    }
  };
}

export const fuzzTargets: { [name: string]: (data: Buffer) => void } = {
  negotiateRequest: onlyWireErrors((d) => decodeNegotiateRequest(body(36, d))),
  negotiateResponse: onlyWireErrors((d) => decodeNegotiateResponse(body(65, d))),
  sessionSetupRequest: onlyWireErrors((d) => decodeSessionSetupRequest(body(25, d))),
  sessionSetupResponse: onlyWireErrors((d) => decodeSessionSetupResponse(body(9, d))),
  errorResponse: onlyWireErrors((d) => decodeErrorResponse(body(9, d))),
  symbolicLinkErrorResponse: onlyWireErrors((d) =>
    decodeSymbolicLinkErrorResponse(Buffer.concat([d.subarray(0, 4), u32(SYMLINK_ERROR_TAG), d.subarray(4)])),
  ),
  shareRedirectErrorContext: onlyWireErrors(decodeShareRedirectErrorContext),
  transformHeader: onlyWireErrors((d) => decodeTransformHeader(Buffer.concat([u32(SMB2_TRANSFORM_PROTOCOL_ID), d]))),
  compressionTransform: onlyWireErrors((d) => decodeCompressionTransform(Buffer.concat([u32(SMB2_COMPRESSION_PROTOCOL_ID), d]))),
  smb1Negotiate: onlyWireErrors((d) => decodeSmb1Negotiate(Buffer.concat([u32(SMB1_PROTOCOL_ID), Buffer.of(SMB1_COM_NEGOTIATE), d]))),
};

// Helpers shared by the tests of these codecs.

/** Hex with any whitespace, as captures are laid out in the tests. */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** fc.record with an ordinary prototype, so that deepStrictEqual can compare it with decoded objects. */
export const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(model, { noNullPrototype: true });

/**
 * Valid messages with one to eight bytes at or after `from` overwritten, and sometimes cut short,
 * for the "decodes or throws a WireError" properties of the tests.
 */
export function mutated(valid: fc.Arbitrary<Buffer>, from = 0): fc.Arbitrary<Buffer> {
  const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 });
  return fc.tuple(valid, edits, fc.option(fc.nat())).map(([bytes, changes, cut]) => {
    const out = Buffer.from(bytes);
    const span = out.length - from;
    if (span > 0) for (const [i, v] of changes) out[from + (i % span)] = v;
    return cut === null ? out : out.subarray(0, cut % (out.length + 1));
  });
}

/** Property: every mutation of a `valid` message decodes or throws a WireError. */
export function assertMutationsTyped(
  decode: (b: Buffer) => unknown,
  valid: fc.Arbitrary<Buffer>,
  what: string,
  from = 0,
  numRuns = 1000,
): void {
  fc.assert(fc.property(mutated(valid, from), (b) => assertOnlyWireErrors(() => decode(b), what)), { numRuns });
}

/** assert.throws predicate: a WireError whose message matches; with `statusless`, also one that ends the connection. */
export const wireError =
  (pattern: RegExp, statusless = false) =>
  (e: unknown): boolean =>
    e instanceof WireError && pattern.test(e.message) && (!statusless || e.status === undefined);

/** assert.throws predicate: an encoder refused its input. */
export const encodeError = (e: unknown): boolean => e instanceof WireError && e.code === ErrorCode.WIRE_ENCODE;
