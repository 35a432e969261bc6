"""Shared pytest configuration: headless plotting, pinned BLAS threads, hypothesis profiles.

Hypothesis profiles (pick one with ``--hypothesis-profile=NAME`` or ``HYPOTHESIS_PROFILE=NAME``):

- ``ci`` (the default, used by ``make test``): no deadline, the reproduction blob printed on failure,
  a fixed number of examples per test, and a *random* seed, so every run explores new examples; a
  failure is replayed with ``--hypothesis-seed=N`` (printed by pytest) or the printed blob.
- ``thorough`` (``make test-thorough``, not in CI): ten times the examples, including for the tests
  that pin a smaller ``max_examples`` with ``@settings``.
"""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

from hypothesis import HealthCheck, settings  # noqa: E402

THOROUGH_FACTOR = 10
settings.register_profile(
    "ci",
    deadline=None,
    print_blob=True,
    max_examples=40,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", settings.get_profile("ci"), max_examples=40 * THOROUGH_FACTOR)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``thorough``, scale the per-test ``@settings(max_examples=N)`` by ``THOROUGH_FACTOR`` too."""
    if settings.default.max_examples != settings.get_profile("thorough").max_examples:
        return
    for item in items:
        fn = getattr(item, "obj", None)
        own = getattr(fn, "_hypothesis_internal_use_settings", None)  # hypothesis' per-test settings
        if own is not None and own.max_examples < settings.default.max_examples:
            fn._hypothesis_internal_use_settings = settings(  # type: ignore[union-attr]
                own, max_examples=own.max_examples * THOROUGH_FACTOR
            )
