/**
 * The storage-port filter on a real lab's storage switch (root): a process in the DSR's
 * namespace (port-agent) attaches it to sp1..sp4 with server1 on port 0 and server2 on port 1.
 * The lab's DSR runs without its own filter and with isolation off on sp1 and sp2, so the
 * agent's filter is the only thing between the servers (port-filter.lab.root.test.ts tests the
 * DSR's own).
 * Server-to-server and server-to-client traffic is dropped (and was not before), SMB traffic
 * through the DSR works and moves the allowed counters, and neither close() nor a SIGKILL of the
 * attaching process leaves a program, map, link, tc filter or pin behind.
 *
 *   client ── cp0 [DSR ns: br0 198.18.1.1] ─ sp1 ── server1 198.18.1.11   (port 0)
 *                                           ─ sp2 ── server2 198.18.1.12   (port 1)
 *                                           ─ sp3, sp4: no server          (ports 2, 3)
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { adminCall } from '../../src/control/admin.js';
import { labDirectPath, labDown, labExec, labStatus, labUp, type LabStatus } from '../../src/lab/lab.js';
import { inNetns, runIn } from '../../src/lab/netns.js';
import type { PortCounter } from '../../src/offload/port.js';
import { ADDRESSES } from '../../src/lab/topology.js';
import { ALICE, labSkip, uniqueLabName } from '../helpers/lab.js';

const AGENT = fileURLToPath(new URL('./port-agent.js', import.meta.url));
const name = uniqueLabName();
let lab: LabStatus;
let macs: string[];

interface Agent {
  proc: ChildProcessWithoutNullStreams;
  ids: { progs: number[]; maps: number[]; links: number[] };
  request(line: string): Promise<unknown>;
}

async function startAgent(pinDir?: string): Promise<Agent> {
  const config = {
    switchAddress: lab.dsr.storageAddress,
    // The lab's DSR probes its servers from here: a filter that dropped it would fail them.
    probeAddress: ADDRESSES.dsrProbe,
    ...(pinDir && { pinDir }),
    ifnames: lab.ports.map((p) => p.name),
    entries: lab.ports.map((_, i) => {
      const s = lab.servers[i];
      return s && i < 2 ? { server: i + 1, address: s.address, mac: macs[i]! } : null;
    }),
  };
  // nsenter execs node (no fork), so proc.pid is the agent itself.
  const [cmd, ...args] = inNetns(lab.dsr.namespace, [process.execPath, '--enable-source-maps', AGENT, JSON.stringify(config)]);
  const proc = spawn(cmd!, args);
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`port agent exited: ${stderr}`);
    return JSON.parse(r.value) as unknown;
  };
  const ready = (await next()) as { ids: Agent['ids'] };
  return {
    proc,
    ids: ready.ids,
    request: async (line) => {
      proc.stdin.write(line + '\n');
      return next();
    },
  };
}

const counters = async (a: Agent) => (await a.request('counters')) as PortCounter[];

/** Sum of the counters matching `f`. */
function total(cs: PortCounter[], f: Partial<PortCounter>): { packets: number; bytes: number } {
  const match = cs.filter((c) => Object.entries(f).every(([k, v]) => c[k as keyof PortCounter] === v));
  return { packets: match.reduce((n, c) => n + c.packets, 0), bytes: match.reduce((n, c) => n + c.bytes, 0) };
}

