/**
 * Runs short Python scripts against independent implementations (impacket, Samba's own
 * gensec bindings) so our NTLM and SPNEGO are checked against code we did not write. Debian's
 * python3-impacket and python3-samba live in the system interpreter, which may not be the
 * first python3 on PATH; tests skip when no interpreter has the modules.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';

const CANDIDATES = ['/usr/bin/python3', 'python3'];

/** The first interpreter that imports every module, or undefined. */
export function pythonWith(...modules: string[]): string | undefined {
  return CANDIDATES.find((py) => spawnSync(py, ['-c', modules.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore' }).status === 0);
}

/** Runs `script` with arguments; returns stdout, throws with stderr when it fails. */
export function runPython(python: string, script: string, args: string[]): string {
  const r = spawnSync(python, ['-c', script, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/**
 * A Python process spoken to one line at a time: each `send` writes a line and resolves with
 * the next line the script prints.
 */
export class PythonSession {
  private readonly lines: AsyncIterator<string>;
  private readonly child;

  constructor(python: string, script: string, args: string[]) {
    this.child = spawn(python, ['-c', script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async next(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error('python exited');
    return r.value;
  }

  async send(line: string): Promise<string> {
    this.child.stdin.write(`${line}\n`);
    return this.next();
  }

  close(): void {
    this.child.kill();
  }
}
