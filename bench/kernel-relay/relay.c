/*
 * relay: the bench harness for the kernel SMB2 relay. Listens on a TCP port, connects each
 * client to one backend (smbd), relays NEGOTIATE, SESSION_SETUP and TREE_CONNECT in user space
 * (learning SessionId and TreeId, optionally lowering MaxRead/Write/TransactSize in smbd's
 * NEGOTIATE reply as the DSR would in its own), then, once nothing is outstanding, installs
 * identity rules and puts both sockets in the sockhash before the reply that unblocks the client
 * is written, so no byte is queued on either socket when it enters the map. From then on the
 * kernel forwards; anything it passes to user space is copied to the peer here and counted.
 *
 *   relay -l PORT -s IP:PORT -o smb2_relay.bpf.o -m parser|cut|user [-x MAXIO] [-b SOCKBUF]
 *         [-n] [-c CMDMASK]
 *
 *   -m user   no BPF at all: this process copies every byte (a plain user-space relay)
 *   -x        MaxReadSize/MaxWriteSize/MaxTransactSize ceiling put into smbd's NEGOTIATE reply
 *   -b        SO_RCVBUFFORCE/SO_SNDBUFFORCE on both sockets (0: kernel defaults)
 *   -n        no id rewrite (framing only), to measure what the rewrite costs
 *
 * On each connection's close it prints one JSON line: its counters and the reason totals.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>
#include <unistd.h>
#include "relay_lib.h"

#define STATUS_PENDING 0x00000103u
#define STATUS_MORE_PROCESSING 0xc0000016u
#define CMD_NEGOTIATE 0
#define CMD_SESSION_SETUP 1
#define CMD_TREE_CONNECT 3
#define CMD_CANCEL 12
/* Everything but NEGOTIATE, SESSION_SETUP, LOGOFF, TREE_CONNECT, TREE_DISCONNECT. */
#define DEFAULT_CMD_MASK 0x7ffe0u
#define MAX_IDS 16

enum phase { PHASE_USER, PHASE_KERNEL };

struct conn;
struct side {
	struct conn *c;
	int fd;
	int is_client;
	int passing;  /* the kernel passed this direction to user space; framing here until re-armed */
	size_t raw;   /* bytes to copy on before the next header (what the kernel already framed) */
	uint8_t *buf;
	size_t len, cap;
	uint64_t written; /* bytes this process wrote to the socket */
};

struct conn {
	uint32_t id;
	struct side cl, be;
	enum phase phase;
	int outstanding;
	uint16_t dialect;
	uint32_t max_transact, max_read, max_write; /* as the client was told (smbd's, or lowered by -x) */
	int tree_done, resp_after_tree;
	uint64_t sids[MAX_IDS];
	uint32_t tids[MAX_IDS];
	int nsids, ntids;
	uint64_t user_msgs, passed[2];
	uint32_t passes, rearms, last_reason;
	uint32_t passed_cmds; /* bit n: command n reached user space after offload */
	int want_rearm; /* quiescent after a pass: re-arm once this read's frames are out */
	int dead;
	struct conn *next_dead;
};

static struct relay_bpf rb;
static int use_bpf = 1, rewrite = 1, sockbuf, epfd;
static uint32_t maxio, cmd_mask = DEFAULT_CMD_MASK, next_id;
static const char *mode_name;
/* Closed during one epoll batch, freed after it: later events of the batch may still name them. */
static struct conn *dead;
static struct conn *by_id[DSR_RELAY_MAX_CONNS];
/* epoll tag of the ring buffer that says a direction was passed to user space. */
static char ringbuf_tag;

/* In the kernel phase only hang-ups wake us (forwarded skbs would, with EPOLLIN); a pass event adds EPOLLIN. */
static void watch(struct side *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return p[0] | p[1] << 8; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= w;
	}
	return 0;
}

/*
 * Bytes written into fd's send queue so far, by anyone: acknowledged + still queued. The
 * kernel's redirects reach a socket through a work queue (sk_psock_backlog), so user space must
 * not write passed bytes to it before every earlier redirected byte is in: this is the barrier.
 */
static uint64_t sent_into(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int outq = 0;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || ioctl(fd, SIOCOUTQ, &outq))
		return 0;
	return ti.tcpi_bytes_acked + (uint64_t)outq;
}

