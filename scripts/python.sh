#!/usr/bin/env bash
# Builds the `ebadge` Python wheel (python/, crates/ebadge-py) with maturin and installs it in the
# project's virtual environment .venv, made with Debian's python3 (python3-venv, python3-dev:
# scripts/install-deps.sh), with the test tools and peers of python/requirements-dev.txt.
#   scripts/python.sh            a debug build (what `make test` runs the Python tests on)
#   scripts/python.sh --release  an optimised build (`make demo`, benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/usr/bin/python3}
VENV=$(realpath -m "${VENV:-.venv}")
WHEELS=$(realpath -m "${WHEELS:-target/wheels}")
profile=()
[ "${1:-}" = "--release" ] && profile=(--release)

if [ ! -x "$VENV/bin/python" ]; then
    echo "python: making the virtual environment $VENV with $PYTHON" >&2
    "$PYTHON" -m venv "$VENV" || {
        echo "python: '$PYTHON -m venv' failed: install Debian's python3-venv ('apt-get install -y python3-venv') or set PYTHON" >&2
        exit 1
    }
fi
# The requirements are installed again only when they change.
stamp="$VENV/.requirements.sha256"
wanted=$(sha256sum python/requirements-dev.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-dev.txt
    echo "$wanted" >"$stamp"
fi

rm -rf "$WHEELS"
(cd python && "$VENV/bin/maturin" build -q "${profile[@]}" -o "$WHEELS" --interpreter "$VENV/bin/python")
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEELS"/ebadge-*.whl
echo "python: $("$VENV/bin/python" -c 'import ebadge; print("ebadge", ebadge.__version__, "in", ebadge.__file__)')" >&2
