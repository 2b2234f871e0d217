#!/usr/bin/python3
"""An HEH on plain pika (Debian's python3-pika), the seed's own stack, written as docs/partners.md
says: TLS with the bus CA and the HEH's certificate, SASL EXTERNAL, persistent messages with
publisher confirms, and its own buffer so that nothing it sends is lost while the bus is away.

It reads what the conformance kit gives it (EBADGE_HOST, EBADGE_PORT, EBADGE_CA, EBADGE_CERT,
EBADGE_KEY, EBADGE_NAME, EBADGE_CONTROLLER) and answers get_status_report, get_report, activate
(it accepts) and get_periodic_report. Run the kit against it:

    ebadge conformance heh --command 'python3 docs/partners/pika_heh.py'

EBADGE_KIT_BREAK (a comma-separated list) breaks it on purpose, for the kit's own test that it
catches each fault: routing-key, naive-times, no-activate, no-buffer.
"""
import collections
import json
import math
import os
import signal
import ssl
import time
import uuid
from datetime import datetime, timedelta, timezone

import pika

BREAK = set(filter(None, os.environ.get("EBADGE_KIT_BREAK", "").split(",")))
NAME = os.environ["EBADGE_NAME"]
CONTROLLER = os.environ["EBADGE_CONTROLLER"]
EXCHANGE = f"{NAME}-to-{CONTROLLER}"  # D3.2.3 5.3.1: one exchange per ordered pair
INBOX = f"private-{NAME}-inbox"


def stamp(t):
    """ISO 8601 with an offset (D3.1.3 4.2.4): local times without one are invalid."""
    if "naive-times" in BREAK:
        return t.replace(tzinfo=None).isoformat(timespec="seconds")
    return t.isoformat(timespec="seconds")


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def report(start, end, resolution, signals):
    count = math.ceil((parse(end) - parse(start)).total_seconds() / resolution)
    return {"msg": "report", "from": start, "to": end, "resolution": resolution,
            "values": {s: [0.5] * count for s in signals}, "heh_id": None}


class Hub:
    def __init__(self):
        self.outgoing = collections.deque(maxlen=100_000)  # sent while the bus is away, kept
        self.seen = collections.OrderedDict()              # message ids: a redelivery is answered once
        self.periodic = None                                # (interval, resolution, signals, next due)
        self.channel = None

    def send(self, message):
        self.outgoing.append(json.dumps(message))

    def flush(self):
        while self.outgoing:
            body = self.outgoing[0]
            key = json.loads(body)["msg"]  # routing key: type[.heh_id]; an HEH's own messages have no heh_id
            if "routing-key" in BREAK:
                key = "data." + key
            # Confirmed (confirm_delivery): returns once the broker has it, raises otherwise.
            self.channel.basic_publish(EXCHANGE, key, body.encode(),
                                       pika.BasicProperties(delivery_mode=2, message_id=str(uuid.uuid4()),
                                                            content_type="application/json"))
            self.outgoing.popleft()

    def handle(self, request):
        kind = request.get("msg")
        now = datetime.now(timezone.utc).replace(microsecond=0)
        if kind == "get_status_report":
            self.send({"msg": "status_report", "status": "OK", "clock": stamp(now), "events": []})
        elif kind == "get_report":
            self.send(report(request["from"], request["to"], request["resolution"], request["signals"]))
        elif kind == "activate" and "no-activate" not in BREAK:
            self.send({"msg": "accept_activation", "id": request["id"],
                       "modification_count": request["modification_count"]})
        elif kind == "get_periodic_report":
            interval = request["interval"]
            self.periodic = None if interval == -1 else (
                interval, request["resolution"], request["signals"], time.time() + interval)

    def tick(self):
        if self.periodic and time.time() >= self.periodic[3]:
            interval, resolution, signals, due = self.periodic
            end = datetime.now(timezone.utc).replace(microsecond=0)
            start = end - timedelta(seconds=interval)
            self.send(report(stamp(start), stamp(end), resolution, signals))
            self.periodic = (interval, resolution, signals, due + interval)

    def on_message(self, channel, method, properties, body):
        message_id = properties.message_id
        if message_id not in self.seen:
            try:
                self.handle(json.loads(body))
            except (ValueError, KeyError, TypeError) as e:
                print(f"{NAME}: ignoring an invalid message: {e}", flush=True)
            if message_id:
                self.seen[message_id] = True
                if len(self.seen) > 1000:
                    self.seen.popitem(last=False)
        channel.basic_ack(method.delivery_tag)


def connect():
    context = ssl.create_default_context(cafile=os.environ["EBADGE_CA"])
    context.load_cert_chain(os.environ["EBADGE_CERT"], os.environ["EBADGE_KEY"])
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=os.environ["EBADGE_HOST"], port=int(os.environ["EBADGE_PORT"]),
        ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=pika.credentials.ExternalCredentials(),  # the certificate is the login
        heartbeat=10, connection_attempts=1, socket_timeout=5, blocked_connection_timeout=30))


def main():
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    hub = Hub()
    backoff = 0.5
    while True:
        try:
            connection = connect()
            hub.channel = connection.channel()
            hub.channel.confirm_delivery()
            hub.channel.basic_qos(prefetch_count=16)
            hub.channel.basic_consume(INBOX, hub.on_message)
            print(f"{NAME}: connected", flush=True)
            backoff = 0.5
            while True:
                connection.process_data_events(time_limit=0.2)
                hub.tick()
                hub.flush()
        except KeyboardInterrupt:
            return
        except (pika.exceptions.AMQPError, OSError) as e:
            print(f"{NAME}: link lost ({e!r}); {len(hub.outgoing)} messages wait", flush=True)
        # Away from the bus: reports go on into the buffer, and the link is tried again.
        until = time.time() + backoff
        while time.time() < until:
            hub.tick()
            if "no-buffer" in BREAK:
                hub.outgoing.clear()
            time.sleep(0.1)
        backoff = min(backoff * 2, 5)


if __name__ == "__main__":
    main()
