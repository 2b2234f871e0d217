"""The client: connect as an entity, send typed messages, act on the ones that arrive.

Two forms over the one Rust client: :class:`Client` blocks (each wait releases the GIL, and
Ctrl-C interrupts it) and :class:`AsyncClient` returns awaitables for ``asyncio``. Under both is
the reliability layer of the Rust client, which the caller does not see: publisher confirms, an
outbox (in memory, or durable in SQLite) that keeps every message until the broker confirms it
and sends it again after a reconnect, reconnects with backoff, duplicates dropped by message id,
invalid incoming messages moved to the quarantine queue with the reason.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import logging
import os
import sys
import threading
import time
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Literal,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from ebadge import _core
from ebadge._model import NOT_HANDLED, AnyMessage, ExtensionMessage, InvalidMessage, Message, message_from
from ebadge.messages import (
    MESSAGE_TYPES,
    AcceptActivation,
    Activate,
    Handler,
    ModifyActivation,
    RejectActivation,
    Response,
)

__all__ = [
    "ActivationOutcome",
    "AsyncClient",
    "BusError",
    "Client",
    "Closed",
    "ConnectFailed",
    "NotSent",
    "Received",
    "Undelivered",
    "UndeliveredError",
]

log = logging.getLogger("ebadge")

BusError = _core.BusError
ConnectFailed = _core.ConnectFailed
NotSent = _core.NotSent
UndeliveredError = _core.UndeliveredError

PathLike = Union[str, "os.PathLike[str]"]
Sendable = Union[Message, ExtensionMessage, str]


class Undelivered(NamedTuple):
    """A message given up for good, with the reason (and what to do)."""

    seq: int
    message_id: str
    exchange: str
    routing_key: str
    msg_type: str
    reason: str


def _records(self: BaseException) -> List[Undelivered]:
    return [Undelivered(*r) for r in self.args[1]] if len(self.args) > 1 else []


setattr(UndeliveredError, "records", property(_records, doc="The messages given up, each with its reason."))
setattr(UndeliveredError, "__str__", lambda self: str(self.args[0]) if self.args else "")


class Closed(NamedTuple):
    """What ``close`` left behind."""

    unconfirmed: int
    """Messages the broker had not confirmed when the timeout ended."""
    discarded: bool
    """Whether they are lost (an in-memory outbox); a durable outbox sends them at the next start."""


class ActivationOutcome(NamedTuple):
    """How an HEH answered an activation order."""

    kind: Literal["accepted", "rejected", "modified", "timed_out"]
    answer: Optional[Union[AcceptActivation, RejectActivation, ModifyActivation]]

    @property
    def accepted(self) -> bool:
        """The HEH accepted the order."""
        return self.kind == "accepted"

    @property
    def timed_out(self) -> bool:
        """No answer came in time."""
        return self.kind == "timed_out"


class Received:
    """One message that arrived: the typed message, who sent it and how, and the means to settle
    it. Handlers get it as their second argument; ``receive()`` returns it."""

    __slots__ = ("_incoming", "_message")

    def __init__(self, incoming: Any) -> None:
        self._incoming = incoming
        self._message: Optional[AnyMessage] = None

    @property
    def message(self) -> AnyMessage:
        """The message, as its class (``ExtensionMessage`` for ``ext_`` types)."""
        if self._message is None:
            self._message = message_from(self._incoming.msg_type, self._incoming.json)
        return self._message

    @property
    def sender(self) -> str:
        """Who sent it: the ``<sender>`` of the pair exchange, which only the sender may write to."""
        return str(self._incoming.sender)

    @property
    def msg_type(self) -> str:
        """Its ``msg`` type."""
        return str(self._incoming.msg_type)

    @property
    def routing_key(self) -> str:
        """Its routing key (``type[.heh_id]``)."""
        return str(self._incoming.routing_key)

    @property
    def exchange(self) -> str:
        """The exchange it came through."""
        return str(self._incoming.exchange)

    @property
    def message_id(self) -> Optional[str]:
        """Its AMQP message_id, if the sender set one."""
        mid: Optional[str] = self._incoming.message_id
        return mid

    @property
    def redelivered(self) -> bool:
        """Whether the broker delivered it before (this program did not see that delivery)."""
        return bool(self._incoming.redelivered)

    @property
    def json(self) -> str:
        """The message as JSON."""
        return str(self._incoming.json)

    def ack(self) -> None:
        """Done with it: the broker forgets it. (Handlers' messages are acknowledged for them.)"""
        self._incoming.ack()

    def reject(self, reason: str) -> None:
        """Cannot act on it: it goes to our quarantine queue with ``reason`` (one line, at most
        1,000 characters), and is not offered again."""
        self._incoming.reject(_clean(reason))

    def __repr__(self) -> str:
        return f"Received(sender={self.sender!r}, msg_type={self.msg_type!r}, message_id={self.message_id!r})"


#: The clients not closed yet: closed at the interpreter's exit, so that what they sent last is
#: not lost with the process (up to 5 s each for the broker's confirms).
_OPEN: "weakref.WeakSet[_Common]" = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for client in list(_OPEN):
        if not client.closed:
            try:
                unconfirmed, discarded = client._core.close(5.0)
                if discarded:
                    log.error("%s closed at exit: %d message(s) the broker had not confirmed are lost", client.name, unconfirmed)
            except BaseException:  # the interpreter is going: nothing more to do
                pass


T = TypeVar("T")


async def _in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking call of the core (it releases the GIL) on a thread of the event loop's executor.
    The core's own threads then never call into Python: one that did while the interpreter shuts
    down (an awaitable completed at exit) would crash the process."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(function, *args, **kwargs))


H = TypeVar("H", bound=Callable[..., Any])
HandlerFunction = Callable[[Any, Received], Any]


def _text(message: Sendable) -> str:
    """The text the core gets. A typed message goes as written, not canonical: the core decodes
    and checks it anyway before it sends it (the same rules and words as ``to_json``), so a
    canonical round trip here would check it twice."""
    if isinstance(message, str):
        return message
    if isinstance(message, Message):
        text = message._text()
        try:
            text.encode()
        except UnicodeEncodeError as e:
            raise InvalidMessage(message.msg, None, f"not UTF-8 text: {e.reason}") from None
        return text
    if isinstance(message, ExtensionMessage):
        return message.to_json()
    raise TypeError(f"send takes a message (or its JSON text), not {type(message).__name__}")


def _outcome(kind: str, text: Optional[str]) -> ActivationOutcome:
    return ActivationOutcome(kind, None if text is None else message_from(kind_type(kind), text))  # type: ignore[arg-type]


def _msg_name(kind: Union[str, Type[Message]]) -> str:
    if isinstance(kind, str):
        return kind
    return kind.msg


def _replies(reply: Any) -> List[Sendable]:
    if reply is None or reply is NOT_HANDLED:
        return []
    if isinstance(reply, (Message, ExtensionMessage, str)):
        return [reply]
    return list(reply)


#: Longest reason written into a quarantined message's header (the core bounds it too).
MAX_REASON = 1000


def _clean(reason: str) -> str:
    """A reason as one line of valid UTF-8 text, at most MAX_REASON characters."""
    text = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _reason() -> str:
    """The exception being handled, as its traceback's last line says it (``ValueError: no such
    device``; ``ebadge.InvalidMessage: ...`` for a type outside the builtins)."""
    kind, value = sys.exc_info()[:2]
    name = "?" if kind is None else kind.__qualname__
    if kind is not None and kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    return _clean(f"{name}: {value}" if str(value) else name)


class _Common:
    """What both clients share: sending, counters, handlers."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._handlers: Dict[str, HandlerFunction] = {}
        self._stop = threading.Event()
        _OPEN.add(self)

    @property
    def name(self) -> str:
        """Our entity name."""
        return str(self._core.name)

    @property
    def is_connected(self) -> bool:
        """Whether a connection to the broker is up now (the outbox keeps what is sent meanwhile)."""
        return bool(self._core.is_connected)

    @property
    def is_consuming(self) -> bool:
        """Whether our inbox is being consumed now (so what is sent to us reaches us)."""
        return bool(self._core.is_consuming)

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return bool(self._core.closed)

    @property
    def metrics_address(self) -> Optional[str]:
        """Where the Prometheus endpoint listens (``host:port``), when ``metrics=`` was given."""
        address: Optional[str] = self._core.metrics_address
        return address

    def send(self, to: str, message: Sendable) -> str:
        """Validates ``message`` and puts it in the outbox for ``to`` (an entity or a group);
        returns its message_id at once. The reliability layer does the rest: it is published,
        confirmed, and published again after a reconnect. Raises InvalidMessage (nothing sent)
        or NotSent (closed, too large, the durable outbox failed)."""
        return str(self._core.send(to, _text(message)))

    def respond_ok(self, received: Received) -> Optional[str]:
        """Answers a market message that carries ``msg_id`` with ``200 OK`` (D3.1.3 6.1.2);
        returns the response's message_id, or None if the message needs no response."""
        message_id: Optional[str] = self._core.respond_ok(received._incoming)
        return message_id

    def undelivered(self) -> List[Undelivered]:
        """The messages given up since the last call (or flush), each with its reason."""
        return [Undelivered(*r) for r in self._core.undelivered()]

    def counters(self) -> Dict[str, int]:
        """The counters now: sent, confirmed, buffered, received, duplicates, quarantined,
        rejected (by a handler that raised), unhandled, reconnects, ..."""
        counters: Dict[str, int] = dict(self._core.counters())
        return counters

    def stop(self) -> None:
        """Ends ``serve`` after the message in hand is settled (its replies sent, acknowledged):
        the way to stop from a handler. ``close`` then closes."""
        self._stop.set()

    def on(self, kind: Union[str, Type[Message]]) -> Callable[[H], H]:
        """Registers the decorated function as the handler of one message type (its class or
        its ``msg`` name, ``"ext_..."`` too). It gets ``(message, received)`` and may return a
        message, or several, to send back to the sender.

        >>> @client.on(GetReport)                          # doctest: +SKIP
        ... def report(request, received):
        ...     return Report(from_=request.from_, ...)
        """

        name = _msg_name(kind)
        if name not in MESSAGE_TYPES and not name.startswith("ext_"):
            raise ValueError(f"{name!r} is not a message type (ebadge.message_types() lists them; extensions start with ext_)")

        def register(function: H) -> H:
            if not self._coroutines and inspect.iscoroutinefunction(function):
                raise TypeError(f"{function.__name__} is a coroutine function: async handlers need ebadge.AsyncClient")
            self._handlers[name] = function
            return function

        return register

    def _method(self, handler: Optional[Handler], received: Received) -> Optional[HandlerFunction]:
        name = received.msg_type
        function = self._handlers.get(name)
        if function is not None:
            return function
        if handler is None:
            return None
        attribute = "on_extension" if name.startswith("ext_") else "on_" + name
        method: Optional[HandlerFunction] = getattr(handler, attribute, None)
        return method

    _coroutines = False
    """Whether handlers may be coroutine functions (AsyncClient)."""

    def _settle(self, received: Received, outcome: Any, failed: Optional[str]) -> None:
        """Sends the replies, then acknowledges; or quarantines the message if the handler (or
        a reply) failed: all replies are checked before any is sent, so a peer never gets part
        of the answer to a message that failed."""
        if self.closed:
            # Closed from the handler: nothing can be sent, and the message goes back to the
            # broker with the connection, for the next run.
            log.warning("%s from %s: the client was closed while handling it; it will come again", received.msg_type, received.sender)
            return
        if failed is None:
            try:
                if inspect.isawaitable(outcome) and not self._coroutines:
                    getattr(outcome, "close", lambda: None)()
                    raise TypeError("the handler returned a coroutine: async handlers need ebadge.AsyncClient")
                texts = [_text(reply) for reply in _replies(outcome)]
                for text in texts:
                    _core.canonical(text)
            except Exception:
                failed = _reason()
        if failed is not None:
            log.warning("%s from %s: the handler failed (%s); quarantined", received.msg_type, received.sender, failed)
            received.reject(failed)
            return
        for text in texts:
            self._core.send(received.sender, text)
        if outcome is NOT_HANDLED:
            self._core.count_unhandled()
            log.info("no handler for %s from %s", received.msg_type, received.sender)
        received.ack()


class Client(_Common):
    """A connected entity, blocking form. Each wait releases the GIL (other threads run) and
    Ctrl-C interrupts it. Use it from any thread; close it once (or use ``with``)."""

    @classmethod
    def connect(
        cls,
        name: str,
        profile: Optional[PathLike] = None,
        *,
        durable_outbox: Optional[PathLike] = None,
        outbox_sync: Literal["full", "normal"] = "full",
        groups: Sequence[str] = (),
        prefetch: Optional[int] = None,
        outbox_cap: Optional[int] = None,
        dedupe_window: Optional[int] = None,
        publish_connections: Optional[int] = None,
        metrics: Optional[str] = None,
        patience: Optional[float] = None,
    ) -> Client:
        """Connects as ``name`` with its certificate, as the profile says (``profile``, else
        ``$EBADGE_PROFILE``, else ``.ebadge/profile.toml``, which ``make demo`` writes).

        ``durable_outbox``: an SQLite file that keeps unconfirmed messages across restarts.
        ``groups``: the groups we are a member of. ``metrics``: serve Prometheus metrics on this
        address (``127.0.0.1:0`` for a free port). ``patience``: seconds to keep trying a broker
        that is down or busy (else the first failure raises ConnectFailed).
        """
        core = _core.Client.connect(
            name,
            None if profile is None else os.fspath(profile),
            durable_outbox=None if durable_outbox is None else os.fspath(durable_outbox),
            outbox_sync=outbox_sync,
            groups=list(groups),
            prefetch=prefetch,
            outbox_cap=outbox_cap,
            dedupe_window=dedupe_window,
            publish_connections=publish_connections,
            metrics=metrics,
            patience=patience,
        )
        return cls(core)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.closed:
            self.close()

    def flush(self, timeout: Optional[float] = None) -> None:
        """Waits until everything sent so far left the outbox. Raises UndeliveredError (with
        ``records``) if some were given up, TimeoutError after ``timeout`` seconds."""
        self._core.flush(timeout)

    def send_confirmed(self, to: str, message: Sendable, timeout: Optional[float] = None) -> str:
        """Sends and waits for the broker's confirm of this message and all before it."""
        message_id = self.send(to, message)
        self.flush(timeout)
        return message_id

    def activate(self, to: str, order: Activate, timeout: float = 30.0) -> ActivationOutcome:
        """Sends an activation order and waits for the answer with its id and modification_count."""
        kind, text = self._core.activate(to, _text(order), timeout)
        return _outcome(kind, text)

    def activate_many(self, orders: Iterable[Tuple[str, Activate]], timeout: float = 30.0) -> List[ActivationOutcome]:
        """Sends every ``(to, order)`` at once and waits for all the answers (each at most
        ``timeout`` seconds): the outcomes in the order of ``orders``. Every order is checked
        before any is sent. What :meth:`activate` does for each, in one call."""
        answers = self._core.activate_many([(to, _text(order)) for to, order in orders], timeout)
        return [_outcome(kind, text) for kind, text in answers]

    def request(self, to: str, message: Message, timeout: float = 30.0) -> Optional[Response]:
        """Sends a market message that carries ``msg_id`` and waits for its ``response``."""
        text = self._core.request(to, _text(message), timeout)
        return None if text is None else message_from("response", text)  # type: ignore[return-value]

    def receive(self, timeout: Optional[float] = None) -> Optional[Received]:
        """The next message (acknowledge it with ``ack()``, or ``reject(reason)``), or None
        after ``timeout`` seconds or once the client is closed."""
        incoming = self._core.receive(timeout)
        return None if incoming is None else Received(incoming)

    def serve(self, handler: Optional[Handler] = None, *, duration: Optional[float] = None) -> None:
        """Runs the handlers on every message that arrives, acknowledging each after its handler
        returned, until ``stop()`` (from a handler or another thread), ``close()`` (from another
        thread), Ctrl-C, or ``duration`` seconds. ``handler``: an object with ``on_<type>`` methods (a :class:`Handler`); the
        functions registered with :meth:`on` come first."""

        deadline = None if duration is None else time.monotonic() + duration
        self._stop.clear()
        while not self.closed and not self._stop.is_set():
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                return
            received = self.receive(wait)
            if received is None:
                continue
            self.handle(received, handler)

    def handle(self, received: Received, handler: Optional[Handler] = None) -> None:
        """Runs the handler for one message and settles it (what ``serve`` does for each)."""
        method = self._method(handler, received)
        if method is None:
            self._settle(received, NOT_HANDLED, None)
            return
        try:
            outcome = method(received.message, received)
        except Exception:
            self._settle(received, None, _reason())
            return
        self._settle(received, outcome, None)

    def close(self, timeout: float = 30.0) -> Closed:
        """Waits for the outbox (at most ``timeout`` seconds), then closes the connection."""
        unconfirmed, discarded = self._core.close(timeout)
        return Closed(unconfirmed, discarded)


def kind_type(kind: str) -> str:
    """The answer's message type for an activation outcome kind."""
    return {"accepted": "accept_activation", "rejected": "reject_activation", "modified": "modify_activation"}[kind]


class AsyncClient(_Common):
    """A connected entity for ``asyncio``: the waits are awaitables; ``send`` does not wait.
    Handlers may be plain functions or coroutines."""

    _coroutines = True

    @classmethod
    async def connect(
        cls,
        name: str,
        profile: Optional[PathLike] = None,
        *,
        durable_outbox: Optional[PathLike] = None,
        outbox_sync: Literal["full", "normal"] = "full",
        groups: Sequence[str] = (),
        prefetch: Optional[int] = None,
        outbox_cap: Optional[int] = None,
        dedupe_window: Optional[int] = None,
        publish_connections: Optional[int] = None,
        metrics: Optional[str] = None,
        patience: Optional[float] = None,
    ) -> AsyncClient:
        """Connects as ``name``; the options are those of :meth:`Client.connect`."""
        connected = await _in_thread(
            Client.connect,
            name,
            profile,
            durable_outbox=durable_outbox,
            outbox_sync=outbox_sync,
            groups=groups,
            prefetch=prefetch,
            outbox_cap=outbox_cap,
            dedupe_window=dedupe_window,
            publish_connections=publish_connections,
            metrics=metrics,
            patience=patience,
        )
        return cls(connected._core)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if not self.closed:
            await self.close()

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Waits until everything sent so far left the outbox (see :meth:`Client.flush`)."""
        await _in_thread(self._core.flush, timeout)

    async def send_confirmed(self, to: str, message: Sendable, timeout: Optional[float] = None) -> str:
        """Sends and waits for the broker's confirm of this message and all before it."""
        message_id = self.send(to, message)
        await self.flush(timeout)
        return message_id

    async def activate(self, to: str, order: Activate, timeout: float = 30.0) -> ActivationOutcome:
        """Sends an activation order and waits for the answer (see :meth:`Client.activate`)."""
        kind, text = await self._core.activate(to, _text(order), timeout, blocking=False)
        return _outcome(kind, text)

    async def activate_many(self, orders: Iterable[Tuple[str, Activate]], timeout: float = 30.0) -> List[ActivationOutcome]:
        """Sends every ``(to, order)`` at once and awaits all the answers: the outcomes in the
        order of ``orders`` (see :meth:`Client.activate_many`). One awaitable for the whole
        campaign instead of one per order: for thousands of orders, cheaper than
        ``asyncio.gather`` of :meth:`activate` (docs/benchmarks.md, "Python (issue #27)")."""
        answers = await self._core.activate_many([(to, _text(order)) for to, order in orders], timeout, blocking=False)
        return [_outcome(kind, text) for kind, text in answers]

    async def request(self, to: str, message: Message, timeout: float = 30.0) -> Optional[Response]:
        """Sends a market message that carries ``msg_id`` and waits for its ``response``."""
        text = await _in_thread(self._core.request, to, _text(message), timeout)
        return None if text is None else message_from("response", text)  # type: ignore[return-value]

    async def receive(self, timeout: Optional[float] = None) -> Optional[Received]:
        """The next message, or None after ``timeout`` seconds or once the client is closed."""
        # In slices, so that a cancelled task frees its thread within half a second.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            incoming = await _in_thread(self._core.receive, left)
            if incoming is not None or self.closed or (deadline is not None and time.monotonic() >= deadline):
                break
        return None if incoming is None else Received(incoming)

    async def serve(self, handler: Optional[Handler] = None) -> None:
        """Runs the handlers on every message until ``stop()``, ``close()`` or the task is
        cancelled."""
        self._stop.clear()
        while not self.closed and not self._stop.is_set():
            received = await self.receive(0.5)
            if received is not None:
                await self.handle(received, handler)

    async def handle(self, received: Received, handler: Optional[Handler] = None) -> None:
        """Runs the handler for one message (awaiting it if it is a coroutine) and settles it."""
        method = self._method(handler, received)
        if method is None:
            self._settle(received, NOT_HANDLED, None)
            return
        try:
            outcome = method(received.message, received)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception:
            self._settle(received, None, _reason())
            return
        self._settle(received, outcome, None)

    async def close(self, timeout: float = 30.0) -> Closed:
        """Waits for the outbox (at most ``timeout`` seconds), then closes the connection."""
        unconfirmed, discarded = await _in_thread(self._core.close, timeout)
        return Closed(unconfirmed, discarded)

