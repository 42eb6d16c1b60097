"""The loop the notification workers share: claim what is due (up to the
room left), run each item in its own task, write the outcomes back in
batches, until a deadline. Subclasses say how to claim, attempt and settle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import exc as sa_errors

log = logging.getLogger("onhand.notify")

T = TypeVar("T")

#: How often an idle loop looks for due work, seconds.
POLL_S = 0.2
#: After the first attempt in flight ends, how long the loop lets others end
#: too before it writes their outcomes and claims more, seconds: one claim and
#: one write per batch, not per attempt (each is a PostgreSQL transaction).
GATHER_S = 0.02
#: Wait after PostgreSQL could not be reached, seconds.
PG_RETRY_S = 1.0
#: Errors that mean PostgreSQL is unreachable (retried, never fatal).
PG_DOWN = (OSError, sa_errors.OperationalError, sa_errors.InterfaceError)


class QueueLoop(Generic[T]):
    #: Items in flight at once.
    concurrency: int = 1
    #: Longest one attempt may take, seconds (the loop waits this long at the end).
    attempt_timeout_s: float = 10.0

    async def claim(self, room: int) -> list[T]:
        raise NotImplementedError

    async def attempt(self, item: T) -> Any:
        raise NotImplementedError

    async def settle(self, results: list[tuple[T, Any]]) -> None:
        """Writes outcomes; a result is the attempt's value or the exception it raised."""
        raise NotImplementedError

    async def close(self) -> None:
        """Releases what the loop holds (clients)."""

    async def run(self, deadline: float, stop: Callable[[], bool]) -> None:
        in_flight: dict[asyncio.Task, T] = {}
        # claim when a useful share of the room is free (or nothing is in flight)
        least = max(1, self.concurrency // 8)
        try:
            while time.monotonic() < deadline and not stop():
                # outcomes first: a settled attempt frees its endpoint's share
                settled = await self._settle(in_flight)
                room = self.concurrency - len(in_flight)
                claimed = await self._claim(room) if room >= least or not in_flight else []
                for item in claimed:
                    in_flight[asyncio.create_task(self.attempt(item))] = item
                if not in_flight:
                    if not settled:
                        await asyncio.sleep(POLL_S)
                else:
                    await asyncio.wait(list(in_flight), timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED)
                    await asyncio.sleep(GATHER_S)
            if in_flight:  # attempts under way finish (each is bounded by its timeout)
                await asyncio.wait(list(in_flight), timeout=self.attempt_timeout_s + 1)
                await self._settle(in_flight)
        finally:
            for task in in_flight:
                task.cancel()
            await self.close()

    async def _claim(self, room: int) -> list[T]:
        if room <= 0:
            return []
        try:
            return await self.claim(room)
        except PG_DOWN as exc:
            log.warning("%s: PostgreSQL unreachable (%s); retrying", type(self).__name__, exc)
            await asyncio.sleep(PG_RETRY_S)
            return []

    async def _settle(self, in_flight: dict[asyncio.Task, T]) -> int:
        """Writes the outcomes of the finished attempts; returns how many."""
        finished = [t for t in in_flight if t.done()]
        if not finished:
            return 0
        results = []
        for task in finished:
            item = in_flight.pop(task)
            if not task.cancelled():
                results.append((item, task.exception() or task.result()))
        try:
            await self.settle(results)
        except PG_DOWN as exc:
            # the claims' leases run out and the items are attempted again
            log.warning("%s: could not record %d outcomes (%s)", type(self).__name__, len(results), exc)
        return len(results)
