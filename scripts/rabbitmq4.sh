#!/bin/bash
# Runs a command with Debian 13's RabbitMQ 4.0 in place of this system's, for `ebadge broker up`
# and everything that calls it (tests, benchmarks):
#
#   scripts/rabbitmq4.sh COMMAND [ARGS...]
#   scripts/rabbitmq4.sh make unit TEST_DIR=target/tmp-rabbitmq4     (what `make test-rabbitmq4` runs)
#
# On Debian 13 and later the system's own rabbitmq-server is 4.x: the command just runs. On
# Debian 12 (RabbitMQ 3.10) a minimal Debian 13 tree with its rabbitmq-server is made once with
# debootstrap in $ROOT (default /var/lib/ebadge-trixie, about 400 MB, a minute from Debian's
# mirror), and the command runs with EBADGE_RABBITMQ_SERVER and EBADGE_RABBITMQCTL naming
# wrappers that run 4.0 inside it. The broker directories must have the same path inside and
# out, so /tmp and this repository are bind-mounted into the tree while the command runs, and
# unmounted after it: the command must stop the brokers it starts (`make unit` does), or their
# nodes outlive the mounts they need. Needs root (apt-get, debootstrap, chroot, mount), like
# `make deps`.
set -euo pipefail
if [ $# -eq 0 ]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
version=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || true)
if [[ $version == [4-9]* ]]; then
    echo "rabbitmq-server $version is already 4.x: running the command with it" >&2
    exec "$@"
fi
root=${ROOT:-/var/lib/ebadge-trixie}
repo=$(cd "$(dirname "$0")/.." && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ ! -x "$root/usr/lib/rabbitmq/bin/rabbitmq-server" ]; then
    command -v debootstrap >/dev/null || apt-get install -y debootstrap
    echo "making a Debian 13 tree with rabbitmq-server in $root (once) …" >&2
    # A mirror hiccup should not fail a whole CI run: one more try from scratch.
    for attempt in 1 2; do
        rm -rf "$root"
        if debootstrap --variant=minbase --include=rabbitmq-server trixie "$root" "$mirror" \
            >"/tmp/ebadge-debootstrap.log" 2>&1; then
            break
        fi
        [ "$attempt" = 2 ] && {
            echo "debootstrap failed twice; its log: /tmp/ebadge-debootstrap.log" >&2
            tail -5 /tmp/ebadge-debootstrap.log >&2
            exit 1
        }
    done
fi
# The nodes resolve this host's name (RabbitMQ node names are name@localhost).
cp /etc/hosts "$root/etc/hosts"
mounted=()
unmount() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}"; done
}
trap unmount EXIT
for path in /proc /sys /dev /dev/pts /tmp "$repo"; do
    mkdir -p "$root$path"
    if ! mountpoint -q "$root$path"; then
        mount --bind "$path" "$root$path"
        mounted+=("$root$path")
    fi
done
bin=$root/ebadge-bin
mkdir -p "$bin"
for tool in rabbitmq-server rabbitmqctl; do
    printf '#!/bin/sh\nexec chroot %s /usr/lib/rabbitmq/bin/%s "$@"\n' "$root" "$tool" >"$bin/$tool"
    chmod +x "$bin/$tool"
done
echo "rabbitmq-server $(chroot "$root" dpkg-query -W -f '${Version}' rabbitmq-server) from $root" >&2
EBADGE_RABBITMQ_SERVER=$bin/rabbitmq-server EBADGE_RABBITMQCTL=$bin/rabbitmqctl "$@"
