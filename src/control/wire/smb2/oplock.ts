/**
 * OPLOCK_BREAK (MS-SMB2 2.2.23-2.2.25). One command carries three layouts, told apart by
 * StructureSize: 24 for oplock breaks (notification 2.2.23.1, acknowledgment 2.2.24.1,
 * response 2.2.25.1), 44 for the lease break notification (2.2.23.2) and 36 for the lease
 * break acknowledgment (2.2.24.2) and response (2.2.25.2). Notifications are sent with
 * MessageId 0xFFFFFFFFFFFFFFFF (UNSOLICITED_MESSAGE_ID).
 */
import { ErrorCode, WireError } from '../../errors.js';
import { Reader } from '../cursor.js';
import { NtStatus } from '../ntstatus.js';
import { SMB2_HEADER_SIZE } from './constants.js';
import { writeGuid } from './create-contexts.js';
import { type FileId, readFileId, writeFileId } from './file-id.js';
import { bodyReader, bodyWriter, finishBody } from './message.js';

/** MS-SMB2 2.2.23.2 Flags. */
export const LeaseBreakNotificationFlags = {
  SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED: 0x01,
} as const;

/** MS-SMB2 2.2.23.1 / 2.2.24.1 / 2.2.25.1: the oplock break notification, acknowledgment and response share this layout. */
export interface OplockBreak {
  /** OplockLevel (create.ts): the level broken to, acknowledged or granted. */
  OplockLevel: number;
  Reserved: number;
  Reserved2: number;
  FileId: FileId;
}

const OPLOCK_BREAK_SIZE = 24;
const LEASE_BREAK_NOTIFICATION_SIZE = 44;
const LEASE_BREAK_ACK_SIZE = 36;

export function decodeOplockBreak(msg: Buffer): OplockBreak {
  const r = bodyReader(msg, OPLOCK_BREAK_SIZE, 'OPLOCK_BREAK');
  return { OplockLevel: r.u8(), Reserved: r.u8(), Reserved2: r.u32(), FileId: readFileId(r) };
}

export function encodeOplockBreak(b: OplockBreak): Buffer {
  const w = bodyWriter(OPLOCK_BREAK_SIZE);
  w.u8(b.OplockLevel).u8(b.Reserved).u32(b.Reserved2);
  writeFileId(w, b.FileId);
  return finishBody(w);
}

/** MS-SMB2 2.2.23.2 Lease Break Notification. Lease states are LeaseState bits (create-contexts.ts). */
export interface LeaseBreakNotification {
  /** SMB 3.x: the lease's new epoch; reserved in 2.1. */
  NewEpoch: number;
  Flags: number;
  LeaseKey: Buffer;
  CurrentLeaseState: number;
  NewLeaseState: number;
  /** Reserved, 0. */
  BreakReason: number;
  /** Reserved, 0. */
  AccessMaskHint: number;
  /** Reserved, 0. */
  ShareMaskHint: number;
}

export function decodeLeaseBreakNotification(msg: Buffer): LeaseBreakNotification {
  const r = bodyReader(msg, LEASE_BREAK_NOTIFICATION_SIZE, 'lease break notification');
  return {
    NewEpoch: r.u16(),
    Flags: r.u32(),
    LeaseKey: r.copy(16),
    CurrentLeaseState: r.u32(),
    NewLeaseState: r.u32(),
    BreakReason: r.u32(),
    AccessMaskHint: r.u32(),
    ShareMaskHint: r.u32(),
  };
}

export function encodeLeaseBreakNotification(n: LeaseBreakNotification): Buffer {
  const w = bodyWriter(LEASE_BREAK_NOTIFICATION_SIZE);
  writeGuid(w.u16(n.NewEpoch).u32(n.Flags), n.LeaseKey, 'LeaseKey');
  w.u32(n.CurrentLeaseState).u32(n.NewLeaseState).u32(n.BreakReason).u32(n.AccessMaskHint).u32(n.ShareMaskHint);
  return finishBody(w);
}

/** MS-SMB2 2.2.24.2 Lease Break Acknowledgment and 2.2.25.2 Lease Break Response (same layout). */
export interface LeaseBreakAck {
  Reserved: number;
  /** Reserved, 0. */
  Flags: number;
  LeaseKey: Buffer;
  LeaseState: number;
  /** Reserved, 0. */
  LeaseDuration: bigint;
}

export function decodeLeaseBreakAck(msg: Buffer): LeaseBreakAck {
  const r = bodyReader(msg, LEASE_BREAK_ACK_SIZE, 'lease break acknowledgment');
  return { Reserved: r.u16(), Flags: r.u32(), LeaseKey: r.copy(16), LeaseState: r.u32(), LeaseDuration: r.u64() };
}

export function encodeLeaseBreakAck(a: LeaseBreakAck): Buffer {
  const w = bodyWriter(LEASE_BREAK_ACK_SIZE);
  writeGuid(w.u16(a.Reserved).u32(a.Flags), a.LeaseKey, 'LeaseKey');
  w.u32(a.LeaseState).u64(a.LeaseDuration);
  return finishBody(w);
}

/** Any OPLOCK_BREAK body; whether it is a notification, an acknowledgment or a response is in the header. */
export type OplockBreakMessage =
  | { kind: 'oplock'; body: OplockBreak }
  | { kind: 'leaseBreakNotification'; body: LeaseBreakNotification }
  | { kind: 'leaseBreakAck'; body: LeaseBreakAck };

/** Decodes an OPLOCK_BREAK message by its StructureSize. */
export function decodeOplockBreakMessage(msg: Buffer): OplockBreakMessage {
  const size = new Reader(msg, SMB2_HEADER_SIZE).u16('OPLOCK_BREAK StructureSize');
  switch (size) {
    case OPLOCK_BREAK_SIZE:
      return { kind: 'oplock', body: decodeOplockBreak(msg) };
    case LEASE_BREAK_NOTIFICATION_SIZE:
      return { kind: 'leaseBreakNotification', body: decodeLeaseBreakNotification(msg) };
    case LEASE_BREAK_ACK_SIZE:
      return { kind: 'leaseBreakAck', body: decodeLeaseBreakAck(msg) };
    default:
      throw new WireError(ErrorCode.WIRE_BAD_FIELD, `OPLOCK_BREAK StructureSize ${size} is none of 24, 36, 44`, NtStatus.STATUS_INVALID_PARAMETER);
  }
}

export function encodeOplockBreakMessage(m: OplockBreakMessage): Buffer {
  switch (m.kind) {
    case 'oplock':
      return encodeOplockBreak(m.body);
    case 'leaseBreakNotification':
      return encodeLeaseBreakNotification(m.body);
    case 'leaseBreakAck':
      return encodeLeaseBreakAck(m.body);
  }
}
