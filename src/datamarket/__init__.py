"""datamarket: an engine for data markets.

Five published mechanism families on one core: participants, outcomes and
property audits (:mod:`datamarket.core`), a cooperative-game valuation engine
(:mod:`datamarket.valuation`), mechanisms (:mod:`datamarket.mechanisms`), experiments that regenerate
the papers' figures (:mod:`datamarket.experiments`) and an HTTP service with an exact ledger
(:mod:`datamarket.service`, :mod:`datamarket.ledger`).

The papers: Chaintreau, Maio, Ziani (WWW 2025, arXiv:2501.19294) -> ``balanced_market``; Fan, Rotello,
Karimireddy (arXiv:2504.05563) -> ``truthful_payments``; Westenbroek, Dong, Ratliff, Sastry (IEEE CDC
2017, arXiv:1704.01195) -> ``competing_buyers``; Chen, Clinton, Kandasamy (arXiv:2502.16052) -> ``broker``;
Ohrimenko, Tople, Tschiatschek (arXiv:1911.09052) -> ``collaborative``. Where a printed formula is
wrong or ambiguous the docstrings say what is implemented instead; the documentation's errata page
lists every such place with the test that pins it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("datamarket")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
