"""TOTP codes that each load run may use once: a (user, 30-s time step) pair is never sent twice.

The service accepts the codes of the current step ±1 and refuses a code whose step is not
later than the last step it accepted for that user (``TOTP-Auw0a``, a replay). So every user
can pass at most one check per step, in increasing step order. ``TotpPairs`` writes, before
each wrk run, an ids file of ``<session id> <code>`` lines in which

- every step is one the server accepts during the **whole** run: from the step at the run's
  end minus one to the step at its start plus one (a run inside one step may use 3 steps of
  each user, a run across a boundary 2);
- every user's steps are later than any step of that user sent before;
- a user's lines come in increasing step order and at least ``min_gap`` lines apart (more than
  the requests in flight), in each load-generator thread's slice of the file.

After the run, ``consumed`` marks as used exactly the lines each thread generated (wrk's
``request()`` calls, reported per thread), so the warm-up does not use up the measurement's
pairs. ``wait_for_window`` waits for the next step when a run would cross a boundary and fits
in one step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyotp

PERIOD_S = 30
DIGITS = 6
#: Steps on either side of the current one that the server accepts.
SKEW = 1


def step_at(unix_s: float) -> int:
    return math.floor(unix_s) // PERIOD_S


class TotpPairs:
    def __init__(self, sessions: Sequence[tuple[str, str]], *, min_gap: int) -> None:
        """``sessions``: (session id, base32 TOTP secret of its user), one session per user."""
        self._sessions = list(sessions)
        self._otp = [pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_S) for _, secret in sessions]
        self._used = [0] * len(sessions)
        self._issued: list[list[tuple[int, int]]] = []
        self.min_gap = min_gap

    def wait_for_window(
        self, span_s: float, *, log: Callable[[str], None], margin_s: float = 1.0
    ) -> float:
        """Sleep to the next step when [now, now + span] would cross one; the seconds slept."""
        now = time.time()
        into = now % PERIOD_S
        if span_s + margin_s >= PERIOD_S or into + span_s + margin_s < PERIOD_S:
            return 0.0
        wait = PERIOD_S - into + 0.2
        log(f"waiting {wait:.1f}s for the next TOTP step, so the run stays inside one")
        time.sleep(wait)
        return wait

    def write(self, path: Path, *, threads: int, span_s: float) -> int:
        """The ids file for a run of about ``span_s`` seconds starting now; its line count."""
        now = time.time()
        first, last = step_at(now), step_at(now + span_s)
        valid = list(range(last - SKEW, first + SKEW + 1))
        blocks: list[list[tuple[int, int]]] = []
        for tid in range(threads):
            mine = range(tid, len(self._sessions), threads)
            avail = {i: [s for s in valid if s > self._used[i]] for i in mine}
            # users with the most steps left first: level k+1 is then a prefix of level k, so
            # a user's next line is exactly one level (at least min_gap lines) later
            order = sorted(mine, key=lambda i: -len(avail[i]))
            block: list[tuple[int, int]] = []
            previous = 0
            for level in range(len(valid)):
                row = [(i, avail[i][level]) for i in order if len(avail[i]) > level]
                if not row or (level > 0 and previous < self.min_gap):
                    break
                block += row
                previous = len(row)
            blocks.append(block)
        if threads > 1:  # wrk slices the file evenly: equal blocks keep each user in one slice
            size = min(len(b) for b in blocks)
            blocks = [b[:size] for b in blocks]
        self._issued = blocks
        lines = [
            f"{self._sessions[i][0]} {self._otp[i].generate_otp(step)}\n"
            for block in blocks
            for i, step in block
        ]
        path.write_text("".join(lines), encoding="utf-8")
        return len(lines)

    def consumed(self, sent: Sequence[int]) -> None:
        """Mark the lines each thread generated (all of them when unknown) as used."""
        for tid, block in enumerate(self._issued):
            count = sent[tid] if tid < len(sent) else len(block)
            for i, step in block[:count]:
                self._used[i] = max(self._used[i], step)
        self._issued = []

    def left(self, span_s: float) -> int:
        """Pairs a run of ``span_s`` starting now could still use (ignoring min_gap)."""
        now = time.time()
        valid = range(step_at(now + span_s) - SKEW, step_at(now) + SKEW + 1)
        return sum(sum(1 for s in valid if s > used) for used in self._used)
