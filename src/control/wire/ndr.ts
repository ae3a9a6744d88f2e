/**
 * NDR 2.0 transfer syntax (C706 chapter 14), little-endian, for the stubs of the RPC interfaces
 * the DSR serves. Alignment is natural and relative to the start of the stub (C706 14.2.2).
 *
 * Pointers follow the NDR ordering rule (C706 14.3.12.3): an embedded pointer is written as a
 * referent id in place and its pointee is deferred until the construct that embeds it is
 * complete; pointees that themselves hold pointers have their own pointees written right after
 * them (depth first, as MIDL and pidl do). Callers mark the end of each top-level parameter
 * with flush(). A top-level [ref] pointer has no wire form: write or read its pointee directly.
 */
import { ErrorCode, WireError } from '../errors.js';
import { Reader, Writer, encodeUtf16 } from './cursor.js';
import { NtStatus } from './ntstatus.js';

/** First referent id, as Windows and Samba number them; each further pointer adds 4. */
const FIRST_REFERENT = 0x00020000;

function ndrError(what: string): WireError {
  return new WireError(ErrorCode.WIRE_BAD_FIELD, what, NtStatus.STATUS_INVALID_PARAMETER);
}

export class NdrWriter {
  private readonly w = new Writer(256);
  private deferred: (() => void)[] = [];
  private referent = FIRST_REFERENT;

  align(n: number): this {
    this.w.align(n);
    return this;
  }
  u8(v: number): this {
    this.w.u8(v);
    return this;
  }
  u16(v: number): this {
    this.w.align(2).u16(v);
    return this;
  }
  u32(v: number): this {
    this.w.align(4).u32(v);
    return this;
  }
  i32(v: number): this {
    return this.u32(v >>> 0);
  }

  /**
   * A [unique] pointer (or an embedded [ref] one, which is never null): its referent id now,
   * `pointee` once the embedding construct is done (flush()).
   */
  pointer<T>(value: T | null, pointee: (v: T) => void): this {
    if (value === null) return this.u32(0);
    this.u32(this.referent);
    this.referent += 4;
    this.deferred.push(() => pointee(value));
    return this;
  }

  /** A [string] wchar_t* pointee: MaximumCount, Offset 0, ActualCount, then the characters and a NUL. */
  wstring(s: string): this {
    const chars = encodeUtf16(`${s}\0`);
    const count = chars.length / 2;
    this.u32(count).u32(0).u32(count);
    this.w.bytes(chars);
    return this;
  }

  /** A conformant array: MaximumCount, then each element (whose own pointees are deferred). */
  conformantArray<T>(items: readonly T[], element: (v: T) => void): this {
    this.u32(items.length);
    for (const v of items) element(v);
    return this;
  }

  /** A conformant array of bytes ([size_is(n)] unsigned char*). */
  byteArray(b: Buffer): this {
    this.u32(b.length);
    this.w.bytes(b);
    return this;
  }

  /** Writes every deferred pointee, depth first: call after each top-level parameter. */
  flush(): this {
    const pending = this.deferred;
    this.deferred = [];
    for (const write of pending) {
      write();
      this.flush();
    }
    return this;
  }

  finish(): Buffer {
    return this.flush().w.finish();
  }
}

export class NdrReader {
  private readonly r: Reader;
  private deferred: (() => void)[] = [];

  constructor(stub: Buffer) {
    this.r = new Reader(stub);
  }

  get remaining(): number {
    return this.r.remaining;
  }

  align(n: number): void {
    this.r.alignTo(n);
  }
  u8(what: string): number {
    return this.r.u8(what);
  }
  u16(what: string): number {
    this.r.alignTo(2);
    return this.r.u16(what);
  }
  u32(what: string): number {
    this.r.alignTo(4);
    return this.r.u32(what);
  }
  i32(what: string): number {
    return this.u32(what) | 0;
  }

  /**
   * Reads a referent id; a non-null pointer's `pointee` runs at the next flush(), in the order the
   * writer wrote them. Returns whether the pointer was non-null.
   */
  pointer(what: string, pointee: () => void): boolean {
    if (this.u32(`${what} referent`) === 0) return false;
    this.deferred.push(pointee);
    return true;
  }

