"""``datamarket reproduce balanced_market --quick`` writes every figure with its data."""

from pathlib import Path

from datamarket.experiments import figures, reproduce


def test_quick_reproduce_writes_every_png_and_csv(tmp_path: Path) -> None:
    paths = reproduce("balanced_market", tmp_path, quick=True, seed=0)
    names = [f.name for f in figures("balanced_market")]
    assert len(names) == 6 and sum(f.in_demo for f in figures("balanced_market")) == 1
    for name in names:
        for ext in (".png", ".csv", ".json"):
            p = tmp_path / "balanced_market" / f"{name}{ext}"
            assert p in paths and p.stat().st_size > 0
    quintic = (tmp_path / "balanced_market" / "quintic.csv").read_text()
    assert "1.16730397826" in quintic
