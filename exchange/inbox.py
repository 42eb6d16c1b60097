"""The watched inbox folder (ONHAND_EDI_INBOX): each file that arrives is
imported (an X12 interchange or a CSV of orders, told apart by content) and
moved to ``done/`` or ``failed/`` with its report beside it
(``<name>.report.json``). No file is ever lost:

- a file still being written is left alone: names starting with ``.`` or
  ending in ``.tmp``/``.part`` are skipped, and a file is read only once it
  has not changed for ONHAND_EDI_INBOX_SETTLE_MS;
- a file is claimed with an exclusive ``flock`` while it is imported, so a
  second worker skips it; the kernel drops the lock when a process dies, so
  a crash mid-import leaves the file where it was and the next scan imports
  it again (imports are idempotent: nothing is created twice);
- the report is written before the file is moved, and the move is a rename
  within the folder's file system;
- a file larger than ONHAND_IMPORT_MAX_BYTES is failed by its size, without
  reading it;
- when Redis or PostgreSQL is unavailable the file stays for the next scan.

flock is advisory and local: the folder must be on a local file system
(not NFS) shared only by onhand's workers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from exchange.files import TooLarge, read_limited
from exchange.report import ImportReport, Problem

log = logging.getLogger("onhand.inbox")

SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".crdownload")


def is_x12(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"ISA")


Import = Callable[[bytes, str], Awaitable[ImportReport]]


class Inbox:
    def __init__(self, folder: Path, *, settle_ms: int, max_bytes: int):
        self.folder = folder
        self.settle_ms = settle_ms
        self.max_bytes = max_bytes
        self.done = folder / "done"
        self.failed = folder / "failed"

    def ready(self, now: float | None = None) -> list[Path]:
        """Files that may be imported now, oldest first."""
        now = time.time() if now is None else now
        if not self.folder.is_dir():
            return []
        out = []
        for entry in os.scandir(self.folder):
            name = entry.name
            if name.startswith(".") or name.lower().endswith(SKIP_SUFFIXES) or not entry.is_file():
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # taken by another worker meanwhile
            if (now - st.st_mtime) * 1000 >= self.settle_ms:
                out.append((st.st_mtime, Path(entry.path)))
        return [p for _, p in sorted(out)]

    async def process(self, path: Path, import_x12: Import, import_csv: Import) -> str | None:
        """Imports one file; returns "done", "failed", or None when it was not
        taken (another worker has it, or it is gone)."""
        try:
            fh = open(path, "rb")  # noqa: SIM115 - held for the flock
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            try:
                if os.fstat(fh.fileno()).st_ino != os.stat(path).st_ino:
                    return None  # moved and replaced by a new file of the same name
            except FileNotFoundError:
                return None  # moved by the worker that had it before us
            report = await self._import(fh, path, import_x12, import_csv)
            # lines reported (855 IR) are part of a done import; a file refused,
            # or an order that could not be placed at all, needs staff
            ok = report.ok and not report.problems and all(
                o.status not in ("rejected", "refused") for o in report.orders)
            self._finish(path, report, ok)
            return "done" if ok else "failed"
        finally:
            fh.close()

    async def _import(self, fh, path: Path, import_x12: Import, import_csv: Import) -> ImportReport:
        try:
            data = read_limited(fh, self.max_bytes)
        except TooLarge as exc:
            return ImportReport(kind="unknown", ok=False, source=path.name,
                                problems=[Problem(message=str(exc))])
        if is_x12(data[:512]):
            return await import_x12(data, path.name)
        return await import_csv(data, path.name)

    def _finish(self, path: Path, report: ImportReport, ok: bool) -> None:
        target_dir = self.done if ok else self.failed
        target_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = target_dir / f"{stamp}-{path.name}"
        report_path = target_dir / f"{target.name}.report.json"
        tmp = target_dir / f".{report_path.name}.tmp"
        tmp.write_bytes(report.to_json())
        os.replace(tmp, report_path)
        os.rename(path, target)
        log.info("inbox: %s -> %s (%s)", path.name, target, report.summary())
