/**
 * HAProxy as the bench's reference user-space relay: a plain L4 TCP relay (`mode tcp`, one
 * thread, no splice options) in the lab's dsr namespace, with its own config in the lab's run
 * directory and no stats socket, so it never touches a system haproxy (Debian's package
 * installs one; it is left alone). We start it by PID and stop it by that PID.
 */
import { writeFileSync } from 'node:fs';
import { startDaemon } from '../../src/lab/netns.js';
import { killPids } from '../../src/lab/process.js';

export interface RelaySpec {
  listenAddress: string;
  listenPort: number;
  serverAddress: string;
  serverPort: number;
}

/** haproxy.cfg for one TCP relay; pure. Timeouts are long enough for a 1 GiB transfer's quiet phases. */
export function haproxyConfig(r: RelaySpec): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 256',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 10m',
    '  timeout server 10m',
    'listen smb',
    `  bind ${r.listenAddress}:${r.listenPort}`,
    `  server server1 ${r.serverAddress}:${r.serverPort}`,
    '',
  ].join('\n');
}

export interface Haproxy {
  pid: number;
  stop(): Promise<void>;
}

/** Writes `${dir}/haproxy.cfg` and starts haproxy in the foreground (-db) inside `namespace`. */
export async function startHaproxy(namespace: string, dir: string, r: RelaySpec): Promise<Haproxy> {
  const config = `${dir}/haproxy.cfg`;
  const outFile = `${dir}/haproxy.out`;
  writeFileSync(config, haproxyConfig(r));
  const pid = await startDaemon({
    what: 'haproxy',
    namespace,
    argv: ['haproxy', '-db', '-f', config],
    outFile,
    port: r.listenPort,
    address: r.listenAddress,
    timeoutMs: 10000,
    logs: {},
  });
  return {
    pid,
    stop: async () => {
      await killPids([pid]);
    },
  };
}
