/**
 * The only module that calls native code: koffi bindings to libdsrbpf (native/dsrbpf.c), a thin
 * shim over libbpf that returns -errno. Every call goes through `check`, which turns a negative
 * result into a BpfError naming the operation, with libbpf's messages (the verifier's log on a
 * failed load). koffi because ffi-napi 4.0.3 does not compile against Node 20.20's headers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap } from 'node:util';
import koffi from 'koffi';
import { DsrError, ErrorCode, SystemError } from '../control/errors.js';

/** Kernel-internal errnos that leak through bpf() (include/linux/errno.h) and libc does not name. */
const KERNEL_ERRNOS: Record<number, [string, string]> = { 524: ['ENOTSUPP', 'not supported by this kernel'] };

/** A failed call into the kernel's BPF interface; `errno` is positive (ENOENT = 2). */
export class BpfError extends SystemError {
  constructor(operation: string, errno: number, detail = '') {
    const [name, text] = getSystemErrorMap().get(-errno) ?? KERNEL_ERRNOS[errno] ?? [`errno ${errno}`, 'unknown error'];
    super(ErrorCode.BPF, operation, `${name} (${text})${detail ? `\n${detail}` : ''}`, errno);
  }
}

/** Values of the running kernel's enum bpf_attach_type: Debian 12's uapi headers (6.1) lack the tcx ones (6.6). */
export const AttachType = { SK_SKB_STREAM_PARSER: 4, SK_SKB_STREAM_VERDICT: 5, TCX_INGRESS: 46, TCX_EGRESS: 47 } as const;
export const ProgType = { SCHED_CLS: 3, SK_SKB: 14 } as const;
export const UpdateFlag = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

const ENOENT = 2;
const EBADF = 9;
const EPERM = 1;
const ENODEV = 19;
const ENOSPC = 28;

/** A file under dist/: beside this module when compiled (dist/src/offload), the checkout's build when run from source (tsx). */
export function distPath(rel: string): string {
  const root = import.meta.url.endsWith('.ts') ? '../../dist/' : '../../';
  return fileURLToPath(new URL(root + rel, import.meta.url));
}

interface Shim {
  log(buf: Buffer, size: number): number;
  objLoad(path: string, resize: string | null, entries: number, out: unknown[]): number;
  objClose(obj: unknown): void;
  progFd(obj: unknown, name: string): number;
  mapFd(obj: unknown, name: string): number;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): number;
  mapLookup(fd: number, key: Buffer, value: Buffer): number;
  mapDelete(fd: number, key: Buffer): number;
  mapPush(fd: number, value: Buffer): number;
  mapTake(fd: number, key: Buffer | null, value: Buffer): number;
  mapNextKey(fd: number, key: Buffer | null, next: Buffer): number;
  possibleCpus(): number;
  testRun(
    fd: number,
    data: Buffer,
    size: number,
    out: Buffer | null,
    outSize: number[],
    ctx: Buffer | null,
    ctxSize: number,
    ctxOut: Buffer | null,
    ctxOutSize: number[],
    repeat: number,
    retval: number[],
    duration: number[],
  ): number;
  linkCreate(prog: number, target: number, attachType: number): number;
  probeLink(progType: number, attachType: number, target: number): number;
  objId(fd: number): number;
  progRunTime(fd: number, runTimeNs: bigint[], runCnt: bigint[]): number;
  enableRunTimeStats(): number;
  pin(fd: number, path: string): number;
  unpin(path: string): number;
  close(fd: number): number;
  ifindex(name: string): number;
  sockCookie(fd: number, out: bigint[]): number;
  sockWritten(fd: number, out: bigint[], queued: bigint[]): number;
  sockBuffers(fd: number, bytes: number): number;
  sockState(fd: number): number;
  sockUnread(fd: number): number;
  ringOpen(mapFd: number, out: unknown[]): number;
  ringPoll: KoffiAsync<[ring: unknown, timeoutMs: number, out: Buffer, cap: number], number>;
  ringClose(ring: unknown): void;
}

/** A koffi function that may also run on a libuv pool thread (`async`, the result to a callback). */
interface KoffiAsync<A extends unknown[], R> {
  (...args: A): R;
  async(...args: [...A, (err: unknown, res: R) => void]): void;
}

let shim: Shim | undefined;

