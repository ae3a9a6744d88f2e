/**
 * SMB2 protocol constants, spelled as in MS-SMB2. Command-specific flag sets live beside the
 * command's codec; what several modules share lives here.
 */

/** MS-SMB2 2.2.1: ProtocolId 0xFE 'S' 'M' 'B'. */
export const SMB2_PROTOCOL_ID = 0x424d53fe;
/** MS-SMB2 2.2.41: ProtocolId 0xFD 'S' 'M' 'B' of an SMB2 TRANSFORM_HEADER. */
export const SMB2_TRANSFORM_PROTOCOL_ID = 0x424d53fd;
/** MS-SMB2 2.2.42: ProtocolId 0xFC 'S' 'M' 'B' of an SMB2 COMPRESSION_TRANSFORM_HEADER. */
export const SMB2_COMPRESSION_PROTOCOL_ID = 0x424d53fc;
/** MS-SMB 2.2.3.1: ProtocolId 0xFF 'S' 'M' 'B' of an SMB1 header. */
export const SMB1_PROTOCOL_ID = 0x424d53ff;

export const SMB2_HEADER_SIZE = 64;

/** MS-SMB2 2.2.1.2 Command. */
export const Smb2Command = {
  NEGOTIATE: 0x0000,
  SESSION_SETUP: 0x0001,
  LOGOFF: 0x0002,
  TREE_CONNECT: 0x0003,
  TREE_DISCONNECT: 0x0004,
  CREATE: 0x0005,
  CLOSE: 0x0006,
  FLUSH: 0x0007,
  READ: 0x0008,
  WRITE: 0x0009,
  LOCK: 0x000a,
  IOCTL: 0x000b,
  CANCEL: 0x000c,
  ECHO: 0x000d,
  QUERY_DIRECTORY: 0x000e,
  CHANGE_NOTIFY: 0x000f,
  QUERY_INFO: 0x0010,
  SET_INFO: 0x0011,
  OPLOCK_BREAK: 0x0012,
} as const;
export type Smb2Command = (typeof Smb2Command)[keyof typeof Smb2Command];
export const SMB2_COMMAND_COUNT = 0x13;

const commandNames = Object.fromEntries(Object.entries(Smb2Command).map(([k, v]) => [v, k])) as Record<number, string>;
export function smb2CommandName(c: number): string {
  return commandNames[c] ?? `0x${c.toString(16)}`;
}

/** MS-SMB2 2.2.1.2 Flags. */
export const Smb2Flags = {
  SERVER_TO_REDIR: 0x00000001,
  ASYNC_COMMAND: 0x00000002,
  RELATED_OPERATIONS: 0x00000004,
  SIGNED: 0x00000008,
  PRIORITY_MASK: 0x00000070,
  DFS_OPERATIONS: 0x10000000,
  REPLAY_OPERATION: 0x20000000,
} as const;

/** MS-SMB2 2.2.3 Dialects. */
export const Smb2Dialect = {
  SMB202: 0x0202,
  SMB210: 0x0210,
  SMB300: 0x0300,
  SMB302: 0x0302,
  SMB311: 0x0311,
  /** MS-SMB2 3.3.5.3.1: the wildcard revision answered to an SMB1 multi-protocol negotiate. */
  WILDCARD: 0x02ff,
} as const;
export const SMB2_DIALECTS = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311] as const;

export function dialectName(d: number): string {
  switch (d) {
    case 0x0202: return '2.0.2';
    case 0x0210: return '2.1';
    case 0x0300: return '3.0';
    case 0x0302: return '3.0.2';
    case 0x0311: return '3.1.1';
    case 0x02ff: return '2.???';
    default: return `0x${d.toString(16)}`;
  }
}
export function isSmb3(dialect: number): boolean {
  return dialect >= Smb2Dialect.SMB300 && dialect !== Smb2Dialect.WILDCARD;
}

/** MS-SMB2 2.2.3 SecurityMode. */
export const Smb2SecurityMode = {
  SIGNING_ENABLED: 0x0001,
  SIGNING_REQUIRED: 0x0002,
} as const;

/** MS-SMB2 2.2.3 Capabilities. */
export const Smb2GlobalCap = {
  DFS: 0x00000001,
  LEASING: 0x00000002,
  LARGE_MTU: 0x00000004,
  MULTI_CHANNEL: 0x00000008,
  PERSISTENT_HANDLES: 0x00000010,
  DIRECTORY_LEASING: 0x00000020,
  ENCRYPTION: 0x00000040,
  NOTIFICATIONS: 0x00000080,
} as const;

