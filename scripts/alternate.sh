#!/bin/bash
# Measures one broker lever: runs an `ebadge bench` on fresh brokers, alternately with the
# default settings and with extra Erlang arguments for every node, so that both arms see the
# same machine in the same minutes. Each run gets a broker made for it and removed after it.
#
#   scripts/alternate.sh NODES ROUNDS 'ERL ARGS' BENCH [BENCH OPTIONS...]
#   scripts/alternate.sh NODES ROUNDS bin:OTHER-EBADGE BENCH [BENCH OPTIONS...]
#   scripts/alternate.sh NODES ROUNDS 'flags:MORE BENCH OPTIONS' BENCH [BENCH OPTIONS...]
#   scripts/alternate.sh NODES ROUNDS 'env:VAR=VALUE ...' BENCH [BENCH OPTIONS...]
#
# The second form measures a change of code: the lever arm runs another build of ebadge (for
# instance the commit before, built with `git worktree add`), with the default settings. The
# third measures an option of the benchmark: the lever arm adds those options to the command.
# The fourth runs the lever arm (broker up, bench, broker down) with those environment variables,
# for instance another RabbitMQ (EBADGE_RABBITMQ_SERVER, EBADGE_RABBITMQCTL: docs/benchmarks.md,
# "RabbitMQ 4.0").
#
# Examples (docs/benchmarks.md, "Each lever, same command"):
#   scripts/alternate.sh 3 3 '-rabbit queue_index_embed_msgs_below 4096' activations --hehs 5000
#   scripts/alternate.sh 3 2 bin:/tmp/ebadge-old activations --hehs 5000
#   scripts/alternate.sh 3 3 'flags:--publish-connections 1' activations --hehs 5000
#   scripts/alternate.sh 1 3 '-rabbit queue_index_embed_msgs_below 0' ingest --hehs 1000 --messages 200000
#
# Prints, per run, the arm ("default" or "lever"), the round and the benchmark's JSON report
# (the VPP's counters left out), and checks that the lever reached the nodes' arguments.
# EBADGE (default target/release/ebadge) and BASE (default /tmp) choose the binary and where
# the brokers' directories go.
set -euo pipefail
if [ $# -lt 4 ]; then
    sed -n '2,20p' "$0" >&2
    exit 2
fi
nodes=$1 rounds=$2 lever=$3
shift 3
ebadge=${EBADGE:-target/release/ebadge}
base=${BASE:-/tmp}
for round in $(seq 1 "$rounds"); do
    for arm in default lever; do
        dir=$base/alternate-$arm-$round
        rm -rf "$dir"
        run=$ebadge
        more=()
        if [ "$arm" = lever ] && [[ $lever == env:* ]]; then
            run="env ${lever#env:} $ebadge"
            $run broker up --dir "$dir" --nodes "$nodes" >/dev/null
        elif [ "$arm" = lever ] && [[ $lever == flags:* ]]; then
            read -r -a more <<<"${lever#flags:}"
            "$ebadge" broker up --dir "$dir" --nodes "$nodes" >/dev/null
        elif [ "$arm" = lever ] && [[ $lever == bin:* ]]; then
            run=${lever#bin:}
            "$run" broker up --dir "$dir" --nodes "$nodes" >/dev/null
        elif [ "$arm" = lever ]; then
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=$lever "$ebadge" broker up --dir "$dir" --nodes "$nodes" >/dev/null
            # Each node's beam shows the arguments it was started with.
            seen=$(pgrep -fa beam.smp | grep -c -F -- "$(echo "$lever" | sed 's/^+/-/')" || true)
            [ "$seen" -ge "$nodes" ] || { echo "the lever did not reach the nodes ($seen of $nodes)" >&2; exit 1; }
        else
            "$ebadge" broker up --dir "$dir" --nodes "$nodes" >/dev/null
        fi
        report=$($run bench "$@" "${more[@]}" --dir "$dir" --json 2>"$dir.log" | tail -1 | sed -E 's/"vpp":\{[^}]*\},?//')
        echo "$arm $round $report"
        $run broker down --dir "$dir" >/dev/null 2>&1
        rm -rf "$dir" "$dir.log"
    done
done