function lib(): Shim {
  if (shim) return shim;
  const path = distPath('native/libdsrbpf.so');
  if (!existsSync(path)) throw new DsrError(ErrorCode.BPF_UNSUPPORTED, `${path} is missing: run npm run build (scripts/build-native.sh)`);
  const l = koffi.load(path);
  koffi.opaque('bpf_object');
  koffi.opaque('dsr_ring');
  shim = {
    log: l.func('int dsr_log(_Out_ uint8_t *buf, uint32_t size)'),
    objLoad: l.func('int dsr_obj_load(const char *path, const char *resize, uint32_t entries, _Out_ bpf_object **out)'),
    objClose: l.func('void dsr_obj_close(bpf_object *obj)'),
    progFd: l.func('int dsr_prog_fd(bpf_object *obj, const char *name)'),
    mapFd: l.func('int dsr_map_fd(bpf_object *obj, const char *name)'),
    mapUpdate: l.func('int dsr_map_update(int fd, const void *key, const void *value, uint64_t flags)'),
    mapLookup: l.func('int dsr_map_lookup(int fd, const void *key, void *value)'),
    mapDelete: l.func('int dsr_map_delete(int fd, const void *key)'),
    mapPush: l.func('int dsr_map_push(int fd, const void *value)'),
    mapTake: l.func('int dsr_map_take(int fd, const void *key, void *value)'),
    mapNextKey: l.func('int dsr_map_next_key(int fd, const void *key, void *next)'),
    possibleCpus: l.func('int dsr_possible_cpus(void)'),
    testRun: l.func(
      'int dsr_prog_test_run(int fd, const void *data, uint32_t size, void *out, _Inout_ uint32_t *out_size, ' +
        'const void *ctx, uint32_t ctx_size, void *ctx_out, _Inout_ uint32_t *ctx_out_size, uint32_t repeat, ' +
        '_Out_ uint32_t *retval, _Out_ uint32_t *duration)',
    ),
    linkCreate: l.func('int dsr_link_create(int prog_fd, int target, uint32_t attach_type)'),
    probeLink: l.func('int dsr_probe_link(uint32_t prog_type, uint32_t attach_type, int target)'),
    objId: l.func('int dsr_obj_id(int fd)'),
    progRunTime: l.func('int dsr_prog_run_time(int fd, _Out_ uint64_t *run_time_ns, _Out_ uint64_t *run_cnt)'),
    enableRunTimeStats: l.func('int dsr_enable_run_time_stats(void)'),
    pin: l.func('int dsr_pin(int fd, const char *path)'),
    unpin: l.func('int dsr_unpin(const char *path)'),
    close: l.func('int dsr_close(int fd)'),
    ifindex: l.func('int dsr_ifindex(const char *name)'),
    sockCookie: l.func('int dsr_sock_cookie(int fd, _Out_ uint64_t *out)'),
    sockWritten: l.func('int dsr_sock_written(int fd, _Out_ uint64_t *out, _Out_ uint64_t *out_queued)'),
    sockBuffers: l.func('int dsr_sock_buffers(int fd, int bytes)'),
    sockState: l.func('int dsr_sock_state(int fd)'),
    sockUnread: l.func('int dsr_sock_unread(int fd)'),
    ringOpen: l.func('int dsr_ring_open(int map_fd, _Out_ dsr_ring **out)'),
    ringPoll: l.func('int dsr_ring_poll(dsr_ring *r, int timeout_ms, void *out, uint32_t cap)') as Shim['ringPoll'],
    ringClose: l.func('void dsr_ring_close(dsr_ring *r)'),
  };
  return shim;
}

/** libbpf's messages since the last call (the shim keeps the newest 16 KiB). */
function libbpfLog(): string {
  const buf = Buffer.alloc(16384);
  const n = lib().log(buf, buf.length);
  return buf.subarray(0, n).toString('utf8').trim();
}

function check(operation: string, rc: number): number {
  if (rc >= 0) return rc;
  throw new BpfError(operation, -rc, libbpfLog());
}

/** A BPF map of a loaded object. Values of per-CPU maps are one slot per possible CPU. */
export class BpfMap {
  readonly valueBytes: number;
  constructor(
    readonly name: string,
    readonly fd: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly perCpu = false,
  ) {
    this.valueBytes = perCpu ? Math.ceil(valueSize / 8) * 8 * possibleCpus() : valueSize;
  }

