"""Ctrl-C interrupts a blocking wait of the Rust core (receive, serve) and an asyncio one: the
program gets KeyboardInterrupt at once and can close the client cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bus import profile

PROGRAM = r"""
import asyncio, sys
import ebadge

mode, profile = sys.argv[1], sys.argv[2]

async def wait_async():
    client = await ebadge.AsyncClient.connect("py-sig", profile)
    print("ready", flush=True)
    try:
        await client.receive()
    finally:
        await client.close(5)

if mode == "asyncio":
    try:
        asyncio.run(wait_async())
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    sys.exit(0)

client = ebadge.Client.connect("py-sig", profile)
print("ready", flush=True)
try:
    if mode == "receive":
        client.receive()
    else:
        client.serve()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    closed = client.close(5)
    print("closed", closed.unconfirmed, flush=True)
"""


@pytest.mark.parametrize("mode", ["receive", "serve", "asyncio"])
def test_ctrl_c_interrupts_a_wait(mode: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, mode, profile()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    time.sleep(0.5)
    sent = time.monotonic()
    os.kill(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=20)
    took = time.monotonic() - sent
    assert "interrupted" in out, err
    assert child.returncode == 0, err
    assert took < 8, f"Ctrl-C took {took:.1f} s"
    if mode != "asyncio":
        assert "closed 0" in out
