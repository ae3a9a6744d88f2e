/*
 * dsr_abi.h: everything the BPF programs and the TypeScript control plane share: map key and
 * value structs, reason codes and constants. src/offload/abi.ts mirrors this file; keep the two
 * in sync (test/offload/abi.test.ts compares the struct layouts with the BTF of the compiled
 * objects and every numeric DSR_ macro here with abi.ts).
 *
 * Rules: fixed-width types only, explicit padding (named pad*, always zero), a _Static_assert
 * on every struct size, integers in host byte order unless the field says __be, constants as
 * #defines of plain decimal integers (the test reads them with clang -dM -E). The includer
 * provides __u8.. __u64, __s64 and __be32 (vmlinux.h in BPF programs, <linux/types.h> in user
 * space).
 */
#ifndef DSR_ABI_H
#define DSR_ABI_H

/* ---- Storage ports (tc, bpf/port.bpf.c) -------------------------------------------------
 * The dsr namespace's bridge is the appliance's storage switch; each storage port spN runs
 * dsr_port_ingress (frames from the server) and dsr_port_egress (frames to the server). A port
 * carries exactly one server: the only traffic allowed is ARP and IPv4 between that server and
 * the DSR's storage address. Everything else (another server, the client side, a spoofed
 * source, IPv6, an empty port) is dropped and counted with its reason.
 */

/* Port indices are 0 .. DSR_PORT_MAX-1 (the lab's spN is index N-1). */
#define DSR_PORT_MAX 16
/* The stats' port for a frame on an interface with no port index (dropped as UNASSIGNED). */
#define DSR_PORT_UNKNOWN 65535

/* tc verdicts (TCX_NEXT / TCX_DROP; the same values mean "continue" / "drop" under clsact). */
#define DSR_TC_NEXT -1
#define DSR_TC_DROP 2

/* Direction, seen from the switch: ingress = from the server, egress = to the server. */
#define DSR_DIR_INGRESS 0
#define DSR_DIR_EGRESS 1

/* Why a frame was counted: DSR_PORT_ALLOWED, or the reason it was dropped. */
#define DSR_PORT_ALLOWED 0
/* The port has no server (not configured, or server 0). */
#define DSR_PORT_DROP_UNASSIGNED 1
/* Ingress: the Ethernet source (or ARP sender hardware address) is not the port's server. */
#define DSR_PORT_DROP_SRC_MAC 2
/* The IPv4 source or ARP sender address is not the expected one (the server on ingress, the DSR
 * on egress). */
#define DSR_PORT_DROP_SRC_IP 3
/* The IPv4 destination or ARP target is not the expected one (the DSR on ingress, the server on
 * egress): another server or the client side. */
#define DSR_PORT_DROP_DST_IP 4
/* Neither ARP nor IPv4 (IPv6, VLAN tags, anything else). */
#define DSR_PORT_DROP_PROTO 5
/* Too short for the headers its EtherType announces. */
#define DSR_PORT_DROP_MALFORMED 6
/* Passed, not the DSR's own traffic: IPv4 between the port's server and the lab's direct-path
 * peer (dsr_switch.direct_net/direct_mask), set only while `dsr lab direct on` routes the client
 * to the servers for a baseline. */
#define DSR_PORT_DIRECT 7
/* Passed: the port's isolation is off (DSR_PORT_F_OPEN, maintenance), so a frame that fails only
 * the address checks (SRC_IP, DST_IP) goes through; MAC, protocol and length checks still hold. */
#define DSR_PORT_OPEN 8
#define DSR_PORT_REASON_MAX 9

/* Map dsr_port_ifs (hash): ifindex (__u32) -> port index (__u32). Filled on attach. */
#define DSR_PORT_IFS_MAX 64

/* dsr_port.flags: the port's isolation is off (frames failing only the address checks pass as
 * DSR_PORT_OPEN); with server 0, a spare port left open for a new server to announce itself. */
#define DSR_PORT_F_OPEN 1

/* Map dsr_ports (array, DSR_PORT_MAX entries): port index (__u32) -> the port's server. */
struct dsr_port {
	/* The control plane's server id; 0 = no server on this port (everything dropped). */
	__u32 server;
	/* The server's IPv4 address. */
	__be32 addr;
	/* The server's MAC; all zero = not pinned (the port learns), any source MAC passes. */
	__u8 mac[6];
	/* DSR_PORT_F_* */
	__u8 flags;
	__u8 pad;
};
_Static_assert(sizeof(struct dsr_port) == 16, "struct dsr_port");

/* Map dsr_switch (array, 1 entry, key 0): settings of the whole switch. */
struct dsr_switch {
	/* The DSR's own storage address (198.18.1.1 in the lab). */
	__be32 addr;
	/* The lab's direct-path peer, a prefix (DSR_PORT_DIRECT); direct_mask 0 = none. */
	__be32 direct_net;
	__be32 direct_mask;
	/* A second address of the DSR on the storage network, its health probes' source; 0 = none. */
	__be32 probe;
};
_Static_assert(sizeof(struct dsr_switch) == 16, "struct dsr_switch");

