// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * SMB2 relay in the kernel: sk_skb programs on a sockhash holding both sockets of each offloaded
 * connection (client at key 2*conn, backend at 2*conn+1). Two ways to frame the byte stream:
 *
 *   relay_parser + relay_verdict_msg   strparser: the parser returns each NetBIOS frame's length,
 *                                      the verdict sees one whole frame (store and forward).
 *   relay_verdict_cut                  verdict only (no parser): every skb is forwarded as it
 *                                      arrives; a per-socket cursor says where the next header
 *                                      falls; a header split across skbs is carried to the next.
 *
 * Both check READ, WRITE, FLUSH and QUERY_INFO requests as the DSR does (sizes, buffers, the
 * negotiated maxima, CreditCharge), rewrite SessionId, TreeId and MessageId of every header
 * (compound chains included) and the FileId a request names from the connection's rules, count
 * what they forward per socket
 * (what user space needs to take the connection back), and redirect to the peer socket, or hand
 * the bytes to user space with a reason counter. Only verdicts write bytes (a parser that writes
 * is a use-after-free here).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "dsr_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Headers handled in one skb by the cut-through verdict; beyond it the direction goes to user space. */
#define CUT_MAX_HDRS 4096
/* Chained headers of one compound frame handled by the strparser verdict. */
#define MSG_MAX_CHAIN 16

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, DSR_RELAY_MAX_SOCKS);
	__type(key, __u32);
	__type(value, __u64);
} relay_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_RELAY_MAX_SOCKS);
	__type(key, __u64); /* socket cookie */
	__type(value, struct dsr_relay_sock);
} relay_socks_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_RELAY_MAX_SOCKS);
	__type(key, __u64); /* socket cookie */
	__type(value, struct dsr_relay_busy);
} relay_busy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_RELAY_MAX_CONNS);
	__type(key, __u32);
	__type(value, struct dsr_relay_conn);
} relay_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_RELAY_MAX_SESSIONS);
	__type(key, struct dsr_relay_session_key);
	__type(value, __u64);
} relay_sessions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_RELAY_MAX_TREES);
	__type(key, struct dsr_relay_tree_key);
	__type(value, __u32);
} relay_trees SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_RELAY_MAX_FILES);
	__type(key, struct dsr_relay_file_key);
	__type(value, struct dsr_relay_file_id);
} relay_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DSR_RELAY_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} relay_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DSR_PASS_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} relay_passes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DSR_RELAY_EVENTS_BYTES);
} relay_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DSR_RELAY_JOURNAL_SLOTS);
	__type(key, __u32);
	__type(value, struct dsr_relay_journal);
} relay_journal SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, DSR_RELAY_JOURNAL_SLOTS_MAX);
	__type(value, __u32);
} relay_journal_free SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DSR_RELAY_JOURNAL_SMALL_SLOTS);
	__type(key, __u32);
	__type(value, struct dsr_relay_journal_small);
} relay_journal_small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, DSR_RELAY_JOURNAL_SMALL_SLOTS);
	__type(value, __u32);
} relay_journal_small_free SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_RELAY_JOURNAL_SLOTS_MAX + DSR_RELAY_JOURNAL_SMALL_SLOTS);
	__type(key, struct dsr_relay_journal_key);
	__type(value, __u32);
} relay_journal_index SEC(".maps");

extern void *bpf_cast_to_kern_ctx(void *) __ksym;

static __always_inline void count(void *map, __u32 index, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(map, &index);

	if (c)
		*c += n;
}

/* A helper failed: counted by kind (DSR_RELAY_ERR_*), and the message passes. */
static __always_inline int helper_failed(__u32 counter)
{
	count(&relay_counters, counter, 1);
	return DSR_PASS_ERROR;
}

/*
 * Clamps a length the verifier lost track of (32-bit math on 64-bit registers) to 1..max: the
 * asm hides the value from clang, so the range check after it survives into the bytecode.
 */
static __always_inline __u64 bounded_len(__u64 n, __u64 max)
{
	asm volatile("%[n] &= 0x7f" : [n] "+r"(n));
	return n == 0 || n > max ? 0 : n;
}

/* SMB2 header bytes 0..47: everything the rules read or write (the signature is not touched). */
struct smb2_hdr48 {
	__u32 protocol;
	__u16 structure_size;
	__u16 credit_charge;
	__u32 status;
	__u16 command;
	__u16 credits;
	__u32 flags;
	__u32 next_command;
	__u64 message_id;
	__u32 reserved_or_async_lo; /* sync: Reserved (ProcessId); async: AsyncId low half */
	__u32 tree_id_or_async_hi;  /* sync: TreeId; async: AsyncId high half */
	__u64 session_id;
};
/* The fields the verdict uses sit where the ABI says (abi.test.ts checks those offsets against
 * the TypeScript codec's). */
_Static_assert(__builtin_offsetof(struct smb2_hdr48, protocol) == DSR_SMB2_OFF_PROTOCOL, "protocol");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, credit_charge) == DSR_SMB2_OFF_CREDIT_CHARGE, "credit_charge");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, status) == DSR_SMB2_OFF_STATUS, "status");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, command) == DSR_SMB2_OFF_COMMAND, "command");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, credits) == DSR_SMB2_OFF_CREDIT, "credits");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, flags) == DSR_SMB2_OFF_FLAGS, "flags");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, next_command) == DSR_SMB2_OFF_NEXT_COMMAND, "next_command");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, message_id) == DSR_SMB2_OFF_MESSAGE_ID, "message_id");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, tree_id_or_async_hi) == DSR_SMB2_OFF_TREE_ID, "tree_id");
_Static_assert(__builtin_offsetof(struct smb2_hdr48, session_id) == DSR_SMB2_OFF_SESSION_ID, "session_id");

/* The body offset of the FileId a request of this command names (DSR_SMB2_FILE_ID_AT_*); 0: none. */
static __always_inline __u32 file_id_at(__u16 command)
{
	switch (command) {
	case DSR_SMB2_CMD_CLOSE: return DSR_SMB2_FILE_ID_AT_CLOSE;
	case DSR_SMB2_CMD_FLUSH: return DSR_SMB2_FILE_ID_AT_FLUSH;
	case DSR_SMB2_CMD_READ: return DSR_SMB2_FILE_ID_AT_READ;
	case DSR_SMB2_CMD_WRITE: return DSR_SMB2_FILE_ID_AT_WRITE;
	case DSR_SMB2_CMD_LOCK: return DSR_SMB2_FILE_ID_AT_LOCK;
	case DSR_SMB2_CMD_IOCTL: return DSR_SMB2_FILE_ID_AT_IOCTL;
	case DSR_SMB2_CMD_QUERY_DIRECTORY: return DSR_SMB2_FILE_ID_AT_QUERY_DIRECTORY;
	case DSR_SMB2_CMD_CHANGE_NOTIFY: return DSR_SMB2_FILE_ID_AT_CHANGE_NOTIFY;
	case DSR_SMB2_CMD_QUERY_INFO: return DSR_SMB2_FILE_ID_AT_QUERY_INFO;
	case DSR_SMB2_CMD_SET_INFO: return DSR_SMB2_FILE_ID_AT_SET_INFO;
	case DSR_SMB2_CMD_OPLOCK_BREAK: return DSR_SMB2_FILE_ID_AT_OPLOCK_BREAK;
	default: return 0;
	}
}

/*
 * The fixed parts of the requests the verdict checks (MS-SMB2 2.2.17, 2.2.19, 2.2.21, 2.2.37),
 * from StructureSize on; the variable part follows. Only the fields it checks are named.
 */
