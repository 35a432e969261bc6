"""Following a round until it ends: the polling schedule and the progress output of ``wait``.

A round opens ``pending`` and clears in the background (``running``, with ``progress`` in [0, 1] and
the mechanism's ``stage``) until ``cleared``, ``failed`` or ``unverified``. :class:`Poll` is the
schedule both clients' ``wait`` follow: read the round, report it to the progress callback, stop on
an end state (:class:`~datamarket.client.errors.RoundFailed` for ``failed`` and ``unverified``
unless ``check=False``) or past the timeout (:class:`~datamarket.client.errors.WaitTimeout`), else
pause, the pause growing by half each time from ``interval`` up to ``max_interval`` (a short round
is seen soon, a long one is not polled hard).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from datamarket.client.errors import RoundFailed, WaitTimeout
from datamarket.service.api.schemas import RoundOut

END_STATES = frozenset({"cleared", "failed", "unverified"})
Progress = Callable[[RoundOut], None]


class TextProgress:
    """A one-line progress bar of a round on ``stream`` (default: standard error), tqdm-like:
    redrawn in place on a terminal, one line per change elsewhere (a log, a notebook)."""

    def __init__(self, stream: IO[str] | None = None, width: int = 24) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = ""

    def line(self, state: RoundOut) -> str:
        """What is drawn for ``state``.

        >>> from datetime import datetime
        >>> now = datetime(2026, 1, 1)
        >>> s = RoundOut(id=3, market_id=1, status="running", progress=0.5, stage="pricing", attempts=1,
        ...              seed=None, seed_commit=None, seed_source="csprng", input_ids=[], error=None,
        ...              created_at=now, updated_at=now)
        >>> TextProgress(width=10).line(s)
        'round 3 [#####.....]  50% running: pricing'
        """
        done = min(max(state.progress, 0.0), 1.0)
        filled = round(done * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        stage = f": {state.stage}" if state.stage and state.stage != state.status else ""
        return f"round {state.id} [{bar}] {done:4.0%} {state.status}{stage}"

    def __call__(self, state: RoundOut) -> None:
        text = self.line(state)
        if text == self._last:
            return
        self._last = text
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        end = "\n" if not tty or state.status in END_STATES else ""
        self.stream.write(("\r" if tty else "") + text + end)
        self.stream.flush()


def progress_of(progress: Progress | bool | None) -> Progress | None:
    """The callback for ``wait``'s ``progress``: a callable as it is, ``True`` a :class:`TextProgress`."""
    if progress is True:
        return TextProgress()
    if progress is False or progress is None:
        return None
    return progress


class Poll:
    """The schedule of one ``wait`` (module docstring)."""

    def __init__(
        self,
        timeout: float,
        progress: Progress | bool | None = None,
        interval: float = 0.05,
        max_interval: float = 2.0,
        check: bool = True,
    ) -> None:
        if timeout <= 0 or interval <= 0 or max_interval < interval:
            raise ValueError("need timeout > 0 and 0 < interval <= max_interval")
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.report = progress_of(progress)
        self.pause = interval
        self.max_interval = max_interval
        self.check = check

    def done(self, state: RoundOut) -> bool:
        """Report ``state``; True when it is an end state (raising for a failed one), raise past the
        deadline, else False (poll again after :meth:`next_pause`)."""
        if self.report is not None:
            self.report(state)
        if state.status in END_STATES:
            if self.check and state.status != "cleared":
                raise RoundFailed(state)
            return True
        if time.monotonic() >= self.deadline:
            raise WaitTimeout(state, self.timeout)
        return False

    def next_pause(self) -> float:
        """Seconds to pause before the next read (never past the deadline)."""
        pause = min(self.pause, max(0.0, self.deadline - time.monotonic()))
        self.pause = min(self.pause * 1.5, self.max_interval)
        return pause
