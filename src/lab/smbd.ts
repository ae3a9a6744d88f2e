/**
 * The lab's storage servers: one real Samba smbd per server namespace, each with its own
 * smb.conf and private, lock, state, cache, pid, ncalrpc and log directories, so several labs
 * (and a system smbd) never share a tdb file. The lab users are real Unix accounts, because
 * smbd maps every session to one.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { DsrError, ErrorCode } from '../control/errors.js';
import type { Logger } from '../control/log.js';
import { startDaemon } from './netns.js';
import { must, run } from './process.js';
import { DATA_ROOT, LAB_USER_GECOS, LAB_USERS, SMB_PORT, type LabShare, type ServerPlan } from './topology.js';

const SMBD_DIRS = ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log'] as const;
const SMBD_START_MS = 15000;

/** smb.conf for one lab server (smb.conf(5)); pure. */
export function smbConf(server: ServerPlan): string {
  const dir = (d: (typeof SMBD_DIRS)[number]) => `${server.runDir}/${d}`;
  const global = [
    '[global]',
    `netbios name = ${server.netbiosName}`,
    'workgroup = LAB',
    'server role = standalone server',
    'security = user',
    `passdb backend = tdbsam:${dir('private')}/passdb.tdb`,
    `smb ports = ${SMB_PORT}`,
    'disable netbios = yes',
    'server min protocol = SMB2_02',
    'map to guest = never',
    'load printers = no',
    'printing = bsd',
    'printcap name = /dev/null',
    'disable spoolss = yes',
    `private dir = ${dir('private')}`,
    `lock directory = ${dir('lock')}`,
    `state directory = ${dir('state')}`,
    `cache directory = ${dir('cache')}`,
    `pid directory = ${dir('pid')}`,
    `ncalrpc dir = ${dir('ncalrpc')}`,
    `log file = ${dir('log')}/smbd.log`,
    'max log size = 10000',
    'log level = 1',
    // smbtorture's test-only FSCTLs (smb2.read.bug14607, smb2.ioctl.bug14769 pad their responses
    // oddly): lab servers only, so the DSR is checked against the responses that break clients.
    'smbd:FSCTL_SMBTORTURE = yes',
  ];
  const share = (s: LabShare) => [
    '',
    `[${s.name}]`,
    `path = ${s.path}`,
    'read only = no',
    `valid users = ${LAB_USERS.map((u) => u.name).join(' ')}`,
    // Files one lab user makes stay writable by the other, as on a shared team share.
    'create mask = 0666',
    'directory mask = 0777',
    // NT ACLs and named streams kept as a Windows server keeps them. Without them smbtorture's
    // full-access and EXECUTE opens fail (ACLs mapped from 0666 modes) and its stream tests cannot
    // run, so most of the create/lock/oplock/lease subtests would not be comparable at all.
    'vfs objects = acl_xattr streams_xattr',
  ];
  return [...global, ...server.shares.flatMap(share)].map((l) => (l.startsWith('[') || l === '' ? l : `  ${l}`)).join('\n') + '\n';
}

interface PasswdEntry {
  name: string;
  gecos: string;
}

async function getPasswd(name: string): Promise<PasswdEntry | undefined> {
  const r = await run(['getent', 'passwd', name]);
  if (r.code !== 0) return undefined;
  const fields = r.stdout.trim().split(':');
  return { name, gecos: fields[4] ?? '' };
}

/** Creates the lab users' Unix accounts where missing (no home, no login shell). */
export async function ensureLabUsers(log: Logger): Promise<void> {
  await Promise.all(
    LAB_USERS.map(async (u) => {
      if (await getPasswd(u.name)) return;
      const r = await run(['useradd', '-M', '-N', '-s', '/usr/sbin/nologin', '-c', LAB_USER_GECOS, u.name]);
      // Exit 9: another lab being built at the same time created it first.
      if (r.code !== 0 && !(r.code === 9 && (await getPasswd(u.name)))) {
        throw new DsrError(ErrorCode.LAB, `create Unix user ${u.name}: useradd exited ${r.code}: ${r.stderr.trim()}`);
      }
      log.info({ event: 'lab.user.created', user: u.name });
    }),
  );
}

/** Deletes the lab users' accounts, but only those the lab made (GECOS exactly LAB_USER_GECOS). */
export async function removeLabUsers(log: Logger): Promise<void> {
  for (const u of LAB_USERS) {
    const entry = await getPasswd(u.name);
    if (entry?.gecos !== LAB_USER_GECOS) continue;
    await must(`delete Unix user ${u.name}`, ['userdel', u.name]);
    log.info({ event: 'lab.user.removed', user: u.name });
  }
}

/** Directories, smb.conf and the passdb entries of one server; needs the Unix users to exist. */
export async function prepareServer(server: ServerPlan, signal?: AbortSignal): Promise<void> {
  mkdirSync(server.runDir, { recursive: true, mode: 0o755 });
  for (const d of SMBD_DIRS) mkdirSync(`${server.runDir}/${d}`, { recursive: true, mode: d === 'private' ? 0o700 : 0o755 });
  for (const s of server.shares) {
    mkdirSync(s.path, { recursive: true });
    // smbd works inside a share as the session's user: both lab users write in the share, and every
    // directory above it must be searchable. chmod, because mkdir's mode passes through our umask.
    chmodSync(s.path, 0o777);
    for (let d = dirname(s.path); d.startsWith(DATA_ROOT); d = dirname(d)) chmodSync(d, 0o755);
  }
  writeFileSync(server.confPath, smbConf(server));
  for (const u of LAB_USERS) {
    await must(`add ${u.name} to ${server.name}'s passdb`, ['smbpasswd', '-c', server.confPath, '-a', '-s', u.name], {
      input: `${u.password}\n${u.password}\n`,
      signal,
    });
  }
}

/** Starts smbd in the server's namespace and waits until port 445 accepts; returns its PID. */
export async function startSmbd(server: ServerPlan, log: Logger, signal?: AbortSignal): Promise<number> {
  const started = Date.now();
  const pid = await startDaemon({
    what: server.name,
    namespace: server.namespace,
    argv: ['smbd', '-F', '--no-process-group', '-s', server.confPath],
    outFile: server.outFile,
    port: SMB_PORT,
    timeoutMs: SMBD_START_MS,
    logs: { 'smbd log': `${server.logDir}/smbd.log` },
    signal,
  });
  log.info({ event: 'lab.server.started', server: server.name, pid, ms: Date.now() - started });
  return pid;
}
