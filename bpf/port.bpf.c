/*
 * The storage switch's port filter: tc programs on each storage port spN (tcx links, ingress
 * and egress). A port carries exactly one server (map dsr_ports); only ARP and IPv4 between
 * that server and the DSR's storage address pass (plus, while the lab asks for it, IPv4 between
 * the server and the direct-path peer, and on a port whose isolation is off, frames that fail
 * only the address checks: each counted under its own reason). Every frame is counted per (server, port,
 * direction, reason) in dsr_port_stats: the resource manager's load figures and the drops.
 * Layouts and reason codes: include/dsr_abi.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "dsr_abi.h"

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ARPHRD_ETHER 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DSR_PORT_IFS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} dsr_port_ifs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DSR_PORT_MAX);
	__type(key, __u32);
	__type(value, struct dsr_port);
} dsr_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dsr_switch);
} dsr_switch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, DSR_PORT_STATS_MAX);
	__type(key, struct dsr_port_stat_key);
	__type(value, struct dsr_port_stat);
} dsr_port_stats SEC(".maps");

/* ARP for IPv4 over Ethernet (RFC 826): the addresses sit unaligned, hence packed. */
struct arp_ipv4 {
	__be16 hrd;
	__be16 pro;
	__u8 hln;
	__u8 pln;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

static __always_inline bool mac_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

static __always_inline bool mac_unset(const __u8 *m)
{
	return (m[0] | m[1] | m[2] | m[3] | m[4] | m[5]) == 0;
}

/* The frame's reason code: ingress frames must come from the port's server and go to the DSR,
 * egress frames the other way round. A port without a pinned MAC checks no source MAC.
 * bpf_skb_load_bytes copes with non-linear skbs. */
static __always_inline bool is_dsr(const struct dsr_switch *sw, __be32 a)
{
	return a == sw->addr || (sw->probe && a == sw->probe);
}

/* Source and destination fit the direction: the port's server to one of the DSR's addresses
 * (ingress), or back (egress). */
static __always_inline bool src_ok(const struct dsr_port *p, const struct dsr_switch *sw, __u8 dir, __be32 a)
{
	return dir == DSR_DIR_INGRESS ? a == p->addr : is_dsr(sw, a);
}

static __always_inline bool dst_ok(const struct dsr_port *p, const struct dsr_switch *sw, __u8 dir, __be32 a)
{
	return dir == DSR_DIR_INGRESS ? is_dsr(sw, a) : a == p->addr;
}

static __always_inline __u8 classify(struct __sk_buff *skb, const struct dsr_port *p, const struct dsr_switch *sw, __u8 dir)
{
	bool check_mac = dir == DSR_DIR_INGRESS && !mac_unset(p->mac);
	struct ethhdr eth;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return DSR_PORT_DROP_MALFORMED;
	if (check_mac && !mac_eq(eth.h_source, p->mac))
		return DSR_PORT_DROP_SRC_MAC;

	if (eth.h_proto == bpf_htons(ETH_P_ARP)) {
		struct arp_ipv4 arp;

		if (bpf_skb_load_bytes(skb, sizeof(eth), &arp, sizeof(arp)))
			return DSR_PORT_DROP_MALFORMED;
		if (arp.hrd != bpf_htons(ARPHRD_ETHER) || arp.pro != bpf_htons(ETH_P_IP) || arp.hln != 6 || arp.pln != 4)
			return DSR_PORT_DROP_MALFORMED;
		if (check_mac && !mac_eq(arp.sha, p->mac))
			return DSR_PORT_DROP_SRC_MAC;
		if (!src_ok(p, sw, dir, arp.spa))
			return DSR_PORT_DROP_SRC_IP;
		if (!dst_ok(p, sw, dir, arp.tpa))
			return DSR_PORT_DROP_DST_IP;
		return DSR_PORT_ALLOWED;
	}
	if (eth.h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, sizeof(eth), &ip, sizeof(ip)))
			return DSR_PORT_DROP_MALFORMED;
		if (ip.version != 4 || ip.ihl < 5)
			return DSR_PORT_DROP_MALFORMED;
		if (src_ok(p, sw, dir, ip.saddr) && dst_ok(p, sw, dir, ip.daddr))
			return DSR_PORT_ALLOWED;
		/* The lab's direct path: the port's server and the routed peer, either way. */
		if (sw->direct_mask) {
			__be32 server = dir == DSR_DIR_INGRESS ? ip.saddr : ip.daddr;
			__be32 peer = dir == DSR_DIR_INGRESS ? ip.daddr : ip.saddr;

			if (server == p->addr && (peer & sw->direct_mask) == sw->direct_net)
				return DSR_PORT_DIRECT;
		}
		if (!src_ok(p, sw, dir, ip.saddr))
			return DSR_PORT_DROP_SRC_IP;
		return DSR_PORT_DROP_DST_IP;
	}
	return DSR_PORT_DROP_PROTO;
}

