"""Figures rendered once per content: a PNG cache keyed by the code that draws them.

The documentation's gallery of reproduced figures (``docs/hooks/gallery.py``) draws every
:class:`~datamarket.experiments.FigureSpec` at build time. :func:`cached_pngs` renders a figure only when
its PNG for the current code is not in the cache, so a rebuild with unchanged code renders nothing.

The key of a figure (:func:`figure_key`) is a SHA-256 of

1. the source of every module of the experiment's import closure (:func:`import_closure`: the
   ``import`` statements of the experiment module, followed transitively through the files of its
   top-level package and of ``datamarket``, including imports inside functions and the ``__init__``
   of every parent package), so editing code the figure does not import (the service, the ledger)
   keeps the cache, and editing code it does import (a mechanism, the plot style) redraws it;
2. the kind, the figure's name, ``quick`` and ``seed``;
3. the versions of Python, numpy, scipy, scikit-learn and matplotlib, and :data:`RENDER_VERSION`.

A PNG is stored as ``CACHE/<kind>/<name>-<key[:16]>.png`` (written to a temporary name, then renamed,
so an interrupted run leaves no partial file); older PNGs of the same figure are removed.

Missing figures are computed and drawn in worker processes (``jobs``, default: one per CPU, at most one
per figure), each with BLAS and OpenMP pinned to one thread (STYLE practice 8); ``jobs=1`` runs them in
this process. Each figure computes from its own seed, so the PNGs do not depend on ``jobs``. A figure
that raises fails the whole call with a :class:`~datamarket.core.errors.DatamarketError` naming it: a
broken figure is never skipped.

Limits: the closure is read from the source text, so a module imported by a computed name
(``importlib.import_module(f"...{kind}")``) is not followed; data files read at run time (the bundled
digits come with scikit-learn, whose version is in the key) are not hashed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path

from datamarket.core.errors import DatamarketError
from datamarket.experiments._figure import experiment_modules, figures, render

log = logging.getLogger(__name__)

RENDER_VERSION = "1"
"""Part of every key: raise it when the PNGs change without a change of the hashed sources."""

VERSIONED = ("numpy", "scipy", "scikit-learn", "matplotlib")
"""Distributions whose versions are part of every key."""

FigureId = tuple[str, str]
"""``(kind, figure name)``."""


def _package_dir(top: str) -> Path | None:
    """The folder of the top-level package ``top`` (``None`` when it is not a package)."""
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _module_file(name: str, roots: dict[str, Path]) -> Path | None:
    """The source file of module ``name`` when its top-level package is one of ``roots``."""
    top, *rest = name.split(".")
    if top not in roots:
        return None
    base = roots[top].joinpath(*rest)
    for path in (base / "__init__.py", base.with_suffix(".py")) if rest else (base / "__init__.py",):
        if path.is_file():
            return path
    return None


_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)|import[ \t]+([^\n#;]+))",
    re.M,
)
"""An ``import`` or ``from ... import`` statement at the start of a line (parenthesised names may span
lines). Read from the text rather than the syntax tree: many times faster, and a match inside a string
only adds a name that resolves to no file, or one more file to hash."""


def _imported_names(path: Path, module: str) -> set[str]:
    """Every module name ``path`` (module ``module``) may import, with the parents of each."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for dots, source, imported, plain in _IMPORT.findall(path.read_text(encoding="utf-8")):
        if plain:
            names.update(part.split()[0] for part in plain.split(",") if part.strip())
            continue
        if dots:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - len(dots) + 1])
            base = f"{base}.{source}" if source else base
        else:
            base = source
        names.add(base)
        for part in imported.strip("() \t\n").split(","):
            if part.split():
                names.add(f"{base}.{part.split()[0]}")  # a submodule, or a name that resolves to no file
    return {".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 2)}


def import_closure(module: str) -> dict[str, Path]:
    """The modules ``module`` imports, transitively, within its top-level package and ``datamarket``:
    module name -> source file, sorted by name (``module`` itself included)."""
    roots = {top: d for top in {module.split(".")[0], "datamarket"} if (d := _package_dir(top)) is not None}
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, roots)
        if path is None:
            continue
        seen[name] = path
        todo.extend(_imported_names(path, name) - seen.keys())
    return dict(sorted(seen.items()))


def _versions() -> str:
    out = [f"python={platform.python_version()}", f"render={RENDER_VERSION}"]
    for dist in VERSIONED:
        try:
            out.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out.append(f"{dist}=absent")
    return ";".join(out)


