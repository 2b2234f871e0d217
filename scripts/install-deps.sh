#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a fresh Debian machine, and nothing twice.
# Each later capability (the broker, haproxy, keepalived) adds its packages to APT_PACKAGES.
set -euo pipefail

# Debian packages: "command-or-file-that-proves-it-is-there:package". python3-pika is the
# interoperability tests' peer: the seed's own stack, run by Debian's /usr/bin/python3.
APT_PACKAGES=(
    "/usr/lib/rabbitmq/bin/rabbitmq-server:rabbitmq-server"
    "/usr/sbin/haproxy:haproxy"
    "/usr/sbin/keepalived:keepalived"
    "/usr/sbin/ip:iproute2"
    "/usr/lib/python3/dist-packages/pika/__init__.py:python3-pika"
    "/usr/bin/promtool:prometheus"
    # The Python package's virtual environment (.venv, scripts/python.sh) and its headers.
    "/usr/share/doc/python3-venv/copyright:python3-venv"
    "/usr/share/doc/python3-dev/copyright:python3-dev"
    # The HEH agent's cross builds (`make cross`) and the ARM agent's test under qemu-user.
    "/usr/bin/aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu"
    "/usr/bin/arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf"
    "/usr/bin/x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64"
    "/usr/bin/qemu-aarch64:qemu-user"
    # The conformance kit: PKCS#12 files for Java and .NET, and the tests' Java HEH on the
    # official RabbitMQ Java client (docs/partners.md).
    "/usr/bin/openssl:openssl"
    "/usr/bin/javac:default-jdk-headless"
    "/usr/share/java/amqp-client.jar:librabbitmq-client-java"
    "/usr/share/java/jackson-databind.jar:libjackson2-databind-java"
)
# Installed without their recommendations: wine64 alone runs the agent's Windows build in the
# tests (crates/ebadge-heh/tests/wine.rs); its recommendations are 80 packages of 32-bit Wine.
APT_BARE_PACKAGES=(
    "/usr/lib/wine/wine64:wine64"
)

need_cmd() {
    command -v "$1" >/dev/null 2>&1
}

if ! need_cmd cargo; then
    echo "install-deps: cargo is missing. Install the Rust toolchain (https://rustup.rs) or 'apt-get install -y cargo rustc', then re-run." >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        if need_cmd rustup; then
            rustup component add "$component"
        else
            echo "install-deps: cargo $component is missing: 'rustup component add $component' or 'apt-get install -y rust-$component'." >&2
            exit 1
        fi
    fi
done

# Installs the packages of entries ("file:package") whose file is missing, with apt-get options
# "$1" (empty, or --no-install-recommends), as root or with sudo.
install_missing() {
    local options=$1
    shift
    local missing=()
    for entry in "$@"; do
        need_cmd "${entry%%:*}" || [ -e "${entry%%:*}" ] || missing+=("${entry#*:}")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ] && ! need_cmd sudo; then
        echo "install-deps: missing packages ${missing[*]}; run 'apt-get install -y $options ${missing[*]}' as root." >&2
        exit 1
    fi
    local SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "install-deps: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086 # $options is empty or one option
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $options "${missing[@]}"
}
install_missing "" "${APT_PACKAGES[@]}"
install_missing --no-install-recommends "${APT_BARE_PACKAGES[@]}"

# Rust's standard library for the cross targets of `make cross`.
CROSS_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf x86_64-pc-windows-gnu)
if need_cmd rustup; then
    installed=$(rustup target list --installed)
    for target in "${CROSS_TARGETS[@]}"; do
        grep -qx "$target" <<<"$installed" || rustup target add "$target"
    done
else
    for target in "${CROSS_TARGETS[@]}"; do
        [ -d "$(rustc --print sysroot)/lib/rustlib/$target" ] || {
            echo "install-deps: the Rust standard library for $target is missing: 'rustup target add $target' (or install it with your toolchain)." >&2
            exit 1
        }
    done
fi
