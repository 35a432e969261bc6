"""Market pages: the operator's form to create a market of any kind, and a market's page (its plan,
its submissions and rounds; for a participant a form per submission kind and the upload).

The plan (:func:`datamarket.service.store.markets.plan_page`) reads, for the operator, as a table of
one row per participant and the values shared by all; for a participant, as its own row, the
aggregates of everyone's rows, the shared values and "What to do next". Keys are written with the
adapter's ``plan_labels``, numbers with ``qty``, the ``plan_money`` values with ``major``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from datamarket.service.adapters.plans import plan_labels_of, plan_money_of, plan_quota_of, quota
from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Id
from datamarket.service.portal import forms
from datamarket.service.portal.session import Visitor
from datamarket.service.portal.views.common import (
    Anyone,
    Operator,
    as_json,
    page,
    portal_router,
    posted,
    problem_of,
    state,
)
from datamarket.service.store import ledger, markets, participants, rounds, submissions

router = portal_router()


def new_market_page(
    request: Request,
    v: Visitor,
    kind: str,
    values: dict[str, Any],
    errors: dict[str, str],
    message: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The form to create a market of ``kind`` (its parameters' fields), with ``values`` and ``errors``."""
    st = state(request)
    model = forms.params_model(kind) if kind in st.adapters else None
    return page(
        request,
        v,
        "market_new.html",
        status=status,
        kind=kind,
        kinds=sorted(st.adapters),
        fields=forms.fields(model) if model else [],
        values=values,
        errors=errors,
        message=message,
        description=st.adapters[kind].description if kind in st.adapters else "",
    )


@router.get("/markets/new")
def market_new(request: Request, kind: str = "", v: Visitor = Operator) -> HTMLResponse:
    """The operator's form to create a market."""
    return new_market_page(request, v, kind, {}, {})


@router.post("/markets/new")
async def market_create(request: Request, v: Visitor = Operator) -> Response:
    """Create the market the form describes, or show the form again with the problems."""
    form = await posted(request, v)
    st = state(request)
    kind = str(form.get("kind") or "")
    if kind not in st.adapters:
        return new_market_page(request, v, kind, form, {}, f"unknown market kind {kind!r}", 422)
    model = forms.params_model(kind)
    params, errors = forms.parse(model, form)
    if errors:
        return new_market_page(request, v, kind, form, errors, "some fields could not be read", 422)
    currency = str(form.get("currency") or "").strip() or None
    try:
        body = S.MarketIn(kind=kind, name=str(form.get("name") or ""), params=params, currency=currency)
        m = await run_in_threadpool(
            markets.create_market,
            st.db,
            st.adapters,
            body.kind,
            body.name,
            body.params,
            currency=body.currency,
        )
    except Exception as exc:
        p = problem_of(exc)
        f = forms.field_of(p.field, model, p.message)
        top = p.field if p.field in ("name", "currency") else None
        errs = {f: p.message} if f else ({top: p.message} if top else {})
        return new_market_page(request, v, kind, form, errs, None if errs else p.message, p.status)
    return RedirectResponse(f"/portal/markets/{m['id']}?done=created", status_code=303)


def _plan(request: Request, v: Visitor, m: dict[str, Any]) -> dict[str, Any]:
    """The template's view of market ``m``'s plan as ``v`` may see it: ``plan``, ``plan_problem``,
    ``plan_table``, ``next_steps``, the adapter's ``plan_labels`` and ``plan_money``, and ``my_n``
    (the rows the plan asks of a participant for the first upload kind with a quota)."""
    st = state(request)
    view = markets.plan_page(st.db, st.adapters, st.limits, m["id"], v.who)
    adapter = st.adapters.get(m["kind"])
    quotas = list(plan_quota_of(adapter).values()) if adapter is not None else []
    mine = view["plan"] if not v.who.is_admin else None
    return {
        "plan": view["plan"],
        "plan_problem": view["problem"],
        "plan_table": view["table"],
        "next_steps": view["next_steps"],
        "plan_labels": plan_labels_of(adapter) if adapter is not None else {},
        "plan_money": plan_money_of(adapter) if adapter is not None else frozenset(),
        "my_n": quota(mine, quotas[0], v.who.name) if quotas and mine else None,
    }


def _participant_forms(request: Request, m: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The JSON submission kinds (with their form fields) and the upload kinds of market ``m``."""
    adapter = state(request).adapters.get(m["kind"])
    json_kinds: list[Any] = []
    upload_kinds: list[Any] = []
    if adapter is not None:
        for k, text in adapter.submission_kinds.items():
            if k in adapter.dataset_kinds:
                upload_kinds.append((k, text))
            else:
                model = forms.submission_model(m["kind"], k)
                json_kinds.append((k, text, forms.fields(model, m["currency"])))
    return json_kinds, upload_kinds


def market_page(
    request: Request,
    v: Visitor,
    mid: int,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    form_kind: str | None = None,
    message: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A market's page for ``v`` (operator or participant view), with a form's ``values`` and
    ``errors`` when one is shown again."""
    st, who = state(request), v.who
    m = as_json(S.MarketOut, markets.get_market(st.db, mid))
    adapter = st.adapters.get(m["kind"])
    ctx: dict[str, Any] = dict(
        m=m,
        **_plan(request, v, m),
        subs=as_json(S.SubmissionOut, submissions.list_submissions(st.db, who, mid)),
        rounds=as_json(S.RoundOut, rounds.list_rounds(st.db, who, mid)),
        values=values or {},
        errors=errors or {},
        form_kind=form_kind,
        message=message,
        description=adapter.description if adapter else m["kind"],
    )
    if who.is_admin:
        names = {p["id"]: p["name"] for p in participants.list_participants(st.db)}
        return page(request, v, "market_operator.html", status=status, names=names, **ctx)
    json_kinds, upload_kinds = _participant_forms(request, m)
    return page(
        request,
        v,
        "market_participant.html",
        status=status,
        json_kinds=json_kinds,
        upload_kinds=upload_kinds,
        max_bytes=st.limits.max_bytes,
        totals=ledger.market_totals(st.db, int(who.participant_id or 0), mid),
        **ctx,
    )


@router.get("/markets/{mid}")
def market(request: Request, mid: Id, v: Visitor = Anyone) -> HTMLResponse:
    """A market's page."""
    return market_page(request, v, mid)
