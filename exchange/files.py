"""Reading import files without loading more than the import limit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


class TooLarge(ValueError):
    """Raised for a file over the import limit (it is not read)."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"the file is {size:,} bytes, over the import limit of {limit:,} bytes "
                         f"(ONHAND_IMPORT_MAX_BYTES); it was not read")
        self.size = size
        self.limit = limit


def read_limited(source: Path | BinaryIO, limit: int) -> bytes:
    """The whole file when it is at most ``limit`` bytes. A larger one is
    refused by its size first, and by reading at most ``limit + 1`` bytes
    (a file growing while it is read)."""
    if isinstance(source, Path):
        with open(source, "rb") as fh:
            return read_limited(fh, limit)
    size = os.fstat(source.fileno()).st_size
    if size > limit:
        raise TooLarge(size, limit)
    data = source.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(len(data), limit)
    return data
