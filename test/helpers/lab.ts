/** Shared by the tests that need root and the netns lab. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { labExec } from '../../src/lab/lab.js';

/** A skip reason when the lab cannot run here (printed once), else false. */
export const labSkip: string | false = process.getuid?.() === 0 ? false : 'needs root: the lab creates network namespaces, Unix users and runs smbd';
if (labSkip) console.log(`# lab tests skipped: ${labSkip}`);

/** A lab name no other test file or developer lab uses (namespaces are <name>-<role>). */
export const uniqueLabName = (): string => `dt${randomBytes(2).toString('hex')}`;

export const ALICE = 'dsralice%Alice-Pass-1';
export const BOB = 'dsrbob%Bob-Pass-2';

/** A TCP connect from a lab host: connected, refused (reachable, nothing listens), unreachable or timeout. */
const PROBE = `const s = require('net').connect({ host: process.argv[1], port: +process.argv[2], timeout: 1500 });
const out = (w) => { console.log(w); process.exit(0); };
s.on('connect', () => out('connected'));
s.on('timeout', () => out('timeout'));
s.on('error', (e) => out(e.code === 'ECONNREFUSED' ? 'refused' : /UNREACH/.test(e.code) ? 'unreachable' : e.code));`;

/** How a TCP connect from `host` of lab `name` to `address` ends (see PROBE). */
export async function labProbe(name: string, host: string, address: string, tcpPort = 445): Promise<string> {
  const r = await labExec(name, host, [process.execPath, '-e', PROBE, address, String(tcpPort)], { timeoutMs: 10000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** The probe's outcome when something on the way dropped the connect. */
export const blocked = (outcome: string): boolean => outcome === 'timeout' || outcome === 'unreachable';
