"""The service part of ``datamarket demo``: two rounds driven through the HTTP API, in-process.

Starts the app (:func:`~datamarket.service.app.create_app` with
:class:`~datamarket.service.config.ServiceSettings`) under uvicorn on 127.0.0.1 (a free port,
a background thread) against a temporary SQLite file, then, as an operator and several participants
talking HTTP, each with its own :class:`~datamarket.client.Client`:

1. a **broker** market (Chen et al.): two buyers bid, two contributors report costs, read the plan
   (``N*_i``), upload their points as CSV; the operator clears a round;
2. a **collaborative** market (Ohrimenko et al.): three parties upload training data (CSV), one uploads the
   shared validation task; the operator clears a round;

follows each round until it is cleared (``Client.wait``), collects every receipt, verifies the
hash-chained ledger and checks each round sums to zero minor units. Amounts in the report are
written by the service's formatter (:class:`~datamarket.core.display.Formatter`,
``ServiceSettings.display``) with each market's currency. Nothing persists: the temporary directory
is removed, also when ``datamarket demo --serve`` is stopped by Ctrl-C or SIGTERM (the CLI turns both
into :class:`KeyboardInterrupt`, which unwinds the server and the directory). Clearing runs on a
thread pool here (``executor="thread"``) to keep the demo short; ``datamarket serve`` uses worker
processes.
"""

from __future__ import annotations

import io
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from datamarket.client import Client, ClientError
from datamarket.core.display import Formatter
from datamarket.core.random import make_rng
from datamarket.ledger.money import Currency


@contextmanager
def serve_in_thread(app: Any, port: int = 0) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (``port``; 0: a free one) in a daemon thread; yields its
    base URL."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _csv(features: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    buf = io.StringIO()
    cols = [f"x{j}" for j in range(features.shape[1])] + (["label"] if labels is not None else [])
    buf.write(",".join(cols) + "\n")
    for i, row in enumerate(features):
        buf.write(",".join([f"{v:.6f}" for v in row] + ([str(int(labels[i]))] if labels is not None else [])))
        buf.write("\n")
    return buf.getvalue().encode()


KEYS: dict[str, str] = {}  # the demo participants' keys, for ``datamarket demo --serve`` (not logged)


def _participant(admin: Client, name: str) -> Client:
    """Register ``name``; a client acting for it."""
    reg = admin.register_participant(name)
    KEYS[name] = reg.api_key
    return admin.participant(reg)


def _clear(admin: Client, mid: int, seed: int) -> int:
    """Open a round of market ``mid`` and wait until it is cleared (else
    :class:`~datamarket.client.RoundFailed`)."""
    return admin.wait(admin.open_round(mid, seed=seed), timeout=120).id


def _broker_round(admin: Client, rng: np.random.Generator, seed: int) -> int:
    mid = admin.create_market("broker", {"sigma": 1.0}, name="mean estimation").id
    bids = {
        "lab_a": {"valuation": "gaussian", "width": 0.5},
        "lab_b": {"valuation": "threshold", "width": 0.4, "scale": 0.9},
        "lab_c": {"valuation": "exponential", "width": 0.3, "scale": 0.8},
    }
    costs = {"sensor_x": 0.05, "sensor_y": 0.06, "sensor_z": 0.09}
    clients = {}
    for name, bid in bids.items():
        clients[name] = _participant(admin, name)
        clients[name].submit(mid, bid, "bid")
    for name, cost in costs.items():
        clients[name] = _participant(admin, name)
        clients[name].submit(mid, {"cost": cost}, "cost")
    mu = float(rng.normal(2.0, 0.5))
    for name in costs:  # each contributor reads its own N*_i: the plan shows a participant its row only
        n = int(clients[name].get_plan(mid)["n_star"][name])
        if n:
            clients[name].upload(mid, _csv(rng.normal(mu, 1.0, (n, 1))), format="csv")
    for c in clients.values():
        c.close()
    return _clear(admin, mid, seed)


