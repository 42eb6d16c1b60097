"""The Dramatiq broker (workers/brokers.py): which one a deployment gets,
queues kept apart per deployment, and messages acknowledged only after their
actor returns, so a worker killed with SIGKILL mid-message loses nothing, on
the Redis broker and on RabbitMQ."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dramatiq
import pytest
from redis import Redis

from onhand.settings import Settings
from tests.servers import new_merchant, rabbitmq_queue_exists
from workers.brokers import (
    QUEUES,
    BrokerRefused,
    check,
    delete_queues,
    make_broker,
    namespace,
    queue_name,
    uses_rabbitmq,
)


def _settings(redis_url: str, broker_url: str | None, **kw) -> Settings:
    return Settings(redis_url=redis_url, broker_url=broker_url, merchant=new_merchant(), **kw)


def test_a_cluster_data_store_needs_a_broker_url():
    cluster = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/0"
    with pytest.raises(BrokerRefused, match="ONHAND_BROKER_URL") as refused:
        make_broker(Settings(redis_url=cluster))
    assert "Redis Cluster" in str(refused.value)
    with pytest.raises(BrokerRefused, match="Redis Cluster"):
        check(Settings(redis_url="redis://127.0.0.1:6379/0", broker_url=cluster))
    with pytest.raises(BrokerRefused, match="amqp://"):
        check(Settings(redis_url="redis://127.0.0.1:6379/0", broker_url="kafka://127.0.0.1:9092"))
    # with a broker named, a cluster data store is fine
    check(Settings(redis_url=cluster, broker_url="amqp://guest:guest@127.0.0.1:5672/%2F"))
    check(Settings(redis_url=cluster, broker_url="redis://127.0.0.1:6379/1"))


def test_onhand_worker_on_a_cluster_without_a_broker_url_refuses_with_the_reason(tmp_path):
    env = {"ONHAND_REDIS_URL": "redis+cluster://127.0.0.1:1/0",
           "ONHAND_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "ONHAND_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    for command in (["worker"], ["serve", "--port", "1"]):
        done = subprocess.run([sys.executable, "-m", "onhand", *command], env=env, capture_output=True,
                              text=True, timeout=60, cwd=Path(__file__).resolve().parents[2], check=False)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "Redis Cluster" in done.stderr and "ONHAND_BROKER_URL" in done.stderr
        assert "Traceback" not in done.stderr


def test_broker_namespace_setting_is_checked():
    assert Settings.from_env({"ONHAND_BROKER_NAMESPACE": "shop-eu_1"}).broker_namespace == "shop-eu_1"
    for bad in ("1abc", "a.b", "a b", "x" * 65):
        with pytest.raises(ValueError, match="ONHAND_BROKER_NAMESPACE"):
            Settings.from_env({"ONHAND_BROKER_NAMESPACE": bad})
    env = {"ONHAND_BROKER_URL": "amqp://u:p@mq:5672/onhand", "ONHAND_MERCHANT": "acme"}
    settings = Settings.from_env(env)
    assert uses_rabbitmq(settings) and namespace(settings) == "onhand-acme"
    assert queue_name(settings, "outbox") == "onhand-acme.outbox"
    assert queue_name(Settings(merchant="acme"), "outbox") == "outbox"  # Redis: keys carry it


def test_two_deployments_on_one_rabbitmq_never_share_a_queue(redis_url, rabbitmq_url):
    """Given two deployments (their own merchants) on one RabbitMQ, a message
    sent by one is consumed by its own worker only; deleting one's queues
    leaves the other's."""
    a, b = _settings(redis_url, rabbitmq_url), _settings(redis_url, rabbitmq_url)
    got: dict[str, list[str]] = {"a": [], "b": []}
    brokers = []
    try:
        for name, settings in (("a", a), ("b", b)):
            broker = make_broker(settings)
            brokers.append(broker)

            def seen(text: str, into=got[name]) -> None:
                into.append(text)

            actor = dramatiq.actor(seen, broker=broker, actor_name="seen",
                                   queue_name=queue_name(settings, "default"))
            actor.send(f"for {name}")
        assert rabbitmq_queue_exists(rabbitmq_url, f"{namespace(a)}.default")
        assert rabbitmq_queue_exists(rabbitmq_url, f"{namespace(b)}.default")
        worker = dramatiq.Worker(brokers[0], worker_threads=1)
        worker.start()
        deadline = time.monotonic() + 10
        while not got["a"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        worker.stop()
        assert got == {"a": ["for a"], "b": []}
        delete_queues(a)
        assert not rabbitmq_queue_exists(rabbitmq_url, f"{namespace(a)}.default")
        assert rabbitmq_queue_exists(rabbitmq_url, f"{namespace(b)}.default")
    finally:
        for broker in brokers:
            broker.close()
        for settings in (a, b):
            delete_queues(settings)
    assert not any(rabbitmq_queue_exists(rabbitmq_url, f"{namespace(s)}.{q}") for s in (a, b) for q in QUEUES)


#: A worker process with one actor that takes a while: it counts its starts
#: in Redis and, unless told to finish quickly, sleeps before counting its end.
_WORKER = textwrap.dedent("""
    import sys, time
    import dramatiq
    from redis import Redis
    from onhand.settings import Settings
    from workers.brokers import make_broker, queue_name

    redis_url, broker_url, merchant, hold_s = sys.argv[1], sys.argv[2] or None, sys.argv[3], float(sys.argv[4])
    settings = Settings(redis_url=redis_url, broker_url=broker_url, merchant=merchant)
    broker = make_broker(settings, heartbeat_timeout_ms=1000, maintenance_chance=1_000_000)
    redis = Redis.from_url(redis_url)

    def job(n):
        redis.rpush(f"{merchant}:started", n)
        time.sleep(hold_s)
        redis.rpush(f"{merchant}:done", n)

    dramatiq.actor(job, broker=broker, queue_name=queue_name(settings, "default"), max_retries=0)
    worker = dramatiq.Worker(broker, worker_threads=2)
    worker.start()
    redis.set(f"{merchant}:ready", 1)
    while True:
        time.sleep(1)
""")


def test_a_worker_killed_mid_message_loses_nothing(redis_url, broker_url, tmp_path):
    """Given 6 messages and a worker (2 threads) that holds each for 30 s,
    when the worker is killed with SIGKILL while it runs two of them (and
    holds the others prefetched), then a new worker runs every message to its
    end: none was acknowledged before its actor returned."""
    settings = _settings(redis_url, broker_url)
    merchant = settings.merchant
    redis = Redis.from_url(redis_url)
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    root = Path(__file__).resolve().parents[2]

    def start(hold_s: float) -> subprocess.Popen:
        redis.delete(f"{merchant}:ready")
        proc = subprocess.Popen([sys.executable, str(script), redis_url, broker_url or "", merchant, str(hold_s)],
                                cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
        deadline = time.monotonic() + 30
        while not redis.exists(f"{merchant}:ready"):
            assert proc.poll() is None and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)
        return proc

    broker = make_broker(settings)
    job = dramatiq.actor(lambda n: None, broker=broker, actor_name="job",
                         queue_name=queue_name(settings, "default"), max_retries=0)
    first = second = None
    try:
        first = start(hold_s=30)
        for n in range(6):
            job.send(n)
        deadline = time.monotonic() + 20
        while redis.llen(f"{merchant}:started") < 2:
            assert time.monotonic() < deadline, "the first worker never started a message"
            time.sleep(0.05)
        # When the worker dies mid-message
        first.kill()
        first.wait(10)
        assert redis.llen(f"{merchant}:done") == 0
        # Then another worker gets every message back and finishes each
        second = start(hold_s=0)
        deadline = time.monotonic() + 60
        while len(set(redis.lrange(f"{merchant}:done", 0, -1))) < 6:
            assert time.monotonic() < deadline, (redis.lrange(f"{merchant}:started", 0, -1),
                                                 redis.lrange(f"{merchant}:done", 0, -1))
            time.sleep(0.1)
        done = sorted(int(n) for n in redis.lrange(f"{merchant}:done", 0, -1))
        assert done == list(range(6)), done  # each message once to its end
        started = [int(n) for n in redis.lrange(f"{merchant}:started", 0, -1)]
        assert len(started) > 6, "the interrupted messages ran again"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        broker.close()
        delete_queues(settings)
        for key in redis.scan_iter(match=f"{merchant}:*"):
            redis.delete(key)
        for key in redis.scan_iter(match=f"{namespace(settings)}*"):
            redis.delete(key)
        redis.close()
