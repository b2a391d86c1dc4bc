#!/usr/bin/python3
"""A second, independent mDNS responder for the tests: python-zeroconf
(Debian's python3-zeroconf, hence Debian's python3) registering a service
whose host NAME.local has ADDRESS, answering on that address's interface
only, until SIGTERM or SECONDS. Prints "registered" once it answers.
Usage: zeroconf_host.py NAME ADDRESS PORT SECONDS"""
import signal
import socket
import sys
import time

from zeroconf import IPVersion, ServiceInfo, Zeroconf


def main():
    name, address, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    info = ServiceInfo("_redis._tcp.local.", f"{name}._redis._tcp.local.", port=port,
                       addresses=[socket.inet_aton(address)], server=f"{name}.local.")
    zc.register_service(info)
    print("registered", flush=True)
    try:
        time.sleep(seconds)
    finally:
        zc.unregister_service(info)
        zc.close()


if __name__ == "__main__":
    main()
