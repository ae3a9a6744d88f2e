/**
 * Reads a password the way `dsr user add` must: never from argv (it would show in `ps` and
 * shell history). From a terminal it prompts twice without echo; otherwise it reads the first
 * line of standard input.
 */
import { createInterface } from 'node:readline';
import { DsrError, ErrorCode } from '../control/errors.js';

export async function readPassword(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) return readFirstLine();
  const first = await promptHidden(`${prompt}: `);
  const again = await promptHidden(`${prompt} (again): `);
  if (first !== again) throw new DsrError(ErrorCode.USAGE, 'the passwords do not match');
  return first;
}

async function readFirstLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new DsrError(ErrorCode.USAGE, 'no password on standard input');
  return line;
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    // Echo nothing but the prompt itself while the user types.
    const out = rl as unknown as { _writeToOutput: (s: string) => void };
    let prompted = false;
    out._writeToOutput = (s: string) => {
      if (!prompted) {
        process.stderr.write(s);
        prompted = true;
      }
    };
    rl.question(question, (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}