/* Map dsr_port_stats (per-CPU hash): packet and byte counters. */
struct dsr_port_stat_key {
	/* The port's server when the frame passed (0 when unassigned): load per server survives a
	 * server moving to another port. */
	__u32 server;
	__u16 port;
	/* DSR_DIR_* */
	__u8 dir;
	/* DSR_PORT_ALLOWED or DSR_PORT_DROP_* */
	__u8 reason;
};
_Static_assert(sizeof(struct dsr_port_stat_key) == 8, "struct dsr_port_stat_key");
#define DSR_PORT_STATS_MAX 4096

struct dsr_port_stat {
	__u64 packets;
	/* Whole frames, Ethernet header included. */
	__u64 bytes;
};
_Static_assert(sizeof(struct dsr_port_stat) == 16, "struct dsr_port_stat");

/* ---- Pass reasons ------------------------------------------------------------------------
 * Why a message went to user space instead of being forwarded by the kernel: one list for the
 * decisions the DSR makes before it offloads (a session or tree rule, SIGNED .. LOCAL_TREE) and
 * the relay verdict's own (NO_SOCK .. INVALID; SIGNED and ENCRYPTED are the verdict's too, for a
 * message that says so). PassReason in src/offload/offload.ts, in the same order. 0 = forwarded
 * by the kernel; counters that are not reasons are DSR_RELAY_* below.
 */
#define DSR_PASS_NONE 0
/* The session signs (the verdict: SMB2_FLAGS_SIGNED): the kernel cannot re-sign. */
#define DSR_PASS_SIGNED 1
/* The server requires signing: the DSR must sign every request to it. */
#define DSR_PASS_BACKEND_SIGNED 2
/* The session encrypts (the verdict: a transform header, ProtocolId 0xFD 'SMB'). */
#define DSR_PASS_ENCRYPTED 3
/* Guest and anonymous sessions carry no key and are never forwarded. */
#define DSR_PASS_NO_KEY 4
/* A tree the DSR serves itself (IPC$). */
#define DSR_PASS_LOCAL_TREE 5
/* The socket's cookie is not in relay_socks_state (not offloaded). */
#define DSR_PASS_NO_SOCK 6
/* No rules for the socket's connection in relay_conns. */
#define DSR_PASS_NO_CONN 7
/* No SMB2 header where one should be (SMB1, garbage, a NetBIOS type other than 0). */
#define DSR_PASS_BAD_MAGIC 8
/* A compression transform header (ProtocolId 0xFC 'SMB'). */
#define DSR_PASS_COMPRESSED 9
/* The command is not in the connection's cmd_mask. */
#define DSR_PASS_COMMAND 10
/* The SessionId is not in relay_sessions. */
#define DSR_PASS_SESSION 11
/* The TreeId is not in relay_trees. */
#define DSR_PASS_TREE 12
/* A compound the rules don't cover (chain too long, NextCommand not 8-aligned, < 64 or past the frame). */
#define DSR_PASS_COMPOUND 13
/* The direction already went to user space (dsr_relay_sock.sticky). */
#define DSR_PASS_STICKY 14
/* The redirect failed: the peer socket left the sockhash. */
#define DSR_PASS_NO_PEER 15
/* A helper failed (load, store, the trim or prepend of a carry): which one is counted in relay_counters (DSR_RELAY_ERR_*). */
#define DSR_PASS_ERROR 16
/* Cut-through: more headers in one skb than its loop bound. */
#define DSR_PASS_TOO_MANY 17
/* A request's FileId is not in relay_files, or the request is too short to hold the FileId its
 * command names (user space answers it). */
#define DSR_PASS_FILE 18
/* A request the verdict cannot prove valid: bad StructureSize, larger than the negotiated
 * maximum, a CreditCharge too small for its size, a buffer outside the message (user space
 * answers it with the NTSTATUS a Windows server gives; see "Requests checked" below). */
#define DSR_PASS_INVALID 19
/* DSR_RELAY_CONN_JOURNAL: no journal slot is free, the connection holds its journal_max
 * entries already, the frame is longer than
 * DSR_RELAY_JOURNAL_FRAME_MAX, or its MessageId is already in the journal. */
#define DSR_PASS_JOURNAL 20
/* A request whose MessageId is not the one after the last the kernel forwarded (or
 * dsr_relay_conn.msg_id_next for the first): a client using ids out of order. Only user space
 * can tell which ids stay unused, so its credit window stays right (MS-SMB2 3.3.5.2.3). */
#define DSR_PASS_SEQUENCE 21
/* The first skb after user space armed the socket does not start where user space stopped
 * reading (dsr_relay_sock.expect): bytes passed before are still unread, and forwarding this skb
 * would put it before them. */
