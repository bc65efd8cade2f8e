"""SIGKILL at points across collection, write and prune: nothing partial under a report name, ever.

SIGKILL cannot be caught, so this is what the write-to-temp-then-rename design alone guarantees. Each
kill lands in one phase, taken in turn: reading Graph (after the first mailbox probes), writing (after
the report's temporary file appears) and pruning (right after the new JSON is in place, with keep = 1
so every write prunes). After each kill every file under a report name must be complete, and a run
then succeeds and compares with the newest complete report, its Changes sheet showing nothing new or
resolved (the tenant did not change). `pytest -m soak` kills at 51 points; the default run at 3.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from audit.cli import main
from audit.report import read_json_report
from audit.simulator import generate_tenant
from tests.simconfig import secrets_env, sim_toml

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("collection", "write", "prune")


def reports_in(folder: Path) -> list[Path]:
    return [p for p in folder.glob("etd-audit-*") if p.suffix in (".json", ".xlsx", ".csv")]


def assert_every_report_complete(folder: Path) -> None:
    for path in reports_in(folder):
        if path.suffix == ".json":
            read_json_report(path)  # raises on a truncated or half-written report
        elif path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                assert z.testzip() is None, path


def newest_complete_json(folder: Path) -> Path:
    return max(folder.glob("etd-audit-*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def wait_until(condition, child: subprocess.Popen, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        if child.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def kill_in(phase: str, child: subprocess.Popen, sim, folder: Path, before: set[str], rng: random.Random) -> str:
    """SIGKILL the run in `phase`; returns where it really was when it died."""
    if phase == "collection":
        start = sim.counters.snapshot()["by_route"].get("mailboxSettings", 0)
        reached = wait_until(
            lambda: sim.counters.snapshot()["by_route"].get("mailboxSettings", 0) > start + rng.randint(1, 40), child
        )
    elif phase == "write":
        reached = wait_until(lambda: any(p.name.endswith(".tmp") for p in folder.iterdir()), child)
        time.sleep(rng.uniform(0, 0.15))
    else:
        reached = wait_until(lambda: {p.name for p in folder.glob("etd-audit-*.json")} - before, child)
        time.sleep(rng.uniform(0, 0.01))
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    return phase if reached and child.returncode == -signal.SIGKILL else "after the run ended"


def kills(points: int, sim_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    sim = sim_factory([generate_tenant("contoso", 150, seed=21)], faults="latency=0.01")
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "reports"
    config = tmp_path / "config.toml"
    config.write_text(sim_toml(sim, str(folder)).replace("[audit]\n", "[audit]\nkeep = 1\n"))
    command = ["run", "--config", str(config), "--no-email", "--probe", "all"]
    assert main(command) in (0, 1)  # a complete report to start from
    rng = random.Random(int(os.environ.get("ETD_KILL_SEED", "15")))
    landed: dict[str, int] = {}
    for i in range(points):
        phase = PHASES[i % len(PHASES)]
        before = {p.name for p in folder.glob("etd-audit-*.json")}
        child = subprocess.Popen(
            [sys.executable, "-m", "audit", *command],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        where = kill_in(phase, child, sim, folder, before, rng)
        landed[where] = landed.get(where, 0) + 1

        assert_every_report_complete(folder)
        previous = newest_complete_json(folder)
        expected = read_json_report(previous)[0]
        assert main(command) in (0, 1), f"the run after a kill in {where} failed"
        newest = max(folder.glob("etd-audit-*.xlsx"), key=lambda p: p.stat().st_mtime_ns)
        wb = openpyxl.load_workbook(newest, read_only=True)
        try:
            summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True) if len(r) > 1 and r[0]}
            labels = [r[0] for r in wb["Changes"].iter_rows(min_row=2, values_only=True) if r and r[0]]
        finally:
            wb.close()
        assert summary["Compared with"] == previous.name, (where, summary["Compared with"], previous.name)
        assert set(labels) <= {"still open"}, (where, labels)  # the tenant did not change: nothing new, none resolved
        assert len(labels) == len(expected.findings), (where, len(labels), len(expected.findings))
    print(f"SIGKILL points: {points}; landed in: {landed}")
    return landed


def test_sigkill_at_three_points_leaves_no_partial_report(sim_factory, tmp_path, monkeypatch) -> None:
    landed = kills(3, sim_factory, tmp_path, monkeypatch)
    assert sum(landed.values()) == 3


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_sigkill_at_51_points_leaves_no_partial_report(sim_factory, tmp_path, monkeypatch) -> None:
    landed = kills(51, sim_factory, tmp_path, monkeypatch)
    assert sum(landed.values()) == 51
    assert all(landed.get(phase, 0) >= 10 for phase in PHASES), landed  # every phase really was hit
