"""Progress reports from inside long computations: a plain callback, no I/O.

A long mechanism (batches of model fits, equilibrium iterations) accepts an optional
``progress: Progress | None`` and calls it with a stage name and the fraction of that computation
done so far, in ``[0, 1]``. The caller decides what to do with it (the service writes it to the
round's row; the CLI draws a bar). :func:`scaled` maps a sub-computation's fraction into a slice of
the whole, so that nested stages report one monotone fraction.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, float], None]


def report(progress: Progress | None, stage: str, fraction: float) -> None:
    """Call ``progress(stage, fraction)`` (fraction clipped to [0, 1]) when a callback was given.

    >>> seen = []
    >>> report(lambda s, f: seen.append((s, f)), "fits", 1.5)
    >>> seen
    [('fits', 1.0)]
    >>> report(None, "fits", 0.5)
    """
    if progress is not None:
        progress(stage, min(1.0, max(0.0, float(fraction))))


def scaled(progress: Progress | None, lo: float, hi: float) -> Progress | None:
    """A callback that reports fraction ``f`` of a sub-computation as ``lo + (hi - lo) f``.

    >>> seen = []
    >>> inner = scaled(lambda s, f: seen.append((s, f)), 0.5, 1.0)
    >>> inner("shapley", 0.5)
    >>> seen
    [('shapley', 0.75)]
    """
    if progress is None:
        return None
    outer = progress

    def inner(stage: str, fraction: float) -> None:
        report(outer, stage, lo + (hi - lo) * min(1.0, max(0.0, float(fraction))))

    return inner
