#!/usr/bin/env bash
# Instructions per message of the HEH agent, counted by callgrind (user space only; the kernel's
# share is not counted). Two runs of the same length (25 s, the same start-up and heartbeats):
# 100 reports at 10/s and 200 at 20/s; the difference over 100 is the cost of one message.
# Needs a broker in DIR provisioned for the benchmarks (`ebadge bench heh --dir DIR` once) and
# the release agent (`cargo build --release -p ebadge-heh`).
# Usage: scripts/heh-instructions.sh [DIR]   (default .ebadge)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath "${1:-.ebadge}")
agent=$(realpath target/release/ebadge-heh)
device=$(realpath target/release/ebadge 2>/dev/null || realpath target/debug/ebadge)
url=$(sed -n 's/^amqps_url = "\(.*\)"/\1/p' "$dir/profile.toml")
work=$(mktemp -d)
total() { grep -o 'I   refs: *[0-9,]*' "$1" | tr -dc '0-9'; }
for run in "10 100" "20 200"; do
    set -- $run
    cat > "$work/heh$2.toml" <<TOML
name = "heh-0b0000000000"
controller = "bench-vpp"
[bus]
amqps_url = "$url"
ca = "$dir/pki/ca.pem"
certs = "$dir/pki/clients"
[device]
command = ["$device", "bench", "device", "--rate", "$1", "--count", "$2"]
[failsafe]
after_seconds = 60
behaviour = "end"
TOML
    timeout -s TERM 25 valgrind --tool=callgrind --callgrind-out-file="$work/cg.$2" \
        "$agent" --config "$work/heh$2.toml" > "$work/log.$2" 2>&1 || true
done
echo "callgrind files: $work/cg.100 $work/cg.200" >&2
a=$(total "$work/log.100"); b=$(total "$work/log.200")
echo "100 reports: $a instructions; 200 reports: $b; per report: $(( (b - a) / 100 ))"
