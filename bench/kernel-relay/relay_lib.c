#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "relay_lib.h"

const char *const relay_counter_names[DSR_RELAY_COUNTER_MAX] = {
	[DSR_RELAY_FWD_MSG] = "fwd-msg",
	[DSR_RELAY_FWD_SKB] = "fwd-skb",
	[DSR_RELAY_FWD_BYTES] = "fwd-bytes",
	[DSR_RELAY_SPLIT_HDR] = "split-hdr",
	[DSR_RELAY_CARRY_HELD] = "carry-held",
	[DSR_RELAY_JOURNALED] = "journaled",
	[DSR_RELAY_JOURNAL_FREED] = "journal-freed",
	[DSR_RELAY_ERR_LOAD] = "err-load",
	[DSR_RELAY_ERR_STORE] = "err-store",
	[DSR_RELAY_ERR_TAIL] = "err-tail",
	[DSR_RELAY_ERR_HEAD] = "err-head",
	[DSR_RELAY_OVERLAP] = "overlap",
	[DSR_RELAY_SEQ_GAP] = "seq-gap",
};

const char *const relay_pass_names[DSR_PASS_REASON_MAX] = {
	[DSR_PASS_NONE] = "none",
	[DSR_PASS_SIGNED] = "signed",
	[DSR_PASS_BACKEND_SIGNED] = "backend-signed",
	[DSR_PASS_ENCRYPTED] = "encrypted",
	[DSR_PASS_NO_KEY] = "no-key",
	[DSR_PASS_LOCAL_TREE] = "local-tree",
	[DSR_PASS_NO_SOCK] = "no-sock",
	[DSR_PASS_NO_CONN] = "no-conn",
	[DSR_PASS_BAD_MAGIC] = "bad-magic",
	[DSR_PASS_COMPRESSED] = "compressed",
	[DSR_PASS_COMMAND] = "command",
	[DSR_PASS_SESSION] = "session",
	[DSR_PASS_TREE] = "tree",
	[DSR_PASS_COMPOUND] = "compound",
	[DSR_PASS_STICKY] = "sticky",
	[DSR_PASS_NO_PEER] = "no-peer",
	[DSR_PASS_ERROR] = "error",
	[DSR_PASS_TOO_MANY] = "too-many",
	[DSR_PASS_FILE] = "file",
	[DSR_PASS_INVALID] = "invalid",
	[DSR_PASS_JOURNAL] = "journal",
};

static int fail(struct relay_bpf *rb, const char *step, int rc)
{
	rb->relay_err = step;
	return rc < 0 ? rc : -EINVAL;
}

static int map_fd(struct relay_bpf *rb, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(rb->obj, name);

	return m ? bpf_map__fd(m) : -ENOENT;
}

static int prog_fd(struct relay_bpf *rb, const char *name)
{
	struct bpf_program *p = bpf_object__find_program_by_name(rb->obj, name);

	return p ? bpf_program__fd(p) : -ENOENT;
}

/*
 * A sockmap link (kernel 6.10+) when the kernel takes one: libbpf 1.1.2 has no
 * bpf_program__attach_sockmap, but its generic bpf_link_create passes the map fd and attach
 * type through. Legacy bpf_prog_attach otherwise. The link's fd is kept; closing it detaches.
 */
static int attach(struct relay_bpf *rb, int prog, enum bpf_attach_type type, int *link)
{
	*link = bpf_link_create(prog, rb->socks, type, NULL);
	if (*link >= 0)
		return 0;
	*link = -1;
	rb->legacy_attach = 1;
	return bpf_prog_attach(prog, rb->socks, type, 0) ? -errno : 0;
}

