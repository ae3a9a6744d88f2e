/*
 * libdsrbpf: the thin C shim between src/offload/native.ts (koffi) and libbpf 1.1.2. Every
 * function returns a file descriptor, a count or 0 on success and -errno on failure; callers
 * never see a libbpf struct layout (options structs are filled in here), only the opaque
 * struct bpf_object pointer. libbpf's messages are kept in a buffer (dsr_log) instead of
 * stderr, so a failure can carry the verifier's explanation.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define LOG_SIZE 16384
static char log_buf[LOG_SIZE];
static size_t log_len;

/* Keeps the newest messages: on overflow the oldest half goes. */
static int log_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (log_len + n > LOG_SIZE) {
		size_t keep = log_len / 2;
		memmove(log_buf, log_buf + log_len - keep, keep);
		log_len = keep;
	}
	memcpy(log_buf + log_len, line, n);
	log_len += n;
	return 0;
}

__attribute__((constructor)) static void init(void)
{
	libbpf_set_print(log_print);
}

/* Copies libbpf's buffered messages (NUL-terminated, truncated to size) and clears them;
 * returns their length. */
int dsr_log(char *buf, uint32_t size)
{
	size_t n;

	if (size == 0)
		return 0;
	n = log_len < size ? log_len : size - 1;
	memcpy(buf, log_buf, n);
	buf[n] = 0;
	log_len = 0;
	return (int)n;
}

/*
 * Signals stay blocked on this thread while the verifier runs: it gives up with EAGAIN on any
 * pending signal, and libbpf's five retries do not outlast a steady one (V8's CPU profiler sends
 * SIGPROF every millisecond: the relay failed to load under `node --cpu-prof`). A signal that
 * comes meanwhile is delivered when the load is done.
 */
int dsr_obj_load(const char *path, const char *resize, uint32_t entries, struct bpf_object **out)
{
	struct bpf_object *obj;
	struct bpf_map *map;
	sigset_t all, old;
	int err;

	*out = NULL;
	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return -errno;
	/* A map sized by configuration (resize, when not NULL) gets its max_entries before the load. */
	if (resize) {
		map = bpf_object__find_map_by_name(obj, resize);
		err = map ? bpf_map__set_max_entries(map, entries) : -ENOENT;
		if (err) {
			bpf_object__close(obj);
			return err;
		}
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = bpf_object__load(obj);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		bpf_object__close(obj);
		return err;
	}
	*out = obj;
	return 0;
}

void dsr_obj_close(struct bpf_object *obj)
{
	bpf_object__close(obj);
}

/* The fds below belong to the object: bpf_object__close closes them. */
int dsr_prog_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, name);

	return prog ? bpf_program__fd(prog) : -ENOENT;
}

int dsr_map_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, name);

	return map ? bpf_map__fd(map) : -ENOENT;
}

int dsr_map_update(int fd, const void *key, const void *value, uint64_t flags)
{
	return bpf_map_update_elem(fd, key, value, flags);
}

int dsr_map_lookup(int fd, const void *key, void *value)
{
	return bpf_map_lookup_elem(fd, key, value);
}

int dsr_map_delete(int fd, const void *key)
{
	return bpf_map_delete_elem(fd, key);
}

/* A queue map's push (its update has no key). */
int dsr_map_push(int fd, const void *value)
{
	return bpf_map_update_elem(fd, NULL, value, BPF_ANY);
}

/* Reads and deletes in one step: a hash map's key, or (key NULL) a queue's oldest value. */
int dsr_map_take(int fd, const void *key, void *value)
{
	return bpf_map_lookup_and_delete_elem(fd, key, value);
}

/* key NULL gives the first key; -ENOENT after the last. */
int dsr_map_next_key(int fd, const void *key, void *next)
{
	return bpf_map_get_next_key(fd, key, next);
}

/* Values of per-CPU maps are this many slots of round_up(value_size, 8) bytes. */
int dsr_possible_cpus(void)
{
	return libbpf_num_possible_cpus();
}

