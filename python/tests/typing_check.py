"""Typed use of the message classes, checked by `mypy --strict` (test_messages.py runs it, and runs
this file too): every `assert_type` states what the package's inline types must say."""

from __future__ import annotations

import datetime
import sys
from typing import Any, Dict, List, Optional, Union

import ebadge

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


def report(start: datetime.datetime) -> ebadge.Report:
    return ebadge.Report(
        from_=start,
        to=start + datetime.timedelta(minutes=2),
        resolution=60,
        values={"total.p": [1.73, 1.68]},
        ext={"ext_com_example_note": "typed"},
    )


def activate(start: datetime.datetime, quantity: float) -> ebadge.Activate:
    return ebadge.Activate(
        id="938f2b97-314c-49e8-9860-f441df2284a1",
        modification_count=0,
        from_=start,
        to=start + datetime.timedelta(minutes=5),
        quantity=quantity,
        device="ECAR01",
    )


def describe(message: ebadge.AnyMessage) -> str:
    if isinstance(message, ebadge.Report):
        assert_type(message.values, Dict[str, List[float]])
        return f"report of {sorted(message.values)}"
    if isinstance(message, ebadge.Activate):
        assert_type(message.quantity, float)
        return f"activate {message.quantity} kW"
    if isinstance(message, ebadge.ExtensionMessage):
        return f"extension {message.msg}"
    return message.msg


def main() -> None:
    start = datetime.datetime(2013, 7, 21, 10, 0, tzinfo=datetime.timezone.utc)
    r = report(start)
    assert_type(r.from_, datetime.datetime)
    assert_type(r.resolution, float)
    assert_type(r.heh_id, Optional[str])
    assert_type(r.ext, Dict[str, Any])
    a = activate(start, 3.4)
    assert_type(a.modification_count, int)
    assert_type(a.device, Optional[str])
    text: str = a.to_json()
    decoded = ebadge.decode(text)
    assert_type(decoded, Union[ebadge.Message, ebadge.ExtensionMessage])
    assert describe(decoded) == "activate 3.4 kW"
    assert describe(ebadge.decode(r.to_json().encode("utf-8"))) == "report of ['total.p']"
    assert r.ext["ext_com_example_note"] == "typed"
    event = ebadge.StatusEvent(time=start, severity=4, type="network_down")
    status = ebadge.StatusReport(status="OK", clock=start, events=[event])
    assert_type(status.events[0].time, datetime.datetime)
    mode: ebadge.SmartMode = "passive"
    assert ebadge.SetSmartMode(mode=mode, reset=False).mode == "passive"
    levels: List[str] = [level for _, level in ebadge.message_types()]
    assert len(levels) == 33
    try:
        ebadge.LoadPrice(from_=start, to=start - datetime.timedelta(seconds=1), price=0.1)
    except ebadge.InvalidMessage as e:
        field: Optional[str] = e.field
        assert field == "to" and e.msg_type == "load_price" and "before" in e.reason
    else:
        raise AssertionError("to before from was accepted")


if __name__ == "__main__":
    main()
