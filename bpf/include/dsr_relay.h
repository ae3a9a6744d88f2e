/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SMB2 relay (sk_skb): the ABI between bpf/smb2_relay.bpf.c and user space.
 *
 * An offloaded connection is a pair of TCP sockets in one sockhash, the client's at key 2*conn
 * and the backend's at 2*conn+1, so a socket's peer is key ^ 1. Each socket has a
 * struct relay_sock in relay_socks_state, keyed by its socket cookie (SO_COOKIE), saying which
 * connection and direction it is and, for the cut-through verdict, where the next SMB2 header
 * falls in its byte stream. Rules (session and tree id maps, the MessageId offset, the commands
 * the kernel may forward) are per connection and written only by user space.
 *
 * Every struct here is packed by hand (explicit padding, 8-byte aligned u64s) so user space can
 * mirror it without compiler help. Keep in sync with src/offload/abi.ts when it lands
 * (helper-bpf's dsr_abi.h takes this file's contents in its "SMB2 relay (sk_skb)" section).
 */
#ifndef DSR_RELAY_H
#define DSR_RELAY_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define RELAY_MAX_CONNS 4096
#define RELAY_MAX_SOCKS (2 * RELAY_MAX_CONNS)
#define RELAY_MAX_TREES 65536
#define RELAY_MAX_SESSIONS 16384

/* NetBIOS session message length prefix, then the 64-byte SMB2 sync/async header (MS-SMB2 2.2.1). */
#define NB_HDR_LEN 4
#define SMB2_HDR_LEN 64
#define RELAY_CARRY_MAX (NB_HDR_LEN + SMB2_HDR_LEN)

/* SMB2 header field offsets from the header's first byte (MS-SMB2 2.2.1.1 / 2.2.1.2). */
#define SMB2_OFF_PROTOCOL 0
#define SMB2_OFF_CREDIT_CHARGE 6
#define SMB2_OFF_STATUS 8
#define SMB2_OFF_COMMAND 12
#define SMB2_OFF_CREDITS 14
#define SMB2_OFF_FLAGS 16
#define SMB2_OFF_NEXT_COMMAND 20
#define SMB2_OFF_MESSAGE_ID 24
#define SMB2_OFF_ASYNC_ID 32
#define SMB2_OFF_TREE_ID 36
#define SMB2_OFF_SESSION_ID 40

#define SMB2_FLAGS_SERVER_TO_REDIR 0x00000001
#define SMB2_FLAGS_ASYNC_COMMAND 0x00000002
#define SMB2_FLAGS_SIGNED 0x00000008

/* ProtocolId as a little-endian u32: 0xFE 'S' 'M' 'B'; transform (encrypted) 0xFD; compressed 0xFC. */
#define SMB2_MAGIC 0x424d53feu
#define SMB2_TRANSFORM_MAGIC 0x424d53fdu
#define SMB2_COMPRESSED_MAGIC 0x424d53fcu

#define SMB2_CMD_COUNT 19 /* NEGOTIATE (0) .. OPLOCK_BREAK (18) */

/* Direction of a socket: what arrives on it. */
enum relay_dir {
	RELAY_DIR_REQUEST = 0, /* the client's socket: requests, rewritten client -> backend ids */
	RELAY_DIR_REPLY = 1,   /* the backend's socket: replies, rewritten backend -> client ids */
};

/*
 * Why the verdict did what it did: one per-CPU counter each in relay_reasons. Non-zero reasons
 * other than the FWD_* ones are SK_PASS to user space; once a direction passes, it stays with
 * user space (RELAY_PASS_STICKY) so bytes are never reordered behind a kernel-forwarded message.
 */
enum relay_reason {
	RELAY_FWD_MSG = 0,        /* a message header rewritten and its bytes forwarded */
	RELAY_FWD_SKB,            /* an skb redirected to the peer */
	RELAY_FWD_BYTES,          /* bytes redirected (counter, not an event) */
	RELAY_SPLIT_HDR,          /* cut-through: a header split across skbs, carried to the next one */
	RELAY_CARRY_HELD,         /* cut-through: an skb held entirely in the carry buffer */
	RELAY_PASS_NO_SOCK,       /* socket cookie unknown (not offloaded) */
	RELAY_PASS_NO_CONN,       /* no rules for its connection */
	RELAY_PASS_BAD_MAGIC,     /* not an SMB2 header where one should be (SMB1, garbage) */
	RELAY_PASS_ENCRYPTED,     /* transform header: the session encrypts */
	RELAY_PASS_COMPRESSED,    /* compression transform header */
	RELAY_PASS_SIGNED,        /* SMB2_FLAGS_SIGNED: the kernel cannot re-sign */
	RELAY_PASS_COMMAND,       /* command not in the connection's offloaded set */
	RELAY_PASS_SESSION,       /* SessionId not in the session map */
	RELAY_PASS_TREE,          /* TreeId not in the tree map */
	RELAY_PASS_COMPOUND,      /* a compound the rules don't cover (chain too long, bad NextCommand) */
	RELAY_PASS_STICKY,        /* the direction already went to user space */
	RELAY_PASS_NO_PEER,       /* redirect failed: the peer left the sockhash */
	RELAY_PASS_ERROR,         /* a helper failed (load/store/change_head) */
	RELAY_PASS_TOO_MANY,      /* cut-through: more headers in one skb than the loop bound */
	RELAY_REASON_COUNT,
};

/* relay_socks_state: socket cookie -> this. */
struct relay_sock {
	__u32 conn;       /* key of relay_conns */
	__u32 peer_key;   /* relay_socks key of the socket the bytes go to */
	__u32 dir;        /* enum relay_dir */
	__u32 sticky;     /* non-zero: this direction passes everything to user space (reason in it) */
	/*
	 * Cut-through framing: the next header starts `skip` bytes into the next skb. Once sticky:
	 * the first header the kernel did not forward starts `skip` bytes into the passed bytes.
	 */
	__u32 skip;
	__u32 at_nb;      /* the next header is a NetBIOS frame start (else a compound's next header) */
	__u32 frame_left; /* bytes of the current NetBIOS frame from the next (compound) header on */
	__u32 carry_len;  /* bytes of a split header held from the previous skb(s) */
	__u8 carry[RELAY_CARRY_MAX];
	__u64 msgs;       /* headers rewritten in this direction */
	__u64 bytes;      /* bytes forwarded in this direction (the barrier user space waits on before it writes) */
};

/* relay_conns: connection id -> this. */
struct relay_conn {
	__s64 msg_id_delta;  /* backend MessageId = client MessageId + delta (one owner per backend connection) */
	__u32 cmd_mask;      /* bit n: command n may be forwarded by the kernel */
	__u32 flags;         /* RELAY_CONN_* */
};

#define RELAY_CONN_REWRITE 1u /* look ids up and write them (off: forward bytes untouched, framing only) */

/* relay_sessions: (conn, dir, SessionId as seen on that socket) -> SessionId for the peer. */
struct relay_session_key {
	__u32 conn;
	__u32 dir;
	__u64 session_id;
};

/* relay_trees: (conn, dir, TreeId as seen on that socket) -> TreeId for the peer. */
struct relay_tree_key {
	__u32 conn;
	__u32 dir;
	__u32 tree_id;
	__u32 pad;
};

/*
 * relay_events (ring buffer): one record when a direction turns sticky, so user space needs no
 * EPOLLIN on offloaded sockets (the verdict-only path wakes readers on every skb it forwards).
 */
struct relay_event {
	__u32 conn;
	__u32 dir;
	__u32 reason;
	__u32 pad;
};

#endif /* DSR_RELAY_H */
