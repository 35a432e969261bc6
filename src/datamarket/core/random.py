"""Explicit, parallel-invariant randomness (STYLE practice 7).

Every stochastic entry point takes a ``seed``; child streams are spawned in the parent with
:meth:`numpy.random.SeedSequence.spawn`, so results do not depend on how work is split among workers.

>>> a = [g.integers(100) for g in spawn_generators(7, 3)]
>>> b = [g.integers(100) for g in spawn_generators(7, 3)]
>>> a == b
True
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

Seed: TypeAlias = int | np.random.SeedSequence | None


def seed_sequence(seed: Seed) -> np.random.SeedSequence:
    """Return a :class:`~numpy.random.SeedSequence` for ``seed`` (an int, a sequence or ``None``)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is not None and (not isinstance(seed, int | np.integer) or seed < 0):
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(None if seed is None else int(seed))


def make_rng(seed: Seed) -> np.random.Generator:
    """A fresh PCG64 generator for ``seed``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed)))


def spawn_seeds(seed: Seed, n: int) -> list[np.random.SeedSequence]:
    """``n`` independent child seed sequences, spawned in the caller's process."""
    return seed_sequence(seed).spawn(n)


def spawn_generators(seed: Seed, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived from ``seed`` (same seed -> same streams)."""
    return [np.random.Generator(np.random.PCG64(s)) for s in spawn_seeds(seed, n)]
