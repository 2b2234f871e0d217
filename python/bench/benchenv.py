"""What the Python benchmark programs share: what `ebadge bench` tells them in their environment,
the profile's files for a plain AMQP client, and the figures they print.

`ebadge bench activations --vpp-command CMD` sets EBADGE_PROFILE, EBADGE_BENCH_VPP,
EBADGE_BENCH_HEHS (a file naming the HEHs, one a line), EBADGE_BENCH_TIMEOUT and
EBADGE_BENCH_PUBLISH_CONNECTIONS; `ebadge bench heh --heh-command CMD` sets EBADGE_PROFILE,
EBADGE_BENCH_HEH, EBADGE_BENCH_VPP, EBADGE_BENCH_RATE and EBADGE_BENCH_COUNT.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple


def need(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        sys.exit(f"${variable} is not set: this program is run by `ebadge bench` (see python/bench/benchenv.py)")
    return value


def hehs() -> List[str]:
    """The HEHs to activate, in order."""
    return Path(need("EBADGE_BENCH_HEHS")).read_text().split()


def window() -> Tuple[datetime.datetime, datetime.datetime]:
    """An activation window starting in a minute, 15 minutes long (the Rust VPP's)."""
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(minutes=1)
    return start, start + datetime.timedelta(minutes=15)


def tls(name: str) -> Tuple[str, int, ssl.SSLContext]:
    """Host, port and a TLS context with `name`'s client certificate, from the profile: what a
    plain AMQP client (pika, aio-pika) needs for TLS and the EXTERNAL login."""
    path = need("EBADGE_PROFILE")
    with open(path, "rb") as f:
        profile = tomllib.load(f)
    base = Path(path).parent
    certs = base / profile["certs"]
    host, port = profile["amqps_url"].removeprefix("amqps://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(base / profile["ca"]))
    context.load_cert_chain(str(certs / f"{name}.pem"), str(certs / f"{name}.key"))
    return host, int(port), context


def percentiles_ms(trips: Sequence[float]) -> List[float]:
    """p50, p90, p99 and max of round trips in seconds, as ms (the Rust report's ranks)."""
    if not trips:
        return [0.0, 0.0, 0.0, 0.0]
    ordered = sorted(trips)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    return [round(rank(p), 1) for p in (50, 90, 99, 100)]


def thread_cpu() -> Dict[str, float]:
    """CPU seconds so far of this process's threads, summed by thread name (the interpreter's
    ``python``, the native core's ``tokio-runtime-w``): where a client spends its time."""
    out: Dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[name] = out.get(name, 0.0) + ns / 1e9
    return out


def cpu_since(before: Dict[str, float]) -> Dict[str, float]:
    """CPU seconds by thread name since ``before`` (a :func:`thread_cpu`)."""
    now = thread_cpu()
    return {name: round(now[name] - before.get(name, 0.0), 3) for name in sorted(now)}


def emit(**figures: Any) -> None:
    """The figures as the one JSON line `ebadge bench` reads, with the process's CPU seconds
    (every thread: the interpreter's and the native core's)."""
    figures.setdefault("cpu_seconds", round(time.process_time(), 3))
    print(json.dumps(figures), flush=True)


def env_int(variable: str, default: int) -> int:
    value = os.environ.get(variable)
    return int(value) if value else default


def env_float(variable: str, default: float) -> float:
    value = os.environ.get(variable)
    return float(value) if value else default