def _collaborative_round(admin: Client, rng: np.random.Generator, seed: int) -> int:
    params = {"characteristic": "v", "c": 10.0, "model": {"kind": "logreg", "max_iter": 100}}
    mid = admin.create_market("collaborative", params, name="hospitals").id

    def blobs(n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        return rng.normal(0.0, noise, (n, 2)) + y[:, None] * 1.2, y

    parties = {"clinic_1": (6, 0.6), "clinic_2": (20, 0.8), "clinic_3": (40, 1.0)}
    for k, (name, (n, noise)) in enumerate(parties.items()):
        with _participant(admin, name) as c:
            x, y = blobs(n, noise)
            c.upload(mid, _csv(x, y), format="csv")
            if k == 0:
                tx, ty = blobs(60, 0.8)
                c.upload(mid, _csv(tx, ty), format="csv", kind="task")
    return _clear(admin, mid, seed)


def _receives(d: dict[str, Any]) -> str:
    """What a receipt's deliverable ``d`` gave its participant, in a few words."""
    est = d.get("estimate")
    if d.get("kind") == "data":
        return f"{len(d.get('points', []))} pts, est. " + ("-" if est is None else f"{est:.3f}")
    if d.get("kind") == "model":
        return f"model, acc. {d['delivered_accuracy']:.3f}"
    return f"sold {d.get('points_requested', 0)} pts"


def _money(fmt: Formatter, amount_minor: int, code: str) -> str:
    """``amount_minor`` minor units of currency ``code``, as the portal writes it."""
    return fmt.money(int(amount_minor), code, Currency.parse(code, stored=True).scale)


def _receipt_rows(admin: Client, rounds: dict[str, int], fmt: Formatter) -> list[dict[str, Any]]:
    """One row per receipt of each round (paid negative = refund)."""
    rows: list[dict[str, Any]] = []
    for kind, rid in rounds.items():
        for rec in admin.list_receipts(rid):
            by_memo = {e.memo: e.amount_minor for e in rec.entries}
            code = rec.currency
            rows.append(
                {
                    "round": rid,
                    "market": kind,
                    "participant": rec.participant,
                    "paid": _money(fmt, -by_memo.get("price", 0), code),
                    "received": _money(fmt, by_memo.get("payment", 0), code),
                    "net": _money(fmt, rec.net_minor, code),
                    "receives": _receives(rec.deliverable or {}),
                }
            )
    return rows


def _platform_rows(
    entries: list[dict[str, Any]], rounds: dict[str, int], fmt: Formatter
) -> list[dict[str, Any]]:
    """One row per entry of the platform's account (its take)."""
    return [
        {
            "round": e["round_id"],
            "market": next(k for k, r in rounds.items() if r == e["round_id"]),
            "participant": "platform",
            "paid": _money(fmt, 0, e["currency"]),
            "received": _money(fmt, e["amount_minor"], e["currency"]),
            "net": _money(fmt, e["amount_minor"], e["currency"]),
            "receives": "platform take",
        }
        for e in entries
        if e["account"] == "platform"
    ]


def _drive(admin: Client, seed: int, fmt: Formatter) -> dict[str, Any]:
    """Both rounds, their receipts and the ledger's checks (:func:`run_service_demo`'s result); a
    request or a round that fails is a :class:`RuntimeError`."""
    try:
        return _rounds_and_checks(admin, seed, fmt)
    except ClientError as exc:
        raise RuntimeError(str(exc)) from exc


def _rounds_and_checks(admin: Client, seed: int, fmt: Formatter) -> dict[str, Any]:
    rng = make_rng(seed)
    rounds = {
        "broker": _broker_round(admin, rng, seed),
        "collaborative": _collaborative_round(admin, rng, seed),
    }
    entries = admin.ledger_entries()["entries"]
    rows = _receipt_rows(admin, rounds, fmt) + _platform_rows(entries, rounds, fmt)
    sums = {rid: sum(e["amount_minor"] for e in entries if e["round_id"] == rid) for rid in rounds.values()}
    report = admin.verify_ledger().model_dump()
    if any(s != 0 for s in sums.values()):
        raise RuntimeError(f"a round does not balance: {sums}")
    if not report["ok"]:
        raise RuntimeError(f"ledger verification failed: {report['problems']}")
    return {"receipts": rows, "verify": report, "round_sums": sums}


def run_service_demo(
    seed: int = 0,
    hold: Callable[[str, str, dict[str, str]], None] | None = None,
    port: int = 0,
    ready: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the demo; returns ``{"receipts": rows, "verify": report, "round_sums": {...}, "seconds": t}``.

    ``ready(result)`` is called with that result once the rounds are cleared and checked, while the
    service still runs (the report is written then). With ``hold``, the service keeps running after
    that: ``hold(url, admin_key, participant_keys)`` is called while it serves (on ``port``; 0: a free
    one) and the demo's data are removed when it returns or raises (``datamarket demo --serve``).

    Raises :class:`RuntimeError` when a request fails, a round fails, a round does not sum to zero or
    the ledger does not verify.
    """
    from datamarket.service.app import create_app
    from datamarket.service.config import ServiceSettings

    t0 = time.perf_counter()
    KEYS.clear()
    key = "dm_admin_" + secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="datamarket-demo-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        settings = ServiceSettings(database_url=url, admin_key=key, executor="thread")
        with (
            serve_in_thread(create_app(settings), port) as base,
            Client(base, key, timeout=120) as admin,
        ):
            result = _drive(admin, seed, settings.display)
            result["seconds"] = time.perf_counter() - t0
            if ready is not None:
                ready(result)
            if hold is not None:
                hold(base, key, dict(KEYS))
    return result


def report_service_demo(
    console: Any,
    out: Path,
    seed: int = 0,
    hold: Callable[[str, str, dict[str, str]], None] | None = None,
    port: int = 0,
) -> dict[str, Any]:
    """Run :func:`run_service_demo`, print the receipts table and the ledger check on ``console`` (rich)
    and write them to ``out/service-receipts.md`` as soon as the rounds are cleared (before ``hold``
    holds the service: ``demo --serve`` writes its report too); what ``datamarket demo`` calls last
    (``hold`` and ``port``: as :func:`run_service_demo`)."""
    console.print("[bold]== service[/bold] (HTTP API, temporary SQLite ledger)")
    return run_service_demo(seed, hold=hold, port=port, ready=lambda result: _report(console, out, result))


def _report(console: Any, out: Path, result: dict[str, Any]) -> None:
    """Print the receipts and the ledger check, and write them to ``out/service-receipts.md``."""
    from rich.table import Table

    from datamarket.experiments import markdown_table

    rows = result["receipts"]
    table = Table(title="receipts (paid negative = refund)")
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    console.print(table)
    v = result["verify"]
    line = (
        f"ledger {'verified' if v['ok'] else 'TAMPERED'}: {v['entries']} entries, {v['rounds']} rounds, "
        f"every round sums to 0 minor units; head {v['head_hash'][:16]}... ({result['seconds']:.1f} s)"
    )
    console.print(line)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "service-receipts.md"
    path.write_text(f"# Service demo: receipts\n\n{markdown_table(rows)}\n\n{line}\n")
    console.print(f"service report written to {path}")
