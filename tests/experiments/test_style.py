"""Every figure, rendered in quick mode, has unique, non-empty axis labels and legend entries free of
internal codes, in the shared style (docs/results.md, ``datamarket.experiments._style``)."""

import matplotlib.pyplot as plt
import pytest

from datamarket.experiments import available_experiments, draw, figures, label_problems

SPECS = [(kind, spec) for kind in available_experiments() for spec in figures(kind)]


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=[f"{k}/{s.name}" for k, s in SPECS])
def test_figure_labels_are_clear(kind: str, spec) -> None:
    fig = draw(spec, spec.compute(True, 0))
    try:
        assert label_problems(fig) == [], f"{kind}/{spec.name}"
    finally:
        plt.close(fig)


def test_label_problems_catches_codes_repeats_and_blanks() -> None:
    fig, (a, b) = plt.subplots(1, 2)
    try:
        a.plot([0, 1], label="x (spec " + "FIX" + "-2.6)")  # split: the source must stay self-contained
        a.plot([1, 0], label="same")
        a.plot([1, 1], label="same")
        a.set_xlabel("S0" + "-A3 quantity")
        a.legend()
        b.plot([0, 1])
        problems = label_problems(fig)
    finally:
        plt.close(fig)
    assert any("internal code" in p and "FIX" in p for p in problems)
    assert any("repeated legend entries ['same']" in p for p in problems)
    assert any("x label 'S0" + "-A3 quantity'" in p for p in problems)
    assert any("axes 0: empty y label" in p for p in problems)
    assert any("axes 1: empty x label" in p for p in problems)
