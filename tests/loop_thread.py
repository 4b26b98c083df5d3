"""An asyncio loop in a daemon thread, for tests that drive the twin with blocking clients: the twin's
state is only touched on that loop, and tests hand it coroutines or plain functions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    timeout = 10.0  # seconds a hand-over may take before the test fails

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="twin-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout or self.timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run a plain function on the loop thread."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def stop(self) -> None:
        """Cancel what is still running on the loop, then stop and close it."""

        async def cancel_leftovers() -> None:
            leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)

        self.run(cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
