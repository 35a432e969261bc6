"""The one list of mechanism families: one line each, read by every place that discovers kinds.

A :class:`Family` names a kind, the paper it implements (short authors and the full reference) and,
by convention, where each of its parts lives; every location is an import path or a docs path (a
string), so this module imports nothing but the standard library and every layer may read it:

========================  ==================================================  ===============================
part                      convention (``{kind}`` is the family's kind)        read by
========================  ==================================================  ===============================
``mechanisms``            ``datamarket.mechanisms.{kind}`` (``MECHANISMS``)   ``registered_mechanisms()``
``scenario``              ``datamarket.scenarios.{kind}``                     ``available_kinds()``, loader
``experiments``           ``datamarket.experiments.{kind}`` (``FIGURES``)     ``available_experiments()``
``adapter``               ``datamarket.service.adapters.{kind}:ADAPTER``      ``builtin_adapters()``, portal
``guide``, ``tutorial``   ``{kind}.md``, ``tutorials/{kind}.md`` (docs)       the docs nav (``docs/hooks``)
========================  ==================================================  ===============================

Each part can be overridden by keyword (a family from another package names its own modules) or set
to ``None`` (the family has no such part: the valuation engine has only experiments and docs).

Adding a family is one line in :data:`BUILTIN` (for a family of this package) or, from another
package, an entry point in the group ``datamarket.families`` that loads a :class:`Family`::

    [project.entry-points."datamarket.families"]
    toy = "toy_market.family:FAMILY"

:func:`families` returns both, built-ins first; a plug-in cannot replace a built-in kind. Entry points
are read once per process.

>>> [f.kind for f in families()][:2]
['balanced_market', 'truthful_payments']
>>> family("broker").adapter
'datamarket.service.adapters.broker:ADAPTER'
>>> family("data_valuation").scenario is None
True
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, fields
from importlib import metadata
from typing import Final

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "Family", "families", "family"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "datamarket.families"

CONVENTION: Final = "<convention>"
"""Default of every location: replaced by the conventional location of the family's kind."""

_LOCATIONS: Final = {
    "mechanisms": "datamarket.mechanisms.{kind}",
    "scenario": "datamarket.scenarios.{kind}",
    "experiments": "datamarket.experiments.{kind}",
    "adapter": "datamarket.service.adapters.{kind}:ADAPTER",
    "guide": "{kind}.md",
    "tutorial": "tutorials/{kind}.md",
}


@dataclass(frozen=True)
class Family:
    """A mechanism family: its kind, paper, title and the locations of its parts (module docstring).

    Parameters
    ----------
    kind : the scenario and market kind, a lower-case identifier (``broker``).
    paper : the authors, short (``"Chen, Clinton, Kandasamy"``), shown beside the title.
    citation : the full reference (authors, title, venue, arXiv id).
    title : a short title for menus (default: the kind in words).
    mechanisms, scenario, experiments : module paths, ``None`` when the family has none.
    adapter : ``module:attribute`` of the service adapter, or ``None``.
    guide, tutorial : docs pages relative to the docs folder, or ``None``.
    """

    kind: str
    paper: str
    citation: str
    title: str = ""
    mechanisms: str | None = CONVENTION
    scenario: str | None = CONVENTION
    experiments: str | None = CONVENTION
    adapter: str | None = CONVENTION
    guide: str | None = CONVENTION
    tutorial: str | None = CONVENTION

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.kind):
            raise ValueError(f"kind: {self.kind!r} is not a lower-case identifier")
        if not self.title:
            object.__setattr__(self, "title", self.kind.replace("_", " ").capitalize())
        for name, template in _LOCATIONS.items():
            if getattr(self, name) == CONVENTION:
                object.__setattr__(self, name, template.format(kind=self.kind))

    def locations(self) -> dict[str, str]:
        """The parts this family has, name -> location."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in _LOCATIONS and getattr(self, f.name) is not None
        }


# fmt: off
BUILTIN: Final[tuple[Family, ...]] = (
    Family("balanced_market", "Chaintreau, Maio, Ziani", "Augustin Chaintreau, Roland Maio, Juba Ziani. The Cost of Balanced Training-Data Production in an Online Data Market. The ACM Web Conference (WWW) 2025; arXiv:2501.19294.", "Balanced training data"),  # noqa: E501
    Family("truthful_payments", "Fan, Rotello, Karimireddy", "Dongyang Fan, Tyler J. Rotello, Sai Praneeth Karimireddy. From Fairness to Truthfulness: Rethinking Data Valuation Design. arXiv:2504.05563, 2025.", "Truthful payments"),  # noqa: E501
    Family("competing_buyers", "Westenbroek, Dong, Ratliff, Sastry", "Tyler Westenbroek, Roy Dong, Lillian J. Ratliff, S. Shankar Sastry. Statistical Estimation with Strategic Data Sources in Competitive Settings. IEEE Conference on Decision and Control (CDC) 2017; arXiv:1704.01195.", "Competing buyers"),  # noqa: E501
    Family("broker", "Chen, Clinton, Kandasamy", "Keran Chen, Alexander Clinton, Kirthevasan Kandasamy. Incentivizing Truthful Data Contributions in a Marketplace for Mean Estimation. arXiv:2502.16052, 2025.", "Broker for mean estimation"),  # noqa: E501
    Family("collaborative", "Ohrimenko, Tople, Tschiatschek", "Olga Ohrimenko, Shruti Tople, Sebastian Tschiatschek. Collaborative Machine Learning Markets with Data-Replication-Robust Payments. arXiv:1911.09052, 2019.", "Collaborative markets"),  # noqa: E501
    Family("realtime_market", "Agarwal, Dahleh, Sarkar", "Anish Agarwal, Munther Dahleh, Tuhin Sarkar. A Marketplace for Data: An Algorithmic Solution. ACM Conference on Economics and Computation (EC) 2019; arXiv:1805.08125.", "Real-time data marketplace"),  # noqa: E501
    Family("data_valuation", "Kwon, Zou; Jia et al.", "Yongchan Kwon, James Zou. Data-OOB: Out-of-bag Estimate as a Simple and Efficient Data Value. ICML 2023. Ruoxi Jia et al. Efficient Task-Specific Data Valuation for Nearest Neighbor Algorithms. VLDB 2019.", "Valuation engine", mechanisms=None, scenario=None, adapter=None, guide="valuation.md", tutorial="tutorials/valuation.md"),  # noqa: E501
)
# fmt: on
"""The families of this package, one line each (the papers are on the docs' Papers page)."""


@functools.cache
def _plugins() -> tuple[Family, ...]:
    """The families of the entry-point group, read once per process."""
    found: list[Family] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plug-in must not take the built-in families down
            log.warning("entry point %s = %s failed to load: %s", ep.name, ep.value, exc)
            continue
        if not isinstance(obj, Family):
            log.warning("entry point %s = %s is not a datamarket.families.Family", ep.name, ep.value)
            continue
        found.append(obj)
    return tuple(found)


def families() -> tuple[Family, ...]:
    """The built-in families, then those of the entry-point group ``datamarket.families`` (by name)."""
    out = list(BUILTIN)
    seen = {f.kind for f in out}
    for f in _plugins():
        if f.kind in seen:
            log.warning("family %r from an entry point is ignored: the kind is taken", f.kind)
            continue
        seen.add(f.kind)
        out.append(f)
    return tuple(out)


def family(kind: str) -> Family:
    """The family of ``kind`` (``KeyError`` naming the known kinds when there is none)."""
    for f in families():
        if f.kind == kind:
            return f
    raise KeyError(f"no family {kind!r} (known: {', '.join(f.kind for f in families())})")
