"""``datamarket demo --serve`` as a person runs it: a real process that writes its report into
``--out``, serves the portal (``/`` leads there), and on SIGTERM or Ctrl-C (SIGINT) stops, exits 0 and
leaves no temporary data behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from datamarket.core.display import Formatter


def _lines(proc: subprocess.Popen[str], seen: list[str]) -> threading.Thread:
    """Collect the process' output lines into ``seen`` in a thread (so a test can poll without
    blocking on a pipe)."""

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


@pytest.mark.slow  # a process that imports the service and clears two rounds: ~15 s each
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_demo_serve_writes_its_report_and_cleans_up_on_a_signal(tmp_path: Path, sig: int) -> None:
    tmp = tmp_path / "tmp"  # the demo's temporary directory is made here (TMPDIR)
    tmp.mkdir()
    out = tmp_path / "report"
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "datamarket.cli", "demo", "--serve", "--port", "0", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen: list[str] = []
    reader = _lines(proc, seen)
    try:
        deadline = time.monotonic() + 120
        while not any(line.lstrip().startswith("operator ") for line in seen):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(seen)
            time.sleep(0.1)
        assert [p.name for p in tmp.iterdir() if p.name.startswith("datamarket-demo-")]  # data while it runs
        url = re.search(r"portal: (http://127\.0\.0\.1:\d+)/portal/", "".join(seen))
        assert url, "".join(seen)
        root = httpx.get(url.group(1) + "/", follow_redirects=False)
        assert root.status_code == 303 and root.headers["location"] == "/portal/"
        report = (out / "service-receipts.md").read_text()  # written before it serves
        assert "| participant |" in report and "ledger verified" in report
        money = re.findall(r"\| (-?[\d,]+\.\d\d USD) \|", report)
        assert money and Formatter().money(0, "USD", 100) in money
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert "stopped; the demo's data are removed" in "".join(seen)
    assert list(tmp.iterdir()) == []
