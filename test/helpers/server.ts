/**
 * Runs a real DsrServer on loopback for tests: its own temp directory, credential table,
 * admin socket, and a logger whose lines the test can read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { type ConfigInput, resolveConfig } from '../../src/control/config.js';
import type { Logger } from '../../src/control/log.js';
import { DsrServer } from '../../src/control/server.js';
import { CredentialTable } from '../../src/control/tables/credentials.js';

export const USERS = { alice: 'Alice-Pass-1', bob: 'Bob-Pass-2' } as const;

export interface TestServer {
  server: DsrServer;
  port: number;
  adminSocket: string;
  /** Parsed log lines so far. */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

export function memoryLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

export async function startTestServer(overrides: Partial<ConfigInput> = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-srv-'));
  const creds = CredentialTable.load(join(dir, 'credentials.json'));
  for (const [u, p] of Object.entries(USERS)) creds.set(u, p);
  creds.save();
  const config = resolveConfig({
    name: 'test',
    listen: [{ address: '127.0.0.1', port: 0 }],
    admin: { socket: join(dir, 'admin.sock') },
    credentials: creds.path,
    stateDir: dir,
    servers: { server1: { address: '198.18.1.11' }, server2: { address: '198.18.1.12' } },
    resources: [
      { name: 'data1', comment: 'first', servers: ['server1'] },
      { name: 'san', comment: 'shared', servers: ['server1', 'server2'] },
    ],
    limits: { authTimeoutSeconds: 5, maxConnections: 4096, maxSessionsPerConnection: 8 },
    ...overrides,
  });
  const { log, lines } = memoryLogger();
  const server = new DsrServer(config, log);
  await server.start();
  return {
    server,
    port: server.addresses()[0]!.port,
    adminSocket: config.admin.socket,
    logs: lines,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
