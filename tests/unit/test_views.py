"""Response bodies' times: RFC 3339 in UTC with milliseconds, exact for any
epoch millisecond (api/views.rfc3339 formats them by hand, for speed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from api.views import rfc3339

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_times_are_rfc3339_utc_with_milliseconds_for_any_millisecond():
    assert rfc3339(None) == rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1764876759123) == "2025-12-04T19:32:39.123Z"
    assert rfc3339(253402300799999) == "9999-12-31T23:59:59.999Z"
    r = random.Random(14)
    for ms in [r.randrange(0, 253402300800000) for _ in range(20000)]:
        # datetime arithmetic in integers (fromtimestamp's float division is
        # off by one millisecond near year 9999)
        expected = (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
        assert rfc3339(ms) == expected.replace("+00:00", "Z"), ms


def test_a_float_rounds_to_microseconds_then_drops_them():
    assert rfc3339(1733.4) == "1970-01-01T00:00:01.733Z"
    assert rfc3339(1733.9999999) == "1970-01-01T00:00:01.734Z"
