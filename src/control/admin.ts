/**
 * The admin socket: newline-delimited JSON over a Unix socket (mode 0600, root only) through
 * which the CLI reads the daemon's live tables. One request per line, one reply per line:
 *   -> {"op":"session.list"}
 *   <- {"ok":true,"result":[...]}   or   {"ok":false,"error":{"code":"...","message":"..."}}
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { DsrError, ErrorCode, errorMessage } from './errors.js';
import type { Logger } from './log.js';

export type AdminHandler = (args: Record<string, unknown>) => unknown;

/** Longest request line accepted; the admin API has no large requests. */
const MAX_LINE = 64 * 1024;

export class AdminServer {
  private server: Server | undefined;

  constructor(
    readonly path: string,
    private readonly handlers: Record<string, AdminHandler>,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    // A socket file left by a crashed daemon would make listen fail with EADDRINUSE.
    await this.refuseIfLive();
    rmSync(this.path, { force: true });
    const server = createServer((sock) => {
      let buf = '';
      let replies: Promise<void> = Promise.resolve();
      sock.setEncoding('utf8');
      sock.on('error', () => sock.destroy());
      sock.on('data', (chunk: string) => {
        buf += chunk;
        if (buf.length > MAX_LINE) {
          this.log.warn({ event: 'admin.oversize' }, 'admin request line too long; closing');
          sock.destroy();
          return;
        }
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          // Answers go out in request order even when a handler is asynchronous.
          replies = replies.then(async () => {
            const r = await this.dispatch(line);
            if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n');
          });
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  private async refuseIfLive(): Promise<void> {
    const live = await new Promise<boolean>((resolve) => {
      const c = createConnection(this.path);
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (live) throw new DsrError(ErrorCode.ADMIN, `another DSR is already serving the admin socket ${this.path}`);
  }

  private async dispatch(line: string): Promise<unknown> {
    let req: { op?: unknown; args?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return { ok: false, error: { code: ErrorCode.ADMIN, message: 'request is not JSON' } };
    }
    const handler = typeof req.op === 'string' ? this.handlers[req.op] : undefined;
    if (!handler) return { ok: false, error: { code: ErrorCode.ADMIN, message: `unknown operation ${String(req.op)}` } };
    try {
      const args = req.args && typeof req.args === 'object' ? (req.args as Record<string, unknown>) : {};
      return { ok: true, result: await handler(args) };
    } catch (e) {
      this.log.warn({ event: 'admin.failed', op: req.op, err: errorMessage(e) }, 'admin operation failed');
      return { ok: false, error: { code: e instanceof DsrError ? e.code : ErrorCode.ADMIN, message: errorMessage(e) } };
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    rmSync(this.path, { force: true });
  }
}

/** Sends one request to a running daemon and returns its result. */
export async function adminCall(path: string, op: string, args: Record<string, unknown> = {}, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new DsrError(ErrorCode.ADMIN, `no answer from the DSR on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify({ op, args }) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      let reply: { ok: boolean; result?: unknown; error?: { code: string; message: string } };
      try {
        reply = JSON.parse(buf.slice(0, nl)) as typeof reply;
      } catch {
        reject(new DsrError(ErrorCode.ADMIN, 'the DSR sent a reply that is not JSON'));
        return;
      }
      if (reply.ok) resolve(reply.result);
      else reject(new DsrError(ErrorCode.ADMIN, reply.error?.message ?? 'the DSR refused the request'));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'no DSR is running there (start one with `dsr serve --config FILE` or `dsr lab up`)' : e.message;
      reject(new DsrError(ErrorCode.ADMIN, `cannot reach the DSR admin socket ${path}: ${why}`, { cause: e }));
    });
  });
}
