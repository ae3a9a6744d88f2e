/**
 * Framing of the two SMB 3.x transforms that wrap whole messages: TRANSFORM_HEADER (encryption,
 * MS-SMB2 2.2.41) and COMPRESSION_TRANSFORM_HEADER (2.2.42, unchained and chained). No crypto and
 * no compression algorithm here. A malformed transform leaves no SMB2 header to answer, so the
 * connection is dropped (3.3.5.2.1): these WireErrors carry no status.
 */
import { ErrorCode, WireError } from '../../errors.js';
import { Reader, Writer } from '../cursor.js';
import { SMB2_COMPRESSION_PROTOCOL_ID, SMB2_TRANSFORM_PROTOCOL_ID } from './constants.js';
import { CompressionAlgorithm } from './negotiate.js';

export const TRANSFORM_HEADER_SIZE = 52;

/**
 * Byte offsets in a TRANSFORM_HEADER. The AEAD additional data is the header from Nonce to its
 * end (MS-SMB2 3.1.4.3): `frame.subarray(TransformHdr.Nonce, TRANSFORM_HEADER_SIZE)`.
 */
export const TransformHdr = {
  ProtocolId: 0,
  Signature: 4,
  Nonce: 20,
  OriginalMessageSize: 36,
  Reserved: 40,
  Flags: 42,
  SessionId: 44,
} as const;

/** MS-SMB2 2.2.41 Flags (3.1.1); in 3.0/3.0.2 the field is EncryptionAlgorithm, where 0x0001 is AES-128-CCM. */
export const TransformFlags = { ENCRYPTED: 0x0001 } as const;

/** MS-SMB2 2.2.41 SMB2 TRANSFORM_HEADER. */
export interface TransformHeader {
  /** 16 bytes: the AEAD tag. */
  Signature: Buffer;
  /** 16 bytes: an 11-byte (CCM) or 12-byte (GCM) nonce, zero-padded. */
  Nonce: Buffer;
  /** Size of the encrypted message that follows the header. */
  OriginalMessageSize: number;
  Reserved: number;
  /** Flags (3.1.1) or EncryptionAlgorithm (3.0, 3.0.2). */
  Flags: number;
  SessionId: bigint;
}

function checkProtocolId(frame: Buffer, expected: number, size: number, what: string): void {
  if (frame.length < size) throw new WireError(ErrorCode.WIRE_TRUNCATED, `${what} of ${frame.length} bytes is shorter than ${size}`);
  const id = frame.readUInt32LE(0);
  if (id !== expected) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `${what} ProtocolId 0x${id.toString(16)} is not 0x${expected.toString(16)}`);
  }
}

function checkBytes(b: Buffer, n: number, what: string): Buffer {
  if (b.length !== n) throw new WireError(ErrorCode.WIRE_ENCODE, `${what} must be ${n} bytes, got ${b.length}`);
  return b;
}

/**
 * Decodes the header of an encrypted frame; the ciphertext is `frame.subarray(TRANSFORM_HEADER_SIZE)`
 * and must be exactly OriginalMessageSize bytes (AES-CCM/GCM keep the plaintext length).
 */
export function decodeTransformHeader(frame: Buffer): TransformHeader {
  checkProtocolId(frame, SMB2_TRANSFORM_PROTOCOL_ID, TRANSFORM_HEADER_SIZE, 'TRANSFORM_HEADER');
  const r = new Reader(frame, TransformHdr.Signature);
  const h: TransformHeader = {
    Signature: r.copy(16),
    Nonce: r.copy(16),
    OriginalMessageSize: r.u32(),
    Reserved: r.u16(),
    Flags: r.u16(),
    SessionId: r.u64(),
  };
  if (h.OriginalMessageSize !== frame.length - TRANSFORM_HEADER_SIZE) {
    throw new WireError(
      ErrorCode.WIRE_BAD_FIELD,
      `OriginalMessageSize ${h.OriginalMessageSize} but ${frame.length - TRANSFORM_HEADER_SIZE} encrypted bytes follow`,
    );
  }
  return h;
}

/** The 52 header bytes; the caller appends the ciphertext. */
export function encodeTransformHeader(h: TransformHeader): Buffer {
  const w = new Writer(TRANSFORM_HEADER_SIZE);
  w.u32(SMB2_TRANSFORM_PROTOCOL_ID).bytes(checkBytes(h.Signature, 16, 'Signature')).bytes(checkBytes(h.Nonce, 16, 'Nonce'));
  w.u32(h.OriginalMessageSize).u16(h.Reserved).u16(h.Flags).u64(h.SessionId);
  return w.finish();
}

/** MS-SMB2 2.2.42 Flags. */
export const CompressionFlags = { NONE: 0x0000, CHAINED: 0x0001 } as const;

/**
 * MS-SMB2 2.2.42.1 SMB2_COMPRESSION_TRANSFORM_HEADER_UNCHAINED and what follows it. Flags is
 * NONE and Offset is the length of UncompressedData.
 */
export interface CompressionTransformUnchained {
  /** Size of the segment once decompressed. */
  OriginalCompressedSegmentSize: number;
  CompressionAlgorithm: number;
  /** The leading bytes of the message sent as they are (MS-SMB2 3.1.4.4). */
  UncompressedData: Buffer;
  CompressedData: Buffer;
}

