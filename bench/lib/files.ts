/** Random test files and their sha256, for the benches' transfers (8 MiB at a time, never whole in memory). */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';

const CHUNK = 8 << 20;

/** Writes `bytes` random bytes to `file` (mode 0644) and returns their sha256 (hex). */
export function writeRandomFile(file: string, bytes: number): string {
  const hash = createHash('sha256');
  const fd = openSync(file, 'w', 0o644);
  try {
    for (let left = bytes; left > 0; left -= CHUNK) {
      const chunk = randomBytes(Math.min(CHUNK, left));
      hash.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
