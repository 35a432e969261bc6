"""Mechanisms, one package per paper family (private modules behind a public ``__init__``).

Each family declares its mechanisms' guarantees in a module-level ``MECHANISMS`` tuple of
:class:`~datamarket.core.MechanismInfo`; :func:`registered_mechanisms` collects them for the shared
contract test.
"""

from __future__ import annotations

import importlib
import pkgutil

from datamarket.core.audits import MechanismInfo


def registered_mechanisms() -> list[MechanismInfo]:
    """Every ``MechanismInfo`` declared by a family (package) of this package, in name order."""
    found: list[MechanismInfo] = []
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        found.extend(getattr(module, "MECHANISMS", ()))
    return found
