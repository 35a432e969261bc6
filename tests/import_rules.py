"""The import direction of STYLE.md, as a checkable rule.

``core <- learning, valuation, pricing, equilibrium, ledger <- mechanisms <- scenarios <- experiments
<- service, cli``: a module may import only from its own layer's package or from lower layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

LAYERS: dict[str, int] = {
    "core": 0,
    "learning": 1,
    "valuation": 1,
    "pricing": 1,
    "equilibrium": 1,
    "ledger": 1,
    "mechanisms": 2,
    "scenarios": 3,
    "experiments": 4,
    "service": 5,
    "cli": 6,
}
# Same-layer imports that are allowed (a package may import from itself; these pairs too).
ALLOWED_SAME_LAYER = {
    ("learning", "valuation"),
    ("valuation", "learning"),
    ("equilibrium", "valuation"),
    ("equilibrium", "learning"),
    ("pricing", "learning"),
}


def _package_of(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root)
    if len(rel.parts) == 1:
        stem = rel.stem
        return stem if stem in LAYERS else None
    return rel.parts[0] if rel.parts[0] in LAYERS else None


def _imported_packages(tree: ast.AST, top: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == top and len(parts) > 1:
                found.add(parts[1])
    return found


def violations(root: Path, top: str = "datamarket") -> list[str]:
    """``module -> package`` pairs that break the layering, for the package at ``root``."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        src_pkg = _package_of(path, root)
        if src_pkg is None:
            continue
        for dst in _imported_packages(ast.parse(path.read_text()), top):
            if dst not in LAYERS or dst == src_pkg:
                continue
            src_layer, dst_layer = LAYERS[src_pkg], LAYERS[dst]
            if dst_layer < src_layer or (src_pkg, dst) in ALLOWED_SAME_LAYER:
                continue
            bad.append(f"{path.relative_to(root)} imports datamarket.{dst}")
    return bad
