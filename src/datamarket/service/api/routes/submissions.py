"""Routes of submissions: JSON inputs and dataset uploads (idempotent with an ``Idempotency-Key``),
reading them back, exclusion by the operator and withdrawal by the owner."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Admin, Id, IdemKey, ParticipantOnly, State, Who
from datamarket.service.api.paging import Page, paged
from datamarket.service.clearing.runner import after_submission
from datamarket.service.store import submissions as store
from datamarket.service.uploads.names import MAX_COLUMN_NAME, MAX_FILENAME, NAME_PATTERN

router = APIRouter(tags=["submissions"])
REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"model": S.SubmissionOut, "description": "idempotent replay"}
}
# What JSON Schema can say of a file: a one-column numeric CSV (a header, then 1 to 20 plain decimal
# numbers) reads as a dataset; NPZ and Parquet files are bytes no schema describes. Any file the upload
# route reads may still be refused by the market (409: its kind takes other columns, the participant's
# earlier inputs); a file that does not read is 422.
CSV_BODY = {
    "type": "string",
    "pattern": r"^x[0-9]{0,3}(\r?\n-?[0-9]{1,6}(\.[0-9]{1,6})?){1,20}\r?\n?$",
    "description": "a CSV file: a header row naming every column once, then rows of plain decimal numbers "
    "(the pattern is the simplest such file: one feature column)",
}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": CSV_BODY},
            "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
ColumnName = Annotated[str, Query(max_length=MAX_COLUMN_NAME, pattern=NAME_PATTERN)]


def stored(view: dict[str, Any], created: bool) -> JSONResponse:
    """201 with a new submission, 200 with the replay of an earlier one."""
    return JSONResponse(S.SubmissionOut(**view).model_dump(mode="json"), status_code=201 if created else 200)


@router.post("/markets/{mid}/submissions", status_code=201, response_model=S.SubmissionOut, responses=REPLAY)
def submit(
    mid: Id, body: S.SubmissionIn, who: ParticipantOnly, st: State, idempotency_key: IdemKey = None
) -> Response:
    """Submit a bid, reported cost, task... (JSON); the market's adapter validates ``data``. A kind the
    market answers at once (the real-time market's bid) is answered in ``payload.answer``, and a round
    is opened to book it (or the next one books it, when a round is in progress)."""
    view, created = store.submit_json(
        st.db, st.adapters, st.limits, who, mid, body.kind, body.data, idempotency_key
    )
    after_submission(st.runner, st.adapters, view, created)
    return stored(view, created)


BUSY: dict[int | str, dict[str, Any]] = {
    503: {
        "model": S.ErrorOut,
        "description": "as many uploads parsing as the server's memory budget admits: nothing stored, "
        "retry after the Retry-After seconds",
        "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
    }
}


@router.post(
    "/markets/{mid}/datasets",
    status_code=201,
    response_model=S.SubmissionOut,
    openapi_extra=UPLOAD_BODY,
    responses=BUSY,
)
async def upload(
    mid: Id,
    request: Request,
    who: ParticipantOnly,
    st: State,
    kind: Annotated[
        str, Query(max_length=30, pattern=S.PRINTABLE, description="submission kind (see /kinds)")
    ] = "dataset",
    format: Annotated[str | None, Query(max_length=10, include_in_schema=False)] = None,
    filename: Annotated[str | None, Query(max_length=MAX_FILENAME, pattern=NAME_PATTERN)] = None,
    label_column: ColumnName = "label",
    group_column: ColumnName = "group",
    idempotency_key: IdemKey = None,
) -> Response:
    """Upload a dataset (request body: the file, its format named by the Content-Type: ``text/csv``,
    ``application/x-npz``, ``application/vnd.apache.parquet``; or by the file name's suffix; an
    undocumented ``?format=csv|npz|parquet`` overrides both); 413 beyond the size limit, 422 if the
    file does not read or ``filename`` is too long or holds a control character, 409 for a file that
    reads but this market does not take (its kind wants other columns, another submission kind, the
    participant's earlier inputs exclude it, or the plan asks for another number of rows: "the plan
    asks you for k points; this file has n"); a new upload of a kind replaces the participant's
    earlier waiting one (``superseded_by``), 503 with ``Retry-After`` while the server parses as
    many uploads as its memory budget admits. The parse runs in a worker thread."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        store.check_size(size, st.limits)
        chunks.append(chunk)
    up = store.Upload(
        b"".join(chunks),
        kind,
        format,
        request.headers.get("content-type"),
        filename,
        label_column,
        group_column,
    )
    view, created = await run_in_threadpool(
        store.upload_dataset, st.db, st.adapters, st.limits, who, mid, up, idempotency_key
    )
    return stored(view, created)


@router.get("/markets/{mid}/submissions", response_model=list[S.SubmissionOut])
def list_submissions(
    mid: Id, who: Who, st: State, page: Page, request: Request, response: Response
) -> list[S.SubmissionOut]:
    """The operator sees every submission of the market, a participant its own; a page at a time
    (``after``, ``limit``; ``Link: rel="next"`` while more follow)."""
    rows = store.list_submissions(st.db, who, mid, page.after, page.limit)
    return [S.SubmissionOut(**x) for x in paged(rows, page, request, response)]


@router.get("/submissions/{sid}", response_model=S.SubmissionOut)
def get_submission(sid: Id, who: Who, st: State) -> S.SubmissionOut:
    """One submission's metadata (its owner or the operator)."""
    return S.SubmissionOut(**store.get_submission(st.db, who, sid))


@router.get("/submissions/{sid}/content", response_class=Response)
def get_content(sid: Id, who: Who, st: State) -> Response:
    """The stored bytes of a submission (its owner or the operator)."""
    body, media_type = store.content(st.db, who, sid)
    return Response(body, media_type=media_type)


@router.post("/submissions/{sid}/exclude", response_model=S.SubmissionOut)
def exclude_submission(sid: Id, body: S.ExcludeIn, who: Admin, st: State) -> S.SubmissionOut:
    """Exclude an unconsumed submission from every future round, recording why (operator only);
    409 when it is consumed, already excluded, or an input of the round in progress."""
    return S.SubmissionOut(**store.exclude_by_operator(st.db, who, sid, body.reason))


@router.post("/submissions/{sid}/withdraw", response_model=S.SubmissionOut)
def withdraw_submission(sid: Id, who: ParticipantOnly, st: State) -> S.SubmissionOut:
    """Withdraw one of your unconsumed submissions (409 when consumed or in a round in progress)."""
    return S.SubmissionOut(**store.withdraw(st.db, who, sid))