/* BPF_PROG_TEST_RUN. data_out/ctx_out may be NULL; *data_out_size and *ctx_out_size are the
 * buffer sizes on entry and the produced sizes on return. */
int dsr_prog_test_run(int prog_fd, const void *data_in, uint32_t data_size_in, void *data_out, uint32_t *data_size_out,
		      const void *ctx_in, uint32_t ctx_size_in, void *ctx_out, uint32_t *ctx_size_out, uint32_t repeat,
		      uint32_t *retval, uint32_t *duration_ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data_in, .data_size_in = data_size_in, .data_out = data_out,
		    .data_size_out = data_out ? *data_size_out : 0, .ctx_in = ctx_in, .ctx_size_in = ctx_size_in,
		    .ctx_out = ctx_out, .ctx_size_out = ctx_out ? *ctx_size_out : 0, .repeat = repeat);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);

	if (err)
		return err;
	if (data_out)
		*data_size_out = opts.data_size_out;
	if (ctx_out)
		*ctx_size_out = opts.ctx_size_out;
	*retval = opts.retval;
	*duration_ns = opts.duration;
	return 0;
}

/* A bpf_link owned by the returned fd: closing it (or the process dying) detaches the program.
 * target is an ifindex for BPF_TCX_INGRESS/EGRESS, a sockmap/sockhash fd for
 * BPF_SK_SKB_STREAM_PARSER/VERDICT. attach_type is passed through untouched: Debian 12's uapi
 * headers (6.1) lack the tcx values, native.ts holds the running kernel's numbers. */
int dsr_link_create(int prog_fd, int target, uint32_t attach_type)
{
	return bpf_link_create(prog_fd, target, (enum bpf_attach_type)attach_type, NULL);
}

/* Loads `r0 = 0; exit` of prog_type and tries to link it to target; returns the link
 * attempt's result (the link itself is closed at once) or the load's error. The caller tells
 * "supported" from the errno (e.g. tcx on ifindex 0 fails with ENODEV where tcx exists). */
int dsr_probe_link(uint32_t prog_type, uint32_t attach_type, int target)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int prog, link;

	prog = bpf_prog_load((enum bpf_prog_type)prog_type, "dsr_probe", "GPL", insns, 2, NULL);
	if (prog < 0)
		return prog;
	link = bpf_link_create(prog, target, (enum bpf_attach_type)attach_type, NULL);
	if (link >= 0) {
		close(link);
		link = 0;
	}
	close(prog);
	return link;
}

/* The kernel's id of a program, map or link fd (what bpftool shows): every bpf_*_info struct
 * starts with __u32 type, __u32 id, and the kernel copies only what the caller asks for. */
int dsr_obj_id(int fd)
{
	struct {
		__u32 type;
		__u32 id;
	} info = { 0 };
	__u32 len = sizeof(info);
	int err = bpf_obj_get_info_by_fd(fd, &info, &len);

	return err ? err : (int)info.id;
}

/* A program's run time and run count since it was loaded: the kernel adds to them only while
 * run-time stats are on (kernel.bpf_stats_enabled, or a dsr_enable_run_time_stats fd held). */
int dsr_prog_run_time(int fd, uint64_t *run_time_ns, uint64_t *run_cnt)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int err;

	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err)
		return err;
	*run_time_ns = info.run_time_ns;
	*run_cnt = info.run_cnt;
	return 0;
}

/* Turns run-time stats on for every program until the returned fd is closed (or its process
 * ends): unlike the sysctl, nothing stays on after a crash. */
int dsr_enable_run_time_stats(void)
{
	return bpf_enable_stats(BPF_STATS_RUN_TIME);
}

int dsr_pin(int fd, const char *path)
{
	return bpf_obj_pin(fd, path);
}

int dsr_unpin(const char *path)
{
	return unlink(path) ? -errno : 0;
}

int dsr_close(int fd)
{
	return close(fd) ? -errno : 0;
}

/* Resolved in the calling thread's network namespace (unlike /sys/class/net under nsenter). */
int dsr_ifindex(const char *name)
{
	unsigned int i = if_nametoindex(name);

	return i ? (int)i : -errno;
}