struct smb2_read_req {
	__u16 structure_size;
	__u8 padding;
	__u8 flags;
	__u32 length;
	__u8 offset_file_id_and_counts[36];
	__u16 channel_info_offset;
	__u16 channel_info_length;
};
struct smb2_write_req {
	__u16 structure_size;
	__u16 data_offset;
	__u32 length;
	__u8 offset_file_id_and_counts[32];
	__u16 channel_info_offset;
	__u16 channel_info_length;
	__u32 flags;
};
struct smb2_query_info_req {
	__u16 structure_size;
	__u8 info_type;
	__u8 file_info_class;
	__u32 output_buffer_length;
	__u16 input_buffer_offset;
	__u16 reserved;
	__u32 input_buffer_length;
	__u8 info_flags_and_file_id[24];
};
union smb2_req_body {
	__u16 structure_size;
	struct smb2_read_req read;
	struct smb2_write_req write;
	struct smb2_query_info_req query_info;
};
_Static_assert(sizeof(struct smb2_read_req) == DSR_SMB2_SIZE_READ - 1, "READ fixed part");
_Static_assert(sizeof(struct smb2_write_req) == DSR_SMB2_SIZE_WRITE - 1, "WRITE fixed part");
_Static_assert(sizeof(struct smb2_query_info_req) == DSR_SMB2_SIZE_QUERY_INFO - 1, "QUERY_INFO fixed part");
_Static_assert(__builtin_offsetof(struct smb2_read_req, length) == DSR_SMB2_READ_LENGTH_AT, "READ Length");
_Static_assert(__builtin_offsetof(struct smb2_read_req, channel_info_offset) == DSR_SMB2_READ_CHANNEL_INFO_AT, "READ ReadChannelInfo");
_Static_assert(__builtin_offsetof(struct smb2_write_req, data_offset) == DSR_SMB2_WRITE_DATA_OFFSET_AT, "WRITE DataOffset");
_Static_assert(__builtin_offsetof(struct smb2_write_req, length) == DSR_SMB2_WRITE_LENGTH_AT, "WRITE Length");
_Static_assert(__builtin_offsetof(struct smb2_write_req, channel_info_offset) == DSR_SMB2_WRITE_CHANNEL_INFO_AT, "WRITE WriteChannelInfo");
_Static_assert(__builtin_offsetof(struct smb2_query_info_req, output_buffer_length) == DSR_SMB2_QUERY_INFO_OUTPUT_LENGTH_AT, "QUERY_INFO OutputBufferLength");
_Static_assert(__builtin_offsetof(struct smb2_query_info_req, input_buffer_offset) == DSR_SMB2_QUERY_INFO_INPUT_OFFSET_AT, "QUERY_INFO InputBufferOffset");
_Static_assert(__builtin_offsetof(struct smb2_query_info_req, input_buffer_length) == DSR_SMB2_QUERY_INFO_INPUT_LENGTH_AT, "QUERY_INFO InputBufferLength");
/* The carry holds a checked request's fixed part with its header (and any FileId: they end within it). */
_Static_assert(DSR_NB_HDR_LEN + DSR_SMB2_HDR_LEN + sizeof(union smb2_req_body) <= DSR_RELAY_CARRY_MAX, "carry");
_Static_assert(DSR_SMB2_FILE_ID_AT_QUERY_INFO + DSR_SMB2_FILE_ID_LEN <= sizeof(union smb2_req_body), "farthest FileId");

/* The StructureSize of a request the verdict checks; 0: a command it forwards unchecked. */
static __always_inline __u32 checked_size(__u16 command)
{
	switch (command) {
	case DSR_SMB2_CMD_FLUSH: return DSR_SMB2_SIZE_FLUSH;
	case DSR_SMB2_CMD_READ: return DSR_SMB2_SIZE_READ;
	case DSR_SMB2_CMD_WRITE: return DSR_SMB2_SIZE_WRITE;
	case DSR_SMB2_CMD_QUERY_INFO: return DSR_SMB2_SIZE_QUERY_INFO;
	default: return 0;
	}
}

/* The connection rewrites requests' FileIds (DSR_RELAY_CONN_FILES needs REWRITE). */
static __always_inline int rewrites_files(const struct dsr_relay_sock *rs, const struct dsr_relay_conn *rc)
{
	__u32 both = DSR_RELAY_CONN_REWRITE | DSR_RELAY_CONN_FILES;

	return rs->dir == DSR_RELAY_DIR_REQUEST && (rc->flags & both) == both;
}

/*
 * What the headers of one redirect add to their socket's counts (struct dsr_relay_sock), kept
 * apart until the redirect succeeds: a message passed to user space is counted nowhere.
 */
struct tally {
	__u64 msgs;
	__u64 charge;
	__u64 msg_id_end;
	__u64 credits;
	__u64 interims;
};

static __always_inline void tally_hdr(struct tally *t, const struct smb2_hdr48 *h, __u32 dir)
{
	__u64 charge = h->credit_charge ? h->credit_charge : 1;

	t->msgs++;
	if (dir == DSR_RELAY_DIR_REPLY) {
		t->credits += h->credits;
		if (h->status == DSR_SMB2_STATUS_PENDING && (h->flags & DSR_SMB2_FLAGS_ASYNC_COMMAND))
			t->interims++;
		return;
	}
	if (h->command == DSR_SMB2_CMD_CANCEL)
		return;
	t->charge += charge;
	if (h->message_id + charge > t->msg_id_end)
		t->msg_id_end = h->message_id + charge;
}

/* One header for rewrite_hdr: where it is, and what it reports back (a struct: a BPF call takes
 * five arguments at most). */
struct hdr_walk {
	__u32 off;        /* the header's first byte in the skb (after any NetBIOS prefix) */
	__u32 frame_left; /* bytes of the frame from the header on */
	__u32 avail;      /* bytes of them in this skb */
	__u32 first;      /* the frame's first header */
	__u32 write;      /* rewrite, and count in t; else check only */
	__u32 next;       /* out: NextCommand */
	__s32 slot;       /* out: the journal slot the frame took (write only); -1: none */
	__u32 tail;       /* out: a final response that goes on past the skb (its request's entry stays) */
	struct tally t;   /* the headers written so far */
};

/* The connection journals the requests it forwards (DSR_RELAY_CONN_JOURNAL). */
static __always_inline int journals(const struct dsr_relay_sock *rs, const struct dsr_relay_conn *rc)
{
	return rs->dir == DSR_RELAY_DIR_REQUEST && (rc->flags & DSR_RELAY_CONN_JOURNAL);
}

/* A slot back to its queue (the slot numbers of dsr_abi.h's journal comment). */
static __always_inline void slot_free(__u32 slot)
{
	__u32 i = slot - DSR_RELAY_JOURNAL_SMALL_BASE;

	if (slot >= DSR_RELAY_JOURNAL_SMALL_BASE)
		bpf_map_push_elem(&relay_journal_small_free, &i, 0);
	else
		bpf_map_push_elem(&relay_journal_free, &slot, 0);
}

/*
 * A slot for a request frame of `len` bytes (prefix included) about to go to the server with
 * MessageId `msg_id`, filled in and indexed (an entry is never indexed before it is filled, so
 * user space never reads a stale one): a small one if the frame fits and one is free, else a
 * 1 MiB one. Returns the slot, or -DSR_PASS_JOURNAL: the connection holds its share of entries
 * already, no slot free, the frame too long, or the MessageId already journaled (the slot goes
 * back).
 */