/* Waits (up to 1 s) until the kernel's redirects into `to` have all landed; 0 when they have. */
static int redirect_barrier(struct side *to, struct side *from)
{
	struct dsr_relay_sock st;

	if (relay_sock_state(&rb, from->fd, &st))
		return -1;
	for (int i = 0; i < 10000; i++) {
		if (sent_into(to->fd) >= to->written + st.bytes)
			return 0;
		usleep(100);
	}
	fprintf(stderr, "conn %u: barrier: %llu bytes in the peer, %llu written + %llu redirected\n", from->c->id,
		(unsigned long long)sent_into(to->fd), (unsigned long long)to->written, (unsigned long long)st.bytes);
	return -1;
}

static void tune(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sockbuf) {
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sockbuf, sizeof(sockbuf)) ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sockbuf, sizeof(sockbuf)))
			die("SO_RCVBUFFORCE/SO_SNDBUFFORCE");
	}
}

static void print_counts(const char *key, const char *const *names, const uint64_t *n, int from, int to)
{
	printf(",\"%s\":{", key);
	for (int i = from; i < to; i++)
		printf("%s\"%s\":%" PRIu64, i > from ? "," : "", names[i], n[i]);
	printf("}");
}

static void print_close(struct conn *c)
{
	struct dsr_relay_sock req = { 0 }, rep = { 0 };
	uint64_t counters[DSR_RELAY_COUNTER_MAX] = { 0 }, passes[DSR_PASS_REASON_MAX] = { 0 };

	if (use_bpf) {
		relay_sock_state(&rb, c->cl.fd, &req);
		relay_sock_state(&rb, c->be.fd, &rep);
		relay_sum_percpu(rb.counters, DSR_RELAY_COUNTER_MAX, counters);
		relay_sum_percpu(rb.passes, DSR_PASS_REASON_MAX, passes);
	}
	printf("{\"event\":\"close\",\"conn\":%u,\"mode\":\"%s\",\"offloaded\":%d,\"dialect\":\"0x%x\",\"userMsgs\":%" PRIu64
	       ",\"passes\":%u,\"rearms\":%u,\"passedCmds\":\"0x%x\",\"lastPassReason\":\"%s\",\"passedBytes\":[%" PRIu64 ",%" PRIu64 "],"
	       "\"req\":{\"msgs\":%llu,\"bytes\":%llu,\"sticky\":%u,\"charge\":%llu,\"msgIdEnd\":%llu},"
	       "\"rep\":{\"msgs\":%llu,\"bytes\":%llu,\"sticky\":%u,\"credits\":%llu,\"interims\":%llu}",
	       c->id, mode_name, c->phase == PHASE_KERNEL, c->dialect, c->user_msgs, c->passes, c->rearms, c->passed_cmds,
	       c->last_reason < DSR_PASS_REASON_MAX ? relay_pass_names[c->last_reason] : "?", c->passed[0], c->passed[1],
	       (unsigned long long)req.msgs, (unsigned long long)req.bytes, req.sticky, (unsigned long long)req.charge,
	       (unsigned long long)req.msg_id_end, (unsigned long long)rep.msgs, (unsigned long long)rep.bytes, rep.sticky,
	       (unsigned long long)rep.credits, (unsigned long long)rep.interims);
	print_counts("counters", relay_counter_names, counters, 0, DSR_RELAY_COUNTER_MAX);
	/* DSR_PASS_NONE is never counted. */
	print_counts("passReasons", relay_pass_names, passes, DSR_PASS_NONE + 1, DSR_PASS_REASON_MAX);
	printf("}\n");
	fflush(stdout);
}

static void close_conn(struct conn *c)
{
	print_close(c);
	by_id[c->id] = NULL;
	if (use_bpf && c->phase == PHASE_KERNEL)
		relay_unload(&rb, c->id, c->cl.fd, c->be.fd);
	close(c->cl.fd);
	close(c->be.fd);
	c->dead = 1;
	c->next_dead = dead;
	dead = c;
}

static void free_dead(void)
{
	while (dead) {
		struct conn *c = dead;
		dead = c->next_dead;
		free(c->cl.buf);
		free(c->be.buf);
		free(c);
	}
}

