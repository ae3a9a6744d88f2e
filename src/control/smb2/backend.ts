/**
 * The storage side of one client connection (source paragraphs 0075-0077): one TCP connection
 * per storage server, and on it one session per client session, so lease keys and per-user
 * rights never mix between clients. Sessions with no tree left, and connections with no session
 * left, close after `limits.backendIdleSeconds`; the client connection closing closes them all.
 */
import { dialectValues } from '../config.js';
import { DsrError, ErrorCode, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { StorageServer } from '../tables/resources.js';
import { formatSessionId } from '../tables/sessions.js';
import { dialectName, SMB2_DIALECTS } from '../wire/smb2/constants.js';
import type { Smb2Header } from '../wire/smb2/header.js';
import { type ClientSession, Smb2Client } from './client.js';
import type { DsrContext } from './context.js';

/** The credentials a backend session logs on with. */
export interface BackendCredentials {
  user: string;
  domain: string;
  ntHash: Buffer;
}

/** One client session's session on one server. */
export interface BackendSession {
  readonly clientSessionId: bigint;
  readonly session: ClientSession;
  /** Trees of the client session mapped onto this backend session. */
  trees: number;
  idleTimer: NodeJS.Timeout | undefined;
}

/** One server, as seen from one client connection. */
export class BackendLink {
  /** Sessions by client SessionId; a promise while the logon runs. */
  readonly sessions = new Map<bigint, Promise<BackendSession>>();
  private idleTimer: NodeJS.Timeout | undefined;
  /** Closed on purpose (idle): its end is no sign of a failed server. */
  retired = false;

  constructor(
    readonly server: StorageServer,
    readonly client: Smb2Client,
  ) {}

  get dialect(): number {
    return this.client.dialect;
  }

  stopIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  startIdle(ms: number, close: () => void): void {
    this.stopIdle();
    this.idleTimer = setTimeout(close, ms);
    this.idleTimer.unref();
  }
}

export interface BackendView {
  server: string;
  address: string;
  dialect: string;
  sessions: { clientSessionId: string; backendSessionId: string; trees: number }[];
}

export class BackendPool {
  private readonly links = new Map<string, Promise<BackendLink>>();
  private closed = false;

  constructor(
    private readonly ctx: DsrContext,
    private readonly log: Logger,
    /** Oplock and lease break notifications from a server. */
    private readonly onBreak: (link: BackendLink, msg: Buffer, hdr: Smb2Header) => void,
    /** A server's connection ended; every tree on it is gone. */
    private readonly onLost: (link: BackendLink, why: string) => void,
    /** The dialect the client negotiated with the DSR. */
    private readonly clientDialect: () => number,
  ) {}

  /** Backend connections open or being opened. */
  get size(): number {
    return this.links.size;
  }

  private get idleMs(): number {
    return this.ctx.config.limits.backendIdleSeconds * 1000;
  }

  private get timeoutMs(): number {
    return this.ctx.config.limits.backendTimeoutSeconds * 1000;
  }

  /** The connection to a server, made (connect + NEGOTIATE) on first use. */
  link(server: StorageServer): Promise<BackendLink> {
    if (this.closed) return Promise.reject(new DsrError(ErrorCode.PROTOCOL, 'client connection closed'));
    let p = this.links.get(server.name);
    if (!p) {
      p = this.connect(server);
      this.links.set(server.name, p);
      p.catch(() => this.links.delete(server.name));
    }
    return p;
  }

  private async connect(server: StorageServer): Promise<BackendLink> {
    const cfg = this.ctx.config.servers[server.name];
    // The server is offered nothing newer than the client speaks, so what a request means (info
    // classes, contexts, flags) is the same on both sides; a server may still answer lower.
    const allowed = cfg?.dialects ? dialectValues(cfg.dialects) : [...SMB2_DIALECTS];
    const upToClient = allowed.filter((d) => d <= this.clientDialect());
    const client = await Smb2Client.connect({
      host: server.address,
      port: server.port,
      timeoutMs: this.timeoutMs,
      requireSigning: cfg?.signing === 'required',
      dialects: upToClient.length > 0 ? upToClient : allowed,
    });
    const link = new BackendLink(server, client);
    client.onUnsolicited = (msg, hdr) => this.onBreak(link, msg, hdr);
    client.onClosed = (e) => {
      this.links.delete(server.name);
      link.stopIdle();
      if (!this.closed && !link.retired) this.onLost(link, errorMessage(e));
    };
    try {
      await client.negotiate();
    } catch (e) {
      client.close();
      throw e;
    }
    if (this.closed) {
      client.close();
      throw new DsrError(ErrorCode.PROTOCOL, 'client connection closed');
    }
    this.log.info({ event: 'backend.connected', server: server.name, address: server.address, dialect: dialectName(client.dialect) }, `connected to ${server.name}`);
    // A server that negotiates is up again; its shares stay where failover put them.
    if (this.ctx.resources.recoverServer(server.name)) this.log.warn({ event: 'backend.server_recovered', server: server.name }, `${server.name} is back`);
    return link;
  }

  /** The client session's session on this server, logged on at first use. */
  session(link: BackendLink, clientSessionId: bigint, creds: BackendCredentials): Promise<BackendSession> {
    let p = link.sessions.get(clientSessionId);
    if (!p) {
      p = link.client.logon(creds.user, creds.ntHash, creds.domain).then((session) => {
        this.log.info(
          { event: 'backend.session', server: link.server.name, session: formatSessionId(clientSessionId), backendSession: formatSessionId(session.sessionId), user: creds.user, signs: session.signs },
          `backend session on ${link.server.name}`,
        );
        return { clientSessionId, session, trees: 0, idleTimer: undefined };
      });
      link.sessions.set(clientSessionId, p);
      p.catch(() => {
        link.sessions.delete(clientSessionId);
        this.maybeIdleLink(link);
      });
    }
    link.stopIdle();
    // A session about to get a tree must not idle out under it; a failed tree connect re-arms the timer.
    return p.then((bs) => {
      if (bs.idleTimer) clearTimeout(bs.idleTimer);
      bs.idleTimer = undefined;
      return bs;
    });
  }

  /** A tree now uses this backend session. */
  addTree(bs: BackendSession): void {
    bs.trees++;
    if (bs.idleTimer) clearTimeout(bs.idleTimer);
    bs.idleTimer = undefined;
  }

  /** `count` trees of this backend session are gone (0: none was made); a session with none left idles out. */
  releaseTree(link: BackendLink, bs: BackendSession, count = 1): void {
    bs.trees = Math.max(bs.trees - count, 0);
    if (bs.trees > 0 || this.closed) return;
    if (bs.idleTimer) clearTimeout(bs.idleTimer);
    bs.idleTimer = setTimeout(() => void this.endSession(link, bs, 'idle'), this.idleMs);
    bs.idleTimer.unref();
  }

  /** Logs a backend session off and forgets it. */
  private async endSession(link: BackendLink, bs: BackendSession, why: string): Promise<void> {
    if (bs.idleTimer) clearTimeout(bs.idleTimer);
    bs.idleTimer = undefined;
    if ((await link.sessions.get(bs.clientSessionId)?.catch(() => undefined)) !== bs) return;
    link.sessions.delete(bs.clientSessionId);
    this.log.info({ event: 'backend.logoff', server: link.server.name, backendSession: formatSessionId(bs.session.sessionId), why }, `backend session on ${link.server.name} ended`);
    try {
      await link.client.logoff(bs.session);
    } catch (e) {
      this.log.debug({ event: 'backend.logoff_failed', server: link.server.name, err: errorMessage(e) }, 'backend LOGOFF failed');
    }
    this.maybeIdleLink(link);
  }

  private maybeIdleLink(link: BackendLink): void {
    if (link.sessions.size > 0 || this.closed || link.client.isClosed) return;
    link.startIdle(this.idleMs, () => {
      if (link.sessions.size > 0) return;
      this.log.info({ event: 'backend.idle_close', server: link.server.name }, `closing idle connection to ${link.server.name}`);
      this.links.delete(link.server.name);
      link.retired = true;
      link.client.close();
    });
  }

  /** The client session ended (LOGOFF, replaced, expired): end its backend sessions. */
  async endClientSession(clientSessionId: bigint): Promise<void> {
    const links = await Promise.all([...this.links.values()].map((p) => p.catch(() => undefined)));
    await Promise.all(
      links.map(async (link) => {
        const bs = await link?.sessions.get(clientSessionId)?.catch(() => undefined);
        if (link && bs) await this.endSession(link, bs, 'client session ended');
      }),
    );
  }

  /** A server was declared failed (its storage port went down): its connection ends, and failover follows. */
  abandon(serverName: string): void {
    void this.links.get(serverName)?.then(
      (link) => link.client.close(),
      () => undefined,
    );
  }

  /** The client connection closed: drop every backend connection (the servers drop their sessions with them). */
  closeAll(): void {
    this.closed = true;
    for (const p of this.links.values()) {
      void p.then(
        (link) => {
          link.stopIdle();
          for (const s of link.sessions.values()) void s.then((bs) => bs.idleTimer && clearTimeout(bs.idleTimer), () => undefined);
          link.client.close();
        },
        () => undefined,
      );
    }
    this.links.clear();
  }

  async view(): Promise<BackendView[]> {
    const links = await Promise.all([...this.links.values()].map((p) => p.catch(() => undefined)));
    return Promise.all(
      links
        .filter((l): l is BackendLink => l !== undefined)
        .map(async (l) => ({
          server: l.server.name,
          address: l.server.address,
          dialect: dialectName(l.dialect),
          sessions: (await Promise.all([...l.sessions.values()].map((s) => s.catch(() => undefined))))
            .filter((s): s is BackendSession => s !== undefined)
            .map((s) => ({ clientSessionId: formatSessionId(s.clientSessionId), backendSessionId: formatSessionId(s.session.sessionId), trees: s.trees })),
        })),
    );
  }
}