def sources_digest(kind: str) -> str:
    """SHA-256 of the sources of ``kind``'s experiment import closure and of the versions in the key."""
    digest = hashlib.sha256(f"{kind}\0{_versions()}".encode())
    for module, path in import_closure(experiment_modules()[kind]).items():
        digest.update(f"\0{module}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def figure_key(kind: str, name: str, *, quick: bool = True, seed: int = 0, sources: str | None = None) -> str:
    """The cache key (hex SHA-256) of figure ``name`` of ``kind`` (module docstring); ``sources`` is
    :func:`sources_digest` of ``kind`` when the caller has it."""
    sources = sources_digest(kind) if sources is None else sources
    return hashlib.sha256(f"{sources}\0{name}\0quick={quick}\0seed={seed}".encode()).hexdigest()


def _cache_path(cache_dir: Path, kind: str, name: str, key: str) -> Path:
    return cache_dir / kind / f"{name}-{key[:16]}.png"


def _render_one(kind: str, name: str, quick: bool, seed: int, path: str) -> float:
    """Compute and draw one figure into ``path`` (BLAS pinned to one thread); the seconds it took."""
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    target = Path(path)
    tmp = target.with_name(f".{target.stem}-{os.getpid()}.png")
    try:
        with threadpool_limits(limits=1):
            spec = next(s for s in figures(kind) if s.name == name)
            render(spec, spec.compute(quick, seed), tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return time.perf_counter() - t0


def _prune(path: Path, name: str) -> None:
    """Remove the older PNGs of the figure whose current PNG is ``path``."""
    for old in path.parent.glob(f"{name}-*.png"):
        if old != path and old.stem.rpartition("-")[0] == name:
            old.unlink(missing_ok=True)


def _all_figures() -> list[FigureId]:
    return [(kind, spec.name) for kind in experiment_modules() for spec in figures(kind)]


def cached_pngs(
    cache_dir: Path,
    which: Iterable[FigureId] | None = None,
    *,
    quick: bool = True,
    seed: int = 0,
    jobs: int | None = None,
) -> dict[FigureId, Path]:
    """The PNG of every figure in ``which`` (default: every figure of every kind), rendering those
    missing from ``cache_dir`` (module docstring); ``(kind, name) -> path``, in the order given.

    Raises :class:`~datamarket.core.errors.DatamarketError` naming the figure when one raises.
    """
    ids = list(which) if which is not None else _all_figures()
    kinds = list(dict.fromkeys(kind for kind, _ in ids))
    known = {(kind, spec.name) for kind in kinds for spec in figures(kind)}
    unknown = [f"{kind}/{name}" for kind, name in ids if (kind, name) not in known]
    if unknown:
        raise DatamarketError(f"figure: no figure {', '.join(unknown)}")
    digests = {kind: sources_digest(kind) for kind in kinds}
    paths = {
        (kind, name): _cache_path(
            cache_dir, kind, name, figure_key(kind, name, quick=quick, seed=seed, sources=digests[kind])
        )
        for kind, name in ids
    }
    missing = [fid for fid, path in paths.items() if not path.is_file()]
    if missing:
        t0 = time.perf_counter()
        workers = max(1, min(len(missing), jobs or os.cpu_count() or 1))
        _render_missing(missing, paths, quick=quick, seed=seed, workers=workers)
        log.info(
            "gallery: rendered %d of %d figures in %.1f s (%d processes)",
            len(missing),
            len(paths),
            time.perf_counter() - t0,
            workers,
        )
    return paths


def _render_missing(
    missing: Sequence[FigureId], paths: dict[FigureId, Path], *, quick: bool, seed: int, workers: int
) -> None:
    for kind, name in missing:
        paths[(kind, name)].parent.mkdir(parents=True, exist_ok=True)
    if workers == 1:
        for fid in missing:
            _finish(fid, paths[fid], partial(_render_one, *fid, quick, seed, str(paths[fid])))
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures: dict[FigureId, Future[float]] = {
            fid: pool.submit(_render_one, *fid, quick, seed, str(paths[fid])) for fid in missing
        }
        try:
            for fid, future in futures.items():
                _finish(fid, paths[fid], future.result)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _finish(fid: FigureId, path: Path, run: Callable[[], float]) -> None:
    """Run or await one figure (``run()`` returns its seconds), then prune its older PNGs."""
    kind, name = fid
    try:
        seconds = run()
    except Exception as exc:
        raise DatamarketError(f"figure {kind}/{name} raised {type(exc).__name__}: {exc}") from exc
    log.info("gallery: %s/%s drawn in %.1f s", kind, name, seconds)
    _prune(path, name)
