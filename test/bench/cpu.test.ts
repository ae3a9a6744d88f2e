/** bench/lib/cpu.ts: a process's CPU time, to well under a clock tick. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { clockTicks, processSeconds } from '../../bench/lib/cpu.js';

const skip = existsSync('/proc/self/schedstat') ? false : 'no /proc/PID/schedstat (a kernel without CONFIG_SCHED_INFO): clock ticks only';

test('processSeconds counts a child that spins for 15 ms of CPU as 15 ms (clock ticks would say 10 or 20), and one that sleeps 30 ms as under 5; undefined once it is gone', { skip }, async () => {
  const hz = await clockTicks();
  // Each child waits for a line on stdin, then spins until it has used 15 ms of CPU (however
  // busy the machine) or sleeps 30 ms, prints, and waits again.
  const child = (work: string) => {
    const p = spawn(process.execPath, ['-e', `process.stdin.on('data', () => { ${work}; process.stdout.write('.'); });`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const once = () => new Promise<void>((resolve) => p.stdout!.once('data', () => resolve()));
    return { p, once };
  };
  const spin = child('const t = process.cpuUsage(); for (let u = process.cpuUsage(t); u.user + u.system < 15_000; u = process.cpuUsage(t));');
  const rest = child('Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30)');
  try {
    // A first round warms both up (their start-up is not what is measured).
    for (const c of [spin, rest]) {
      const first = c.once();
      c.p.stdin!.write('\n');
      await first;
    }
    const measure = async (c: typeof spin) => {
      const before = processSeconds(c.p.pid!, hz)!;
      const done = c.once();
      c.p.stdin!.write('\n');
      await done;
      return processSeconds(c.p.pid!, hz)! - before;
    };
    const spun = await measure(spin);
    const slept = await measure(rest);
    assert.ok(spun >= 0.0145 && spun < 0.0195, `spinning 15 ms counted ${spun} s`);
    assert.ok(slept < 0.005, `sleeping 30 ms counted ${slept} s`);
  } finally {
    for (const c of [spin, rest]) c.p.kill();
  }
  const gone = spin.p;
  await new Promise((resolve) => (gone.exitCode !== null || gone.signalCode !== null ? resolve(undefined) : gone.once('exit', resolve)));
  assert.equal(processSeconds(gone.pid!, hz), undefined);
});
