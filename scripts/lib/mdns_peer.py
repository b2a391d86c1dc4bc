#!/usr/bin/env python3
"""Test peers on the mDNS group of one interface, beside the host's own
responder (SO_REUSEADDR): a socket joined to 224.0.0.251 and ff02::fb on
port 5353. Run them inside a test host's network namespace, never on the
machine's own interfaces.

  count IFACE NAME SECONDS
      counts the queries that ask for NAME; prints "packets N asks M"
      (asks: distinct query IDs, one question sent over IPv4 and IPv6
      being one ask).
  junk IFACE NAME ADDRESS SECONDS
      answers each query for NAME by unicast to its port (as RFC 6762 6.7
      says for one-shot queries), first with packets an asker must ignore
      (noise, another ID, another name, a compression loop, a truncated
      record, a goodbye), then with ADDRESS (A, TTL 5).
"""
import select
import socket
import struct
import sys
import time


def question_names(packet):
    """The names of a query's questions, lowercase, or [] for anything else."""
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


def group_sockets(iface):
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
    return [v4, v6]


def queries(iface, name, seconds):
    """Each query for `name` within `seconds`: (packet, socket, sender)."""
    sockets = group_sockets(iface)
    print("listening", flush=True)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(sockets, [], [], left)
        for s in ready:
            packet, sender = s.recvfrom(9000)
            if name in question_names(packet):
                yield packet, s, sender


def wire_name(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def response(qid, records, questions=b"", qdcount=0):
    head = struct.pack("!HHHHHH", qid, 0x8400, qdcount, len(records), 0, 0)
    return head + questions + b"".join(records)


def a_record(name, address, ttl, raw_name=None):
    return ((raw_name or wire_name(name)) + struct.pack("!HHIH", 1, 0x8001, ttl, 4)
            + socket.inet_aton(address))


def junk(iface, name, address, seconds):
    for packet, s, sender in queries(iface, name, seconds):
        qid = struct.unpack("!H", packet[:2])[0]
        good = a_record(name, address, 5)
        for bad in [
            b"\x00" * 3,
            bytes(range(256)) * 2,
            response(qid ^ 0x5555, [good]),
            response(qid, [a_record("other." + name, "192.0.2.250", 5)]),
            response(qid, [a_record(name, "192.0.2.251", 5, raw_name=b"\xc0\x0c")]),
            response(qid, [a_record(name, "192.0.2.252", 5)])[:-3],
            response(qid, [a_record(name, "192.0.2.253", 0)]),
            packet,
        ]:
            s.sendto(bad, sender)
        s.sendto(response(qid, [good]), sender)


def count(iface, name, seconds):
    packets, ids = 0, set()
    for packet, _, _ in queries(iface, name, seconds):
        packets += 1
        ids.add(packet[:2])
    print(f"packets {packets} asks {len(ids)}", flush=True)


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    if verb == "count":
        count(args[0], args[1].lower(), float(args[2]))
    elif verb == "junk":
        junk(args[0], args[1].lower(), args[2], float(args[3]))
    else:
        sys.exit(__doc__)
