#!/usr/bin/python3
"""A device program for the HEH agent (`ebadge-heh`, docs/heh-guide.md section 8): JSON lines on
standard input (the controller's messages, the agent's notices) and output (messages for the
controller). The agent does the bus (TLS, certificate login, confirms, a durable outbox,
reconnects, duplicates); this program only answers: get_status_report, get_report, activate (it
accepts) and get_periodic_report. `docs/partners/agent.sh` runs it under the agent for the
conformance kit.
"""
import json
import math
import select
import sys
import time
from datetime import datetime, timedelta, timezone


def now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def stamp(t):
    return t.isoformat(timespec="seconds")  # with its offset (D3.1.3 4.2.4)


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def report(start, end, resolution, signals):
    count = math.ceil((parse(end) - parse(start)).total_seconds() / resolution)
    return {"msg": "report", "from": start, "to": end, "resolution": resolution,
            "values": {s: [0.5] * count for s in signals}, "heh_id": None}


def emit(message):
    print(json.dumps(message), flush=True)


def main():
    periodic = None  # (interval, resolution, signals, next due)
    while True:
        wait = max(0.0, periodic[3] - time.time()) if periodic else None
        ready, _, _ = select.select([sys.stdin], [], [], wait)
        if ready:
            line = sys.stdin.readline()
            if not line:
                return
            m = json.loads(line)
            kind = m.get("msg")
            if kind == "get_status_report":
                emit({"msg": "status_report", "status": "OK", "clock": stamp(now()), "events": []})
            elif kind == "get_report":
                emit(report(m["from"], m["to"], m["resolution"], m["signals"]))
            elif kind == "activate":
                emit({"msg": "accept_activation", "id": m["id"], "modification_count": m["modification_count"]})
            elif kind == "get_periodic_report":
                interval = m["interval"]
                periodic = None if interval == -1 else (interval, m["resolution"], m["signals"], time.time() + interval)
        if periodic and time.time() >= periodic[3]:
            interval, resolution, signals, due = periodic
            end = now()
            emit(report(stamp(end - timedelta(seconds=interval)), stamp(end), resolution, signals))
            periodic = (interval, resolution, signals, due + interval)


if __name__ == "__main__":
    main()
