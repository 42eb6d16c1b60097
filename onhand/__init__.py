"""onhand: the command line, settings and the embedded servers that tie the
engine, API, persistence and workers into one service."""
