#!/usr/bin/python3
"""A VPP on plain pika (Debian's python3-pika), written as docs/partners.md says: TLS with the
bus CA and the VPP's certificate, SASL EXTERNAL, persistent activations with publisher confirms
to each HEH's pair exchange, and its inbox consumed with an acknowledgement after each answer is
handled.

It reads what the conformance kit gives it (EBADGE_HOST, EBADGE_PORT, EBADGE_CA, EBADGE_CERT,
EBADGE_KEY, EBADGE_NAME, EBADGE_HEHS), sends each HEH an activation for a quarter of an hour from
a minute on, and prints each answer:

    ebadge conformance vpp --command 'python3 docs/partners/pika_vpp.py'

EBADGE_KIT_BREAK=no-ack (for the kit's own test) leaves the answers unacknowledged.
"""
import json
import os
import signal
import ssl
import uuid
from datetime import datetime, timedelta, timezone

import pika

BREAK = set(filter(None, os.environ.get("EBADGE_KIT_BREAK", "").split(",")))
NAME = os.environ["EBADGE_NAME"]
HEHS = os.environ["EBADGE_HEHS"].split(",")


def stamp(t):
    return t.isoformat(timespec="seconds")  # with its offset (D3.1.3 4.2.4)


def main():
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    context = ssl.create_default_context(cafile=os.environ["EBADGE_CA"])
    context.load_cert_chain(os.environ["EBADGE_CERT"], os.environ["EBADGE_KEY"])
    connection = pika.BlockingConnection(pika.ConnectionParameters(
        host=os.environ["EBADGE_HOST"], port=int(os.environ["EBADGE_PORT"]),
        ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=pika.credentials.ExternalCredentials(), heartbeat=10))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_qos(prefetch_count=1000)

    def on_answer(channel, method, properties, body):
        answer = json.loads(body)
        print(f"{NAME}: {method.exchange.split('-to-')[0]} answered {answer['msg']} for {answer.get('id')}", flush=True)
        if "no-ack" not in BREAK:
            channel.basic_ack(method.delivery_tag)  # after it was handled

    channel.basic_consume(f"private-{NAME}-inbox", on_answer)
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=1)
    for heh in HEHS:
        order = {"msg": "activate", "id": str(uuid.uuid4()), "modification_count": 0,
                 "from": stamp(start), "to": stamp(start + timedelta(minutes=15)),
                 "quantity": 1.0, "device": None, "heh_id": None}
        # To the HEH's pair exchange; routing key type[.heh_id] (heh_id is null here).
        channel.basic_publish(f"{NAME}-to-{heh}", "activate", json.dumps(order).encode(),
                              pika.BasicProperties(delivery_mode=2, message_id=str(uuid.uuid4())))
    print(f"{NAME}: activated {len(HEHS)} HEHs", flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