/** A TCP connect from a lab host: 'connected', 'refused' (reachable, nobody listens) or 'timeout'/'failed'. */
async function connect(host: string, address: string, port: number): Promise<string> {
  const r = await labExec(name, host, ['timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`]);
  if (r.code === 0) return 'connected';
  if (r.code === 124) return 'timeout';
  return /refused/i.test(r.stderr) ? 'refused' : `failed: ${r.stderr.trim()}`;
}

/** What of the agent's kernel objects still exists (ids bpftool still finds). */
function leftovers(ids: Agent['ids']): string[] {
  const exists = (kind: string, id: number) => spawnSync('bpftool', [kind, 'show', 'id', String(id)]).status === 0;
  return [
    ...ids.progs.filter((id) => exists('prog', id)).map((id) => `prog ${id}`),
    ...ids.maps.filter((id) => exists('map', id)).map((id) => `map ${id}`),
    ...ids.links.filter((id) => exists('link', id)).map((id) => `link ${id}`),
  ];
}

/** The kernel frees programs and maps after an RCU grace period: poll briefly. */
async function noLeftovers(ids: Agent['ids']): Promise<void> {
  let left = leftovers(ids);
  for (let i = 0; i < 40 && left.length; i++) {
    await new Promise((r) => setTimeout(r, 50));
    left = leftovers(ids);
  }
  assert.deepEqual(left, [], 'kernel objects left behind');
  for (const p of lab.ports) {
    for (const dir of ['ingress', 'egress']) {
      const r = await runIn(lab.dsr.namespace, ['tc', 'filter', 'show', 'dev', p.name, dir]);
      assert.equal(r.stdout.trim(), '', `tc filters on ${p.name} ${dir}`);
    }
  }
}

describe('storage port filter on the lab switch', { skip: labSkip }, () => {
  let dir: string;
  /** A bpffs for the debug pins, inside the lab's state directory. */
  let pinRoot: string | undefined;

  before(async () => {
    // The DSR's own filter stays off, and isolation off on sp1 and sp2: the baseline is an open switch.
    lab = await labUp({ name, servers: 2, portFilter: false });
    for (const port of ['sp1', 'sp2']) await adminCall(lab.dsr.adminSocket, 'port.set', { port, isolated: false });
    macs = await Promise.all(
      lab.servers.map(async (s) => {
        const r = await runIn(s.namespace, ['ip', '-j', 'link', 'show', 'eth0']);
        return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
      }),
    );
    // server1 knows server2's MAC, so its frames to server2 reach the switch without ARP.
    await runIn(lab.servers[0]!.namespace, ['ip', 'neigh', 'replace', lab.servers[1]!.address, 'lladdr', macs[1]!, 'dev', 'eth0', 'nud', 'permanent']);
    await labDirectPath(name, true);
    dir = mkdtempSync(join(tmpdir(), 'dsr-port-'));
    pinRoot = join(lab.dsr.configPath, '..', 'bpf');
    mkdirSync(pinRoot);
    assert.equal(spawnSync('mount', ['-t', 'bpf', 'bpf', pinRoot]).status, 0, 'mount a bpffs');
  });
  after(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (pinRoot) spawnSync('umount', [pinRoot]);
    await labDown(name);
  });

  test('without the filter, server1 reaches server2 and the client (the baseline)', async () => {
    const shown = (await adminCall(lab.dsr.adminSocket, 'offload.show')) as { ports: { filter: string; reason?: string } };
    assert.deepEqual(shown.ports, { filter: 'off', reason: 'switch.filter is false' }, "the DSR's own filter is off");
    assert.equal(await connect('server1', lab.servers[1]!.address, 445), 'connected');
    assert.equal(await connect('server1', lab.client.address, 445), 'refused');
  });

  test('attached: server-to-server and server-to-client are dropped as dst-ip, SMB through the DSR works and is counted; close() leaves nothing', async () => {
    const pinDir = join(pinRoot!, 'dsr');
    const agent = await startAgent(pinDir);
    try {
      assert.equal(agent.ids.links.length, 2 * lab.ports.length, 'one tcx link per port and direction');
      const c0 = await counters(agent);
      assert.equal(await connect('server1', lab.servers[1]!.address, 445), 'timeout');
      assert.equal(await connect('server1', lab.client.address, 445), 'timeout');
      const c1 = await counters(agent);
      const dropped = (cs: PortCounter[]) => total(cs, { port: 0, server: 1, dir: 'ingress', reason: 'dst-ip' }).packets;
      assert.ok(dropped(c1) - dropped(c0) >= 2, `SYNs dropped on port 0: ${dropped(c1) - dropped(c0)}`);

      const size = 4 << 20;
      writeFileSync(join(dir, 'f.bin'), randomBytes(size));
      const nft0 = (await labStatus(name)).ports[0]!.tcp;
      const r = await labExec(name, 'client', ['smbclient', `//${lab.dsr.clientAddress}/data1`, '-U', ALICE, '-c', `lcd ${dir}; put f.bin; get f.bin f.back`], { timeoutMs: 60000 });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const nft1 = (await labStatus(name)).ports[0]!.tcp;
      const c2 = await counters(agent);
      const delta = (d: 'ingress' | 'egress') => {
        const [a, b] = [total(c1, { port: 0, server: 1, dir: d, reason: 'allowed' }), total(c2, { port: 0, server: 1, dir: d, reason: 'allowed' })];
        return { packets: b.packets - a.packets, bytes: b.bytes - a.bytes };
      };
      // The put goes to server1 (egress of sp1), the get comes from it (ingress).
      assert.ok(delta('egress').bytes >= size, `egress bytes ${delta('egress').bytes}`);
      assert.ok(delta('ingress').bytes >= size, `ingress bytes ${delta('ingress').bytes}`);
      // Every TCP packet nftables saw arrive on sp1 passed the filter first (tc ingress runs before netfilter ingress).
      assert.ok(delta('ingress').packets >= nft1.rxPackets - nft0.rxPackets, `ingress packets ${delta('ingress').packets} vs nft ${nft1.rxPackets - nft0.rxPackets}`);
      for (const reason of ['src-mac', 'src-ip', 'malformed', 'unassigned'] as const) {
        assert.deepEqual(total(c2, { port: 0, dir: 'ingress', reason }), total(c1, { port: 0, dir: 'ingress', reason }), `no ${reason} drop from server1`);
      }
      assert.equal(readdirSync(pinDir).length, 6, 'pins (a debug option): 4 maps and 2 programs');
      assert.deepEqual(await agent.request('close'), { closed: true });
    } finally {
      agent.proc.kill('SIGKILL');
    }
    await noLeftovers(agent.ids);
    assert.equal(existsSync(pinDir), false, 'pin directory removed');
    assert.equal(await connect('server1', lab.servers[1]!.address, 445), 'connected', 'detached: server2 reachable again');
  });

  test('SIGKILL of the attaching process leaves no program, map, link or tc filter, and traffic flows again', async () => {
    const agent = await startAgent();
    assert.equal(await connect('server1', lab.servers[1]!.address, 445), 'timeout');
    agent.proc.kill('SIGKILL');
    await new Promise((r) => agent.proc.on('exit', r));
    await noLeftovers(agent.ids);
    assert.equal(await connect('server1', lab.servers[1]!.address, 445), 'connected');
  });
});
