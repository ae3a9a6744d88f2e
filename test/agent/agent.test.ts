import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AnnounceAgent, parseSmbConfShares } from '../../src/agent/agent.js';
import { silentLogger } from '../../src/control/log.js';
import { readKeyFile } from '../../src/control/resources/manager.js';
import { encodeAnnouncement } from '../../src/control/wire/announce.js';
import { sleep, waitUntil } from '../../src/lab/process.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

test('smb.conf: disk shares only (no global, homes, printers, printable, unavailable or hidden sections)', () => {
  const conf = `[global]
  netbios name = S
[data4]
  path = /srv/data4
  comment = Projects
[docs4]
path=/srv/docs4
; a comment
[printers]
  path = /var/spool
[lp]
  path = /var/spool/lp
  printable = yes
[off]
  path = /srv/off
  available = no
[homes]
  browseable = no
[nopath]
  comment = x
`;
  assert.deepEqual(parseSmbConfShares(conf), [
    { name: 'data4', comment: 'Projects', path: '/srv/data4' },
    { name: 'docs4', comment: '', path: '/srv/docs4' },
  ]);
});

test('a key file readable by others is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-key-'));
  try {
    writeFileSync(join(dir, 'k'), 'ab'.repeat(32), { mode: 0o644 });
    assert.throws(() => readKeyFile(join(dir, 'k')), /readable by others/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('agent -> DSR over loopback UDP', () => {
  let dir: string;
  let srv: TestServer;
  let keyFile: string;
  const send = (d: Buffer, port: number) =>
    new Promise<void>((resolve) => {
      const s = createSocket('udp4');
      s.send(d, port, '127.0.0.1', () => {
        s.close();
        resolve();
      });
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dsr-agent-'));
    keyFile = join(dir, 'agent.key');
    writeFileSync(keyFile, 'cd'.repeat(32), { mode: 0o600 });
    writeFileSync(join(dir, 'smb.conf'), '[global]\n[lo1]\n  path = /tmp\n  comment = loopback share\n');
    srv = await startTestServer({ agents: { listen: { address: '127.0.0.1', port: 0 }, keyFile, freshnessMs: 30000, heartbeatTimeoutMs: 1000 } });
  });
  after(async () => {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an announcement is accepted and learned; forged and replayed ones are rejected, logged once each and counted', async () => {
    const port = srv.server.manager!.announcePort!;
    const agent = new AnnounceAgent({ server: 'loop1', dsr: { address: '127.0.0.1', port }, smbConf: join(dir, 'smb.conf'), keyFile, intervalMs: 100, smbPort: 1 }, silentLogger);
    await agent.start();
    const table = srv.server.ctx.resources;
    assert.ok(await waitUntil(() => table.lookup('lo1') !== undefined, 2000), 'lo1 learned');
    assert.deepEqual(table.lookup('lo1')!.servers, ['loop1']);
    assert.equal(table.server('loop1')!.address, '127.0.0.1');
    assert.ok(table.serverState('loop1')!.load!.memTotalBytes > 0);
    // smb.conf replaced (as an editor or config tool does): the share set follows, live.
    writeFileSync(join(dir, 'smb.conf.new'), '[global]\n[lo1]\n  path = /tmp\n[lo3]\n  path = /tmp\n');
    renameSync(join(dir, 'smb.conf.new'), join(dir, 'smb.conf'));
    assert.ok(await waitUntil(() => table.lookup('lo3') !== undefined, 2000), 'lo3 learned');
    writeFileSync(join(dir, 'smb.conf'), '[global]\n[lo3]\n  path = /tmp\n');
    assert.ok(await waitUntil(() => table.lookup('lo1') === undefined, 2000), 'lo1 forgotten');
    await agent.stop();
    assert.ok(await waitUntil(() => table.serverState('loop1')!.lastAnnounce === undefined, 2000), 'stop: heartbeats no longer expected');

    const stats = srv.server.manager!.stats;
    const valid = encodeAnnouncement(
      { server: 'loop2', boot: 'f'.repeat(16), seq: 1, time: Date.now(), kind: 'start', intervalMs: 100, smbPort: 1, shares: [{ name: 'lo2', comment: '' }], load: { cpu: 0, cpus: 1, load1: 0, memTotalBytes: 1, memAvailableBytes: 1 } },
      readKeyFile(keyFile),
    );
    const forged = Buffer.from(valid);
    forged[forged.length - 2]! ^= 1;
    await send(forged, port);
    await send(valid, port);
    await send(valid, port);
    assert.ok(await waitUntil(() => stats.rejected['bad-mac'] === 1 && stats.rejected.replayed === 1, 2000), JSON.stringify(stats));
    assert.ok(table.lookup('lo2'), 'the valid one was learned');
    await sleep(50);
    const rejected = srv.logs.filter((l) => l.event === 'agent.rejected');
    assert.deepEqual(rejected.map((l) => l.reason), ['bad-mac', 'replayed']);
    assert.ok(!JSON.stringify(srv.logs).includes('cd'.repeat(32)), 'the key never reaches a log line');
  });
});
