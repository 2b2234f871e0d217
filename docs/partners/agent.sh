#!/bin/sh
# The HEH agent as a client of the conformance kit: writes the agent's configuration from the
# kit's EBADGE_* variables (a fresh durable outbox beside it) and runs the agent with a device
# program.
#
#   agent.sh AGENT DEVICE-COMMAND...
#   ebadge conformance heh --command 'docs/partners/agent.sh target/release/ebadge-heh python3 docs/partners/agent_device.py'
set -eu
: "${EBADGE_KIT:?agent.sh is for the conformance kit: it rewrites heh.toml and removes the outbox beside EBADGE_PROFILE}"
agent=$1
shift
# The device's command as a TOML array; an argument that names a file, by its full path.
device=""
for part in "$@"; do
    [ -e "$part" ] && part=$(realpath "$part")
    device="$device${device:+, }\"$part\""
done
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
command = [$device]

[failsafe]
after_seconds = 60
behaviour = "end"
TOML
exec "$agent" --config "$dir/heh.toml"
