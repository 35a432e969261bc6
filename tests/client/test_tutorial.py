"""The client tutorial (docs/tutorials/client.ipynb) runs, cell by cell in a Jupyter kernel (nbclient),
against a fresh ``datamarket serve`` process, so it cannot rot; its committed outputs come from such a
run and carry no error and no key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests import service_support
from tests.service_support import ADMIN, Serve

db_url = service_support.db_url  # the shared fixture
NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorials" / "client.ipynb"


def text_of(nb: Any) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.get("output_type") != "error", o
            out.append(o.get("text", "") or str(o.get("data", {}).get("text/plain", "")))
    return "".join(out)


def check_outputs(text: str) -> None:
    assert text.count("verified offline") == 3  # the buyer and the two contributors
    assert "the lab asks for a sensor's receipt: 404" in text
    assert re.search(r"round \d+: cleared, certificate passed: True", text)
    assert "altered" in text and "the lab's checkpoint holds: True" in text
    assert "the operator verifies the ledger: ok=True" in text


@pytest.mark.slow  # a service process and a Jupyter kernel: ~15 s
def test_the_tutorial_runs_against_datamarket_serve(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Serve(db_url, tmp_path / "serve.log", ["--executor", "thread"]).up()
    try:
        monkeypatch.setenv("DATAMARKET_URL", server.url)  # read by the notebook's first cell
        monkeypatch.setenv("DATAMARKET_ADMIN_KEY", ADMIN)
        nb = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        server.stop()
    check_outputs(text_of(nb))


def test_the_committed_outputs_are_a_clean_run() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    check_outputs(text_of(nb))
    assert ADMIN not in NOTEBOOK.read_text() and "dm_" not in text_of(nb)  # no key is ever shown
