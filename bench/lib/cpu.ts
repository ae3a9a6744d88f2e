/**
 * CPU time from /proc (proc(5)), in seconds: the whole machine's busy time from /proc/stat and
 * one process's from /proc/PID/stat. A relay can move its cost out of its own process into
 * softirq and kworkers, so a bench reports both.
 */
import { readFileSync } from 'node:fs';
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

/** utime + stime of a process, all its threads included; undefined when it is gone. */
export function processSeconds(pid: number, hz: number): number | undefined {
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