/** MS-SMB2 2.2.3.1 ContextType. */
export const NegotiateContextType = {
  PREAUTH_INTEGRITY_CAPABILITIES: 0x0001,
  ENCRYPTION_CAPABILITIES: 0x0002,
  COMPRESSION_CAPABILITIES: 0x0003,
  NETNAME_NEGOTIATE_CONTEXT_ID: 0x0005,
  TRANSPORT_CAPABILITIES: 0x0006,
  RDMA_TRANSFORM_CAPABILITIES: 0x0007,
  SIGNING_CAPABILITIES: 0x0008,
} as const;

/** MS-SMB2 2.2.3.1.1 HashAlgorithms. */
export const HashAlgorithm = { SHA_512: 0x0001 } as const;

/** MS-SMB2 2.2.3.1.2 Ciphers. */
export const Cipher = {
  AES_128_CCM: 0x0001,
  AES_128_GCM: 0x0002,
  AES_256_CCM: 0x0003,
  AES_256_GCM: 0x0004,
} as const;

/** MS-SMB2 2.2.3.1.7 SigningAlgorithms. */
export const SigningAlgorithm = {
  HMAC_SHA256: 0x0000,
  AES_CMAC: 0x0001,
  AES_GMAC: 0x0002,
} as const;

/** MS-SMB2 2.2.5 SESSION_SETUP request Flags. */
export const SessionSetupRequestFlags = { BINDING: 0x01 } as const;

/** MS-SMB2 2.2.6 SessionFlags. */
export const SessionFlags = {
  IS_GUEST: 0x0001,
  IS_NULL: 0x0002,
  ENCRYPT_DATA: 0x0004,
} as const;

/** MS-SMB2 2.2.10 ShareType. */
export const ShareType = {
  DISK: 0x01,
  PIPE: 0x02,
  PRINT: 0x03,
} as const;

/** MS-SMB2 2.2.10 ShareFlags. */
export const ShareFlags = {
  MANUAL_CACHING: 0x00000000,
  AUTO_CACHING: 0x00000010,
  VDO_CACHING: 0x00000020,
  NO_CACHING: 0x00000030,
  DFS: 0x00000001,
  DFS_ROOT: 0x00000002,
  RESTRICT_EXCLUSIVE_OPENS: 0x00000100,
  FORCE_SHARED_DELETE: 0x00000200,
  ALLOW_NAMESPACE_CACHING: 0x00000400,
  ACCESS_BASED_DIRECTORY_ENUM: 0x00000800,
  FORCE_LEVELII_OPLOCK: 0x00001000,
  ENABLE_HASH_V1: 0x00002000,
  ENABLE_HASH_V2: 0x00004000,
  ENCRYPT_DATA: 0x00008000,
  IDENTITY_REMOTING: 0x00040000,
  COMPRESS_DATA: 0x00100000,
} as const;

/** MS-SMB2 2.2.10 Capabilities (of a share). */
export const ShareCap = {
  DFS: 0x00000008,
  CONTINUOUS_AVAILABILITY: 0x00000010,
  SCALEOUT: 0x00000020,
  CLUSTER: 0x00000040,
  ASYMMETRIC: 0x00000080,
  REDIRECT_TO_OWNER: 0x00000100,
} as const;

/** MS-SMB2 2.2.31 CtlCode values the DSR looks at. */
export const FsctlCode = {
  DFS_GET_REFERRALS: 0x00060194,
  DFS_GET_REFERRALS_EX: 0x000601b0,
  PIPE_PEEK: 0x0011400c,
  PIPE_WAIT: 0x00110018,
  PIPE_TRANSCEIVE: 0x0011c017,
  SRV_COPYCHUNK: 0x001440f2,
  SRV_COPYCHUNK_WRITE: 0x001480f2,
  SRV_ENUMERATE_SNAPSHOTS: 0x00144064,
  SRV_REQUEST_RESUME_KEY: 0x00140078,
  SRV_READ_HASH: 0x001441bb,
  LMR_REQUEST_RESILIENCY: 0x001401d4,
  QUERY_NETWORK_INTERFACE_INFO: 0x001401fc,
  SET_REPARSE_POINT: 0x000900a4,
  GET_REPARSE_POINT: 0x000900a8,
  FILE_LEVEL_TRIM: 0x00098208,
  VALIDATE_NEGOTIATE_INFO: 0x00140204,
} as const;

/** MS-SMB2 2.2.37 InfoType. */
export const InfoType = {
  FILE: 0x01,
  FILESYSTEM: 0x02,
  SECURITY: 0x03,
  QUOTA: 0x04,
} as const;

/** The MessageId of unsolicited oplock/lease break notifications (MS-SMB2 3.3.4.6). */
export const UNSOLICITED_MESSAGE_ID = 0xffffffffffffffffn;
