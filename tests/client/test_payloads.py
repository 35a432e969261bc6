"""What the client sends reads back, in the service's own parser, as what the participant held: datasets
from paths, bytes, DataFrames and arrays in every format, labels and groups included; submissions from
the input models of the scenario files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datamarket.client.payloads import encode_dataset, submission_body
from datamarket.scenarios.inputs import broker, competing_buyers
from datamarket.service.uploads import UploadLimits
from datamarket.service.uploads.formats import detect_format
from datamarket.service.uploads.parse import parse_dataset

RNG = np.random.default_rng(0)
X = RNG.normal(size=(7, 3)) * 10 ** RNG.uniform(-8, 8, size=(7, 3))  # floats of every magnitude
Y = np.arange(7) % 2
G = (np.arange(7) // 2) % 3


def read(enc, label_column="label", group_column="group"):  # type: ignore[no-untyped-def]
    """The dataset the service reads from an encoded upload (the format from its Content-Type)."""
    fmt = detect_format(None, enc.media_type, None)
    return parse_dataset(
        enc.content, fmt, label_column=label_column, group_column=group_column, limits=UploadLimits()
    )


@pytest.mark.parametrize("fmt", ["npz", "csv"])
def test_an_array_with_labels_and_groups_reads_back_exactly(fmt: str) -> None:
    ds = read(encode_dataset(X, labels=Y, groups=G, format=fmt))
    assert np.array_equal(ds.features, X) and np.array_equal(ds.labels, Y) and np.array_equal(ds.groups, G)
    one = read(encode_dataset(X[:, 0], format=fmt))  # a 1-d array is one feature
    assert one.features.shape == (7, 1) and one.labels is None


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz"])
def test_a_dataframe_reads_back_exactly(fmt: str) -> None:
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=Y)
    enc = encode_dataset(frame, groups=G, format=fmt, label_column="y")
    ds = read(enc, label_column="y")
    assert np.array_equal(ds.features, X) and np.array_equal(ds.labels, Y) and np.array_equal(ds.groups, G)
    with pytest.raises(ValueError, match="already has"):
        encode_dataset(frame, labels=Y, label_column="y")


def test_paths_and_bytes_keep_their_format_and_name(tmp_path: Path) -> None:
    path = tmp_path / "points.CSV"
    path.write_bytes(b"x0,label\n1.5,0\n2.5,1\n")
    enc = encode_dataset(path)
    assert (enc.format, enc.filename, enc.media_type) == ("csv", "points.CSV", "text/csv")
    assert read(enc).features.tolist() == [[1.5], [2.5]]
    assert encode_dataset(path.read_bytes(), filename="p.csv").format == "csv"
    for unknown in (b"x0\n1\n", tmp_path / "points.txt"):
        with pytest.raises(ValueError, match="format"):
            encode_dataset(unknown)
    with pytest.raises(ValueError, match="format must be"):
        encode_dataset(X, format="xlsx")


def test_submissions_from_models_rows_and_dicts() -> None:
    bid = broker.Bid(valuation="threshold", width=0.4, scale=0.9)
    assert submission_body(bid) == {"kind": "bid", "data": bid.model_dump(mode="json")}

    class Row(broker.Cost):  # a scenario's participant row: the submission model plus a name
        name: str

    assert submission_body(Row(cost=0.05, name="x")) == {"kind": "cost", "data": {"cost": 0.05}}
    src = competing_buyers.Source(location=1.0)
    assert submission_body(src)["kind"] == "source"
    assert submission_body({"fee_scale": 1.0}, "fee_scale") == {
        "kind": "fee_scale",
        "data": {"fee_scale": 1.0},
    }
    with pytest.raises(TypeError, match="kind"):
        submission_body({"cost": 1.0})
    with pytest.raises(TypeError, match="not a submission model"):
        submission_body(broker.Params())
