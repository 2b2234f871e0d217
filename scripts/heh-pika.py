#!/usr/bin/python3
"""The benchmark HEH as a plain pika client (Debian's python3-pika), configured as the seed's own
library was: TLS with the HEH's certificate, EXTERNAL login, publisher confirms, persistent
messages with bare properties. Publishes COUNT stamped reports, RATE a second, each waiting for
its confirm, then idles until stopped (`ebadge bench heh --pika` measures it from outside)."""
import argparse, json, ssl, time

import pika

parser = argparse.ArgumentParser()
for name in ("host", "ca", "cert", "key", "exchange"):
    parser.add_argument("--" + name, required=True)
for name in ("port", "rate", "count"):
    parser.add_argument("--" + name, type=int, required=True)
args = parser.parse_args()

context = ssl.create_default_context(cafile=args.ca)
context.load_cert_chain(args.cert, args.key)
parameters = pika.ConnectionParameters(
    host=args.host, port=args.port,
    ssl_options=pika.SSLOptions(context, args.host),
    credentials=pika.credentials.ExternalCredentials(),
    heartbeat=10,
)
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
channel.confirm_delivery()
interval = 1.0 / args.rate
next_at = time.monotonic()
for _ in range(args.count):
    next_at += interval
    body = json.dumps({
        "msg": "report", "from": "2030-01-01T10:00:00Z", "to": "2030-01-01T10:01:00Z",
        "resolution": 60, "values": {"total.p": [1.5]}, "heh_id": None,
        "ext_bench_sent_ns": time.time_ns(),
    }, separators=(",", ":"))
    channel.basic_publish(args.exchange, "report", body,
                          pika.BasicProperties(delivery_mode=2), mandatory=True)
    connection.sleep(max(0.0, next_at - time.monotonic()))
while True:
    connection.sleep(1.0)
