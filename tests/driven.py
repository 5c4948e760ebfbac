"""Time the tests drive instead of sleeping through: the app's clock and its caches' clock.

The whole application reads wall-clock time from one object, ``app.application.CLOCK``
(rules, expiry, retention, the sweeper, bearer checks): replacing it before ``create_app``
runs moves the app's "now" without sleeping. Redis keeps its own clock (leases, key
expiries), which these clocks leave alone: driving forward only makes key expiries later in
real terms, so what a test then sees comes from the app's rules, not from Redis dropping keys.

The per-worker caches (``app.services.ttlcache``) read ``time.monotonic``; ``drive_caches``
gives them an offset the same way.
"""

from __future__ import annotations

import time
import types

import pytest

from app.services.clock import SystemClock


class DrivenClock(SystemClock):
    """Real wall-clock time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms

    def advance(self, ms: int) -> None:
        self.offset_ms += ms


def drive_app_clock(monkeypatch: pytest.MonkeyPatch) -> DrivenClock:
    """Install a driven clock as the app's clock; call before the app is created."""
    import app.application

    clock = DrivenClock()
    monkeypatch.setattr(app.application, "CLOCK", clock)
    return clock


class DrivenMonotonic:
    """``time.monotonic`` plus an offset, for the caches' TTLs."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def advance(self, ms: int) -> None:
        self.offset_s += ms / 1000


def drive_caches(monkeypatch: pytest.MonkeyPatch) -> DrivenMonotonic:
    """Every ``TTLCache`` of the process reads this clock from now on (test-scoped)."""
    import app.services.ttlcache

    clock = DrivenMonotonic()
    monkeypatch.setattr(
        app.services.ttlcache, "time", types.SimpleNamespace(monotonic=clock.monotonic)
    )
    return clock