#define DSR_PASS_UNREAD 22
/* A response, at a frame start, while more than dsr_relay_conn.max_queued bytes the kernel
 * forwarded to the client wait for its socket (a client behind in reading): user space takes
 * the connection and holds the server back (TCP stops at the server's socket only when nobody
 * reads it, and the verdict does). */
#define DSR_PASS_BEHIND 23
/* A response, at a frame start, before the client socket has what dsr_relay_conn.client_base
 * counts: user space lent the connection just before writing its reply there, and the response
 * would go in front of it or into its middle. */
#define DSR_PASS_AHEAD 24
#define DSR_PASS_REASON_MAX 25

/* ---- SMB2 relay (sk_skb, bpf/smb2_relay.bpf.c) --------------------------------------------
 * An offloaded connection is a pair of TCP sockets in the sockhash relay_socks, the client's at
 * key 2*conn and the backend's at 2*conn+1, so a socket's peer is key ^ 1. Each socket has a
 * struct dsr_relay_sock in relay_socks_state, keyed by its socket cookie (SO_COOKIE), saying
 * which connection and direction it is and, for the cut-through verdict, where the next SMB2
 * header falls in its byte stream. Rules (session, tree and file id maps, the MessageId offset,
 * the commands the kernel may forward) are per connection and written only by user space. A
 * pass makes the direction sticky: everything after it goes to user space too, until user space
 * re-arms it, so bytes are never reordered behind a message user space still holds.
 *
 * FileIds: with DSR_RELAY_CONN_FILES, a request whose command names a FileId at a fixed body
 * offset (DSR_SMB2_FILE_ID_AT_*) gets the server's FileId from relay_files in place of the
 * client's (the DSR's own); a miss passes (DSR_PASS_FILE). The related-compound FileId (all
 * 0xFF, "the previous operation's handle") goes as it is in a header after the first of a frame
 * with SMB2_FLAGS_RELATED_OPERATIONS, since the chain reaches the server whole and the server
 * resolves it; anywhere else it passes (DSR_PASS_COMPOUND). Replies are never touched for
 * FileIds: with FILES set, commands whose responses carry a FileId (CREATE, IOCTL,
 * OPLOCK_BREAK) must not be in cmd_mask (encodeRelayConn in abi.ts refuses them). The
 * OPLOCK_BREAK offset is the oplock acknowledgment's; a lease acknowledgment has its LeaseKey
 * there, one more reason the command stays in user space.
 *
 * Requests checked: READ, WRITE, FLUSH and QUERY_INFO requests (the commands the DSR lends the
 * kernel) are checked as the DSR's own decoders and MS-SMB2 3.3.5.2.5 check them before anything
 * is forwarded, whatever the flags: StructureSize (DSR_SMB2_SIZE_*), the message (NextCommand,
 * else the rest of the frame) holding the fixed part, READ Length <= max_read, WRITE Length <=
 * max_write with its Data (and WriteChannelInfo) inside the message and after the fixed part,
 * QUERY_INFO OutputBufferLength and InputBufferLength <= max_transact with its InputBuffer inside
 * the message, READ's ReadChannelInfo inside the message, and max(CreditCharge, 1) >= one credit
 * per started 64 KiB (DSR_SMB2_CREDIT_BYTES) of READ Length, WRITE Length, or max(QUERY_INFO
 * input, output). Anything else passes (DSR_PASS_INVALID) and user space answers it. CreditCharge
 * is always checked: dialect 2.0.2 has none, and the DSR never lends a 2.0.2 connection. Other
 * commands in cmd_mask are forwarded unchecked (the bench harness lends them; the DSR does not).
 *
 * Interim responses (STATUS_PENDING with SMB2_FLAGS_ASYNC_COMMAND) are forwarded as they are:
 * their AsyncId is the server's, and the client's CANCEL or the final response carry it
 * unchanged too. User space taking a connection back answers for requests the kernel forwarded
 * with those AsyncIds, not with AsyncIds of its own.
 *
 * Taking a connection back: user space removes both sockets from relay_socks, waits until the
 * peer's TCP holds every byte the kernel forwarded (dsr_relay_sock.bytes), then reads the counts
 * of both sockets (msgs, charge, msg_id_end on the client's; msgs, credits, interims on the
 * backend's) to resynchronise its MessageId and credit windows, and answers the kernel-forwarded
 * requests still outstanding itself.
 */

#define DSR_RELAY_MAX_CONNS 4096
/* relay_socks and relay_socks_state: two sockets a connection. */
#define DSR_RELAY_MAX_SOCKS 8192
#define DSR_RELAY_MAX_SESSIONS 16384
#define DSR_RELAY_MAX_TREES 65536
#define DSR_RELAY_MAX_FILES 65536
/* relay_events (ring buffer) size in bytes. */
#define DSR_RELAY_EVENTS_BYTES 65536

/* Direction of a socket, by what arrives on it: requests on the client's socket (client ids
 * rewritten to the backend's), replies on the backend's (backend ids back to the client's). */
#define DSR_RELAY_DIR_REQUEST 0
#define DSR_RELAY_DIR_REPLY 1

