#!/usr/bin/env python3
"""Counts the mDNS queries on one interface that ask for a name: a socket
joined to 224.0.0.251 and ff02::fb on port 5353 beside the host's own
responder (SO_REUSEADDR), for a given time. Prints "packets N asks M"
(asks: distinct query IDs, a query sent over IPv4 and IPv6 being one ask).
Run it inside the test host's network namespace, never on the machine's
own interfaces.
Usage: mdns_count.py IFACE NAME SECONDS"""
import select
import socket
import struct
import sys
import time


def question_names(packet):
    """The names of the questions, lowercase, or [] for anything else."""
    if len(packet) < 12 or packet[2] & 0x80:
        return []
    count = struct.unpack("!H", packet[4:6])[0]
    at, names = 12, []
    for _ in range(min(count, 16)):
        labels = []
        while at < len(packet) and packet[at] != 0:
            if packet[at] >= 0xC0:  # a pointer: to the first question's name
                labels = names[0].split(".") if names else []
                at += 1
                break
            labels.append(packet[at + 1:at + 1 + packet[at]].decode("ascii", "replace").lower())
            at += 1 + packet[at]
        at += 1 + 4
        names.append(".".join(labels))
    return names


def main():
    iface, name, seconds = sys.argv[1], sys.argv[2].lower(), float(sys.argv[3])
    index = socket.if_nametoindex(iface)
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    v4.bind(("", 5353))
    v4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                  struct.pack("4s4si", socket.inet_aton("224.0.0.251"), b"\0" * 4, index))
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v6.bind(("", 5353))
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                  socket.inet_pton(socket.AF_INET6, "ff02::fb") + struct.pack("@I", index))
    print("listening", flush=True)
    packets, ids = 0, set()
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([v4, v6], [], [], left)
        for s in ready:
            packet, _ = s.recvfrom(9000)
            if name in question_names(packet):
                packets += 1
                ids.add(packet[:2])
    print(f"packets {packets} asks {len(ids)}", flush=True)


if __name__ == "__main__":
    main()