int relay_bpf_open(struct relay_bpf *rb, const char *obj_path, enum relay_mode mode)
{
	int rc;

	memset(rb, 0, sizeof(*rb));
	rb->mode = mode;
	rb->obj = bpf_object__open_file(obj_path, NULL);
	if (!rb->obj) {
		rc = -errno;
		rb->obj = NULL;
		return fail(rb, "open object", rc);
	}
	/* Load only the programs this mode attaches. */
	bpf_program__set_autoload(bpf_object__find_program_by_name(rb->obj, "relay_parser"), mode == RELAY_MODE_PARSER);
	bpf_program__set_autoload(bpf_object__find_program_by_name(rb->obj, "relay_verdict_msg"), mode == RELAY_MODE_PARSER);
	bpf_program__set_autoload(bpf_object__find_program_by_name(rb->obj, "relay_verdict_cut"), mode == RELAY_MODE_CUT);
	rc = bpf_object__load(rb->obj);
	if (rc)
		return fail(rb, "load object", rc);
	rb->socks = map_fd(rb, "relay_socks");
	rb->state = map_fd(rb, "relay_socks_state");
	rb->conns = map_fd(rb, "relay_conns");
	rb->sessions = map_fd(rb, "relay_sessions");
	rb->trees = map_fd(rb, "relay_trees");
	rb->files = map_fd(rb, "relay_files");
	rb->counters = map_fd(rb, "relay_counters");
	rb->passes = map_fd(rb, "relay_passes");
	rb->events = map_fd(rb, "relay_events");
	rb->journal = map_fd(rb, "relay_journal");
	rb->journal_free = map_fd(rb, "relay_journal_free");
	rb->journal_index = map_fd(rb, "relay_journal_index");
	for (uint32_t slot = 0; slot < DSR_RELAY_JOURNAL_SLOTS; slot++)
		if (bpf_map_update_elem(rb->journal_free, NULL, &slot, BPF_ANY))
			return fail(rb, "fill relay_journal_free", -errno);
	if (mode == RELAY_MODE_PARSER) {
		rb->parser = prog_fd(rb, "relay_parser");
		rb->verdict = prog_fd(rb, "relay_verdict_msg");
		rc = attach(rb, rb->parser, BPF_SK_SKB_STREAM_PARSER, &rb->parser_link);
		if (rc)
			return fail(rb, "attach stream_parser", rc);
	} else {
		rb->verdict = prog_fd(rb, "relay_verdict_cut");
	}
	rc = attach(rb, rb->verdict, BPF_SK_SKB_STREAM_VERDICT, &rb->verdict_link);
	if (rc)
		return fail(rb, "attach stream_verdict", rc);
	return 0;
}

void relay_bpf_close(struct relay_bpf *rb)
{
	if (rb->verdict_link > 0)
		close(rb->verdict_link);
	if (rb->parser_link > 0)
		close(rb->parser_link);
	if (rb->obj)
		bpf_object__close(rb->obj);
	rb->obj = NULL;
}

static int cookie_of(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) ? -errno : 0;
}

int relay_offload(struct relay_bpf *rb, uint32_t conn, int client_fd, int backend_fd, const struct dsr_relay_conn *rules)
{
	uint32_t ckey = 2 * conn, bkey = 2 * conn + 1;
	struct dsr_relay_sock cs = { .conn = conn, .peer_key = bkey, .dir = DSR_RELAY_DIR_REQUEST, .at_nb = 1 };
	struct dsr_relay_sock bs = { .conn = conn, .peer_key = ckey, .dir = DSR_RELAY_DIR_REPLY, .at_nb = 1 };
	uint64_t ccookie, bcookie, cfd = client_fd, bfd = backend_fd;
	int rc;

	if ((rc = cookie_of(client_fd, &ccookie)) || (rc = cookie_of(backend_fd, &bcookie)))
		return fail(rb, "SO_COOKIE", rc);
	if (bpf_map_update_elem(rb->conns, &conn, rules, BPF_ANY))
		return fail(rb, "rules update", -errno);
	if (bpf_map_update_elem(rb->state, &ccookie, &cs, BPF_ANY) || bpf_map_update_elem(rb->state, &bcookie, &bs, BPF_ANY))
		return fail(rb, "socket state update", -errno);
	if (bpf_map_update_elem(rb->socks, &bkey, &bfd, BPF_NOEXIST))
		return fail(rb, "sockhash insert backend", -errno);
	if (bpf_map_update_elem(rb->socks, &ckey, &cfd, BPF_NOEXIST))
		return fail(rb, "sockhash insert client", -errno);
	return 0;
}