/* Map relay_counters (per-CPU array, DSR_RELAY_COUNTER_MAX entries of __u64): what the kernel
 * forwarded. Passes are counted apart, in relay_passes (per-CPU array, DSR_PASS_REASON_MAX
 * entries of __u64, indexed by DSR_PASS_*; entry 0 stays 0). */
/* Headers rewritten and forwarded. */
#define DSR_RELAY_FWD_MSG 0
/* skbs redirected to the peer. */
#define DSR_RELAY_FWD_SKB 1
/* Bytes redirected to the peer. */
#define DSR_RELAY_FWD_BYTES 2
/* Cut-through: a header split across skbs, carried to the next one. */
#define DSR_RELAY_SPLIT_HDR 3
/* Cut-through: an skb held entirely in the carry buffer. */
#define DSR_RELAY_CARRY_HELD 4
/* Request frames journaled (DSR_RELAY_CONN_JOURNAL). */
#define DSR_RELAY_JOURNALED 5
/* Journal entries freed by the verdict (a final response forwarded). */
#define DSR_RELAY_JOURNAL_FREED 6
/* A helper failed (each also passes the message, DSR_PASS_ERROR), by use: bpf_skb_load_bytes;
 * bpf_skb_store_bytes (a rewrite, a long skb's trim moving its bytes, the carry put back);
 * the trim of a split header (bpf_skb_change_tail, bpf_skb_adjust_room); bpf_skb_adjust_room at
 * an skb's head (the carry's room, a repeated head taken off). */
#define DSR_RELAY_ERR_LOAD 7
#define DSR_RELAY_ERR_STORE 8
#define DSR_RELAY_ERR_TAIL 9
#define DSR_RELAY_ERR_HEAD 10
/* Cut-through: skbs whose head repeated bytes the verdict had seen (cut off; dsr_relay_busy). */
#define DSR_RELAY_OVERLAP 11
/* Cut-through: skbs starting past the byte after the last one a verdict saw (bytes that reached
 * no verdict: never expected). */
#define DSR_RELAY_SEQ_GAP 12
#define DSR_RELAY_COUNTER_MAX 13

/* MS-SMB2 2.1: the NetBIOS session message prefix (type 0, 24-bit length, big endian), then the
 * 64-byte SMB2 header (MS-SMB2 2.2.1). A header split across skbs is carried whole, with the
 * request's body as far as the verdict reads it (its FileId, and the fixed part of a request it
 * checks): up to the prefix, the header and 48 body bytes (READ's and WRITE's fixed parts). */
#define DSR_NB_HDR_LEN 4
#define DSR_SMB2_HDR_LEN 64
#define DSR_RELAY_CARRY_MAX 116

/* The SMB2 header fields the verdict reads or writes, as offsets from its first byte. */
#define DSR_SMB2_OFF_PROTOCOL 0
#define DSR_SMB2_OFF_CREDIT_CHARGE 6
#define DSR_SMB2_OFF_STATUS 8
#define DSR_SMB2_OFF_COMMAND 12
#define DSR_SMB2_OFF_CREDIT 14
#define DSR_SMB2_OFF_FLAGS 16
#define DSR_SMB2_OFF_NEXT_COMMAND 20
#define DSR_SMB2_OFF_MESSAGE_ID 24
#define DSR_SMB2_OFF_TREE_ID 36
#define DSR_SMB2_OFF_SESSION_ID 40
/* SMB2_FLAGS_ASYNC_COMMAND, SMB2_FLAGS_RELATED_OPERATIONS, SMB2_FLAGS_SIGNED. */
#define DSR_SMB2_FLAGS_ASYNC_COMMAND 2
#define DSR_SMB2_FLAGS_RELATED_OPERATIONS 4
#define DSR_SMB2_FLAGS_SIGNED 8
/* STATUS_PENDING (0x00000103): with SMB2_FLAGS_ASYNC_COMMAND, an interim response. */
#define DSR_SMB2_STATUS_PENDING 259
/* ProtocolId as a little-endian __u32: 0xFE 'SMB' (0x424d53fe), the transform header (encrypted)
 * 0xFD 'SMB' (0x424d53fd), the compression transform header 0xFC 'SMB' (0x424d53fc). */
#define DSR_SMB2_MAGIC 1112364030
#define DSR_SMB2_TRANSFORM_MAGIC 1112364029
#define DSR_SMB2_COMPRESSED_MAGIC 1112364028
/* Commands NEGOTIATE (0) .. OPLOCK_BREAK (18): bit n of dsr_relay_conn.cmd_mask is command n. */
#define DSR_SMB2_CMD_COUNT 19
/* The commands the verdict tells apart (MS-SMB2 2.2.1.2). CANCEL uses no credit and no
 * MessageId of its own (it names the request it cancels). */
