"""`onhand serve` as a merchant runs it: real processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from onhand.embedded import start_valkey
from onhand.settings import Settings
from tests.procs import free_port, serve, wait_ready
from tests.servers import new_merchant, own_dir, remove_dir


def _settings(tmp: Path, **kw) -> Settings:
    return Settings(merchant=new_merchant(), admin_key="serve-admin-key", data_dir=tmp / "data", **kw)


def test_serve_refuses_a_redis_without_appendfsync_always(database_url, tmp_path):
    path = own_dir("unsafe-valkey")
    valkey = start_valkey(path, appendfsync="everysec")
    try:
        settings = _settings(tmp_path, redis_url=valkey.url, database_url=database_url)
        proc = serve(settings, tmp_path / "serve.log", free_port()).start()
        proc.process.wait(60)
        assert proc.process.returncode == 2
        out = proc.output()
        assert "refusing to start" in out and "appendfsync=everysec" in out and "always" in out
        # ... and starts when told the instance is throwaway
        port = free_port()
        unsafe = serve(settings, tmp_path / "serve2.log", port, ONHAND_ALLOW_UNSAFE_REDIS="1").start()
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc=unsafe)
            assert "ONHAND_ALLOW_UNSAFE_REDIS=1" in unsafe.output()
        finally:
            unsafe.stop()
    finally:
        valkey.stop()
        remove_dir(path)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_embedded_servers_and_children_die_with_serve_even_on_kill_9(tmp_path):
    """Given `onhand serve` with no URLs (embedded Valkey and PostgreSQL), when
    its process is killed with SIGKILL, then every process it started dies."""
    data = own_dir("serve-embedded")
    try:
        settings = Settings(merchant="default", admin_key="serve-admin-key", data_dir=data)
        port = free_port()
        proc = serve(settings, tmp_path / "serve.log", port).start()
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, timeout_s=120, proc=proc)
        # the service works on its embedded servers
        auth = {"Authorization": "Bearer serve-admin-key"}
        assert httpx.put(f"{base}/v1/skus/KILL-1", json={"name": "x"}, headers=auth).status_code == 200
        info = (data / "servers.json").read_text()
        assert "unix://" in info and "postgresql+psycopg://" in info
        family = _descendants(proc.process.pid)
        commands = [Path(f"/proc/{p}/cmdline").read_bytes() for p in family if _alive(p)]
        for server in (b"valkey-server", b"postgres", b"granian", b"onhand worker"):
            assert any(server in c.replace(b"\0", b" ") for c in commands), (server, commands)
        os.kill(proc.process.pid, signal.SIGKILL)  # the parent only
        proc.process.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            time.sleep(0.2)
        assert not [p for p in family if _alive(p)], "children outlived a kill -9 of serve"
    finally:
        remove_dir(data)


@pytest.mark.parametrize(("kill", "after_s"), [("serve", 0.5), ("serve", 0.0), ("tree", 0.5)])
def test_serve_comes_back_right_after_a_kill_9_with_every_acknowledged_order(tmp_path, kill, after_s):
    """Given `onhand serve` on embedded servers taking orders, when it is killed
    with SIGKILL (``serve``: the supervisor alone, its children and embedded
    servers get their parent-death signal and are still shutting down;
    ``tree``: every process it started, at once, as an OOM kill or a power cut
    of the tree would) and a supervisor starts it again 0.5 s later on the same
    data dir (or at once), then it comes up and every order that was
    acknowledged is there."""
    import threading

    data = own_dir("serve-restart")
    try:
        settings = Settings(merchant="default", admin_key="serve-admin-key", data_dir=data)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": "Bearer serve-admin-key"}
        first = serve(settings, tmp_path / "serve-1.log", port).start()
        wait_ready(base, timeout_s=120, proc=first)
        assert httpx.put(f"{base}/v1/skus/RESTART-1", json={"name": "x"}, headers=auth).status_code == 200
        assert httpx.post(f"{base}/v1/inventory/receipts", headers=auth, json={
            "reference": "r1", "lines": [{"sku": "RESTART-1", "quantity": 1_000_000}]}).status_code == 201

        acknowledged: list[str] = []
        stop = threading.Event()

        def buy() -> None:
            with httpx.Client(base_url=base, headers=auth, timeout=5) as client:
                while not stop.is_set():
                    try:
                        r = client.post("/v1/orders", json={"channel": "dtc", "lines": [
                            {"sku": "RESTART-1", "quantity": 2}]})
                    except httpx.HTTPError:
                        continue  # the service is gone: not acknowledged
                    if r.status_code == 201:
                        acknowledged.append(r.json()["id"])

        buyer = threading.Thread(target=buy, daemon=True)
        buyer.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        family = _descendants(first.process.pid)
        os.kill(first.process.pid, signal.SIGKILL)
        if kill == "tree":
            for pid in family:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        first.process.wait(10)
        time.sleep(after_s)
        second = serve(settings, tmp_path / "serve-2.log", port).start()
        try:
            stop.set()
            buyer.join(10)
            assert len(acknowledged) >= 50
            wait_ready(base, timeout_s=120, proc=second)
            with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
                for order_id in acknowledged:
                    r = client.get(f"/v1/orders/{order_id}")
                    assert r.status_code == 200, (order_id, r.text)
                    assert r.json()["lines"][0]["reserved"] == 2
                inv = client.get("/v1/inventory/RESTART-1").json()
            # orders cut off mid-flight may or may not have been made; none is lost
            assert inv["reserved"] >= 2 * len(acknowledged)
            assert inv["on_hand"] == 1_000_000 and inv["available"] == 1_000_000 - inv["reserved"]
        finally:
            second.stop()
    finally:
        remove_dir(data)
