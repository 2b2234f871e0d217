#!/bin/sh
# The HEH agent as a client of the conformance kit: writes the agent's configuration from the
# kit's EBADGE_* variables (a fresh durable outbox beside it) and runs the agent with a device
# program.
#
#   ebadge conformance heh --command 'docs/partners/agent.sh target/release/ebadge-heh docs/partners/agent_device.py'
set -eu
agent=$1 device=$2
dir=$(dirname "$EBADGE_PROFILE")
rm -f "$dir"/outbox.sqlite*   # with its -wal and -shm: a stale WAL beside a new file is an I/O error
cat >"$dir/heh.toml" <<TOML
name = "$EBADGE_NAME"
controller = "$EBADGE_CONTROLLER"

[bus]
amqps_url = "$EBADGE_URL"
ca = "$EBADGE_CA"
certs = "$(dirname "$EBADGE_CERT")"

[outbox]
path = "$dir/outbox.sqlite"

[device]
command = ["/usr/bin/python3", "$(realpath "$device")"]

[failsafe]
after_seconds = 60
behaviour = "end"
TOML
exec "$agent" --config "$dir/heh.toml"
