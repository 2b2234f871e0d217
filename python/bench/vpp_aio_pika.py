"""The benchmark VPP as a Python user would write it today with aio-pika: TLS with the VPP's
client certificate and the EXTERNAL login, publisher confirms, persistent JSON messages to
`<vpp>-to-<heh>` with routing key `activate`, the answers consumed from `private-<vpp>-inbox`
and matched to the orders by id. Plain `json`, no validation. Run by
`ebadge bench activations --vpp-command ".venv/bin/python python/bench/vpp_aio_pika.py"` against
the same fleet as our VPP (python/bench/benchenv.py says what it is told).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any, Dict, List

import aio_pika
import benchenv


async def burst() -> None:
    vpp = benchenv.need("EBADGE_BENCH_VPP")
    hehs = benchenv.hehs()
    timeout = benchenv.env_float("EBADGE_BENCH_TIMEOUT", 60.0)
    host, port, context = benchenv.tls(vpp)
    connection = await aio_pika.connect(f"amqps://{host}:{port}/?auth=external&heartbeat=10", ssl_context=context)
    loop = asyncio.get_running_loop()
    pending: Dict[str, "asyncio.Future[Dict[str, Any]]"] = {}

    async def on_answer(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            answer = json.loads(message.body)
            future = pending.pop(answer.get("id"), None)
            if future is not None and not future.done():
                future.set_result(answer)

    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=1000)
    inbox = await consuming.get_queue(f"private-{vpp}-inbox", ensure=False)
    await inbox.consume(on_answer)
    publishing = await connection.channel(publisher_confirms=True)
    start, end = benchenv.window()
    times = {"from": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "to": end.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    trips: List[float] = []

    async def activate(heh: str, n: int) -> str:
        t = time.monotonic()
        order_id = f"bench-{n}"
        future = pending[order_id] = loop.create_future()
        body = json.dumps({"msg": "activate", "id": order_id, "modification_count": 0, **times, "quantity": 1.0})
        exchange = await publishing.get_exchange(f"{vpp}-to-{heh}", ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body.encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=uuid.uuid4().hex,
                content_type="application/json",
            ),
            routing_key="activate",
        )
        try:
            answer = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pending.pop(order_id, None)
            return "timed_out"
        trips.append(time.monotonic() - t)
        return {"accept_activation": "accepted", "reject_activation": "rejected", "modify_activation": "modified"}.get(answer.get("msg"), "other")

    began = time.monotonic()
    cpu0 = time.process_time()
    threads0 = benchenv.thread_cpu()
    outcomes = await asyncio.gather(*(activate(heh, n) for n, heh in enumerate(hehs)))
    seconds = time.monotonic() - began
    cpu = time.process_time() - cpu0
    threads = benchenv.cpu_since(threads0)
    await connection.close()
    kinds = Counter(outcomes)
    benchenv.emit(
        vpp=f"aio-pika {aio_pika.__version__}",
        sent=len(hehs),
        answered=len(hehs) - kinds["timed_out"],
        outcomes=dict(kinds),
        seconds=round(seconds, 3),
        round_trip_ms=benchenv.percentiles_ms(trips),
        burst_cpu_seconds=round(cpu, 3),
        burst_cpu_by_thread=threads,
    )


if __name__ == "__main__":
    asyncio.run(burst())
