#!/usr/bin/env bash
# What client metrics cost on the hot path (docs/benchmarks.md, "Metrics"): the ingest and HEH
# benchmarks alternately without and with metrics (EBADGE_BENCH_METRICS: the measured client
# watched, served and scraped every second), ROUNDS times each, on the broker in DIR; prints
# each run as a JSON line, then the medians side by side. The HEH sends HEH_RATE reports a
# second (default 500): at D3.2.3's 10 a second its CPU is a few clock ticks, too coarse to
# see a few percent.
# Usage: scripts/metrics-cost.sh [DIR] [ROUNDS]   (defaults: .ebadge 5)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.ebadge}
rounds=${2:-5}
bin=target/release/ebadge
out=$(mktemp)
for i in $(seq "$rounds"); do
    for metrics in off on; do
        env_metrics=()
        [ "$metrics" = on ] && env_metrics=(EBADGE_BENCH_METRICS=1)
        env "${env_metrics[@]}" $bin bench ingest --dir "$dir" --hehs 1000 --messages 100000 --json 2>/dev/null | tee -a "$out"
        env "${env_metrics[@]}" $bin bench heh --dir "$dir" --seconds 30 --rate "${HEH_RATE:-500}" --json 2>/dev/null | tee -a "$out"
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def median(bench, metrics, pick):
    values = [pick(r) for r in runs if r["bench"] == bench and metric_of(r) == metrics]
    return statistics.median(values), len(values)
def metric_of(r):
    return (r["ebadge"]["consumer"] if r["bench"] == "ingest" else r["report"]).get("metrics", False)
rows = [
    ("ingest: VPP CPU per message (µs)", "ingest", lambda r: r["ebadge"]["consumer"]["cpu_us_per_msg"]),
    ("ingest: VPP msgs/s", "ingest", lambda r: r["ebadge"]["consumer"]["msgs_per_s"]),
    ("ingest: VPP RSS (KiB)", "ingest", lambda r: r["ebadge"]["consumer"]["rss_kib"]),
    ("ingest: ours / raw ceiling", "ingest", lambda r: r["ratio_to_ceiling"]),
    ("heh: CPU per message (µs)", "heh", lambda r: r["report"]["cpu_us_per_msg"]),
    ("heh: RSS (KiB)", "heh", lambda r: r["report"]["rss_kib"]),
]
print(f"{'figure':38} {'without':>10} {'with':>10} {'change':>8}  (medians of {sys.argv[1]})")
for name, bench, pick in rows:
    (off, n_off), (on, n_on) = median(bench, False, pick), median(bench, True, pick)
    print(f"{name:38} {off:10.2f} {on:10.2f} {100 * (on - off) / off:+7.1f}%  n={n_off}/{n_on}")
PY
