/*
 * fixtures: the SMB2 relay's programs on real loopback sockets, since BPF_PROG_TEST_RUN does
 * not run sk_skb programs on this kernel (6.18 answers ENOTSUPP, 524; checked at start).
 *
 *   writer "client" --TCP--> [cin]  relay_socks key 2*conn   (requests arrive here)
 *   reader "client" <--TCP-- [cin]
 *   reader "backend" <--TCP-- [bin] relay_socks key 2*conn+1 (replies arrive here)
 *   writer "backend" --TCP--> [bin]
 *
 * Each fixture: rules, input frames written in chunks (each chunk one send, with a pause, so
 * it arrives as its own skb: that makes split headers), the bytes expected at the far end, the
 * bytes expected to reach user space on the relay socket, and the reason counters expected to
 * move. Run as root: fixtures [OBJ]; exit 0 when all pass.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "relay_lib.h"

#define SID_C 0x1111000000000001ull /* client's SessionId */
#define SID_B 0x2222000000000002ull /* backend's */
#define TID_C 0x00000011u
#define TID_B 0x00000022u
#define DELTA 1000

static int failures, checks;

static void check(int ok, const char *fixture, const char *what)
{
	checks++;
	if (!ok) {
		failures++;
		printf("  FAIL %s: %s\n", fixture, what);
	}
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(uint8_t *p, uint64_t v) { put32(p, v); put32(p + 4, v >> 32); }

struct hdr {
	uint32_t magic;
	uint16_t cmd;
	uint32_t flags, next;
	uint64_t mid, sid, async_id;
	uint32_t tid;
	uint32_t body; /* body bytes after the header (filled with a pattern) */
};

/* One SMB2 header + body at p (no NetBIOS prefix); returns bytes written. */
static size_t smb2(uint8_t *p, const struct hdr *h)
{
	memset(p, 0, 64);
	put32(p, h->magic ? h->magic : 0x424d53fe);
	put16(p + 4, 64);
	put16(p + 12, h->cmd);
	put16(p + 14, 1);
	put32(p + 16, h->flags);
	put32(p + 20, h->next);
	put64(p + 24, h->mid);
	if (h->flags & 2) {
		put64(p + 32, h->async_id);
	} else {
		put32(p + 32, 0xfeff);
		put32(p + 36, h->tid);
	}
	put64(p + 40, h->sid);
	memset(p + 48, 0x5a, 16); /* signature bytes: never touched */
	for (uint32_t i = 0; i < h->body; i++)
		p[64 + i] = (uint8_t)(i * 7 + 3);
	return 64 + h->body;
}

/* A NetBIOS frame of n chained headers; NextCommand is filled in (8-byte aligned bodies). */
static size_t frame(uint8_t *p, struct hdr *hs, int n)
{
	size_t off = 4;

	for (int i = 0; i < n; i++) {
		if (i < n - 1)
			hs[i].next = 64 + hs[i].body;
		off += smb2(p + off, &hs[i]);
	}
	p[0] = 0;
	p[1] = (off - 4) >> 16;
	p[2] = (off - 4) >> 8;
	p[3] = off - 4;
	return off;
}

/* A request as the client sends it, and as the backend should see it. */
static struct hdr req(uint16_t cmd, uint64_t mid, uint32_t body) { return (struct hdr){ .cmd = cmd, .mid = mid, .sid = SID_C, .tid = TID_C, .body = body }; }
static struct hdr req_out(struct hdr h) { h.mid += DELTA; h.sid = SID_B; h.tid = TID_B; return h; }
static struct hdr rep(uint16_t cmd, uint64_t mid, uint32_t body) { return (struct hdr){ .cmd = cmd, .flags = 1, .mid = mid + DELTA, .sid = SID_B, .tid = TID_B, .body = body }; }
static struct hdr rep_out(struct hdr h) { h.mid -= DELTA; h.sid = SID_C; if (!(h.flags & 2)) h.tid = TID_C; return h; }

static void tcp_pair(int lfd, struct sockaddr_in *la, int *writer, int *relay_end)
{
	int one = 1;

	*writer = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*writer, (struct sockaddr *)la, sizeof(*la))) {
		perror("connect");
		exit(1);
	}
	*relay_end = accept(lfd, NULL, NULL);
	setsockopt(*writer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*relay_end, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void pause_ms(int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };
	nanosleep(&ts, NULL);
}

