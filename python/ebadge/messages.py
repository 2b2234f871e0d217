# Generated from the Rust model (crates/ebadge-model, `python::module`) by
# `EBADGE_BLESS=1 cargo test -p ebadge-model --test python_classes`: do not edit.
"""Every eBADGE message type of D3.1.3 as a Python class, and the handler base class.

Build a message with keyword arguments (``from_`` for the field ``from``; ``ext={"ext_x_y": ...}``
for extension fields), read its fields as attributes, write it with ``to_json()``;
``ebadge.decode(text)`` gives the typed object back.
Times are ``datetime`` values with a tzinfo; a naive one is refused, as the Rust decoder refuses
a time without an offset.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, List, Literal, Optional, Type, Union

from ebadge._model import (
    NOT_HANDLED,
    TIME,
    ExtensionMessage,
    F,
    Fields,
    Message,
    NotHandled,
    Object,
    mapping,
    obj,
    seq,
)

if TYPE_CHECKING:
    from ebadge.client import Received

__all__ = [
    "Handler",
    "MESSAGE_TYPES",
    "Reply",
    "SmartMode",
    "DeviceClass",
    "EnergyEvent",
    "StatusEvent",
    "SignalInfo",
    "Product",
    "GetReport",
    "GetPeriodicReport",
    "Report",
    "GetEnergyEvents",
    "GetEnergyEventsRealtime",
    "EnergyEvents",
    "Activate",
    "AcceptActivation",
    "RejectActivation",
    "ModifyActivation",
    "GetActivationCapacity",
    "ActivationCapacity",
    "ContingencyActivate",
    "ContingencyEnd",
    "LoadPrice",
    "GenerationPrice",
    "GetAllPrices",
    "GetStatusReport",
    "StatusReport",
    "SetClock",
    "SetSmartMode",
    "GetCapabilities",
    "Capabilities",
    "DeviceCapabilities",
    "BalancingReserveBid",
    "Response",
    "BidAccepted",
    "MarketCleared",
    "BalancingEnergyBid",
    "ActivateBid",
    "RequestBalancing",
    "BalancingActivated",
    "BalancingUnachievable",
]

SmartMode = Literal["normal", "passive", "off"]

DeviceClass = Literal["consumer", "generator", "storage"]

class EnergyEvent(Object):
    """One event of an `energy_events` message (the spec's table is shifted by a row, erratum 3:
    this follows the field names).

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back."""
    _fields: ClassVar[Fields] = (
        F("severity", "severity", "req", None),
        F("type", "type", "req", None),
        F("start_time", "start_time", "req", TIME),
        F("end_time", "end_time", "null", TIME),
    )
    severity: int
    """Higher is more severe."""
    type: str
    """`voltage_low`, `voltage_high`, `frequency_low`, `frequency_high`, or a later addition."""
    start_time: datetime.datetime
    """When the event started."""
    end_time: Optional[datetime.datetime]
    """When it ended; null while it lasts."""

    def __init__(
        self,
        *,
        severity: int,
        type: str,
        start_time: datetime.datetime,
        end_time: Optional[datetime.datetime] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((severity, type, start_time, end_time), ext)

class StatusEvent(Object):
    """One event of a `status_report`.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back."""
    _fields: ClassVar[Fields] = (
        F("time", "time", "req", TIME),
        F("severity", "severity", "req", None),
        F("type", "type", "req", None),
    )
    time: datetime.datetime
    """When it happened."""
    severity: int
    """Higher is more severe."""
    type: str
    """What happened, e.g. `network_down`."""

    def __init__(
        self,
        *,
        time: datetime.datetime,
        severity: int,
        type: str,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((time, severity, type), ext)

class SignalInfo(Object):
    """A signal a device can measure (`device_capabilities.signals`).

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back."""
    _fields: ClassVar[Fields] = (
        F("name", "name", "req", None),
        F("desc", "desc", "req", None),
        F("unit", "unit", "req", None),
        F("range", "range", "opt", None),
    )
    name: str
    """Signal name, e.g. `p`."""
    desc: str
    """Human-readable meaning."""
    unit: str
    """The unit every value is reported in (SHOULD be kW/kVA/kWh/A/V/Hz for electricity)."""
    range: Optional[List[float]]
    """Possible range of values (optional)."""

    def __init__(
        self,
        *,
        name: str,
        desc: str,
        unit: str,
        range: Optional[List[float]] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((name, desc, unit, range), ext)

class Product(Object):
    """A balancing product: direction and period ("one true product, one merit list").

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back."""
    _fields: ClassVar[Fields] = (
        F("positive", "positive", "req", None),
        F("start", "start", "req", TIME),
        F("end", "end", "req", TIME),
    )
    positive: bool
    """true for generation/injection/upward, false for consumption/withdrawal/downward."""
    start: datetime.datetime
    """Start of the period covered."""
    end: datetime.datetime
    """End of the period covered; after `start`."""

    def __init__(
        self,
        *,
        positive: bool,
        start: datetime.datetime,
        end: datetime.datetime,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((positive, start, end), ext)

class GetReport(Message):
    """`get_report` (D3.1.3 5.2.1): request for an individual measurement. Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_report"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("resolution", "resolution", "req", None),
        F("signals", "signals", "req", None),
        F("heh_id", "heh_id", "null", None),
    )
    from_: datetime.datetime
    """Start of the period to report."""
    to: datetime.datetime
    """End of the period to report."""
    resolution: float
    """Seconds per value; greater than 0."""
    signals: List[str]
    """The `device.signal`s to report (erratum 1: a comma-separated entry is split)."""
    heh_id: Optional[str]
    """The HEH the request is about, when a VPP uses an HEH operator's service."""

    def __init__(
        self,
        *,
        from_: datetime.datetime,
        to: datetime.datetime,
        resolution: float,
        signals: List[str],
        heh_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((from_, to, resolution, signals, heh_id), ext)

class GetPeriodicReport(Message):
    """`get_periodic_report` (D3.1.3 5.2.2): request for periodic reports; overrides the previous
    one. Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_periodic_report"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("interval", "interval", "req", None),
        F("first_from", "first_from", "null", TIME),
        F("resolution", "resolution", "req", None),
        F("signals", "signals", "req", None),
        F("heh_id", "heh_id", "null", None),
        F("request_id", "request_id", "opt", None),
    )
    interval: float
    """Seconds between reports, or -1 to stop periodic reports."""
    first_from: Optional[datetime.datetime]
    """Start of the first report's period; null: any time between now and now + interval."""
    resolution: float
    """Seconds per value; greater than 0."""
    signals: List[str]
    """The `device.signal`s to report."""
    heh_id: Optional[str]
    """The HEH the request is about, when a VPP uses an HEH operator's service."""
    request_id: Optional[str]
    """The ID of this periodic report request (optional)."""

    def __init__(
        self,
        *,
        interval: float,
        first_from: Optional[datetime.datetime] = None,
        resolution: float,
        signals: List[str],
        heh_id: Optional[str] = None,
        request_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((interval, first_from, resolution, signals, heh_id, request_id), ext)

class Report(Message):
    """`report` (D3.1.3 5.2.3): measured values of signals, on request or periodically. HEH →
    controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "report"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("resolution", "resolution", "req", None),
        F("values", "values", "req", None),
        F("heh_id", "heh_id", "null", None),
    )
    from_: datetime.datetime
    """Start of the period covered."""
    to: datetime.datetime
    """End of the period covered."""
    resolution: float
    """Seconds per value; greater than 0."""
    values: Dict[str, List[float]]
    """For each signal, (to - from) / resolution values, rounded up."""
    heh_id: Optional[str]
    """The HEH the report is about, when an HEH operator reports to a VPP."""

    def __init__(
        self,
        *,
        from_: datetime.datetime,
        to: datetime.datetime,
        resolution: float,
        values: Dict[str, List[float]],
        heh_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((from_, to, resolution, values, heh_id), ext)

class GetEnergyEvents(Message):
    """`get_energy_events` (D3.1.3 5.2.4): request for energy-related anomalous events in a period.
    Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_energy_events"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("severity", "severity", "req", None),
    )
    from_: datetime.datetime
    """Start of the period."""
    to: datetime.datetime
    """End of the period."""
    severity: int
    """Minimum severity to include."""

    def __init__(
        self,
        *,
        from_: datetime.datetime,
        to: datetime.datetime,
        severity: int,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((from_, to, severity), ext)

class GetEnergyEventsRealtime(Message):
    """`get_energy_events_realtime` (D3.1.3 5.2.5): report events as they happen. Controlling
    entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_energy_events_realtime"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("severity", "severity", "req", None),
    )
    severity: int
    """Minimum severity to report at once; very high disables real-time reporting."""

    def __init__(
        self,
        *,
        severity: int,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((severity,), ext)

class EnergyEvents(Message):
    """`energy_events` (D3.1.3 5.2.6): energy-related events, on severe events or on request. HEH →
    controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "energy_events"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("events", "events", "req", seq(obj(EnergyEvent))),
    )
    events: List[EnergyEvent]
    """The events."""

    def __init__(
        self,
        *,
        events: List[EnergyEvent],
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((events,), ext)

class Activate(Message):
    """`activate` (D3.1.3 5.3.1): an activation order. Controlling entity → HEH. `id` and
    `modification_count` together identify it; a higher count modifies an accepted activation.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "activate"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("id", "id", "req", None),
        F("modification_count", "modification_count", "req", None),
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("quantity", "quantity", "req", None),
        F("device", "device", "null", None),
        F("heh_id", "heh_id", "null", None),
    )
    id: str
    """Unique ID of the activation order, assigned by the VPP."""
    modification_count: int
    """Increased each time a modified activation is sent."""
    from_: datetime.datetime
    """Start."""
    to: datetime.datetime
    """End."""
    quantity: float
    """kW; positive to increase generation or decrease load, negative for the reverse."""
    device: Optional[str]
    """Device ID; null for any/total."""
    heh_id: Optional[str]
    """The HEH the order is for, when a VPP uses an HEH operator's service."""

    def __init__(
        self,
        *,
        id: str,
        modification_count: int,
        from_: datetime.datetime,
        to: datetime.datetime,
        quantity: float,
        device: Optional[str] = None,
        heh_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((id, modification_count, from_, to, quantity, device, heh_id), ext)

class AcceptActivation(Message):
    """`accept_activation` (D3.1.3 5.3.2): activation accepted. HEH → controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "accept_activation"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("id", "id", "req", None),
        F("modification_count", "modification_count", "req", None),
    )
    id: str
    """The ID of the accepted activation."""
    modification_count: int
    """Its modification count."""

    def __init__(
        self,
        *,
        id: str,
        modification_count: int,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((id, modification_count), ext)

class RejectActivation(Message):
    """`reject_activation` (D3.1.3 5.3.3): activation rejected; rejecting a modification keeps the
    previously accepted version. HEH → controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "reject_activation"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("id", "id", "req", None),
        F("modification_count", "modification_count", "req", None),
    )
    id: str
    """The ID of the rejected activation."""
    modification_count: int
    """Its modification count."""

    def __init__(
        self,
        *,
        id: str,
        modification_count: int,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((id, modification_count), ext)

class ModifyActivation(Message):
    """`modify_activation` (D3.1.3 5.3.4): a counter-proposal; implies rejection of the original.
    HEH → controlling entity. All fields are present, changed or not.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "modify_activation"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("id", "id", "req", None),
        F("modification_count", "modification_count", "req", None),
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("quantity", "quantity", "req", None),
        F("device", "device", "null", None),
    )
    id: str
    """The ID of the activation."""
    modification_count: int
    """Its modification count."""
    from_: datetime.datetime
    """Proposed start."""
    to: datetime.datetime
    """Proposed end."""
    quantity: float
    """Proposed kW (erratum 2: the spec's example writes it as a string; read, never written so)."""
    device: Optional[str]
    """Device ID; null for any/total."""

    def __init__(
        self,
        *,
        id: str,
        modification_count: int,
        from_: datetime.datetime,
        to: datetime.datetime,
        quantity: float,
        device: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((id, modification_count, from_, to, quantity, device), ext)

class GetActivationCapacity(Message):
    """`get_activation_capacity` (D3.1.3 5.3.5): request for the capacity available now.
    Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_activation_capacity"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("device", "device", "null", None),
        F("heh_id", "heh_id", "null", None),
    )
    device: Optional[str]
    """The device to report for; null for the HEH's total."""
    heh_id: Optional[str]
    """The HEH the request is about, when a VPP uses an HEH operator's service."""

    def __init__(
        self,
        *,
        device: Optional[str] = None,
        heh_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((device, heh_id), ext)

class ActivationCapacity(Message):
    """`activation_capacity` (D3.1.3 5.3.6): answer to `get_activation_capacity`. HEH →
    controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "activation_capacity"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("device", "device", "null", None),
        F("pos_capacity", "pos_capacity", "req", None),
        F("neg_capacity", "neg_capacity", "req", None),
        F("heh_id", "heh_id", "null", None),
    )
    device: Optional[str]
    """The device reported for; null for the HEH's total."""
    pos_capacity: float
    """kW available for increasing production / decreasing load; not negative."""
    neg_capacity: float
    """kW available for decreasing production / increasing load; not negative."""
    heh_id: Optional[str]
    """The HEH the answer is about, when an HEH operator answers a VPP."""

    def __init__(
        self,
        *,
        device: Optional[str] = None,
        pos_capacity: float,
        neg_capacity: float,
        heh_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((device, pos_capacity, neg_capacity, heh_id), ext)

class ContingencyActivate(Message):
    """`contingency_activate` (D3.1.3 5.3.7): activate as much as possible up to `max_quantity`;
    not acknowledged. Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "contingency_activate"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("id", "id", "req", None),
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("max_quantity", "max_quantity", "null", None),
        F("heh_id", "heh_id", "opt", None),
    )
    id: str
    """Unique ID."""
    from_: datetime.datetime
    """Start; a past time means as soon as possible."""
    to: datetime.datetime
    """End."""
    max_quantity: Optional[float]
    """kW at most; null for no limit."""
    heh_id: Optional[str]
    """The HEH the order is for (erratum 4: the example has none, the heh_id text applies);
    left out when not set."""

    def __init__(
        self,
        *,
        id: str,
        from_: datetime.datetime,
        to: datetime.datetime,
        max_quantity: Optional[float] = None,
        heh_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((id, from_, to, max_quantity, heh_id), ext)

class ContingencyEnd(Message):
    """`contingency_end` (D3.1.3 5.3.8): when a contingency activation ends. Controlling entity →
    HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "contingency_end"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("id", "id", "req", None),
        F("end", "end", "req", TIME),
        F("heh_id", "heh_id", "opt", None),
    )
    id: str
    """The contingency activation being ended."""
    end: datetime.datetime
    """When to end; a past time ends it at once."""
    heh_id: Optional[str]
    """The HEH the order is for (erratum 4); left out when not set."""

    def __init__(
        self,
        *,
        id: str,
        end: datetime.datetime,
        heh_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((id, end, heh_id), ext)

class LoadPrice(Message):
    """`load_price` (D3.1.3 5.3.9): the price at which the end user buys energy. Controlling
    entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "load_price"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("price", "price", "req", None),
    )
    from_: datetime.datetime
    """Start of validity."""
    to: datetime.datetime
    """End of validity."""
    price: float
    """€/kWh."""

    def __init__(
        self,
        *,
        from_: datetime.datetime,
        to: datetime.datetime,
        price: float,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((from_, to, price), ext)

class GenerationPrice(Message):
    """`generation_price` (D3.1.3 5.3.10): the price at which the end user sells energy from a
    generator. Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "generation_price"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("price", "price", "req", None),
        F("device", "device", "req", None),
    )
    from_: datetime.datetime
    """Start of validity."""
    to: datetime.datetime
    """End of validity."""
    price: float
    """€/kWh."""
    device: str
    """The generator the price is for."""

    def __init__(
        self,
        *,
        from_: datetime.datetime,
        to: datetime.datetime,
        price: float,
        device: str,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((from_, to, price, device), ext)

class GetAllPrices(Message):
    """`get_all_prices` (D3.1.3 5.3.11): request for all pricing information, sent by an HEH on
    first boot. HEH → controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_all_prices"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
    )

    def __init__(
        self,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((), ext)

class GetStatusReport(Message):
    """`get_status_report` (D3.1.3 5.4.1): request for the current status and the events of a
    period. Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_status_report"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("severity_threshold", "severity_threshold", "req", None),
    )
    from_: datetime.datetime
    """Start of the period."""
    to: datetime.datetime
    """End of the period."""
    severity_threshold: int
    """Events of this and higher severity are reported."""

    def __init__(
        self,
        *,
        from_: datetime.datetime,
        to: datetime.datetime,
        severity_threshold: int,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((from_, to, severity_threshold), ext)

class StatusReport(Message):
    """`status_report` (D3.1.3 5.4.2): status, on request or on the most severe events. HEH →
    controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "status_report"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("status", "status", "req", None),
        F("clock", "clock", "req", TIME),
        F("events", "events", "req", seq(obj(StatusEvent))),
    )
    status: str
    """Free-form status, e.g. `OK`."""
    clock: datetime.datetime
    """The HEH's clock, to check it is in sync."""
    events: List[StatusEvent]
    """Events of the period asked for."""

    def __init__(
        self,
        *,
        status: str,
        clock: datetime.datetime,
        events: List[StatusEvent],
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((status, clock, events), ext)

class SetClock(Message):
    """`set_clock` (D3.1.3 5.4.3): correct the HEH's clock. Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "set_clock"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("offset", "offset", "null", None),
    )
    offset: Optional[float]
    """Seconds to add to the clock; null: re-sync by default means (NTP)."""

    def __init__(
        self,
        *,
        offset: Optional[float] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((offset,), ext)

class SetSmartMode(Message):
    """`set_smart_mode` (D3.1.3 5.4.4): switch the HEH between smart and non-smart operation.
    Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "set_smart_mode"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("mode", "mode", "req", None),
        F("reset", "reset", "req", None),
    )
    mode: SmartMode
    """`normal`, `passive` or `off`."""
    reset: bool
    """Also forget activations, prices etc. and reboot; ignored when `mode` is `off`."""

    def __init__(
        self,
        *,
        mode: SmartMode,
        reset: bool,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((mode, reset), ext)

class GetCapabilities(Message):
    """`get_capabilities` (D3.1.3 5.4.5): request for the HEH's or a device's capabilities.
    Controlling entity → HEH.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "get_capabilities"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("device", "device", "null", None),
    )
    device: Optional[str]
    """Device ID; null for the HEH itself."""

    def __init__(
        self,
        *,
        device: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((device,), ext)

class Capabilities(Message):
    """`capabilities` (D3.1.3 5.4.6): the HEH's capabilities; sent on every boot, which tells the
    VPP the HEH is online (D3.1.3 7.1). HEH → controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "capabilities"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("device_name", "device_name", "req", None),
        F("device_version", "device_version", "req", None),
        F("device_sn", "device_sn", "opt", None),
        F("device_ip", "device_ip", "opt", None),
        F("device_mac", "device_mac", "opt", None),
        F("devices", "devices", "req", None),
    )
    device_name: str
    """e.g. "eBADGE Home Energy Hub"."""
    device_version: str
    """e.g. "1.0"."""
    device_sn: Optional[str]
    """Serial number (optional)."""
    device_ip: Optional[str]
    """IP address (optional)."""
    device_mac: Optional[str]
    """MAC address (optional)."""
    devices: List[str]
    """The device IDs the HEH knows, possibly including `total`."""

    def __init__(
        self,
        *,
        device_name: str,
        device_version: str,
        device_sn: Optional[str] = None,
        device_ip: Optional[str] = None,
        device_mac: Optional[str] = None,
        devices: List[str],
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((device_name, device_version, device_sn, device_ip, device_mac, devices), ext)

class DeviceCapabilities(Message):
    """`device_capabilities` (D3.1.3 5.4.7): a device's capabilities and signals. HEH →
    controlling entity.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "device_capabilities"
    level: ClassVar[str] = "heh"
    _fields: ClassVar[Fields] = (
        F("device", "device", "req", None),
        F("classes", "classes", "req", None),
        F("type", "type", "req", None),
        F("device_name", "device_name", "req", None),
        F("version", "version", "req", None),
        F("signals", "signals", "req", seq(obj(SignalInfo))),
        F("can_predict_profile", "can_predict_profile", "req", None),
        F("can_predict_curtailment_capacity", "can_predict_curtailment_capacity", "req", None),
    )
    device: str
    """Device ID."""
    classes: List[DeviceClass]
    """A subset (possibly empty) of consumer, generator, storage."""
    type: str
    """Hierarchical type, e.g. `car/electric`."""
    device_name: str
    """Descriptive name."""
    version: str
    """Version."""
    signals: List[SignalInfo]
    """What the device can measure."""
    can_predict_profile: bool
    """It can predict its profile."""
    can_predict_curtailment_capacity: bool
    """It can predict its curtailment capacity."""

    def __init__(
        self,
        *,
        device: str,
        classes: List[DeviceClass],
        type: str,
        device_name: str,
        version: str,
        signals: List[SignalInfo],
        can_predict_profile: bool,
        can_predict_curtailment_capacity: bool,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((device, classes, type, device_name, version, signals, can_predict_profile, can_predict_curtailment_capacity), ext)

class BalancingReserveBid(Message):
    """`balancing_reserve_bid` (D3.1.3 6.1.1). BSP → TSO of its balancing zone.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "balancing_reserve_bid"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("msg_id", "msg_id", "req", None),
        F("bid_id", "bid_id", "req", None),
        F("product", "product", "req", obj(Product)),
        F("quantity", "quantity", "req", None),
        F("divisible", "divisible", "opt", None),
        F("reserve_price", "reserve_price", "req", None),
        F("energy_price", "energy_price", "req", None),
    )
    msg_id: str
    """UUID of this message; the TSO answers with a `response`."""
    bid_id: str
    """UUID of the bid; re-bidding the same ID changes it, quantity 0 cancels it."""
    product: Product
    """The product bid for."""
    quantity: float
    """MW; not negative."""
    divisible: Optional[bool]
    """false for all-or-nothing; optional, true when left out."""
    reserve_price: float
    """€/MWh."""
    energy_price: float
    """€/MWh."""

    def __init__(
        self,
        *,
        msg_id: str,
        bid_id: str,
        product: Product,
        quantity: float,
        divisible: Optional[bool] = None,
        reserve_price: float,
        energy_price: float,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((msg_id, bid_id, product, quantity, divisible, reserve_price, energy_price), ext)

class Response(Message):
    """`response` (D3.1.3 6.1.2): acknowledgement or rejection of a message with `msg_id`. Receiver
    of the original → its sender.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "response"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("msg_id", "msg_id", "req", None),
        F("response_code", "response_code", "req", None),
        F("response_subcode", "response_subcode", "opt", None),
        F("response_desc", "response_desc", "req", None),
    )
    msg_id: str
    """The `msg_id` answered."""
    response_code: int
    """HTTP-like code; 200 is OK."""
    response_subcode: Optional[int]
    """Message-specific detail (optional)."""
    response_desc: str
    """"OK", or what went wrong."""

    def __init__(
        self,
        *,
        msg_id: str,
        response_code: int,
        response_subcode: Optional[int] = None,
        response_desc: str,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((msg_id, response_code, response_subcode, response_desc), ext)

class BidAccepted(Message):
    """`bid_accepted` (D3.1.3 6.1.3): the BSP must confirm and reserve the capacity. TSO → BSP.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "bid_accepted"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("msg_id", "msg_id", "req", None),
        F("bid_id", "bid_id", "req", None),
        F("quantity", "quantity", "req", None),
    )
    msg_id: str
    """UUID of this message."""
    bid_id: str
    """The accepted bid."""
    quantity: float
    """Accepted MW; not negative."""

    def __init__(
        self,
        *,
        msg_id: str,
        bid_id: str,
        quantity: float,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((msg_id, bid_id, quantity), ext)

class MarketCleared(Message):
    """`market_cleared` (D3.1.3 6.1.4): bids not yet accepted never will be. TSO → BSPs.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "market_cleared"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("product", "product", "req", obj(Product)),
    )
    product: Product
    """The product whose market is cleared."""

    def __init__(
        self,
        *,
        product: Product,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((product,), ext)

class BalancingEnergyBid(Message):
    """`balancing_energy_bid` (D3.1.3 6.2.1). BSP → TSO, and TSO → super-TSO when forwarded.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "balancing_energy_bid"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("msg_id", "msg_id", "req", None),
        F("bid_id", "bid_id", "req", None),
        F("product", "product", "req", obj(Product)),
        F("quantity", "quantity", "req", None),
        F("divisible", "divisible", "opt", None),
        F("energy_price", "energy_price", "req", None),
    )
    msg_id: str
    """UUID of this message."""
    bid_id: str
    """UUID of the bid."""
    product: Product
    """The product bid for."""
    quantity: float
    """MWh; not negative."""
    divisible: Optional[bool]
    """false for all-or-nothing; true when left out."""
    energy_price: float
    """€/MWh."""

    def __init__(
        self,
        *,
        msg_id: str,
        bid_id: str,
        product: Product,
        quantity: float,
        divisible: Optional[bool] = None,
        energy_price: float,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((msg_id, bid_id, product, quantity, divisible, energy_price), ext)

class ActivateBid(Message):
    """`activate_bid` (D3.1.3 6.2.2): the BSP must confirm and activate. TSO → BSP (or super-TSO →
    originating TSO).

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "activate_bid"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("msg_id", "msg_id", "req", None),
        F("bid_id", "bid_id", "req", None),
        F("quantity", "quantity", "req", None),
        F("from_", "from", "null", TIME),
        F("to", "to", "null", TIME),
    )
    msg_id: str
    """UUID of this message."""
    bid_id: str
    """The bid to activate."""
    quantity: float
    """Quantity to activate; not negative."""
    from_: Optional[datetime.datetime]
    """Start; null for as soon as possible."""
    to: Optional[datetime.datetime]
    """End; null for the end of the product."""

    def __init__(
        self,
        *,
        msg_id: str,
        bid_id: str,
        quantity: float,
        from_: Optional[datetime.datetime] = None,
        to: Optional[datetime.datetime] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((msg_id, bid_id, quantity, from_, to), ext)

class RequestBalancing(Message):
    """`request_balancing` (D3.1.3 6.3.1): report an imbalance and ask for balancing energy.
    TSO → super-TSO.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "request_balancing"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("msg_id", "msg_id", "req", None),
        F("quantity", "quantity", "req", None),
        F("from_", "from", "null", TIME),
        F("to", "to", "null", TIME),
    )
    msg_id: str
    """UUID of this message."""
    quantity: float
    """Positive for a shortage, negative for a surplus."""
    from_: Optional[datetime.datetime]
    """When balancing is needed; null for now."""
    to: Optional[datetime.datetime]
    """Until when; null until further notice."""

    def __init__(
        self,
        *,
        msg_id: str,
        quantity: float,
        from_: Optional[datetime.datetime] = None,
        to: Optional[datetime.datetime] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((msg_id, quantity, from_, to), ext)

class BalancingActivated(Message):
    """`balancing_activated` (D3.1.3 6.3.2): the TSO's balance is (partly) restored; not
    acknowledged. Super-TSO → requesting TSO. (The spec's table is shifted by a row, erratum 3:
    this follows the field names.)

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "balancing_activated"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("quantity", "quantity", "req", None),
        F("from_", "from", "req", TIME),
        F("to", "to", "req", TIME),
        F("originating_tso", "originating_tso", "req", None),
        F("bid_id", "bid_id", "null", None),
    )
    quantity: float
    """Added to the TSO's position."""
    from_: datetime.datetime
    """Start of activation."""
    to: datetime.datetime
    """End of activation."""
    originating_tso: str
    """The TSO the energy comes from."""
    bid_id: Optional[str]
    """The bid activated; null when two TSOs' imbalances were netted."""

    def __init__(
        self,
        *,
        quantity: float,
        from_: datetime.datetime,
        to: datetime.datetime,
        originating_tso: str,
        bid_id: Optional[str] = None,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((quantity, from_, to, originating_tso, bid_id), ext)

class BalancingUnachievable(Message):
    """`balancing_unachievable` (D3.1.3 6.3.3): a balancing request cannot be (fully) met.
    Super-TSO → requesting TSO.

    Keyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.
    Raises InvalidMessage (with the type and the field) when the values break the model."""
    msg: ClassVar[str] = "balancing_unachievable"
    level: ClassVar[str] = "market"
    _fields: ClassVar[Fields] = (
        F("msg_id", "msg_id", "req", None),
        F("request_id", "request_id", "req", None),
    )
    msg_id: str
    """UUID of this message."""
    request_id: str
    """The `msg_id` of the `request_balancing` it refers to."""

    def __init__(
        self,
        *,
        msg_id: str,
        request_id: str,
        ext: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._init((msg_id, request_id), ext)


#: Every message class by its `msg` name.
MESSAGE_TYPES: Dict[str, Type[Message]] = {
    "get_report": GetReport,
    "get_periodic_report": GetPeriodicReport,
    "report": Report,
    "get_energy_events": GetEnergyEvents,
    "get_energy_events_realtime": GetEnergyEventsRealtime,
    "energy_events": EnergyEvents,
    "activate": Activate,
    "accept_activation": AcceptActivation,
    "reject_activation": RejectActivation,
    "modify_activation": ModifyActivation,
    "get_activation_capacity": GetActivationCapacity,
    "activation_capacity": ActivationCapacity,
    "contingency_activate": ContingencyActivate,
    "contingency_end": ContingencyEnd,
    "load_price": LoadPrice,
    "generation_price": GenerationPrice,
    "get_all_prices": GetAllPrices,
    "get_status_report": GetStatusReport,
    "status_report": StatusReport,
    "set_clock": SetClock,
    "set_smart_mode": SetSmartMode,
    "get_capabilities": GetCapabilities,
    "capabilities": Capabilities,
    "device_capabilities": DeviceCapabilities,
    "balancing_reserve_bid": BalancingReserveBid,
    "response": Response,
    "bid_accepted": BidAccepted,
    "market_cleared": MarketCleared,
    "balancing_energy_bid": BalancingEnergyBid,
    "activate_bid": ActivateBid,
    "request_balancing": RequestBalancing,
    "balancing_activated": BalancingActivated,
    "balancing_unachievable": BalancingUnachievable,
}

#: What a handler method may return: nothing, a message, or several, each sent back to the sender.
#: ``NOT_HANDLED`` (what the methods not overridden return) counts the message as unhandled.
Reply = Union[None, Message, Iterable[Message], NotHandled]


class Handler:
    """Receives typed messages: the seed's ``AbstractConsumer``. Override ``on_<type>`` for the
    types you handle; each gets the message and the delivery (``incoming.sender`` and friends), and
    may return a message (or several) to send back to the sender. A method that raises does not stop
    the client: the message goes to the quarantine with the exception as the reason. Types without
    a method are counted as unhandled and acknowledged.
    """

    def on_get_report(self, message: GetReport, incoming: Received) -> Reply:
        """A `get_report` message arrived."""
        return NOT_HANDLED

    def on_get_periodic_report(self, message: GetPeriodicReport, incoming: Received) -> Reply:
        """A `get_periodic_report` message arrived."""
        return NOT_HANDLED

    def on_report(self, message: Report, incoming: Received) -> Reply:
        """A `report` message arrived."""
        return NOT_HANDLED

    def on_get_energy_events(self, message: GetEnergyEvents, incoming: Received) -> Reply:
        """A `get_energy_events` message arrived."""
        return NOT_HANDLED

    def on_get_energy_events_realtime(self, message: GetEnergyEventsRealtime, incoming: Received) -> Reply:
        """A `get_energy_events_realtime` message arrived."""
        return NOT_HANDLED

    def on_energy_events(self, message: EnergyEvents, incoming: Received) -> Reply:
        """A `energy_events` message arrived."""
        return NOT_HANDLED

    def on_activate(self, message: Activate, incoming: Received) -> Reply:
        """A `activate` message arrived."""
        return NOT_HANDLED

    def on_accept_activation(self, message: AcceptActivation, incoming: Received) -> Reply:
        """A `accept_activation` message arrived."""
        return NOT_HANDLED

    def on_reject_activation(self, message: RejectActivation, incoming: Received) -> Reply:
        """A `reject_activation` message arrived."""
        return NOT_HANDLED

    def on_modify_activation(self, message: ModifyActivation, incoming: Received) -> Reply:
        """A `modify_activation` message arrived."""
        return NOT_HANDLED

    def on_get_activation_capacity(self, message: GetActivationCapacity, incoming: Received) -> Reply:
        """A `get_activation_capacity` message arrived."""
        return NOT_HANDLED

    def on_activation_capacity(self, message: ActivationCapacity, incoming: Received) -> Reply:
        """A `activation_capacity` message arrived."""
        return NOT_HANDLED

    def on_contingency_activate(self, message: ContingencyActivate, incoming: Received) -> Reply:
        """A `contingency_activate` message arrived."""
        return NOT_HANDLED

    def on_contingency_end(self, message: ContingencyEnd, incoming: Received) -> Reply:
        """A `contingency_end` message arrived."""
        return NOT_HANDLED

    def on_load_price(self, message: LoadPrice, incoming: Received) -> Reply:
        """A `load_price` message arrived."""
        return NOT_HANDLED

    def on_generation_price(self, message: GenerationPrice, incoming: Received) -> Reply:
        """A `generation_price` message arrived."""
        return NOT_HANDLED

    def on_get_all_prices(self, message: GetAllPrices, incoming: Received) -> Reply:
        """A `get_all_prices` message arrived."""
        return NOT_HANDLED

    def on_get_status_report(self, message: GetStatusReport, incoming: Received) -> Reply:
        """A `get_status_report` message arrived."""
        return NOT_HANDLED

    def on_status_report(self, message: StatusReport, incoming: Received) -> Reply:
        """A `status_report` message arrived."""
        return NOT_HANDLED

    def on_set_clock(self, message: SetClock, incoming: Received) -> Reply:
        """A `set_clock` message arrived."""
        return NOT_HANDLED

    def on_set_smart_mode(self, message: SetSmartMode, incoming: Received) -> Reply:
        """A `set_smart_mode` message arrived."""
        return NOT_HANDLED

    def on_get_capabilities(self, message: GetCapabilities, incoming: Received) -> Reply:
        """A `get_capabilities` message arrived."""
        return NOT_HANDLED

    def on_capabilities(self, message: Capabilities, incoming: Received) -> Reply:
        """A `capabilities` message arrived."""
        return NOT_HANDLED

    def on_device_capabilities(self, message: DeviceCapabilities, incoming: Received) -> Reply:
        """A `device_capabilities` message arrived."""
        return NOT_HANDLED

    def on_balancing_reserve_bid(self, message: BalancingReserveBid, incoming: Received) -> Reply:
        """A `balancing_reserve_bid` message arrived."""
        return NOT_HANDLED

    def on_response(self, message: Response, incoming: Received) -> Reply:
        """A `response` message arrived."""
        return NOT_HANDLED

    def on_bid_accepted(self, message: BidAccepted, incoming: Received) -> Reply:
        """A `bid_accepted` message arrived."""
        return NOT_HANDLED

    def on_market_cleared(self, message: MarketCleared, incoming: Received) -> Reply:
        """A `market_cleared` message arrived."""
        return NOT_HANDLED

    def on_balancing_energy_bid(self, message: BalancingEnergyBid, incoming: Received) -> Reply:
        """A `balancing_energy_bid` message arrived."""
        return NOT_HANDLED

    def on_activate_bid(self, message: ActivateBid, incoming: Received) -> Reply:
        """A `activate_bid` message arrived."""
        return NOT_HANDLED

    def on_request_balancing(self, message: RequestBalancing, incoming: Received) -> Reply:
        """A `request_balancing` message arrived."""
        return NOT_HANDLED

    def on_balancing_activated(self, message: BalancingActivated, incoming: Received) -> Reply:
        """A `balancing_activated` message arrived."""
        return NOT_HANDLED

    def on_balancing_unachievable(self, message: BalancingUnachievable, incoming: Received) -> Reply:
        """A `balancing_unachievable` message arrived."""
        return NOT_HANDLED

    def on_extension(self, message: ExtensionMessage, incoming: Received) -> Reply:
        """A message of an `ext_` type arrived."""
        return NOT_HANDLED
