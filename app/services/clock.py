"""Wall-clock time for the edges; the rules receive it as a number."""

from __future__ import annotations

import time


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000