/* Deletes a connection's entries from a map whose keys start with the connection id (sessions,
 * trees, files): a walk, restarted after each delete, good enough for the bench's small maps. */
static void delete_conn_entries(int map, uint32_t conn, size_t key_size)
{
	uint8_t key[64], next[64];
	void *prev = NULL;
	uint32_t key_conn;

	while (!bpf_map_get_next_key(map, prev, next)) {
		memcpy(key, next, key_size);
		prev = key;
		memcpy(&key_conn, key, sizeof(key_conn));
		if (key_conn == conn) {
			bpf_map_delete_elem(map, key);
			prev = NULL;
		}
	}
}

void relay_unload(struct relay_bpf *rb, uint32_t conn, int client_fd, int backend_fd)
{
	uint32_t ckey = 2 * conn, bkey = 2 * conn + 1;
	uint64_t cookie;

	bpf_map_delete_elem(rb->socks, &ckey);
	bpf_map_delete_elem(rb->socks, &bkey);
	if (!cookie_of(client_fd, &cookie))
		bpf_map_delete_elem(rb->state, &cookie);
	if (!cookie_of(backend_fd, &cookie))
		bpf_map_delete_elem(rb->state, &cookie);
	bpf_map_delete_elem(rb->conns, &conn);
	delete_conn_entries(rb->sessions, conn, sizeof(struct dsr_relay_session_key));
	delete_conn_entries(rb->trees, conn, sizeof(struct dsr_relay_tree_key));
	delete_conn_entries(rb->files, conn, sizeof(struct dsr_relay_file_key));
}

int relay_add_session(struct relay_bpf *rb, uint32_t conn, uint64_t client_sid, uint64_t backend_sid)
{
	struct dsr_relay_session_key req = { .conn = conn, .dir = DSR_RELAY_DIR_REQUEST, .session_id = client_sid };
	struct dsr_relay_session_key rep = { .conn = conn, .dir = DSR_RELAY_DIR_REPLY, .session_id = backend_sid };

	if (bpf_map_update_elem(rb->sessions, &req, &backend_sid, BPF_ANY) || bpf_map_update_elem(rb->sessions, &rep, &client_sid, BPF_ANY))
		return fail(rb, "session map update", -errno);
	return 0;
}

int relay_add_tree(struct relay_bpf *rb, uint32_t conn, uint32_t client_tid, uint32_t backend_tid)
{
	struct dsr_relay_tree_key req = { .conn = conn, .dir = DSR_RELAY_DIR_REQUEST, .tree_id = client_tid };
	struct dsr_relay_tree_key rep = { .conn = conn, .dir = DSR_RELAY_DIR_REPLY, .tree_id = backend_tid };

	if (bpf_map_update_elem(rb->trees, &req, &backend_tid, BPF_ANY) || bpf_map_update_elem(rb->trees, &rep, &client_tid, BPF_ANY))
		return fail(rb, "tree map update", -errno);
	return 0;
}

int relay_add_file(struct relay_bpf *rb, uint32_t conn, const struct dsr_relay_file_id *client, const struct dsr_relay_file_id *backend)
{
	struct dsr_relay_file_key key = { .conn = conn, .persistent = client->persistent, .volatile_ = client->volatile_ };

	if (bpf_map_update_elem(rb->files, &key, backend, BPF_ANY))
		return fail(rb, "file map update", -errno);
	return 0;
}

int relay_sock_state(struct relay_bpf *rb, int fd, struct dsr_relay_sock *out)
{
	uint64_t cookie;
	int rc = cookie_of(fd, &cookie);

	if (rc)
		return rc;
	return bpf_map_lookup_elem(rb->state, &cookie, out) ? -errno : 0;
}

int relay_sum_percpu(int map, uint32_t n, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v;

	if (ncpu < 0)
		return ncpu;
	v = calloc(ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(map, &i, v)) {
			free(v);
			return -errno;
		}
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
	return 0;
}
