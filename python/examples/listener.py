"""A listener: prints every message that arrives in our inbox, one line each, and acknowledges it.

    .venv/bin/python python/examples/listener.py --as vpp
    .venv/bin/python python/examples/listener.py --as vpp --json --count 10
"""

from __future__ import annotations

import argparse
import json
from typing import Optional

import ebadge


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as", dest="name", required=True, help="whose inbox (the certificate's CN)")
    parser.add_argument("--profile", help="connection profile (default: $EBADGE_PROFILE, else .ebadge/profile.toml)")
    parser.add_argument("--count", type=int, help="stop after this many messages")
    parser.add_argument("--timeout", type=float, help="stop when nothing arrived for this many seconds")
    parser.add_argument("--json", action="store_true", help='one JSON line each: {"from", "routing_key", "message"}')
    args = parser.parse_args(argv)

    seen = 0
    with ebadge.Client.connect(args.name, args.profile) as client:
        try:
            while args.count is None or seen < args.count:
                received = client.receive(args.timeout)
                if received is None:
                    break
                if args.json:
                    line = {"from": received.sender, "routing_key": received.routing_key, "message": json.loads(received.json)}
                    print(json.dumps(line), flush=True)
                else:
                    print(f"{received.sender} -> {args.name}: {received.message!r}", flush=True)
                received.ack()
                seen += 1
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
