"""asyncio and threads side by side in one process: an AsyncClient in the event loop (async
handlers, activations awaited together, the loop never blocked) while a blocking Client serves in
a thread of its own."""

from __future__ import annotations

import asyncio
import datetime
import threading
from typing import List

import ebadge
from bus import profile

T0 = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)
QUERIES = 30
ORDERS = 20


class Device(ebadge.Handler):
    """The thread's side: accepts activations, records the prices it is told."""

    def __init__(self) -> None:
        self.prices: List[float] = []

    def on_activate(self, order: ebadge.Activate, incoming: ebadge.Received) -> ebadge.AcceptActivation:
        return ebadge.AcceptActivation(id=order.id, modification_count=order.modification_count)

    def on_load_price(self, message: ebadge.LoadPrice, incoming: ebadge.Received) -> None:
        self.prices.append(message.price)


def test_an_asyncio_client_and_a_threaded_client_work_side_by_side() -> None:
    device = Device()
    blocking = ebadge.Client.connect("py-thread", profile())
    while (left := blocking.receive(0.3)) is not None:
        left.ack()

    def thread_main() -> None:
        for _ in range(QUERIES):
            blocking.send("py-async", ebadge.GetAllPrices())
        blocking.serve(device)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with await ebadge.AsyncClient.connect("py-async", profile()) as vpp:
            while (left := await vpp.receive(0.3)) is not None:
                left.ack()

            @vpp.on(ebadge.GetAllPrices)
            async def prices(message: ebadge.GetAllPrices, received: ebadge.Received) -> ebadge.LoadPrice:
                await asyncio.sleep(0)
                return ebadge.LoadPrice(from_=T0, to=T0 + HOUR, price=0.1)

            tick_task = asyncio.create_task(ticker())
            # While the core waits (for a message that does not come), the loop goes on.
            await asyncio.sleep(0.05)
            before = ticks
            assert await vpp.receive(0.5) is None
            waited = ticks - before
            server = asyncio.create_task(vpp.serve())
            thread = threading.Thread(target=thread_main, daemon=True)
            thread.start()
            orders = [
                ebadge.Activate(id=f"side-{n}", modification_count=0, from_=T0, to=T0 + HOUR, quantity=1.0)
                for n in range(ORDERS)
            ]
            outcomes = await asyncio.gather(*(vpp.activate("py-thread", o, timeout=20) for o in orders))
            assert [o.kind for o in outcomes] == ["accepted"] * ORDERS
            assert sorted(o.answer.id for o in outcomes if o.answer) == sorted(o.id for o in orders)
            # The same orders as one awaitable, the outcomes in their order.
            again = [
                ebadge.Activate(id=f"many-{n}", modification_count=0, from_=T0, to=T0 + HOUR, quantity=1.0)
                for n in range(ORDERS)
            ]
            many = await vpp.activate_many([("py-thread", o) for o in again], timeout=20)
            assert [o.answer.id for o in many if o.answer] == [f"many-{n}" for n in range(ORDERS)]
            # An awaitable given up (cancelled by wait_for) before its answer comes is left alone
            # when the answer does come; the next ones complete.
            late = ebadge.Activate(id="late", modification_count=0, from_=T0, to=T0 + HOUR, quantity=1.0)
            try:
                await asyncio.wait_for(vpp.activate("py-thread", late, timeout=20), 0.0001)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.3)
            assert (await vpp.activate("py-thread", orders[0], timeout=20)).accepted
            for _ in range(500):
                if len(device.prices) == QUERIES:
                    break
                await asyncio.sleep(0.02)
            assert len(device.prices) == QUERIES, "every query of the thread answered by an async handler"
            await vpp.close(5)
            await asyncio.wait_for(server, 5)
            tick_task.cancel()
            blocking.close(5)
            thread.join(5)
            assert not thread.is_alive()
            return waited

    waited = asyncio.run(main())
    assert waited > 0, "the event loop ran while the Rust core waited"


def test_a_program_using_the_asyncio_client_exits_cleanly() -> None:
    """The core's threads never call into Python: before, an awaitable completed by one of them
    as the interpreter shut down crashed about one exit in six (SIGSEGV or SIGABRT)."""
    import subprocess
    import sys

    program = (
        "import asyncio, sys, ebadge\n"
        "async def main():\n"
        "    async with await ebadge.AsyncClient.connect('py-async', sys.argv[1]) as c:\n"
        "        await c.receive(0.05)\n"
        "asyncio.run(main())\n"
    )
    codes = [subprocess.run([sys.executable, "-c", program, profile()], capture_output=True, timeout=60).returncode for _ in range(30)]
    assert codes == [0] * 30, codes
