"""The machinery behind the message classes of ``ebadge.messages``: field tables, conversion of
times and nested objects, validation through the Rust core, decoding into the typed classes.

Validation is the Rust decoder's, run on the JSON a message would be written as, so a Python
message is refused for exactly the reasons a Rust peer would refuse it, with the same words.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, List, NamedTuple, Optional, Tuple, Type, TypeVar, Union

from ebadge import _core

InvalidMessage = _core.InvalidMessage


def _invalid_msg_type(self: BaseException) -> Optional[str]:
    return self.args[0] if len(self.args) == 3 else None


def _invalid_field(self: BaseException) -> Optional[str]:
    return self.args[1] if len(self.args) == 3 else None


def _invalid_reason(self: BaseException) -> str:
    return self.args[2] if len(self.args) == 3 else str(self.args[0] if self.args else "")


def _invalid_str(self: BaseException) -> str:
    if len(self.args) != 3:
        return str(self.args[0]) if self.args else ""
    msg_type, field, reason = self.args
    text = f"{msg_type}: " if msg_type else ""
    if field:
        text += f"field {field}: "
    return text + str(reason)


# The exception class is the core's; its facts are named here (the stubs declare them).
setattr(InvalidMessage, "msg_type", property(_invalid_msg_type, doc="The message type, when known."))
setattr(InvalidMessage, "field", property(_invalid_field, doc="The field path (`product.start`, `events[0].time`), or None for the message as a whole."))
setattr(InvalidMessage, "reason", property(_invalid_reason, doc="What is wrong."))
setattr(InvalidMessage, "__str__", _invalid_str)


class Conv(NamedTuple):
    """How a field's value goes to JSON (``dump``) and comes back (``load``)."""

    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]


class F(NamedTuple):
    """One field: Python attribute, JSON name, kind (``req``, ``null``, ``opt``), converter."""

    attr: str
    json: str
    kind: str
    conv: Optional[Conv]


Fields = Tuple[F, ...]

_UTC = datetime.timezone.utc
_ZONES: Dict[str, datetime.tzinfo] = {"Z": _UTC}


