"""The seed's Figure 5 (D3.2.3 6.4), written with the ebadge package: an HEH that answers
``get_report`` with a ``report`` of the signals asked for (the values are made up, as in the
seed's example).

What the seed's program did by hand is done for it here: the reply is returned rather than put on
a send queue with a lock, there are no threads to start, and the client reconnects and keeps
unconfirmed messages in its outbox through an outage.

    .venv/bin/python python/examples/heh_figure5.py --as heh-020000000000 --controller vpp
"""

from __future__ import annotations

import argparse
import itertools
import math
from typing import Optional

import ebadge


class Consumer(ebadge.Handler):
    """Answers ``get_report`` (every other type is counted as unhandled)."""

    def on_get_report(self, request: ebadge.GetReport, incoming: ebadge.Received) -> ebadge.Report:
        # D3.1.3 5.2.3: (to - from) / resolution values per signal, rounded up.
        count = math.ceil((request.to - request.from_).total_seconds() / request.resolution)
        made_up = [0.12, 0.17, 0.33, 0.0]
        values = {signal: list(itertools.islice(itertools.cycle(made_up), count)) for signal in request.signals}
        return ebadge.Report(
            from_=request.from_,
            to=request.to,
            resolution=request.resolution,
            values=values,
            heh_id=request.heh_id,
        )


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as", dest="name", required=True, help="our entity name (the certificate's CN)")
    parser.add_argument("--controller", help="announce our capabilities to this controller at start (D3.1.3 7.1)")
    parser.add_argument("--profile", help="connection profile (default: $EBADGE_PROFILE, else .ebadge/profile.toml)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    args = parser.parse_args(argv)

    with ebadge.Client.connect(args.name, args.profile) as hub:
        if args.controller:
            hub.send(
                args.controller,
                ebadge.Capabilities(device_name="eBADGE Home Energy Hub (Figure 5)", device_version="1.0", devices=["total"]),
            )
        print(f"{args.name}: answering get_report", flush=True)
        try:
            hub.serve(Consumer(), duration=args.duration)
        except KeyboardInterrupt:
            pass
        print(f"{args.name}: {hub.counters()}", flush=True)


if __name__ == "__main__":
    main()
