"""The gallery of reproduced figures (``docs/hooks/gallery.py``) and the texts it shows.

Every :class:`~datamarket.experiments.FigureSpec` says what it reproduces, the paper's claim (citing the
paper by its authors) and what agrees; papers are never named by internal numbers, and every errata link
points at an anchor of ``docs/errata.md``. The page lists every figure of every family; here the
rendering is a stub (the real rendering runs in the docs build, ``make docs``, and its cache is tested in
``tests/experiments/test_gallery_cache.py``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from datamarket.core.errors import DatamarketError
from datamarket.experiments import FigureSpec, available_experiments, figures
from datamarket.families import family

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SPECS = [(kind, spec) for kind in available_experiments() for spec in figures(kind)]
IDS = [f"{kind}/{spec.name}" for kind, spec in SPECS]
PAPER_NUMBER = re.compile(r"\bpapers?\s*#?\s*0*\d{1,3}\b", re.I)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)")


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gallery_hook", DOCS / "hooks" / "gallery.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeConfig(dict[str, Any]):
    """The two things the hook reads of mkdocs' config: ``docs_dir`` and ``config_file_path``."""

    def __init__(self, root: Path) -> None:
        super().__init__(docs_dir=str(root / "docs"))
        self.config_file_path = str(root / "mkdocs.yml")


def errata_anchors() -> set[str]:
    text = (DOCS / "errata.md").read_text()
    return set(re.findall(r"\{#([\w-]+)\}", text)) | set(re.findall(r'<a id="([\w-]+)"', text))


def texts(spec: FigureSpec) -> dict[str, str]:
    return {
        "title": spec.title,
        "reproduces": spec.reproduces,
        "claim": spec.claim,
        "agreement": spec.agreement,
        "quick_size": spec.quick_size,
    }


def test_the_gallery_covers_every_family_with_experiments() -> None:
    assert len(SPECS) >= 25
    assert set(available_experiments()) >= {
        "balanced_market",
        "broker",
        "collaborative",
        "competing_buyers",
        "data_valuation",
        "truthful_payments",
    }


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=IDS)
def test_every_figure_states_what_it_reproduces(kind: str, spec: FigureSpec) -> None:
    for field in ("reproduces", "claim", "agreement"):
        assert getattr(spec, field).strip(), f"{kind}/{spec.name}: empty {field}"
    first_author = re.split(r"[,;\s]", family(kind).paper)[0]
    assert first_author in spec.claim, f"{kind}/{spec.name}: the claim does not cite {first_author}"
    for field, text in texts(spec).items():
        assert not PAPER_NUMBER.search(text), f"{kind}/{spec.name}: {field} names a paper by number"
        assert not text.rstrip().endswith(".."), f"{kind}/{spec.name}: {field}"


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=IDS)
def test_links_point_at_pages_and_errata_anchors_that_exist(kind: str, spec: FigureSpec) -> None:
    anchors = errata_anchors()
    for field, text in texts(spec).items():
        for page, anchor in LINK.findall(text):
            assert (DOCS / page).is_file(), f"{kind}/{spec.name}: {field} links to a missing page {page}"
            if page == "errata.md" and anchor:
                assert anchor in anchors, f"{kind}/{spec.name}: no errata anchor #{anchor}"


def test_the_errata_anchors_are_read() -> None:
    assert {"chen-w", "westenbroek-poa-limit", "fan-claim-2"} <= errata_anchors()


def test_the_page_lists_every_figure_of_every_family(tmp_path: Path) -> None:
    hook = load_hook()
    stub = {(kind, spec.name): tmp_path / f"{kind}-{spec.name}.png" for kind, spec in SPECS}
    calls: list[Path] = []

    def render(cache_dir: Path) -> dict[tuple[str, str], Path]:
        calls.append(cache_dir)
        return stub

    text, images = hook.gallery(tmp_path, render=render)
    assert calls == [tmp_path]
    assert sorted(images.values()) == sorted(stub.values())
    for kind in available_experiments():
        fam = family(kind)
        assert f"## {fam.title} ({fam.paper}) {{#{kind}}}" in text
    for kind, spec in SPECS:
        uri = hook.image_uri(kind, spec.name)
        assert images[uri] == stub[(kind, spec.name)]
        assert f"### `{spec.name}` {{#{kind}-{spec.name}}}" in text
        assert f"]({uri})" in text
        assert f"(#{kind}-{spec.name})" in text  # the summary table links to the entry
        assert f"datamarket reproduce {kind} --figure {spec.name} --out reproduce-out" in text
        for field in ("reproduces", "claim", "agreement"):
            assert getattr(spec, field) in text
        if spec.quick_size:
            assert f"Quick run: {spec.quick_size}." in text
    assert text.count("<figure") == len(SPECS)
    assert "paper 00" not in text.lower()
    for kind in available_experiments():
        assert f"[guide]({family(kind).guide})" in text


def test_only_pages_in_the_docs_folder_are_linked(tmp_path: Path) -> None:
    hook = load_hook()
    stub = {(kind, spec.name): tmp_path / "x.png" for kind, spec in SPECS}
    (tmp_path / "broker.md").write_text("# Broker\n")
    text, _ = hook.gallery(tmp_path, render=lambda cache_dir: stub, docs_dir=tmp_path)
    assert "[guide](broker.md)" in text
    assert "(collaborative.md)" not in text and "(tutorials/broker.md)" not in text


def test_a_raising_figure_fails_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import Files

    hook = load_hook()

    def broken(cache_dir: Path) -> dict[tuple[str, str], Path]:
        raise DatamarketError("figure broker/profit_vs_n raised ValueError: boom")

    monkeypatch.setattr(hook, "_render", broken)
    monkeypatch.delenv(hook.CACHE_ENV, raising=False)
    config = FakeConfig(tmp_path)
    with pytest.raises(PluginError, match="broker/profit_vs_n raised ValueError: boom"):
        hook.on_files(Files([]), config)


def test_the_cache_sits_beside_mkdocs_yml_unless_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = load_hook()
    config = FakeConfig(tmp_path)
    monkeypatch.delenv(hook.CACHE_ENV, raising=False)
    assert hook.cache_dir(config) == tmp_path.resolve() / ".cache" / "gallery"
    monkeypatch.setenv(hook.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert hook.cache_dir(config) == tmp_path / "elsewhere"


def test_mkdocs_registers_the_hook_and_the_page() -> None:
    text = (ROOT / "mkdocs.yml").read_text()
    assert "  - docs/hooks/gallery.py" in text
    assert "  - Reproduced figures: gallery.md" in text
    assert not (DOCS / "gallery.md").exists(), "the gallery page is generated, never committed"


@pytest.mark.parametrize("kind", available_experiments())
def test_guides_and_home_link_the_gallery(kind: str) -> None:
    guide = family(kind).guide
    assert guide is not None
    assert "(gallery.md" in (DOCS / guide).read_text(), f"{guide} does not link the gallery"
    assert "(gallery.md" in (DOCS / "index.md").read_text()
