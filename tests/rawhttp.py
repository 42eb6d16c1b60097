"""A minimal HTTP/1.1 client over asyncio streams, for tests that send
thousands of requests at once: a general client's per-request CPU (httpx's
pool bookkeeping grows with connections x waiting requests) would otherwise
dominate the test's time on a 2-core machine."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import msgspec


class RawClient:
    def __init__(self, base_url: str, *, connections: int = 32, headers: dict[str, str] | None = None):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.headers = headers or {}
        self.pool: asyncio.Queue = asyncio.Queue()
        self.connections = connections

    async def __aenter__(self) -> "RawClient":
        for _ in range(self.connections):
            self.pool.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def __aexit__(self, *exc) -> None:
        while not self.pool.empty():
            _, writer = self.pool.get_nowait()
            writer.close()

    async def post(self, path: str, body, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        payload = msgspec.json.encode(body)
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Content-Type: application/json", f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(headers or {})}.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        reader, writer = await self.pool.get()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            response_headers = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.decode("latin-1").partition(":")
                if name:
                    response_headers[name.strip().lower()] = value.strip()
            content = await reader.readexactly(int(response_headers.get("content-length", 0)))
        except BaseException:
            writer.close()
            self.pool.put_nowait(await asyncio.open_connection(self.host, self.port))
            raise
        self.pool.put_nowait((reader, writer))
        return status, response_headers, content
