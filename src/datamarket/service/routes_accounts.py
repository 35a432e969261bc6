"""Routes: health, market kinds, participants, markets, the plan, and the operator's ledger views."""

from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datamarket import __version__
from datamarket.core.errors import InvalidMarketError
from datamarket.ledger import audit, chain
from datamarket.ledger.models import Market, Participant
from datamarket.ledger.money import PLATFORM, Currency
from datamarket.service import schemas as S
from datamarket.service.auth import hash_key, new_api_key
from datamarket.service.deps import (
    Admin,
    Id,
    ParticipantOnly,
    ServiceState,
    Who,
    check_owner,
    get_or_404,
)
from datamarket.service.rounds import load_inputs, unconsumed_ids


class NDJSONResponse(PlainTextResponse):
    """JSON Lines, declared as such in the OpenAPI schema."""

    media_type = "application/x-ndjson"


def install(app: FastAPI, st: ServiceState) -> None:
    """Add the routes of this module to ``app``."""
    db = st.db

    # public
    @app.get("/health", tags=["public"])
    def health() -> dict[str, str]:
        """Liveness probe; ``instance`` is this process's id in rounds' ``claimed_by``."""
        return {"status": "ok", "version": __version__, "instance": st.runner.instance}

    @app.get("/kinds", tags=["public"], response_model=list[S.KindOut])
    def kinds() -> list[S.KindOut]:
        """Market kinds this service can clear and the submissions each accepts."""
        return [
            S.KindOut(kind=k, description=a.description, submission_kinds=dict(a.submission_kinds))
            for k, a in sorted(st.adapters.items())
        ]

    # participants
    @app.post("/participants", tags=["participants"], status_code=201, response_model=S.ParticipantCreated)
    def register(body: S.ParticipantIn, _: Admin) -> S.ParticipantCreated:
        """Register a participant (operator only); the API key is returned once."""
        if body.name == PLATFORM:
            raise InvalidMarketError("name", f"{PLATFORM!r} is reserved for the operator's account")
        key = new_api_key()
        try:
            with db.write() as s:
                p = Participant(name=body.name, api_key_hash=hash_key(key))
                s.add(p)
                s.flush()
                pid = p.id
        except IntegrityError:
            raise HTTPException(409, f"participant {body.name!r} already exists") from None
        return S.ParticipantCreated(id=pid, name=body.name, api_key=key)

    def participant_out(s: Session, p: Participant) -> S.ParticipantOut:
        per = chain.balances(s, p.name).get(p.name, {})  # one balance per currency, never summed
        rows = [
            S.BalanceOut(currency=c, balance_minor=v, balance=Currency.parse(c).format(v))
            for c, v in sorted(per.items())
        ]
        single = None if len(per) > 1 else sum(per.values())
        return S.ParticipantOut(
            id=p.id, name=p.name, balance_minor=single, balances=rows, created_at=p.created_at
        )

    @app.get("/participants", tags=["participants"], response_model=list[S.ParticipantOut])
    def list_participants(_: Admin) -> list[S.ParticipantOut]:
        """Every participant with its balance (operator only)."""
        with db.read() as s:
            return [
                participant_out(s, p)
                for p in s.execute(select(Participant).order_by(Participant.id)).scalars()
            ]

    @app.get("/participants/me", tags=["participants"], response_model=S.ParticipantOut)
    def me(who: ParticipantOnly) -> S.ParticipantOut:
        """The caller's record and balance (minor units)."""
        with db.read() as s:
            return participant_out(s, get_or_404(s, Participant, who.participant_id or 0, "participant"))

    @app.get("/participants/{pid}", tags=["participants"], response_model=S.ParticipantOut)
    def get_participant(pid: Id, who: Who) -> S.ParticipantOut:
        """A participant's record and balance (itself or the operator)."""
        with db.read() as s:
            p = get_or_404(s, Participant, pid, "participant")
            check_owner(who, p.id, "participant", pid)
            return participant_out(s, p)

    # markets
    def market_out(m: Market) -> S.MarketOut:
        return S.MarketOut(
            id=m.id,
            kind=m.kind,
            name=m.name,
            params=m.params,
            scale=m.scale,
            currency=m.currency,
            exponent=Currency.parse(m.currency).exponent,
            created_at=m.created_at,
        )

    @app.post("/markets", tags=["markets"], status_code=201, response_model=S.MarketOut)
    def create_market(body: S.MarketIn, _: Admin) -> S.MarketOut:
        """Create a market of a kind listed by ``/kinds`` (operator only)."""
        adapter = st.adapters.get(body.kind)
        if adapter is None:
            raise InvalidMarketError(
                "kind", f"unknown market kind {body.kind!r} (available: {sorted(st.adapters)})"
            )
        params = adapter.validate_params(body.params)
        # ledger format 2: the market's currency fixes its scale (10^decimals); unknown currency -> 422
        cur = Currency.for_scale(body.scale) if body.currency is None else Currency.parse(body.currency)
        if "scale" in body.model_fields_set and body.scale != cur.scale:
            raise InvalidMarketError(
                "scale", f"{body.scale} does not match {cur.code} ({cur.scale} minor units)"
            )
        with db.write() as s:
            m = Market(kind=body.kind, name=body.name, params=params, scale=cur.scale, currency=cur.code)
            s.add(m)
            s.flush()
            return market_out(m)

    @app.get("/markets", tags=["markets"], response_model=list[S.MarketOut])
    def list_markets(_: Who) -> list[S.MarketOut]:
        """Every market."""
        with db.read() as s:
            return [market_out(m) for m in s.execute(select(Market).order_by(Market.id)).scalars()]

    @app.get("/markets/{mid}", tags=["markets"], response_model=S.MarketOut)
    def get_market(mid: Id, _: Who) -> S.MarketOut:
        """One market."""
        with db.read() as s:
            return market_out(get_or_404(s, Market, mid, "market"))

    @app.get("/markets/{mid}/plan", tags=["markets"])
    def plan(mid: Id, _: Who) -> dict[str, Any]:
        """What the market's mechanism asks of participants given the inputs so far (e.g. the broker's
        sample sizes ``N*_i`` and posted prices); 422 while the inputs do not determine it."""
        with db.read() as s:
            m = get_or_404(s, Market, mid, "market")
            inputs = load_inputs(s, unconsumed_ids(s, mid), st.limits)
        return st.adapters[m.kind].plan(m.params, inputs)

    # ledger
    @app.get("/ledger/verify", tags=["ledger"], response_model=S.VerifyOut)
    def verify(_: Admin) -> S.VerifyOut:
        """Recompute the hash chain and check it against rounds, submissions and deliverables
        (operator only)."""
        with db.read() as s:
            return S.VerifyOut(**audit.verify(s).to_dict())

    @app.post("/ledger/checkpoint", tags=["ledger"], response_model=S.VerifyOut)
    def verify_checkpoint(body: S.CheckpointOut, who: Who) -> S.VerifyOut:
        """Check that the ledger still extends a checkpoint kept from a receipt (the chain head after
        a round, the round's entry hashes, Merkle root and proofs). A participant sees the
        checkpoint's problems and only the number of other problems."""
        with db.read() as s:
            rep = audit.verify_checkpoints(s, [body.model_dump()])
            own = audit.check_checkpoint(body.model_dump(), chain.records(s))
        out = rep.to_dict()
        if not who.is_admin:
            hidden = len(rep.problems) - len(own)
            out["problems"] = own + ([f"{hidden} other problem(s) found; ask the operator"] if hidden else [])
        return S.VerifyOut(**out)

    @app.get("/ledger/export", tags=["ledger"], response_class=NDJSONResponse)
    def export(_: Admin) -> NDJSONResponse:
        """The ledger as JSON Lines (``datamarket ledger verify --file`` checks it offline)."""
        with db.read() as s:
            body = "".join(line + "\n" for line in audit.export_lines(s))
        return NDJSONResponse(body)

    @app.get("/ledger/entries", tags=["ledger"])
    def entries(_: Admin) -> dict[str, Any]:
        """Every ledger entry and the chain head (operator only)."""
        with db.read() as s:
            return chain.dump(s)

    @app.get("/ledger/balances", tags=["ledger"])
    def ledger_balances(_: Admin) -> dict[str, dict[str, int]]:
        """Net minor units per account and currency, the platform included (operator only)."""
        with db.read() as s:
            return chain.balances(s)
