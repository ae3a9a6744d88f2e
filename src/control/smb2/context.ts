/**
 * What every SMB2 handler sees: the process-wide tables and settings (`DsrContext`), the
 * request being handled (`Smb2Request`) and what it answers (`Smb2Reply`).
 */
import type { ShareLoad } from '../resources/load.js';
import type { SpnegoServer } from '../auth/spnego.js';
import type { PreauthIntegrity } from '../auth/smb2-signing.js';
import type { Config } from '../config.js';
import type { Offload } from '../../offload/offload.js';
import type { KernelRelay } from './kernel-path.js';
import type { Logger } from '../log.js';
import type { CredentialTable } from '../tables/credentials.js';
import type { OpenTable } from '../tables/opens.js';
import type { ResourceTable } from '../tables/resources.js';
import type { Session, SessionTable } from '../tables/sessions.js';
import type { Tree, TreeTable } from '../tables/trees.js';
import type { FileId } from '../wire/smb2/file-id.js';
import type { Smb2Header } from '../wire/smb2/header.js';
import type { BackendPool } from './backend.js';
import type { Forward, Route } from './redirect.js';

export interface DsrContext {
  readonly config: Config;
  readonly log: Logger;
  readonly sessions: SessionTable;
  readonly trees: TreeTable;
  readonly opens: OpenTable;
  readonly resources: ResourceTable;
  readonly credentials: CredentialTable;
  /** The fast path's copy of the session and tree rules. */
  readonly offload: Offload;
  /** When the DSR started, as a FILETIME. */
  readonly startTime: bigint;
  /** Each client connection's storage side, by connection id. */
  readonly pools: Map<number, BackendPool>;
  /** Bytes and operations forwarded per share (the rebalancer's load figures). */
  readonly load: ShareLoad;
  /** The kernel SMB2 relay and its counts, when config relay.mode is on and the kernel has it. */
  relay?: KernelRelay;
}

/** Connection state a handler may read or set (MS-SMB2 3.3.1.7). */
export interface ConnectionState {
  readonly id: number;
  readonly clientAddress: string;
  /** 0 until NEGOTIATE; 0x02FF after an SMB1 negotiate answered with the wildcard. */
  dialect: number;
  clientGuid: Buffer;
  clientCapabilities: number;
  clientSecurityMode: number;
  clientDialects: number[];
  serverSecurityMode: number;
  serverCapabilities: number;
  /** SIGNING_CAPABILITIES choice (3.1.1), undefined when not negotiated. */
  signingAlgorithmId: number | undefined;
  /** Connection.CipherId: AES-128-CCM for 3.0/3.0.2 with CAP_ENCRYPTION, the ENCRYPTION_CAPABILITIES choice for 3.1.1. */
  cipher: number | undefined;
  /** Connection.PreauthIntegrityHashValue (3.1.1): the NEGOTIATE exchange's hash chain. */
  preauth: PreauthIntegrity | undefined;
  /** Authentications in progress on this connection, by SessionId (Connection.PreauthSessionTable). */
  readonly authInProgress: Map<bigint, PendingAuth>;
  maxTransactSize: number;
  maxReadSize: number;
  maxWriteSize: number;
  /** This connection's backend connections and sessions. */
  readonly backends: BackendPool;
  /** Where each redirected tree of this connection goes. */
  readonly routes: WeakMap<Tree, Route>;
}

/** One SESSION_SETUP exchange not finished yet. */
export interface PendingAuth {
  readonly spnego: SpnegoServer;
  /** The session's own preauth chain (3.1.1), cloned from the connection's. */
  readonly preauth: PreauthIntegrity | undefined;
  /** True when an already valid session re-authenticates. */
  readonly reauth: boolean;
}

export interface Smb2Request {
  readonly ctx: DsrContext;
  readonly conn: ConnectionState;
  /** This message, header included (for a compound member: up to NextCommand). */
  readonly msg: Buffer;
  readonly hdr: Smb2Header;
  /** The session named by SessionId, once validated (absent for NEGOTIATE, new SESSION_SETUP, ECHO). */
  readonly session: Session | undefined;
  /** The tree named by TreeId, for commands that act on a tree. */
  readonly tree: Tree | undefined;
  /** The request is a related compound member (MS-SMB2 3.3.5.2.7.2). */
  readonly related: boolean;
  /** FileId of the previous CREATE in a related compound chain, when the DSR answered it. */
  readonly relatedFileId: FileId | undefined;
  /** The previous message of a related chain, when it went to a server. */
  readonly relatedForward: Forward | undefined;
}

export interface Smb2Reply {
  status: number;
  /** Response body (after the 64-byte header). */
  body: Buffer;
  /** SessionId to put in the response header when it differs from the request's. */
  sessionId?: bigint;
  /** TreeId to put in the response header (TREE_CONNECT). */
  treeId?: number;
  /** FileId created by this request, for related compound requests that follow. */
  createdFileId?: FileId;
  /** Signing override: sign with this session even if the request was unsigned (final SESSION_SETUP). */
  signWith?: Session;
  /** Never sign (e.g. the session was just torn down). */
  unsigned?: boolean;
  /** Sees the reply message exactly as sent (preauth integrity hashing). */
  onWire?: (msg: Buffer) => void;
  /** Runs once the reply is on the wire (logoff teardown). */
  after?: () => void;
  /** Close the connection after sending (protocol rules that require a disconnect). */
  disconnect?: string;
  /** The request goes to a storage server; its response comes from there. */
  forward?: Forward;
}