/* A socket's cookie (SO_COOKIE): the key the relay keeps each offloaded socket's state under. */
int dsr_sock_cookie(int fd, uint64_t *out)
{
	socklen_t len = sizeof(*out);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, out, &len) ? -errno : 0;
}

/*
 * Fixed socket buffers of `bytes` (the kernel doubles them), beyond the sysctl limits where the
 * caller may (CAP_NET_ADMIN): a strparser takes no message longer than the receive buffer, and
 * the redirect worker stops at half the send buffer. Fixed buffers also end autotuning, which
 * would start at 128 KiB.
 */
int dsr_sock_buffers(int fd, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)))
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)))
		return -errno;
	return 0;
}

/*
 * Every byte handed to a TCP socket so far, by its owner's writes or by a sockmap redirect:
 * bytes acknowledged (tcpi_bytes_acked) plus bytes still queued (SIOCOUTQ, also given alone:
 * a queue that does not empty is a peer not reading). Read in that order so an ACK in between
 * can only make the sum smaller: a barrier waiting for it never ends early.
 */
/* TCP_INFO, zeroed past what the kernel fills: the length it filled, or -errno. */
static int tcp_info_of(int fd, struct tcp_info *info)
{
	socklen_t len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) ? -errno : (int)len;
}

int dsr_sock_written(int fd, uint64_t *out, uint64_t *out_queued)
{
	struct tcp_info info;
	int len = tcp_info_of(fd, &info);
	int queued;

	if (len < 0)
		return len;
	if ((size_t)len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(info.tcpi_bytes_acked))
		return -EOPNOTSUPP;
	if (ioctl(fd, SIOCOUTQ, &queued))
		return -errno;
	*out = info.tcpi_bytes_acked + (uint64_t)queued;
	*out_queued = (uint64_t)queued;
	return 0;
}

/* A socket's TCP state (tcpi_state: TCP_ESTABLISHED, TCP_CLOSE_WAIT ...). */
int dsr_sock_state(int fd)
{
	struct tcp_info info;
	int len = tcp_info_of(fd, &info);

	return len < 0 ? len : info.tcpi_state;
}

/*
 * Bytes a TCP socket holds that its owner has not read (SIOCINQ). For a socket in a sockmap this
 * counts what the verdict passed only on kernels with tcp_bpf_ioctl (the caller checks).
 */
int dsr_sock_unread(int fd)
{
	int n;

	return ioctl(fd, SIOCINQ, &n) ? -errno : n;
}

/*
 * A BPF ring buffer's consumer: dsr_ring_poll waits up to timeout_ms for records and copies
 * them, back to back, into the caller's buffer. It may run on a thread of its own (koffi's async
 * calls), one call at a time per ring; dsr_ring_close only once no call runs.
 */
struct dsr_ring {
	struct ring_buffer *rb;
	uint8_t *out;
	uint32_t cap;
	uint32_t used;
	int overflow;
};

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct dsr_ring *r = ctx;

	if (r->used + size > r->cap) {
		r->overflow = 1;
		return 0;
	}
	memcpy(r->out + r->used, data, size);
	r->used += size;
	return 0;
}

int dsr_ring_open(int map_fd, struct dsr_ring **out)
{
	struct dsr_ring *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->rb = ring_buffer__new(map_fd, ring_sample, r, NULL);
	if (!r->rb) {
		err = -errno;
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

/* Bytes of records copied (0 on timeout), -ENOSPC when some did not fit (they are gone), or -errno. */
int dsr_ring_poll(struct dsr_ring *r, int timeout_ms, void *out, uint32_t cap)
{
	int n;

	r->out = out;
	r->cap = cap;
	r->used = 0;
	r->overflow = 0;
	n = ring_buffer__poll(r->rb, timeout_ms);
	if (n < 0 && n != -EINTR)
		return n;
	return r->overflow ? -ENOSPC : (int)r->used;
}

void dsr_ring_close(struct dsr_ring *r)
{
	ring_buffer__free(r->rb);
	free(r);
}
