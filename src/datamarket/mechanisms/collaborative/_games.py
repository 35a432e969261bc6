r"""Coalition models and the characteristic functions u, v, w of Ohrimenko et al. (Ohrimenko et al.).

One model is fitted per distinct training multiset :math:`\oplus_{k \in S} X_k` and evaluated on every
validation task, so that the gain table :math:`G[t, S] = \mathcal{G}(\mathcal{V}_t; \mathcal{M}_S)` serves
data selection (u), the single-task payoff (v) and the multi-task payoff (w) at once
(cost sharing).

Canonical order: the training set of a coalition concatenates the parties' data sorted by
a content id (a hash of the data), so replicas and identical parties share the id and every coalition
model is bit-identical whichever copy is in the coalition. Duplicates are kept (``⊕``).

Characteristic functions (Ohrimenko et al., Sec. 4.1, Sec. 4.2, Sec. 5), with :math:`g_j = \mathcal{G}(V_j;
\mathcal{M}(X_j))` the own-model gain and :math:`\mathcal{M}^i_S = \mathcal{M}_{S \cap D_i}`:

.. math::
   u_t(S) &= \mathcal{G}(V_t; \mathcal{M}_S), \\
   v(S)   &= (|S|+1)\,\mathcal{G}(V; \mathcal{M}^{\cdot}_S) - \sum_{j \in S} g_j, \\
   w(S)   &= \sum_{i \in \mathbf{M}} \mathcal{G}(V_i; \mathcal{M}^i_S)
             + \sum_{i \in S} \bigl[\mathcal{G}(V_i; \mathcal{M}^i_S) - g_i\bigr],

all zero at :math:`\emptyset` because :math:`\mathcal{G}(V; \mathcal{M}_\emptyset) := 0`.
The subtracted term is always the own model, also when selection drops a party.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from datamarket.learning.models import ModelSpec, accuracy, fit_model
from datamarket.valuation.games import NamedPlayers

Characteristic = Literal["u", "v", "w"]


def content_id(x: NDArray[np.float64], y: NDArray[Any]) -> str:
    """A stable id of a labelled dataset's content (identical data, identical id).

    >>> a = content_id(np.zeros((2, 2)), np.array([0, 1]))
    >>> b = content_id(np.ones((2, 2)), np.array([0, 1]))
    >>> a == content_id(np.zeros((2, 2)), np.array([0, 1])), a == b
    (True, False)
    """
    h = hashlib.sha1(usedforsecurity=False)
    xa = np.ascontiguousarray(x, dtype=np.float64)
    h.update(str(xa.shape).encode())
    h.update(xa.tobytes())
    ya = np.asarray(y)
    h.update(str(ya.dtype.kind).encode())
    h.update(np.ascontiguousarray(ya.astype(str) if ya.dtype.kind in "OUS" else ya).tobytes())
    return h.hexdigest()[:20]


class GainEngine:
    """Fits one model per distinct training multiset and caches its gains on every task.

    Parameters
    ----------
    model : the learner.
    tasks : ``(features, labels)`` of the distinct validation tasks (the columns of the gain vector).

    Datasets are registered by :meth:`register` under their content id. :meth:`gains` takes a multiset
    of ids; the cache key is the sorted tuple, so the same multiset is fitted once per engine, whichever
    round, coalition or replica asks (``fits`` and ``cache_hits`` count what happened). An engine holds
    no state beyond this memo, and a round creates its own unless the caller shares one.
    """

    def __init__(self, model: ModelSpec, tasks: Sequence[tuple[NDArray[np.float64], NDArray[Any]]]) -> None:
        self.model = model
        self.tasks = [(np.asarray(x, dtype=np.float64), np.asarray(y)) for x, y in tasks]
        self._data: dict[str, tuple[NDArray[np.float64], NDArray[Any]]] = {}
        self._cache: dict[tuple[str, ...], NDArray[np.float64]] = {(): np.zeros(len(self.tasks))}
        self.fits = 0
        self.cache_hits = 0

    def register(self, x: NDArray[np.float64], y: NDArray[Any]) -> str:
        """Register a training set; returns its content id."""
        cid = content_id(x, y)
        self._data.setdefault(cid, (np.asarray(x, dtype=np.float64), np.asarray(y)))
        return cid

    def training_set(self, ids: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[Any]]:
        """The concatenation of the registered sets ``ids`` in canonical (sorted) order."""
        key = tuple(sorted(ids))
        xs = [self._data[k][0] for k in key]
        ys = [self._data[k][1] for k in key]
        return np.concatenate(xs, axis=0), np.concatenate(ys, axis=0)

    def gains(self, ids: Sequence[str]) -> NDArray[np.float64]:
        """:math:`\\mathcal{G}(V_t; \\mathcal{M}(\\oplus_{k} X_k))` for every task ``t`` (0 for no data)."""
        key = tuple(sorted(ids))
        hit = self._cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            return hit
        x, y = self.training_set(key)
        fitted = fit_model(self.model, x, y)
        out = np.array([accuracy(fitted, tx, ty) for tx, ty in self.tasks])
        out.setflags(write=False)
        self._cache[key] = out
        self.fits += 1
        return out


class MarketGame(NamedPlayers):
    """A characteristic function of Ohrimenko et al. over the parties of one market (CoalitionGame protocol).

    Parameters
    ----------
    engine : gain engine holding every party's data and every distinct task.
    party_ids : content id of each party's training data.
    task_of : index (into ``engine.tasks``) of each party's validation task.
    own_gain : :math:`g_i`, each party's own-model gain on its task.
    selected : bitmask :math:`D_i` per party (all ones without data selection).
    kind : ``"u"`` (mean over parties of :math:`\\mathcal{G}(V_i; \\mathcal{M}^i_S)`; for one task the
        plain accuracy game), ``"v"`` (single task; uses party 0's task and selection) or ``"w"``.
    task : for ``kind="u"`` only, evaluate :math:`u_t` on this task index with no selection instead
        (the data-selection game of Sec. 5).

    Values are memoised by mask; :meth:`values` is the batched form that
    :func:`~datamarket.valuation.exact_shapley` uses.
    """

    def __init__(
        self,
        engine: GainEngine,
        party_ids: Sequence[str],
        task_of: Sequence[int],
        own_gain: NDArray[np.float64],
        selected: Sequence[int],
        kind: Characteristic,
        names: Sequence[str],
        task: int | None = None,
    ) -> None:
        self.engine = engine
        self.party_ids = tuple(party_ids)
        self.task_of = np.asarray(task_of, dtype=np.intp)
        self.own_gain = np.asarray(own_gain, dtype=np.float64)
        self.selected = tuple(int(s) for s in selected)
        self.kind = kind
        self.task = task
        self._names = tuple(names)
        self._memo: dict[int, float] = {}

    def _gain(self, mask: int, task: int) -> float:
        ids = [self.party_ids[k] for k in range(self.n_players) if mask >> k & 1]
        return float(self.engine.gains(ids)[task])

    def coalition_gains(self, mask: int) -> NDArray[np.float64]:
        """:math:`\\mathcal{G}(V_i; \\mathcal{M}^i_S)` for every party ``i`` (selection applied)."""
        return np.array(
            [self._gain(mask & d, int(t)) for d, t in zip(self.selected, self.task_of, strict=True)]
        )

    def value(self, mask: int) -> float:
        mask = int(mask)
        hit = self._memo.get(mask)
        if hit is not None:
            return hit
        if mask == 0:
            val = 0.0
        elif self.kind == "u" and self.task is not None:
            val = self._gain(mask, self.task)
        else:
            size = bin(mask).count("1")
            inside = np.array([mask >> k & 1 for k in range(self.n_players)], dtype=bool)
            if self.kind == "v":
                g = self._gain(mask & self.selected[0], int(self.task_of[0]))
                val = (size + 1) * g - float(self.own_gain[inside].sum())
            else:
                gi = self.coalition_gains(mask)
                if self.kind == "w":
                    val = float(gi.sum() + (gi[inside] - self.own_gain[inside]).sum())
                else:
                    val = float(gi.mean())
        self._memo[mask] = val
        return val

    def values(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.array([self.value(int(m)) for m in np.asarray(masks)], dtype=np.float64)


def member_matrix(n_players: int) -> NDArray[np.bool_]:
    """``out[mask, i]`` is True iff player ``i`` is in ``mask`` (all ``2**n`` masks)."""
    masks = np.arange(1 << n_players, dtype=np.int64)
    out: NDArray[np.bool_] = ((masks[:, None] >> np.arange(n_players)) & 1).astype(bool)
    return out


def v_table(gain: NDArray[np.float64], own_gain: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Vectorised :math:`v` (Ohrimenko et al., Sec. 4.1) on every mask from the task gains
    ``gain[mask]`` :math:`= \mathcal{G}(V; \mathcal{M}_S)` (``gain[0] = 0``).

    >>> v_table(np.array([0.0, 0.5, 0.5, 0.9]), np.array([0.5, 0.5])).round(12).tolist()
    [0.0, 0.5, 0.5, 1.7]
    """
    gain = np.asarray(gain, dtype=np.float64)
    n = int(gain.shape[0]).bit_length() - 1
    inside = member_matrix(n)
    out: NDArray[np.float64] = (inside.sum(axis=1) + 1) * gain - inside @ np.asarray(
        own_gain, dtype=np.float64
    )
    out[0] = 0.0
    return out


def w_table(gains: NDArray[np.float64], own_gain: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Vectorised :math:`w` (Ohrimenko et al., Sec. 4.2) from ``gains[i, mask]`` :math:`=
    \mathcal{G}(V_i; \mathcal{M}^i_S)` (selection already applied; ``gains[:, 0] = 0``).

    >>> w_table(np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]), np.array([1.0, 1.0])).tolist()
    [0.0, 1.0, 1.0, 2.0]
    """
    gains = np.asarray(gains, dtype=np.float64)
    n = gains.shape[0]
    inside = member_matrix(n)
    out: NDArray[np.float64] = gains.sum(axis=0) + (inside * (gains.T - np.asarray(own_gain)[None, :])).sum(
        axis=1
    )
    out[0] = 0.0
    return out


class SampleGame:
    r"""Data points as players (Ohrimenko et al., Sec. 5, "sample level").

    :math:`u(S) = \mathcal{G}(V; \mathcal{M}(\{x_j\}_{j \in S}))`, memoised by mask (masks are Python
    ints, so any number of samples works)."""

    def __init__(
        self,
        model: ModelSpec,
        x: NDArray[np.float64],
        y: NDArray[Any],
        task: tuple[NDArray[np.float64], NDArray[Any]],
    ) -> None:
        self.model = model
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y)
        self.task = task
        self._memo: dict[int, float] = {0: 0.0}
        self.fits = 0

    @property
    def n_players(self) -> int:
        return int(self.y.shape[0])

    @property
    def player_names(self) -> tuple[str, ...]:
        return tuple(f"sample_{j}" for j in range(self.n_players))

    def value(self, mask: int) -> float:
        hit = self._memo.get(mask)
        if hit is not None:
            return hit
        rows = [j for j in range(self.n_players) if mask >> j & 1]
        val = accuracy(fit_model(self.model, self.x[rows], self.y[rows]), *self.task)
        self.fits += 1
        self._memo[mask] = val
        return val
