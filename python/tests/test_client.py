"""The client on the shared test broker (real RabbitMQ, TLS, client certificates): typed
send and receive, handlers (class and decorator), replies, a handler that raises, activations,
market requests, undelivered messages, connection errors, the metrics endpoint."""

from __future__ import annotations

import datetime
import threading
import urllib.request
from typing import Callable, Iterator, List

import pytest

import ebadge
from bus import body_json, pika_drain, profile, wait_for

T0 = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.timezone.utc)
MINUTE = datetime.timedelta(minutes=1)


def report(n: float) -> ebadge.Report:
    return ebadge.Report(from_=T0, to=T0 + MINUTE, resolution=60, values={"total.p": [n]})


def price(n: float) -> ebadge.LoadPrice:
    return ebadge.LoadPrice(from_=T0, to=T0 + MINUTE, price=n)


Connect = Callable[..., ebadge.Client]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Connects clients to the shared broker, draining what earlier runs left in their inboxes;
    closes them at the end."""
    clients: List[ebadge.Client] = []

    def open_client(name: str, drain: bool = True, **options: object) -> ebadge.Client:
        client = ebadge.Client.connect(name, profile(), **options)  # type: ignore[arg-type]
        clients.append(client)
        while drain:
            left = client.receive(0.3)
            if left is None:
                break
            left.ack()
        return client

    yield open_client
    for client in clients:
        if not client.closed:
            client.close(5)


def serve_in_thread(client: ebadge.Client, handler: ebadge.Handler | None = None) -> threading.Thread:
    thread = threading.Thread(target=client.serve, args=(handler,), daemon=True)
    thread.start()
    return thread


def test_typed_messages_go_from_one_python_client_to_another(connect: Connect) -> None:
    a = connect("py-a")
    b = connect("py-b")
    ids = [a.send("py-b", report(n)) for n in (1.0, 2.0, 3.0)]
    a.flush(timeout=10)
    got = []
    for _ in ids:
        received = b.receive(10)
        assert received is not None
        assert isinstance(received.message, ebadge.Report)
        assert received.sender == "py-a"
        assert received.exchange == "py-a-to-py-b"
        assert received.routing_key == "report"
        got.append((received.message_id, received.message.values["total.p"][0]))
        received.ack()
    assert got == [(i, n) for i, n in zip(ids, (1.0, 2.0, 3.0))]
    counters = a.counters()
    assert counters["sent"] >= 3 and counters["confirmed"] >= 3 and counters["buffered"] == 0
    assert b.counters()["received"] == 3


class Hub(ebadge.Handler):
    """Figure 5's consumer: a report for every get_report, an answer to every activation."""

    def on_get_report(self, request: ebadge.GetReport, incoming: ebadge.Received) -> ebadge.Report:
        values = {s: [1.5] * 5 for s in request.signals}
        return ebadge.Report(from_=request.from_, to=request.to, resolution=request.resolution, values=values)

    def on_activate(self, order: ebadge.Activate, incoming: ebadge.Received) -> ebadge.Message:
        if order.quantity > 3:
            return ebadge.ModifyActivation(
                id=order.id, modification_count=order.modification_count, from_=order.from_, to=order.to, quantity=3.0
            )
        return ebadge.AcceptActivation(id=order.id, modification_count=order.modification_count)


def test_a_handler_class_answers_and_activations_get_their_tracked_answers(connect: Connect) -> None:
    op = connect("py-op")
    hub = connect("py-heh")
    serving = serve_in_thread(hub, Hub())
    op.send("py-heh", ebadge.GetReport(from_=T0, to=T0 + 5 * MINUTE, resolution=60, signals=["total.p", "boiler.p"]))
    received = op.receive(10)
    assert received is not None and isinstance(received.message, ebadge.Report)
    assert received.message.values == {"total.p": [1.5] * 5, "boiler.p": [1.5] * 5}
    received.ack()

    order = ebadge.Activate(id="py-act-1", modification_count=0, from_=T0, to=T0 + 15 * MINUTE, quantity=2.0)
    outcome = op.activate("py-heh", order, timeout=10)
    assert outcome.accepted and isinstance(outcome.answer, ebadge.AcceptActivation)
    assert outcome.answer.id == "py-act-1"
    big = ebadge.Activate(id="py-act-2", modification_count=0, from_=T0, to=T0 + 15 * MINUTE, quantity=5.0)
    outcome = op.activate("py-heh", big, timeout=10)
    assert outcome.kind == "modified" and isinstance(outcome.answer, ebadge.ModifyActivation)
    assert outcome.answer.quantity == 3.0
    # A batch: the outcomes in the order of the orders; every order is checked before any goes.
    batch = [
        ("py-heh", ebadge.Activate(id=f"py-many-{n}", modification_count=0, from_=T0, to=T0 + 15 * MINUTE, quantity=q))
        for n, q in enumerate([1.0, 5.0, 2.0])
    ]
    outcomes = op.activate_many(batch, timeout=10)
    assert [o.kind for o in outcomes] == ["accepted", "modified", "accepted"]
    assert [o.answer.id for o in outcomes if o.answer] == ["py-many-0", "py-many-1", "py-many-2"]
    with pytest.raises(TypeError, match="activate takes an activate message"):
        op.activate_many([("py-heh", order), ("py-heh", ebadge.GetAllPrices())], timeout=10)  # type: ignore[list-item]
    assert op.activate_many([], timeout=1) == []

    hub.close(5)
    serving.join(5)
    assert not serving.is_alive(), "close() from another thread ends serve()"
    silent = ebadge.Activate(id="py-act-3", modification_count=0, from_=T0, to=T0 + 15 * MINUTE, quantity=1.0)
    outcome = op.activate("py-heh", silent, timeout=1)
    assert outcome.timed_out and outcome.answer is None