#define DSR_SMB2_CMD_CLOSE 6
#define DSR_SMB2_CMD_FLUSH 7
#define DSR_SMB2_CMD_READ 8
#define DSR_SMB2_CMD_WRITE 9
#define DSR_SMB2_CMD_LOCK 10
#define DSR_SMB2_CMD_IOCTL 11
#define DSR_SMB2_CMD_CANCEL 12
#define DSR_SMB2_CMD_QUERY_DIRECTORY 14
#define DSR_SMB2_CMD_CHANGE_NOTIFY 15
#define DSR_SMB2_CMD_QUERY_INFO 16
#define DSR_SMB2_CMD_SET_INFO 17
#define DSR_SMB2_CMD_OPLOCK_BREAK 18

/* Where a request's FileId (MS-SMB2 2.2.14.1: Persistent, then Volatile, 8 bytes each) sits, as
 * an offset into its body (after the 64-byte header), for every command that names one: MS-SMB2
 * 2.2.15 CLOSE, 2.2.17 FLUSH, 2.2.19 READ, 2.2.21 WRITE, 2.2.26 LOCK, 2.2.31 IOCTL, 2.2.33
 * QUERY_DIRECTORY, 2.2.35 CHANGE_NOTIFY, 2.2.37 QUERY_INFO, 2.2.39 SET_INFO, 2.2.24.1 the oplock
 * break acknowledgment. REQUEST_FILE_ID_AT of src/control/wire/smb2/file-id.ts. */
#define DSR_SMB2_FILE_ID_LEN 16
#define DSR_SMB2_FILE_ID_AT_CLOSE 8
#define DSR_SMB2_FILE_ID_AT_FLUSH 8
#define DSR_SMB2_FILE_ID_AT_READ 16
#define DSR_SMB2_FILE_ID_AT_WRITE 16
#define DSR_SMB2_FILE_ID_AT_LOCK 8
#define DSR_SMB2_FILE_ID_AT_IOCTL 8
#define DSR_SMB2_FILE_ID_AT_QUERY_DIRECTORY 8
#define DSR_SMB2_FILE_ID_AT_CHANGE_NOTIFY 8
#define DSR_SMB2_FILE_ID_AT_QUERY_INFO 24
#define DSR_SMB2_FILE_ID_AT_SET_INFO 16
#define DSR_SMB2_FILE_ID_AT_OPLOCK_BREAK 8

/* The requests the verdict checks ("Requests checked" above): their StructureSize (MS-SMB2 2.2.17
 * FLUSH, 2.2.19 READ, 2.2.21 WRITE, 2.2.37 QUERY_INFO; an odd size has a fixed part of size - 1
 * bytes and a variable part) and the body offsets of the fields checked. Offset fields are
 * header-relative (MS-SMB2 2.2); lengths are __u32 but the channel infos' (__u16). */
#define DSR_SMB2_SIZE_FLUSH 24
#define DSR_SMB2_SIZE_READ 49
#define DSR_SMB2_SIZE_WRITE 49
#define DSR_SMB2_SIZE_QUERY_INFO 41
/* READ: Length; ReadChannelInfoOffset (__u16), then ReadChannelInfoLength (__u16). */
#define DSR_SMB2_READ_LENGTH_AT 4
#define DSR_SMB2_READ_CHANNEL_INFO_AT 44
/* WRITE: DataOffset (__u16), Length; WriteChannelInfoOffset (__u16), then WriteChannelInfoLength (__u16). */
#define DSR_SMB2_WRITE_DATA_OFFSET_AT 2
#define DSR_SMB2_WRITE_LENGTH_AT 4
#define DSR_SMB2_WRITE_CHANNEL_INFO_AT 40
/* QUERY_INFO: OutputBufferLength; InputBufferOffset (__u16); InputBufferLength. */
#define DSR_SMB2_QUERY_INFO_OUTPUT_LENGTH_AT 4
#define DSR_SMB2_QUERY_INFO_INPUT_OFFSET_AT 8
#define DSR_SMB2_QUERY_INFO_INPUT_LENGTH_AT 12
/* MS-SMB2 3.1.5.2: one credit per started 64 KiB a request moves. */
#define DSR_SMB2_CREDIT_BYTES 65536

/* Map relay_busy (hash, DSR_RELAY_MAX_SOCKS entries): socket cookie (__u64) -> this, written
 * only by the verdicts. User space creates it (zeros) before the socket goes into relay_socks
 * and deletes it when the socket leaves, so it lives as long as the socket is the kernel's. */
struct dsr_relay_busy {
	/* 1 added when a verdict starts on one of the socket's skbs and 1 when it ends: odd while one
	 * runs. Taking a connection back, user space deletes its rules, then waits until both
	 * sockets' counts are even before it reads their state: a verdict that found the rules just
	 * before the delete may still be forwarding and moving the state on (under load a verdict
	 * runs in ksoftirqd and can be preempted, and a state read early named the wrong frame
	 * boundary). */
	__u32 busy;
	/* Cut-through: next_seq is set (1) once a verdict saw an skb of the socket. */
	__u32 seq_set;
	/* Cut-through: the TCP sequence number after the last byte a verdict saw. TCP queues a
	 * segment that overlaps bytes already received whole (a retransmission cut differently) and
	 * hands it to the verdict whole: its head, up to next_seq, repeats bytes and comes off
	 * (DSR_RELAY_OVERLAP). */
	__u32 next_seq;
	__u32 pad;
};
_Static_assert(sizeof(struct dsr_relay_busy) == 16, "struct dsr_relay_busy");