  /**
   * A [string] wchar_t* pointee. Counts are checked against the bytes left before anything is
   * sliced, so a hostile MaximumCount can never cause an allocation.
   */
  wstring(what: string): string {
    const max = this.u32(`${what} MaximumCount`);
    const offset = this.u32(`${what} Offset`);
    const actual = this.u32(`${what} ActualCount`);
    if (max > this.remaining / 2) throw ndrError(`${what}: MaximumCount ${max} exceeds the ${this.remaining} bytes left`);
    if (offset !== 0) throw ndrError(`${what}: Offset ${offset}, expected 0`);
    if (actual === 0 || actual > max) throw ndrError(`${what}: ActualCount ${actual} outside 1..${max}`);
    const chars = this.r.bytes(actual * 2, what);
    if (chars.readUInt16LE(chars.length - 2) !== 0) throw ndrError(`${what} is not NUL-terminated`);
    return chars.subarray(0, chars.length - 2).toString('utf16le');
  }

  /** A conformant array whose elements take at least `minElementSize` bytes each on the wire. */
  conformantArray<T>(what: string, minElementSize: number, element: () => T): T[] {
    const count = this.u32(`${what} MaximumCount`);
    if (count * minElementSize > this.remaining) throw ndrError(`${what}: MaximumCount ${count} exceeds the ${this.remaining} bytes left`);
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(element());
    return out;
  }

  byteArray(what: string): Buffer {
    const count = this.u32(`${what} MaximumCount`);
    return this.r.copy(count, what);
  }

  /** Reads every deferred pointee, depth first: call after each top-level parameter. */
  flush(): void {
    const pending = this.deferred;
    this.deferred = [];
    for (const read of pending) {
      read();
      this.flush();
    }
  }
}

/**
 * Flat structures of 32-bit scalars and embedded [unique] pointers, described once as a field
 * list and used by both directions (every MS-SRVS info level is one of these).
 * 'wstring' is a [string] wchar_t*, 'bytes' a [size_is(previous field)] unsigned char*.
 */
export type NdrFieldKind = 'u32' | 'i32' | 'wstring' | 'bytes';
export type NdrFields = readonly (readonly [name: string, kind: NdrFieldKind])[];
type FieldValue<K extends NdrFieldKind> = K extends 'u32' | 'i32' ? number : K extends 'wstring' ? string | null : Buffer | null;
export type NdrStruct<F extends NdrFields> = { [E in F[number] as E[0]]: FieldValue<E[1]> };
type AnyStruct = Record<string, number | string | Buffer | null>;

/** Bytes a struct's scalars take on the wire: every field is 4 bytes (a value or a referent id). */
export function structWireSize(fields: NdrFields): number {
  return 4 * fields.length;
}

export function writeStruct<F extends NdrFields>(w: NdrWriter, fields: F, value: NdrStruct<F>): void {
  const v = value as AnyStruct;
  const invalid = (name: string, want: string) => new WireError(ErrorCode.WIRE_ENCODE, `${name} must be ${want}`);
  let previous = 0;
  w.align(4);
  for (const [name, kind] of fields) {
    const x = v[name];
    if (kind === 'u32' || kind === 'i32') {
      if (typeof x !== 'number') throw invalid(name, 'a number');
      previous = x;
      if (kind === 'u32') w.u32(x);
      else w.i32(x);
    } else if (kind === 'wstring') {
      if (x !== null && typeof x !== 'string') throw invalid(name, 'a string or null');
      w.pointer(x, (s) => w.wstring(s));
    } else {
      if (x !== null && !(Buffer.isBuffer(x) && x.length === previous)) {
        throw invalid(name, `null or a Buffer of ${previous} bytes (its size_is field)`);
      }
      w.pointer(x, (b) => w.byteArray(b));
    }
  }
}

/** Reads a struct; its pointer fields are null until the reader's next flush() fills them. */
export function readStruct<F extends NdrFields>(r: NdrReader, fields: F): NdrStruct<F> {
  const out: AnyStruct = {};
  let previous = 0;
  for (const [name, kind] of fields) {
    if (kind === 'u32') previous = out[name] = r.u32(name);
    else if (kind === 'i32') previous = out[name] = r.i32(name);
    else if (kind === 'wstring') {
      out[name] = null;
      r.pointer(name, () => (out[name] = r.wstring(name)));
    } else {
      out[name] = null;
      const size = previous;
      r.pointer(name, () => {
        const b = r.byteArray(name);
        if (b.length !== size) throw ndrError(`${name}: ${b.length} bytes, but its size_is field says ${size}`);
        out[name] = b;
      });
    }
  }
  return out as NdrStruct<F>;
}
