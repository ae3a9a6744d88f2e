/*
 * fixtures: the SMB2 relay's programs on real loopback sockets, since BPF_PROG_TEST_RUN does
 * not run sk_skb programs on this kernel (6.18 answers ENOTSUPP, 524; checked at start).
 *
 *   writer "client" --TCP--> [cin]  relay_socks key 2*conn   (requests arrive here)
 *   reader "client" <--TCP-- [cin]
 *   reader "backend" <--TCP-- [bin] relay_socks key 2*conn+1 (replies arrive here)
 *   writer "backend" --TCP--> [bin]
 *
 * Each fixture is a row of `specs`: rules, input frames written in chunks (each chunk one send,
 * with a pause, so it arrives as its own skb: that makes split headers), from which build()
 * derives the bytes expected at the far end and at user space on the relay socket and the counts
 * the verdict must keep on the relay socket; and the pass reason or counter expected to move.
 * Run as root: fixtures [OBJ]; exit 0 when all pass.
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
/* The client's FileId (the DSR's) with an entry in relay_files, and the backend's for it. */
static const struct dsr_relay_file_id FID_C = { 0x5151000000000001ull, 0x5252000000000002ull };
static const struct dsr_relay_file_id FID_B = { 0x6161000000000003ull, 0x6262000000000004ull };
/* A FileId the client holds without an entry; the related-compound FileId (MS-SMB2 3.2.4.1.4). */
static const struct dsr_relay_file_id FID_UNKNOWN = { 0x5151000000000001ull, 0x99 };
static const struct dsr_relay_file_id FID_RELATED = { ~0ull, ~0ull };
#define STATUS_PENDING 0x00000103u
/* The negotiated limits of the fixtures' connections (dsr_relay_conn.max_*), and the credits a
 * request moving n bytes needs (MS-SMB2 3.1.5.2). */
#define MAX_READ (256 * 1024)
#define MAX_WRITE (192 * 1024)
#define MAX_TRANSACT (128 * 1024)
#define CREDITS(n) (((n) + DSR_SMB2_CREDIT_BYTES - 1) / DSR_SMB2_CREDIT_BYTES)

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

/* Which FileId a request names, where its command has one (default: the client's, FID_C). */
enum fid { FID_IS_C, FID_IS_B, FID_IS_UNKNOWN, FID_IS_RELATED };

struct hdr {
	uint32_t magic;
	uint16_t cmd;
	uint16_t charge, credits; /* CreditCharge; CreditRequest/CreditResponse */
	uint32_t status;
	uint32_t flags, next;
	uint64_t mid, sid, async_id;
	uint32_t tid;
	enum fid fid;
	uint32_t body;   /* body bytes after the header (filled with a pattern); every header has some */
	/* Requests the verdict checks get a valid fixed part (READ Length 4096, WRITE Data = the body
	 * after its fixed part, QUERY_INFO OutputBufferLength 4096, no InputBuffer or channel info)
	 * unless these say otherwise (0: that default): */
	uint16_t ssize;  /* StructureSize */
	uint32_t len;    /* READ/WRITE Length, QUERY_INFO OutputBufferLength */
	uint32_t in_len; /* QUERY_INFO InputBufferLength, READ ReadChannelInfoLength */
	uint32_t doff;   /* WRITE DataOffset, QUERY_INFO InputBufferOffset, READ ReadChannelInfoOffset */
	uint8_t chain;   /* chained to the previous header: the same NetBIOS frame */
	uint8_t to_user; /* this frame and all after it reach user space, not the far end; a send starts here */
};

