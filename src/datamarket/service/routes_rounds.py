"""Routes: clearing rounds, their status and retry, receipts and deliverables."""

import secrets

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datamarket.core.errors import DatamarketError
from datamarket.ledger.audit import checkpoint_of
from datamarket.ledger.chain import EntryRecord
from datamarket.ledger.models import (
    Deliverable,
    LedgerEntry,
    Market,
    Participant,
    Round,
    Submission,
    utcnow,
)
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
from datamarket.service.rounds import load_inputs, rowcount, seed_commitment, unconsumed_ids


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
            claimed_by=r.claimed_by,
            lease_expires_at=r.lease_expires_at,
            lease_expiries=r.lease_expiries or 0,
            seed=r.seed if who.is_admin or r.status == "cleared" else None,
            seed_commit=r.seed_commit,
            seed_source=r.seed_source,  # type: ignore[arg-type]
            input_ids=list(r.input_ids),
            error=r.error,
            created_at=r.created_at,
            updated_at=r.updated_at,
            outcome=r.outcome if who.is_admin else None,
            certificate_passed=None if r.certificate is None else bool(r.certificate.get("passed")),
            certificate=r.certificate if who.is_admin else None,
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

        The round starts ``pending``; poll ``GET /rounds/{id}`` for status and progress. 409 while
        another round of the market is in progress (enforced by the database), when the market's
        inputs cannot be cleared yet (e.g. no bids), or when the same ``Idempotency-Key`` was used
        with another body.
        """
        seed_in = body.seed if body is not None else None
        rh = idem_hash("round", mid, seed_in)

        def replay(s: Session) -> Response | None:
            if idempotency_key is None:
                return None
            old = s.execute(
                select(Round).where(Round.market_id == mid, Round.idempotency_key == idempotency_key)
            ).scalar_one_or_none()
            if old is None:
                return None
            if old.request_hash not in (None, rh):
                raise HTTPException(409, "Idempotency-Key already used with a different request")
            return JSONResponse(round_out(old, who).model_dump(mode="json"), status_code=200)

        # 1. read and check the inputs without holding a write lock
        with db.read() as s:
            m = get_or_404(s, Market, mid, "market")
            again = replay(s)
            if again is not None:
                return again
            busy_round(s, mid)
            ids = unconsumed_ids(s, mid)
            inputs = load_inputs(s, ids, st.limits)
            kind, params = m.kind, dict(m.params)
        try:
            st.adapters[kind].check_inputs(params, inputs)
        except DatamarketError as exc:  # the request is fine; the market's state does not allow a round
            detail = {"detail": str(exc), "field": getattr(exc, "field", None)}
            return JSONResponse(detail, status_code=409)
        seed, salt, source = (
            (seed_in, secrets.token_hex(16), "operator")
            if seed_in is not None
            else (secrets.randbits(32), secrets.token_hex(16), "csprng")
        )
        # 2. one short write: the inputs must still be those checked; the index admits one active round
        try:
            with db.write() as s:
                s.execute(select(Market.id).where(Market.id == mid).with_for_update())
                again = replay(s)
                if again is not None:
                    return again
                if unconsumed_ids(s, mid) != ids:
                    raise HTTPException(409, "the market's inputs changed while the round was checked; retry")
                r = Round(
                    market_id=mid,
                    seed=seed,
                    seed_salt=salt,
                    seed_commit=seed_commitment(seed, salt),
                    seed_source=source,
                    input_ids=ids,
                    idempotency_key=idempotency_key,
                    request_hash=rh,
                )
                s.add(r)
                s.flush()
                out = round_out(r, who)
        except IntegrityError:  # a concurrent request with the same key, or another active round, won
            with db.read() as s:
                again = replay(s)
                if again is None:
                    busy_round(s, mid)
            if again is None:
                raise HTTPException(409, f"another round of market {mid} was opened concurrently") from None
            return again
        st.runner.submit(out.id)
        return JSONResponse(out.model_dump(mode="json"), status_code=202)

    def busy_round(s: Session, mid: int) -> None:
        busy = s.execute(
            select(Round.id).where(Round.market_id == mid, Round.status.in_(("pending", "running")))
        ).first()
        if busy is not None:
            raise HTTPException(409, f"round {busy[0]} of market {mid} is still in progress")

    @app.get("/markets/{mid}/rounds", tags=["rounds"], response_model=list[S.RoundOut])
    def list_rounds(mid: Id, who: Who) -> list[S.RoundOut]:
        """Every round of a market (status and progress; outcomes for the operator)."""
        with db.read() as s:
            get_or_404(s, Market, mid, "market")
            q = select(Round).where(Round.market_id == mid).order_by(Round.id)
            return [round_out(r, who) for r in s.execute(q).scalars()]

    @app.get("/rounds/{rid}", tags=["rounds"], response_model=S.RoundOut)
    def get_round(rid: Id, who: Who) -> S.RoundOut:
        """Status (pending/running/cleared/failed/unverified), progress in [0, 1], error; outcome and
        certificate for the operator."""
        with db.read() as s:
            return round_out(get_or_404(s, Round, rid, "round"), who)

    @app.post("/rounds/{rid}/retry", tags=["rounds"], status_code=202, response_model=S.RoundOut)
    def retry(rid: Id, who: Admin) -> S.RoundOut:
        """Run a failed round again on the same inputs (409 unless it failed, its inputs are all still
        unconsumed and no other round of the market is in progress)."""
        try:
            with db.write() as s:
                r = get_or_404(s, Round, rid, "round")
                # lock the market row (as opening and booking do), then check with fresh reads
                s.execute(select(Market.id).where(Market.id == r.market_id).with_for_update())
                used = s.execute(
                    select(Submission.id).where(
                        Submission.id.in_(list(r.input_ids)),
                        or_(Submission.consumed_round_id.is_not(None), Submission.excluded_at.is_not(None)),
                    )
                ).first()
                if used is not None:
                    raise HTTPException(409, f"submission {used[0]} was used by another round or excluded")
                moved = s.execute(  # compare-and-set: only one of concurrent retries matches
                    update(Round)
                    .where(Round.id == rid, Round.status == "failed")
                    .values(
                        status="pending",
                        progress=0.0,
                        stage="retry",
                        error=None,
                        claimed_by=None,
                        lease_expires_at=None,
                        lease_expiries=0,
                        updated_at=utcnow(),
                    )
                )
                if rowcount(moved) != 1:
                    s.refresh(r)
                    raise HTTPException(409, f"round {rid} is {r.status}; only a failed round can be retried")
                s.refresh(r)
                out = round_out(r, who)
        except IntegrityError:  # uq_round_active: another round of the market is in progress
            raise HTTPException(409, f"another round of round {rid}'s market is in progress") from None
        st.runner.submit(rid)
        return out

    def receipt(s: Session, r: Round, p: Participant) -> S.ReceiptOut:
        # ledger format 2: every hashed field of the participant's entries, the round's currency and the
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
            seed=r.seed,
            seed_salt=r.seed_salt,
            seed_commit=r.seed_commit,
            seed_source=r.seed_source,  # type: ignore[arg-type]
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
        check_owner(who, pid, "participant", pid)
        with db.read() as s:
            p = get_or_404(s, Participant, pid, "participant")
            return receipt(s, cleared_round(s, rid), p)

    @app.get("/rounds/{rid}/models/{pid}", tags=["receipts"], response_model=S.ModelOut)
    def get_model(rid: Id, pid: Id, who: Who) -> S.ModelOut:
        """What a participant received from the round (model, estimate, gain)."""
        check_owner(who, pid, "participant", pid)
        with db.read() as s:
            cleared_round(s, rid)
            d = s.execute(
                select(Deliverable).where(Deliverable.round_id == rid, Deliverable.participant_id == pid)
            ).scalar_one_or_none()
            if d is None:
                raise HTTPException(404, f"participant {pid} received nothing in round {rid}")
            return S.ModelOut(round_id=rid, participant_id=pid, deliverable=d.payload)
