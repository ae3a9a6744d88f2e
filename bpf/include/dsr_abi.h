/*
 * dsr_abi.h: everything the BPF programs and the TypeScript control plane share: map key and
 * value structs, reason codes and constants. src/offload/abi.ts mirrors this file; keep the two
 * in sync (test/offload/abi.test.ts compares the struct layouts with the BTF of the compiled
 * objects and every numeric DSR_ macro here with abi.ts).
 *
 * Rules: fixed-width types only, explicit padding (named pad*, always zero), a _Static_assert
 * on every struct size, integers in host byte order unless the field says __be, constants as
 * #defines of plain decimal integers (the test reads them with clang -dM -E). The includer
 * provides __u8.. __u64 and __be32 (vmlinux.h in BPF programs, <linux/types.h> in user space).
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

/* ---- Pass reasons of the SMB2 relay -----------------------------------------------------
 * Why a message went to user space instead of being forwarded by the kernel: PassReason in
 * src/offload/offload.ts, in the same order. 0 = forwarded by the kernel.
 */
#define DSR_PASS_NONE 0
#define DSR_PASS_SIGNED 1
#define DSR_PASS_BACKEND_SIGNED 2
#define DSR_PASS_ENCRYPTED 3
#define DSR_PASS_NO_KEY 4
#define DSR_PASS_LOCAL_TREE 5
#define DSR_PASS_REASON_MAX 6

/* ========================================================================================== */
/* SMB2 relay (sk_skb) */
/* (owned by the relay: its map structs, constants and reason codes go here) */


#endif /* DSR_ABI_H */
