"""PostgreSQL, the system of record: models, migrations, the idempotent
application of outbox events, reads for the API, rebuild and reconcile."""
