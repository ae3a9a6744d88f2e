/**
 * A bench's flags: `--help` prints its usage line and exits 0; an unknown flag or a flag
 * without its value prints node:util's reason and the usage and exits 64 (EX_USAGE), not a
 * stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { errorMessage } from '../../src/control/errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export function benchArgs<T extends Options>(usage: string, options: T): ReturnType<typeof parseArgs<{ options: T }>>['values'] {
  if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ options }).values;
  } catch (e) {
    process.stderr.write(`${errorMessage(e)}\n${usage}\n`);
    process.exit(64);
  }
}
