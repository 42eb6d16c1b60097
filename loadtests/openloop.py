"""An open-loop load generator: requests at a fixed rate, each timed from the
moment it was *meant* to be sent, so a slow server cannot slow the sender
down and hide its own queueing (no coordinated omission).

Request i is due at ``start + i / rate``. When it is due it goes out on an
idle keep-alive connection, on a new one (up to ``max_connections``, 64 by
default, like the wrk runs: a front proxy's upstream pool), or waits in a
queue for the next connection to free up; in every case its latency runs
from its due time to the end of its response. Requests still
unanswered ``timeout_s`` after the schedule ends count as timeouts.

HTTP/1.1 over raw asyncio streams (uvloop when installed): one POST per
connection at a time, responses read by Content-Length. That is all the
benchmark needs, at a fraction of a general client's CPU.

    python -m loadtests.openloop --url http://127.0.0.1:8000 --key KEY \\
        --sku HOT --rate 400 --duration 20 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import time
from urllib.parse import urlsplit

import numpy as np

#: Requests in the first this-many seconds are sent but left out of the figures.
WARMUP_S = 2.0
#: Connections opened before the clock starts.
PREOPEN = 32


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


class Generator:
    def __init__(self, url: str, key: str, skus: list[str], rate: float, duration_s: float,
                 max_connections: int, timeout_s: float, expect: int = 201):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.key = key
        self.skus = skus
        self.rate = rate
        self.total = int(rate * duration_s)
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.expect = expect
        self.idle: list[_Conn] = []
        self.opened = 0
        self.queue: collections.deque[int] = collections.deque()
        self.due = np.zeros(self.total)
        self.done = np.full(self.total, np.nan)
        self.status = np.zeros(self.total, dtype=np.int32)
        self.finished = 0
        self.all_done = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    def _request(self, i: int) -> bytes:
        sku = self.skus[0] if len(self.skus) == 1 else random.choice(self.skus)
        body = b'{"channel":"dtc","lines":[{"sku":"%s","quantity":1}]}' % sku.encode()
        return (b"POST /v1/orders HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (self.host.encode(), self.key.encode(), len(body), body))

    async def _open(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Conn(reader, writer)

    async def _serve(self, conn: _Conn | None, i: int) -> None:
        """Sends request i and then, on the same connection, whatever queued up."""
        try:
            if conn is None:
                conn = await self._open()
            while True:
                conn.writer.write(self._request(i))
                self.status[i] = await _read_response(conn.reader)
                self.done[i] = time.monotonic()
                self._finish()
                if not self.queue:
                    break
                i = self.queue.popleft()
            self.idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.status[i] = -1
            self.done[i] = time.monotonic()
            self._finish()
            self.opened -= 1
            if conn is not None:
                conn.writer.close()
            if self.queue:  # what waited for this connection goes out on a new one
                self.opened += 1
                self._spawn(None, self.queue.popleft())

    def _finish(self) -> None:
        self.finished += 1
        if self.finished >= self.total:
            self.all_done.set()

    def _spawn(self, conn: _Conn | None, i: int) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(conn, i))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _dispatch(self, i: int) -> None:
        if self.idle:
            self._spawn(self.idle.pop(), i)
        elif self.opened < self.max_connections:
            self.opened += 1
            self._spawn(None, i)
        else:
            self.queue.append(i)

    async def run(self) -> None:
        for conn in await asyncio.gather(*(self._open() for _ in range(min(PREOPEN, self.max_connections)))):
            self.idle.append(conn)
            self.opened += 1
        start = time.monotonic() + 0.05
        self.due[:] = start + np.arange(self.total) / self.rate
        i = 0
        while i < self.total:
            now = time.monotonic()
            while i < self.total and self.due[i] <= now:
                self._dispatch(i)
                i += 1
            if i < self.total:
                await asyncio.sleep(max(0.0, min(self.due[i] - time.monotonic(), 0.002)))
        try:
            await asyncio.wait_for(self.all_done.wait(), self.timeout_s)
        except TimeoutError:
            pass
        self.end = time.monotonic()
        self.start = start
        for task in self.tasks:  # what is still waiting counts as a timeout
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def result(self) -> dict:
        measured = self.due >= self.start + WARMUP_S
        answered = ~np.isnan(self.done)
        lat_ms = (self.done - self.due) * 1000
        ok = measured & answered & (self.status == self.expect)
        errors = measured & answered & (self.status != self.expect)
        timeouts = measured & ~answered
        lat = lat_ms[measured & answered]
        # late answers and timeouts count at the timeout: they were at least that late
        lat_all = np.concatenate([lat, np.full(int(timeouts.sum()), self.timeout_s * 1000)])
        pct = {f"p{p}": float(np.percentile(lat_all, p)) if lat_all.size else None
               for p in (50, 90, 99, 99.9)}
        secs = np.floor(self.due - self.start).astype(int)
        series = []
        for s in range(int(secs.max()) + 1 if self.total else 0):
            sel = (secs == s) & answered
            if sel.any():
                series.append([s, int(sel.sum()), float(np.percentile(lat_ms[sel], 50)),
                               float(np.percentile(lat_ms[sel], 99))])
        # answered per second, from the first measured due time to the last measured answer
        span = float(np.nanmax(self.done[measured]) - self.due[measured][0]) if ok.any() else 0.0
        statuses = collections.Counter(int(x) for x in self.status[measured])
        return {
            "rate": self.rate, "sent": int(measured.sum()), "ok": int(ok.sum()),
            "errors": int(errors.sum()), "timeouts": int(timeouts.sum()),
            "statuses": {str(k): v for k, v in statuses.items()},
            "achieved_rate": float(ok.sum() / span) if span else 0.0,
            "max_ms": float(lat_all.max()) if lat_all.size else None,
            **pct, "connections": self.opened, "series": series,
        }


async def _main(args) -> dict:
    gen = Generator(args.url, args.key, args.sku, args.rate, args.duration, args.max_connections,
                    args.timeout, args.expect)
    await gen.run()
    return gen.result()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--sku", action="append", required=True, help="one (a hot SKU) or several (spread)")
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of schedule (the first 2 s are warm-up)")
    p.add_argument("--max-connections", type=int, default=64,
                   help="keep-alive connections at most (as wrk's 64); beyond them requests wait, "
                        "and the wait counts in their latency")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait after the schedule ends")
    p.add_argument("--expect", type=int, default=201, help="the status every answer should have")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        import uvloop

        result = uvloop.run(_main(args))
    except ImportError:
        result = asyncio.run(_main(args))
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
