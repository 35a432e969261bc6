"""``datamarket ledger verify|export|dump --url`` read a running service through
:class:`datamarket.client.Client` (SQLite and PostgreSQL): the operator's export is checked on the
caller's machine exactly as ``--file`` checks one; a participant's ``--receipt`` is checked on its
own and against the service's ledger; a wrong key, an unreachable service or two sources at once are
clear errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from datamarket.cli import app as cli_app
from datamarket.client import Client
from tests import service_support
from tests.client.drive import broker_market
from tests.service_support import ADMIN, LiveServer

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args), env={"DATAMARKET_URL": "", "DATAMARKET_API_KEY": ""})
    return result.exit_code, result.output


def test_the_ledger_commands_read_a_running_service(live: LiveServer, tmp_path: Path) -> None:
    with Client(live.url, ADMIN) as op:
        market, clients = broker_market(op, tmp_path)
        done = op.wait(op.open_round(market, seed=5), timeout=120)
        assert done.status == "cleared", done.error
        exported = op.export_ledger()
        entries = op.ledger_entries()
        buyer = clients["buyer_a"]
        receipt = tmp_path / "receipt.json"
        receipt.write_text(buyer.get_receipt(done).model_dump_json())
        buyer_key = buyer._api_key  # the key it was registered with (drive.join)

    code, out = cli("ledger", "verify", "--url", live.url, "--key", ADMIN, "--receipt", str(receipt))
    assert code == 0 and "ledger OK" in out and f"{len(entries['entries'])} entries" in out, out
    code, out = cli("ledger", "export", "--url", live.url, "--key", ADMIN)
    assert code == 0 and out == exported
    code, out = cli("ledger", "dump", "--url", live.url, "--key", ADMIN)
    assert code == 0 and json.loads(out) == entries

    code, out = cli("ledger", "verify", "--url", live.url, "--key", buyer_key, "--receipt", str(receipt))
    assert code == 0 and "OK (entries and proofs hold)" in out, out
    forged = json.loads(receipt.read_text())
    forged["checkpoint"]["hash"] = "0" * 64  # a head the service's ledger never had
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(forged))
    code, out = cli("ledger", "verify", "--url", live.url, "--key", buyer_key, "--receipt", str(bad))
    assert code == 1 and "FAILED" in out and "service:" in out, out  # the service's answer, not ours

    code, out = cli("ledger", "export", "--url", live.url, "--key", buyer_key)  # the operator's route
    assert code == 2 and ("403" in out or "operator" in out), out
    code, out = cli("ledger", "dump", "--url", live.url, "--key", "not-a-key")
    assert code == 2 and ("401" in out or "invalid API key" in out), out
    code, out = cli("ledger", "export", "--url", live.url)
    assert code == 2 and "API key" in out, out
    code, out = cli("ledger", "verify", "--url", live.url, "--key", ADMIN, "--db", "sqlite:///x.db")
    assert code == 2 and "one of --db, --file and --url" in out, out


def test_an_unreachable_service_is_a_clear_error() -> None:
    code, out = cli("ledger", "dump", "--url", "http://127.0.0.1:9", "--key", ADMIN)
    assert code == 2 and "127.0.0.1:9" in out and "Traceback" not in out, out
