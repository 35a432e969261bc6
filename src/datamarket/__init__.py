"""datamarket: an engine for data markets.

Five published mechanism families (see ``../shared/papers``) on one core: participants, outcomes and
property audits (:mod:`datamarket.core`), a cooperative-game valuation engine
(:mod:`datamarket.valuation`), mechanisms (:mod:`datamarket.mechanisms`), experiments that regenerate
the papers' figures (:mod:`datamarket.experiments`) and an HTTP service with an exact ledger
(:mod:`datamarket.service`, :mod:`datamarket.ledger`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("datamarket")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
