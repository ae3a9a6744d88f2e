#!/usr/bin/env python3
"""A TCP client whose second send starts before the end of its first: the retransmission cut
differently that TCP queues whole on the receiver (tcp_data_queue's partial packet).

    tcp-rewind.py HOST PORT FIRST_HEX SECOND_HEX OVERLAP

Connects, waits for a line on stdin (the receiver is ready), sends FIRST, waits for another
(the receiver has it), then rebuilds the
connection with TCP_REPAIR (as CRIU restores one) with its send sequence OVERLAP bytes back and
sends FIRST's last OVERLAP bytes and SECOND in one segment. Prints "sent", then waits for a line
on stdin before it closes. Needs CAP_NET_ADMIN (TCP_REPAIR).
"""
import socket
import struct
import sys

TCP_REPAIR = 19
TCP_REPAIR_QUEUE = 20
TCP_QUEUE_SEQ = 21
TCP_REPAIR_OPTIONS = 22
TCP_TIMESTAMP = 24
TCP_REPAIR_WINDOW = 29
TCP_RECV_QUEUE = 1
TCP_SEND_QUEUE = 2
TCPOPT_MSS = 2
TCPOPT_WINDOW = 3
TCPOPT_TIMESTAMP = 8
TCP = socket.IPPROTO_TCP


def queue_seq(s, queue):
    s.setsockopt(TCP, TCP_REPAIR_QUEUE, queue)
    return struct.unpack("I", s.getsockopt(TCP, TCP_QUEUE_SEQ, 4))[0]


def main():
    host, port, first, second, overlap = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4]), int(sys.argv[5])
    s = socket.create_connection((host, port))
    s.setsockopt(TCP, socket.TCP_NODELAY, 1)
    sys.stdin.readline()
    s.sendall(first)
    sys.stdin.readline()
    local = s.getsockname()
    info = s.getsockopt(TCP, socket.TCP_INFO, 104)
    # struct tcp_info: byte 6 holds tcpi_snd_wscale (low 4 bits) and tcpi_rcv_wscale; tcpi_snd_mss at 16.
    snd_wscale, rcv_wscale = info[6] & 0x0F, info[6] >> 4
    mss = struct.unpack_from("I", info, 16)[0]
    s.setsockopt(TCP, TCP_REPAIR, 1)
    snd = queue_seq(s, TCP_SEND_QUEUE)
    rcv = queue_seq(s, TCP_RECV_QUEUE)
    stamp = struct.unpack("I", s.getsockopt(TCP, TCP_TIMESTAMP, 4))[0]
    window = s.getsockopt(TCP, TCP_REPAIR_WINDOW, 20)
    s.close()  # in repair mode: no FIN, no RST

    r = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    r.setsockopt(TCP, TCP_REPAIR, 1)
    r.setsockopt(TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
    r.setsockopt(TCP, TCP_QUEUE_SEQ, struct.pack("I", (snd - overlap) & 0xFFFFFFFF))
    r.setsockopt(TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
    r.setsockopt(TCP, TCP_QUEUE_SEQ, struct.pack("I", rcv))
    r.bind(local)
    r.connect((host, port))
    opts = struct.pack("II", TCPOPT_MSS, mss) + struct.pack("II", TCPOPT_WINDOW, snd_wscale | (rcv_wscale << 16)) + struct.pack("II", TCPOPT_TIMESTAMP, 0)
    r.setsockopt(TCP, TCP_REPAIR_OPTIONS, opts)
    r.setsockopt(TCP, TCP_TIMESTAMP, struct.pack("I", stamp))
    r.setsockopt(TCP, TCP_REPAIR_WINDOW, window)
    r.setsockopt(TCP, TCP_REPAIR, 0)
    r.setsockopt(TCP, socket.TCP_NODELAY, 1)
    r.sendall(first[len(first) - overlap :] + second)
    print("sent", flush=True)
    sys.stdin.readline()
    r.close()


main()