__attribute__((noinline)) int journal_take(__u32 conn, __u64 msg_id, __u32 len)
{
	struct dsr_relay_journal_key k = { .conn = conn, .msg_id = msg_id };
	struct dsr_relay_conn *rc = bpf_map_lookup_elem(&relay_conns, &conn);
	struct dsr_relay_journal *e;
	__u32 slot, i;

	if (!rc || rc->journaled >= (rc->journal_max ? rc->journal_max : DSR_RELAY_JOURNAL_PER_CONN) || len > DSR_RELAY_JOURNAL_FRAME_MAX)
		return -DSR_PASS_JOURNAL;
	/* Both value types start with the same 24-byte header. */
	if (len <= DSR_RELAY_JOURNAL_SMALL_FRAME_MAX && !bpf_map_pop_elem(&relay_journal_small_free, &i)) {
		slot = DSR_RELAY_JOURNAL_SMALL_BASE + i;
		e = bpf_map_lookup_elem(&relay_journal_small, &i);
	} else if (!bpf_map_pop_elem(&relay_journal_free, &slot)) {
		e = bpf_map_lookup_elem(&relay_journal, &slot);
	} else {
		return -DSR_PASS_JOURNAL;
	}
	if (e) {
		e->conn = conn;
		e->len = len;
		e->copied = 0;
		e->msg_id = msg_id;
	}
	if (!e || bpf_map_update_elem(&relay_journal_index, &k, &slot, BPF_NOEXIST)) {
		slot_free(slot);
		return -DSR_PASS_JOURNAL;
	}
	/* The request direction takes slots one frame at a time: the check above still holds. */
	__sync_fetch_and_add(&rc->journaled, 1);
	return slot;
}

/*
 * Lets the entry of {conn, msg_id} go: whoever deletes the index entry (here, or user space)
 * pushes its slot back, so a slot is freed once. Returns 1 when this call freed it.
 */
__attribute__((noinline)) int journal_free(__u32 conn, __u64 msg_id)
{
	struct dsr_relay_journal_key k = { .conn = conn, .msg_id = msg_id };
	__u32 *found = bpf_map_lookup_elem(&relay_journal_index, &k);
	struct dsr_relay_conn *rc;
	__u32 slot;

	if (!found)
		return 0;
	slot = *found;
	if (bpf_map_delete_elem(&relay_journal_index, &k))
		return 0;
	slot_free(slot);
	/* Only the reply direction frees, one frame at a time; rules written again since (0) stay 0. */
	rc = bpf_map_lookup_elem(&relay_conns, &conn);
	if (rc && rc->journaled > 0)
		__sync_fetch_and_add(&rc->journaled, -1);
	return 1;
}

/* One journal_copy: bytes still to copy from the skb at `from` into the entry's data. */
struct jcopy {
	struct __sk_buff *skb;
	struct dsr_relay_journal *e;
	__u32 from;
	__u32 left;
};

static int jcopy_step(__u32 index, void *ctx)
{
	struct jcopy *c = ctx;
	struct dsr_relay_journal *e = c->e;
	__u32 at, n = c->left;

	if (n == 0)
		return 1;
	if (n > DSR_RELAY_JOURNAL_CHUNK)
		n = DSR_RELAY_JOURNAL_CHUNK;
	at = e->copied;
	/* The offset and length bounded apart for the verifier (data[] has a chunk of slack). */
	if (at > DSR_RELAY_JOURNAL_FRAME_MAX || bpf_skb_load_bytes(c->skb, c->from, &e->data[at], n))
		return 1;
	e->copied = at + n;
	c->from += n;
	c->left -= n;
	return 0;
}

/*
 * Copies `n` bytes of the skb from `from` on to the end of slot's entry, if the entry is still
 * conn's (a slot let go meanwhile may be another connection's now) and has room for them.
 * Returns 0, or -1 with what was copied counted in the entry's `copied`.
 */
__attribute__((noinline)) int journal_copy(struct __sk_buff *skb, __u32 conn, __u32 slot, __u32 from, __u32 n)
{
	struct jcopy c = { .skb = skb, .from = from, .left = n };
	struct dsr_relay_journal_small *small;
	__u32 i = slot - DSR_RELAY_JOURNAL_SMALL_BASE, at;
	__u64 m;

	if (slot >= DSR_RELAY_JOURNAL_SMALL_BASE) {
		small = bpf_map_lookup_elem(&relay_journal_small, &i);
		if (!small || small->conn != conn || small->copied > small->len || n > small->len - small->copied)
			return -1;
		at = small->copied;
		m = n;
		/* Zero-extended where clang cannot see it, so the checks below bound the very register
		 * the helper is given (clang would check a truncated copy). */
		asm volatile("%[m] <<= 32; %[m] >>= 32" : [m] "+r"(m));
		if (m == 0)
			return 0;
		/* The offset and length bounded apart for the verifier (data[] is twice FRAME_MAX). */
		if (at > DSR_RELAY_JOURNAL_SMALL_FRAME_MAX || m > DSR_RELAY_JOURNAL_SMALL_FRAME_MAX ||
		    bpf_skb_load_bytes(skb, from, &small->data[at], m))
			return -1;
		small->copied = at + m;
		return 0;
	}
	c.e = bpf_map_lookup_elem(&relay_journal, &slot);
	if (!c.e || c.e->conn != conn || c.e->copied > c.e->len || n > c.e->len - c.e->copied)
		return -1;
	bpf_loop(DSR_RELAY_JOURNAL_FRAME_MAX / DSR_RELAY_JOURNAL_CHUNK + 1, jcopy_step, &c, 0);
	return c.left ? -1 : 0;
}

/* A buffer of the message (header-relative offset): empty, or from `min` on and within `len`,
 * as the DSR's decoders take it (sliceField). */
static __always_inline int buffer_in(__u32 offset, __u32 length, __u32 min, __u32 len)
{
	return length == 0 || (offset >= min && (__u64)offset + length <= len);
}

/*
 * A READ, WRITE, FLUSH or QUERY_INFO request checked as the DSR's dispatch checks it (its
 * decoders, then MS-SMB2 3.3.5.2.5: the negotiated maximum and the CreditCharge); other commands
 * pass this unchecked. `len` is the message's length (up to NextCommand, else the frame's end).
 * A body not in this skb yet (cut-through, a check of a chain's later header) is checked when it
 * arrives; one that should be here and is not passes. Returns 0 or DSR_PASS_INVALID (ERROR for a
 * helper). A global function, checked once by the verifier like rewrite_hdr.
 */
__attribute__((noinline)) int check_request(struct __sk_buff *skb, const struct dsr_relay_conn *rc,
					    const struct hdr_walk *w, const struct smb2_hdr48 *h, __u32 len)
{
	union smb2_req_body b;
	__u32 size, fixed, bytes, max, after;
	__u64 charge;

	if (!rc || !w || !h)
		return DSR_PASS_ERROR;
	size = checked_size(h->command);
	if (!size)
		return 0;
	fixed = size & ~1u;
	if (len < DSR_SMB2_HDR_LEN + fixed)
		return DSR_PASS_INVALID;
	if (DSR_SMB2_HDR_LEN + fixed > w->avail)
		return w->write ? DSR_PASS_INVALID : 0;
	/* The verifier wants the load's size bounded by the buffer's. */
	if (fixed > sizeof(b) || bpf_skb_load_bytes(skb, w->off + DSR_SMB2_HDR_LEN, &b, fixed))
		return helper_failed(DSR_RELAY_ERR_LOAD);
	if (b.structure_size != size)
		return DSR_PASS_INVALID;
	fixed += DSR_SMB2_HDR_LEN; /* from here on: where the variable part starts, header-relative */
	switch (h->command) {
	case DSR_SMB2_CMD_READ:
		bytes = b.read.length;
		max = rc->max_read;
		if (!buffer_in(b.read.channel_info_offset, b.read.channel_info_length, fixed, len))
			return DSR_PASS_INVALID;
		break;
	case DSR_SMB2_CMD_WRITE:
		bytes = b.write.length;
		max = rc->max_write;
		if (!buffer_in(b.write.data_offset, bytes, fixed, len))
			return DSR_PASS_INVALID;
		after = bytes ? b.write.data_offset + bytes : fixed;
		if (!buffer_in(b.write.channel_info_offset, b.write.channel_info_length, after, len))
			return DSR_PASS_INVALID;
		break;
	case DSR_SMB2_CMD_QUERY_INFO:
		bytes = b.query_info.input_buffer_length;
		max = rc->max_transact;
		if (!buffer_in(b.query_info.input_buffer_offset, bytes, fixed, len))
			return DSR_PASS_INVALID;
		if (b.query_info.output_buffer_length > bytes)
			bytes = b.query_info.output_buffer_length;
		break;
	default: /* FLUSH: its size is all there is to check */
		return 0;
	}
	if (bytes > max)
		return DSR_PASS_INVALID;
	charge = h->credit_charge ? h->credit_charge : 1;
	if (charge * DSR_SMB2_CREDIT_BYTES < bytes)
		return DSR_PASS_INVALID;
	return 0;
}

