/**
 * The credential table (source paragraphs 0057, 0061): the users the DSR authenticates itself,
 * with the NT one-way function of each password (MS-NLMP 3.3.1 NTOWFv1 = MD4(UTF-16LE)).
 * NTLMv2 needs nothing more to verify a client, and the DSR can answer a server's challenge
 * with it on the client's behalf. Passwords themselves are never stored.
 *
 * On disk: JSON, mode 0600 inside a 0700 directory, replaced atomically (write, fsync,
 * rename). A table readable by others is refused, not silently used.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import md4 from 'js-md4';
import { DsrError, ErrorCode, errorMessage } from '../errors.js';

/** MS-NLMP 3.3.1 NTOWFv1: MD4 of the UTF-16LE password. */
export function ntOwfV1(password: string): Buffer {
  return Buffer.from(md4.arrayBuffer(Buffer.from(password, 'utf16le')));
}

export interface CredentialEntry {
  /** The name as the administrator spelled it; lookups are case-insensitive. */
  name: string;
  /** NTOWFv1 of the password, 16 bytes. */
  ntHash: Buffer;
  created: string;
}

interface FileFormat {
  version: 1;
  users: { name: string; ntHash: string; created: string }[];
}

// Characters Windows refuses in user names (MS-SAMR 3.1.5.8 style), plus control characters.
const BAD_NAME = /[\\/[\]:;|=,+*?<>@"\x00-\x1f]/;

export function checkUserName(name: string): void {
  if (name.length < 1 || name.length > 64 || BAD_NAME.test(name) || name.trim() !== name) {
    throw new DsrError(ErrorCode.USAGE, `invalid user name ${JSON.stringify(name)}: 1-64 characters, none of \\ / [ ] : ; | = , + * ? < > @ " or control characters`);
  }
}

export class CredentialTable {
  private users = new Map<string, CredentialEntry>();
  /** mtime + size of the file when last read, to notice `dsr user add` while serving. */
  private stamp = '';

  constructor(readonly path: string) {}

  /** Loads the table; a missing file is an empty table. */
  static load(path: string): CredentialTable {
    const t = new CredentialTable(path);
    t.reload();
    return t;
  }

  private fileStamp(): string | undefined {
    try {
      const st = statSync(this.path);
      if (st.mode & 0o077) {
        throw new DsrError(ErrorCode.CREDENTIALS, `credential table ${this.path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${this.path}`);
      }
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Re-reads the file if it changed since the last read. */
  reload(): void {
    const stamp = this.fileStamp();
    if (stamp === undefined) {
      this.users.clear();
      this.stamp = '';
      return;
    }
    if (stamp === this.stamp) return;
    let doc: FileFormat;
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8')) as FileFormat;
    } catch (e) {
      throw new DsrError(ErrorCode.CREDENTIALS, `credential table ${this.path} is unreadable: ${errorMessage(e)}`, { cause: e });
    }
    if (doc?.version !== 1 || !Array.isArray(doc.users)) {
      throw new DsrError(ErrorCode.CREDENTIALS, `credential table ${this.path} has an unknown format`);
    }
    const users = new Map<string, CredentialEntry>();
    for (const u of doc.users) {
      if (typeof u?.name !== 'string' || typeof u.ntHash !== 'string' || !/^[0-9a-f]{32}$/.test(u.ntHash)) {
        throw new DsrError(ErrorCode.CREDENTIALS, `credential table ${this.path} has a malformed entry`);
      }
      users.set(u.name.toLowerCase(), { name: u.name, ntHash: Buffer.from(u.ntHash, 'hex'), created: String(u.created ?? '') });
    }
    this.users = users;
    this.stamp = stamp;
  }

  lookup(name: string): CredentialEntry | undefined {
    return this.users.get(name.toLowerCase());
  }

  list(): CredentialEntry[] {
    return [...this.users.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Adds a user or replaces the password of an existing one. Returns true when added. */
  set(name: string, password: string, now = new Date()): boolean {
    checkUserName(name);
    if (password.length === 0) throw new DsrError(ErrorCode.USAGE, 'the password must not be empty');
    const existing = this.lookup(name);
    this.users.set(name.toLowerCase(), { name: existing?.name ?? name, ntHash: ntOwfV1(password), created: existing?.created ?? now.toISOString() });
    return existing === undefined;
  }

  /** Returns false when there was no such user. */
  delete(name: string): boolean {
    return this.users.delete(name.toLowerCase());
  }

  /** Writes the table atomically with mode 0600. */
  save(): void {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const doc: FileFormat = { version: 1, users: this.list().map((u) => ({ name: u.name, ntHash: u.ntHash.toString('hex'), created: u.created })) };
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(doc, null, 2) + '\n');
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      unlinkSync(tmp);
      throw new DsrError(ErrorCode.CREDENTIALS, `cannot write ${tmp}: ${errorMessage(e)}`, { cause: e });
    }
    closeSync(fd);
    renameSync(tmp, this.path);
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
    this.stamp = this.fileStamp() ?? '';
  }
}
