"""eBADGE message bus for Python, built from the Rust core.

Every message type of D3.1.3 as a class (``ebadge.Report``, ``ebadge.Activate``, ...), a strict
decoder (``ebadge.decode``), the JSON Schemas (``ebadge.schema``), and a client with a
reliability layer the caller does not see (``ebadge.Client``, ``ebadge.AsyncClient``):

>>> import ebadge, datetime
>>> t = datetime.datetime(2013, 7, 27, 23, 10, tzinfo=datetime.timezone.utc)
>>> price = ebadge.LoadPrice(from_=t, to=t + datetime.timedelta(minutes=80), price=0.138)
>>> price.to_json()
'{"msg":"load_price","from":"2013-07-27T23:10:00.000Z","to":"2013-07-28T00:30:00.000Z","price":0.138}'
>>> ebadge.decode(price.to_json()) == price
True
"""

from ebadge._core import __version__
from ebadge._model import AnyMessage, ExtensionMessage, InvalidMessage, Message, Object, decode, message_types, schema
from ebadge.client import (
    ActivationOutcome,
    AsyncClient,
    BusError,
    Client,
    Closed,
    ConnectFailed,
    NotSent,
    Received,
    Undelivered,
    UndeliveredError,
)
from ebadge.messages import *  # noqa: F401,F403 (the message classes are the package's API)
from ebadge.messages import __all__ as _messages

__all__ = [
    "__version__",
    "ActivationOutcome",
    "AnyMessage",
    "AsyncClient",
    "BusError",
    "Client",
    "Closed",
    "ConnectFailed",
    "ExtensionMessage",
    "InvalidMessage",
    "Message",
    "NotSent",
    "Object",
    "Received",
    "Undelivered",
    "UndeliveredError",
    "decode",
    "message_types",
    "schema",
    *_messages,
]
