"""Decoding and encoding the spec's ``report`` example (D3.1.3 5.2, the line of
crates/ebadge-model/tests/vectors/examples.jsonl with "msg": "report") through the ``ebadge``
package, beside ``json.loads`` / ``json.dumps`` of the same text: what any Python program pays
for the JSON alone, without checking anything.

    .venv/bin/python python/bench/codec.py [--repeat 7] [--number 20000]

Prints one JSON object: for each operation the best of ``repeat`` timeit runs of ``number``
calls, in µs per call, and the ratio to its json peer. (``make bench-python`` runs it.)
"""

from __future__ import annotations

import argparse
import json
import platform
import timeit
from pathlib import Path

import ebadge

VECTORS = Path(__file__).resolve().parents[2] / "crates/ebadge-model/tests/vectors/examples.jsonl"


def spec_report() -> str:
    """The spec's report example, as the vectors file has it."""
    for line in VECTORS.read_text().splitlines():
        if line.strip() and json.loads(line)["msg"] == "report":
            return line
    raise SystemExit(f"no report in {VECTORS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()

    text = spec_report()
    message = ebadge.decode(text)
    assert isinstance(message, ebadge.Report)
    value = json.loads(text)
    compact = (",", ":")
    cases = {
        # ebadge: strict decode (every rule of the model) into the typed Report, datetimes included.
        "ebadge.decode": lambda: ebadge.decode(text),
        # ebadge: write the typed Report as eBADGE JSON, checked by the core.
        "Report.to_json": lambda: message.to_json(),
        # the peers: untyped dicts, nothing checked.
        "json.loads": lambda: json.loads(text),
        "json.dumps": lambda: json.dumps(value, separators=compact),
    }
    us = {}
    for name, call in cases.items():
        best = min(timeit.repeat(call, repeat=args.repeat, number=args.number))
        us[name] = best / args.number * 1e6
    print(
        json.dumps(
            {
                "bench": "python-codec",
                "message": "report",
                "bytes": len(text.encode()),
                "python": platform.python_version(),
                "ebadge": ebadge.__version__,
                "repeat": args.repeat,
                "number": args.number,
                "us_per_call": {k: round(v, 3) for k, v in us.items()},
                "decode_vs_json_loads": round(us["ebadge.decode"] / us["json.loads"], 2),
                "encode_vs_json_dumps": round(us["Report.to_json"] / us["json.dumps"], 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