static void offload(struct conn *c)
{
	/* The verdict checks READ/WRITE/FLUSH/QUERY_INFO requests against what the client was told. */
	struct dsr_relay_conn rules = {
		.msg_id_delta = 0,
		.cmd_mask = cmd_mask,
		.flags = rewrite ? DSR_RELAY_CONN_REWRITE : 0,
		.max_read = c->max_read,
		.max_write = c->max_write,
		.max_transact = c->max_transact,
	};

	/* Identity maps: the bench measures the lookups and writes, not a translation. */
	for (int i = 0; i < c->nsids; i++)
		if (relay_add_session(&rb, c->id, c->sids[i], c->sids[i]))
			goto failed;
	for (int i = 0; i < c->ntids; i++)
		if (relay_add_tree(&rb, c->id, c->tids[i], c->tids[i]))
			goto failed;
	if (relay_offload(&rb, c->id, c->cl.fd, c->be.fd, &rules))
		goto failed;
	c->phase = PHASE_KERNEL;
	watch(&c->cl, EPOLLRDHUP);
	watch(&c->be, EPOLLRDHUP);
	return;
failed:
	fprintf(stderr, "conn %u stays in user space: %s: %s\n", c->id, rb.relay_err, strerror(errno));
	relay_unload(&rb, c->id, c->cl.fd, c->be.fd);
}

/*
 * Back to the kernel after user space handled what it was passed (a second TREE_CONNECT, say):
 * both directions restart framing at a message boundary, which holds because nothing is
 * outstanding and both receive queues are empty.
 */
static void rearm(struct conn *c)
{
	struct side *sides[2] = { &c->cl, &c->be };
	int queued = 0;

	for (int i = 0; i < 2; i++) {
		int n = 0;
		ioctl(sides[i]->fd, FIONREAD, &n);
		queued |= n > 0 || sides[i]->raw > 0;
	}
	if (queued)
		return;
	for (int i = 0; i < c->ntids; i++)
		relay_add_tree(&rb, c->id, c->tids[i], c->tids[i]);
	for (int i = 0; i < c->nsids; i++)
		relay_add_session(&rb, c->id, c->sids[i], c->sids[i]);
	for (int i = 0; i < 2; i++) {
		struct dsr_relay_sock st;
		uint64_t cookie;
		socklen_t len = sizeof(cookie);

		if (relay_sock_state(&rb, sides[i]->fd, &st) || getsockopt(sides[i]->fd, SOL_SOCKET, SO_COOKIE, &cookie, &len))
			continue;
		st.sticky = 0;
		st.skip = 0;
		st.at_nb = 1;
		st.frame_left = 0;
		st.carry_len = 0;
		bpf_map_update_elem(rb.state, &cookie, &st, BPF_EXIST);
		sides[i]->passing = 0;
		watch(sides[i], EPOLLRDHUP);
	}
	c->rearms++;
}

