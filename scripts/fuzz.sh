#!/usr/bin/env bash
# Fuzzes the message decoder for $1 seconds (default 60), seeded with the spec's 33 examples.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/decode
n=0
while IFS= read -r line; do
    n=$((n + 1))
    printf '%s' "$line" > "fuzz/corpus/decode/example-$n.json"
done < crates/ebadge-model/tests/vectors/examples.jsonl
export RUSTC_BOOTSTRAP=1
cargo fuzz run decode fuzz/corpus/decode -- -max_total_time="$seconds" -max_len=4096 2>&1 | tee fuzz/last-run.log | grep -E "^#[0-9]+.*(DONE|pulse)|Done|ERROR|panicked" || true
grep -E "^Done [0-9]+ runs" fuzz/last-run.log
