"""Control numbers never repeat: documents recorded from many connections
at once get distinct, gap-free interchange numbers; a transaction that rolls
back gives its numbers back with its document; a key is recorded once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from persistence import counters, edi


def _build(controls: edi.Controls) -> bytes:
    return f"ISA{controls.interchange}:{controls.groups}:{controls.sets}".encode()


def test_concurrent_documents_get_distinct_gap_free_numbers(database_url):
    engine = create_engine(database_url, pool_size=10, max_overflow=10)

    def record(n: int):
        with engine.begin() as conn:
            doc, made = edi.record_document(conn, "m1", kind="855", key=f"855:c:{n % 30}", groups=1, sets=2,
                                            build=_build)
            return doc.isa_control, made

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(record, range(90)))  # each of 30 keys three times
    made = [isa for isa, new in results if new]
    assert sorted(made) == list(range(1, 31))  # one document per key, numbers 1..30
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT isa_control, gs_control, st_controls FROM edi_documents "
                                 "WHERE merchant_id = 'm1'")).all()
        assert counters.current(conn, "m1", counters.TRANSACTION_SET) == 60
    assert len({r.gs_control for r in rows}) == 30
    assert sorted(n for r in rows for n in r.st_controls) == list(range(1, 61))
    engine.dispose()


def test_a_rolled_back_document_gives_its_numbers_back(database_url):
    engine = create_engine(database_url)
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            edi.record_document(conn, "m2", kind="997", key="997:a", groups=1, sets=1, build=_build)
            raise RuntimeError("crash before commit")
    with engine.begin() as conn:
        doc, made = edi.record_document(conn, "m2", kind="997", key="997:b", groups=1, sets=1, build=_build)
    assert made and doc.isa_control == 1
    with engine.begin() as conn:  # merchants count separately
        doc, _ = edi.record_document(conn, "m3", kind="997", key="997:b", groups=1, sets=1, build=_build)
    assert doc.isa_control == 1
    engine.dispose()