/*
 * Checks the header at w->off and the FileId its request names; with w->write, rewrites them
 * and counts the header in w->t. A FileId beyond w->avail (cut-through only) is checked when it
 * arrives. Returns 0 and sets w->next, or a pass reason. MessageId 0xFFFF... (oplock/lease
 * breaks) and zero Session/TreeIds (breaks, cancels) are left alone. AsyncIds pass unchanged: a
 * client connection maps to one backend connection, so the backend's AsyncIds are already
 * unique. A global function: the verifier checks it once rather than at each of its inlined
 * copies in the chain walks, which took the cut-through verdict past 1M instructions. Its
 * pointers may be NULL as far as the verifier knows.
 */
__attribute__((noinline)) int rewrite_hdr(struct __sk_buff *skb, const struct dsr_relay_sock *rs,
					  const struct dsr_relay_conn *rc, struct hdr_walk *w)
{
	struct dsr_relay_file_key fk = {};
	struct dsr_relay_file_id *fid = NULL;
	struct smb2_hdr48 h;
	__u32 off, at, len, rewrite;
	__u64 server_id;
	int r;

	if (!rs || !rc || !w)
		return DSR_PASS_ERROR;
	w->slot = -1;
	w->tail = 0;
	off = w->off;
	if (bpf_skb_load_bytes(skb, off, &h, sizeof(h)))
		return helper_failed(DSR_RELAY_ERR_LOAD);
	if (h.protocol != DSR_SMB2_MAGIC) {
		if (h.protocol == DSR_SMB2_TRANSFORM_MAGIC)
			return DSR_PASS_ENCRYPTED;
		if (h.protocol == DSR_SMB2_COMPRESSED_MAGIC)
			return DSR_PASS_COMPRESSED;
		return DSR_PASS_BAD_MAGIC;
	}
	if (h.flags & DSR_SMB2_FLAGS_SIGNED)
		return DSR_PASS_SIGNED;
	if (h.command >= DSR_SMB2_CMD_COUNT || !(rc->cmd_mask & (1u << h.command)))
		return DSR_PASS_COMMAND;
	w->next = h.next_command;
	if (h.next_command && (h.next_command < DSR_SMB2_HDR_LEN || (h.next_command & 7)))
		return DSR_PASS_COMPOUND;
	/* The message: up to the next header, else the rest of the frame. */
	len = h.next_command && h.next_command < w->frame_left ? h.next_command : w->frame_left;
	if (rs->dir == DSR_RELAY_DIR_REQUEST) {
		r = check_request(skb, rc, w, &h, len);
		if (r)
			return r;
	}
	/* Ids used in order only: the counts then tell user space exactly which ids were used.
	 * msg_id_next 0 leaves ids unchecked, the first and every next one alike. */
	if (w->write && rs->dir == DSR_RELAY_DIR_REQUEST && h.command != DSR_SMB2_CMD_CANCEL && rc->msg_id_next) {
		__u64 want = w->t.msg_id_end ? w->t.msg_id_end : rs->msg_id_end ? rs->msg_id_end : rc->msg_id_next;

		if (h.message_id != want)
			return DSR_PASS_SEQUENCE;
	}
	if (w->write)
		tally_hdr(&w->t, &h, rs->dir);
	rewrite = rc->flags & DSR_RELAY_CONN_REWRITE;

	if (rewrite && h.session_id) {
		struct dsr_relay_session_key sk = { .conn = rs->conn, .dir = rs->dir, .session_id = h.session_id };
		__u64 *sid = bpf_map_lookup_elem(&relay_sessions, &sk);

		if (!sid)
			return DSR_PASS_SESSION;
		h.session_id = *sid;
	}
	if (rewrite && !(h.flags & DSR_SMB2_FLAGS_ASYNC_COMMAND) && h.tree_id_or_async_hi) {
		struct dsr_relay_tree_key tk = { .conn = rs->conn, .dir = rs->dir, .tree_id = h.tree_id_or_async_hi };
		__u32 *tid = bpf_map_lookup_elem(&relay_trees, &tk);

		if (!tid)
			return DSR_PASS_TREE;
		h.tree_id_or_async_hi = *tid;
	}
	at = rewrites_files(rs, rc) ? file_id_at(h.command) : 0;
	if (at) {
		if (DSR_SMB2_HDR_LEN + at + DSR_SMB2_FILE_ID_LEN > len)
			return DSR_PASS_FILE;
		at += DSR_SMB2_HDR_LEN;
		if (at + DSR_SMB2_FILE_ID_LEN > w->avail)
			at = 0;
	}
	if (at) {
		fk.conn = rs->conn;
		if (bpf_skb_load_bytes(skb, off + at, &fk.persistent, DSR_SMB2_FILE_ID_LEN))
			return helper_failed(DSR_RELAY_ERR_LOAD);
		if (fk.persistent == ~0ULL && fk.volatile_ == ~0ULL) {
			/* The previous operation's handle: the server resolves it within the chain. */
			if (w->first || !(h.flags & DSR_SMB2_FLAGS_RELATED_OPERATIONS))
				return DSR_PASS_COMPOUND;
		} else {
			fid = bpf_map_lookup_elem(&relay_files, &fk);
			if (!fid)
				return DSR_PASS_FILE;
		}
	}
	if (!w->write)
		return 0;
	/* A reply's MessageId before the rewrite, a request's after it: the server's. */
	server_id = h.message_id;
	if (rewrite && h.message_id != ~0ULL)
		h.message_id += rs->dir == DSR_RELAY_DIR_REQUEST ? rc->msg_id_delta : -rc->msg_id_delta;
	/* Every check passed: the request's slot, taken before its first byte is written. */
	if (journals(rs, rc) && w->first && h.command != DSR_SMB2_CMD_CANCEL) {
		r = journal_take(rs->conn, h.message_id, w->frame_left + DSR_NB_HDR_LEN);
		if (r < 0)
			return -r;
		w->slot = r;
	}
	/* MessageId .. SessionId in one store. */
	if (rewrite && (bpf_skb_store_bytes(skb, off + DSR_SMB2_OFF_MESSAGE_ID, &h.message_id, 24, 0) ||
			(fid && bpf_skb_store_bytes(skb, off + at, fid, sizeof(*fid), 0)))) {
		if (w->slot >= 0)
			journal_free(rs->conn, h.message_id);
		w->slot = -1;
		return helper_failed(DSR_RELAY_ERR_STORE);
	}
	if (w->slot >= 0)
		count(&relay_counters, DSR_RELAY_JOURNALED, 1);
	/* A final response on its way to the client: its request's entry goes (a miss is a request
	 * user space forwarded, or a break), once its last byte goes (the verdict_cut tail). */
	if (rs->dir != DSR_RELAY_DIR_REPLY || !(rc->flags & DSR_RELAY_CONN_JOURNAL) || server_id == ~0ULL ||
	    (h.status == DSR_SMB2_STATUS_PENDING && (h.flags & DSR_SMB2_FLAGS_ASYNC_COMMAND)))
		return 0;
	if (len > w->avail)
		w->tail = 1;
	else if (journal_free(rs->conn, server_id))
		count(&relay_counters, DSR_RELAY_JOURNAL_FREED, 1);
	return 0;
}