/* Map relay_socks_state (hash, DSR_RELAY_MAX_SOCKS entries): socket cookie (__u64) -> this.
 * User space writes it when it offloads or re-arms a connection; the verdict updates it. */
struct dsr_relay_sock {
	/* Key of relay_conns. */
	__u32 conn;
	/* relay_socks key of the socket the bytes go to. */
	__u32 peer_key;
	/* DSR_RELAY_DIR_* */
	__u32 dir;
	/* DSR_PASS_* that made this direction pass everything to user space; 0 = on the kernel path. */
	__u32 sticky;
	/* Cut-through framing: the next header starts `skip` bytes into the next skb. Once sticky:
	 * the first header the kernel did not forward starts `skip` bytes into the passed bytes. */
	__u32 skip;
	/* Non-zero: the next header is a NetBIOS frame start (else a compound's next header). */
	__u32 at_nb;
	/* Bytes of the current NetBIOS frame from the next (compound) header on. */
	__u32 frame_left;
	/* Bytes of a split header held in carry from the previous skb(s). */
	__u32 carry_len;
	__u8 carry[DSR_RELAY_CARRY_MAX];
	/* Non-zero: the next skb is the first since user space armed the socket, and must start at
	 * stream offset `expect` (below); the verdict clears it once one does. */
	__u32 gate;
	/*
	 * Counts of what the kernel forwarded, kept by the verdict for taking the connection back
	 * (user space writes them 0 when it offloads and keeps them when it re-arms). A message
	 * passed to user space is in none of them.
	 */
	/* Headers forwarded in this direction (replies: interim and final responses alike). */
	__u64 msgs;
	/* Bytes forwarded in this direction: the barrier user space waits on before it writes to
	 * the peer itself. */
	__u64 bytes;
	/* Requests: the sum of max(CreditCharge, 1) over forwarded requests but CANCEL, what the
	 * client used of its credit window. */
	__u64 charge;
	/* Requests: the highest client MessageId + max(CreditCharge, 1) forwarded (CANCEL aside);
	 * 0 = none. With charge: the client used its ids without a gap iff msg_id_end equals the
	 * first MessageId it was due at the offload + charge. */
	__u64 msg_id_end;
	/* Replies: the sum of CreditResponse of forwarded responses, what the server granted. */
	__u64 credits;
	/* Replies: interim responses forwarded (STATUS_PENDING with SMB2_FLAGS_ASYNC_COMMAND);
	 * msgs - interims are final responses. */
	__u64 interims;
	/* Cut-through with DSR_RELAY_CONN_JOURNAL: the relay_journal slot of the request frame
	 * being forwarded, and how many of its bytes are still to come (0: none); the next skb's
	 * first journal_left bytes are copied there. User space writes them 0 when it arms. */
	__u32 journal_slot;
	__u32 journal_left;
	/* With gate: the stream offset (bytes since the connection's first, as TCP received them) of
	 * the first byte user space has not consumed when it armed: what it read, plus what the
	 * kernel forwarded or carried before. A first skb elsewhere passes (DSR_PASS_UNREAD): bytes
	 * the verdict passed earlier are still in the socket, and would reach user space after it. */
	__u64 expect;
	/* Replies, cut-through with DSR_RELAY_CONN_JOURNAL: the final response whose last `skip`
	 * bytes are still to come: its server MessageId + 1 (0: none) and, for a successful READ
	 * response, its DataOffset and DataLength (MS-SMB2 2.2.20; 0: another response, or not in
	 * the header's skb). Its request's journal entry stays until the verdict forwards the last
	 * byte, so user space can read the rest from another server if this one is lost first. User
	 * space writes them 0. */
	__u64 tail_msg_id;
	__u32 tail_data_offset;
	__u32 tail_data_length;
};
_Static_assert(sizeof(struct dsr_relay_sock) == 232, "struct dsr_relay_sock");

/* dsr_relay_conn.flags: look ids up and write them (off: forward bytes untouched, framing only). */
#define DSR_RELAY_CONN_REWRITE 1
/* With REWRITE: requests' FileIds are looked up in relay_files and written too. The DSR sets it
 * on every connection it offloads (its clients hold its FileIds); off, FileIds go as they are. */
#define DSR_RELAY_CONN_FILES 2
/* Requests forwarded are journaled (relay_journal, below) until their final response is
 * forwarded; a compound request passes (DSR_PASS_COMPOUND) untouched. */
#define DSR_RELAY_CONN_JOURNAL 4

