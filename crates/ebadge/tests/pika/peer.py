#!/usr/bin/python3
"""A plain pika client configured as D3.2.3 and the seed's own library (ebadge_msg/comm.py) are:
TLS with a client certificate, SASL EXTERNAL, publish to <me>-to-<peer> with routing key
type[.heh_id], consume from private-<me>-inbox. Nothing of ours is imported.

    peer.py publish HOST PORT CA CERT KEY EXCHANGE ROUTING_KEY PROPS < bodies (one per line)
        PROPS: seed-blocking  BasicProperties(delivery_mode=2)                 (comm.py, blocking)
               seed-async     BasicProperties(content_type='application/json') (comm.py, async)
               full           every property, user_id = the sender of EXCHANGE (the certificate's CN)
    peer.py consume HOST PORT CA CERT KEY QUEUE COUNT TIMEOUT
        prints one JSON line per message: {"exchange", "routing_key", "user_id", "message_id", "body"}
    peer.py bind HOST PORT CA CERT KEY DESTINATION SOURCE ROUTING_KEY [ARGUMENTS_JSON]
        binds the exchange DESTINATION to the exchange SOURCE (exchange.bind), as any AMQP client
        may where it can write DESTINATION and read SOURCE; prints {"bound": true}
"""
import json
import ssl
import sys
import time
import uuid

import pika


def connect(host, port, ca, cert, key):
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    params = pika.ConnectionParameters(
        host=host,
        port=int(port),
        ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=pika.credentials.ExternalCredentials(),
        heartbeat=10,
    )
    return pika.BlockingConnection(params)


def properties(kind, me):
    if kind == "seed-blocking":
        return pika.BasicProperties(delivery_mode=2)
    if kind == "seed-async":
        return pika.BasicProperties(content_type="application/json")
    if kind == "full":
        return pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=str(uuid.uuid4()),
            user_id=me,
            type="report",
            timestamp=int(time.time()),
        )
    raise SystemExit(f"unknown properties {kind}")


def publish(host, port, ca, cert, key, exchange, routing_key, kind):
    connection = connect(host, port, ca, cert, key)
    channel = connection.channel()
    channel.confirm_delivery()
    sent = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        # Raises if the broker does not confirm: nothing is silently lost here either.
        me = exchange.split("-to-")[0]
        channel.basic_publish(exchange, routing_key, line.encode(), properties(kind, me), mandatory=True)
        sent += 1
    connection.close()
    print(json.dumps({"published": sent}))


def consume(host, port, ca, cert, key, queue, count, timeout):
    connection = connect(host, port, ca, cert, key)
    channel = connection.channel()
    got = 0
    deadline = time.time() + float(timeout)
    while got < int(count) and time.time() < deadline:
        method, props, body = channel.basic_get(queue)
        if method is None:
            time.sleep(0.05)
            continue
        print(json.dumps({
            "exchange": method.exchange,
            "routing_key": method.routing_key,
            "user_id": props.user_id,
            "message_id": props.message_id,
            "body": body.decode(),
        }), flush=True)
        channel.basic_ack(method.delivery_tag)
        got += 1
    connection.close()


def bind(host, port, ca, cert, key, destination, source, routing_key, arguments="{}"):
    connection = connect(host, port, ca, cert, key)
    channel = connection.channel()
    channel.exchange_bind(destination, source, routing_key, json.loads(arguments) or None)
    connection.close()
    print(json.dumps({"bound": True}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"publish": publish, "consume": consume, "bind": bind}[mode](*args)
