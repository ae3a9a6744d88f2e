/** A child process's stdout, line by line, for tests that steer a worker over stdin/stdout. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** `next()` resolves with the child's next stdout line; it fails, with the child's stderr, when the child ended first. `stderr()`: what it wrote there so far. */
export function childLines(p: ChildProcess, what: string): { next: () => Promise<string>; stderr: () => string } {
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
  return {
    next: async () => {
      const r = await lines.next();
      assert.ok(!r.done, `${what} ended early: ${err}`);
      return r.value as string;
    },
    stderr: () => err,
  };
}