/* Body offsets of requests' FileIds by command (0: none), from the ABI. */
static const uint32_t file_id_at[DSR_SMB2_CMD_COUNT] = {
	[DSR_SMB2_CMD_CLOSE] = DSR_SMB2_FILE_ID_AT_CLOSE,
	[DSR_SMB2_CMD_FLUSH] = DSR_SMB2_FILE_ID_AT_FLUSH,
	[DSR_SMB2_CMD_READ] = DSR_SMB2_FILE_ID_AT_READ,
	[DSR_SMB2_CMD_WRITE] = DSR_SMB2_FILE_ID_AT_WRITE,
	[DSR_SMB2_CMD_LOCK] = DSR_SMB2_FILE_ID_AT_LOCK,
	[DSR_SMB2_CMD_IOCTL] = DSR_SMB2_FILE_ID_AT_IOCTL,
	[DSR_SMB2_CMD_QUERY_DIRECTORY] = DSR_SMB2_FILE_ID_AT_QUERY_DIRECTORY,
	[DSR_SMB2_CMD_CHANGE_NOTIFY] = DSR_SMB2_FILE_ID_AT_CHANGE_NOTIFY,
	[DSR_SMB2_CMD_QUERY_INFO] = DSR_SMB2_FILE_ID_AT_QUERY_INFO,
	[DSR_SMB2_CMD_SET_INFO] = DSR_SMB2_FILE_ID_AT_SET_INFO,
	[DSR_SMB2_CMD_OPLOCK_BREAK] = DSR_SMB2_FILE_ID_AT_OPLOCK_BREAK,
};

/* A field of a body `n` bytes long, written only if the body holds it. */
static void body16(uint8_t *b, uint32_t n, uint32_t at, uint16_t v) { if (at + 2 <= n) put16(b + at, v); }
static void body32(uint8_t *b, uint32_t n, uint32_t at, uint32_t v) { if (at + 4 <= n) put32(b + at, v); }

/* The fixed part of a READ, WRITE, FLUSH or QUERY_INFO request (the ones the verdict checks). */
static void checked_body(uint8_t *b, const struct hdr *h)
{
	uint32_t n = h->body, size;

	switch (h->cmd) {
	case DSR_SMB2_CMD_READ:
		size = DSR_SMB2_SIZE_READ;
		body32(b, n, DSR_SMB2_READ_LENGTH_AT, h->len ? h->len : 4096);
		body16(b, n, DSR_SMB2_READ_CHANNEL_INFO_AT, h->doff);
		body16(b, n, DSR_SMB2_READ_CHANNEL_INFO_AT + 2, h->in_len);
		break;
	case DSR_SMB2_CMD_WRITE:
		size = DSR_SMB2_SIZE_WRITE;
		body16(b, n, DSR_SMB2_WRITE_DATA_OFFSET_AT, h->doff ? h->doff : 64 + 48);
		body32(b, n, DSR_SMB2_WRITE_LENGTH_AT, h->len ? h->len : n > 48 ? n - 48 : 0);
		body32(b, n, DSR_SMB2_WRITE_CHANNEL_INFO_AT, 0);
		break;
	case DSR_SMB2_CMD_FLUSH:
		size = DSR_SMB2_SIZE_FLUSH;
		break;
	case DSR_SMB2_CMD_QUERY_INFO:
		size = DSR_SMB2_SIZE_QUERY_INFO;
		body32(b, n, DSR_SMB2_QUERY_INFO_OUTPUT_LENGTH_AT, h->len ? h->len : 4096);
		body16(b, n, DSR_SMB2_QUERY_INFO_INPUT_OFFSET_AT, h->doff ? h->doff : h->in_len ? 64 + 40 : 0);
		body32(b, n, DSR_SMB2_QUERY_INFO_INPUT_LENGTH_AT, h->in_len);
		break;
	default:
		return;
	}
	body16(b, n, 0, h->ssize ? h->ssize : size);
}

/* One SMB2 header + body at p (no NetBIOS prefix); returns bytes written. A request's FileId is
 * written where its command has one, if its body is long enough. */
static size_t smb2(uint8_t *p, const struct hdr *h)
{
	static const struct dsr_relay_file_id *const fids[] = {
		[FID_IS_C] = &FID_C, [FID_IS_B] = &FID_B, [FID_IS_UNKNOWN] = &FID_UNKNOWN, [FID_IS_RELATED] = &FID_RELATED,
	};
	uint32_t at = h->cmd < DSR_SMB2_CMD_COUNT && !(h->flags & 1) ? file_id_at[h->cmd] : 0;

	memset(p, 0, 64);
	put32(p, h->magic ? h->magic : 0x424d53fe);
	put16(p + 4, 64);
	put16(p + 6, h->charge);
	put32(p + 8, h->status);
	put16(p + 12, h->cmd);
	put16(p + 14, h->credits);
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
	if (!(h->flags & 1))
		checked_body(p + 64, h);
	if (at && at + DSR_SMB2_FILE_ID_LEN <= h->body) {
		put64(p + 64 + at, fids[h->fid]->persistent);
		put64(p + 64 + at + 8, fids[h->fid]->volatile_);
	}
	return 64 + h->body;
}

