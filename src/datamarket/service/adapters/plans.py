"""What a market's plan asks of each participant, as its adapter declares it.

An adapter may declare, as optional attributes (read with ``getattr``; every one has a default):

* ``plan_labels``: plan key -> a label for people (the portal shows the raw key where none is given);
* ``plan_money``: the plan keys whose numbers are amounts in the market's currency, in major units
  (the portal writes them as money);
* ``plan_quota``: upload kind -> the plan key holding, per participant name, the number of rows the
  plan asks of that participant (the broker: ``{"dataset": "n_star"}``, its ``N*_i``). While the
  inputs determine the plan, an upload of that kind with another number of rows is refused
  (:func:`quota_problem`, a 409 naming both numbers);
* ``cumulative_kinds``: the submission kinds of which the adapter reads every waiting submission. Of
  any other kind it reads only each participant's latest
  (:func:`~datamarket.service.adapters.latest_by`), so the store marks the earlier waiting ones
  excluded as "superseded by #N, ignored" when a new one arrives;
* ``next_steps(params, plan, me, mine)``: what participant ``me`` should do next, as sentences, given
  its view of the plan (its own row and the aggregates; ``None`` while the inputs do not determine
  it) and its waiting inputs ``mine`` (in submission order; an upload's ``payload`` holds its
  ``n_samples``). Without it, :func:`default_next_steps` derives them from ``submission_kinds``,
  ``plan_quota`` and what the participant submitted. A step names submission kinds between
  backquotes (the portal writes them as code) and never another participant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datamarket.service.adapters import Adapter, Input


def plan_labels_of(adapter: Adapter) -> dict[str, str]:
    """The adapter's ``plan_labels`` (module docstring), or none."""
    return {str(k): str(v) for k, v in (getattr(adapter, "plan_labels", None) or {}).items()}


def plan_money_of(adapter: Adapter) -> frozenset[str]:
    """The plan keys whose numbers are money (``plan_money``), or none."""
    return frozenset(str(k) for k in (getattr(adapter, "plan_money", None) or ()))


def plan_quota_of(adapter: Adapter) -> dict[str, str]:
    """Upload kind -> plan key of the per-participant row counts (``plan_quota``), upload kinds only."""
    quota = getattr(adapter, "plan_quota", None) or {}
    return {str(k): str(v) for k, v in quota.items() if k in adapter.dataset_kinds}


def supersedes(adapter: Adapter, kind: str) -> bool:
    """Whether a new submission of ``kind`` replaces the participant's earlier waiting ones (every
    kind not in the adapter's ``cumulative_kinds``)."""
    return kind not in frozenset(getattr(adapter, "cumulative_kinds", None) or ())


def quota(plan: Mapping[str, Any] | None, key: str, me: str) -> int | None:
    """The number of rows ``plan[key]`` asks of ``me``, or ``None`` (no plan, no such row).

    >>> quota({"n_star": {"a": 7, "b": 3}}, "n_star", "a"), quota({"n_star": {"b": 3}}, "n_star", "a")
    (7, None)
    """
    rows = (plan or {}).get(key)
    value = rows.get(me) if isinstance(rows, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    return int(value)


def rows_of(i: Input | None) -> int | None:
    """The number of rows of an upload (its parsed dataset, else the stored summary), else ``None``."""
    if i is None:
        return None
    if i.dataset is not None:
        return int(i.dataset.n_samples)
    n = i.payload.get("n_samples")
    return int(n) if isinstance(n, int) and not isinstance(n, bool) else None


def quota_problem(adapter: Adapter, plan: Mapping[str, Any], kind: str, me: str, n_rows: int) -> str | None:
    """Why an upload of ``kind`` with ``n_rows`` rows does not fit the determined ``plan`` (the whole
    plan or ``me``'s view of it), or ``None`` when it does or the plan asks nothing of ``me``.

    >>> class A:
    ...     dataset_kinds = frozenset({"dataset"})
    ...     plan_quota = {"dataset": "n_star"}
    >>> quota_problem(A(), {"n_star": {"a": 7}}, "dataset", "a", 3)
    'the plan asks you for 7 points; this file has 3'
    """
    key = plan_quota_of(adapter).get(kind)
    wanted = None if key is None else quota(plan, key, me)
    if wanted is None or wanted == n_rows:
        return None
    if wanted == 0:
        return f"the plan asks you for no points: upload no {kind}; this file has {n_rows}"
    return f"the plan asks you for {wanted} points; this file has {n_rows}"


def next_steps(
    adapter: Adapter,
    params: Mapping[str, Any],
    plan: Mapping[str, Any] | None,
    me: str,
    mine: Sequence[Input],
) -> list[str]:
    """The adapter's ``next_steps`` for ``me``, else :func:`default_next_steps`."""
    hook = getattr(adapter, "next_steps", None)
    if hook is not None:
        return [str(s) for s in hook(params, plan, me, mine)]
    return default_next_steps(adapter, plan, me, mine)


def default_next_steps(
    adapter: Adapter, plan: Mapping[str, Any] | None, me: str, mine: Sequence[Input]
) -> list[str]:
    """Steps from what the adapter declares: the rows each quota asks of ``me`` against its latest
    upload of that kind, what ``me`` has waiting (a new one replaces it), else what it may submit;
    then the wait (for the plan, or for the operator to clear the round).

    >>> class A:
    ...     submission_kinds = {"cost": "seller: its cost", "dataset": "seller: the rows"}
    ...     dataset_kinds = frozenset({"dataset"})
    ...     plan_quota = {"dataset": "n_star"}
    >>> for step in default_next_steps(A(), {"n_star": {"a": 7}}, "a", [Input("a", "cost", {"cost": 1})]):
    ...     print(step)
    Upload exactly 7 data points (submission kind `dataset`: seller: the rows).
    Your `cost` is stored and counts in the next round; a new `cost` replaces it.
    """
    latest = {i.kind: i for i in mine}
    steps, pending = [], False
    for kind, key in plan_quota_of(adapter).items():
        wanted = quota(plan, key, me)
        if wanted is None:
            continue
        have = rows_of(latest.pop(kind, None))
        pending = pending or have != wanted
        steps.append(_quota_step(adapter, kind, wanted, have))
    for kind in latest:
        cumulative = "; each one counts" if not supersedes(adapter, kind) else f"; a new `{kind}` replaces it"
        steps.append(f"Your `{kind}` is stored and counts in the next round{cumulative}.")
    if not mine:
        steps += [f"Submit `{k}` ({text})." for k, text in adapter.submission_kinds.items()]
    if plan is None:
        steps.append("Wait until the inputs determine the plan: this page then shows what it asks of you.")
    elif mine and not pending:
        steps.append("Wait for the operator to clear the round.")
    return steps


def _quota_step(adapter: Adapter, kind: str, wanted: int, have: int | None) -> str:
    """The step for an upload quota of ``wanted`` rows when the latest upload has ``have``."""
    what = f"submission kind `{kind}`: {adapter.submission_kinds.get(kind, kind)}"
    if wanted == have:
        return f"Your `{kind}` upload has the {wanted} points the plan asks of you."
    if wanted == 0:
        return (
            f"The plan asks you for no points: withdraw your `{kind}` upload."
            if have
            else (f"The plan asks you for no points: upload no `{kind}`.")
        )
    if have is None:
        return f"Upload exactly {wanted} data points ({what})."
    return (
        f"Your `{kind}` upload has {have} points; the plan asks for {wanted}: "
        f"upload exactly {wanted} ({what})."
    )