  update(key: Buffer, value: Buffer, flags: number = UpdateFlag.ANY): void {
    if (key.length !== this.keySize || value.length !== this.valueBytes) {
      throw new DsrError(ErrorCode.BPF, `map ${this.name}: key/value of ${key.length}/${value.length} bytes, expected ${this.keySize}/${this.valueBytes}`);
    }
    check(`update map ${this.name}`, lib().mapUpdate(this.fd, key, value, flags));
  }

  /** The value, or undefined when the key is absent. */
  lookup(key: Buffer): Buffer | undefined {
    const value = Buffer.alloc(this.valueBytes);
    const rc = lib().mapLookup(this.fd, key, value);
    if (rc === -ENOENT) return undefined;
    check(`look up map ${this.name}`, rc);
    return value;
  }

  /** The per-CPU slots of a value of a per-CPU map, each valueSize bytes. */
  slots(value: Buffer): Buffer[] {
    const stride = Math.ceil(this.valueSize / 8) * 8;
    return Array.from({ length: value.length / stride }, (_, i) => value.subarray(i * stride, i * stride + this.valueSize));
  }

  /** False when the key was absent. */
  delete(key: Buffer): boolean {
    const rc = lib().mapDelete(this.fd, key);
    if (rc === -ENOENT) return false;
    check(`delete from map ${this.name}`, rc);
    return true;
  }

  /** A queue map's push; fails (E2BIG) when the queue is full. */
  push(value: Buffer): void {
    if (this.keySize !== 0 || value.length !== this.valueBytes) throw new DsrError(ErrorCode.BPF, `map ${this.name}: push of ${value.length} bytes onto a map with ${this.keySize}-byte keys`);
    check(`push onto map ${this.name}`, lib().mapPush(this.fd, value));
  }

  /**
   * Reads and deletes in one step: the value of `key`, or of a queue (no key) its oldest;
   * undefined when the key is absent or the queue empty. Whoever takes a value owns it.
   */
  take(key?: Buffer): Buffer | undefined {
    if ((key?.length ?? 0) !== this.keySize) throw new DsrError(ErrorCode.BPF, `map ${this.name}: key of ${key?.length ?? 0} bytes, expected ${this.keySize}`);
    const value = Buffer.alloc(this.valueBytes);
    const rc = lib().mapTake(this.fd, key ?? null, value);
    if (rc === -ENOENT) return undefined;
    check(`take from map ${this.name}`, rc);
    return value;
  }

  keys(): Buffer[] {
    const keys: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const rc = lib().mapNextKey(this.fd, prev, next);
      if (rc === -ENOENT) return keys;
      check(`iterate map ${this.name}`, rc);
      keys.push(next);
      prev = next;
    }
  }
}

/** A loaded BPF object file (libbpf bpf_object); its programs and maps live until close(). */
export class BpfObject {
  private handle: unknown;
  private constructor(
    readonly path: string,
    handle: unknown,
  ) {
    this.handle = handle;
  }

  /** Opens and loads an object file; `resize` gives one map another max_entries first. */
  static load(path: string, resize?: { map: string; entries: number }): BpfObject {
    if (!existsSync(path)) throw new DsrError(ErrorCode.BPF_UNSUPPORTED, `${path} is missing: run npm run build (scripts/build-native.sh)`);
    const out: unknown[] = [null];
    check(`load ${path}${resize ? ` with ${resize.map} of ${resize.entries} entries` : ''}`, lib().objLoad(path, resize?.map ?? null, resize?.entries ?? 0, out));
    return new BpfObject(path, out[0]);
  }

  private get live(): unknown {
    if (this.handle === undefined) throw new DsrError(ErrorCode.BPF, `${this.path} is closed`);
    return this.handle;
  }

  /** A program's fd (owned by the object). */
  prog(name: string): number {
    return check(`find program ${name} in ${this.path}`, lib().progFd(this.live, name));
  }

  map(name: string, keySize: number, valueSize: number, perCpu = false): BpfMap {
    return new BpfMap(name, check(`find map ${name} in ${this.path}`, lib().mapFd(this.live, name)), keySize, valueSize, perCpu);
  }

  /**
   * The named programs' time on a CPU and runs since they were loaded, counted only while
   * run-time stats are on (enableRunTimeStats, or sysctl kernel.bpf_stats_enabled).
   */
  runTimes(names: readonly string[]): Record<string, ProgRunTime> {
    return Object.fromEntries(
      names.map((name) => {
        const ns: bigint[] = [0n];
        const runs: bigint[] = [0n];
        check(`read the run time of program ${name}`, lib().progRunTime(this.prog(name), ns, runs));
        return [name, { runTimeNs: Number(ns[0]), runCnt: Number(runs[0]) }];
      }),
    );
  }