/*
 * A compound is checked whole before its first header is written, so a pass hands user space
 * an untouched frame. `off` is the first header, `avail` the bytes of it in this skb: chained
 * headers beyond the skb (cut-through only) are checked when they arrive.
 */
static __always_inline int check_chain(struct __sk_buff *skb, __u32 off, __u32 frame_left, __u32 avail,
				       const struct dsr_relay_sock *rs, const struct dsr_relay_conn *rc)
{
	struct hdr_walk w = {};
	__u32 i, next;
	int r;

	for (i = 0; i < MSG_MAX_CHAIN; i++) {
		if (frame_left < DSR_SMB2_HDR_LEN)
			return DSR_PASS_COMPOUND;
		if (avail < DSR_SMB2_HDR_LEN)
			return 0;
		w.off = off;
		w.frame_left = frame_left;
		w.avail = avail;
		w.first = i == 0;
		r = rewrite_hdr(skb, rs, rc, &w);
		if (r)
			return r;
		next = w.next;
		if (!next)
			return 0;
		if (next >= frame_left)
			return DSR_PASS_COMPOUND;
		off += next;
		frame_left -= next;
		avail = avail > next ? avail - next : 0;
	}
	return DSR_PASS_COMPOUND;
}

/*
 * The NetBIOS frame starting at `off` (both framings, at a frame start): its length prefix says
 * a session message with room for an SMB2 header, and its header chain passes check_chain as far
 * as it lies before `len` (the skb's length). Returns 0 and sets *frame_len, or a pass reason;
 * *frame_len is set as soon as the prefix is good, for the cut-through's resume point.
 */
static __always_inline int check_frame(struct __sk_buff *skb, __u32 off, __u32 len,
				       const struct dsr_relay_sock *rs, const struct dsr_relay_conn *rc,
				       __u32 *frame_len)
{
	__u32 nb, next = 0;

	if (bpf_skb_load_bytes(skb, off, &nb, sizeof(nb)))
		return helper_failed(DSR_RELAY_ERR_LOAD);
	/* Byte 0 is the message type (0: session message), bytes 1..3 the length, big endian. */
	nb = bpf_ntohl(nb);
	if ((nb >> 24) || nb < DSR_SMB2_HDR_LEN)
		return DSR_PASS_BAD_MAGIC;
	*frame_len = nb;
	off += DSR_NB_HDR_LEN;
	if (bpf_skb_load_bytes(skb, off + DSR_SMB2_OFF_NEXT_COMMAND, &next, sizeof(next)))
		return helper_failed(DSR_RELAY_ERR_LOAD);
	/* A journal entry is one request: its response frees it. */
	if (next && journals(rs, rc))
		return DSR_PASS_COMPOUND;
	return next ? check_chain(skb, off, nb, len - off, rs, rc) : 0;
}

/* relay_events: one record for user space, which may have stopped reading the socket. */
static __always_inline void ring(const struct dsr_relay_sock *rs, __u32 reason)
{
	struct dsr_relay_event ev = { .conn = rs->conn, .dir = rs->dir, .reason = reason };

	bpf_ringbuf_output(&relay_events, &ev, sizeof(ev), 0);
}

/* An skb that carries the peer's FIN (with data or without): user space hears of it
 * (DSR_PASS_NONE in relay_events) and reads the end of the stream. */
static __always_inline void ring_fin(struct __sk_buff *skb, const struct dsr_relay_sock *rs)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct tcp_skb_cb *cb = (struct tcp_skb_cb *)&kskb->cb[0];

	if (rs && (BPF_CORE_READ(cb, tcp_flags) & 0x01))
		ring(rs, DSR_PASS_NONE);
}

/*
 * To user space, and the direction stays there (sticky) until user space re-arms it, so the
 * kernel never forwards a message ahead of one user space still holds. rs->skip/at_nb say where
 * user space resumes framing; callers that know better set them first.
 */
static __always_inline int pass(struct dsr_relay_sock *rs, __u32 reason)
{
	if (rs && !rs->sticky) {
		rs->sticky = reason;
		ring(rs, reason);
	}
	count(&relay_passes, reason, 1);
	return SK_PASS;
}

/*
 * The peer socket, or a pass to user space; a pass makes the direction sticky. With no peer (its
 * socket closed), user space gets bytes whose headers are rewritten already: it sends the first
 * `pass_skip` of them (from the skb's start) on raw, as the kernel would have, and its journal
 * entries stay, for user space to take the requests over if their server is gone.
 */
static __always_inline int forward(struct __sk_buff *skb, struct dsr_relay_sock *rs, const struct tally *t, __u32 bytes,
				   __u32 pass_skip)
{
	__u32 key = rs->peer_key;

	if (bpf_sk_redirect_hash(skb, &relay_socks, &key, 0) != SK_PASS) {
		rs->skip = pass_skip;
		return pass(rs, DSR_PASS_NO_PEER);
	}
	rs->msgs += t->msgs;
	rs->bytes += bytes;
	rs->charge += t->charge;
	if (t->msg_id_end > rs->msg_id_end)
		rs->msg_id_end = t->msg_id_end;
	rs->credits += t->credits;
	rs->interims += t->interims;
	count(&relay_counters, DSR_RELAY_FWD_MSG, t->msgs);
	count(&relay_counters, DSR_RELAY_FWD_SKB, 1);
	count(&relay_counters, DSR_RELAY_FWD_BYTES, bytes);
	return SK_PASS;
}

/*
 * Replies, where a frame starts: whether the client socket can take a response now (0), or why
 * not. The socket has been handed write_seq - snd_una + bytes_acked (what user space reads as
 * tcpi_bytes_acked + SIOCOUTQ). Less than client_base: the reply user space writes right after
 * the arm is not all in yet, and a response redirected now would go in front of it, or into its
 * middle (DSR_PASS_AHEAD). Of client_base + bytes forwarded since, more than max_queued not in
 * yet: they wait in its psock's queue, the client is behind in reading (DSR_PASS_BEHIND).
 */
static __noinline __u32 client_room(const struct dsr_relay_sock *rs, const struct dsr_relay_conn *rc)
{
	__u32 key = rs->peer_key;
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	__u64 taken = 0, sent;
	int known = 0;

	if (rs->dir != DSR_RELAY_DIR_REPLY || !rc->client_base)
		return 0;
	sk = bpf_map_lookup_elem(&relay_socks, &key);
	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp) {
		taken = (__u64)(__u32)(tp->write_seq - tp->snd_una) + tp->bytes_acked;
		known = 1;
	}
	bpf_sk_release(sk);
	if (!known)
		return 0;
	if (taken < rc->client_base)
		return DSR_PASS_AHEAD;
	sent = rc->client_base + rs->bytes;
	if (rc->max_queued && sent > taken && sent - taken > rc->max_queued)
		return DSR_PASS_BEHIND;
	return 0;
}

/* Where the strparser's current frame starts in this skb (it may follow the previous frame). */
static __always_inline __u32 strp_offset(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct sk_skb_cb *cb = (struct sk_skb_cb *)&kskb->cb[0];

	return BPF_CORE_READ(cb, strp.strp.offset);
}

