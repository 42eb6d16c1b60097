"""Load tests and benchmarks: Locust scenarios, the PostgreSQL row-lock
baseline, the open-loop latency generator, invariant checks and the
`onhand bench load` report (loadtests/bench.py)."""


def libpq(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
