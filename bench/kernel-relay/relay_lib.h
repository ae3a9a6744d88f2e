/*
 * Loads bpf/smb2_relay.bpf.o with libbpf 1.1.2 and puts connections on and off the kernel path.
 * A bench and test helper, not the product's loader (that is native/ + src/offload). Every call
 * returns 0 or -errno and prints nothing; relay_err names the step that failed.
 */
#ifndef RELAY_LIB_H
#define RELAY_LIB_H
#include <stdint.h>
#include <linux/types.h>
#include "dsr_abi.h"

enum relay_mode {
	RELAY_MODE_PARSER, /* strparser + relay_verdict_msg */
	RELAY_MODE_CUT,    /* relay_verdict_cut only */
};

struct relay_bpf {
	struct bpf_object *obj;
	enum relay_mode mode;
	int socks, state, conns, sessions, trees, files, counters, passes, events;
	int journal, journal_free, journal_index; /* the request journal (DSR_RELAY_CONN_JOURNAL) */
	int parser, verdict;
	int parser_link, verdict_link; /* bpf_link fds (0: none) */
	int legacy_attach;             /* the kernel refused a sockmap link: bpf_prog_attach was used */
	const char *relay_err;
};

int relay_bpf_open(struct relay_bpf *rb, const char *obj_path, enum relay_mode mode);
void relay_bpf_close(struct relay_bpf *rb);

/* Puts the pair on the kernel path: state for both sockets, then the backend, then the client into the sockhash. */
int relay_offload(struct relay_bpf *rb, uint32_t conn, int client_fd, int backend_fd, const struct dsr_relay_conn *rules);
/* Takes the pair off (sockhash entries, state, rules); the sockets stay open. */
void relay_unload(struct relay_bpf *rb, uint32_t conn, int client_fd, int backend_fd);
int relay_add_session(struct relay_bpf *rb, uint32_t conn, uint64_t client_sid, uint64_t backend_sid);
int relay_add_tree(struct relay_bpf *rb, uint32_t conn, uint32_t client_tid, uint32_t backend_tid);
/* The server's FileId for a FileId the client holds on the connection (requests only). */
int relay_add_file(struct relay_bpf *rb, uint32_t conn, const struct dsr_relay_file_id *client, const struct dsr_relay_file_id *backend);
/* The per-socket state (counts, sticky reason, cursor) of an offloaded socket. */
int relay_sock_state(struct relay_bpf *rb, int fd, struct dsr_relay_sock *out);
/* Sums the first n entries of a per-CPU __u64 array (rb->counters, rb->passes) into out[n]. */
int relay_sum_percpu(int map, uint32_t n, uint64_t *out);
/* Names of the counters (DSR_RELAY_*) and pass reasons (DSR_PASS_*), spelt as src/offload/abi.ts does. */
extern const char *const relay_counter_names[DSR_RELAY_COUNTER_MAX];
extern const char *const relay_pass_names[DSR_PASS_REASON_MAX];
#endif
