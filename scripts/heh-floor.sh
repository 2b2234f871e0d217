#!/usr/bin/env bash
# The floor of an HEH's CPU per message on this machine, the peer figure for `ebadge bench heh`:
# a C program that makes only the system calls a confirmed send needs (a line from the device's
# pipe, one 317-byte write to a TCP peer on loopback, the peer's 43-byte answer read back), with
# the benchmark's device at 10 lines/s. No TLS, no AMQP, no JSON. Prints its CPU per message
# (the scheduler's run time, /proc/PID/schedstat) over 60 s after a 5-s warm-up.
# Usage: scripts/heh-floor.sh   (needs gcc and the release `ebadge`: cargo build --release -p ebadge)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
gcc -O2 -o "$work/floor" scripts/heh-floor/floor.c
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/heh-floor/peer.py "$port" &
peer=$!
trap 'kill $peer 2>/dev/null; pkill -f "$work/floor" 2>/dev/null; true' EXIT
sleep 1
# The device ends when its standard input closes: `sleep` holds it open.
sleep 100 | target/release/ebadge bench device --rate 10 --count 700 | "$work/floor" "$port" &
sleep 5
pid=$(pgrep -n -f "$work/floor")
before=$(awk '{print $1}' "/proc/$pid/schedstat")
sleep 60
after=$(awk '{print $1}' "/proc/$pid/schedstat")
echo "floor: $(( (after - before) / 600 / 1000 )) µs of CPU per message (600 messages, 60 s)"
