"""Routes: clearing rounds, their status and retry, receipts and deliverables."""

from typing import Any

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datamarket.ledger.audit import checkpoint_of
from datamarket.ledger.chain import EntryRecord
from datamarket.ledger.models import Deliverable, LedgerEntry, Market, Participant, Round, Submission
from datamarket.ledger.money import Currency, format_minor
from datamarket.service import schemas as S
from datamarket.service.auth import Principal
from datamarket.service.deps import (
    Admin,
    Id,
    IdemKey,
    ServiceState,
    Who,
    check_owner,
    get_or_404,
    idem_hash,
)
from datamarket.service.rounds import load_inputs


def install(app: FastAPI, st: ServiceState) -> None:
    """Add the routes of this module to ``app``."""
    db = st.db

    # rounds
    def round_out(r: Round, who: Principal) -> S.RoundOut:
        return S.RoundOut(
            id=r.id,
            market_id=r.market_id,
            status=r.status,  # type: ignore[arg-type]
            progress=r.progress,
            stage=r.stage,
            attempts=r.attempts,
            seed=r.seed,
            input_ids=list(r.input_ids),
            error=r.error,
            created_at=r.created_at,
            updated_at=r.updated_at,
            outcome=r.outcome if who.is_admin else None,
        )

    @app.post(
        "/markets/{mid}/rounds",
        tags=["rounds"],
        status_code=202,
        response_model=S.RoundOut,
        responses={200: {"model": S.RoundOut, "description": "idempotent replay"}},
    )
    def clear(
        mid: Id, who: Admin, body: S.RoundIn | None = None, idempotency_key: IdemKey = None
    ) -> Response:
        """Clear a round over the market's unconsumed inputs, in the background (operator only).

        The round starts ``pending``; poll ``GET /rounds/{id}`` for status and progress.
        """
        seed_in = body.seed if body is not None else None

        def replay(s: Session) -> Response | None:
            if idempotency_key is None:
                return None
            old = s.execute(
                select(Round).where(Round.market_id == mid, Round.idempotency_key == idempotency_key)
            ).scalar_one_or_none()
            return (
                None
                if old is None
                else JSONResponse(round_out(old, who).model_dump(mode="json"), status_code=200)
            )

        try:
            return create_round(mid, who, seed_in, idempotency_key, replay)
        except IntegrityError:  # a concurrent request with the same key won the race
            with db.read() as s:
                again = replay(s)
            if again is None:
                raise
            return again

    def create_round(
        mid: int, who: Principal, seed_in: int | None, idempotency_key: str | None, replay: Any
    ) -> Response:
        with db.write() as s:
            # lock the market row (PostgreSQL) so that concurrent requests see each other's round
            m = s.execute(select(Market).where(Market.id == mid).with_for_update()).scalar_one_or_none()
            if m is None:
                raise HTTPException(404, f"market {mid} not found")
            again = replay(s)
            if again is not None:
                return again  # type: ignore[no-any-return]
            busy = s.execute(
                select(Round.id).where(Round.market_id == mid, Round.status.in_(("pending", "running")))
            ).first()
            if busy is not None:
                raise HTTPException(409, f"round {busy[0]} of market {mid} is still in progress")
            ids = list(
                s.execute(
                    select(Submission.id)
                    .where(Submission.market_id == mid, Submission.consumed_round_id.is_(None))
                    .order_by(Submission.id)
                ).scalars()
            )
            st.adapters[m.kind].check_inputs(m.params, load_inputs(s, ids, st.limits))
            count = len(s.execute(select(Round.id).where(Round.market_id == mid)).all())
            seed = seed_in if seed_in is not None else int(idem_hash(mid, count)[:8], 16)
            r = Round(market_id=mid, seed=seed, input_ids=ids, idempotency_key=idempotency_key)
            s.add(r)
            s.flush()
            out = round_out(r, who)
        st.runner.submit(out.id)
        return JSONResponse(out.model_dump(mode="json"), status_code=202)

    @app.get("/markets/{mid}/rounds", tags=["rounds"], response_model=list[S.RoundOut])
    def list_rounds(mid: Id, who: Who) -> list[S.RoundOut]:
        """Every round of a market (status and progress; outcomes for the operator)."""
        with db.read() as s:
            get_or_404(s, Market, mid, "market")
            q = select(Round).where(Round.market_id == mid).order_by(Round.id)
            return [round_out(r, who) for r in s.execute(q).scalars()]

    @app.get("/rounds/{rid}", tags=["rounds"], response_model=S.RoundOut)
    def get_round(rid: Id, who: Who) -> S.RoundOut:
        """Status (pending/running/cleared/failed), progress in [0, 1], error; outcome for the operator."""
        with db.read() as s:
            return round_out(get_or_404(s, Round, rid, "round"), who)

    @app.post("/rounds/{rid}/retry", tags=["rounds"], status_code=202, response_model=S.RoundOut)
    def retry(rid: Id, who: Admin) -> S.RoundOut:
        """Run a failed round again on the same inputs (409 unless it failed)."""
        with db.write() as s:
            r = get_or_404(s, Round, rid, "round")
            if r.status != "failed":
                raise HTTPException(409, f"round {rid} is {r.status}; only a failed round can be retried")
            used = s.execute(
                select(Submission.id).where(
                    Submission.id.in_(list(r.input_ids)), Submission.consumed_round_id.is_not(None)
                )
            ).first()
            if used is not None:
                raise HTTPException(409, f"submission {used[0]} was used by another round since")
            r.status, r.progress, r.stage, r.error = "pending", 0.0, "retry", None
            out = round_out(r, who)
        st.runner.submit(rid)
        return out

    def receipt(s: Session, r: Round, p: Participant) -> S.ReceiptOut:
        # issue 14: every hashed field of the participant's entries, the round's currency and the
        # checkpoint (chain head after the round, entry hashes, Merkle root, inclusion proofs)
        m = s.get(Market, r.market_id)
        cur = Currency.parse(m.currency if m is not None else "USD")
        rows = s.execute(
            select(LedgerEntry).where(LedgerEntry.round_id == r.id).order_by(LedgerEntry.seq)
        ).scalars()
        all_rows = [EntryRecord.from_row(e) for e in rows]
        mine = [e for e in all_rows if e.participant_id == p.id]
        d = s.execute(
            select(Deliverable).where(Deliverable.round_id == r.id, Deliverable.participant_id == p.id)
        ).scalar_one_or_none()
        net = sum(int(e.amount_minor) for e in mine)
        cp = checkpoint_of(s, r.id, p.id)
        return S.ReceiptOut(
            round_id=r.id,
            market_id=r.market_id,
            participant_id=p.id,
            participant=p.name,
            entries=[
                S.EntryOut(
                    **{**e.to_dict(), "amount_minor": int(e.amount_minor)},
                    amount=format_minor(int(e.amount_minor), cur.scale),
                )
                for e in mine
            ],
            net_minor=net,
            net=format_minor(net, cur.scale),
            currency=cur.code,
            deliverable=None if d is None else d.payload,
            round_hash=all_rows[-1].hash if all_rows else None,
            checkpoint=None if cp is None else S.CheckpointOut(**cp),
        )

    def cleared_round(s: Session, rid: int) -> Round:
        r = get_or_404(s, Round, rid, "round")
        if r.status != "cleared":
            raise HTTPException(409, f"round {rid} is {r.status}, not cleared")
        return r

    @app.get("/rounds/{rid}/receipts", tags=["receipts"], response_model=list[S.ReceiptOut])
    def receipts(rid: Id, _: Admin) -> list[S.ReceiptOut]:
        """Every participant's receipt of a cleared round (operator only)."""
        with db.read() as s:
            r = cleared_round(s, rid)
            pids = {
                e.participant_id
                for e in s.execute(select(LedgerEntry).where(LedgerEntry.round_id == rid)).scalars()
                if e.participant_id is not None
            } | set(
                s.execute(select(Deliverable.participant_id).where(Deliverable.round_id == rid)).scalars()
            )
            return [receipt(s, r, get_or_404(s, Participant, pid, "participant")) for pid in sorted(pids)]

    @app.get("/rounds/{rid}/receipts/{pid}", tags=["receipts"], response_model=S.ReceiptOut)
    def get_receipt(rid: Id, pid: Id, who: Who) -> S.ReceiptOut:
        """A participant's receipt: its ledger entries of the round, net amount, deliverable."""
        check_owner(who, pid, "receipt")
        with db.read() as s:
            p = get_or_404(s, Participant, pid, "participant")
            return receipt(s, cleared_round(s, rid), p)

    @app.get("/rounds/{rid}/models/{pid}", tags=["receipts"], response_model=S.ModelOut)
    def get_model(rid: Id, pid: Id, who: Who) -> S.ModelOut:
        """What a participant received from the round (model, estimate, gain)."""
        check_owner(who, pid, "model")
        with db.read() as s:
            cleared_round(s, rid)
            d = s.execute(
                select(Deliverable).where(Deliverable.round_id == rid, Deliverable.participant_id == pid)
            ).scalar_one_or_none()
            if d is None:
                raise HTTPException(404, f"participant {pid} received nothing in round {rid}")
            return S.ModelOut(round_id=rid, participant_id=pid, deliverable=d.payload)
