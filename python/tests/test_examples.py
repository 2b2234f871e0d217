"""The examples of python/examples run against the test broker, as a user would run them: the
seed's Figure 5 HEH, a VPP's activation campaign over a fleet of our simulated HEHs, a listener."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import ebadge
from bus import REPO, need, profile

EXAMPLES = REPO / "python" / "examples"
T0 = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.timezone.utc)


def example(name: str, *args: str) -> List[str]:
    return [sys.executable, str(EXAMPLES / name), *args, "--profile", profile()]


def drained(name: str) -> ebadge.Client:
    client = ebadge.Client.connect(name, profile())
    while (left := client.receive(0.3)) is not None:
        left.ack()
    return client


def test_figure_5_answers_get_report_with_a_report() -> None:
    drained("py-heh").close(5)
    op = drained("py-op")
    hub = subprocess.Popen(
        example("heh_figure5.py", "--as", "py-heh", "--controller", "py-op"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        announced = op.receive(20)
        assert announced is not None and isinstance(announced.message, ebadge.Capabilities), "it announces itself"
        assert announced.sender == "py-heh"
        announced.ack()
        op.send("py-heh", ebadge.GetReport(from_=T0, to=T0 + datetime.timedelta(minutes=5), resolution=60, signals=["total.p", "boiler.p"]))
        received = op.receive(20)
        assert received is not None and isinstance(received.message, ebadge.Report)
        assert received.message.values == {"total.p": [0.12, 0.17, 0.33, 0.0, 0.12], "boiler.p": [0.12, 0.17, 0.33, 0.0, 0.12]}
        received.ack()
    finally:
        os.kill(hub.pid, signal.SIGINT)
        out, err = hub.communicate(timeout=20)
        op.close(5)
    assert hub.returncode == 0, err
    assert "'received': 1" in out, out


def test_the_vpp_campaign_activates_a_fleet_of_simulated_hehs() -> None:
    drained("py-vpp").close(5)
    env = dict(os.environ, EBADGE_PROFILE=profile())
    fleet = subprocess.Popen(
        [need("EBADGE_BIN"), "sim", "heh", "--first", "2304", "--count", "5", "--controller", "py-vpp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        campaign = subprocess.run(
            example("vpp_campaign.py", "--as", "py-vpp", "--collect", "5", "--patience", "60", "--kw", "2", "--json"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        fleet.send_signal(signal.SIGINT)
        fleet.communicate(timeout=30)
    assert campaign.returncode == 0, campaign.stderr
    summary = json.loads(campaign.stdout)
    assert summary["hehs"] == 5 and summary["accepted"] == 5, summary


def test_the_listener_prints_what_arrives() -> None:
    drained("py-b").close(5)
    with ebadge.Client.connect("py-a", profile()) as a:
        a.send("py-b", ebadge.LoadPrice(from_=T0, to=T0 + datetime.timedelta(hours=1), price=0.3))
        a.send("py-b", ebadge.GetAllPrices())
        a.flush(timeout=10)
    started = time.monotonic()
    listened = subprocess.run(
        example("listener.py", "--as", "py-b", "--json", "--count", "2", "--timeout", "20"), capture_output=True, text=True, timeout=60
    )
    assert listened.returncode == 0, listened.stderr
    lines = [json.loads(line) for line in listened.stdout.splitlines()]
    assert [line["message"]["msg"] for line in lines] == ["load_price", "get_all_prices"]
    assert all(line["from"] == "py-a" for line in lines)
    assert time.monotonic() - started < 30
    plain = subprocess.run(example("listener.py", "--as", "py-b", "--count", "1", "--timeout", "1"), capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and plain.stdout == "", "nothing left: it stops after the timeout"


def test_every_example_explains_itself() -> None:
    for script in sorted(Path(EXAMPLES).glob("*.py")):
        helped = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=30)
        assert helped.returncode == 0 and "--as" in helped.stdout, script


def python_blocks(markdown: Path) -> List[str]:
    blocks, block, inside = [], [], False
    for line in markdown.read_text().splitlines():
        if line.strip() == "```python":
            inside, block = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("\n".join(block))
        elif inside:
            block.append(line)
    return blocks


def test_the_guides_message_examples_run_as_written() -> None:
    """The guide's examples that need no broker (its message section) run, in order, in one
    namespace; the ones that connect are the examples' scripts, run above."""
    blocks = [b for b in python_blocks(REPO / "docs" / "python-guide.md") if "connect(" not in b]
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python-guide.md", "exec"), namespace)
    assert isinstance(namespace["again"], ebadge.LoadPrice)