  /** Closes every program and map fd of the object; idempotent. */
  close(): void {
    if (this.handle === undefined) return;
    lib().objClose(this.handle);
    this.handle = undefined;
  }
}

export interface TestRunResult {
  retval: number;
  /** The packet after the program (may differ in length). */
  data: Buffer;
  /** The context (e.g. struct __sk_buff) after the program, when one was passed in. */
  ctx?: Buffer;
  durationNs: number;
}

/**
 * BPF_PROG_TEST_RUN: runs a loaded program on `data` (and optionally a context such as a
 * struct __sk_buff) without attaching it. The output has room for 256 bytes of growth; the
 * kernel fails with ENOSPC beyond that.
 */
export function testRun(progFd: number, data: Buffer, opts: { repeat?: number; ctx?: Buffer } = {}): TestRunResult {
  const out = Buffer.alloc(data.length + 256);
  const outSize = [out.length];
  const ctxOut = opts.ctx ? Buffer.alloc(opts.ctx.length) : null;
  const ctxOutSize = [ctxOut?.length ?? 0];
  const [retval, duration] = [[0], [0]];
  check(
    'BPF_PROG_TEST_RUN',
    lib().testRun(progFd, data, data.length, out, outSize, opts.ctx ?? null, opts.ctx?.length ?? 0, ctxOut, ctxOutSize, opts.repeat ?? 1, retval, duration),
  );
  return {
    retval: (retval[0] ?? 0) | 0,
    data: out.subarray(0, outSize[0]),
    ...(ctxOut && { ctx: ctxOut.subarray(0, ctxOutSize[0]) }),
    durationNs: duration[0] ?? 0,
  };
}

/** A bpf_link owned by the returned fd: closing it, or the process dying, detaches the program. */
export function linkCreate(progFd: number, target: number, attachType: number, what: string): number {
  return check(`attach ${what}`, lib().linkCreate(progFd, target, attachType));
}

export function closeFd(fd: number): void {
  check(`close fd ${fd}`, lib().close(fd));
}

/** A program's time on a CPU (ns) and its runs, from bpf_prog_info. */
export interface ProgRunTime {
  runTimeNs: number;
  runCnt: number;
}

/**
 * Turns on run-time stats for every BPF program on the machine (BPF_ENABLE_STATS) until the
 * returned fd is closed (closeFd) or this process ends; they cost a clock read per run.
 */
export function enableRunTimeStats(): number {
  return check('turn on BPF run-time stats', lib().enableRunTimeStats());
}

/** The kernel's id of a program, map or link fd: what `bpftool prog/map/link show id N` takes. */
export function objectId(fd: number): number {
  return check(`get the id of fd ${fd}`, lib().objId(fd));
}

export function pin(fd: number, path: string): void {
  check(`pin ${path}`, lib().pin(fd, path));
}

export function unpin(path: string): void {
  check(`unpin ${path}`, lib().unpin(path));
}

/** The interface's index in this process's network namespace. */
export function ifindex(name: string): number {
  return check(`find interface ${name}`, lib().ifindex(name));
}

/** A socket's cookie (SO_COOKIE), as the relay's per-socket state is keyed. */
export function sockCookie(fd: number): bigint {
  const out: bigint[] = [0n];
  check(`read the cookie of socket fd ${fd}`, lib().sockCookie(fd, out));
  return BigInt(out[0]!);
}

/** Bytes handed to a TCP socket so far, by writes or by a sockmap redirect (acknowledged + queued), and those still queued. */
export function sockWritten(fd: number): { written: bigint; queued: bigint } {
  const out: bigint[] = [0n];
  const queued: bigint[] = [0n];
  check(`read the send counters of socket fd ${fd}`, lib().sockWritten(fd, out, queued));
  return { written: BigInt(out[0]!), queued: BigInt(queued[0]!) };
}

/** Fixed receive and send buffers of `bytes` each (the kernel doubles them; see native/dsrbpf.c). */
export function sockBuffers(fd: number, bytes: number): void {
  check(`set the buffers of socket fd ${fd}`, lib().sockBuffers(fd, bytes));
}