/* A NetBIOS frame of n chained headers; a NextCommand left 0 is filled in (8-byte aligned bodies). */
static size_t frame(uint8_t *p, struct hdr *hs, int n)
{
	size_t off = 4;

	for (int i = 0; i < n; i++) {
		if (i < n - 1 && !hs[i].next)
			hs[i].next = 64 + hs[i].body;
		off += smb2(p + off, &hs[i]);
	}
	p[0] = 0;
	p[1] = (off - 4) >> 16;
	p[2] = (off - 4) >> 8;
	p[3] = off - 4;
	return off;
}

/* What the rules make of a header: ids mapped to the peer's, MessageId moved by DELTA, a
 * request's FileId (with DSR_RELAY_CONN_FILES) the backend's; zero ids, MessageId ~0 (breaks), an
 * async header's AsyncId and the related-compound FileId stay. */
static struct hdr rewritten(struct hdr h, int dir, int files)
{
	int req = dir == DSR_RELAY_DIR_REQUEST;

	if (h.mid != ~0ull)
		h.mid = req ? h.mid + DELTA : h.mid - DELTA;
	if (h.sid)
		h.sid = req ? SID_B : SID_C;
	if (h.tid && !(h.flags & 2))
		h.tid = req ? TID_B : TID_C;
	if (req && files && h.fid == FID_IS_C)
		h.fid = FID_IS_B;
	return h;
}

/* The counts of struct dsr_relay_sock that the verdict keeps for taking a connection back. */
struct counts {
	uint64_t msgs, charge, msg_id_end, credits, interims;
};

/* A forwarded header's share of them, as MS-SMB2 has it (CANCEL uses no credit, a CreditCharge
 * of 0 is one credit; an interim response is STATUS_PENDING with SMB2_FLAGS_ASYNC_COMMAND). */
static void count_hdr(struct counts *c, const struct hdr *h, int dir)
{
	uint64_t charge = h->charge ? h->charge : 1;

	c->msgs++;
	if (dir == DSR_RELAY_DIR_REPLY) {
		c->credits += h->credits;
		c->interims += h->status == STATUS_PENDING && (h->flags & 2);
	} else if (h->cmd != DSR_SMB2_CMD_CANCEL) {
		c->charge += charge;
		if (h->mid + charge > c->msg_id_end)
			c->msg_id_end = h->mid + charge;
	}
}

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

/* A request as the client sends it (FileId: FID_C), a reply as the backend sends it; fields after the body override. */
#define REQ(c, m, b, ...) { .cmd = (c), .mid = (m), .sid = SID_C, .tid = TID_C, .body = (b), __VA_ARGS__ }
#define REP(c, m, b, ...) { .cmd = (c), .flags = 1, .mid = (m) + DELTA, .sid = SID_B, .tid = TID_B, .body = (b), __VA_ARGS__ }
#define MAX_HDRS 4
#define MAX_CUTS 4

/* One fixture: its input frames, how they are sent, and what must come out of them. */
struct spec {
	const char *name;
	int dir;                 /* DSR_RELAY_DIR_*: which side the input is written on */
	int pass;                /* the DSR_PASS_* expected to be counted; 0: no pass may be */
	int counter[2];          /* without a pass: the DSR_RELAY_* counter expected to move [strparser, cut-through] */
	struct hdr hs[MAX_HDRS]; /* the headers in order, up to the first without a body */
	struct {
		int frame;       /* index of a NetBIOS frame */
		uint32_t at;     /* bytes into it: where a new send starts (0: no cut) */
	} cuts[2];
	uint32_t cmd_mask;       /* 0: every command */
	int no_files;            /* without DSR_RELAY_CONN_FILES (REWRITE alone) */
	int no_rules, no_state, no_peer; /* taken away once the pair is offloaded */
	struct counts want;      /* msgs > 0: the counts the row is about, checked against build()'s too */
};

/* The second of two frames sent in two pieces, the first `n` bytes of it with the first frame
 * (WRITEs: the FileId is bytes 84..99 of the frame, carried with the header). */
