/** SMB2_FILEID (MS-SMB2 2.2.14.1): two 8-byte halves, Persistent then Volatile. */
import type { Reader, Writer } from '../cursor.js';

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