def format_time(value: Any) -> Any:
    """A datetime as an eBADGE time: to the millisecond unless it has microseconds, ``Z`` for
    UTC, else ``+HH:MM``. A naive datetime is written without an offset, which the core refuses
    with its own words; anything else is left for the core to refuse."""
    if not isinstance(value, datetime.datetime):
        return value
    us = value.microsecond
    text = "%04d-%02d-%02dT%02d:%02d:%02d.%s" % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        "%03d" % (us // 1000) if us % 1000 == 0 else "%06d" % us,
    )
    offset = value.utcoffset()
    if offset is None:
        return text
    seconds = offset.days * 86400 + offset.seconds
    if seconds == 0:
        return text + "Z"
    sign = "+" if seconds > 0 else "-"
    seconds = abs(seconds)
    text += "%s%02d:%02d" % (sign, seconds // 3600, seconds % 3600 // 60)
    if seconds % 60:
        text += ":%02d" % (seconds % 60)
    return text


def parse_time(text: str) -> datetime.datetime:
    """An eBADGE time (as the core writes it) as an aware datetime; digits past the
    microsecond are dropped (Python's datetime keeps no more)."""
    end = 19
    us = 0
    if len(text) > 19 and text[19] == ".":
        end = 20
        while text[end].isdigit():
            end += 1
        us = int((text[20:end] + "00000")[:6])
    zone = text[end:]
    tz = _ZONES.get(zone)
    if tz is None:
        minutes = int(zone[1:3]) * 60 + int(zone[4:6])
        tz = datetime.timezone(datetime.timedelta(minutes=-minutes if zone[0] == "-" else minutes))
        _ZONES[zone] = tz
    return datetime.datetime(
        int(text[0:4]),
        int(text[5:7]),
        int(text[8:10]),
        int(text[11:13]),
        int(text[14:16]),
        int(text[17:19]),
        us,
        tz,
    )


TIME = Conv(format_time, parse_time)

O = TypeVar("O", bound="Object")


def obj(cls: Type[Object]) -> Conv:
    """A nested object's converter."""
    return Conv(lambda v: v.to_value() if isinstance(v, Object) else v, cls._from_value)


def seq(item: Conv) -> Conv:
    """A list's converter, from its items'."""
    return Conv(
        lambda v: [item.dump(x) for x in v] if isinstance(v, (list, tuple)) else v,
        lambda v: [item.load(x) for x in v],
    )


def mapping(value: Conv) -> Conv:
    """A map's converter, from its values'."""
    return Conv(
        lambda v: {k: value.dump(x) for k, x in v.items()} if isinstance(v, dict) else v,
        lambda v: {k: value.load(x) for k, x in v.items()},
    )


class NotHandled:
    """What a handler method that was not overridden returns."""

    def __repr__(self) -> str:
        return "NOT_HANDLED"


NOT_HANDLED = NotHandled()


class Object:
    """A JSON object of the model: its core fields as attributes, ``ext_`` fields in ``ext``."""

    _fields: ClassVar[Fields] = ()
    ext: Dict[str, Any]
    """Extension fields (``ext_<domain>_<name>``, D3.1.3 4.2.5): kept and written back untouched."""

    def _init(self, values: Tuple[Any, ...], ext: Optional[Dict[str, Any]]) -> None:
        for field, value in zip(self._fields, values):
            object.__setattr__(self, field.attr, value)
        self.ext = dict(ext or {})

    if not TYPE_CHECKING:
        # Hidden from type checkers: a __getattr__ they saw would make every attribute name valid,
        # a misspelled field included. Typed code reads extensions as ``m.ext["ext_x_y"]``.

        def __getattr__(self, name: str) -> Any:
            if name.startswith("ext_"):
                try:
                    return self.__dict__["ext"][name]
                except KeyError:
                    pass
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_value(self) -> Dict[str, Any]:
        """The object as JSON values (dicts, lists, strings, numbers), times as eBADGE text."""
        out: Dict[str, Any] = {}
        d = self.__dict__
        for field in self._fields:
            value = d[field.attr]
            if value is None:
                if field.kind == "opt":
                    continue
            elif field.conv is not None:
                value = field.conv.dump(value)
            out[field.json] = value
        out.update(self.ext)
        return out

    @classmethod
    def _from_value(cls: Type[O], value: Dict[str, Any]) -> O:
        """From JSON values the core has checked: no second validation."""
        self = cls.__new__(cls)
        d = self.__dict__
        for field in cls._fields:
            v = value.get(field.json)
            if v is not None and field.conv is not None:
                v = field.conv.load(v)
            d[field.attr] = v
        d["ext"] = {k: v for k, v in value.items() if k.startswith("ext_")}
        return self

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        parts = [f"{f.attr}={self.__dict__[f.attr]!r}" for f in self._fields]
        parts += [f"{k}={v!r}" for k, v in self.ext.items()]
        return f"{type(self).__name__}({', '.join(parts)})"


# One encoder for every message: json.dumps with these options would build a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _dumps(value: Any) -> str:
    return _ENCODE(value)


def _canonical(msg_type: Optional[str], text: str) -> str:
    """The core's canonical text; a str the core cannot take (a lone surrogate, which UTF-8 cannot
    hold) is refused as InvalidMessage like every other invalid value, not as UnicodeEncodeError."""
    try:
        return _core.canonical(text)
    except UnicodeEncodeError as e:
        raise InvalidMessage(msg_type, None, f"not UTF-8 text: {e.reason}") from None


class Message(Object):
    """A message of one of the 33 types of D3.1.3."""

    msg: ClassVar[str]
    """The ``msg`` name of the type."""
    level: ClassVar[str]
    """``heh`` (D3.1.3 section 5) or ``market`` (section 6)."""

    def _init(self, values: Tuple[Any, ...], ext: Optional[Dict[str, Any]]) -> None:
        super()._init(values, ext)
        # Checked by the core, then read back from what the core wrote: the attributes hold what
        # a peer decoding the message gets (an ISO time string becomes a datetime, a number given
        # as text a number, the errata's forms their corrected ones).
        canonical = _canonical(self.msg, self._text())
        self.__dict__.update(type(self)._from_value(json.loads(canonical)).__dict__)

    def to_value(self) -> Dict[str, Any]:
        out = {"msg": self.msg}
        out.update(super().to_value())
        return out

    def _text(self) -> str:
        try:
            return _dumps(self.to_value())
        except ValueError as e:
            raise InvalidMessage(self.msg, None, f"NaN and infinities are not JSON numbers ({e})") from None
        except TypeError as e:
            raise InvalidMessage(self.msg, None, f"a value is not JSON: {e}") from None

    def validate(self) -> None:
        """Checks the message against every rule of the model; raises InvalidMessage."""
        _canonical(self.msg, self._text())

    def to_json(self) -> str:
        """The message as eBADGE JSON, checked and written as the Rust encoder writes it."""
        return _canonical(self.msg, self._text())


class ExtensionMessage:
    """A message of an ``ext_`` type (D3.1.3 4.2.5): its type and its fields as JSON values."""

    def __init__(self, msg: str, fields: Optional[Dict[str, Any]] = None) -> None:
        self.msg = msg
        self.fields: Dict[str, Any] = dict(fields or {})
        self.validate()

    def validate(self) -> None:
        """Checks the type and field names; raises InvalidMessage."""
        self.to_json()

    def to_value(self) -> Dict[str, Any]:
        """The message as JSON values."""
        out: Dict[str, Any] = {"msg": self.msg}
        out.update(self.fields)
        return out

    def to_json(self) -> str:
        """The message as JSON, checked by the core."""
        try:
            text = _dumps(self.to_value())
        except (TypeError, ValueError) as e:
            raise InvalidMessage(self.msg, None, f"a value is not JSON: {e}") from None
        return _canonical(self.msg, text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExtensionMessage) and (self.msg, self.fields) == (other.msg, other.fields)

    def __repr__(self) -> str:
        return f"ExtensionMessage({self.msg!r}, {self.fields!r})"


AnyMessage = Union[Message, ExtensionMessage]

_CLASSES: Dict[str, Type[Message]] = {}


def message_from(msg_type: str, canonical: str) -> AnyMessage:
    """The typed object of a message the core has checked and written canonically."""
    if not _CLASSES:
        from ebadge.messages import MESSAGE_TYPES

        _CLASSES.update(MESSAGE_TYPES)
    value = json.loads(canonical)
    cls = _CLASSES.get(msg_type)
    if cls is None:
        del value["msg"]
        ext = ExtensionMessage.__new__(ExtensionMessage)
        ext.msg = msg_type
        ext.fields = value
        return ext
    return cls._from_value(value)


def decode(text: Union[str, bytes]) -> AnyMessage:
    """Decodes a message strictly (every rule of D3.1.3) into its class; raises InvalidMessage
    naming the type and the field."""
    try:
        msg_type, canonical = _core.decode(text)
    except UnicodeEncodeError as e:
        raise InvalidMessage(None, None, f"not UTF-8 text: {e.reason}") from None
    return message_from(msg_type, canonical)


def schema(name: Optional[str] = None) -> Dict[str, Any]:
    """The JSON Schema (2020-12) of one message type, or of all (``name=None``)."""
    result: Dict[str, Any] = json.loads(_core.schema(name))
    return result


def message_types() -> List[Tuple[str, str]]:
    """The 33 message types of D3.1.3 as ``(msg name, level)``, in the spec's order."""
    return list(_core.types())
