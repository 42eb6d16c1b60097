"""Where the test suite finds Redis and PostgreSQL.

ONHAND_REDIS_URL / ONHAND_DATABASE_URL when set (CI points them at the
machine's servers); otherwise embedded servers started once per test process.
Tests that kill, flush or reconfigure a server start their own with
:func:`own_dir` and onhand.embedded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path


def own_dir(name: str) -> Path:
    """A fresh directory for a server a test owns. World-traversable (0755),
    because PostgreSQL runs as an unprivileged user when the suite runs as root."""
    path = Path(tempfile.mkdtemp(prefix=f"onhand-{name}-"))
    path.chmod(0o755)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def env_redis_url() -> str | None:
    return os.environ.get("ONHAND_REDIS_URL") or None


def env_database_url() -> str | None:
    return os.environ.get("ONHAND_DATABASE_URL") or None


#: The RabbitMQ the broker tests use (this machine runs one; CI starts none for it).
RABBITMQ_URL = os.environ.get("ONHAND_TEST_RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F"


def rabbitmq_unavailable(url: str = RABBITMQ_URL) -> str | None:
    """Why the RabbitMQ tests cannot run (None: they can)."""
    try:
        import pika
    except ImportError:
        return "pika is not installed"
    try:
        params = pika.URLParameters(url)
        params.socket_timeout = params.blocked_connection_timeout = 2
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()
    except Exception as exc:  # noqa: BLE001 - any failure means: no RabbitMQ here
        return f"no RabbitMQ answers at {url.rsplit('@', 1)[-1]} ({type(exc).__name__})"
    return None


def rabbitmq_queue_exists(url: str, name: str) -> bool:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        return False
    finally:
        if connection.is_open:
            connection.close()


def new_merchant() -> str:
    """Each test works under its own merchant prefix, so tests sharing one
    Redis never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]