SEC("sk_skb/stream_parser")
int relay_parser(struct __sk_buff *skb)
{
	__u32 off = strp_offset(skb);
	__u32 nb;

	if (skb->len < off + DSR_NB_HDR_LEN)
		return 0;
	if (bpf_skb_load_bytes(skb, off, &nb, sizeof(nb)))
		return 0;
	/* Byte 0 is the message type (0: session message), bytes 1..3 the length, big endian. */
	return (bpf_ntohl(nb) & 0x00ffffff) + DSR_NB_HDR_LEN;
}

/*
 * The stream offset of the skb's byte `at` (bytes since the connection's first, as TCP received
 * them): from its sequence number, against what the socket has received in order so far. The
 * strparser's skb is a clone of the TCP segment its frame starts in, with its control block.
 */
static __always_inline __u64 stream_offset(struct __sk_buff *skb, __u32 at)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct tcp_sock *tp = (struct tcp_sock *)BPF_CORE_READ(kskb, sk);
	struct tcp_skb_cb *cb = (struct tcp_skb_cb *)&kskb->cb[0];
	__u32 seq = BPF_CORE_READ(cb, seq) + at;

	return BPF_CORE_READ(tp, bytes_received) - (__u32)(BPF_CORE_READ(tp, rcv_nxt) - seq);
}

/*
 * The first skb since user space armed the socket must start where user space stopped reading:
 * else bytes passed before are still in the socket, user space reads them after this skb's, and
 * the kernel's framing (fresh at arm) starts in the middle of a message. It passes then
 * (DSR_PASS_UNREAD), and so does everything after it, in order. Returns 0 or that reason. Not
 * inlined: its stack would count in the verdict's deepest call chain.
 */
static __attribute__((noinline)) int ungate(struct __sk_buff *skb, struct dsr_relay_sock *rs, __u32 at)
{
	if (!rs->gate)
		return 0;
	if (stream_offset(skb, at) != rs->expect)
		return DSR_PASS_UNREAD;
	rs->gate = 0;
	return 0;
}

static __always_inline int verdict_msg(struct __sk_buff *skb, __u64 cookie)
{
	struct dsr_relay_sock *rs = bpf_map_lookup_elem(&relay_socks_state, &cookie);
	struct dsr_relay_conn *rc;
	struct hdr_walk w = { .write = 1 };
	__u32 off, frame_left, nb, next, i;
	int r;

	/* A FIN without data: nothing to forward, and redirected it would break the peer socket
	 * (the kernel's sender reports a zero-length send as EPIPE there). The socket has seen
	 * the FIN already; user space reads the end of the stream. */
	ring_fin(skb, rs);
	if (!skb->len)
		return SK_DROP;
	if (!rs)
		return pass(NULL, DSR_PASS_NO_SOCK);
	if (rs->sticky)
		return pass(rs, DSR_PASS_STICKY);
	rc = bpf_map_lookup_elem(&relay_conns, &rs->conn);
	if (!rc)
		return pass(rs, DSR_PASS_NO_CONN);
	/* A pass hands user space this whole frame: it resumes framing at its start. */
	rs->skip = 0;
	rs->at_nb = 1;
	off = strp_offset(skb);
	r = ungate(skb, rs, off);
	if (r)
		return pass(rs, r);
	r = client_room(rs, rc);
	if (r)
		return pass(rs, r);
	/* The strparser hands over whole frames: skb->len covers this one. */
	r = check_frame(skb, off, skb->len, rs, rc, &nb);
	if (r)
		return pass(rs, r);
	frame_left = nb;
	off += DSR_NB_HDR_LEN;
	for (i = 0; i < MSG_MAX_CHAIN; i++) {
		if (frame_left < DSR_SMB2_HDR_LEN)
			return pass(rs, DSR_PASS_BAD_MAGIC);
		w.off = off;
		w.frame_left = frame_left;
		w.avail = frame_left;
		w.first = i == 0;
		r = rewrite_hdr(skb, rs, rc, &w);
		if (r)
			return pass(rs, r);
		next = w.next;
		/* The strparser's skb may hold bytes of other frames: only this frame is sent on. */
		if (!next) {
			/* A journaled request is the frame's only header: all of it is here. */
			if (w.slot >= 0)
				journal_copy(skb, rs->conn, w.slot, off - DSR_NB_HDR_LEN, nb + DSR_NB_HDR_LEN);
			return forward(skb, rs, &w.t, nb + DSR_NB_HDR_LEN, nb + DSR_NB_HDR_LEN);
		}
		if (next < DSR_SMB2_HDR_LEN || next >= frame_left || (next & 7))
			return pass(rs, DSR_PASS_COMPOUND);
		off += next;
		frame_left -= next;
	}
	return pass(rs, DSR_PASS_COMPOUND);
}

/*
 * Cutting an skb to its first `len` bytes. bpf_skb_change_tail refuses a length over
 * SKB_MAX_ALLOC (about 16 KiB) on sk_skb, so a longer skb loses its last `cut` bytes another
 * way: its first `len` bytes move down by `cut` over them (from the end back, so no byte is
 * read after it is overwritten), and `cut` bytes come off its head (bpf_skb_adjust_room has no
 * such bound). Rare (a header split at the end of a large skb), so a copy of the skb is fine.
 */
/* Within bounded_len's mask. */
#define TRIM_CHUNK 112

struct trim {
	struct __sk_buff *skb;
	__u32 end; /* bytes [cut, end) still to write */
	__u32 cut;
	int err;
};

static int trim_step(__u32 index, void *ctx)
{
	struct trim *t = ctx;
	__u8 buf[TRIM_CHUNK];
	__u64 n;
	__u32 from;

	if (t->end <= t->cut)
		return 1;
	n = t->end - t->cut;
	if (n > TRIM_CHUNK)
		n = TRIM_CHUNK;
	n = bounded_len(n, TRIM_CHUNK);
	if (!n)
		return 1;
	from = t->end - n;
	if (bpf_skb_load_bytes(t->skb, from - t->cut, buf, n) || bpf_skb_store_bytes(t->skb, from, buf, n, 0)) {
		t->err = 1;
		return 1;
	}
	t->end = from;
	return 0;
}

/* Returns 0, or the DSR_RELAY_ERR_* of the helper that failed (the skb's bytes may be moved then). */
static __attribute__((noinline)) int trim_tail(struct __sk_buff *skb, __u32 len)
{
	struct trim t = { .skb = skb };

	if (!skb || len >= skb->len)
		return DSR_RELAY_ERR_TAIL;
	if (!bpf_skb_change_tail(skb, len, 0))
		return 0;
	t.end = skb->len;
	t.cut = t.end - len;
	if (t.cut > DSR_RELAY_CARRY_MAX)
		return DSR_RELAY_ERR_TAIL;
	bpf_loop(len / TRIM_CHUNK + 2, trim_step, &t, 0);
	if (t.err || t.end > t.cut)
		return DSR_RELAY_ERR_STORE;
	if (bpf_skb_adjust_room(skb, -(__s32)t.cut, 0, 0))
		return DSR_RELAY_ERR_TAIL;
	return 0;
}

/*
 * The cut-through walk over one skb, one header per bpf_loop step (a plain bounded loop blows
 * the verifier's 1M-instruction budget: it unrolls every iteration).
 */
struct cut {
	struct __sk_buff *skb;
	struct dsr_relay_sock *rs;
	struct dsr_relay_conn *rc;
	__u32 len;
	__u32 pos;        /* next header point in this skb */
	__u32 at_nb;
	__u32 frame_left;
	struct hdr_walk w; /* the current header; w.t: the headers written in this skb */
	int verdict;      /* -1 while walking */
};

/*
 * The whole skb goes to user space: tell it where the first header the kernel did not forward
 * starts in the passed bytes (headers before it in the same skb are already rewritten).
 */
