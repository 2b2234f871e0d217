#!/usr/bin/env bash
# `make demo` until the simulators land: the data model at work on the spec's own messages.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/ebadge
echo "== The 33 example messages of D3.1.3, checked against the data model"
$bin msg check crates/ebadge-model/tests/vectors/examples.jsonl
echo
echo "== Three broken messages: each error names the message type and the field"
printf '%s\n' \
  '{"msg":"load_price","from":"2013-07-27T23:10:00","to":"2013-07-28T00:30:00Z","price":0.138}' \
  '{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:05:00Z","resolution":60,"values":{"total.p":[1.7,1.6]},"heh_id":null}' \
  '{"msg":"activate","id":"a1","modification_count":0,"from":"2013-07-24T11:10:20Z","to":"2013-07-24T11:14:55Z","quantity":3.4,"device":null,"heh_id":"heh.42"}' \
  | $bin msg check - || true
echo
echo "The full demo (broker, HEH fleet, VPP, market) comes with the simulators."
