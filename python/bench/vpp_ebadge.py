"""The benchmark VPP through the `ebadge` package: one `activate` to each HEH of the fleet at once,
awaiting the answers with asyncio, as python/examples/vpp_campaign.py does. Run by
`ebadge bench activations --vpp-command ".venv/bin/python python/bench/vpp_ebadge.py"`, which
connects the fleet first and reads the figures this prints (python/bench/benchenv.py).

    --api gather   (default) `await asyncio.gather(*(vpp.activate(heh, order) ...))`, the plain
                   per-order API
    --api many     `await vpp.activate_many([(heh, order), ...])`, the batch API
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import List, Tuple

import benchenv

import ebadge


async def burst(api: str) -> None:
    hehs = benchenv.hehs()
    timeout = benchenv.env_float("EBADGE_BENCH_TIMEOUT", 60.0)
    connections = benchenv.env_int("EBADGE_BENCH_PUBLISH_CONNECTIONS", 0)
    vpp = await ebadge.AsyncClient.connect(
        benchenv.need("EBADGE_BENCH_VPP"),
        benchenv.need("EBADGE_PROFILE"),
        publish_connections=connections,
    )
    start, end = benchenv.window()
    trips: List[float] = []

    async def one(heh: str, n: int) -> ebadge.ActivationOutcome:
        t = time.monotonic()
        order = ebadge.Activate(id=f"bench-{n}", modification_count=0, from_=start, to=end, quantity=1.0)
        outcome = await vpp.activate(heh, order, timeout)
        trips.append(time.monotonic() - t)
        return outcome

    began = time.monotonic()
    cpu0 = time.process_time()
    threads0 = benchenv.thread_cpu()
    if api == "many":
        orders: List[Tuple[str, ebadge.Activate]] = [
            (heh, ebadge.Activate(id=f"bench-{n}", modification_count=0, from_=start, to=end, quantity=1.0))
            for n, heh in enumerate(hehs)
        ]
        outcomes = await vpp.activate_many(orders, timeout)
    else:
        outcomes = await asyncio.gather(*(one(heh, n) for n, heh in enumerate(hehs)))
    seconds = time.monotonic() - began
    cpu = time.process_time() - cpu0
    threads = benchenv.cpu_since(threads0)
    await vpp.close(5.0)
    kinds = Counter(o.kind for o in outcomes)
    benchenv.emit(
        vpp=f"ebadge {ebadge.__version__} (AsyncClient, {api})",
        sent=len(hehs),
        answered=len(hehs) - kinds["timed_out"],
        outcomes=dict(kinds),
        seconds=round(seconds, 3),
        round_trip_ms=benchenv.percentiles_ms(trips),
        burst_cpu_seconds=round(cpu, 3),
        burst_cpu_by_thread=threads,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", choices=("gather", "many"), default="gather")
    asyncio.run(burst(parser.parse_args().api))


if __name__ == "__main__":
    main()
