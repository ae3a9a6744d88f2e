/** LOCK (MS-SMB2 2.2.26, 2.2.26.1, 2.2.27). */
import { ErrorCode, WireError } from '../../errors.js';
import { NtStatus } from '../ntstatus.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody } from './message.js';
import { decodeReservedBody, encodeReservedBody, type ReservedBody } from './simple.js';

/** MS-SMB2 2.2.26.1 Flags. */
export const LockFlags = {
  SMB2_LOCKFLAG_SHARED_LOCK: 0x00000001,
  SMB2_LOCKFLAG_EXCLUSIVE_LOCK: 0x00000002,
  SMB2_LOCKFLAG_UNLOCK: 0x00000004,
  SMB2_LOCKFLAG_FAIL_IMMEDIATELY: 0x00000010,
} as const;

/** MS-SMB2 2.2.26.1 SMB2_LOCK_ELEMENT. */
export interface LockElement {
  Offset: bigint;
  Length: bigint;
  Flags: number;
  Reserved: number;
}

/** MS-SMB2 2.2.26 SMB2 LOCK Request. LockCount is Locks.length. */
export interface LockRequest {
  /** Low 4 bits of the 32-bit field (SMB 2.1+; the whole field is reserved in 2.0.2). */
  LockSequenceNumber: number;
  /** High 28 bits of the same field. */
  LockSequenceIndex: number;
  FileId: FileId;
  Locks: LockElement[];
}

const LOCK_ELEMENT_SIZE = 24;
/** The StructureSize counts one lock element, whatever LockCount says. */
const LOCK_REQUEST_SIZE = 48;

export function decodeLockRequest(msg: Buffer): LockRequest {
  const r = bodyReader(msg, LOCK_REQUEST_SIZE, 'LOCK request');
  const LockCount = r.u16();
  const sequence = r.u32();
  const FileId = readFileId(r);
  if (LockCount === 0 || LockCount * LOCK_ELEMENT_SIZE > r.remaining) {
    throw new WireError(ErrorCode.WIRE_BAD_FIELD, `LOCK LockCount ${LockCount} does not fit ${r.remaining} bytes`, NtStatus.STATUS_INVALID_PARAMETER);
  }
  const Locks: LockElement[] = [];
  for (let i = 0; i < LockCount; i++) Locks.push({ Offset: r.u64(), Length: r.u64(), Flags: r.u32(), Reserved: r.u32() });
  return { LockSequenceNumber: sequence & 0xf, LockSequenceIndex: sequence >>> 4, FileId, Locks };
}

export function encodeLockRequest(req: LockRequest): Buffer {
  const n = req.Locks.length;
  if (n === 0 || n > 0xffff) throw new WireError(ErrorCode.WIRE_ENCODE, `a LOCK request needs 1..65535 locks, got ${n}`);
  if (req.LockSequenceNumber >>> 4 !== 0 || req.LockSequenceIndex >>> 28 !== 0) {
    const { LockSequenceNumber, LockSequenceIndex } = req;
    throw new WireError(ErrorCode.WIRE_ENCODE, `LockSequenceNumber ${LockSequenceNumber} / LockSequenceIndex ${LockSequenceIndex} out of range`);
  }
  const w = bodyWriter(LOCK_REQUEST_SIZE);
  w.u16(n).u32(req.LockSequenceNumber | (req.LockSequenceIndex << 4));
  writeFileId(w, req.FileId);
  for (const l of req.Locks) w.u64(l.Offset).u64(l.Length).u32(l.Flags).u32(l.Reserved);
  return finishBody(w);
}

/** MS-SMB2 2.2.27 SMB2 LOCK Response: a reserved body. */
export type LockResponse = ReservedBody;

export function decodeLockResponse(msg: Buffer): LockResponse {
  return decodeReservedBody(msg, 'LOCK response');
}

export const encodeLockResponse = encodeReservedBody;
