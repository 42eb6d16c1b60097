"""Many webhook receivers in one process, for the webhook benchmark: N
listening ports speaking just enough HTTP/1.1 (keep-alive, Content-Length),
each answering per the farm's mode, plus a control port.

Modes: ``ok`` (200), ``fail`` (500), ``slow`` (200 after SLOW_S), ``down``
(the ports are closed: connections are refused). Control: ``POST /mode/<m>``,
``GET /stats`` -> {"answered": n (2xx), "requests": n, "ids": unique webhook-ids}.

Run: ``python -m loadtests.receivers PORTS_FILE COUNT``: writes the control
port and the receivers' ports to PORTS_FILE (JSON) once listening.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

#: How long a slow receiver takes to answer, seconds.
SLOW_S = 10.0


class Farm:
    def __init__(self, count: int):
        self.count = count
        self.mode = "ok"
        self.ports: list[int] = []
        self.servers: list[asyncio.Server] = []
        self.answered = 0
        self.requests = 0
        self.ids: set[str] = set()
        #: Open connections: "down" drops them too (a dead host's kept-alive
        #: connections do not go on answering).
        self.connections: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        first = not self.ports
        for i in range(self.count):
            port = 0 if first else self.ports[i]
            server = await asyncio.start_server(self.serve, "127.0.0.1", port, reuse_address=True)
            self.servers.append(server)
            if first:
                self.ports.append(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for writer in list(self.connections):
            writer.transport.abort()
        for server in self.servers:
            await server.wait_closed()
        self.servers = []

    async def set_mode(self, mode: str) -> None:
        if mode == "down" and self.mode != "down":
            await self.close()
        elif mode != "down" and self.mode == "down":
            await self.open()
        self.mode = mode

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length") or 0))
                self.requests += 1
                if self.mode == "fail":
                    status = b"500 Internal Server Error"
                else:
                    if self.mode == "slow":
                        await asyncio.sleep(SLOW_S)
                    status = b"200 OK"
                    self.answered += 1
                    if "webhook-id" in headers:
                        self.ids.add(headers["webhook-id"])
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.connections.discard(writer)
            writer.close()

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, path, _ = head.split("\r\n", 1)[0].split(" ", 2)
            if method == "POST" and path.startswith("/mode/"):
                await self.set_mode(path.rsplit("/", 1)[1])
                body = b"{}"
            else:
                body = json.dumps({"answered": self.answered, "requests": self.requests,
                                   "ids": len(self.ids), "mode": self.mode}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
        finally:
            writer.close()


async def main(ports_file: Path, count: int) -> None:
    farm = Farm(count)
    await farm.open()
    control = await asyncio.start_server(farm.control, "127.0.0.1", 0)
    tmp = ports_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"control": control.sockets[0].getsockname()[1], "ports": farm.ports}))
    tmp.replace(ports_file)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
