/**
 * Running commands for the lab: captured runs with a time limit, detached daemons, and PID
 * liveness that does not count zombies (a daemon we spawned stays a zombie until Node reaps it).
 */
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { DsrError, ErrorCode, SystemError } from '../control/errors.js';

export interface RunOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill the command (and its process group) after this long; it then reports code 124, like timeout(1). */
  timeoutMs?: number;
  /** Share our stdin/stdout/stderr (an interactive `dsr lab exec`); stdout and stderr then come back empty. */
  inherit?: boolean;
  signal?: AbortSignal;
}

export interface RunResult {
  /** The exit status; 128 + N when killed by signal N. */
  code: number;
  stdout: string;
  stderr: string;
}

export const TIMEOUT_CODE = 124;

// ip, nft, smbd and friends live in sbin, which a non-login root shell may not have on PATH.
const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin` };

/** The commands of `cmds` that are not executable anywhere on our PATH. */
export function missingCommands(cmds: readonly string[]): string[] {
  const dirs = (env.PATH ?? '').split(':').filter((d) => d !== '');
  const found = (cmd: string) =>
    dirs.some((d) => {
      try {
        accessSync(`${d}/${cmd}`, fsConstants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  return cmds.filter((c) => !found(c));
}

/** The last `lines` non-empty lines of `text`, on one line, for error messages. */
export function oneLine(text: string, lines = 6): string {
  const tail = text.split('\n').map((l) => l.trim()).filter((l) => l !== '').slice(-lines);
  return tail.length ? tail.join(' | ') : '(no output)';
}

export function commandLine(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Runs argv to completion. Only a command that cannot be started rejects; a non-zero exit resolves. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new DsrError(ErrorCode.USAGE, 'no command given'));
  return new Promise((resolve, reject) => {
    const output = opts.inherit ? 'inherit' : 'pipe';
    // An interactive command must stay in our process group so that it owns the terminal and gets
    // Ctrl-C itself; a captured one gets its own group so a time limit kills its children too.
    const child = spawn(cmd, args, {
      env,
      detached: !opts.inherit,
      stdio: [opts.input !== undefined ? 'pipe' : opts.inherit ? 'inherit' : 'ignore', output, output],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const kill = () => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(opts.inherit ? child.pid : -child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => ((timedOut = true), kill()), opts.timeoutMs);
    opts.signal?.addEventListener('abort', kill, { once: true });
    const done = () => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', kill);
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      done();
      const why = e.code === 'ENOENT' ? `${cmd} is not installed` : e.message;
      reject(new SystemError(ErrorCode.LAB, `run ${cmd}`, why, e.errno, { cause: e }));
    });
    child.stdin?.on('error', () => {
      // The command exited without reading all its input; its exit status tells the story.
    });
    child.stdin?.end(opts.input);
    child.on('close', (code, signal) => {
      done();
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `${stderr && !stderr.endsWith('\n') ? '\n' : ''}timed out after ${opts.timeoutMs} ms\n`;
      resolve({
        code: timedOut ? TIMEOUT_CODE : code ?? 128 + (signal ? constants.signals[signal] : 0),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr,
      });
    });
  });
}

/** Runs argv and throws a SystemError naming `step`, the command and its stderr unless it exits 0. */
export async function must(step: string, argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    throw new SystemError(ErrorCode.LAB, step, `${commandLine(argv)} exited ${r.code}: ${oneLine(r.stderr || r.stdout)}`);
  }
  return r.stdout;
}

/** Starts a daemon in its own session, stdout and stderr appended to `outFile`; returns its PID. */
export function spawnDetached(argv: readonly string[], outFile: string): number {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new DsrError(ErrorCode.USAGE, 'no command given');
  const fd = openSync(outFile, 'a', 0o644);
  try {
    const child = spawn(cmd, args, { env, detached: true, stdio: ['ignore', fd, fd] });
    // A failed exec shows up as an early exit, which the caller's readiness wait reports with the log.
    child.on('error', () => {});
    child.unref();
    if (child.pid === undefined) throw new SystemError(ErrorCode.LAB, `start ${cmd}`, `${commandLine(argv)} could not be started`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** True when the process exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // The state letter follows the parenthesised command name, which may itself contain ') '.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X' && state !== '';
}

/** The command line of a live process, '' when it is gone. */
export function pidCommandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns true (→ true) or `timeoutMs` passes (→ false). */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** SIGTERM, then SIGKILL for those still alive after `graceMs`; resolves when all are gone or it gives up. */
export async function killPids(pids: Iterable<number>, graceMs = 3000): Promise<number[]> {
  const targets = [...new Set(pids)].filter(pidAlive);
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of targets) {
      try {
        process.kill(pid, sig);
      } catch {
        // Exited in the meantime.
      }
    }
  };
  signal('SIGTERM');
  if (!(await waitUntil(() => !targets.some(pidAlive), graceMs))) {
    signal('SIGKILL');
    await waitUntil(() => !targets.some(pidAlive), 2000);
  }
  return targets.filter(pidAlive);
}

/** The last `lines` lines of a log file, on one line; '' when there is none. */
export function fileTail(path: string, lines = 8): string {
  try {
    return oneLine(readFileSync(path, 'utf8').slice(-16384), lines);
  } catch {
    return '';
  }
}