/* Reads what arrives on fd within the quiet period (no byte for quiet_ms ends it). */
static size_t drain(int fd, uint8_t *buf, size_t cap, int quiet_ms)
{
	size_t got = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (got < cap && poll(&p, 1, quiet_ms) > 0) {
		ssize_t n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

struct fixture {
	const char *name;
	int dir;               /* RELAY_DIR_*: which side the input is written on */
	uint8_t in[1 << 20];
	size_t in_len;
	size_t cuts[8];        /* chunk boundaries in `in` (ascending), 0-terminated */
	uint8_t out[1 << 20];  /* expected at the far end */
	size_t out_len;
	size_t user_len;       /* bytes expected at user space on the relay socket (a pass): in[in_len-user_len..] */
	int user_rewritten;    /* ...except that they are out[] (rewritten before the redirect failed) */
	int reason;            /* counter expected to move (-1: none checked) */
	uint32_t cmd_mask;
	int no_rules, no_session, no_peer, no_state;
};

static struct relay_bpf rb;
static int lfd;
static struct sockaddr_in la;
static uint32_t next_conn = 1;
static int failed_before;

static void run(struct fixture *f, enum relay_mode mode)
{
	int cw, cin, bw, bin;
	uint32_t conn = next_conn++;
	uint64_t before[RELAY_REASON_COUNT], after[RELAY_REASON_COUNT];
	static uint8_t got[1 << 20], user[1 << 20];
	char name[160];

	snprintf(name, sizeof(name), "%s [%s]", f->name, mode == RELAY_MODE_PARSER ? "parser" : "cut");
	tcp_pair(lfd, &la, &cw, &cin);
	tcp_pair(lfd, &la, &bw, &bin);
	/* The strparser holds a whole frame in the receive buffer: room for the 300 KiB one. */
	int big = 4 << 20;
	setsockopt(cin, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(bin, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	struct relay_conn rules = { .msg_id_delta = DELTA, .cmd_mask = f->cmd_mask ? f->cmd_mask : 0x7ffff, .flags = RELAY_CONN_REWRITE };
	if (!f->no_session)
		relay_add_session(&rb, conn, SID_C, SID_B);
	relay_add_tree(&rb, conn, TID_C, TID_B);
	if (relay_offload(&rb, conn, cin, bin, &rules)) {
		check(0, name, rb.relay_err);
		return;
	}
	if (f->no_rules)
		bpf_map_delete_elem(rb.conns, &conn);
	if (f->no_peer) {
		uint32_t k = f->dir == RELAY_DIR_REQUEST ? 2 * conn + 1 : 2 * conn;
		bpf_map_delete_elem(rb.socks, &k);
	}
	if (f->no_state) {
		uint64_t cookie;
		socklen_t l = sizeof(cookie);
		getsockopt(f->dir == RELAY_DIR_REQUEST ? cin : bin, SOL_SOCKET, SO_COOKIE, &cookie, &l);
		bpf_map_delete_elem(rb.state, &cookie);
	}
	relay_reasons(&rb, before);
	int writer = f->dir == RELAY_DIR_REQUEST ? cw : bw, far = f->dir == RELAY_DIR_REQUEST ? bw : cw;
	int relay_end = f->dir == RELAY_DIR_REQUEST ? cin : bin;
	size_t from = 0;
	for (int i = 0; i <= 8; i++) {
		size_t to = i < 8 && f->cuts[i] ? f->cuts[i] : f->in_len;
		if (send(writer, f->in + from, to - from, 0) != (ssize_t)(to - from))
			check(0, name, "send");
		from = to;
		pause_ms(20);
		if (to == f->in_len)
			break;
	}
	size_t n = drain(far, got, sizeof(got), 100);
	check(n == f->out_len, name, "forwarded byte count");
	if (n == f->out_len)
		check(!memcmp(got, f->out, n), name, "forwarded bytes");
	size_t u = drain(relay_end, user, sizeof(user), 50);
	check(u == f->user_len, name, "bytes passed to user space");
	if (u == f->user_len && u)
		check(!memcmp(user, f->user_rewritten ? f->out : f->in + f->in_len - u, u), name, "passed bytes");
	/* The count user space's redirect barrier waits on: exactly the bytes that came out. */
	struct relay_sock st;
	if (!f->no_state && relay_sock_state(&rb, relay_end, &st) == 0)
		check(st.bytes == n, name, "relay_sock.bytes == bytes forwarded");
	relay_reasons(&rb, after);
	if (f->reason >= 0)
		check(after[f->reason] > before[f->reason], name, relay_reason_names[f->reason]);
	relay_unload(&rb, conn, cin, bin);
	close(cw);
	close(cin);
	close(bw);
	close(bin);
	printf("  %s %s: %zu bytes in, %zu forwarded, %zu to user space\n", failures > failed_before ? "FAILED" : "ok", name, f->in_len, n, u);
	failed_before = failures;
}

static struct fixture fx;

/* Builds one fixture from frames: in = concat(frames), out = concat(expected frames). */
static void add(struct fixture *f, struct hdr *hs, int n, struct hdr (*map)(struct hdr), int forwarded)
{
	struct hdr o[16];
	size_t a = frame(f->in + f->in_len, hs, n);

	f->in_len += a;
	if (!forwarded)
		return;
	for (int i = 0; i < n; i++)
		o[i] = map(hs[i]);
	f->out_len += frame(f->out + f->out_len, o, n);
}

static struct fixture *fresh(const char *name, int dir, int reason)
{
	memset(&fx, 0, sizeof(fx));
	fx.name = name;
	fx.dir = dir;
	fx.reason = reason;
	return &fx;
}

int main(int argc, char **argv)
{
	const char *obj = argc > 1 ? argv[1] : "build/smb2_relay.bpf.o";
	int one = 1;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	la = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socklen_t ll = sizeof(la);
	if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) || listen(lfd, 8) || getsockname(lfd, (struct sockaddr *)&la, &ll)) {
		perror("listen");
		return 1;
	}
	for (int m = 0; m < 2; m++) {
		enum relay_mode mode = m ? RELAY_MODE_CUT : RELAY_MODE_PARSER;
		int rc = relay_bpf_open(&rb, obj, mode);
		if (rc) {
			fprintf(stderr, "fixtures: %s: %s\n", rb.relay_err, strerror(-rc));
			return 1;
		}
		if (m == 0) {
			uint8_t in[128] = { 0 };
			LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = in, .data_size_in = sizeof(in), .repeat = 1);
			rc = bpf_prog_test_run_opts(rb.verdict, &t);
			printf("BPF_PROG_TEST_RUN on sk_skb: %s\n", rc ? strerror(-rc) : "supported");
			if (rc == -524)
				printf("  (ENOTSUPP, 524: this kernel has no test_run for sk_skb; real sockets instead)\n");
		}
		printf("mode %s, attached with %s\n", m ? "cut-through" : "strparser", rb.legacy_attach ? "bpf_prog_attach (no sockmap link)" : "bpf_link");
		struct fixture *f;
		struct hdr h[4];

		f = fresh("request: SessionId, TreeId, MessageId rewritten", RELAY_DIR_REQUEST, RELAY_FWD_MSG);
		h[0] = req(8, 5, 49);
		add(f, h, 1, req_out, 1);
		run(f, mode);

		f = fresh("reply: backend ids back to the client's", RELAY_DIR_REPLY, RELAY_FWD_MSG);
		h[0] = rep(8, 5, 80);
		add(f, h, 1, rep_out, 1);
		run(f, mode);

		f = fresh("async reply: AsyncId and the TreeId slot untouched", RELAY_DIR_REPLY, RELAY_FWD_MSG);
		h[0] = rep(15, 9, 8);
		h[0].flags |= 2;
		h[0].async_id = 0x0123456789abcdefull;
		add(f, h, 1, rep_out, 1);
		run(f, mode);

		f = fresh("oplock break: MessageId ~0 and zero ids left alone", RELAY_DIR_REPLY, RELAY_FWD_MSG);
		h[0] = (struct hdr){ .cmd = 18, .flags = 1, .mid = ~0ull, .body = 24 };
		add(f, h, 1, NULL, 0);
		memcpy(f->out, f->in, f->in_len);
		f->out_len = f->in_len;
		run(f, mode);

		f = fresh("compound of three: every header rewritten", RELAY_DIR_REQUEST, RELAY_FWD_MSG);
		h[0] = req(5, 10, 56);
		h[1] = req(16, 11, 40);
		h[2] = req(6, 12, 24);
		add(f, h, 3, req_out, 1);
		run(f, mode);

		f = fresh("coalesced: three frames in one send", RELAY_DIR_REQUEST, RELAY_FWD_MSG);
		for (int i = 0; i < 3; i++) {
			h[0] = req(8, 20 + i, 49);
			add(f, h, 1, req_out, 1);
		}
		run(f, mode);

		static const size_t splits[] = { 2, 4, 30, 50, 67 };
		for (int s = 0; s < 5; s++) {
			static char nm[5][80];
			snprintf(nm[s], sizeof(nm[s]), "split: second header cut %zu bytes into its frame", splits[s]);
			f = fresh(nm[s], RELAY_DIR_REQUEST, mode == RELAY_MODE_CUT ? RELAY_SPLIT_HDR : RELAY_FWD_MSG);
			h[0] = req(9, 30, 200);
			add(f, h, 1, req_out, 1);
			size_t second = f->in_len;
			h[0] = req(9, 31, 200);
			add(f, h, 1, req_out, 1);
			f->cuts[0] = second + splits[s];
			run(f, mode);
		}

		f = fresh("split three ways: a header in three skbs", RELAY_DIR_REPLY, mode == RELAY_MODE_CUT ? RELAY_CARRY_HELD : RELAY_FWD_MSG);
		h[0] = rep(8, 40, 100);
		add(f, h, 1, rep_out, 1);
		h[0] = rep(8, 41, 100);
		size_t second = f->in_len;
		add(f, h, 1, rep_out, 1);
		f->cuts[0] = second + 10;
		f->cuts[1] = second + 20;
		run(f, mode);

		f = fresh("large READ reply (300 KiB body) then a small one", RELAY_DIR_REPLY, RELAY_FWD_MSG);
		h[0] = rep(8, 50, 300 * 1024);
		add(f, h, 1, rep_out, 1);
		h[0] = rep(8, 51, 80);
		add(f, h, 1, rep_out, 1);
		f->cuts[0] = 100000;
		f->cuts[1] = 200000;
		run(f, mode);

		/* Pass reasons: the first message is forwarded, the second passes, the third follows it (sticky). */
		struct {
			const char *name;
			int reason;
			void (*tweak)(struct hdr *);
		} passes[] = {
			{ "pass: SMB2_FLAGS_SIGNED", RELAY_PASS_SIGNED, NULL },
			{ "pass: transform header (encrypted)", RELAY_PASS_ENCRYPTED, NULL },
			{ "pass: compression header", RELAY_PASS_COMPRESSED, NULL },
			{ "pass: SMB1 magic", RELAY_PASS_BAD_MAGIC, NULL },
			{ "pass: command not offloaded", RELAY_PASS_COMMAND, NULL },
			{ "pass: unknown SessionId", RELAY_PASS_SESSION, NULL },
			{ "pass: unknown TreeId", RELAY_PASS_TREE, NULL },
			{ "pass: compound with a NextCommand past the frame", RELAY_PASS_COMPOUND, NULL },
		};
		for (size_t p = 0; p < sizeof(passes) / sizeof(passes[0]); p++) {
			f = fresh(passes[p].name, RELAY_DIR_REQUEST, passes[p].reason);
			h[0] = req(8, 60, 49);
			add(f, h, 1, req_out, 1);
			size_t passed_from = f->in_len;
			h[0] = req(8, 61, 49);
			switch (passes[p].reason) {
			case RELAY_PASS_SIGNED: h[0].flags |= 8; break;
			case RELAY_PASS_ENCRYPTED: h[0].magic = 0x424d53fd; break;
			case RELAY_PASS_COMPRESSED: h[0].magic = 0x424d53fc; break;
			case RELAY_PASS_BAD_MAGIC: h[0].magic = 0x424d53ff; break;
			case RELAY_PASS_COMMAND: h[0].cmd = 3; f->cmd_mask = 1u << 8; break;
			case RELAY_PASS_SESSION: h[0].sid = 77; break;
			case RELAY_PASS_TREE: h[0].tid = 77; break;
			}
			if (passes[p].reason == RELAY_PASS_COMPOUND) {
				h[0].body = 56;
				h[1] = req(8, 62, 49);
				size_t len = frame(f->in + f->in_len, h, 2);
				/* NextCommand pointing past the end of the frame. */
				put32(f->in + f->in_len + 4 + 20, 4096);
				f->in_len += len;
			} else {
				add(f, h, 1, req_out, 0);
			}
			h[0] = req(8, 63, 49);
			add(f, h, 1, req_out, 0);
			/* Separate sends, so the forwarded message is not in the passed skb. */
			f->cuts[0] = passed_from;
			f->user_len = f->in_len - passed_from;
			run(f, mode);
		}

		f = fresh("pass: no rules for the connection", RELAY_DIR_REQUEST, RELAY_PASS_NO_CONN);
		h[0] = req(8, 70, 49);
		add(f, h, 1, req_out, 0);
		f->no_rules = 1;
		f->user_len = f->in_len;
		run(f, mode);

		f = fresh("pass: socket without state", RELAY_DIR_REQUEST, RELAY_PASS_NO_SOCK);
		h[0] = req(8, 71, 49);
		add(f, h, 1, req_out, 0);
		f->no_state = 1;
		f->user_len = f->in_len;
		run(f, mode);

		f = fresh("pass: peer gone from the sockhash", RELAY_DIR_REQUEST, RELAY_PASS_NO_PEER);
		h[0] = req(8, 72, 49);
		add(f, h, 1, req_out, 1);
		f->out_len = 0;
		f->user_rewritten = 1;
		f->no_peer = 1;
		f->user_len = f->in_len;
		run(f, mode);

		relay_bpf_close(&rb);
	}
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
