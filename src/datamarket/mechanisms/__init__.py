"""Mechanisms, one package per paper family (private modules behind a public ``__init__``).

Each family declares its mechanisms' guarantees in a module-level ``MECHANISMS`` tuple of
:class:`~datamarket.core.MechanismInfo`; :func:`registered_mechanisms` collects them, from every family
of the registry (:mod:`datamarket.families`) that has mechanisms, for the shared contract test.
"""

from __future__ import annotations

import importlib

from datamarket.core.audits import MechanismInfo
from datamarket.families import families


def registered_mechanisms() -> list[MechanismInfo]:
    """Every ``MechanismInfo`` declared by a registered family, families in module-name order."""
    found: list[MechanismInfo] = []
    for path in sorted(f.mechanisms for f in families() if f.mechanisms is not None):
        found.extend(getattr(importlib.import_module(path), "MECHANISMS", ()))
    return found