#define SPLIT(n)                                                                                  \
	{ "split: second header cut " #n " bytes into its frame", .hs = { REQ(9, 30, 200), REQ(9, 31, 200) }, \
	  .counter = { DSR_RELAY_FWD_MSG, DSR_RELAY_SPLIT_HDR }, .cuts = { { 1, n } } }
/* The first message is forwarded, the second passes, the third follows it (sticky). */
#define PASSED(reason, what, ...) \
	{ "pass: " what, .pass = (reason), .hs = { REQ(8, 60, 49), REQ(8, 61, 49, .to_user = 1, __VA_ARGS__), REQ(8, 63, 49) } }

static const struct spec specs[] = {
	{ "request: SessionId, TreeId, MessageId and a READ's FileId rewritten", .hs = { REQ(8, 5, 49) } },
	{ "request: a WRITE's FileId rewritten", .hs = { REQ(9, 6, 100) } },
	{ "request: without DSR_RELAY_CONN_FILES a FileId goes as it is", .no_files = 1, .hs = { REQ(8, 7, 49, .fid = FID_IS_UNKNOWN) } },
	{ "related compound: later headers' FileId (all 0xFF) goes as it is", .hs = { REQ(8, 80, 48), REQ(9, 81, 56, .chain = 1, .flags = 4, .fid = FID_IS_RELATED), REQ(6, 82, 24, .chain = 1, .flags = 4, .fid = FID_IS_RELATED) } },
	{ "reply: backend ids back to the client's", DSR_RELAY_DIR_REPLY, .hs = { REP(8, 5, 80) } },
	{ "async reply: AsyncId and the TreeId slot untouched", DSR_RELAY_DIR_REPLY,
	  .hs = { REP(15, 9, 8, .flags = 3, .async_id = 0x0123456789abcdefull) } },
	{ "oplock break: MessageId ~0 and zero ids left alone", DSR_RELAY_DIR_REPLY,
	  .hs = { { .cmd = 18, .flags = 1, .mid = ~0ull, .body = 24 } } },
	{ "compound of three: every header rewritten", .hs = { REQ(5, 10, 56), REQ(16, 11, 40, .chain = 1), REQ(6, 12, 24, .chain = 1) } },
	{ "coalesced: three frames in one send", .hs = { REQ(8, 20, 49), REQ(8, 21, 49), REQ(8, 22, 49) } },
	SPLIT(2), SPLIT(4), SPLIT(30), SPLIT(50), SPLIT(67), SPLIT(68), SPLIT(84), SPLIT(99),
	/* The WRITE's fixed part (bytes 68..115 of the frame) goes with its header too: the verdict checks it. */
	SPLIT(110), SPLIT(115),
	{ "split: a READ's fixed part one byte short (115 bytes into its frame)", .hs = { REQ(8, 30, 49), REQ(8, 31, 49) },
	  .counter = { DSR_RELAY_FWD_MSG, DSR_RELAY_SPLIT_HDR }, .cuts = { { 1, 115 } } },
	{ "split: a QUERY_INFO's FileId one byte short (107 bytes into its frame)", .hs = { REQ(16, 30, 48), REQ(16, 31, 48) },
	  .counter = { DSR_RELAY_FWD_MSG, DSR_RELAY_SPLIT_HDR }, .cuts = { { 1, 107 } } },
	/* The frame is checked whole at its start with the second FileId (bytes 196..211) not in yet. */
	{ "split: a compound's second FileId cut off (200 bytes into the frame)", .hs = { REQ(8, 90, 48), REQ(8, 91, 48, .chain = 1) },
	  .counter = { DSR_RELAY_FWD_MSG, DSR_RELAY_SPLIT_HDR }, .cuts = { { 0, 200 } } },
	{ "split three ways: a header in three skbs", DSR_RELAY_DIR_REPLY, .counter = { DSR_RELAY_FWD_MSG, DSR_RELAY_CARRY_HELD },
	  .hs = { REP(8, 40, 100), REP(8, 41, 100) }, .cuts = { { 1, 10 }, { 1, 20 } } },
	{ "large READ reply (300 KiB body) then a small one", DSR_RELAY_DIR_REPLY,
	  .hs = { REP(8, 50, 300 * 1024), REP(8, 51, 80) }, .cuts = { { 0, 100000 }, { 0, 200000 } } },
	{ "counts: requests' charge and MessageId end (CreditCharge 4 and 2, CANCEL none, 0 as 1)",
	  .hs = { REQ(8, 10, 49, .charge = 4), REQ(9, 14, 49, .charge = 2), REQ(12, 14, 8), REQ(8, 16, 49) },
	  .want = { .msgs = 4, .charge = 7, .msg_id_end = 17 } },
	{ "counts: credits granted and an interim + final response pair", DSR_RELAY_DIR_REPLY,
	  .hs = { REP(8, 20, 80, .credits = 3), REP(9, 21, 8, .flags = 3, .status = STATUS_PENDING, .async_id = 0x77, .credits = 1),
		  REP(9, 21, 16, .flags = 3, .async_id = 0x77) },
	  .want = { .msgs = 3, .credits = 4, .interims = 1 } },
	PASSED(DSR_PASS_SIGNED, "SMB2_FLAGS_SIGNED", .flags = 8),
	PASSED(DSR_PASS_ENCRYPTED, "transform header (encrypted)", .magic = 0x424d53fd),
	PASSED(DSR_PASS_COMPRESSED, "compression header", .magic = 0x424d53fc),
	PASSED(DSR_PASS_BAD_MAGIC, "SMB1 magic", .magic = 0x424d53ff),
	{ "pass: command not offloaded", .pass = DSR_PASS_COMMAND, .cmd_mask = 1u << 8,
	  .hs = { REQ(8, 60, 49), REQ(3, 61, 49, .to_user = 1), REQ(8, 63, 49) } },
	PASSED(DSR_PASS_SESSION, "unknown SessionId", .sid = 77),
	PASSED(DSR_PASS_TREE, "unknown TreeId", .tid = 77),
	PASSED(DSR_PASS_FILE, "FileId with no entry", .fid = FID_IS_UNKNOWN),
	PASSED(DSR_PASS_FILE, "CLOSE too short for its FileId", .cmd = DSR_SMB2_CMD_CLOSE, .body = 16),
	PASSED(DSR_PASS_COMPOUND, "related FileId (all 0xFF) on a frame's first header", .flags = 4, .fid = FID_IS_RELATED),
	{ "pass: related FileId (all 0xFF) without SMB2_FLAGS_RELATED_OPERATIONS", .pass = DSR_PASS_COMPOUND,
	  .hs = { REQ(8, 60, 49), REQ(8, 61, 48, .to_user = 1), REQ(8, 62, 48, .chain = 1, .fid = FID_IS_RELATED), REQ(8, 63, 49) } },
	{ "pass: compound with a NextCommand past the frame", .pass = DSR_PASS_COMPOUND,
	  .hs = { REQ(8, 60, 49), REQ(8, 61, 56, .next = 4096, .to_user = 1), REQ(8, 62, 49, .chain = 1), REQ(8, 63, 49) } },
	/* Requests checked as the DSR checks them (dsr_abi.h, "Requests checked"): at the limits they
	 * are forwarded, past them they pass. */
	{ "checked: READ of max_read with CreditCharge 4 (one per 64 KiB)", .hs = { REQ(8, 100, 49, .len = MAX_READ, .charge = CREDITS(MAX_READ)) } },
	{ "checked: READ with a 48-byte body (no Buffer byte), READ with ReadChannelInfo ending the message",
	  .hs = { REQ(8, 101, 48), REQ(8, 102, 56, .doff = 64 + 48, .in_len = 8) } },
	{ "checked: WRITE of max_write with CreditCharge 3", .hs = { REQ(9, 103, 48 + MAX_WRITE, .charge = CREDITS(MAX_WRITE)) } },
	{ "checked: WRITE without Data, WRITE whose 64 KiB of Data end the message with CreditCharge 1",
	  .hs = { REQ(9, 104, 48), REQ(9, 105, 48 + 65536, .charge = 1) } },
	{ "checked: FLUSH", .hs = { REQ(7, 106, 24) } },
	{ "checked: QUERY_INFO of max_transact both ways (its InputBuffer ending the message), CreditCharge 2",
	  .hs = { REQ(16, 107, 40 + MAX_TRANSACT, .len = MAX_TRANSACT, .in_len = MAX_TRANSACT, .charge = CREDITS(MAX_TRANSACT)) } },
	{ "checked: a compound's WRITE Data ends at its NextCommand", .hs = { REQ(9, 108, 56), REQ(8, 109, 48, .chain = 1) } },
	PASSED(DSR_PASS_INVALID, "READ Length past max_read", .len = MAX_READ + 1, .charge = CREDITS(MAX_READ + 1)),
	PASSED(DSR_PASS_INVALID, "READ CreditCharge too small for its Length", .len = 65537, .charge = 1),
	PASSED(DSR_PASS_INVALID, "READ CreditCharge 0 (one credit) for 64 KiB + 1", .len = 65537),
	PASSED(DSR_PASS_INVALID, "READ StructureSize 48", .ssize = 48),
	PASSED(DSR_PASS_INVALID, "READ shorter than its fixed part (40-byte body)", .body = 40),
	PASSED(DSR_PASS_INVALID, "READ ReadChannelInfo past the message", .doff = 64 + 48, .in_len = 2),
	PASSED(DSR_PASS_INVALID, "WRITE Length past max_write", .cmd = 9, .body = 48 + MAX_WRITE + 1, .charge = CREDITS(MAX_WRITE + 1)),
	PASSED(DSR_PASS_INVALID, "WRITE CreditCharge too small for its Length", .cmd = 9, .body = 48 + 65537, .charge = 1),
	PASSED(DSR_PASS_INVALID, "WRITE Data past the message", .cmd = 9, .body = 56, .len = 9),
	PASSED(DSR_PASS_INVALID, "WRITE DataOffset inside the fixed part", .cmd = 9, .body = 56, .doff = 64 + 40),
	PASSED(DSR_PASS_INVALID, "WRITE StructureSize 48", .cmd = 9, .ssize = 48),
	PASSED(DSR_PASS_INVALID, "FLUSH StructureSize 25", .cmd = 7, .body = 24, .ssize = 25),
	PASSED(DSR_PASS_INVALID, "QUERY_INFO OutputBufferLength past max_transact", .cmd = 16, .body = 40, .len = MAX_TRANSACT + 1, .charge = CREDITS(MAX_TRANSACT + 1)),
	PASSED(DSR_PASS_INVALID, "QUERY_INFO InputBufferLength past max_transact", .cmd = 16, .body = 40 + MAX_TRANSACT + 1,
	       .in_len = MAX_TRANSACT + 1, .charge = CREDITS(MAX_TRANSACT + 1)),
	PASSED(DSR_PASS_INVALID, "QUERY_INFO CreditCharge too small for its OutputBufferLength", .cmd = 16, .body = 40, .len = 65537, .charge = 1),
	PASSED(DSR_PASS_INVALID, "QUERY_INFO InputBuffer past the message", .cmd = 16, .body = 48, .in_len = 9),
	PASSED(DSR_PASS_INVALID, "QUERY_INFO StructureSize 40", .cmd = 16, .body = 40, .ssize = 40),
	/* A compound is checked whole first: the frame reaches user space untouched. */
	{ "pass: compound whose second member is invalid (WRITE Data past the frame)", .pass = DSR_PASS_INVALID,
	  .hs = { REQ(8, 60, 49), REQ(8, 61, 48, .to_user = 1), REQ(9, 62, 56, .chain = 1, .len = 9), REQ(8, 63, 49) } },
	{ "pass: compound whose first member's WRITE Data runs past its NextCommand", .pass = DSR_PASS_INVALID,
	  .hs = { REQ(8, 60, 49), REQ(9, 61, 56, .to_user = 1, .len = 16), REQ(8, 62, 48, .chain = 1), REQ(8, 63, 49) } },
	{ "pass: no rules for the connection", .pass = DSR_PASS_NO_CONN, .hs = { REQ(8, 70, 49, .to_user = 1) }, .no_rules = 1 },
	{ "pass: socket without state", .pass = DSR_PASS_NO_SOCK, .hs = { REQ(8, 71, 49, .to_user = 1) }, .no_state = 1 },
	/* Rewritten before the redirect fails: user space gets the rewritten bytes. */
	{ "pass: peer gone from the sockhash", .pass = DSR_PASS_NO_PEER, .hs = { REQ(8, 72, 49, .to_user = 1) }, .no_peer = 1 },
};

