"""MkDocs hook (registered in mkdocs.yml ``hooks:``): the gallery of reproduced figures, ``gallery.md``.

At build time :func:`on_files` adds a generated page, ``gallery.md``, and the PNGs it shows (under
``assets/gallery/``); nothing is written into the docs folder. For every family of the registry
(:func:`datamarket.families.families`) that has experiments, in registry order, and every
:class:`~datamarket.experiments.FigureSpec` of it, the page shows the figure drawn in quick mode (the
caption says what quick mode shrinks), what it reproduces, the paper's claim, what agrees and what does
not (its fields ``reproduces``, ``claim`` and ``agreement``) and the command that draws it at full size.

The PNGs come from :func:`datamarket.experiments.cached_pngs`: a figure is computed and drawn only when
the code it imports changed, in parallel worker processes. The cache lives in ``.cache/gallery`` next
to mkdocs.yml (``DATAMARKET_GALLERY_CACHE`` names another folder). A figure that raises aborts the build
with its traceback in the log: the gallery never skips a figure silently.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from datamarket.experiments import FigureSpec, cached_pngs, figures
from datamarket.families import Family, families

log = logging.getLogger("mkdocs.hooks.gallery")

PAGE = "gallery.md"
IMAGES = "assets/gallery"
CACHE_ENV = "DATAMARKET_GALLERY_CACHE"
SEED = 0

Render = Callable[[Path], Mapping[tuple[str, str], Path]]
"""``render(cache_dir) -> {(kind, name): png}`` for every figure of every family with experiments."""

INTRO = """# Reproduced figures

Every figure that `datamarket reproduce` draws from the papers (and from the valuation engine's
benchmark), regenerated when this site was built. The figures here are drawn in **quick mode**, with
smaller grids, fewer splits or fewer Monte Carlo realisations (each caption says what is smaller), and
seed {seed}. Under each figure: what it reproduces, the paper's claim, what agrees and what does not,
with links to the [errata](errata.md) where a paper is wrong or the reproduction deviates, and the
command that draws it at full size, with the data behind it (CSV and JSON). The papers' full
references are on the [Papers](papers.md) page.

| family | paper | figures |
|---|---|---|
"""


def anchor(kind: str, name: str | None = None) -> str:
    """The heading id of a family's section (``name=None``) or of one figure."""
    return kind if name is None else f"{kind}-{name}"


def command(kind: str, name: str) -> str:
    """The command that draws figure ``name`` of ``kind`` at full size."""
    return f"datamarket reproduce {kind} --figure {name} --out reproduce-out"


def _plain(text: str) -> str:
    """``text`` without TeX markup, for an image's alternative text."""
    return re.sub(r"[$\\{}]", "", text)


def figure_text(kind: str, spec: FigureSpec, image: str) -> str:
    """The gallery entry of one figure: heading, image with caption, the three texts, the command."""
    quick = f"Quick run: {spec.quick_size}." if spec.quick_size else "Quick mode draws the full figure."
    return "\n".join(
        [
            f"### `{spec.name}` {{#{anchor(kind, spec.name)}}}",
            "",
            '<figure markdown="span">',
            f"![{_plain(spec.title)}]({image})",
            f"<figcaption markdown>{spec.title}. {quick}</figcaption>",
            "</figure>",
            "",
            f"**Reproduces:** {spec.reproduces}.",
            "",
            f"**The paper's claim:** {spec.claim}",
            "",
            f"**Agreement:** {spec.agreement}",
            "",
            "Full size:",
            "",
            "```sh",
            command(kind, spec.name),
            "```",
            "",
        ]
    )


def family_text(
    fam: Family, specs: Iterable[FigureSpec], images: Mapping[str, str], docs_dir: Path | None = None
) -> str:
    """A family's section: heading, links to its guide and tutorial (those in ``docs_dir``, when
    given), then each figure."""
    pages = (("guide", fam.guide), ("tutorial", fam.tutorial))
    links = [
        f"[{what}]({page})"
        for what, page in pages
        if page and (docs_dir is None or (docs_dir / page).is_file())
    ]
    lines = [f"## {fam.title} ({fam.paper}) {{#{anchor(fam.kind)}}}", ""]
    if links:
        lines += [f"The family's {' and '.join(links)} explain the mechanism and every option.", ""]
    lines += [figure_text(fam.kind, spec, images[spec.name]) for spec in specs]
    return "\n".join(lines)


def image_uri(kind: str, name: str) -> str:
    """The docs path of a figure's PNG."""
    return f"{IMAGES}/{kind}/{name}.png"


def gallery(
    cache_dir: Path, render: Render | None = None, docs_dir: Path | None = None
) -> tuple[str, dict[str, Path]]:
    """The page's Markdown and its images (docs path -> PNG), rendering what the cache lacks.

    ``render`` defaults to :func:`datamarket.experiments.cached_pngs` in quick mode with seed
    :data:`SEED`; tests pass a stub. A family's guide and tutorial are linked when they are in
    ``docs_dir`` (all of them when it is ``None``).
    """
    pngs = (render or _render)(cache_dir)
    fams = [(f, figures(f.kind)) for f in families() if f.experiments is not None]
    rows, sections, images = [], [], {}
    for fam, specs in fams:
        names = {spec.name: image_uri(fam.kind, spec.name) for spec in specs}
        images.update({names[spec.name]: pngs[(fam.kind, spec.name)] for spec in specs})
        figs = ", ".join(f"[`{s.name}`](#{anchor(fam.kind, s.name)})" for s in specs)
        rows.append(f"| [{fam.title}](#{anchor(fam.kind)}) | {fam.paper} | {figs} |")
        sections.append(family_text(fam, specs, names, docs_dir))
    text = INTRO.format(seed=SEED) + "\n".join(rows) + "\n\n" + "\n".join(sections)
    return text, images


def _render(cache_dir: Path) -> Mapping[tuple[str, str], Path]:
    return cached_pngs(cache_dir, quick=True, seed=SEED)


def cache_dir(config: Any) -> Path:
    """``$DATAMARKET_GALLERY_CACHE``, else ``.cache/gallery`` beside mkdocs.yml."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(config.config_file_path).resolve().parent / ".cache" / "gallery"


def on_files(files: Any, config: Any) -> Any:
    """Add the generated gallery page and its PNGs (mkdocs event); a raising figure aborts the build."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    if files.get_file_from_path(PAGE) is not None:
        raise PluginError(f"gallery: {PAGE} is generated at build time; remove it from the docs folder")
    t0 = time.perf_counter()
    try:
        text, images = gallery(cache_dir(config), docs_dir=Path(config["docs_dir"]))
    except Exception as exc:
        log.error("gallery: %s", "".join(traceback.format_exception(exc)))
        raise PluginError(f"gallery: {exc}") from exc
    log.info("gallery: %d figures ready in %.1f s", len(images), time.perf_counter() - t0)
    files.append(File.generated(config, PAGE, content=text))
    for uri, png in images.items():
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files