static __always_inline void count(struct __sk_buff *skb, __u32 server, __u16 port, __u8 dir, __u8 reason)
{
	struct dsr_port_stat_key key = { .server = server, .port = port, .dir = dir, .reason = reason };
	struct dsr_port_stat first = { .packets = 1, .bytes = skb->len };
	struct dsr_port_stat *s;

	/* Per-CPU values: plain adds are safe. A racing first insert on another CPU makes ours
	 * fail with EEXIST; the second lookup then finds its entry. */
	s = bpf_map_lookup_elem(&dsr_port_stats, &key);
	if (!s && bpf_map_update_elem(&dsr_port_stats, &key, &first, BPF_NOEXIST) == 0)
		return;
	if (!s)
		s = bpf_map_lookup_elem(&dsr_port_stats, &key);
	if (s) {
		s->packets++;
		s->bytes += skb->len;
	}
}

static __always_inline int port_filter(struct __sk_buff *skb, __u8 dir)
{
	__u32 ifindex = skb->ifindex, zero = 0;
	const struct dsr_switch *sw;
	const struct dsr_port *p;
	__u32 *port;
	__u8 reason;

	port = bpf_map_lookup_elem(&dsr_port_ifs, &ifindex);
	if (!port) {
		/* Attached but not mapped: the control plane never does this; fail closed. */
		count(skb, 0, DSR_PORT_UNKNOWN, dir, DSR_PORT_DROP_UNASSIGNED);
		return DSR_TC_DROP;
	}
	p = bpf_map_lookup_elem(&dsr_ports, port);
	sw = bpf_map_lookup_elem(&dsr_switch, &zero);
	/* A port with no server is closed, unless it is a spare port left open (DSR_PORT_F_OPEN with
	 * server 0) for a new server to plug in and announce itself. */
	if (!p || !sw || (p->server == 0 && !(p->flags & DSR_PORT_F_OPEN)))
		reason = DSR_PORT_DROP_UNASSIGNED;
	else
		reason = classify(skb, p, sw, dir);
	if ((p && (p->flags & DSR_PORT_F_OPEN)) && (reason == DSR_PORT_DROP_SRC_IP || reason == DSR_PORT_DROP_DST_IP))
		reason = DSR_PORT_OPEN;
	count(skb, p ? p->server : 0, *port, dir, reason);
	return reason == DSR_PORT_ALLOWED || reason == DSR_PORT_DIRECT || reason == DSR_PORT_OPEN ? DSR_TC_NEXT : DSR_TC_DROP;
}

SEC("tc")
int dsr_port_ingress(struct __sk_buff *skb)
{
	return port_filter(skb, DSR_DIR_INGRESS);
}

SEC("tc")
int dsr_port_egress(struct __sk_buff *skb)
{
	return port_filter(skb, DSR_DIR_EGRESS);
}

/* GPL-compatible, as the kernel requires for GPL-only helpers and kfuncs. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