/* A spec's bytes: what is sent (in chunks), what must reach the far end and user space. */
struct fixture {
	uint8_t in[1 << 20];
	size_t in_len;
	size_t cuts[MAX_CUTS];   /* chunk boundaries in `in` (ascending), 0-terminated */
	uint8_t out[1 << 20];    /* expected at the far end */
	size_t out_len;
	uint8_t user[1 << 20];   /* expected at user space on the relay socket */
	size_t user_len;
	struct counts counts;    /* expected on the relay socket */
};

static void build(const struct spec *s, struct fixture *f)
{
	size_t starts[MAX_HDRS];
	int nframes = 0, ncuts = 0, to_user = 0;

	f->in_len = f->out_len = f->user_len = 0;
	memset(f->cuts, 0, sizeof(f->cuts));
	memset(&f->counts, 0, sizeof(f->counts));
	for (int i = 0; i < MAX_HDRS && s->hs[i].body;) {
		struct hdr in[MAX_HDRS], out[MAX_HDRS];
		int n = 0;

		do {
			in[n] = s->hs[i + n];
			out[n] = rewritten(s->hs[i + n], s->dir, !s->no_files);
			n++;
		} while (i + n < MAX_HDRS && s->hs[i + n].body && s->hs[i + n].chain);
		if (s->hs[i].to_user && !to_user) {
			to_user = 1;
			if (f->in_len)
				f->cuts[ncuts++] = f->in_len;
		}
		starts[nframes++] = f->in_len;
		size_t len = frame(f->in + f->in_len, in, n);
		if (!to_user) {
			f->out_len += frame(f->out + f->out_len, out, n);
			for (int k = 0; k < n; k++)
				count_hdr(&f->counts, &in[k], s->dir);
		} else if (s->no_peer) {
			f->user_len += frame(f->user + f->user_len, out, n);
		} else {
			memcpy(f->user + f->user_len, f->in + f->in_len, len);
			f->user_len += len;
		}
		f->in_len += len;
		i += n;
	}
	for (int c = 0; c < 2 && s->cuts[c].at; c++)
		f->cuts[ncuts++] = starts[s->cuts[c].frame] + s->cuts[c].at;
}