/* One whole NetBIOS frame from `from` (user phase): learn, maybe rewrite, decide. */
static void frame(struct side *from, uint8_t *f, size_t flen)
{
	struct conn *c = from->c;
	size_t off = 4;

	while (off + 64 <= flen) {
		uint8_t *h = f + off;
		uint16_t cmd = le16(h + 12);
		uint32_t status = le32(h + 8), flags = le32(h + 16), next = le32(h + 20);

		c->user_msgs++;
		if (c->phase == PHASE_KERNEL && cmd < 32)
			c->passed_cmds |= 1u << cmd;
		if (from->is_client) {
			if (cmd != CMD_CANCEL)
				c->outstanding++;
		} else if (!(status == STATUS_PENDING && (flags & 2))) {
			c->outstanding--;
			if (c->tree_done)
				c->resp_after_tree++;
			if (cmd == CMD_NEGOTIATE && status == 0 && off + 64 + 40 <= flen) {
				uint8_t *b = h + 64;
				c->dialect = le16(b + 4);
				/* MaxTransactSize, MaxReadSize, MaxWriteSize (MS-SMB2 2.2.4). */
				for (int i = 0; maxio && i < 3; i++)
					if (le32(b + 28 + 4 * i) > maxio)
						put32(b + 28 + 4 * i, maxio);
				c->max_transact = le32(b + 28);
				c->max_read = le32(b + 32);
				c->max_write = le32(b + 36);
			}
			if (cmd == CMD_SESSION_SETUP && (status == 0 || status == STATUS_MORE_PROCESSING) && c->nsids < MAX_IDS) {
				uint64_t sid = le64(h + 40);
				int known = 0;
				for (int i = 0; i < c->nsids; i++)
					known |= c->sids[i] == sid;
				if (!known && sid)
					c->sids[c->nsids++] = sid;
			}
			if (cmd == CMD_TREE_CONNECT && status == 0 && c->ntids < MAX_IDS) {
				c->tids[c->ntids++] = le32(h + 36);
				c->tree_done = 1;
				c->resp_after_tree = 0;
			}
		}
		if (!next)
			break;
		off += next;
	}
	/*
	 * Quiescent (nothing outstanding) and connected to a tree: go to the kernel before writing
	 * the reply the client waits for. SMB 3.0.x clients send a signed VALIDATE_NEGOTIATE IOCTL
	 * right after the tree connect, so wait for one more exchange there.
	 */
	if (from->is_client || c->outstanding > 0 || !c->tree_done)
		return;
	if (c->phase == PHASE_KERNEL) {
		c->outstanding = 0;
		c->want_rearm = 1;
	} else if (c->resp_after_tree >= 1 || (c->dialect != 0x300 && c->dialect != 0x302)) {
		offload(c);
	}
}

static void on_readable(struct side *s)
{
	struct conn *c = s->c;
	struct side *peer = s->is_client ? &c->be : &c->cl;
	ssize_t n;

	if (c->dead)
		return;
	if (!use_bpf) {
		/* The plain user-space relay: copy whatever came. */
		static uint8_t tmp[1 << 20];
		n = read(s->fd, tmp, sizeof(tmp));
		if (n <= 0 || write_all(peer->fd, tmp, n))
			close_conn(c);
		return;
	}
	if (s->cap - s->len < 65536) {
		s->cap = s->cap ? s->cap * 2 : 1 << 17;
		s->buf = realloc(s->buf, s->cap);
		if (!s->buf)
			die("realloc");
	}
	n = recv(s->fd, s->buf + s->len, s->cap - s->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_conn(c);
		return;
	}
	if (c->phase == PHASE_KERNEL && !s->passing) {
		/* The verdict turned this direction sticky before queueing these bytes: where to resume. */
		struct dsr_relay_sock st;

		if (relay_sock_state(&rb, s->fd, &st) == 0) {
			s->raw = st.skip + (st.at_nb ? 0 : st.frame_left);
			c->last_reason = st.sticky;
		}
		s->passing = 1;
		c->passes++;
	}
	if (c->phase == PHASE_KERNEL)
		c->passed[s->is_client ? 0 : 1] += n;
	s->len += n;
	/* What the kernel already framed (the tail of a message it forwarded the start of) goes on as is. */
	size_t done = s->raw < s->len ? s->raw : s->len;
	s->raw -= done;
	while (!s->raw && s->len - done >= 4) {
		uint8_t *f = s->buf + done;
		size_t flen = 4 + ((size_t)f[1] << 16 | f[2] << 8 | f[3]);
		if (s->len - done < flen)
			break;
		frame(s, f, flen);
		done += flen;
	}
	if (c->want_rearm) {
		c->want_rearm = 0;
		if (done == s->len && !peer->len)
			rearm(c);
	}
	if (done && c->phase == PHASE_KERNEL && redirect_barrier(peer, s)) {
		fprintf(stderr, "conn %u: redirected bytes did not reach the peer within 1 s\n", c->id);
		close_conn(c);
		return;
	}
	if (done && write_all(peer->fd, s->buf, done)) {
		close_conn(c);
		return;
	}
	peer->written += done;
	memmove(s->buf, s->buf + done, s->len - done);
	s->len -= done;
}

static int on_event(void *ctx, void *data, size_t size)
{
	const struct dsr_relay_event *ev = data;
	struct conn *c;

	(void)ctx;
	if (size < sizeof(*ev) || ev->conn >= DSR_RELAY_MAX_CONNS || !(c = by_id[ev->conn]) || c->dead)
		return 0;
	watch(ev->dir == DSR_RELAY_DIR_REQUEST ? &c->cl : &c->be, EPOLLIN | EPOLLRDHUP);
	return 0;
}

