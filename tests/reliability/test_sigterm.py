"""SIGTERM during `etd-audit run` leaves no partial report, and the reports already there untouched.

The command runs as a real process against the simulator. It is stopped either while it is still
reading Graph (a simulator with latency), or while it is writing the report (the moment its hidden
temporary file appears in the reports folder).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.config import load_config
from audit.runner import RunOptions, run
from audit.simulator import generate_tenant
from tests.simconfig import secrets_env, served, sim_config, sim_toml, write_config_file

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition, what: str, child: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds  # a bound on waiting, not an assertion about speed
    while not condition():
        assert child.poll() is None, f"the run ended before {what}: {child.communicate()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.002)


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str]):
    """The command as a child process, killed if the test leaves it running."""
    child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def probes_sent(sim) -> int:
    return sim.counters.snapshot()["by_route"].get("mailboxSettings", 0)


@pytest.mark.parametrize("moment", ["reading-graph", "writing-report"])
def test_sigterm_leaves_no_partial_report(sim_factory, tmp_path, monkeypatch, moment):
    users, faults = (300, "latency=0.02") if moment == "reading-graph" else (2000, None)
    sim = sim_factory([generate_tenant("contoso", users, seed=2)], faults=faults)
    out = tmp_path / "reports"
    config_path = tmp_path / "config.toml"
    config_path.write_text(sim_toml(sim, str(out)))
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)

    # An earlier report in the folder, which must come through untouched.
    earlier = run(load_config(config_path), RunOptions(probe="none", stem="etd-audit-20260101T060000Z", email=False))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {Path(n).suffix for n in before} == {".xlsx", ".json"} and earlier.report.json.name in before

    # Probing every mailbox (300 users, 20 ms a call) keeps the run reading Graph for a few seconds.
    args = [
        sys.executable,
        "-m",
        "audit",
        "run",
        "--config",
        str(config_path),
        "--no-email",
        "--probe",
        "all" if moment == "reading-graph" else "none",
    ]
    calls_before = sim.counters.snapshot()["http_requests"]
    with running(args, dict(os.environ)) as child:
        if moment == "reading-graph":
            wait_for(lambda: probes_sent(sim) >= 8, "mailbox probes", child)
        else:
            # The report's own temporary file (.etd-audit-<stem>.<ext>.<random>.tmp), not the out_dir
            # write check that the run makes before it starts reading Graph.
            wait_for(
                lambda: any(p.name.startswith(".etd-audit-") and p.name.endswith(".tmp") for p in out.iterdir()),
                "a temporary report file",
                child,
            )
        child.send_signal(signal.SIGTERM)
        stdout, stderr = child.communicate(timeout=60)

    assert child.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert "stopped by SIGTERM; no partial report was written" in stderr.decode()
    assert b"wrote " not in stdout
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no new report, no temporary file left, the earlier report byte-identical
    assert sim.counters.snapshot()["http_requests"] > calls_before  # the run had really started


def test_sigterm_while_the_users_sheet_streams_leaves_no_spool(sim_factory, tmp_path):
    """One tenant is done and its Users rows are going into the workbook's spool file while another is
    still being read (each tenant on its own simulator, the second slow): SIGTERM leaves neither a
    report nor the spool."""
    fast = sim_factory([generate_tenant("contoso", 700, seed=2)])
    slow = sim_factory([generate_tenant("fabrikam", 300, seed=3)], faults="latency=0.1")
    placed = served(fast) + served(slow)
    out, spool = tmp_path / "reports", tmp_path / "spool"
    spool.mkdir()
    config = write_config_file(sim_config(placed, tmp_path, out_dir=out))
    args = [sys.executable, "-m", "audit", "run", "--config", str(config), "--no-email", "--probe", "all"]
    env = {**os.environ, **secrets_env(placed), "TMPDIR": str(spool)}  # where openpyxl spools a sheet
    with running(args, env) as child:
        wait_for(lambda: any(p.name.startswith("openpyxl.") for p in spool.iterdir()), "the Users spool", child)
        assert probes_sent(slow) < 300  # the slow tenant is still being read
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)

    assert child.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert sorted(p.name for p in spool.iterdir()) == []
    assert not [p.name for p in out.iterdir() if p.suffix in (".xlsx", ".json", ".tmp")]
