"""Routes: participants' submissions (JSON inputs and dataset uploads) and reading them back."""

import hashlib
import json
from collections.abc import Callable
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datamarket.ledger.models import Market, Participant, Round, Submission, utcnow
from datamarket.service import schemas as S
from datamarket.service.adapters import Input, require_kind
from datamarket.service.auth import Principal
from datamarket.service.deps import (
    Admin,
    Id,
    IdemKey,
    ParticipantOnly,
    ServiceState,
    Who,
    check_owner,
    get_or_404,
    idem_hash,
)
from datamarket.service.rounds import load_inputs, rowcount
from datamarket.service.uploads import dataset_summary, detect_format, pack_dataset, parse_dataset


def install(app: FastAPI, st: ServiceState) -> None:
    """Add the routes of this module to ``app``."""
    db = st.db

    # submissions
    def sub_out(x: Submission) -> S.SubmissionOut:
        return S.SubmissionOut(
            id=x.id,
            market_id=x.market_id,
            participant_id=x.participant_id,
            kind=x.kind,
            payload={k: v for k, v in (x.payload or {}).items() if k != "_request"},
            content_hash=x.content_hash,
            size_bytes=x.size_bytes,
            media_type=x.media_type,
            filename=x.filename,
            consumed_round_id=x.consumed_round_id,
            excluded_at=x.excluded_at,
            excluded_reason=x.excluded_reason,
            created_at=x.created_at,
        )

    def fits(s: Session, who: Principal, mid: int, m: Market, new: Input) -> None:
        """The adapter's check of ``new`` against the caller's unconsumed inputs in the market, under a
        lock of the participant's row (so that two concurrent submissions see each other)."""
        check = getattr(st.adapters[m.kind], "check_submission", None)
        if check is None:
            return
        s.execute(select(Participant.id).where(Participant.id == who.participant_id).with_for_update())
        mine = s.execute(
            select(Submission.id).where(
                Submission.market_id == mid,
                Submission.participant_id == who.participant_id,
                Submission.consumed_round_id.is_(None),
                Submission.excluded_at.is_(None),
            )
        ).scalars()
        check(m.params, load_inputs(s, list(mine), st.limits, datasets=False), new)

    def store_submission(
        who: Principal,
        mid: int,
        key: str | None,
        request_hash: str,
        make: Callable[[], Submission],
        new: Input,
    ) -> Response:
        def replay(s: Session) -> Response | None:
            if key is None:
                return None
            old = s.execute(
                select(Submission).where(
                    Submission.participant_id == who.participant_id, Submission.idempotency_key == key
                )
            ).scalar_one_or_none()
            if old is None:
                return None
            if (old.payload or {}).get("_request") != request_hash:
                raise HTTPException(409, "Idempotency-Key already used with a different request")
            return JSONResponse(sub_out(old).model_dump(mode="json"), status_code=200)

        try:
            with db.write() as s:
                m = get_or_404(s, Market, mid, "market")
                again = replay(s)
                if again is not None:
                    return again
                fits(s, who, mid, m, new)
                sub = make()
                s.add(sub)
                s.flush()
                body = sub_out(sub).model_dump(mode="json")
        except IntegrityError:  # a concurrent request with the same key won the race
            with db.read() as s:
                again = replay(s)
            if again is None:
                raise
            return again
        return JSONResponse(body, status_code=201)

    @app.post(
        "/markets/{mid}/submissions",
        tags=["submissions"],
        status_code=201,
        response_model=S.SubmissionOut,
        responses={200: {"model": S.SubmissionOut, "description": "idempotent replay"}},
    )
    def submit(
        mid: Id,
        body: S.SubmissionIn,
        who: ParticipantOnly,
        idempotency_key: IdemKey = None,
    ) -> Response:
        """Submit a bid, reported cost, task... (JSON); the market's adapter validates ``data``."""
        with db.read() as s:
            m = get_or_404(s, Market, mid, "market")
        adapter = st.adapters[m.kind]
        require_kind(adapter, body.kind, has_dataset=False)
        data = adapter.validate_submission(m.params, body.kind, body.data, None)
        rh = idem_hash("json", mid, body.kind, data)
        content = json.dumps(data, sort_keys=True).encode()
        return store_submission(
            who,
            mid,
            idempotency_key,
            rh,
            lambda: Submission(
                market_id=mid,
                participant_id=who.participant_id,
                kind=body.kind,
                payload={"data": data, "_request": rh},
                content_hash=hashlib.sha256(content).hexdigest(),
                size_bytes=len(content),
                idempotency_key=idempotency_key,
            ),
            Input(who.name or "", body.kind, data),
        )

    @app.post(
        "/markets/{mid}/datasets",
        tags=["submissions"],
        status_code=201,
        response_model=S.SubmissionOut,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
                    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def upload(
        mid: Id,
        request: Request,
        who: ParticipantOnly,
        kind: Annotated[
            str, Query(max_length=30, pattern=S.PRINTABLE, description="submission kind (see /kinds)")
        ] = "dataset",
        format: Annotated[str | None, Query(max_length=10, description="csv, npz or parquet")] = None,
        filename: Annotated[str | None, Query(max_length=255, pattern=S.PRINTABLE)] = None,
        label_column: Annotated[str, Query(max_length=100, pattern=S.PRINTABLE)] = "label",
        group_column: Annotated[str, Query(max_length=100, pattern=S.PRINTABLE)] = "group",
        idempotency_key: IdemKey = None,
    ) -> Response:
        """Upload a dataset (request body: the file); 413 beyond the size limit, 422 if malformed."""
        from starlette.concurrency import run_in_threadpool

        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > st.limits.max_bytes:
                raise HTTPException(413, f"upload exceeds the limit of {st.limits.max_bytes} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
        fmt = detect_format(format, request.headers.get("content-type"), filename)
        media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip()[:100] or None

        def work() -> Response:
            with db.read() as s:
                m = get_or_404(s, Market, mid, "market")
            adapter = st.adapters[m.kind]
            require_kind(adapter, kind, has_dataset=True)
            ds = parse_dataset(
                data, fmt, label_column=label_column, group_column=group_column, limits=st.limits
            )
            extra = adapter.validate_submission(m.params, kind, {}, ds)
            parsed = pack_dataset(ds)  # outside the write transaction, like every computation
            digest = hashlib.sha256(data).hexdigest()
            rh = idem_hash(kind, mid, digest, fmt, label_column, group_column)
            payload = {
                "format": fmt,
                "label_column": label_column,
                "group_column": group_column,
                **dataset_summary(ds),
                **extra,
                "_request": rh,
            }
            return store_submission(
                who,
                mid,
                idempotency_key,
                rh,
                lambda: Submission(
                    market_id=mid,
                    participant_id=who.participant_id,
                    kind=kind,
                    payload=payload,
                    blob=data,
                    parsed=parsed,
                    media_type=media_type,
                    filename=filename,
                    content_hash=digest,
                    size_bytes=len(data),
                    idempotency_key=idempotency_key,
                ),
                Input(who.name or "", kind, payload),
            )

        return await run_in_threadpool(work)

    @app.get("/markets/{mid}/submissions", tags=["submissions"], response_model=list[S.SubmissionOut])
    def list_submissions(mid: Id, who: Who) -> list[S.SubmissionOut]:
        """The operator sees every submission of the market, a participant its own."""
        with db.read() as s:
            get_or_404(s, Market, mid, "market")
            q = select(Submission).where(Submission.market_id == mid).order_by(Submission.id)
            if not who.is_admin:
                q = q.where(Submission.participant_id == who.participant_id)
            return [sub_out(x) for x in s.execute(q).scalars()]

    @app.get("/submissions/{sid}", tags=["submissions"], response_model=S.SubmissionOut)
    def get_submission(sid: Id, who: Who) -> S.SubmissionOut:
        """One submission's metadata (its owner or the operator)."""
        with db.read() as s:
            x = get_or_404(s, Submission, sid, "submission")
            check_owner(who, x.participant_id, "submission", sid)
            return sub_out(x)

    @app.get("/submissions/{sid}/content", tags=["submissions"], response_class=Response)
    def get_content(sid: Id, who: Who) -> Response:
        """The stored bytes of a submission (its owner or the operator)."""
        with db.read() as s:
            x = get_or_404(s, Submission, sid, "submission")
            check_owner(who, x.participant_id, "submission", sid)
            if x.blob is None:
                return Response(json.dumps(x.payload.get("data", {})), media_type="application/json")
            return Response(x.blob, media_type=x.media_type or "application/octet-stream")

    def exclude(who: Principal, sid: int, reason: str) -> S.SubmissionOut:
        with db.write() as s:
            x = get_or_404(s, Submission, sid, "submission")
            check_owner(who, x.participant_id, "submission", sid)
            # serialise with the opening of rounds (which lock the market row too)
            s.execute(select(Market.id).where(Market.id == x.market_id).with_for_update())
            for rid, ids in s.execute(
                select(Round.id, Round.input_ids).where(
                    Round.market_id == x.market_id, Round.status.in_(("pending", "running"))
                )
            ):
                if sid in ids:
                    raise HTTPException(409, f"submission {sid} is an input of round {rid}, in progress")
            moved = s.execute(
                update(Submission)
                .where(
                    Submission.id == sid,
                    Submission.consumed_round_id.is_(None),
                    Submission.excluded_at.is_(None),
                )
                .values(excluded_at=utcnow(), excluded_reason=reason)
            )
            if rowcount(moved) != 1:
                s.refresh(x)
                state = (
                    f"consumed by round {x.consumed_round_id}"
                    if x.consumed_round_id is not None
                    else f"already excluded ({x.excluded_reason})"
                )
                raise HTTPException(409, f"submission {sid} is {state}")
            s.refresh(x)
            return sub_out(x)

    @app.post("/submissions/{sid}/exclude", tags=["submissions"], response_model=S.SubmissionOut)
    def exclude_submission(sid: Id, body: S.ExcludeIn, who: Admin) -> S.SubmissionOut:
        """Exclude an unconsumed submission from every future round, recording why (operator only);
        409 when it is consumed, already excluded, or an input of the round in progress."""
        return exclude(who, sid, f"excluded by the operator: {body.reason}")

    @app.post("/submissions/{sid}/withdraw", tags=["submissions"], response_model=S.SubmissionOut)
    def withdraw_submission(sid: Id, who: ParticipantOnly) -> S.SubmissionOut:
        """Withdraw one of your unconsumed submissions (409 when consumed or in a round in progress)."""
        return exclude(who, sid, "withdrawn by its owner")