static struct relay_bpf rb;
static int lfd;
static struct sockaddr_in la;
static uint32_t next_conn = 1;
static int failed_before;

static void run(const struct spec *s, const struct fixture *f, enum relay_mode mode)
{
	int cw, cin, bw, bin;
	uint32_t conn = next_conn++;
	uint64_t cbefore[DSR_RELAY_COUNTER_MAX], cafter[DSR_RELAY_COUNTER_MAX];
	uint64_t pbefore[DSR_PASS_REASON_MAX], pafter[DSR_PASS_REASON_MAX];
	static uint8_t got[1 << 20], user[1 << 20];
	char name[160];

	snprintf(name, sizeof(name), "%s [%s]", s->name, mode == RELAY_MODE_PARSER ? "parser" : "cut");
	tcp_pair(lfd, &la, &cw, &cin);
	tcp_pair(lfd, &la, &bw, &bin);
	/* The strparser holds a whole frame in the receive buffer: room for the 300 KiB one. */
	int big = 4 << 20;
	setsockopt(cin, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(bin, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	struct dsr_relay_conn rules = {
		.msg_id_delta = DELTA,
		.cmd_mask = s->cmd_mask ? s->cmd_mask : 0x7ffff,
		.flags = DSR_RELAY_CONN_REWRITE | (s->no_files ? 0 : DSR_RELAY_CONN_FILES),
		.max_read = MAX_READ,
		.max_write = MAX_WRITE,
		.max_transact = MAX_TRANSACT,
	};
	relay_add_session(&rb, conn, SID_C, SID_B);
	relay_add_tree(&rb, conn, TID_C, TID_B);
	relay_add_file(&rb, conn, &FID_C, &FID_B);
	if (relay_offload(&rb, conn, cin, bin, &rules)) {
		check(0, name, rb.relay_err);
		return;
	}
	if (s->no_rules)
		bpf_map_delete_elem(rb.conns, &conn);
	if (s->no_peer) {
		uint32_t k = s->dir == DSR_RELAY_DIR_REQUEST ? 2 * conn + 1 : 2 * conn;
		bpf_map_delete_elem(rb.socks, &k);
	}
	if (s->no_state) {
		uint64_t cookie;
		socklen_t l = sizeof(cookie);
		getsockopt(s->dir == DSR_RELAY_DIR_REQUEST ? cin : bin, SOL_SOCKET, SO_COOKIE, &cookie, &l);
		bpf_map_delete_elem(rb.state, &cookie);
	}
	relay_sum_percpu(rb.counters, DSR_RELAY_COUNTER_MAX, cbefore);
	relay_sum_percpu(rb.passes, DSR_PASS_REASON_MAX, pbefore);
	int writer = s->dir == DSR_RELAY_DIR_REQUEST ? cw : bw, far = s->dir == DSR_RELAY_DIR_REQUEST ? bw : cw;
	int relay_end = s->dir == DSR_RELAY_DIR_REQUEST ? cin : bin;
	size_t from = 0;
	for (int i = 0; i <= MAX_CUTS; i++) {
		size_t to = i < MAX_CUTS && f->cuts[i] ? f->cuts[i] : f->in_len;
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
		check(!memcmp(user, f->user, u), name, "passed bytes");
	/* The count user space's redirect barrier waits on: exactly the bytes that came out. */
	struct dsr_relay_sock st;
	if (!s->no_state && relay_sock_state(&rb, relay_end, &st) == 0) {
		const struct counts *c = &f->counts;

		check(st.bytes == n, name, "relay_sock.bytes == bytes forwarded");
		/* What taking the connection back reads: the headers forwarded, nothing passed. */
		check(st.msgs == c->msgs, name, "relay_sock.msgs");
		check(st.charge == c->charge, name, "relay_sock.charge");
		check(st.msg_id_end == c->msg_id_end, name, "relay_sock.msg_id_end");
		check(st.credits == c->credits, name, "relay_sock.credits");
		check(st.interims == c->interims, name, "relay_sock.interims");
	}
	if (s->want.msgs)
		check(!memcmp(&s->want, &f->counts, sizeof(s->want)), name, "the row's counts are build()'s");
	relay_sum_percpu(rb.counters, DSR_RELAY_COUNTER_MAX, cafter);
	relay_sum_percpu(rb.passes, DSR_PASS_REASON_MAX, pafter);
	/* No row sets DSR_RELAY_CONN_JOURNAL: nothing may be journaled (test/offload/relay-journal has the rows that do). */
	check(cafter[DSR_RELAY_JOURNALED] == cbefore[DSR_RELAY_JOURNALED], name, "nothing journaled without DSR_RELAY_CONN_JOURNAL");
	if (s->pass) {
		check(pafter[s->pass] > pbefore[s->pass], name, relay_pass_names[s->pass]);
	} else {
		int c = s->counter[mode == RELAY_MODE_CUT];
		check(cafter[c] > cbefore[c], name, relay_counter_names[c]);
		for (int r = 0; r < DSR_PASS_REASON_MAX; r++)
			check(pafter[r] == pbefore[r], name, relay_pass_names[r]);
	}
	relay_unload(&rb, conn, cin, bin);
	close(cw);
	close(cin);
	close(bw);
	close(bin);
	printf("  %s %s: %zu bytes in, %zu forwarded, %zu to user space\n", failures > failed_before ? "FAILED" : "ok", name, f->in_len, n, u);
	failed_before = failures;
}

static struct fixture fx;

/* What the verifier walked for a loaded program (the budget is 1M instructions per program). */
static void print_verified(int fd, const char *name)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		printf("  verified instructions, %s: unknown (%s)\n", name, strerror(errno));
	else
		printf("  verified instructions, %s: %u\n", name, info.verified_insns);
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
		if (m == 0)
			print_verified(rb.parser, "relay_parser");
		print_verified(rb.verdict, m ? "relay_verdict_cut" : "relay_verdict_msg");
		for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
			build(&specs[i], &fx);
			run(&specs[i], &fx, mode);
		}
		relay_bpf_close(&rb);
	}
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
