# The two commands a newcomer needs: `make demo` and `make test`. Both install what is missing.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: partitions deps demo test test-rabbitmq4 lint cross unit bench bench-python fuzz build python python-release

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release -p ebadge

## The Python package (python/, crates/ebadge-py): a wheel built with maturin and installed in
## .venv with its test tools and peers; `python-release` optimised (the demo, benchmarks).
python: deps
	scripts/python.sh

python-release: deps
	scripts/python.sh --release

## The main job: local broker, 100 simulated HEHs and a VPP, the market actors, a summary.
DEMO_ARGS ?=
demo: build python-release
	scripts/demo.sh $(DEMO_ARGS)

## fmt check, clippy with warnings as errors, the cross builds, the Python package, every test
## (unit, integration, doc, and the Python package's pytest suite, run by crates/ebadge/tests/python.rs).
test: deps lint cross python unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## The HEH agent for the boards HEHs run on (Raspberry Pi 2/3 32-bit, 64-bit ARM) and, with the
## client library, for Windows (with its example device program, and the `ebadge` command line); the ARM builds are run under qemu-user by
## crates/ebadge-heh/tests/cross.rs, the Windows build under Wine by crates/ebadge-heh/tests/wine.rs.
CROSS_TARGETS := aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf x86_64-pc-windows-gnu
cross: deps
	for target in $(CROSS_TARGETS); do $(CARGO) build -p ebadge-heh --target $$target || exit 1; done
	$(CARGO) build -p ebadge -p ebadge-heh --target x86_64-pc-windows-gnu --bins --examples

# The tests boot one shared broker (TEST_DIR/ebadge-test-broker), one they restart, one for
# the demo, one scraped by a real Prometheus, one the conformance kit restarts, a three-node cluster and one whose nodes live in network
# namespaces (the partition tests); all are stopped at the end whether or not the tests pass.
TEST_DIR ?= target/tmp
export EBADGE_TEST_DIR := $(abspath $(TEST_DIR))
TEST_BROKERS := $(addprefix $(TEST_DIR)/,ebadge-test-broker ebadge-restart-broker ebadge-demo-broker ebadge-test-cluster ebadge-monitoring-broker ebadge-conformance-broker ebadge-partition-cluster)
unit:
	$(CARGO) build -p ebadge-bus --examples
	$(CARGO) test --workspace --all-targets --no-fail-fast; status=$$?; \
	  for dir in $(TEST_BROKERS); do $(CARGO) run -q -p ebadge -- broker down --dir $$dir; done; \
	  exit $$status
	$(CARGO) test --workspace --doc

## The network partitions of issue #30 alone, with their table printed (also in
## TEST_DIR/partitions.md; `make test` runs them with the rest). Needs root.
partitions: deps
	$(CARGO) test -p ebadge-heh --test partitions -- --nocapture; status=$$?; \
	  $(CARGO) run -q -p ebadge -- broker down --dir $(TEST_DIR)/ebadge-partition-cluster; exit $$status

## The broker tests again on Debian 13's RabbitMQ 4.0 (on Debian 12, in a Debian 13 tree that
## scripts/rabbitmq4.sh makes once), with broker directories of their own.
test-rabbitmq4: deps python
	scripts/rabbitmq4.sh $(MAKE) unit TEST_DIR=target/tmp-rabbitmq4

## Benchmarks (results go to docs/benchmarks.md by hand, with the machine): the codec, then the
## three figures of D3.2.3 2.1 on the local broker in .ebadge/ (started if needed), as JSON lines.
## The Python package's figures: `make bench-python`.
bench: build
	$(CARGO) bench -p ebadge-model --bench codec
	target/release/ebadge bench heh --seconds 60 --json
	target/release/ebadge bench activations --hehs 5000 --json
	target/release/ebadge bench ingest --hehs 1000 --messages 200000 --json
	target/release/ebadge bench ingest --hehs 1000 --messages 100000 --rate 3333 --json

## The Python package's figures (issue #27, docs/benchmarks.md "Python"), as JSON lines: the codec
## beside json; an HEH at 10 reports/s through the package, then pika (on .ebadge/); 5,000
## activations by our Rust VPP, the package's (asyncio.gather of activate, then activate_many) and
## aio-pika's, each on a fresh broker in target/bench-python against the same simulated fleet.
BENCH_PYTHON ?= .venv/bin/python
bench-python: build python-release
	$(BENCH_PYTHON) python/bench/codec.py
	target/release/ebadge bench heh --seconds 60 --json --heh-command "$(BENCH_PYTHON) python/bench/heh_ebadge.py" --pika
	for vpp in "" "$(BENCH_PYTHON) python/bench/vpp_ebadge.py" "$(BENCH_PYTHON) python/bench/vpp_ebadge.py --api many" \
	    "$(BENCH_PYTHON) python/bench/vpp_aio_pika.py"; do \
	  dir=target/bench-python; target/release/ebadge broker up --dir $$dir >/dev/null || exit 1; \
	  target/release/ebadge bench activations --dir $$dir --hehs 5000 --json $${vpp:+--vpp-command "$$vpp"}; status=$$?; \
	  target/release/ebadge broker down --dir $$dir >/dev/null; rm -rf $$dir; [ $$status = 0 ] || exit $$status; \
	done

## Fuzz the message decoder for FUZZ_SECONDS (default 60). Needs cargo-fuzz (installed if missing).
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)
