#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Starts the local broker in .ebadge/ (if it
# is not running), provisions a VPP, 100 HEHs and the market actors, runs a minute of traffic and
# prints a summary. Arguments go to `ebadge demo` (e.g. `make demo DEMO_ARGS="--hehs 1000"`).
# The demo's clients serve Prometheus metrics at DEMO_METRICS (default 127.0.0.1:9464) while it
# runs; the broker's own (rabbitmq_prometheus) stay up with the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/ebadge
echo "== The 33 example messages of D3.1.3, checked against the data model"
$bin msg check crates/ebadge-model/tests/vectors/examples.jsonl > /dev/null
$bin demo --metrics "${DEMO_METRICS:-127.0.0.1:9464}" "$@"
echo
echo "== The Python package (docs/python-guide.md): the seed's Figure 5 HEH, in Python, answers the VPP"
.venv/bin/python scripts/demo-python.py
echo
echo "Metrics: the broker's at $($bin broker status --json | python3 -c 'import json,sys; print(" ".join(n["prometheus_url"] or "none (restart the broker)" for n in json.load(sys.stdin)["nodes"]))')"
echo "(a Prometheus with deploy/prometheus/rules and the dashboard deploy/grafana: docs/operator-guide.md, section 8)."
echo "The broker keeps running in .ebadge/ for you to try: ebadge listen --as vpp, ebadge tap --as vpp,"
echo "ebadge audit, ebadge pki list. 'ebadge broker down' stops it."
