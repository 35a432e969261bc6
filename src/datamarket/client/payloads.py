"""What the client sends: a submission's JSON from an input model, a dataset's bytes from what you have.

**Submissions.** A market's JSON inputs are described once, by the pydantic models of
:mod:`datamarket.scenarios.inputs` (``inputs.broker.Bid``, ``inputs.truthful_payments.Task``...): the
service validates ``data`` with them and scenario files use them. :func:`submission_body` takes such a
model (its submission kind is found in its module's ``SUBMISSIONS`` table; a scenario's participant
row, which extends the model with a name, sends only the model's fields) or a plain dict with its
``kind``.

**Datasets.** :func:`encode_dataset` turns what a participant holds into an upload body:

=======================  ==========================================================================
a path (``str``/Path)    the file's bytes; format from ``format`` or the suffix (.csv, .npz, .parquet)
``bytes``                as they are; ``format`` (or a ``filename`` with a suffix) names the format
a pandas ``DataFrame``   CSV (or Parquet with ``format="parquet"``, which needs pyarrow); its
                         ``label_column`` and ``group_column`` columns are the labels and groups
a numpy array            NPZ: ``features`` (a 1-d array is one feature), with ``labels`` and
                         ``groups`` when given (or CSV with ``format="csv"``: columns x0, x1...)
=======================  ==========================================================================

``labels`` and ``groups`` (arrays, one value a row) go with an array or a DataFrame; the upload's
Content-Type names the format (``text/csv``, ``application/x-npz``, ``application/vnd.apache.parquet``),
as the API documents. Floats are written exactly (CSV by the shortest repr that reads back equal).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

MEDIA_TYPES = {
    "csv": "text/csv",
    "npz": "application/x-npz",
    "parquet": "application/vnd.apache.parquet",
}
SUFFIXES = {".csv": "csv", ".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}


def plain(value: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    """A model's fields as JSON data (its mode ``json`` dump), or a mapping as a dict."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return dict(value)


def submission_kind(model: BaseModel) -> tuple[str, type[BaseModel]]:
    """The submission kind of ``model`` and the input model it is (``model``'s class or the nearest
    base listed in a ``SUBMISSIONS`` table of :mod:`datamarket.scenarios.inputs`)."""
    for cls in type(model).__mro__:
        table = getattr(sys.modules.get(cls.__module__), "SUBMISSIONS", None)
        if isinstance(table, Mapping):
            for kind, listed in table.items():
                if listed is cls:
                    return str(kind), cls
    raise TypeError(
        f"{type(model).__name__} is not a submission model of datamarket.scenarios.inputs: pass kind="
    )


def submission_body(data: BaseModel | Mapping[str, Any], kind: str | None = None) -> dict[str, Any]:
    """The JSON body of ``POST /markets/{mid}/submissions``: ``{"kind", "data"}``.

    >>> from datamarket.scenarios.inputs.broker import Bid
    >>> submission_body(Bid(valuation="gaussian", width=0.5))
    {'kind': 'bid', 'data': {'valuation': 'gaussian', 'width': 0.5, 'scale': 1.0}}
    >>> submission_body({"cost": 0.05}, "cost")
    {'kind': 'cost', 'data': {'cost': 0.05}}
    """
    if isinstance(data, BaseModel):
        found, cls = submission_kind(data)
        fields = data.model_dump(mode="json", include=set(cls.model_fields))
        return {"kind": kind or found, "data": fields}
    if kind is None:
        raise TypeError("a dict submission needs its kind (see the market's /kinds)")
    return {"kind": kind, "data": dict(data)}


