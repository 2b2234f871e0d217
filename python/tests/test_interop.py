"""The package with what we did not write in Python: our command line (`ebadge send`,
`ebadge listen`) and a plain pika client (the seed's stack), both ways."""

from __future__ import annotations

import datetime
import json
from typing import Iterator

import pytest

import ebadge
from bus import body_json, ebadge as cli, pika_drain, pika_publish, profile

T0 = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


@pytest.fixture
def a() -> Iterator[ebadge.Client]:
    client = ebadge.Client.connect("py-a", profile())
    while (left := client.receive(0.3)) is not None:
        left.ack()
    yield client
    client.close(5)


def price(n: float) -> ebadge.LoadPrice:
    return ebadge.LoadPrice(from_=T0, to=T0 + datetime.timedelta(hours=1), price=n, ext={"ext_test_run": "interop"})


def test_python_to_the_command_line(a: ebadge.Client) -> None:
    pika_drain("py-b", "private-py-b-inbox", 100, patience=0.3)
    a.send("py-b", price(0.21))
    a.send("py-b", ebadge.GetAllPrices())
    a.flush(timeout=10)
    listened = cli("listen", "--as", "py-b", "--json", "--count", "2", timeout=30)
    assert listened.returncode == 0, listened.stderr
    lines = [json.loads(line) for line in listened.stdout.splitlines()]
    assert [line["from"] for line in lines] == ["py-a", "py-a"]
    assert lines[0]["message"] == json.loads(price(0.21).to_json())
    assert lines[0]["message"]["from"] == "2026-12-07T12:00:00.000+02:00", "the offset is kept"
    assert lines[1]["message"] == {"msg": "get_all_prices"}


def test_the_command_line_to_python(a: ebadge.Client) -> None:
    sent = cli("send", "--as", "py-b", "--to", "py-a", input=price(0.22).to_json() + "\n", timeout=30)
    assert sent.returncode == 0, sent.stderr
    received = a.receive(10)
    assert received is not None
    assert received.sender == "py-b" and received.message == price(0.22)
    assert received.message.ext["ext_test_run"] == "interop"
    received.ack()


def test_pika_to_python(a: ebadge.Client) -> None:
    bodies = [price(0.23).to_json(), '{"msg": "get_all_prices"}']
    pika_publish("py-b", "py-a", "load_price", bodies[:1])
    pika_publish("py-b", "py-a", "get_all_prices", bodies[1:])
    got = []
    for _ in bodies:
        received = a.receive(10)
        assert received is not None
        got.append((received.sender, received.message))
        received.ack()
    assert got == [("py-b", price(0.23)), ("py-b", ebadge.GetAllPrices())]


def test_python_to_pika(a: ebadge.Client) -> None:
    pika_drain("py-b", "private-py-b-inbox", 100, patience=0.3)
    message_id = a.send_confirmed("py-b", price(0.24), timeout=10)
    [record] = pika_drain("py-b", "private-py-b-inbox", 1)
    assert record["exchange"] == "py-a-to-py-b" and record["routing_key"] == "load_price"
    assert record["message_id"] == message_id
    assert record["delivery_mode"] == 2, "persistent"
    assert body_json(record) == json.loads(price(0.24).to_json())
