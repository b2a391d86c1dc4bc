#!/usr/bin/env bash
# Churn through a running ambassador for N minutes, verifying every payload and
# sampling threads, descriptors, RSS and CLOSE-WAIT sockets (see soak.py).
# Usage: scripts/soak.sh --minutes N [--workers N] [--bin PATH]
exec python3 "$(dirname "$0")/soak.py" "$@"
