"""The parsed form stored with each upload (an uncompressed NPZ), and its summary in the metadata."""

from __future__ import annotations

import io

import numpy as np

from datamarket.core.types import Dataset
from datamarket.service.uploads.npz_reader import NPZ_ARRAYS


def pack_dataset(ds: Dataset) -> bytes:
    """The parsed form stored with an upload: an uncompressed NPZ of the validated arrays."""
    buf = io.BytesIO()
    arrays = (ds.features, ds.labels, ds.groups)
    np.savez(buf, **{k: v for k, v in zip(NPZ_ARRAYS, arrays, strict=True) if v is not None})  # type: ignore[arg-type]
    return buf.getvalue()


def unpack_dataset(data: bytes) -> Dataset:
    """The dataset :func:`pack_dataset` stored (no parsing: the arrays are read back as they are).

    >>> from datamarket.service.uploads import UploadLimits, parse_dataset
    >>> d = parse_dataset(b"x,label\\n1,0\\n2,1\\n", "csv", limits=UploadLimits())
    >>> unpack_dataset(pack_dataset(d)).features.tolist()
    [[1.0], [2.0]]
    """
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return Dataset(npz["features"], npz.get("labels"), npz.get("groups"))


def dataset_summary(ds: Dataset) -> dict[str, int | list[float]]:
    """Shape and label set of a dataset, stored as submission metadata."""
    out: dict[str, int | list[float]] = {"n_samples": ds.n_samples, "n_features": ds.n_features}
    if ds.labels is not None:
        out["labels"] = sorted({float(v) for v in np.asarray(ds.labels, dtype=float)})[:50]
    return out
