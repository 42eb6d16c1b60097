"""The staff web UI: server-rendered pages (Jinja2 + HTMX) in the same Litestar app
as the API, calling the same engine operations and readers (see docs/ui.md)."""
