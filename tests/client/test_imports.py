"""The client needs no server stack: importing it, and verifying a receipt with it, imports nothing of
FastAPI, Starlette, uvicorn, SQLAlchemy, Alembic or psycopg (``pip install 'datamarket[client]'``
installs none of them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from datamarket.client import Client
from tests.client.drive import broker_market
from tests.service_support import ADMIN, LiveServer, make_app

SERVER_STACK = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "jinja2")
CHECK = """
import json, sys
from datamarket.client import Client, verify_receipt, receipt_problems
receipt = json.load(open(sys.argv[1]))
verify_receipt(receipt)
receipt["entries"][0]["salt"] = "0" * 64
assert receipt_problems(receipt), "a changed salt must be found"
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))))
"""


def test_verifying_a_receipt_imports_no_server_stack(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/ledger.db")  # a receipt is the same JSON on every database
    with LiveServer(app) as srv, Client(srv.url, ADMIN) as op:
        market, cl = broker_market(op, tmp_path)
        done = op.wait(op.open_round(market, seed=2))
        kept = tmp_path / "receipt.json"
        kept.write_text(cl["seller_x"].get_receipt(done).model_dump_json())
    assert json.loads(kept.read_text())["entries"]
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(kept), *SERVER_STACK], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
