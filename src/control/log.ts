/**
 * Logging: one pino root per process, a child logger per component with stable event names
 * (`log.info({ event: 'session.created', ... })`). Nothing on the per-message path logs above
 * debug. Secrets never reach a log line: the redact list is a second line of defence.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

const REDACT = ['password', '*.password', 'ntHash', '*.ntHash', 'sessionKey', '*.sessionKey', 'key', '*.key', 'signingKey', '*.signingKey'];

export function createLogger(level: LevelWithSilent = 'info', destination: number | string = 2): Logger {
  return pino(
    { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: destination, sync: true }),
  );
}

/** A child logger for one component (`smb2`, `auth`, `ipc`, `admin`, `lab`, ...). */
export function component(root: Logger, name: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ component: name, ...bindings });
}

/** A logger that drops everything, for tests and for codecs' callers that do not log. */
export const silentLogger: Logger = pino({ level: 'silent' });