/** MS-SMB2 2.2.42.2.1 SMB2_COMPRESSION_CHAINED_PAYLOAD_HEADER and its payload; Length is implied. */
export interface CompressionChainedPayload {
  CompressionAlgorithm: number;
  /** CHAINED on the first payload of the chain, NONE on the others. */
  Flags: number;
  /** Present exactly when CompressionAlgorithm is LZNT1, LZ77, LZ77+Huffman or LZ4. */
  OriginalPayloadSize?: number;
  /** Compressed bytes, raw bytes (NONE) or a Pattern_V1 payload (2.2.42.2.2). */
  Data: Buffer;
}

/** MS-SMB2 2.2.42.2 SMB2_COMPRESSION_TRANSFORM_HEADER_CHAINED and its payloads. */
export interface CompressionTransformChained {
  OriginalCompressedSegmentSize: number;
  Payloads: CompressionChainedPayload[];
}

export type CompressionTransform = CompressionTransformUnchained | CompressionTransformChained;

const COMPRESSION_HEADER_SIZE = 16;
const PAYLOAD_HEADER_SIZE = 8;

function hasOriginalPayloadSize(algorithm: number): boolean {
  return (
    algorithm === CompressionAlgorithm.LZNT1 ||
    algorithm === CompressionAlgorithm.LZ77 ||
    algorithm === CompressionAlgorithm.LZ77_HUFFMAN ||
    algorithm === CompressionAlgorithm.LZ4
  );
}

/** Decodes either form; the Flags field at offset 10 tells them apart (MS-SMB2 2.2.42). */
export function decodeCompressionTransform(frame: Buffer): CompressionTransform {
  checkProtocolId(frame, SMB2_COMPRESSION_PROTOCOL_ID, COMPRESSION_HEADER_SIZE, 'COMPRESSION_TRANSFORM_HEADER');
  const OriginalCompressedSegmentSize = frame.readUInt32LE(4);
  const flags = frame.readUInt16LE(10);
  if (flags === CompressionFlags.NONE) {
    const offset = frame.readUInt32LE(12);
    if (offset > frame.length - COMPRESSION_HEADER_SIZE) {
      throw new WireError(ErrorCode.WIRE_BAD_OFFSET, `compression Offset ${offset} past the ${frame.length}-byte frame`);
    }
    return {
      OriginalCompressedSegmentSize,
      CompressionAlgorithm: frame.readUInt16LE(8),
      UncompressedData: frame.subarray(COMPRESSION_HEADER_SIZE, COMPRESSION_HEADER_SIZE + offset),
      CompressedData: frame.subarray(COMPRESSION_HEADER_SIZE + offset),
    };
  }
  if (flags !== CompressionFlags.CHAINED) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `compression Flags 0x${flags.toString(16)} is neither NONE nor CHAINED`);
  }
  const Payloads: CompressionChainedPayload[] = [];
  // Payload headers follow one another unpadded until the end of the frame.
  for (let at = 8; at < frame.length; ) {
    if (frame.length - at < PAYLOAD_HEADER_SIZE) {
      throw new WireError(ErrorCode.WIRE_TRUNCATED, `compression payload header at ${at} is cut short`);
    }
    const algorithm = frame.readUInt16LE(at);
    const payloadFlags = frame.readUInt16LE(at + 2);
    const length = frame.readUInt32LE(at + 4);
    at += PAYLOAD_HEADER_SIZE;
    const sized = hasOriginalPayloadSize(algorithm);
    if (length > frame.length - at || (sized && length < 4)) {
      throw new WireError(ErrorCode.WIRE_BAD_FIELD, `compression payload Length ${length} at ${at - 4} is invalid`);
    }
    const data = frame.subarray(at, at + length);
    at += length;
    const base = { CompressionAlgorithm: algorithm, Flags: payloadFlags };
    Payloads.push(sized ? { ...base, OriginalPayloadSize: data.readUInt32LE(0), Data: data.subarray(4) } : { ...base, Data: data });
  }
  return { OriginalCompressedSegmentSize, Payloads };
}

export function encodeCompressionTransform(t: CompressionTransform): Buffer {
  const w = new Writer(COMPRESSION_HEADER_SIZE);
  w.u32(SMB2_COMPRESSION_PROTOCOL_ID).u32(t.OriginalCompressedSegmentSize);
  if (!('Payloads' in t)) {
    w.u16(t.CompressionAlgorithm).u16(CompressionFlags.NONE).u32(t.UncompressedData.length);
    return w.bytes(t.UncompressedData).bytes(t.CompressedData).finish();
  }
  // The first payload's Flags sits where the unchained form has its Flags: it must say CHAINED.
  if (t.Payloads[0]?.Flags !== CompressionFlags.CHAINED) {
    throw new WireError(ErrorCode.WIRE_ENCODE, 'a compression chain must start with a CHAINED payload');
  }
  for (const p of t.Payloads) {
    if (hasOriginalPayloadSize(p.CompressionAlgorithm) !== (p.OriginalPayloadSize !== undefined)) {
      throw new WireError(
        ErrorCode.WIRE_ENCODE,
        `OriginalPayloadSize must be given exactly for LZNT1, LZ77, LZ77+Huffman and LZ4 (algorithm ${p.CompressionAlgorithm})`,
      );
    }
    const sizeField = p.OriginalPayloadSize === undefined ? 0 : 4;
    w.u16(p.CompressionAlgorithm).u16(p.Flags).u32(p.Data.length + sizeField);
    if (p.OriginalPayloadSize !== undefined) w.u32(p.OriginalPayloadSize);
    w.bytes(p.Data);
  }
  return w.finish();
}
