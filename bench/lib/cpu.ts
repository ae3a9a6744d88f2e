/**
 * CPU time from /proc (proc(5)), in seconds: the whole machine's busy time from /proc/stat and
 * one process's from its threads' schedstat. A relay can move its cost out of its own process into
 * softirq and kworkers, so a bench reports both.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { DsrError, ErrorCode } from '../../src/control/errors.js';
import { must } from '../../src/lab/process.js';

/** USER_HZ, the unit of every /proc time field. */
export async function clockTicks(): Promise<number> {
  return Number((await must('read CLK_TCK', ['getconf', 'CLK_TCK'])).trim());
}

/**
 * Busy time of all CPUs since boot: user + nice + system + irq + softirq + steal. Idle and
 * iowait are not work; guest time is already inside user.
 */
export function systemBusySeconds(hz: number, stat = readFileSync('/proc/stat', 'utf8')): number {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new DsrError(ErrorCode.LAB, '/proc/stat has no "cpu " line');
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / hz;
}

/** Per-thread schedstat (CONFIG_SCHED_INFO): CPU time in nanoseconds. */
const SCHEDSTAT = existsSync('/proc/self/schedstat');

/**
 * CPU time of a process, all its threads included; undefined when it is gone. From each thread's
 * /proc/PID/task/TID/schedstat (nanoseconds on a CPU): utime + stime in /proc/PID/stat come in
 * clock ticks (10 ms), too coarse for a relay that spends tens of ms on a 1 GiB transfer. A
 * thread that ended is missing from the sum, so the process's long-lived threads are what it
 * measures (Node's are). Without schedstat (a kernel without CONFIG_SCHED_INFO): utime + stime.
 */
export function processSeconds(pid: number, hz: number): number | undefined {
  if (!SCHEDSTAT) return ticksSeconds(pid, hz);
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // A thread that ended since the listing: gone from the sum either way.
    }
  }
  return ns / 1e9;
}

/** utime + stime from /proc/PID/stat, in clock ticks. */
function ticksSeconds(pid: number, hz: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the parenthesised command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / hz;
}
