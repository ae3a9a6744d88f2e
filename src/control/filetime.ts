/** FILETIME (MS-DTYP 2.3.3): 100-nanosecond intervals since 1601-01-01 UTC. */
const EPOCH_DIFF_MS = 11644473600000n;

/** The FILETIME of a Unix time in milliseconds. */
export function fileTime(unixMs: number): bigint {
  return (BigInt(Math.floor(unixMs)) + EPOCH_DIFF_MS) * 10000n;
}

export function toFiletime(d: Date): bigint {
  return fileTime(d.getTime());
}