/* Map relay_conns (hash, DSR_RELAY_MAX_CONNS entries): connection id (__u32) -> its rules. */
struct dsr_relay_conn {
	/* Backend MessageId = client MessageId + delta (one owner per backend connection). */
	__s64 msg_id_delta;
	/* Bit n: command n may be forwarded by the kernel. */
	__u32 cmd_mask;
	/* DSR_RELAY_CONN_* */
	__u32 flags;
	/* The connection's negotiated MaxReadSize, MaxWriteSize and MaxTransactSize (the DSR's own
	 * NEGOTIATE reply): a request larger passes (DSR_PASS_INVALID). */
	__u32 max_read;
	__u32 max_write;
	__u32 max_transact;
	/* Responses forwarded to the client and not yet in its socket (they wait in its psock's
	 * queue, which nothing bounds), at most: past it a response passes (DSR_PASS_BEHIND). 0:
	 * no bound. Needs client_base. */
	__u32 max_queued;
	/* The client MessageId the first request forwarded must carry (the client's window is one
	 * range from it when the connection is lent); each next one follows the last. 0: unchecked. */
	__u64 msg_id_next;
	/* What the client socket had been handed (tcpi_bytes_acked + SIOCOUTQ, and a reply user
	 * space writes right after) when the rules went in; the reply direction's `bytes` come on
	 * top. No response is forwarded before the socket has it all (DSR_PASS_AHEAD). 0: unset,
	 * and max_queued unchecked. */
	__u64 client_base;
	/* Journal entries the connection holds (the verdict counts them; user space writes 0)... */
	__u32 journaled;
	/* ...and may hold: at that many the next request passes (DSR_PASS_JOURNAL). 0:
	 * DSR_RELAY_JOURNAL_PER_CONN. */
	__u32 journal_max;
};
_Static_assert(sizeof(struct dsr_relay_conn) == 56, "struct dsr_relay_conn");

/* Map relay_sessions (hash, DSR_RELAY_MAX_SESSIONS entries): this -> the SessionId for the peer
 * (__u64). */
struct dsr_relay_session_key {
	__u32 conn;
	/* DSR_RELAY_DIR_* of the socket the SessionId is seen on. */
	__u32 dir;
	__u64 session_id;
};
_Static_assert(sizeof(struct dsr_relay_session_key) == 16, "struct dsr_relay_session_key");

/* Map relay_trees (hash, DSR_RELAY_MAX_TREES entries): this -> the TreeId for the peer (__u32). */
struct dsr_relay_tree_key {
	__u32 conn;
	/* DSR_RELAY_DIR_* of the socket the TreeId is seen on. */
	__u32 dir;
	__u32 tree_id;
	__u32 pad;
};
_Static_assert(sizeof(struct dsr_relay_tree_key) == 16, "struct dsr_relay_tree_key");

/* Map relay_files (hash, DSR_RELAY_MAX_FILES entries): a FileId the client holds on a connection
 * -> struct dsr_relay_file_id, the server's FileId for it. Requests only. */
struct dsr_relay_file_key {
	__u32 conn;
	__u32 pad;
	__u64 persistent;
	/* The FileId's Volatile half (volatile is a C keyword). */
	__u64 volatile_;
};
_Static_assert(sizeof(struct dsr_relay_file_key) == 24, "struct dsr_relay_file_key");

struct dsr_relay_file_id {
	__u64 persistent;
	__u64 volatile_;
};
_Static_assert(sizeof(struct dsr_relay_file_id) == 16, "struct dsr_relay_file_id");

/* Map relay_events (ring buffer, DSR_RELAY_EVENTS_BYTES): one record when a direction turns
 * sticky, and one when an skb carries the peer's FIN, so user space needs no EPOLLIN on
 * offloaded sockets (the kernel wakes a verdict socket's reader after every batch of skbs, the
 * ones it forwarded too). */
struct dsr_relay_event {
	__u32 conn;
	/* DSR_RELAY_DIR_* */
	__u32 dir;
	/* DSR_PASS_* that made the direction sticky; DSR_PASS_NONE: the peer's FIN. */
	__u32 reason;
	__u32 pad;
};
_Static_assert(sizeof(struct dsr_relay_event) == 16, "struct dsr_relay_event");

/* ---- The request journal (DSR_RELAY_CONN_JOURNAL) --------------------------------------
 * Every request frame the verdict forwards on a journaled connection is copied, as it goes to
 * the server (ids rewritten, NetBIOS prefix included), into a slot of relay_journal, and stays
 * there until the verdict forwards its final response (not an interim one) or user space lets
 * it go. A server that dies with requests unanswered leaves their frames here for user space to
 * replay on another server. A frame of at most DSR_RELAY_JOURNAL_SMALL_FRAME_MAX bytes (a READ,
 * FLUSH or QUERY_INFO request) takes a small slot, from relay_journal_small, while one is free;
 * others (a WRITE) take one of relay_journal's 1 MiB slots. Slot numbers: below
 * DSR_RELAY_JOURNAL_SMALL_BASE are relay_journal's, DSR_RELAY_JOURNAL_SMALL_BASE + i is
 * relay_journal_small's i. Free slots wait in the queues relay_journal_free and
 * relay_journal_small_free (user space fills them at load); relay_journal_index finds a
 * request's slot by its connection and the MessageId the server saw. Whoever deletes an index
 * entry (the verdict after a final response, or user space) pushes its slot back. One
 * connection holds at most dsr_relay_conn.journal_max entries (DSR_RELAY_JOURNAL_PER_CONN
 * unless set), so that one client cannot take every slot, and with the strparser (no
 * DSR_PASS_BEHIND) what waits for a client stays bounded. CANCEL is not journaled (it has
 * no response). The cut-through verdict copies a frame skb by skb (dsr_relay_sock.journal_*);
 * `copied` < `len` means the rest of the frame did not pass through the verdict (it let go of
 * the connection first).
 */
