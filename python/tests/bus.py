"""What the broker tests share: the test brokers' profiles (set by the Rust runner,
crates/ebadge/tests/python.rs), our command line, a plain pika connection as any entity, and
waiting for a condition."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pika

REPO = Path(__file__).resolve().parents[2]


def need(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise RuntimeError(
            f"${variable} is not set: the broker tests run under `cargo test -p ebadge --test python` "
            "(make test), which boots the test brokers and sets it"
        )
    return value


def profile() -> str:
    """The shared test broker's profile."""
    return need("EBADGE_PROFILE")


def restart_profile() -> str:
    """The profile of the broker the tests restart."""
    return need("EBADGE_RESTART_PROFILE")


def ebadge(*args: str, timeout: float = 60, profile_path: Optional[str] = None, input: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    """Runs our command line (`ebadge ...`) against a test broker."""
    env = dict(os.environ, EBADGE_PROFILE=profile_path or profile())
    return subprocess.run([need("EBADGE_BIN"), *args], env=env, text=True, capture_output=True, timeout=timeout, input=input)


def read_profile(path: Optional[str] = None) -> Dict[str, Any]:
    path = path or profile()
    with open(path, "rb") as f:
        data = tomllib.load(f)
    base = Path(path).parent
    data["ca"] = str(base / data["ca"])
    data["certs"] = str(base / data["certs"])
    return data


def pika_connection(name: str, profile_path: Optional[str] = None) -> pika.BlockingConnection:
    """A plain pika connection as `name`, configured as the seed's library is (TLS, client
    certificate, SASL EXTERNAL): nothing of ours."""
    p = read_profile(profile_path)
    host, port = p["amqps_url"].removeprefix("amqps://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=p["ca"])
    context.load_cert_chain(f"{p['certs']}/{name}.pem", f"{p['certs']}/{name}.key")
    params = pika.ConnectionParameters(
        host=host,
        port=int(port),
        ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=pika.credentials.ExternalCredentials(),
        heartbeat=10,
    )
    return pika.BlockingConnection(params)


def pika_publish(sender: str, receiver: str, routing_key: str, bodies: List[str]) -> None:
    """Publishes `bodies` as `sender` to `sender-to-receiver`, persistent, with a message id, as
    the seed's blocking connector does (plus a message id)."""
    connection = pika_connection(sender)
    channel = connection.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(
            exchange=f"{sender}-to-{receiver}",
            routing_key=routing_key,
            body=body.encode(),
            properties=pika.BasicProperties(delivery_mode=2, message_id=str(uuid.uuid4()), content_type="application/json"),
            mandatory=True,
        )
    connection.close()


def pika_drain(name: str, queue: str, count: int, patience: float = 10.0) -> List[Dict[str, Any]]:
    """Reads (and acknowledges) up to `count` messages of `queue` as `name`, waiting up to
    `patience` seconds for them: each as {exchange, routing_key, headers, message_id, body}."""
    connection = pika_connection(name)
    channel = connection.channel()
    out: List[Dict[str, Any]] = []
    deadline = time.monotonic() + patience
    while len(out) < count and time.monotonic() < deadline:
        try:
            method, props, body = channel.basic_get(queue)
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == 404:  # a queue its client never made (it does so on first use)
                break
            raise
        if method is None:
            time.sleep(0.1)
            continue
        channel.basic_ack(method.delivery_tag)
        out.append(
            {
                "exchange": method.exchange,
                "routing_key": method.routing_key,
                "headers": dict(props.headers or {}),
                "message_id": props.message_id,
                "delivery_mode": props.delivery_mode,
                "user_id": props.user_id,
                "body": body.decode(),
            }
        )
    connection.close()
    return out


def wait_for(what: str, condition: Callable[[], bool], patience: float = 15.0) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {patience} s")
        time.sleep(0.05)


def body_json(record: Dict[str, Any]) -> Any:
    return json.loads(record["body"])
