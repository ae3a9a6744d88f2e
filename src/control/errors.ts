/**
 * Named error classes with stable codes (undici / nats.js style). Every error the DSR raises
 * on purpose is a DsrError; `code` is stable and safe to match on, `message` is for people.
 */

/** Stable error codes. Keep in sync with docs/errors.md. */
export const ErrorCode = {
  /** A frame or message is shorter than its fixed part or a length field says. */
  WIRE_TRUNCATED: 'DSR_WIRE_TRUNCATED',
  /** A field holds a value the spec forbids (StructureSize, ProtocolId, reserved bits...). */
  WIRE_BAD_FIELD: 'DSR_WIRE_BAD_FIELD',
  /** An offset/length pair points outside its message, or buffers overlap. */
  WIRE_BAD_OFFSET: 'DSR_WIRE_BAD_OFFSET',
  /** A frame is larger than the configured maximum. */
  WIRE_OVERSIZE: 'DSR_WIRE_OVERSIZE',
  /** The transport framing itself is broken (not a NetBIOS session message). */
  WIRE_FRAMING: 'DSR_WIRE_FRAMING',
  /** An encoder was handed a value that cannot be represented. */
  WIRE_ENCODE: 'DSR_WIRE_ENCODE',
  /** Authentication failed (bad password, unknown user, bad MIC...). */
  AUTH_FAILED: 'DSR_AUTH_FAILED',
  /** An authentication token is malformed. */
  AUTH_BAD_TOKEN: 'DSR_AUTH_BAD_TOKEN',
  /** The credential table on disk is unreadable or invalid. */
  CREDENTIALS: 'DSR_CREDENTIALS',
  /** The configuration file is invalid. */
  CONFIG: 'DSR_CONFIG',
  /** A protocol rule was broken by the peer (wrong sequence, bad MessageId, ...). */
  PROTOCOL: 'DSR_PROTOCOL',
  /** A request to the admin socket failed. */
  ADMIN: 'DSR_ADMIN',
  /** A lab operation failed (namespace, process, command). */
  LAB: 'DSR_LAB',
  /** A user-supplied argument is invalid. */
  USAGE: 'DSR_USAGE',
  /** The rebalancing planner was given an inconsistent input (duplicate names, bad loads...). */
  PLAN_INPUT: 'DSR_PLAN_INPUT',
  /** A call into the kernel's BPF interface (through the libbpf shim) failed. */
  BPF: 'DSR_BPF',
  /** The kernel lacks a feature the fast path needs (BTF, tcx links, sockmap links, bpf() rights). */
  BPF_UNSUPPORTED: 'DSR_BPF_UNSUPPORTED',
  /** A netlink request to the kernel failed or its answer was malformed (the storage switch). */
  NETLINK: 'DSR_NETLINK',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class DsrError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * Malformed bytes. `status` is the NTSTATUS a server answers with when the frame boundaries
 * are still trustworthy; when it is undefined the connection cannot continue and is closed.
 */
export class WireError extends DsrError {
  readonly status: number | undefined;
  constructor(code: ErrorCode, message: string, status?: number, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}

/** Authentication failure; `status` is the NTSTATUS for the SESSION_SETUP reply. */
export class AuthError extends DsrError {
  readonly status: number;
  constructor(code: ErrorCode, message: string, status: number, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}

/** A peer broke a protocol rule; `status` is the reply's NTSTATUS, undefined means disconnect. */
export class ProtocolError extends DsrError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(ErrorCode.PROTOCOL, message, options);
    this.status = status;
  }
}

/** A failed system call or external command, carrying the operation and errno (netlink-npm style). */
export class SystemError extends DsrError {
  readonly operation: string;
  readonly errno: number | undefined;
  constructor(code: ErrorCode, operation: string, message: string, errno?: number, options?: { cause?: unknown }) {
    super(code, `${operation}: ${message}`, options);
    this.operation = operation;
    this.errno = errno;
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