static int cut_fail(struct cut *c, __u32 reason)
{
	c->rs->skip = c->pos;
	c->rs->at_nb = c->at_nb;
	c->rs->frame_left = c->frame_left;
	c->verdict = pass(c->rs, reason);
	return 1;
}

/*
 * Cut-through: the bytes a request needs after its header in the same skb before it is
 * rewritten: its FileId's end, and the fixed part of a request check_request checks (0 for
 * none), so what the skb cuts off travels with its header in the carry. `pos` is the header's
 * first byte (after the NetBIOS prefix), `len` the bytes of its frame from there. Never past the
 * message's end: a request too short is named by rewrite_hdr, not held for bytes that may never
 * come. Anything that is not an offloaded request's header needs nothing here: rewrite_hdr
 * names it.
 */
static __always_inline int body_need(struct __sk_buff *skb, __u32 pos, __u32 len, const struct dsr_relay_sock *rs,
				     const struct dsr_relay_conn *rc, __u32 *need)
{
	struct smb2_hdr48 h;
	__u32 end, fixed;

	*need = 0;
	if (rs->dir != DSR_RELAY_DIR_REQUEST)
		return 0;
	/* Protocol .. NextCommand. */
	if (bpf_skb_load_bytes(skb, pos, &h, DSR_SMB2_OFF_MESSAGE_ID))
		return helper_failed(DSR_RELAY_ERR_LOAD);
	if (h.protocol != DSR_SMB2_MAGIC || h.command >= DSR_SMB2_CMD_COUNT || !(rc->cmd_mask & (1u << h.command)))
		return 0;
	end = rewrites_files(rs, rc) ? file_id_at(h.command) : 0;
	if (end)
		end += DSR_SMB2_FILE_ID_LEN;
	fixed = checked_size(h.command) & ~1u;
	if (fixed > end)
		end = fixed;
	if (!end)
		return 0;
	if (h.next_command && h.next_command < len)
		len = h.next_command;
	if (len < DSR_SMB2_HDR_LEN + end)
		end = len > DSR_SMB2_HDR_LEN ? len - DSR_SMB2_HDR_LEN : 0;
	*need = end;
	return 0;
}

/*
 * Cut-through: a journaled request frame of `len` bytes starts at `from`, `avail` bytes of the
 * skb from there: what is here is copied now, the rest from the next skbs (journal_left). A
 * failed copy leaves the entry short (copied < len) and copies no more of it.
 */
static __always_inline void journal_start(struct __sk_buff *skb, struct dsr_relay_sock *rs, __u32 slot, __u32 from,
					  __u32 avail, __u32 len)
{
	__u32 n = avail < len ? avail : len;

	rs->journal_slot = slot;
	rs->journal_left = journal_copy(skb, rs->conn, slot, from, n) ? 0 : len - n;
}

/*
 * Cut-through, replies: the final response at `off` (rewritten, `avail` bytes of it here) goes on
 * past this skb. Which one it is (its server MessageId) and, for a successful READ response, its
 * DataOffset and DataLength: user space reads the rest from another server if this one is lost
 * before the last byte. Not inlined: its stack stays off the verdict's deepest call chain.
 */
static __attribute__((noinline)) void tail_note(struct __sk_buff *skb, struct dsr_relay_sock *rs,
						const struct dsr_relay_conn *rc, __u32 off, __u32 avail)
{
	struct {
		__u32 status;
		__u16 command;
		__u16 credit;
		__u32 flags;
		__u32 next_command;
		__u64 message_id;
	} h;
	__u64 read = 0; /* StructureSize, DataOffset, Reserved, DataLength */

	if (!rs || !rc || bpf_skb_load_bytes(skb, off + DSR_SMB2_OFF_STATUS, &h, sizeof(h)))
		return;
	/* rewrite_hdr gave it the client's MessageId. */
	if (rc->flags & DSR_RELAY_CONN_REWRITE)
		h.message_id += rc->msg_id_delta;
	rs->tail_msg_id = h.message_id + 1;
	if (h.command != DSR_SMB2_CMD_READ || h.status || avail < DSR_SMB2_HDR_LEN + sizeof(read) ||
	    bpf_skb_load_bytes(skb, off + DSR_SMB2_HDR_LEN, &read, sizeof(read)))
		read = 0;
	rs->tail_data_offset = (read >> 16) & 0xff;
	rs->tail_data_length = read >> 32;
}

static int cut_step(__u32 index, void *ctx)
{
	struct cut *c = ctx;
	struct __sk_buff *skb = c->skb;
	struct dsr_relay_sock *rs = c->rs;
	__u32 need, hdr, more, next, nb, first;
	int r;

	if (c->pos >= c->len) {
		rs->skip = c->pos - c->len;
		rs->at_nb = c->at_nb;
		rs->frame_left = c->frame_left;
		c->verdict = forward(skb, rs, &c->w.t, skb->len, c->pos);
		return 1;
	}
	/* A prefix that is no session message, or one too short for an SMB2 header, goes to user
	 * space at once: no byte to come would make it a header worth holding in the carry (a
	 * Samba client's 5-byte suicide message waited there for the next message). */
	if (c->at_nb && c->pos + DSR_NB_HDR_LEN <= c->len) {
		if (bpf_skb_load_bytes(skb, c->pos, &nb, sizeof(nb)))
			return cut_fail(c, helper_failed(DSR_RELAY_ERR_LOAD));
		nb = bpf_ntohl(nb);
		if ((nb >> 24) || nb < DSR_SMB2_HDR_LEN)
			return cut_fail(c, DSR_PASS_BAD_MAGIC);
	}
	need = c->at_nb ? DSR_NB_HDR_LEN + DSR_SMB2_HDR_LEN : DSR_SMB2_HDR_LEN;
	if (c->pos + need <= c->len) {
		/* The frame's length from its prefix (check_frame checks it), or what is left of it. */
		nb = c->frame_left;
		if (c->at_nb) {
			if (bpf_skb_load_bytes(skb, c->pos, &nb, sizeof(nb)))
				return cut_fail(c, helper_failed(DSR_RELAY_ERR_LOAD));
			nb = bpf_ntohl(nb) & 0x00ffffff;
		}
		r = body_need(skb, c->pos + need - DSR_SMB2_HDR_LEN, nb, rs, c->rc, &more);
		if (r)
			return cut_fail(c, r);
		need += more;
	}
	if (c->pos + need > c->len) {
		/* Split header (or the body bytes it needs): keep its first part for the next skb, forward the rest now. */
		__u32 part = bounded_len(c->len - c->pos, DSR_RELAY_CARRY_MAX - 1);

		if (!part)
			return cut_fail(c, DSR_PASS_ERROR);
		if (bpf_skb_load_bytes(skb, c->pos, rs->carry, part))
			return cut_fail(c, helper_failed(DSR_RELAY_ERR_LOAD));
		/* The kernel charges copied_seq with the trimmed length; the next skb's prepend evens it out. */
		r = trim_tail(skb, c->pos);
		if (r)
			return cut_fail(c, helper_failed(r));
		rs->carry_len = part;
		rs->skip = 0;
		rs->at_nb = c->at_nb;
		rs->frame_left = c->frame_left;
		count(&relay_counters, DSR_RELAY_SPLIT_HDR, 1);
		if (c->pos == 0) {
			count(&relay_counters, DSR_RELAY_CARRY_HELD, 1);
			c->verdict = SK_DROP;
			return 1;
		}
		c->verdict = forward(skb, rs, &c->w.t, skb->len, c->pos);
		return 1;
	}
	hdr = c->pos;
	first = c->at_nb;
	if (c->at_nb) {
		r = check_frame(skb, hdr, c->len, rs, c->rc, &c->frame_left);
		if (r)
			return cut_fail(c, r);
		hdr += DSR_NB_HDR_LEN;
	}
	c->w.off = hdr;
	c->w.frame_left = c->frame_left;
	c->w.avail = c->len - hdr;
	c->w.first = first;
	r = rewrite_hdr(skb, rs, c->rc, &c->w);
	if (r)
		return cut_fail(c, r);
	if (c->w.slot >= 0)
		journal_start(skb, rs, c->w.slot, c->pos, c->len - c->pos, c->frame_left + DSR_NB_HDR_LEN);
	if (c->w.tail)
		tail_note(skb, rs, c->rc, hdr, c->len - hdr);
	next = c->w.next;
	if (next) {
		if (next < DSR_SMB2_HDR_LEN || next >= c->frame_left || (next & 7))
			return cut_fail(c, DSR_PASS_COMPOUND);
		c->pos = hdr + next;
		c->frame_left -= next;
		c->at_nb = 0;
	} else {
		c->pos = hdr + c->frame_left;
		c->at_nb = 1;
	}
	return 0;
}

