"""An HEH on this project's Python package (``ebadge``): typed messages, and a client whose
reliability layer (confirms, outbox, reconnects, duplicates dropped) is built in, so the program
only answers: get_status_report, get_report, activate (it accepts) and get_periodic_report.

It reads the conformance kit's EBADGE_PROFILE (the package's own variable), EBADGE_NAME and
EBADGE_CONTROLLER:

    ebadge conformance heh --command '.venv/bin/python docs/partners/ebadge_heh.py'
"""

from __future__ import annotations

import math
import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Optional

import ebadge

NAME = os.environ["EBADGE_NAME"]
CONTROLLER = os.environ["EBADGE_CONTROLLER"]


def report(start: datetime, end: datetime, resolution: float, signals: list[str]) -> ebadge.Report:
    count = math.ceil((end - start).total_seconds() / resolution)  # D3.1.3 5.2.3
    return ebadge.Report(from_=start, to=end, resolution=resolution, values={s: [0.5] * count for s in signals})


class Hub(ebadge.Handler):
    def __init__(self, client: ebadge.Client) -> None:
        self.client = client
        self.periodic: Optional[threading.Event] = None

    def on_get_status_report(self, request: ebadge.GetStatusReport, incoming: ebadge.Received) -> ebadge.StatusReport:
        return ebadge.StatusReport(status="OK", clock=datetime.now(timezone.utc), events=[])

    def on_get_report(self, request: ebadge.GetReport, incoming: ebadge.Received) -> ebadge.Report:
        return report(request.from_, request.to, request.resolution, list(request.signals))

    def on_activate(self, order: ebadge.Activate, incoming: ebadge.Received) -> ebadge.AcceptActivation:
        return ebadge.AcceptActivation(id=order.id, modification_count=order.modification_count)

    def on_get_periodic_report(self, request: ebadge.GetPeriodicReport, incoming: ebadge.Received) -> None:
        if self.periodic:
            self.periodic.set()
        self.periodic = None
        if request.interval != -1:
            self.periodic = threading.Event()
            threading.Thread(target=self.every, args=(request, self.periodic), daemon=True).start()

    def every(self, request: ebadge.GetPeriodicReport, stop: threading.Event) -> None:
        # send() returns at once: the outbox keeps the report while the bus is away.
        while not stop.wait(request.interval):
            end = datetime.now(timezone.utc).replace(microsecond=0)
            start = end - timedelta(seconds=request.interval)
            self.client.send(CONTROLLER, report(start, end, request.resolution, list(request.signals)))


def main() -> None:
    with ebadge.Client.connect(NAME, patience=60) as client:
        print(f"{NAME}: connected", flush=True)
        client.serve(Hub(client))


if __name__ == "__main__":
    main()
