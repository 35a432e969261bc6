"""The PNG cache of the figures gallery (``datamarket.experiments._gallery``): a figure is drawn once per
content of the code it imports, stale PNGs go, and a figure that raises fails the call."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamarket.core.errors import DatamarketError
from datamarket.experiments import FigureSpec, cached_pngs, figure_key
from datamarket.experiments import _gallery as gallery

CHEAP = ("broker", "profit_vs_n")  # well under a second in quick mode


def test_the_import_closure_follows_the_figure_and_nothing_else() -> None:
    closure = gallery.import_closure("datamarket.experiments.broker")
    for needed in (
        "datamarket",
        "datamarket.experiments.broker",
        "datamarket.experiments._figure",
        "datamarket.experiments._style",
        "datamarket.mechanisms.broker._simulation",  # through the package's __init__
        "datamarket.pricing.ordered_item",
    ):
        assert needed in closure, needed
    assert not [m for m in closure if m.startswith(("datamarket.service", "datamarket.ledger"))]
    assert "datamarket.experiments.collaborative" not in closure
    assert all(path.is_file() for path in closure.values())


def test_the_key_depends_on_name_seed_and_mode() -> None:
    keys = {
        figure_key("broker", "profit_vs_n"),
        figure_key("broker", "profit_vs_n", seed=1),
        figure_key("broker", "profit_vs_n", quick=False),
        figure_key("broker", "pricing_curve"),
    }
    assert len(keys) == 4
    assert figure_key("broker", "profit_vs_n") == figure_key("broker", "profit_vs_n")


def test_a_figure_is_drawn_once_and_stale_pngs_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "broker" / "profit_vs_n-0000000000000000.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    keep = tmp_path / "broker" / "profit_vs_n_other-0000000000000000.png"  # another figure's PNG
    keep.write_bytes(b"other")
    (path,) = cached_pngs(tmp_path, [CHEAP], jobs=1).values()
    assert path.read_bytes().startswith(b"\x89PNG") and path.parent == tmp_path / "broker"
    assert not stale.exists() and keep.exists()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no partial file

    def never(*args: object) -> float:
        raise AssertionError("a cached figure was drawn again")

    monkeypatch.setattr(gallery, "_render_one", never)
    assert cached_pngs(tmp_path, [CHEAP], jobs=1) == {CHEAP: path}


def test_a_raising_figure_fails_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(quick: bool, seed: int) -> list[dict[str, object]]:
        raise ValueError("boom")

    broken = FigureSpec("profit_vs_n", "broken", boom, lambda records, axes: None)
    monkeypatch.setattr(gallery, "figures", lambda kind: (broken,))
    with pytest.raises(DatamarketError, match="broker/profit_vs_n raised ValueError: boom"):
        cached_pngs(tmp_path, [CHEAP], jobs=1)
    assert not list((tmp_path / "broker").glob("*.png"))


def test_worker_processes_draw_the_same_files(tmp_path: Path) -> None:
    which = [CHEAP, ("broker", "pricing_curve")]
    paths = cached_pngs(tmp_path / "pool", which, jobs=2)
    assert all(p.is_file() for p in paths.values())
    assert [p.name for p in paths.values()] == [
        p.name for p in cached_pngs(tmp_path / "serial", which, jobs=1).values()
    ]


def test_an_unknown_figure_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatamarketError, match="no figure broker/nope"):
        cached_pngs(tmp_path, [("broker", "nope")], jobs=1)
    with pytest.raises(DatamarketError, match="no experiments for 'nope'"):
        cached_pngs(tmp_path, [("nope", "x")], jobs=1)
