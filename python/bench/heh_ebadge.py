"""The benchmark HEH through the `ebadge` package (blocking `Client`): COUNT stamped reports, RATE
a second, each handed to the client's outbox (publisher confirms, persistent, the reliability
layer of the Rust client), then idle until stopped. Run by
`ebadge bench heh --heh-command ".venv/bin/python python/bench/heh_ebadge.py"`, which measures
it from outside as it measures the agent and pika (python/bench/benchenv.py says what it is
told). The report is the one scripts/heh-pika.py sends, built as an `ebadge.Report`.
"""

from __future__ import annotations

import datetime
import time

import benchenv

import ebadge


def main() -> None:
    rate = benchenv.env_int("EBADGE_BENCH_RATE", 10)
    count = benchenv.env_int("EBADGE_BENCH_COUNT", 600)
    vpp = benchenv.need("EBADGE_BENCH_VPP")
    # Sized for an HEH, as the agent and the Rust bench HEH are.
    client = ebadge.Client.connect(
        benchenv.need("EBADGE_BENCH_HEH"),
        benchenv.need("EBADGE_PROFILE"),
        prefetch=10,
        outbox_cap=10_000,
        dedupe_window=1_000,
    )
    utc = datetime.timezone.utc
    start = datetime.datetime(2030, 1, 1, 10, 0, tzinfo=utc)
    end = datetime.datetime(2030, 1, 1, 10, 1, tzinfo=utc)
    interval = 1.0 / rate
    next_at = time.monotonic()
    for _ in range(count):
        next_at += interval
        report = ebadge.Report(
            from_=start, to=end, resolution=60, values={"total.p": [1.5]}, heh_id=None, ext={"ext_bench_sent_ns": time.time_ns()}
        )
        client.send(vpp, report)
        time.sleep(max(0.0, next_at - time.monotonic()))
    client.flush(30)
    while True:
        time.sleep(1.0)


if __name__ == "__main__":
    main()
