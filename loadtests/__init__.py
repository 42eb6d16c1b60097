"""Load tests and benchmarks: Locust scenarios, the PostgreSQL row-lock
baseline, the open-loop latency generator, invariant checks and the
`onhand bench load` report (loadtests/bench.py)."""
