"""The harshest fault of a sender: the broker goes down in the middle of a stream of sends, and
the sending process is killed (SIGKILL) while the broker is still down, with messages it never
got confirmed. With a durable outbox, the next start of the program sends them: every message
arrives once, counted by a receiver that stays connected (and reconnects) throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import ebadge
from bus import ebadge as cli, need, restart_profile, wait_for

TOTAL = 400
DOWN_AT = 100
KILL_AT = 300

SENDER = r"""
import datetime, sys
import ebadge

profile, outbox, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pauses = [int(p) for p in sys.argv[5].split(",") if p]
t0 = datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc)
client = ebadge.Client.connect("py-rs-sender", profile, durable_outbox=outbox, patience=120)
for n in range(first, last):
    client.send("py-rs-receiver", ebadge.LoadPrice(from_=t0, to=t0 + datetime.timedelta(hours=1), price=n))
    print("sent", n, flush=True)
    if n in pauses:
        print("paused", client.counters()["buffered"], flush=True)
        sys.stdin.readline()
client.flush(timeout=120)
print("flushed", client.counters(), flush=True)
client.close(10)
"""


def sender(outbox: Path, first: int, last: int, pauses: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SENDER, restart_profile(), str(outbox), str(first), str(last), pauses],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(child: subprocess.Popen[str], prefix: str) -> str:
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the sender ended before {prefix!r}: {child.stderr.read() if child.stderr else ''}")


def test_a_broker_restart_and_a_killed_sender_lose_nothing_with_a_durable_outbox(tmp_path: Path) -> None:
    directory = need("EBADGE_RESTART_DIR")
    # A run that failed half-way may have left it down.
    assert cli("broker", "up", "--dir", directory, profile_path=restart_profile(), timeout=180).returncode == 0
    outbox = tmp_path / "outbox.sqlite"
    prices: List[float] = []
    stop = threading.Event()
    receiver = ebadge.Client.connect("py-rs-receiver", restart_profile(), patience=60)
    while (left := receiver.receive(0.3)) is not None:
        left.ack()

    def receive() -> None:
        while not stop.is_set():
            received = receiver.receive(0.5)
            if received is not None:
                assert isinstance(received.message, ebadge.LoadPrice)
                prices.append(received.message.price)
                received.ack()

    reading = threading.Thread(target=receive, daemon=True)
    reading.start()

    # Sends 0..DOWN_AT, waits while the broker goes down, sends up to KILL_AT into the outage,
    # and is killed there.
    first = sender(outbox, 0, TOTAL, f"{DOWN_AT},{KILL_AT}")
    read_until(first, "paused")
    down = cli("broker", "down", "--dir", directory, profile_path=restart_profile(), timeout=120)
    assert down.returncode == 0, down.stderr
    assert first.stdin is not None
    first.stdin.write("go on\n")
    first.stdin.flush()
    paused = read_until(first, "paused")
    buffered = int(paused.split()[1])
    assert buffered >= KILL_AT - DOWN_AT, f"the sends during the outage wait in the outbox: {paused}"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)

    up = cli("broker", "up", "--dir", directory, profile_path=restart_profile(), timeout=180)
    assert up.returncode == 0, up.stderr
    second = sender(outbox, KILL_AT + 1, TOTAL, "")
    out, err = second.communicate(timeout=240)
    assert second.returncode == 0, err
    assert "flushed" in out

    wait_for("every message received", lambda: len(set(prices)) == TOTAL, patience=120)
    time.sleep(2)  # duplicates, if any, would come now
    stop.set()
    reading.join(5)
    receiver.close(5)
    assert sorted(prices) == [float(n) for n in range(TOTAL)], "each message once, none lost"
    assert receiver.counters()["reconnects"] >= 1, "the receiver lived through the restart"
