/**
 * The smbtorture harness without the lab: the subunit parser over real smbtorture 4.17 output
 * (stdout and stderr merged, as runSuite runs it), the comparison, the lane pool and the suite
 * list. The lab run itself is compare.lab.root.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DsrError, ErrorCode } from '../../src/control/errors.js';
import {
  compareRuns,
  formatComparisons,
  LanePool,
  parseSubunit,
  parseTestList,
  smbtortureArgv,
  subtestDetail,
  subtestStatus,
  type SuiteRun,
} from '../../src/lab/smbtorture.js';
import { selectSuites, SUITES } from './suites.js';

// smbtorture //198.18.1.11/data1 ... smb2.read smb2.getinfo.fsinfo smb2.create.nulldacl, directly.
const DIRECT = `smbtorture 4.17.12-Debian
Using seed 1795794907
time: 2026-11-27 15:55:07.372065
progress: 5
test: smb2.read.eof
time: 2026-11-27 15:55:07.372706
time: 2026-11-27 15:55:07.557323
success: smb2.read.eof
test: smb2.read.position
time: 2026-11-27 15:55:07.557351
time: 2026-11-27 15:55:07.841470
success: smb2.read.position
test: smb2.read.dir
time: 2026-11-27 15:55:07.841529
time: 2026-11-27 15:55:08.105524
success: smb2.read.dir
test: smb2.read.access
time: 2026-11-27 15:55:08.105561
time: 2026-11-27 15:55:08.395730
success: smb2.read.access
test: smb2.read.bug14607
time: 2026-11-27 15:55:08.395757
time: 2026-11-27 15:55:08.648049
success: smb2.read.bug14607
time: 2026-11-27 15:55:08.669526
test: smb2.getinfo.fsinfo
time: 2026-11-27 15:55:08.670017
Testing fsinfo levels
time: 2026-11-27 15:55:08.847973
failure: smb2.getinfo.fsinfo [
../../source4/torture/smb2/getinfo.c:505: fs_levels[i].status was NT_STATUS_ACCESS_DENIED, expected NT_STATUS_OK: RAW_QFS_QUOTA_INFORMATION
]
time: 2026-11-27 15:55:08.853353
test: smb2.create.nulldacl
time: 2026-11-27 15:55:08.857761
TESTING SEC_DESC WITH A NULL DACL
creating a file with a empty sd
set empty sd
get the sd
time: 2026-11-27 15:55:09.070176
success: smb2.create.nulldacl
`;

// smb2.read.eof through the DSR before it redirects tree connects.
const VIA_DSR = `smbtorture 4.17.12-Debian
Using seed 1795794909
time: 2026-11-27 15:55:09.490315
test: smb2.read.eof
time: 2026-11-27 15:55:09.499379
Failed to connect to SMB2 share \\\\198.18.0.1\\data1 - NT_STATUS_NOT_SUPPORTED
time: 2026-11-27 15:55:09.561745
failure: smb2.read.eof [
../../source4/torture/smb2/smb2.c:37: Establishing SMB2 connection failed
]
`;

// smb2.lease.timeout killed after 3 s: the last comment has no newline, the subtest no result.
const KILLED = `smbtorture 4.17.12-Debian
Using seed 1795794909
time: 2026-11-27 15:55:09.956156
test: smb2.lease.timeout
time: 2026-11-27 15:55:09.957128
Waiting for a potential lease break...
transport[0x55a8c7b59350] Skip acking to 0x3 (RH) in lease handler
Got 1 lease breaks`;

// smb2.compound.related1 through the DSR: smbtorture segfaults on a response (a real run, frames
// #5-#13 left out).
const CRASHED = `smbtorture 4.17.12-Debian
Using seed 1795795835
time: 2026-11-27 16:10:35.456022
test: smb2.compound.related1
time: 2026-11-27 16:10:35.457014
===============================================================
INTERNAL ERROR: Signal 11: Segmentation fault in pid 28927 (4.17.12-Debian)
If you are running a recent Samba version, and if you think this problem is not yet fixed in the latest versions, please consider reporting this bug, see https://wiki.samba.org/index.php/Bug_Reporting
===============================================================
PANIC (pid 28927): Signal 11: Segmentation fault in 4.17.12-Debian
BACKTRACE: 17 stack frames:
 #0 /usr/lib/x86_64-linux-gnu/samba/libgenrand-samba4.so.0(log_stack_trace+0x2e) [0x7f451438c55e]
 #1 /usr/lib/x86_64-linux-gnu/samba/libgenrand-samba4.so.0(smb_panic+0x9) [0x7f451438c7b9]
 #2 /usr/lib/x86_64-linux-gnu/samba/libgenrand-samba4.so.0(+0x1851) [0x7f451438c851]
 #3 /lib/x86_64-linux-gnu/libc.so.6(+0x3c050) [0x7f451385a050]
 #4 /usr/lib/x86_64-linux-gnu/samba/libcli-smb-common-samba4.so.0(smb2cli_session_set_id_and_flags+0) [0x7f4514bd04a0]
 #14 /lib/x86_64-linux-gnu/libc.so.6(+0x2724a) [0x7f451384524a]
 #15 /lib/x86_64-linux-gnu/libc.so.6(__libc_start_main+0x85) [0x7f4513845305]
 #16 smbtorture(_start+0x21) [0x5559df3788c1]
smb_panic(): calling panic action [/usr/share/samba/panic-action 28927]
smb_panic(): action returned status 0`;

// Without --fullname; a skip and an error, each with a detail block.
const SKIP_AND_ERROR = `test: bug14607
time: 2026-11-27 15:32:40.053201
FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8: NT_STATUS_INVALID_DEVICE_REQUEST
time: 2026-11-27 15:32:40.093292
skip: bug14607 [
../../source4/torture/smb2/read.c:394: server doesn't support FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8
]
test: open
time: 2026-11-27 15:34:33.322978
time: 2026-11-27 15:34:33.361135
error: open [
Unknown error/failure. Missing torture_fail() or torture_assert_*() call?
]
`;

const suiteRun = (suite: string, text: string, extra: Partial<SuiteRun> = {}): SuiteRun => ({
  suite,
  unc: '//x/y',
  subtests: parseSubunit(text),
  seconds: 1,
  interruptions: [],
  timedOut: false,
  ...extra,
});

describe('parseSubunit over real smbtorture output', () => {
  test('results, reasons, printed comments and times per subtest', () => {
    const s = parseSubunit(DIRECT);
    assert.deepEqual(
      s.map((x) => [x.name, x.result]),
      [
        ['smb2.read.eof', 'success'],
        ['smb2.read.position', 'success'],
        ['smb2.read.dir', 'success'],
        ['smb2.read.access', 'success'],
        ['smb2.read.bug14607', 'success'],
        ['smb2.getinfo.fsinfo', 'failure'],
        ['smb2.create.nulldacl', 'success'],
      ],
    );
    const fsinfo = s[5]!;
    assert.equal(fsinfo.reason, '../../source4/torture/smb2/getinfo.c:505: fs_levels[i].status was NT_STATUS_ACCESS_DENIED, expected NT_STATUS_OK: RAW_QFS_QUOTA_INFORMATION');
    assert.equal(fsinfo.output, 'Testing fsinfo levels');
    assert.equal(subtestStatus(fsinfo), 'NT_STATUS_ACCESS_DENIED');
    assert.equal(s[0]!.seconds, 0.185);
    assert.equal(s[0]!.output, undefined);
    assert.match(s[6]!.output!, /^TESTING SEC_DESC WITH A NULL DACL\n.*\nget the sd$/s);
  });

  test('a failed tree connect keeps its NTSTATUS from the printed line', () => {
    const [eof] = parseSubunit(VIA_DSR);
    assert.equal(eof?.result, 'failure');
    assert.equal(subtestStatus(eof!), 'NT_STATUS_NOT_SUPPORTED');
    assert.equal(
      subtestDetail(eof!),
      'Failed to connect to SMB2 share \\\\198.18.0.1\\data1 - NT_STATUS_NOT_SUPPORTED\n../../source4/torture/smb2/smb2.c:37: Establishing SMB2 connection failed',
    );
  });

  test('a subtest cut off by a kill is an error, with what it printed', () => {
    const s = parseSubunit(KILLED);
    assert.equal(s.length, 1);
    assert.equal(s[0]!.name, 'smb2.lease.timeout');
    assert.equal(s[0]!.result, 'error');
    assert.match(s[0]!.reason!, /^no result/);
    assert.match(s[0]!.output!, /Got 1 lease breaks$/);
  });

  test('a crash reads as its PANIC line and the frame it crashed in', () => {
    const [s] = parseSubunit(CRASHED);
    assert.equal(s?.result, 'error');
    assert.equal(
      subtestDetail(s!),
      [
        'PANIC (pid 28927): Signal 11: Segmentation fault in 4.17.12-Debian',
        'at /usr/lib/x86_64-linux-gnu/samba/libcli-smb-common-samba4.so.0(smb2cli_session_set_id_and_flags+0) [0x7f4514bd04a0]',
        'no result: smbtorture ended during this subtest',
      ].join('\n'),
    );
  });

  test('skip and error carry their detail blocks', () => {
    const s = parseSubunit(SKIP_AND_ERROR);
    assert.deepEqual(
      s.map((x) => [x.name, x.result, x.reason]),
      [
        ['bug14607', 'skip', "../../source4/torture/smb2/read.c:394: server doesn't support FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8"],
        ['open', 'error', 'Unknown error/failure. Missing torture_fail() or torture_assert_*() call?'],
      ],
    );
    assert.equal(subtestStatus(s[0]!), 'NT_STATUS_INVALID_DEVICE_REQUEST');
  });

  test('every prefix of a real stream parses without throwing, never inventing a success', () => {
    for (let i = 0; i <= DIRECT.length; i++) {
      const s = parseSubunit(DIRECT.slice(0, i));
      assert.ok(s.filter((x) => x.result === 'success').length <= 6);
    }
  });
});

describe('compareRuns', () => {
  const direct = suiteRun('smb2.read', DIRECT);

  test('sorts what passed directly by what happened through the DSR', () => {
    const crash = 'smb2.read.position: no result: smbtorture exited 134 (crashed) during this subtest';
    const viaDsr = suiteRun('smb2.read', VIA_DSR + DIRECT.split('\n').slice(8).join('\n').replace('success: smb2.read.position', 'failure: smb2.read.position'), {
      interruptions: [crash],
    });
    // smb2.read.dir never ran through the DSR.
    viaDsr.subtests = viaDsr.subtests.filter((s) => s.name !== 'smb2.read.dir');
    const c = compareRuns(direct, viaDsr, [
      { test: 'smb2.read.position', reason: 'listed' },
      { test: 'smb2.read.access', reason: 'stale' },
    ]);
    assert.deepEqual(c.passedBoth, ['smb2.read.access', 'smb2.read.bug14607', 'smb2.create.nulldacl']);
    assert.deepEqual(
      c.regressions.map((r) => [r.name, r.result, r.status]),
      [
        ['smb2.read.eof', 'failure', 'NT_STATUS_NOT_SUPPORTED'],
        ['smb2.read.dir', 'missing', undefined],
      ],
    );
    assert.equal(c.regressions[1]!.detail, `not run through the DSR: ${crash}`);
    assert.deepEqual(
      c.known.map((k) => [k.name, k.result, k.reason]),
      [['smb2.read.position', 'failure', 'listed']],
    );
    assert.deepEqual(c.fixed, [{ test: 'smb2.read.access', reason: 'stale' }]);
    assert.deepEqual(
      c.notPassingDirect.map((s) => s.name),
      ['smb2.getinfo.fsinfo'],
    );
  });

  test('a run through the DSR that hit its time limit says so for the subtests it never reached', () => {
    const c = compareRuns(direct, suiteRun('smb2.read', KILLED, { timedOut: true }));
    assert.equal(c.regressions.length, 6);
    assert.ok(c.regressions.every((r) => r.result === 'missing' && r.detail === "not run through the DSR: the suite's time limit ran out first"));
  });

  test('the report groups identical errors and totals the table', () => {
    const viaDsr = suiteRun('smb2.read', VIA_DSR.replace(/smb2\.read\.eof/g, 'smb2.read.position') + VIA_DSR);
    const text = formatComparisons([compareRuns(direct, viaDsr)]);
    assert.match(text, /^suite +subtests +pass both +regress +known +flaky +fixed +not direct +direct s +DSR s$/m);
    assert.match(text, /^smb2\.read +7 +0 +6 +0 +0 +0 +1 +1\.0 +1\.0$/m);
    assert.match(text, /^total +7 +0 +6 /m);
    assert.match(text, /^ {2}smb2\.read\.eof, smb2\.read\.position: failure \(NT_STATUS_NOT_SUPPORTED\)\n {6}Failed to connect/m);
    assert.match(text, /^ {2}smb2\.read\.dir, smb2\.read\.access, smb2\.read\.bug14607, smb2\.create\.nulldacl: missing$/m);
  });
});

test('parseTestList: full subunit names of a suite from smbtorture --list, nothing from look-alike suites', () => {
  const listing = [
    'smbtorture 4.17.12-Debian',
    'smb2.compound.related1.related1',
    'smb2.compound.create-write-close.create-write-close',
    'smb2.compound_find.compound_find_related.compound_find_related',
    '',
  ].join('\n');
  assert.deepEqual(parseTestList('smb2.compound', listing), ['smb2.compound.related1', 'smb2.compound.create-write-close']);
  assert.deepEqual(parseTestList('smb2.connect', 'smbtorture 4.17.12-Debian\nsmb2.connect.connect\n'), ['smb2.connect']);
  assert.deepEqual(parseTestList('smb2.lock.rw-shared', 'smb2.lock.rw-shared.rw-shared\n'), ['smb2.lock.rw-shared']);
  assert.deepEqual(parseTestList('smb2.nosuch', 'smbtorture 4.17.12-Debian\n'), []);
});

describe('LanePool', () => {
  test('runs at most one user per lane and hands lanes on in order', async () => {
    const pool = new LanePool([
      { direct: 'a', viaDsr: 'A' },
      { direct: 'b', viaDsr: 'B' },
    ]);
    let inFlight = 0;
    let most = 0;
    const used: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        pool.use(async (lane) => {
          most = Math.max(most, ++inFlight);
          used.push(`${i}:${lane.direct}`);
          await new Promise((r) => setTimeout(r, 5));
          inFlight--;
        }),
      ),
    );
    assert.equal(most, 2);
    assert.deepEqual(
      used.map((u) => u.split(':')[0]),
      ['0', '1', '2', '3', '4', '5'],
    );
  });

  test('a throwing user gives its lane back', async () => {
    const pool = new LanePool([{ direct: 'a', viaDsr: 'A' }]);
    await assert.rejects(pool.use(async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(await pool.use(async (l) => l.direct), 'a');
  });
});

describe('suites', () => {
  test('the list holds every suite issue 4 names', () => {
    const required = ['connect', 'read', 'rw', 'dir', 'getinfo', 'setinfo', 'create', 'lock', 'compound', 'notify', 'oplock', 'lease', 'ioctl', 'credits', 'session'];
    assert.deepEqual(
      SUITES.map((s) => s.name).sort(),
      required.map((r) => `smb2.${r}`).sort(),
    );
  });

  test('DSR_TORTURE_SUITES picks suites and single subtests, which borrow their suite options', () => {
    assert.equal(selectSuites(undefined).length, SUITES.length);
    assert.equal(selectSuites(' ').length, SUITES.length);
    const picked = selectSuites('lock, smb2.session.reauth1 smb2.bench.echo');
    assert.deepEqual(
      picked.map((s) => s.name),
      ['smb2.lock', 'smb2.session.reauth1', 'smb2.bench.echo'],
    );
    const session = SUITES.find((s) => s.name === 'smb2.session')!;
    assert.deepEqual(picked[1]!.options, session.options);
    assert.equal(picked[1]!.timeLimitS, session.timeLimitS);
    assert.equal(picked[2]!.options, undefined);
    assert.throws(
      () => selectSuites('lock;rm -rf'),
      (e: unknown) => e instanceof DsrError && e.code === ErrorCode.USAGE,
    );
  });

  test('smbtorture runs as the first lab user, samba3 target, subunit with full names', () => {
    const argv = smbtortureArgv('smb2.lock', '//198.18.0.1/data1', '/tmp/b', ['--option=x=y']);
    assert.deepEqual(argv, [
      'smbtorture',
      '//198.18.0.1/data1',
      '-U',
      'dsralice%Alice-Pass-1',
      '--target=samba3',
      '--format=subunit',
      '--fullname',
      '--basedir=/tmp/b',
      '--option=x=y',
      'smb2.lock',
    ]);
  });
});
