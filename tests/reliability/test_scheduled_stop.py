"""The real `etd-audit schedule` command: a second stop signal never splits a report; the heartbeat is private.

The scheduler runs each audit in a thread of its own, where SIGTERM and SIGINT are not held, and a second
signal ends the process while that thread is still going. The window that matters (between renaming the
workbook and the JSON into place) is microseconds wide, so the process under test widens it: a small
wrapper around `os.replace` pauses after a report's .xlsx has been renamed until the test says go. The
audit itself is real: the command signs in to the simulator and writes its report with the usual writer.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.schedule import default_heartbeat_file, write_heartbeat
from audit.simulator import generate_tenant
from tests.simconfig import secrets_env, sim_toml

ROOT = Path(__file__).resolve().parents[2]
BOUND = 120.0  # an upper bound on waiting, never an expected duration

PAUSING_ENTRY = """
import os, sys, time
from pathlib import Path

work = Path(sys.argv[1])
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    real_replace(src, dst, *args, **kwargs)
    name = os.path.basename(os.fspath(dst))
    if name.startswith("etd-audit-") and name.endswith(".xlsx"):
        (work / "xlsx-renamed").write_text(name)
        deadline = time.monotonic() + 120
        while not (work / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)

os.replace = replace
from audit.cli import main
sys.exit(main(sys.argv[2:]))
"""


def wait_for(condition, what: str, proc: subprocess.Popen | None = None, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the scheduler ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {bound:g} s")
        time.sleep(0.02)


def scheduler_env(sim, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **secrets_env(sim),
        "PYTHONPATH": str(ROOT),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "HOME": str(tmp_path / "home"),
    }


def test_a_second_signal_during_the_renames_leaves_the_whole_report(sim_factory, tmp_path):
    sim = sim_factory([generate_tenant("contoso", 40, seed=3, scenario="healthy")])
    out = tmp_path / "reports"
    config = tmp_path / "etd-audit.toml"
    config.write_text(sim_toml(sim, str(out)) + '\n[schedule]\ncron = "0 6 1 1 *"\n')
    entry = tmp_path / "pausing_entry.py"
    entry.write_text(PAUSING_ENTRY)
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(entry), str(tmp_path), "schedule", "--config", str(config), "--run-now"],
            cwd=ROOT,
            env=scheduler_env(sim, tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        wait_for(lambda: (tmp_path / "xlsx-renamed").exists(), "the workbook renamed into place", proc)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "waiting for the audit in progress" in stderr.read_text(), "the stop to wait", proc)
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "abandoned on a second stop signal" in stderr.read_text(), "the run abandoned", proc)
        try:  # before the fix the process ended here, with the JSON never renamed
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        (tmp_path / "go").write_text("go")
        code = proc.wait(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stem = Path((tmp_path / "xlsx-renamed").read_text()).stem
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.json", f"{stem}.xlsx"], stderr.read_text()
    assert code == 128 + signal.SIGINT, stderr.read_text()


def test_the_default_heartbeat_is_private_and_not_in_tmp(sim_factory, tmp_path):
    sim = sim_factory([generate_tenant("contoso", 10, seed=3, scenario="healthy")])
    config = tmp_path / "etd-audit.toml"
    config.write_text(sim_toml(sim, str(tmp_path / "reports")) + '\n[schedule]\ncron = "0 6 1 1 *"\n')
    env = scheduler_env(sim, tmp_path)
    beat = default_heartbeat_file(env)
    assert beat == tmp_path / "state" / "etd-audit" / "heartbeat"
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit", "schedule", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(beat.exists, "the heartbeat", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert stat.S_IMODE(beat.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(beat.stat().st_mode) == 0o600
    assert [p.name for p in beat.parent.iterdir()] == ["heartbeat"]  # no temporary file left


def test_default_heartbeat_location_follows_xdg(tmp_path):
    assert default_heartbeat_file({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/a"}) == Path(
        "/srv/state/etd-audit/heartbeat"
    )
    # A relative XDG_STATE_HOME is to be ignored (XDG Base Directory Specification).
    assert default_heartbeat_file({"XDG_STATE_HOME": "state", "HOME": "/home/a"}) == Path(
        "/home/a/.local/state/etd-audit/heartbeat"
    )


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_link_planted_where_the_temporary_heartbeat_went_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    beat = tmp_path / "beat.json"
    # The name the heartbeat's temporary file used to have: predictable from the pid.
    os.symlink(victim, tmp_path / f".{beat.name}.{os.getpid()}.tmp")
    write_heartbeat(beat, last_run=None, last_exit=None, next_run=None)
    assert victim.read_text() == "precious\n"
    assert beat.is_file() and not beat.is_symlink() and '"last_beat"' in beat.read_text()
    assert stat.S_IMODE(beat.stat().st_mode) == 0o600
