/**
 * `dsr demo`: the main job a newcomer runs. Brings the lab up (real smbd servers behind the
 * DSR), runs real SMB clients against the DSR, prints a short transcript of what happened,
 * and tears the lab down again.
 */
import type { Command } from 'commander';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall } from '../control/admin.js';
import { errorMessage } from '../control/errors.js';
import type { LabStatus } from '../lab/lab.js';
import { DEFAULT_LAB_NAME } from '../lab/topology.js';

/** The lab's modules, loaded when the demo runs (not for every `dsr` verb). */
const labApi = () => import('../lab/lab.js');

/** The Fig. 5 steps below; the Fig. 6 step is numbered after them. */
const DEMO_STEPS = 4;

interface Step {
  title: string;
  argv: string[];
  /** Lines of output worth showing (all when undefined). */
  filter?: (line: string) => boolean;
}

function say(text = ''): void {
  process.stdout.write(text + '\n');
}

function storageTcpPackets(s: LabStatus): number {
  return s.ports.reduce((n, p) => n + p.tcp.rxPackets + p.tcp.txPackets, 0);
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('bring the lab up, run real SMB clients against the DSR, print what happened, tear it down')
    .option('--servers <n>', 'storage servers in the lab (1-4)', (v) => Number.parseInt(v, 10), 3)
    .option('--name <name>', 'lab name', DEFAULT_LAB_NAME)
    .option('--keep', 'leave the lab running afterwards')
    .action(async (o: { servers: number; name: string; keep?: boolean }) => {
      let failed = false;
      const { labDown } = await labApi();
      const onSignal = () => {
        void labDown(o.name).finally(() => process.exit(130));
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        failed = await runDemo(o.name, o.servers);
      } finally {
        if (!o.keep) {
          say('\n== tearing the lab down');
          await labDown(o.name);
          say('   done: namespaces, smbd and DSR processes, state removed');
        } else {
          say(`\n== lab left running (dsr lab status --name ${o.name}; dsr lab down --name ${o.name})`);
        }
      }
      if (failed) process.exitCode = 1;
    });
}

async function runDemo(name: string, servers: number): Promise<boolean> {
  const { labExec, labStatus, labUp } = await labApi();
  say(`== bringing the lab up: client, DSR and ${servers} Samba servers in network namespaces`);
  const lab = await labUp({ name, servers });
  const dsr = lab.dsr.clientAddress;
  const [user] = lab.users;
  if (!user) throw new Error('the lab has no users');
  say(`   DSR client-side address ${dsr}, storage switch ${lab.dsr.storageAddress} (ports ${lab.ports.map((p) => p.name).join(' ')})`);
  for (const s of lab.servers) say(`   ${s.name} ${s.address} on ${s.port}: ${s.shares.map((x) => x.name).join(', ')}`);
  say(`   lab user ${user.name} / ${user.password}`);

  const before = storageTcpPackets(lab);
  const cred = `${user.name}%${user.password}`;
  const steps: Step[] = [
    { title: `smbclient -L //${dsr} (SMB 3.1.1): one server, every share of every storage server`, argv: ['smbclient', '-L', `//${dsr}`, '-U', cred, '-m', 'SMB3_11'], filter: (l) => /Disk|IPC|Sharename|---/.test(l) },
    { title: `smbclient -L //${dsr} (SMB 2.0.2, signing required)`, argv: ['smbclient', '-L', `//${dsr}`, '-U', cred, '-m', 'SMB2_02', '--option=client signing=required'], filter: (l) => /Disk|IPC/.test(l) },
    { title: `rpcclient ${dsr} -c netshareenumall (srvsvc over the DSR's own IPC$)`, argv: ['rpcclient', '-U', cred, dsr, '-c', 'netshareenumall'], filter: (l) => /netname/.test(l) },
    { title: 'a wrong password', argv: ['smbclient', '-L', `//${dsr}`, '-U', `${user.name}%not-the-password`, '-m', 'SMB3'] },
  ];
  let failed = false;
  for (const [i, step] of steps.entries()) {
    say(`\n== ${i + 1}. ${step.title}`);
    say(`   $ ${step.argv.join(' ')}`);
    const r = await labExec(name, 'client', step.argv, { timeoutMs: 30_000 });
    const lines = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '' && (step.filter ? step.filter(l) : true));
    for (const l of lines) say(`   ${l.trimEnd()}`);
    const wantFailure = i === steps.length - 1;
    const ok = wantFailure ? /NT_STATUS_LOGON_FAILURE/.test(r.stdout + r.stderr) : r.code === 0;
    say(`   -> ${ok ? 'as expected' : 'UNEXPECTED'} (exit ${r.code})`);
    failed ||= !ok;
  }

  const after = storageTcpPackets(await labStatus(name));
  say(`\n== storage side (source Fig. 5): TCP packets on the switch ports during all of the above: ${after - before}`);
  say('   session setup and share listing are answered by the DSR alone; no server was contacted');
  failed ||= after !== before;
  failed = (await redirectStep(name, lab, cred)) || failed;
  const status = (await adminCall(lab.dsr.adminSocket, 'status')) as { sessions: number; connections: number };
  say(`   DSR now holds ${status.sessions} sessions on ${status.connections} connections (clients have logged off)`);
  return failed;
}

