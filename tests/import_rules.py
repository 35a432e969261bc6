"""The import direction of STYLE.md, as a checkable rule.

``core <- learning, valuation, pricing, equilibrium, ledger <- mechanisms <- scenarios <- experiments
<- service, cli``: a module may import only from its own layer's package or from lower layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

LAYERS: dict[str, int] = {
    "families": -1,  # the registry: standard library only, read by every layer
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


# --------------------------------------------------------------------------------------------------
# Private names and import cycles
# --------------------------------------------------------------------------------------------------
# Every import statement counts, wherever it sits: at module level, under ``if TYPE_CHECKING:`` or inside
# a function. A deferred import is still a dependency; deferring it only hides a cycle until the function
# runs (the broker <-> broker-simulation cycle was hidden that way). The implicit import of a parent
# package's ``__init__`` when a submodule is imported is not an edge: a family's ``__init__`` re-exports
# its private modules, and those modules import their siblings by full path.


def _module_name(path: Path, root: Path, top: str) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [top, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(name: str, root: Path, top: str) -> bool:
    rel = name.split(".")[1:]
    return (root.joinpath(*rel) / "__init__.py").is_file()


def _is_module(name: str, root: Path, top: str) -> bool:
    rel = name.split(".")[1:]
    return _is_package(name, root, top) or (bool(rel) and root.joinpath(*rel).with_suffix(".py").is_file())


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _imports(path: Path, root: Path, top: str) -> list[tuple[str, str | None]]:
    """``(module, name)`` pairs imported by the file at ``path`` (``name`` is None for ``import m``)."""
    me = _module_name(path, root, top)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.extend((module, a.name) for a in node.names)
    return [(m, n) for m, n in found if m == top or m.startswith(top + ".")]


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def private_violations(root: Path, top: str = "datamarket") -> list[str]:
    """Imports of a private (``_name``) module or name from outside the package that owns it.

    A private module ``a.b._m`` (or anything below it) belongs to package ``a.b``; a private name
    ``_f`` imported from module ``a.b.m`` belongs to ``a.b`` as well (to ``a.b.m`` if that is a
    package). Only modules inside the owning package may import them.
    """
    bad = []
    for path in sorted(root.rglob("*.py")):
        me = _module_name(path, root, top)
        for module, name in _imports(path, root, top):
            parts = module.split(".")
            owner = None
            for i, part in enumerate(parts):
                if _is_private(part):
                    owner = ".".join(parts[:i])
                    break
            if owner is None and name is not None and _is_private(name):
                owner = module if _is_package(module, root, top) else module.rpartition(".")[0]
            if owner is not None and not _inside(me, owner):
                what = module if name is None else f"{module}.{name}"
                bad.append(f"{path.relative_to(root)} imports private {what}")
    return bad


# --------------------------------------------------------------------------------------------------
# Roles inside the service
# --------------------------------------------------------------------------------------------------
# ``service.store`` (queries and state transitions) and ``service.clearing`` (leases, runner, worker) are
# below the HTTP layer: the JSON API (``service.api``) and the portal (``service.portal``) call them,
# never the reverse; the store does not import FastAPI (or Starlette) at all.
LOWER_ROLES = ("datamarket.service.store", "datamarket.service.clearing")
UPPER_ROLES = ("datamarket.service.api", "datamarket.service.portal")
WEB_FRAMEWORKS = ("fastapi", "starlette")


def _all_imports(path: Path) -> list[str]:
    """Every module ``path`` imports (absolute names; any package, wherever the statement sits)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def service_role_violations(root: Path, top: str = "datamarket") -> list[str]:
    """Imports that break the service's roles: ``store``/``clearing`` importing ``api``/``portal``, or
    ``store`` importing a web framework."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        me = _module_name(path, root, top)
        lower = next((r for r in LOWER_ROLES if _inside(me, r)), None)
        if lower is None:
            continue
        for module in _all_imports(path):
            if any(_inside(module, u) for u in UPPER_ROLES):
                bad.append(f"{path.relative_to(root)} imports {module}")
            elif lower.endswith(".store") and module.split(".")[0] in WEB_FRAMEWORKS:
                bad.append(f"{path.relative_to(root)} imports {module}")
    return bad


def import_graph(root: Path, top: str = "datamarket") -> dict[str, set[str]]:
    """Module -> modules it imports (within ``top``); ``from m import x`` points at ``m.x`` when that is a
    module, else at ``m``."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        me = _module_name(path, root, top)
        targets = graph.setdefault(me, set())
        for module, name in _imports(path, root, top):
            target = module
            if name is not None and _is_module(f"{module}.{name}", root, top):
                target = f"{module}.{name}"
            if target != me or name is None:
                targets.add(target)
    return graph


def import_cycles(root: Path, top: str = "datamarket") -> list[list[str]]:
    """Strongly connected components of the import graph with more than one module (or a module that
    imports itself), each sorted; Tarjan's algorithm."""
    graph = import_graph(root, top)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)
