/**
 * Runs inside a lab namespace (started by bench/session-setup): opens `parallel` loops that
 * each connect, NEGOTIATE (3.1.1), log on with NTLMv2 and log off, until `count` logons are
 * done, then prints {"logons": n, "seconds": s} as one JSON line.
 */
import { Smb2Client } from '../src/control/smb2/client.js';
import { ntOwfV1 } from '../src/control/tables/credentials.js';
import { Smb2Command } from '../src/control/wire/smb2/constants.js';
import { encodeReservedBody } from '../src/control/wire/smb2/simple.js';

const [host, countArg, parallelArg, user, password] = process.argv.slice(2);
if (!host || !countArg || !parallelArg || !user || !password) {
  process.stderr.write('usage: session-setup-worker HOST COUNT PARALLEL USER PASSWORD\n');
  process.exit(2);
}
const count = Number(countArg);
const ntHash = ntOwfV1(password);
let started = 0;

async function loop(): Promise<void> {
  while (started < count) {
    started++;
    const c = await Smb2Client.connect({ host: host!, port: 445, timeoutMs: 10000 });
    await c.negotiate();
    await c.sessionSetup(user!, ntHash);
    await c.request(Smb2Command.LOGOFF, encodeReservedBody());
    c.close();
  }
}

const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: Number(parallelArg) }, loop));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
process.stdout.write(JSON.stringify({ logons: count, seconds }) + '\n');