@dataclass(frozen=True)
class Encoded:
    """An upload body: ``content``, its ``format`` (csv, npz, parquet) and ``filename`` (or None)."""

    content: bytes
    format: str
    filename: str | None = None

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def encode_dataset(
    data: Any,
    *,
    labels: Any = None,
    groups: Any = None,
    format: str | None = None,
    filename: str | None = None,
    label_column: str = "label",
    group_column: str = "group",
) -> Encoded:
    """The upload body of ``data`` (module docstring); ``ValueError`` when its format is unknown."""
    if format is not None and format not in MEDIA_TYPES:
        raise ValueError(f"format must be one of {', '.join(MEDIA_TYPES)}, not {format!r}")
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        fmt = _known(format or SUFFIXES.get(path.suffix.lower()), path.name)
        return Encoded(path.read_bytes(), fmt, filename or path.name)
    if isinstance(data, bytes | bytearray | memoryview):
        named = SUFFIXES.get(Path(filename).suffix.lower()) if filename else None
        return Encoded(bytes(data), _known(format or named, "bytes"), filename)
    columns = (label_column, group_column)
    if _is_frame(data):
        frame = _with_columns(data, {label_column: labels, group_column: groups})
        return _frame_upload(frame, format or "csv", columns, filename)
    return _array_upload(np.asarray(data), labels, groups, format or "npz", columns, filename)


def _known(fmt: str | None, what: str) -> str:
    if fmt is None:
        raise ValueError(f"cannot tell the format of {what}: pass format='csv', 'npz' or 'parquet'")
    return fmt


def _is_frame(data: Any) -> bool:
    return hasattr(data, "columns") and hasattr(data, "to_csv")


def _with_columns(frame: Any, extra: Mapping[str, Any]) -> Any:
    """``frame`` with the label and group arrays given added as columns (never overwriting one)."""
    given = {name: values for name, values in extra.items() if values is not None}
    clash = [name for name in given if name in frame.columns]
    if clash:
        raise ValueError(f"the DataFrame already has column(s) {clash}: pass labels/groups or the column")
    return frame.assign(**{name: np.asarray(v) for name, v in given.items()}) if given else frame


def _frame_upload(frame: Any, fmt: str, columns: tuple[str, str], filename: str | None) -> Encoded:
    """A DataFrame's upload: CSV or Parquet as it is, NPZ with its label and group columns apart."""
    if fmt == "csv":
        return Encoded(str(frame.to_csv(index=False)).encode(), fmt, filename)
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return Encoded(buf.getvalue(), fmt, filename)
    label, group = (frame[c].to_numpy() if c in frame.columns else None for c in columns)
    features = frame.drop(columns=[c for c in columns if c in frame.columns]).to_numpy(dtype=float)
    return _array_upload(features, label, group, fmt, columns, filename)


def _array_upload(
    x: np.ndarray, labels: Any, groups: Any, fmt: str, columns: tuple[str, str], filename: str | None
) -> Encoded:
    """An array's upload: NPZ (``features``, ``labels``, ``groups``) or CSV (x0.., then the label and
    group columns under the names ``columns``)."""
    features = x.reshape(-1, 1) if x.ndim == 1 else x
    if features.ndim != 2:
        raise ValueError(f"features must be a 1-d or 2-d array, not {x.ndim}-d")
    extra = {k: np.asarray(v) for k, v in (("labels", labels), ("groups", groups)) if v is not None}
    if fmt == "npz":
        buf = io.BytesIO()
        arrays: dict[str, Any] = {"features": features.astype(float), **extra}
        np.savez(buf, **arrays)
        return Encoded(buf.getvalue(), "npz", filename)
    if fmt != "csv":
        raise ValueError("an array is uploaded as npz or csv")
    named = dict(zip(("labels", "groups"), columns, strict=True))
    names = [f"x{j}" for j in range(features.shape[1])] + [named[k] for k in extra]
    cols = [features.astype(float)] + [v.reshape(-1, 1).astype(float) for v in extra.values()]
    rows = np.hstack(cols)
    lines = [",".join(names)] + [",".join(repr(float(v)) for v in row) for row in rows]
    return Encoded(("\n".join(lines) + "\n").encode(), "csv", filename)
