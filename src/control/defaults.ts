/**
 * Well-known paths and ports, apart from the modules that use them: the CLI names them in its
 * help and option defaults without loading the configuration schema or the codecs (a `dsr`
 * admin verb starts in a fraction of the time).
 */
export const DEFAULT_ADMIN_SOCKET = '/run/dsr/dsr.sock';
export const DEFAULT_CREDENTIALS = '/var/lib/dsr/credentials.json';
/** The UDP port storage agents announce to (src/control/wire/announce.ts). */
export const ANNOUNCE_PORT = 4455;
