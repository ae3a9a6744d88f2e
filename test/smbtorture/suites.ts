/**
 * The smbtorture smb2 suites the DSR must pass (issue 4), and the subtests known to differ
 * through the DSR, each with its reason. Every subtest of these suites that passes directly
 * against a lab smbd must pass through the DSR, or be listed here.
 *
 * Local runs: DSR_TORTURE_SUITES=smb2.lock,smb2.read (or any smbtorture test names, e.g. one
 * subtest smb2.lock.rw-shared; the smb2. prefix may be left out) limits the run.
 */
import { DsrError, ErrorCode } from '../../src/control/errors.js';
import type { KnownDifference } from '../../src/lab/smbtorture.js';
import { LAB_USERS } from '../../src/lab/topology.js';

export interface Suite {
  name: string;
  /** Per run (direct or through the DSR). Direct wall times measured in the lab are in the comment. */
  timeLimitS: number;
  options?: string[];
}

const user2 = LAB_USERS[1]!;

// Direct wall times from one lab run (3 servers, 2 cores); the limits leave room for subtests
// that wait out a break or a timeout through the DSR. Most of lease/oplock/notify is waiting:
// lease.timeout 38 s, lease.oplock 30 s, oplock.batch22a 36 s, notify.mask 79 s.
export const SUITES: readonly Suite[] = [
  { name: 'smb2.connect', timeLimitS: 60 }, // 0.4 s
  { name: 'smb2.read', timeLimitS: 60 }, // 0.8 s
  { name: 'smb2.rw', timeLimitS: 120 }, // 1.2 s
  { name: 'smb2.dir', timeLimitS: 180 }, // 19 s
  { name: 'smb2.getinfo', timeLimitS: 60 }, // 0.9 s
  { name: 'smb2.setinfo', timeLimitS: 60 }, // 0.3 s
  { name: 'smb2.create', timeLimitS: 180 }, // 13 s (10 s of it bench-path-contention-shared)
  { name: 'smb2.lock', timeLimitS: 180 }, // 3 s
  { name: 'smb2.compound', timeLimitS: 120 }, // 2 s
  { name: 'smb2.notify', timeLimitS: 600 }, // 108 s
  { name: 'smb2.oplock', timeLimitS: 600 }, // 114 s
  { name: 'smb2.lease', timeLimitS: 900 }, // 187 s
  { name: 'smb2.ioctl', timeLimitS: 240 }, // 8 s
  { name: 'smb2.credits', timeLimitS: 120 }, // 4.5 s
  {
    name: 'smb2.session',
    timeLimitS: 300, // 13 s
    // reauth and bind_different_user need a second account.
    options: [`--option=torture:user2name=${user2.name}`, `--option=torture:user2password=${user2.password}`],
  },
];

/** Subtests that pass directly and are expected to fail through the DSR, with the reason. */
export const KNOWN_DIFFERENCES: readonly KnownDifference[] = [];

/**
 * The suites to run: all, or those DSR_TORTURE_SUITES names. A name that is not in SUITES (a
 * single subtest, another suite) runs with the longest time limit and no extra options, unless
 * it is a subtest of a listed suite, which lends it its options.
 */
export function selectSuites(env: string | undefined): Suite[] {
  if (env === undefined || env.trim() === '') return [...SUITES];
  const longest = Math.max(...SUITES.map((s) => s.timeLimitS));
  return env
    .split(/[\s,]+/)
    .filter((n) => n !== '')
    .map((n) => (n.startsWith('smb2.') ? n : `smb2.${n}`))
    .map((name) => {
      if (!/^smb2\.[\w.-]+$/.test(name)) throw new DsrError(ErrorCode.USAGE, `DSR_TORTURE_SUITES: bad test name ${JSON.stringify(name)}`);
      const listed = SUITES.find((s) => s.name === name);
      if (listed) return listed;
      const parent = SUITES.find((s) => name.startsWith(`${s.name}.`));
      return { name, timeLimitS: parent?.timeLimitS ?? longest, ...(parent?.options && { options: parent.options }) };
    });
}
