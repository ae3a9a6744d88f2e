/** SMB2_FILEID (MS-SMB2 2.2.14.1): two 8-byte halves, Persistent then Volatile. */
import type { Reader, Writer } from '../cursor.js';
import { Smb2Command } from './constants.js';

export const FILE_ID_SIZE = 16;

export interface FileId {
  Persistent: bigint;
  Volatile: bigint;
}

export function readFileId(r: Reader, what = 'FileId'): FileId {
  return { Persistent: r.u64(`${what}.Persistent`), Volatile: r.u64(`${what}.Volatile`) };
}

export function writeFileId(w: Writer, id: FileId): void {
  w.u64(id.Persistent).u64(id.Volatile);
}

/** The FileId of a related compound request that uses the previous operation's handle (MS-SMB2 3.2.4.1.4). */
export const RELATED_FILE_ID: FileId = { Persistent: 0xffffffffffffffffn, Volatile: 0xffffffffffffffffn };

export function fileIdKey(id: FileId): string {
  return `${id.Persistent.toString(16)}:${id.Volatile.toString(16)}`;
}

/**
 * Where a request's FileId sits, as a body offset, for the commands that name one (MS-SMB2
 * 2.2.15 CLOSE, 2.2.17 FLUSH, 2.2.19 READ, 2.2.21 WRITE, 2.2.24.1 oplock break acknowledgment,
 * 2.2.26 LOCK, 2.2.31 IOCTL, 2.2.33 QUERY_DIRECTORY, 2.2.35 CHANGE_NOTIFY, 2.2.37 QUERY_INFO,
 * 2.2.39 SET_INFO), indexed by Command. A forwarding path rewrites it in place.
 */
export const REQUEST_FILE_ID_AT: readonly (number | undefined)[] = (() => {
  const t: (number | undefined)[] = [];
  t[Smb2Command.CLOSE] = 8;
  t[Smb2Command.FLUSH] = 8;
  t[Smb2Command.READ] = 16;
  t[Smb2Command.WRITE] = 16;
  t[Smb2Command.LOCK] = 8;
  t[Smb2Command.IOCTL] = 8;
  t[Smb2Command.QUERY_DIRECTORY] = 8;
  t[Smb2Command.CHANGE_NOTIFY] = 8;
  t[Smb2Command.QUERY_INFO] = 24;
  t[Smb2Command.SET_INFO] = 16;
  t[Smb2Command.OPLOCK_BREAK] = 8; // the oplock form; a lease acknowledgment has none
  return t;
})();

/** Body offset of FileId in a CREATE response (MS-SMB2 2.2.14), an IOCTL response (2.2.32) and an oplock break (2.2.23.1, 2.2.25.1). */
export const CREATE_RESPONSE_FILE_ID_AT = 64;
export const IOCTL_RESPONSE_FILE_ID_AT = 8;
export const OPLOCK_BREAK_FILE_ID_AT = 8;

export function isRelatedFileId(id: FileId): boolean {
  return id.Persistent === RELATED_FILE_ID.Persistent && id.Volatile === RELATED_FILE_ID.Volatile;
}

export function getFileId(msg: Buffer, at: number): FileId {
  return { Persistent: msg.readBigUInt64LE(at), Volatile: msg.readBigUInt64LE(at + 8) };
}

export function setFileId(msg: Buffer, at: number, id: FileId): void {
  msg.writeBigUInt64LE(id.Persistent, at);
  msg.writeBigUInt64LE(id.Volatile, at + 8);
}

export function sameFileId(a: FileId, b: FileId): boolean {
  return a.Persistent === b.Persistent && a.Volatile === b.Volatile;
}
