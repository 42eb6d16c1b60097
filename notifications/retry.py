"""When to try a failed delivery again: exponential backoff with jitter,
within a retry window (3 days by default), after which it is dead."""

from __future__ import annotations

import random


def backoff_ms(attempts: int, *, base_ms: int, cap_ms: int, rng: random.Random | None = None) -> int:
    """The wait after the ``attempts``-th failed attempt (1 = the first):
    base * 2^(attempts-1), capped, then drawn from 50-100% of that step, so
    endpoints that failed together do not come back in lockstep."""
    step = min(cap_ms, base_ms * 2 ** min(max(attempts - 1, 0), 40))
    r = rng.random() if rng is not None else random.random()
    return int(step * (0.5 + 0.5 * r))


def schedule(*, base_ms: int, cap_ms: int, window_s: int) -> list[int]:
    """The nominal wait before each retry over the window (without jitter),
    milliseconds: what docs/notifications.md tabulates."""
    waits, total, attempt = [], 0, 1
    while True:
        step = min(cap_ms, base_ms * 2 ** (attempt - 1))
        if total + step > window_s * 1000:
            return waits
        waits.append(step)
        total += step
        attempt += 1