/** Bytes a TCP socket holds that its owner has not read (SIOCINQ; see unread() in relay.ts for sockhash sockets). */
export function sockUnread(fd: number): number {
  return check(`read the receive queue of socket fd ${fd}`, lib().sockUnread(fd));
}

/** A TCP socket's state (tcpi_state; TCP_ESTABLISHED is 1). */
export function sockState(fd: number): number {
  return check(`read the state of socket fd ${fd}`, lib().sockState(fd));
}

/**
 * A BPF ring buffer's consumer. `poll` waits on a libuv pool thread, so the event loop goes on;
 * one poll at a time, and `close` frees the ring once the poll under way has returned.
 */
export class RingConsumer {
  private ring: unknown;
  private polling = false;
  private closing = false;
  private readonly buf: Buffer;

  constructor(mapFd: number, capacity = 64 * 1024) {
    const out: unknown[] = [null];
    check(`open ring buffer fd ${mapFd}`, lib().ringOpen(mapFd, out));
    this.ring = out[0];
    this.buf = Buffer.alloc(capacity);
  }

  /** Records that came within `timeoutMs` (possibly none), or 'lost' when some did not fit and are gone. */
  poll(timeoutMs: number): Promise<Buffer | 'lost'> {
    if (this.polling || this.closing) return Promise.reject(new DsrError(ErrorCode.USAGE, 'the ring buffer is being polled or closed'));
    this.polling = true;
    return new Promise((resolve, reject) => {
      lib().ringPoll.async(this.ring, timeoutMs, this.buf, this.buf.length, (err, n) => {
        this.polling = false;
        if (this.closing) this.free();
        if (err) reject(err instanceof Error ? err : new Error(String(err)));
        else if (n === -ENOSPC) resolve('lost');
        else if (n < 0) reject(new BpfError('poll a ring buffer', -n, ''));
        else resolve(Buffer.from(this.buf.subarray(0, n)));
      });
    });
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (!this.polling) this.free();
  }

  private free(): void {
    if (this.ring === null) return;
    lib().ringClose(this.ring);
    this.ring = null;
  }
}

export function possibleCpus(): number {
  return check('count possible CPUs', lib().possibleCpus());
}

export interface KernelFeatures {
  /** bpf() may load programs (root, or CAP_BPF + CAP_NET_ADMIN). */
  bpf: boolean;
  /** /sys/kernel/btf/vmlinux: the build and CO-RE need it. */
  btf: boolean;
  /** tc programs attached as bpf_links (tcx, 6.6). */
  tcx: boolean;
  /** sk_skb programs attached to a sockmap as bpf_links (6.10). */
  sockmapLinks: boolean;
}

/**
 * What the kernel offers, without side effects: a trivial program is linked to targets that do
 * not exist, and the errno tells whether the attach type is known (ENODEV: no interface 0, so
 * tcx exists; EBADF: fd -1 is no map, so sockmap links exist; EINVAL: unknown attach type;
 * EPERM: no right to load programs at all).
 */
export function probeKernel(): KernelFeatures {
  const tcx = lib().probeLink(ProgType.SCHED_CLS, AttachType.TCX_INGRESS, 0);
  const sockmap = lib().probeLink(ProgType.SK_SKB, AttachType.SK_SKB_STREAM_VERDICT, -1);
  libbpfLog();
  return {
    bpf: tcx !== -EPERM && sockmap !== -EPERM,
    btf: existsSync('/sys/kernel/btf/vmlinux'),
    tcx: tcx === -ENODEV,
    sockmapLinks: sockmap === -EBADF,
  };
}

const FEATURE_TEXT: Record<keyof KernelFeatures, string> = {
  bpf: 'permission to load BPF programs (run as root: CAP_BPF and CAP_NET_ADMIN)',
  btf: 'BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)',
  tcx: 'tcx links for tc programs (Linux >= 6.6)',
  sockmapLinks: 'sockmap links for sk_skb programs (Linux >= 6.10)',
};

/** One error naming every missing feature of `need`; without the right to use bpf() nothing else could be probed, so only that. */
export function requireKernel(need: readonly (keyof KernelFeatures)[], features: KernelFeatures = probeKernel()): void {
  const missing: (keyof KernelFeatures)[] = features.bpf ? need.filter((f) => !features[f]) : ['bpf'];
  if (missing.length === 0) return;
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  throw new DsrError(ErrorCode.BPF_UNSUPPORTED, `the kernel (${release}) lacks ${missing.map((f) => FEATURE_TEXT[f]).join('; ')}`);
}