def test_decorated_functions_handle_their_types_and_the_rest_count_as_unhandled(connect: Connect) -> None:
    a = connect("py-a")
    b = connect("py-b")
    prices: List[float] = []

    @b.on(ebadge.LoadPrice)
    def load_price(message: ebadge.LoadPrice, received: ebadge.Received) -> None:
        prices.append(message.price)

    @b.on("get_all_prices")
    def all_prices(message: ebadge.GetAllPrices, received: ebadge.Received) -> ebadge.LoadPrice:
        return price(0.5)

    serving = serve_in_thread(b)
    a.send("py-b", price(0.25))
    a.send("py-b", ebadge.SetClock(offset=0.5))
    a.send("py-b", ebadge.GetAllPrices())
    answer = a.receive(10)
    assert answer is not None and answer.message == price(0.5)
    answer.ack()
    wait_for("the set_clock counted as unhandled", lambda: b.counters()["unhandled"] == 1)
    assert prices == [0.25]
    b.close(5)
    serving.join(5)


def test_a_handler_that_raises_does_not_stop_the_client_and_its_message_is_quarantined_with_the_reason(
    connect: Connect,
) -> None:
    pika_drain("py-hand", "private-py-hand-quarantine", 100, patience=0.5)
    sender = connect("py-feeder")
    hand = connect("py-hand")
    seen: List[float] = []

    @hand.on(ebadge.LoadPrice)
    def on_price(message: ebadge.LoadPrice, received: ebadge.Received) -> object:
        if message.price == 13:
            raise ValueError("price 13 is out of range")
        if message.price == 14:
            return "this is not a message"  # a reply that cannot be sent
        seen.append(message.price)
        return None

    serving = serve_in_thread(hand)
    for n in (12, 13, 14, 15):
        sender.send("py-hand", price(n))
    wait_for("the two good prices handled", lambda: len(seen) == 2)
    assert seen == [12, 15]
    quarantined = pika_drain("py-hand", "private-py-hand-quarantine", 2)
    reasons = {body_json(q)["price"]: str(q["headers"]["x-ebadge-reason"]) for q in quarantined}
    assert reasons[13] == "rejected by the application: ValueError: price 13 is out of range", reasons
    assert reasons[14].startswith("rejected by the application: ebadge.InvalidMessage: not valid JSON"), reasons
    assert sorted(body_json(q)["price"] for q in quarantined) == [13, 14]
    assert all(q["headers"]["x-ebadge-from"] == "py-feeder" for q in quarantined)
    assert hand.counters()["rejected"] == 2
    assert serving.is_alive()
    hand.close(5)
    serving.join(5)
    assert pika_drain("py-hand", "private-py-hand-inbox", 1, patience=0.5) == [], "nothing is offered again"


def test_a_market_request_gets_its_response(connect: Connect) -> None:
    a = connect("py-a")
    b = connect("py-b")

    @b.on(ebadge.BidAccepted)
    def accepted(message: ebadge.BidAccepted, received: ebadge.Received) -> None:
        assert b.respond_ok(received) is not None

    serving = serve_in_thread(b)
    response = a.request("py-b", ebadge.BidAccepted(msg_id="py-msg-1", bid_id="bid-1", quantity=2.0), timeout=10)
    assert response is not None and response.msg_id == "py-msg-1" and response.response_code == 200
    b.close(5)
    serving.join(5)


