"""MkDocs hook (registered in mkdocs.yml ``hooks:``): each family's pages in the nav, from the registry.

The static nav of mkdocs.yml holds placeholders, one per place a family's pages go:

* ``families:guide`` -- each family's user guide (``Family.guide``), titled by ``Family.title``;
* ``families:tutorial`` -- each family's tutorial, titled ``title (paper)``;
* ``families:api`` -- the API reference of each family's mechanisms package
  (``reference/api/<module without "datamarket.">.md``), a page generated here (``::: module``)
  unless the docs hold one.

:func:`expand` replaces them with the entries of every family of :func:`datamarket.families.families`
(built-ins and plug-ins), in registry order; a family without that part, or whose guide or tutorial
is not in the docs folder (a plug-in documented elsewhere), adds nothing. Adding a family to the
registry therefore adds its pages to the site, and no nav line is edited by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from datamarket.families import Family, families

log = logging.getLogger("mkdocs.hooks.families")

PLACEHOLDER = "families:"


def api_page(module: str) -> str:
    """The docs path of the API reference page of ``module``."""
    return f"reference/api/{module.removeprefix('datamarket.')}.md"


def api_text(module: str) -> str:
    """The generated API reference page of ``module`` (mkdocstrings)."""
    return f"# `{module}`\n\n::: {module}\n    options:\n      show_root_heading: false\n"


def entries(part: str, fams: Iterable[Family], docs_dir: str | None = None) -> list[dict[str, str]]:
    """The nav entries of ``part`` (``guide``, ``tutorial`` or ``api``) for ``fams``."""
    out: list[dict[str, str]] = []
    for f in fams:
        if part == "api":
            if f.mechanisms is not None:
                out.append({f.mechanisms: api_page(f.mechanisms)})
            continue
        page = f.guide if part == "guide" else f.tutorial if part == "tutorial" else None
        if page is None:
            continue
        if docs_dir is not None and not (Path(docs_dir) / page).is_file():
            log.info("family %s: %s is not in the docs, not in the nav", f.kind, page)
            continue
        out.append({f.title if part == "guide" else f"{f.title} ({f.paper})": page})
    return out


def expand(nav: Sequence[Any], fams: Sequence[Family], docs_dir: str | None = None) -> list[Any]:
    """``nav`` with every placeholder (``- families: families:PART``) replaced by :func:`entries`."""
    out: list[Any] = []
    for item in nav:
        if isinstance(item, dict) and len(item) == 1:
            ((title, value),) = item.items()
            if isinstance(value, str) and value.startswith(PLACEHOLDER):
                out.extend(entries(value.removeprefix(PLACEHOLDER), fams, docs_dir))
                continue
            if isinstance(value, list):
                out.append({title: expand(value, fams, docs_dir)})
                continue
        out.append(item)
    return out


def on_config(config: Any) -> Any:
    """Expand the family placeholders of the nav (mkdocs event)."""
    if config.get("nav"):
        config["nav"] = expand(config["nav"], families(), config.get("docs_dir"))
    return config


def on_files(files: Any, config: Any) -> Any:
    """Generate the API reference page of each family's mechanisms that the docs do not hold."""
    from mkdocs.structure.files import File

    for f in families():
        if f.mechanisms is None:
            continue
        page = api_page(f.mechanisms)
        if files.get_file_from_path(page) is None:
            files.append(File.generated(config, page, content=api_text(f.mechanisms)))
    return files
