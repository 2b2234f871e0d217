"""A VPP's activation campaign over a fleet, with asyncio: every HEH gets an ``activate`` order at
once, and the answers (accept, reject, counter-proposal) are awaited together.

The fleet is named on the command line, or collected from the ``capabilities`` announcements the
HEHs send when they start (D3.1.3 7.1).

    .venv/bin/python python/examples/vpp_campaign.py --as vpp --hehs heh-020000000000,heh-020000000001
    .venv/bin/python python/examples/vpp_campaign.py --as vpp --collect 100 --kw 2.5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import time
import uuid
from collections import Counter
from typing import Any, Dict, List, Optional

import ebadge


async def collect(vpp: ebadge.AsyncClient, expect: int, patience: float) -> List[str]:
    """The HEHs that announce themselves, until ``expect`` did or ``patience`` seconds passed."""
    fleet: List[str] = []
    deadline = time.monotonic() + patience
    while len(fleet) < expect and time.monotonic() < deadline:
        received = await vpp.receive(max(0.0, deadline - time.monotonic()))
        if received is None:
            break
        if isinstance(received.message, ebadge.Capabilities) and received.sender not in fleet:
            fleet.append(received.sender)
        received.ack()
    return fleet


async def campaign(args: argparse.Namespace) -> Dict[str, Any]:
    async with await ebadge.AsyncClient.connect(args.name, args.profile, publish_connections=args.publish_connections) as vpp:
        fleet = args.hehs.split(",") if args.hehs else await collect(vpp, args.collect, args.patience)
        start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(minutes=1)
        campaign_id = uuid.uuid4().hex[:8]
        orders = [
            ebadge.Activate(
                id=f"{campaign_id}-{n}",
                modification_count=0,
                from_=start,
                to=start + datetime.timedelta(minutes=15),
                quantity=args.kw,
            )
            for n in range(len(fleet))
        ]
        began = time.monotonic()
        outcomes = await asyncio.gather(*(vpp.activate(heh, order, args.timeout) for heh, order in zip(fleet, orders)))
        seconds = time.monotonic() - began
        kinds = Counter(o.kind for o in outcomes)
        return {
            "hehs": len(fleet),
            "accepted": kinds["accepted"],
            "rejected": kinds["rejected"],
            "modified": kinds["modified"],
            "timed_out": kinds["timed_out"],
            "seconds": round(seconds, 3),
        }


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as", dest="name", required=True, help="our entity name (the certificate's CN)")
    parser.add_argument("--profile", help="connection profile (default: $EBADGE_PROFILE, else .ebadge/profile.toml)")
    fleet = parser.add_mutually_exclusive_group(required=True)
    fleet.add_argument("--hehs", help="the HEHs, comma-separated")
    fleet.add_argument("--collect", type=int, metavar="N", help="wait for N HEHs to announce their capabilities")
    parser.add_argument("--patience", type=float, default=60.0, help="seconds to wait for the announcements (default 60)")
    parser.add_argument("--kw", type=float, default=2.0, help="kW asked of each HEH (default 2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (default 30)")
    parser.add_argument("--publish-connections", type=int, default=None, help="connections to publish on (4 on a cluster)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    summary = asyncio.run(campaign(args))
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(
            f"{summary['hehs']} HEHs in {summary['seconds']} s: {summary['accepted']} accepted, "
            f"{summary['rejected']} rejected, {summary['modified']} counter-proposed, {summary['timed_out']} silent",
            flush=True,
        )


if __name__ == "__main__":
    main()