def test_sends_that_fail_say_why(connect: Connect) -> None:
    a = connect("py-a")
    with pytest.raises(ebadge.InvalidMessage) as invalid:
        a.send("py-b", '{"msg": "load_price", "from": "2026-12-07T10:00:00"}')
    assert invalid.value.msg_type == "load_price" and invalid.value.field == "from"
    # No pair exchange py-a-to-py-heh: the broker refuses it for good.
    a.send("py-heh", price(1))
    with pytest.raises(ebadge.UndeliveredError) as undelivered:
        a.flush(timeout=20)
    records = undelivered.value.records
    assert [r.msg_type for r in records] == ["load_price"]
    assert records[0].exchange == "py-a-to-py-heh" and "NOT_FOUND" in records[0].reason
    assert a.undelivered() == [], "each is reported once"
    a.close(5)
    with pytest.raises(ebadge.NotSent):
        a.send("py-b", price(1))


def test_connection_errors_say_what_to_do(tmp_path: object) -> None:
    with pytest.raises(ebadge.ConnectFailed) as missing:
        ebadge.Client.connect("py-a", "/nonexistent/profile.toml")
    assert "make demo" in str(missing.value)
    with pytest.raises(ebadge.ConnectFailed) as stranger:
        ebadge.Client.connect("py-nobody", profile())
    assert "py-nobody" in str(stranger.value)
    with pytest.raises(ValueError):
        ebadge.Client.connect("not a name!", profile())


def test_the_metrics_endpoint_counts_what_the_client_does(connect: Connect) -> None:
    a = connect("py-a", metrics="127.0.0.1:0")
    b = connect("py-b")
    assert a.metrics_address is not None
    a.send_confirmed("py-b", price(3), timeout=10)
    text = urllib.request.urlopen(f"http://{a.metrics_address}/metrics", timeout=5).read().decode()
    assert 'ebadge_messages_sent_total{entity="py-a",type="load_price"} 1' in text, text
    received = b.receive(10)
    assert received is not None
    received.ack()


def test_failing_handlers_are_told_apart_and_reported_in_one_clean_line(connect: Connect) -> None:
    pika_drain("py-hand", "private-py-hand-quarantine", 100, patience=0.5)
    sender = connect("py-feeder")
    hand = connect("py-hand")

    @hand.on(ebadge.LoadPrice)
    def on_price(message: ebadge.LoadPrice, received: ebadge.Received) -> object:
        if message.price == 21:
            raise ValueError("two\nlines, a lone surrogate \udcff and a long tail " + "x" * 5000)
        if message.price == 22:
            # One good reply and one that cannot be sent: neither goes out.
            return [price(1.0), "not a message"]
        if message.price == 23:
            hand.stop()
        return price(message.price + 100)

    with pytest.raises(TypeError):

        @hand.on(ebadge.GetAllPrices)
        async def coroutine(message: ebadge.GetAllPrices, received: ebadge.Received) -> None: ...

    with pytest.raises(ValueError):
        hand.on("get_prices")

    for n in (21, 22, 23):
        sender.send("py-hand", price(n))
    hand.serve(duration=30)  # stop() in the handler of 23 ends it
    replies = []
    while (r := sender.receive(2)) is not None:
        assert isinstance(r.message, ebadge.LoadPrice)
        replies.append(r.message.price)
        r.ack()
    assert replies == [123], "the reply of the stopping handler went out; the partial answer did not"
    quarantined = pika_drain("py-hand", "private-py-hand-quarantine", 2)
    reasons = {body_json(q)["price"]: str(q["headers"]["x-ebadge-reason"]) for q in quarantined}
    assert set(reasons) == {21, 22}
    long_one = reasons[21]
    assert long_one.startswith("rejected by the application: ValueError: two lines, a lone surrogate \\udcff and a long tail x")
    assert "\n" not in long_one and len(long_one) < 1100, len(long_one)
    assert reasons[22].startswith("rejected by the application: ebadge.InvalidMessage")


def test_a_metrics_address_in_use_leaves_no_client_behind(connect: Connect) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    address = "127.0.0.1:%d" % taken.getsockname()[1]
    with pytest.raises(ebadge.ConnectFailed) as failed:
        ebadge.Client.connect("py-b", profile(), metrics=address)
    assert address in str(failed.value)
    taken.close()
    # Had a client been connected and left running, it would take py-b's messages.
    a = connect("py-a")
    b = connect("py-b")
    a.send("py-b", price(7))
    received = b.receive(10)
    assert received is not None and received.message == price(7)
    received.ack()
