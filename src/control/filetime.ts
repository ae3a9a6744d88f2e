/** FILETIME (MS-DTYP 2.3.3): 100-nanosecond intervals since 1601-01-01 UTC. */
const EPOCH_DIFF_MS = 11644473600000n;

export function toFiletime(d: Date): bigint {
  return (BigInt(d.getTime()) + EPOCH_DIFF_MS) * 10000n;
}
