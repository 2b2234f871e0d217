#!/bin/bash
# One fresh 3-node cluster, 5,000 activations; perf samples the whole machine during the burst.
# Usage: scripts/profile-burst.sh N (after `cargo build --release`); writes /tmp/pb-N.json (the figures),
# /tmp/pb-N.err (progress), /tmp/pb-N.vmstat and /tmp/perf-N.data (`perf report -i /tmp/perf-N.data --sort dso`).
E=${EBADGE:-target/release/ebadge}; D=${DIR:-/tmp/ebadge-profile}; R=${1:-1}
$E broker down --dir $D >/dev/null 2>&1; rm -rf $D
$E broker up --dir $D --nodes 3 >/dev/null 2>&1
rm -f /tmp/pb-$R.err
( while ! grep -q "the burst starts" /tmp/pb-$R.err 2>/dev/null; do sleep 0.05; done
  perf record -a -F 499 -o /tmp/perf-$R.data -- sleep 5 >/dev/null 2>&1 ) &
vmstat 1 > /tmp/pb-$R.vmstat & VM=$!
$E bench activations --dir $D --hehs 5000 --json > /tmp/pb-$R.json 2> /tmp/pb-$R.err
kill $VM; wait
echo "run $R $(python3 -c "import json; r=json.load(open('/tmp/pb-$R.json'))['report']; print(round(r['seconds'],2), [round(x) for x in r['round_trip_ms']])")"
$E broker down --dir $D >/dev/null 2>&1; rm -rf $D
