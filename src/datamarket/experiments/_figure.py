"""Figure specifications and the runner that writes data and PNGs (STYLE practice 12).

An experiment module (``datamarket.experiments.<kind>`` by convention; its family in
:mod:`datamarket.families` says where) exposes ``FIGURES``, a tuple of
:class:`FigureSpec`. ``compute(quick, seed)`` returns tidy records (a list of flat dicts) and never
plots; ``plot(records, axes)`` draws on the given matplotlib axes and never computes.
"""

from __future__ import annotations

import csv
import importlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamarket.core.errors import DatamarketError
from datamarket.core.types import json_safe
from datamarket.experiments._style import style
from datamarket.families import families

log = logging.getLogger(__name__)

Records = list[dict[str, Any]]


@dataclass(frozen=True)
class FigureSpec:
    """One figure: a name (file stem), a title, a compute function, a plot function and what it shows.

    Parameters
    ----------
    name : the file stem (``datamarket reproduce KIND --figure NAME``).
    title : the figure's title, drawn above it.
    compute : ``compute(quick, seed) -> records`` (never plots).
    plot : ``plot(records, axes)`` (never computes).
    panels, figsize : the number of axes side by side and the size of one.
    in_demo : drawn (in quick mode) by ``datamarket demo``.
    reproduces : the paper's figure and panel numbers (``"Fig. 3b, 3c"``), or what the figure
        illustrates when the paper has no such figure (``"Lemma 4.1 (no figure in the paper)"``).
    claim : the paper's claim the figure reproduces, citing the paper by its authors.
    agreement : what matches the paper and what does not, with links to the errata entries (Markdown,
        relative to the docs folder: ``[errata](errata.md#chen-w)``).
    quick_size : what ``--quick`` shrinks, stated under a quick rendering (``""``: quick is the full
        run).

    The last four are the figure's entry in the documentation's gallery of reproduced figures.
    """

    name: str
    title: str
    compute: Callable[[bool, int], Records]
    plot: Callable[[Records, Sequence[Any]], None]
    panels: int = 1
    figsize: tuple[float, float] = (6.4, 4.2)
    in_demo: bool = False
    reproduces: str = ""
    claim: str = ""
    agreement: str = ""
    quick_size: str = ""


def experiment_modules() -> dict[str, str]:
    """Kind -> experiments module path, for every registered family with experiments
    (:mod:`datamarket.families`), in kind order."""
    return dict(sorted((f.kind, f.experiments) for f in families() if f.experiments is not None))


def available_experiments() -> list[str]:
    """Kinds with an experiments module (``datamarket reproduce KIND``)."""
    return list(experiment_modules())


def figures(kind: str) -> tuple[FigureSpec, ...]:
    """The figure specs of ``kind``."""
    modules = experiment_modules()
    if kind not in modules:
        raise DatamarketError(f"kind: no experiments for {kind!r} (available: {', '.join(modules)})")
    module = importlib.import_module(modules[kind])
    specs: tuple[FigureSpec, ...] = module.FIGURES
    return specs


def columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Union of the rows' keys in first-seen order (the columns of a table of records).

    >>> columns([{"a": 1}, {"b": 2, "a": 3}])
    ['a', 'b']
    """
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    return cols


def write_records(records: Records, stem: Path) -> list[Path]:
    """Write records as ``stem.csv`` (flat scalar columns) and ``stem.json``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(json_safe(records), indent=1))
    csv_path = stem.with_suffix(".csv")
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns(records))
        writer.writeheader()
        for r in records:
            writer.writerow(
                {k: json.dumps(json_safe(v)) if isinstance(v, list | dict) else v for k, v in r.items()}
            )
    return [csv_path, json_path]


def render(spec: FigureSpec, records: Records, path: Path) -> Path:
    """Plot ``records`` with ``spec.plot`` into a PNG at ``path`` (shared style, :mod:`._style`)."""
    import matplotlib.pyplot as plt

    fig = draw(spec, records)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with style():
            fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def draw(spec: FigureSpec, records: Records) -> Any:
    """The matplotlib figure of ``spec`` drawn from ``records`` in the shared style (caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, h = spec.figsize
    with style():
        fig, axes = plt.subplots(1, spec.panels, figsize=(w * spec.panels, h), squeeze=False)
        try:
            spec.plot(records, list(axes[0]))
            fig.suptitle(spec.title)
            fig.tight_layout()
        except BaseException:
            plt.close(fig)
            raise
    return fig


def reproduce(
    kind: str,
    out_dir: Path,
    *,
    quick: bool = False,
    seed: int = 0,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Compute, save and plot every figure of ``kind`` (or those named in ``only``) into ``out_dir/kind``.

    ``progress(message)`` is called before each figure with ``"[i/n] kind/name"``; each stage's time is
    logged at INFO level. An unknown name in ``only`` is an error naming the available figures.
    """
    specs = figures(kind)
    if only:
        unknown = sorted(set(only) - {s.name for s in specs})
        if unknown:
            raise DatamarketError(
                f"figure: no figure {', '.join(unknown)} for {kind!r} "
                f"(available: {', '.join(s.name for s in specs)})"
            )
        specs = tuple(s for s in specs if s.name in only)
    written: list[Path] = []
    for i, spec in enumerate(specs, 1):
        if progress is not None:
            progress(f"[{i}/{len(specs)}] {kind}/{spec.name}")
        t0 = time.perf_counter()
        records = spec.compute(quick, seed)
        t1 = time.perf_counter()
        stem = out_dir / kind / spec.name
        written.extend(write_records(records, stem))
        written.append(render(spec, records, stem.with_suffix(".png")))
        log.info(
            "%s/%s: computed %d records in %.2f s, wrote and rendered in %.2f s (quick=%s, seed=%d)",
            kind,
            spec.name,
            len(records),
            t1 - t0,
            time.perf_counter() - t1,
            quick,
            seed,
        )
    return written
