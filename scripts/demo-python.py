"""The demo's Python part (`make demo`): the seed's Figure 5 HEH, written with the ebadge package
(python/examples/heh_figure5.py), takes the place of the demo's first HEH and answers the VPP's
get_report. Run by scripts/demo.sh with .venv/bin/python after the demo."""

import datetime
import subprocess
import sys
import time

import ebadge

HEH = "heh-020000000000"


def next_from(client: ebadge.Client, sender: str, kind: type, patience: float) -> ebadge.Received:
    """The next message of `kind` from `sender`, skipping (and acknowledging) the rest: what the
    demo's HEHs sent after its VPP stopped."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        received = client.receive(max(0.0, deadline - time.monotonic()))
        if received is None:
            break
        received.ack()
        if received.sender == sender and isinstance(received.message, kind):
            return received
    sys.exit(f"demo: no {kind.__name__} from {sender} within {patience} s")


with ebadge.Client.connect("vpp") as vpp:
    hub = subprocess.Popen(
        [sys.executable, "python/examples/heh_figure5.py", "--as", HEH, "--controller", "vpp", "--duration", "60"],
        stdout=subprocess.DEVNULL,
    )
    try:
        next_from(vpp, HEH, ebadge.Capabilities, 30)
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        began = time.monotonic()
        vpp.send(HEH, ebadge.GetReport(from_=now - datetime.timedelta(minutes=5), to=now, resolution=60, signals=["total.p"]))
        report = next_from(vpp, HEH, ebadge.Report, 30).message
        assert isinstance(report, ebadge.Report)
        took = (time.monotonic() - began) * 1000
        print(f"python HEH {HEH} answered get_report in {took:.0f} ms: total.p = {report.values['total.p']}")
    finally:
        hub.terminate()
        hub.wait(30)