static void accept_one(int lfd, struct sockaddr_in *backend)
{
	int cfd = accept(lfd, NULL, NULL), bfd;
	struct conn *c;

	if (cfd < 0)
		return;
	bfd = socket(AF_INET, SOCK_STREAM, 0);
	tune(cfd);
	tune(bfd);
	if (connect(bfd, (struct sockaddr *)backend, sizeof(*backend))) {
		perror("connect backend");
		close(cfd);
		close(bfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	c->id = next_id++ % DSR_RELAY_MAX_CONNS;
	c->cl = (struct side){ .c = c, .fd = cfd, .is_client = 1 };
	c->be = (struct side){ .c = c, .fd = bfd, .is_client = 0 };
	by_id[c->id] = c;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->cl };
	epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
	ev.data.ptr = &c->be;
	epoll_ctl(epfd, EPOLL_CTL_ADD, bfd, &ev);
}

int main(int argc, char **argv)
{
	const char *obj = "smb2_relay.bpf.o", *server = NULL;
	int port = 0, opt, one = 1;
	enum relay_mode mode = RELAY_MODE_CUT;

	mode_name = "cut";
	while ((opt = getopt(argc, argv, "l:s:o:m:x:b:nc:")) != -1) {
		switch (opt) {
		case 'l': port = atoi(optarg); break;
		case 's': server = optarg; break;
		case 'o': obj = optarg; break;
		case 'm':
			mode_name = optarg;
			if (!strcmp(optarg, "parser"))
				mode = RELAY_MODE_PARSER;
			else if (!strcmp(optarg, "cut"))
				mode = RELAY_MODE_CUT;
			else if (!strcmp(optarg, "user"))
				use_bpf = 0;
			else {
				fprintf(stderr, "unknown mode %s\n", optarg);
				return 2;
			}
			break;
		case 'x': maxio = strtoul(optarg, NULL, 0); break;
		case 'b': sockbuf = atoi(optarg); break;
		case 'n': rewrite = 0; break;
		case 'c': cmd_mask = strtoul(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: relay -l PORT -s IP:PORT [-o OBJ] [-m parser|cut|user] [-x MAXIO] [-b SOCKBUF] [-n] [-c CMDMASK]\n");
			return 2;
		}
	}
	char *colon = server ? strchr(server, ':') : NULL;
	if (!port || !colon) {
		fprintf(stderr, "relay: -l PORT and -s IP:PORT are required\n");
		return 2;
	}
	struct sockaddr_in backend = { .sin_family = AF_INET, .sin_port = htons(atoi(colon + 1)) };
	*colon = 0;
	if (inet_pton(AF_INET, server, &backend.sin_addr) != 1) {
		fprintf(stderr, "relay: bad server address %s\n", server);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (use_bpf) {
		int rc = relay_bpf_open(&rb, obj, mode);
		if (rc) {
			fprintf(stderr, "relay: %s: %s\n", rb.relay_err, strerror(-rc));
			return 1;
		}
	}
	struct ring_buffer *events = NULL;
	if (use_bpf && !(events = ring_buffer__new(rb.events, on_event, NULL, NULL)))
		die("ring_buffer__new");
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) || listen(lfd, 64))
		die("listen");
	epfd = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	if (events) {
		ev.data.ptr = &ringbuf_tag;
		epoll_ctl(epfd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(events), &ev);
	}
	fprintf(stderr, "relay: listening on %d, mode %s, maxio %u, sockbuf %d, rewrite %d\n", port, mode_name, maxio, sockbuf, rewrite);
	for (;;) {
		struct epoll_event evs[16];
		int n = epoll_wait(epfd, evs, 16, -1);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct side *s = evs[i].data.ptr;
			if (!s)
				accept_one(lfd, &backend);
			else if (evs[i].data.ptr == &ringbuf_tag)
				ring_buffer__consume(events);
			else if (evs[i].events & EPOLLIN)
				on_readable(s);
			else if (!s->c->dead)
				close_conn(s->c);
		}
		free_dead();
	}
}
