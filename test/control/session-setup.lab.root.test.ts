/**
 * Acceptance of source Fig. 5 in the lab (root): real smbclient and rpcclient in the client
 * namespace, the DSR in its namespace, three real smbd servers behind the storage switch.
 * Every share of every server is listed by the DSR alone, over every dialect, signed or not,
 * and the storage-side ports see no TCP packet while it happens.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { labDown, labExec, labStatus, labUp, type LabStatus } from '../../src/lab/lab.js';
import { ALICE, labSkip, uniqueLabName } from '../helpers/lab.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const name = uniqueLabName();
let lab: LabStatus;
/** Every share the DSR must show: all of the servers', plus its own IPC$. */
let expected: string[];

const DIALECTS = ['SMB2_02', 'SMB2_10', 'SMB3_00', 'SMB3_02', 'SMB3_11'];

async function client(argv: string[]) {
  return labExec(name, 'client', argv, { timeoutMs: 30000 });
}

/** Shares from `smbclient -g -L` (machine-readable lines "Type|Name|Comment"). */
function parseSmbclient(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => /^(Disk|IPC)\|/.test(l))
    .map((l) => l.split('|')[1]!)
    .sort();
}

function parseRpcclient(out: string): string[] {
  return [...out.matchAll(/^netname: (.+)$/gm)].map((m) => m[1]!.trim()).sort();
}

const storagePackets = (s: LabStatus) => s.ports.reduce((n, p) => n + p.tcp.rxPackets + p.tcp.txPackets, 0);

describe('session setup and share listing answered by the DSR (lab)', { skip: labSkip }, () => {
  before(async () => {
    lab = await labUp({ name, servers: 3 });
    expected = [...new Set([...lab.servers.flatMap((s) => s.shares.map((x) => x.name)), 'IPC$'])].sort();
  });
  after(async () => {
    await labDown(name);
  });

  for (const dialect of DIALECTS) {
    for (const signing of ['auto', 'required']) {
      test(`smbclient -L and rpcclient netshareenumall, ${dialect}, client signing=${signing}`, async () => {
        const opts = ['-m', dialect, `--option=client signing=${signing}`, `--option=client ipc signing=${signing}`];
        const l = await client(['smbclient', '-g', '-L', `//${lab.dsr.clientAddress}`, '-U', ALICE, ...opts]);
        assert.equal(l.code, 0, l.stderr + l.stdout);
        assert.deepEqual(parseSmbclient(l.stdout), expected);
        const r = await client(['rpcclient', '-U', ALICE, ...opts, lab.dsr.clientAddress, '-c', 'netshareenumall']);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.deepEqual(parseRpcclient(r.stdout), expected);
      });
    }
  }

  test('netsharegetinfo on a share of each server', async () => {
    for (const s of lab.servers) {
      const share = s.shares[0]!.name;
      const r = await client(['rpcclient', '-U', ALICE, lab.dsr.clientAddress, '-c', `netsharegetinfo ${share}`]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, new RegExp(`netname: ${share}`));
    }
    const missing = await client(['rpcclient', '-U', ALICE, lab.dsr.clientAddress, '-c', 'netsharegetinfo nosuchshare']);
    assert.match(missing.stdout + missing.stderr, /WERR_NERR_NETNAMENOTFOUND/);
  });

  test('a wrong password and an unknown user fail with NT_STATUS_LOGON_FAILURE', async () => {
    for (const cred of ['dsralice%not-her-password', 'nobody%Alice-Pass-1']) {
      const l = await client(['smbclient', '-L', `//${lab.dsr.clientAddress}`, '-U', cred, '-m', 'SMB3']);
      assert.notEqual(l.code, 0);
      assert.match(l.stdout + l.stderr, /NT_STATUS_LOGON_FAILURE/);
      const r = await client(['rpcclient', '-U', cred, lab.dsr.clientAddress, '-c', 'netshareenumall']);
      assert.match(r.stdout + r.stderr, /NT_STATUS_LOGON_FAILURE/);
    }
  });

  test('Fig. 5: 100 session setups and share listings move no TCP packet on the storage-side ports', { timeout: 120000 }, async () => {
    const before = storagePackets(await labStatus(name));
    // Two clients at a time keeps both cores busy without starving the DSR.
    const one = async (i: number) => {
      const argv = i % 2 === 0
        ? ['smbclient', '-g', '-L', `//${lab.dsr.clientAddress}`, '-U', ALICE, '-m', DIALECTS[i % DIALECTS.length]!]
        : ['rpcclient', '-U', ALICE, lab.dsr.clientAddress, '-c', 'netshareenumall'];
      const r = await client(argv);
      assert.equal(r.code, 0, r.stderr + r.stdout);
    };
    for (let i = 0; i < 100; i += 2) await Promise.all([one(i), one(i + 1)]);
    const status = await labStatus(name);
    assert.equal(storagePackets(status), before, JSON.stringify(status.ports));
    // And the sessions are gone again: nothing leaked.
    const sessions = JSON.parse(spawnSync(process.execPath, [CLI, 'session', 'list', '--json', '--socket', lab.dsr.adminSocket], { encoding: 'utf8' }).stdout) as unknown[];
    assert.equal(sessions.length, 0);
  });

  test('dsr session list --json shows a live client session (and dsr resource list the table)', async () => {
    // An interactive smbclient holds its session open while its stdin is.
    const held = spawn('nsenter', [`--net=/run/netns/${lab.namespaces.client}`, '--', 'smbclient', `//${lab.dsr.clientAddress}/IPC$`, '-U', ALICE, '-m', 'SMB3'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      let sessions: { user: string; state: string; dialect: string; clientAddress: string }[] = [];
      for (let i = 0; i < 100 && sessions.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        sessions = JSON.parse(spawnSync(process.execPath, [CLI, 'session', 'list', '--json', '--socket', lab.dsr.adminSocket], { encoding: 'utf8' }).stdout) as typeof sessions;
      }
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0]!.user, 'dsralice');
      assert.equal(sessions[0]!.state, 'valid');
      assert.equal(sessions[0]!.dialect, '3.1.1');
      assert.match(sessions[0]!.clientAddress, new RegExp(`^${lab.client.address.replace(/\./g, '\\.')}:`));
      const resources = JSON.parse(spawnSync(process.execPath, [CLI, 'resource', 'list', '--json', '--socket', lab.dsr.adminSocket], { encoding: 'utf8' }).stdout) as { name: string; servers: string[] }[];
      assert.deepEqual(resources.find((r) => r.name === 'san')?.servers, ['server1', 'server2']);
    } finally {
      held.stdin.end();
      await new Promise((r) => held.once('exit', r));
    }
  });
});

describe('README command (a): dsr demo', { skip: labSkip }, () => {
  test('brings a lab up, shows the listings and the idle storage side, tears it down', { timeout: 180000 }, async () => {
    const demoLab = uniqueLabName();
    const r = spawnSync(process.execPath, [CLI, 'demo', '--name', demoLab], { encoding: 'utf8', timeout: 170000 });
    try {
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /netname: san/);
      assert.match(r.stdout, /NT_STATUS_LOGON_FAILURE/);
      assert.match(r.stdout, /TCP packets on the switch ports during all of the above: 0/);
      assert.match(r.stdout, /tearing the lab down/);
      assert.equal((await labStatus(demoLab)).up, false);
    } finally {
      await labDown(demoLab);
    }
  });
});