/*
 * A segment that overlaps bytes already received is queued whole by TCP (tcp_data_queue's
 * partial packet: a retransmission cut differently) and tcp_read_skb hands it on whole: its head
 * repeats bytes a verdict had. They come off before anything reads the skb (a pass would hand
 * them to user space too), which also keeps copied_seq right (the kernel adds what is left).
 * Returns 0, 1 when nothing is left of the skb, or DSR_RELAY_ERR_HEAD.
 */
static __attribute__((noinline)) int cut_repeat(struct __sk_buff *skb, struct dsr_relay_busy *b)
{
	struct sk_buff *kskb;
	struct tcp_skb_cb *cb;
	__u32 seq, end, dup, n, i;

	if (!skb || !b)
		return 0;
	kskb = bpf_cast_to_kern_ctx(skb);
	cb = (struct tcp_skb_cb *)&kskb->cb[0];
	seq = BPF_CORE_READ(cb, seq);
	end = seq + skb->len;
	dup = b->next_seq - seq;
	if (!b->seq_set || (__s32)dup <= 0) {
		if (b->seq_set && dup)
			count(&relay_counters, DSR_RELAY_SEQ_GAP, 1);
		b->seq_set = 1;
		b->next_seq = end;
		return 0;
	}
	if ((__s32)(end - b->next_seq) > 0)
		b->next_seq = end;
	count(&relay_counters, DSR_RELAY_OVERLAP, 1);
	if (dup > skb->len)
		dup = skb->len;
	/* bpf_skb_adjust_room takes at most 0xfff bytes at a time. */
	for (i = 0; i < 32 && dup; i++) {
		n = dup > 0xfff ? 0xfff : dup;
		if (bpf_skb_adjust_room(skb, -(__s32)n, 0, 0))
			return DSR_RELAY_ERR_HEAD;
		dup -= n;
	}
	if (dup)
		return DSR_RELAY_ERR_HEAD;
	return skb->len ? 0 : 1;
}

static __always_inline int verdict_cut(struct __sk_buff *skb, __u64 cookie, struct dsr_relay_busy *b)
{
	struct dsr_relay_sock *rs = bpf_map_lookup_elem(&relay_socks_state, &cookie);
	struct dsr_relay_conn *rc;
	struct cut c;
	__u32 carried;
	int r;

	/* A FIN without data: nothing to forward, and redirected it would break the peer socket
	 * (the kernel's sender reports a zero-length send as EPIPE there). The socket has seen
	 * the FIN already; user space reads the end of the stream. */
	ring_fin(skb, rs);
	if (!skb->len)
		return SK_DROP;
	r = cut_repeat(skb, b);
	if (r == 1)
		return SK_DROP;
	if (r)
		return pass(rs, helper_failed(r));
	if (!rs)
		return pass(NULL, DSR_PASS_NO_SOCK);
	if (rs->sticky)
		return pass(rs, DSR_PASS_STICKY);
	rc = bpf_map_lookup_elem(&relay_conns, &rs->conn);
	if (!rc)
		return pass(rs, DSR_PASS_NO_CONN);
	r = ungate(skb, rs, 0);
	if (r)
		return pass(rs, r);
	/* Only where a frame starts at the skb's first byte, with no carry to go in front and no
	 * response's tail to finish: user space resumes framing there. (The first response after
	 * an arm starts so: the connection was quiet.) */
	if (!rs->skip && rs->at_nb && !rs->carry_len && !rs->tail_msg_id) {
		r = client_room(rs, rc);
		if (r)
			return pass(rs, r);
	}

	/* The journaled request this skb continues: its next bytes (forwarded now, or by user space
	 * as the message's tail if the skb passes). A header in the carry starts a frame, so there
	 * is none then. */
	if (rs->journal_left) {
		__u32 n = rs->journal_left < skb->len ? rs->journal_left : skb->len;

		rs->journal_left = journal_copy(skb, rs->conn, rs->journal_slot, 0, n) ? 0 : rs->journal_left - n;
	}

	/* A header split off the previous skb goes back in front of this one, so bytes stay in order. */
	carried = rs->carry_len;
	if (carried) {
		carried = bounded_len(carried, DSR_RELAY_CARRY_MAX);
		if (!carried)
			return pass(rs, DSR_PASS_ERROR);
		/* Not bpf_skb_change_head: it refuses to grow a non-GSO skb past SKB_MAX_ALLOC (about 16 KiB). */
		if (bpf_skb_adjust_room(skb, carried, 0, 0))
			return pass(rs, helper_failed(DSR_RELAY_ERR_HEAD));
		if (bpf_skb_store_bytes(skb, 0, rs->carry, carried, 0))
			return pass(rs, helper_failed(DSR_RELAY_ERR_STORE));
		rs->carry_len = 0;
	}
	/* The response whose last bytes this skb holds: forwarded now, or passed and user space has
	 * them, its request's entry goes (a carry comes only after a frame's end). */
	if (rs->tail_msg_id && rs->skip <= skb->len) {
		if (journal_free(rs->conn, rs->tail_msg_id - 1))
			count(&relay_counters, DSR_RELAY_JOURNAL_FREED, 1);
		rs->tail_msg_id = 0;
		rs->tail_data_offset = 0;
		rs->tail_data_length = 0;
	}
	c.skb = skb;
	c.rs = rs;
	c.rc = rc;
	c.len = skb->len;
	c.pos = rs->skip;
	c.at_nb = rs->at_nb;
	c.frame_left = rs->frame_left;
	__builtin_memset(&c.w, 0, sizeof(c.w));
	c.w.write = 1;
	c.verdict = -1;
	bpf_loop(CUT_MAX_HDRS, cut_step, &c, 0);
	if (c.verdict < 0)
		return pass(rs, DSR_PASS_TOO_MANY);
	return c.verdict;
}

/* relay_busy: odd while a verdict runs on the socket (see dsr_abi.h). */
static __always_inline void busy_step(struct dsr_relay_busy *b)
{
	if (b)
		__sync_fetch_and_add(&b->busy, 1);
}

/* A verdict framed by `cut`'s choice (a constant: the other branch is compiled out), with relay_busy stepped around it. */
static __always_inline int busy_verdict(struct __sk_buff *skb, bool cut)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct dsr_relay_busy *b = bpf_map_lookup_elem(&relay_busy, &cookie);
	int verdict;

	busy_step(b);
	verdict = cut ? verdict_cut(skb, cookie, b) : verdict_msg(skb, cookie);
	busy_step(b);
	return verdict;
}

SEC("sk_skb/stream_verdict")
int relay_verdict_msg(struct __sk_buff *skb)
{
	return busy_verdict(skb, false);
}

SEC("sk_skb/stream_verdict")
int relay_verdict_cut(struct __sk_buff *skb)
{
	return busy_verdict(skb, true);
}
