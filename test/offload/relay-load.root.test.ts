/**
 * Loading the BPF objects (native/dsrbpf.c dsr_obj_load) while the process takes a steady stream
 * of signals, as root: the verifier gives up with EAGAIN on any pending signal, and libbpf's
 * retries do not outlast V8's CPU profiler (SIGPROF every 50 µs here). The shim blocks signals
 * for the load; before it did, `node --cpu-prof` ran the DSR without its relay.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { relaySkip } from './relay-harness.js';

const skip = relaySkip('relay load under signals');
const RELAY = fileURLToPath(new URL('../../src/offload/relay.js', import.meta.url));
const PORT = fileURLToPath(new URL('../../src/offload/port.js', import.meta.url));

test('the relay and port programs load under a CPU profiler sampling every 50 µs, both framings', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsr-prof-'));
  try {
    const script = `
      const { RelayPrograms } = await import(${JSON.stringify(RELAY)});
      const { PortPrograms } = await import(${JSON.stringify(PORT)});
      for (const framing of ['strparser', 'cut-through']) RelayPrograms.open({ framing }).close();
      PortPrograms.open({ switchAddress: '198.18.1.1' }).close();
      console.log('loaded');`;
    const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '50', '--cpu-prof-dir', dir, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'loaded');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