/** Fig. 6: one smbclient session writes and reads a file on a share of every server through the DSR. */
async function redirectStep(name: string, lab: LabStatus, cred: string): Promise<boolean> {
  const { labExec, labStatus } = await labApi();
  const dir = mkdtempSync(join(tmpdir(), 'dsr-demo-'));
  try {
    const data = randomBytes(8 * 1024 * 1024);
    writeFileSync(join(dir, 'demo.bin'), data);
    const want = createHash('sha256').update(data).digest('hex');
    const shares = lab.servers.map((s) => s.shares[0]!);
    const script = shares.map((s, i) => `${i > 0 ? `tcon ${s.name}; ` : ''}put demo.bin; get demo.bin back-${s.name}.bin`).join('; ');
    const argv = ['smbclient', `//${lab.dsr.clientAddress}/${shares[0]!.name}`, '-U', cred, '-m', 'SMB3_11', '-c', `lcd ${dir}; ${script}`];
    say(`\n== ${DEMO_STEPS + 1}. one smbclient session, a share on each server (source Fig. 6): put and get 8 MiB`);
    say(`   $ ${argv.map((a) => (/[\s;]/.test(a) ? `'${a}'` : a)).join(' ')}`);
    const before = storageTcpPackets(await labStatus(name));
    const r = await labExec(name, 'client', argv, { timeoutMs: 60_000 });
    for (const l of `${r.stdout}${r.stderr}`.split('\n').filter((x) => /putting|getting|tcon/.test(x))) say(`   ${l.trimEnd()}`);
    let ok = r.code === 0;
    for (const s of shares) {
      const back = createHash('sha256').update(readFileSync(join(dir, `back-${s.name}.bin`))).digest('hex');
      const onDisk = createHash('sha256').update(readFileSync(join(s.path, 'demo.bin'))).digest('hex');
      const same = back === want && onDisk === want;
      ok &&= same;
      say(`   ${s.name}: sha256 sent = read back = on the server's disk: ${same ? 'yes' : 'NO'}`);
    }
    const moved = storageTcpPackets(await labStatus(name)) - before;
    say(`   storage side: ${moved} TCP packets on the switch ports, from the DSR's ${lab.dsr.storageAddress}: the servers never see the client`);
    say(`   -> ${ok ? 'as expected' : 'UNEXPECTED'} (exit ${r.code})`);
    return !ok;
  } catch (e) {
    say(`   -> UNEXPECTED: ${errorMessage(e)}`);
    return true;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
