#!/usr/bin/python3
"""The auditor of the partition tests: plain pika clients (nothing of ours imported) that say what
arrived.

    audit.py HOST PORT CA NAME:CERT:KEY:SOURCE ...

With NAME's certificate (SASL EXTERNAL), for each NAME it reads either
- SOURCE `inbox`: NAME's own inbox, private-NAME-inbox: it is that HEH's application; or
- SOURCE an exchange: a second copy of what NAME receives, in the quorum queue
  private-NAME-audit that it declares in NAME's namespace (as D3.2.3 lets every entity do there)
  and binds to SOURCE with '#'. Only for a back-end entity's incoming exchange (private-NAME-in),
  whose inbox is a quorum queue too: a second queue bound to an HEH's pair exchange would change
  what the broker does when the HEH's classic inbox is down (the message still routes to the
  audit queue, so it is confirmed instead of returned to its sender, and the inbox never gets it).
Deliveries are acknowledged by hand. It prints one JSON line per delivery,
{"audit": NAME, "message_id", "user_id", "redelivered"}, before acknowledging it, and
{"audit": NAME, "event": "consuming"} each time it (re)starts consuming. A lost connection or a
cancelled consumer is retried every half second, forever: the test ends it with SIGTERM.
"""
import json
import ssl
import sys
import threading
import time

import pika

PRINT = threading.Lock()


def say(line):
    with PRINT:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def audit(host, port, ca, name, cert, key, source):
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    params = pika.ConnectionParameters(
        host=host,
        port=int(port),
        ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=pika.credentials.ExternalCredentials(),
        heartbeat=5,
        blocked_connection_timeout=30,
        socket_timeout=5,
        connection_attempts=1,
    )
    queue = f"private-{name}-audit"
    while True:
        connection = None
        try:
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            if source == "inbox":
                queue = f"private-{name}-inbox"
            else:
                channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
                channel.queue_bind(queue, source, routing_key="#")
            channel.basic_qos(prefetch_count=200)

            def seen(ch, method, props, body):
                say({
                    "audit": name,
                    "message_id": props.message_id,
                    "user_id": props.user_id,
                    "redelivered": method.redelivered,
                })
                ch.basic_ack(method.delivery_tag)

            channel.basic_consume(queue, seen)
            say({"audit": name, "event": "consuming"})
            # Returns when the broker cancels the consumer (its queue's node went away).
            channel.start_consuming()
        except Exception as error:  # any failure: the link, the node, the channel
            say({"audit": name, "event": "retry", "error": repr(error)[:200]})
        finally:
            try:
                if connection is not None and connection.is_open:
                    connection.close()
            except Exception:
                pass
        time.sleep(0.5)


def main():
    host, port, ca, *targets = sys.argv[1:]
    for target in targets:
        name, cert, key, source = target.split(":")
        threading.Thread(
            target=audit, args=(host, port, ca, name, cert, key, source), daemon=True
        ).start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
