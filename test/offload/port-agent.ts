/**
 * A process that owns a PortPrograms for test/offload/port.lab.root.test.ts. Started inside the
 * DSR's namespace (nsenter --net, so interface names resolve there), it opens the filter with
 * argv[2] (JSON: PortProgramsOptions minus log, plus the ports), attaches it, prints one JSON
 * line { ready, ids } and then answers stdin lines: "counters" -> one JSON line; "close" ->
 * closes and exits 0. The test SIGKILLs it to see what the kernel leaves behind.
 */
import { createInterface } from 'node:readline';
import type { PortEntry } from '../../src/offload/abi.js';
import { PortPrograms } from '../../src/offload/port.js';

interface AgentConfig {
  switchAddress: string;
  probeAddress?: string;
  pinDir?: string;
  /** Port i is ifnames[i]; entries[i] its server (null: none). */
  ifnames: string[];
  entries: (PortEntry | null)[];
}

const config = JSON.parse(process.argv[2] ?? '{}') as AgentConfig;
const ports = PortPrograms.open({ switchAddress: config.switchAddress, ...(config.probeAddress && { probeAddress: config.probeAddress }), ...(config.pinDir && { pinDir: config.pinDir }) });
config.entries.forEach((e, i) => ports.setPort(i, e ?? undefined));
ports.attach(config.ifnames);
const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
say({ ready: true, ids: ports.kernelIds() });

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'counters') say(ports.counters());
  if (line === 'close') {
    ports.close();
    say({ closed: true });
    process.exit(0);
  }
}