/* relay_journal's slots unless user space loads the object with another max_entries for it
 * (config relay.journalWriteSlots), at most DSR_RELAY_JOURNAL_SLOTS_MAX. */
#define DSR_RELAY_JOURNAL_SLOTS 64
#define DSR_RELAY_JOURNAL_SLOTS_MAX 1024
/* Slot number of relay_journal_small's slot 0: past every relay_journal slot. */
#define DSR_RELAY_JOURNAL_SMALL_BASE 1024
#define DSR_RELAY_JOURNAL_SMALL_SLOTS 4096
#define DSR_RELAY_JOURNAL_PER_CONN 64
/* The longest frame a small slot takes (prefix included): a READ request is 117 bytes. */
#define DSR_RELAY_JOURNAL_SMALL_FRAME_MAX 512
/* A small slot's data[]: its FRAME_MAX and as much slack (the verifier bounds a copy's offset
 * and length apart). */
#define DSR_RELAY_JOURNAL_SMALL_BYTES 1024
/* The longest frame journaled (prefix included): a 1 MiB READ, WRITE or QUERY_INFO with its
 * headers; a longer one passes (DSR_PASS_JOURNAL). */
#define DSR_RELAY_JOURNAL_FRAME_MAX 1052672
/* Bytes copied per bpf_skb_load_bytes. */
#define DSR_RELAY_JOURNAL_CHUNK 16384
/* data[]'s size: FRAME_MAX and a chunk of slack, since the verifier bounds a copy's offset and
 * length apart (the last copy may start at FRAME_MAX - 1 as far as it knows). */
#define DSR_RELAY_JOURNAL_BYTES 1069056

/* Map relay_journal (array, DSR_RELAY_JOURNAL_SLOTS entries unless resized at load): slot
 * (__u32) -> this. */
struct dsr_relay_journal {
	/* Key of relay_conns. */
	__u32 conn;
	/* The whole NetBIOS frame's length, its 4-byte prefix included. */
	__u32 len;
	/* Bytes of it in data so far. */
	__u32 copied;
	__u32 pad;
	/* The request's MessageId as forwarded (the server's). */
	__u64 msg_id;
	__u8 data[DSR_RELAY_JOURNAL_BYTES];
};
_Static_assert(sizeof(struct dsr_relay_journal) == 24 + DSR_RELAY_JOURNAL_BYTES, "struct dsr_relay_journal");
_Static_assert(DSR_RELAY_JOURNAL_BYTES == DSR_RELAY_JOURNAL_FRAME_MAX + DSR_RELAY_JOURNAL_CHUNK, "journal slack");

/* Map relay_journal_small (array, DSR_RELAY_JOURNAL_SMALL_SLOTS entries): slot -
 * DSR_RELAY_JOURNAL_SMALL_BASE (__u32) -> this; the fields are dsr_relay_journal's. */
struct dsr_relay_journal_small {
	__u32 conn;
	__u32 len;
	__u32 copied;
	__u32 pad;
	__u64 msg_id;
	__u8 data[DSR_RELAY_JOURNAL_SMALL_BYTES];
};
_Static_assert(sizeof(struct dsr_relay_journal_small) == 24 + DSR_RELAY_JOURNAL_SMALL_BYTES, "struct dsr_relay_journal_small");
_Static_assert(DSR_RELAY_JOURNAL_SMALL_BYTES == 2 * DSR_RELAY_JOURNAL_SMALL_FRAME_MAX, "small journal slack");
_Static_assert(DSR_RELAY_JOURNAL_SMALL_BASE >= DSR_RELAY_JOURNAL_SLOTS_MAX, "small slot numbers");

/* Map relay_journal_index (hash, DSR_RELAY_JOURNAL_SLOTS_MAX + DSR_RELAY_JOURNAL_SMALL_SLOTS
 * entries): this -> slot (__u32). */
struct dsr_relay_journal_key {
	__u32 conn;
	__u32 pad;
	/* The request's MessageId as the server sees it. */
	__u64 msg_id;
};
_Static_assert(sizeof(struct dsr_relay_journal_key) == 16, "struct dsr_relay_journal_key");

#endif /* DSR_ABI_H */
