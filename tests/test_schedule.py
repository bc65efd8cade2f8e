"""The built-in scheduler: cron translation, heartbeat, and a real serve() process stopped by signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.config import Config, ConfigError, RemediationAppConfig, ScheduleConfig
from audit.schedule import cron_trigger, heartbeat_ok, serve, write_heartbeat

REPO = Path(__file__).resolve().parents[1]
BOUND = 60.0  # generous upper bound for anything a subprocess has to do; never an expected duration

SERVE_SCRIPT = """
import logging, sys, time
from pathlib import Path
from audit.config import Config, RemediationAppConfig, ScheduleConfig
from audit.schedule import serve

work = Path(sys.argv[1])
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

def job() -> int:
    (work / "started").write_text("yes")
    if (work / "hold").exists():          # wait for the test to release the run
        while not (work / "release").exists():
            time.sleep(0.05)
    (work / "done").write_text("yes")
    return 1

config = Config(
    path=work / "etd-audit.toml",
    tenants=(),
    remediation_app=RemediationAppConfig(app_id="00000000-0000-0000-0000-000000000001"),
    schedule=ScheduleConfig(cron="0 6 * * 1", timezone="Europe/Berlin", heartbeat_file=work / "beat.json"),
)
sys.exit(serve(config, job, run_now=True))
"""


def wait_for(condition: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {bound:g} s")
        time.sleep(0.05)


def start_serve(work: Path) -> tuple[subprocess.Popen, Path]:
    script = work / "serve_it.py"
    script.write_text(SERVE_SCRIPT)
    log = work / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, str(script), str(work)], cwd=REPO, env=env, stdout=sink, stderr=sink)
    return proc, log


def finish(proc: subprocess.Popen) -> int:
    try:
        return proc.wait(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def beat(work: Path) -> dict:
    return json.loads((work / "beat.json").read_text())


# ---------------------------------------------------------------------------------------------------
# serve() in a real process


def test_serve_runs_now_keeps_a_heartbeat_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, log = start_serve(tmp_path)
    try:
        wait_for(lambda: (tmp_path / "done").exists(), "the run-now audit")
        wait_for(
            lambda: (tmp_path / "beat.json").exists() and beat(tmp_path)["last_exit"] is not None,
            "the heartbeat written after the run",
        )
        state = beat(tmp_path)
        assert state["last_exit"] == 1  # the job's own exit code is recorded
        assert heartbeat_ok(tmp_path / "beat.json", 120)
        next_run = datetime.fromisoformat(state["next_run"])
        assert next_run.weekday() == 0 and (next_run.hour, next_run.minute) == (6, 0)  # Monday 06:00 Berlin
        assert str(next_run.utcoffset()) in ("1:00:00", "2:00:00")
        proc.send_signal(signal.SIGTERM)
        assert finish(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "next audit run at " + state["next_run"] in text
    assert "scheduler stopped" in text


def test_sigterm_lets_the_run_in_progress_finish(tmp_path: Path) -> None:
    (tmp_path / "hold").write_text("yes")
    proc, log = start_serve(tmp_path)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), "the audit to start")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "waiting for the audit in progress" in log.read_text(), "the stop to wait for the run")
        assert not (tmp_path / "done").exists()
        (tmp_path / "release").write_text("yes")
        assert finish(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "done").exists()  # the run finished before serve returned


def test_a_second_signal_abandons_the_run(tmp_path: Path) -> None:
    (tmp_path / "hold").write_text("yes")
    proc, log = start_serve(tmp_path)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), "the audit to start")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "waiting for the audit in progress" in log.read_text(), "the stop to wait for the run")
        proc.send_signal(signal.SIGINT)
        assert finish(proc) == 128 + signal.SIGINT  # ended by a signal, not "findings" (1)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "done").exists()
    assert "abandoned" in log.read_text()


def test_serve_refuses_a_bad_cron_before_starting(tmp_path: Path) -> None:
    config = Config(
        path=tmp_path / "etd-audit.toml",
        tenants=(),
        remediation_app=RemediationAppConfig(app_id="x"),
        schedule=ScheduleConfig(cron="0 6 * *", heartbeat_file=tmp_path / "beat.json"),
    )
    with pytest.raises(ConfigError) as caught:
        serve(config, lambda: 0)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'etd-audit.toml'}: schedule.cron: ")
    assert "expected 5 fields" in message and '"0 6 * * 1"' in message  # what is expected, an example
    assert not (tmp_path / "beat.json").exists()


# ---------------------------------------------------------------------------------------------------
# cron translation


MONDAY_2025 = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday


def next_fire(cron: str, after: datetime = MONDAY_2025) -> datetime:
    return cron_trigger(ScheduleConfig(cron=cron)).get_next_fire_time(None, after)


def test_weekday_numbers_mean_what_system_cron_means() -> None:
    # APScheduler 3.x alone would read "1" as Tuesday; the trigger must fire on Monday.
    assert next_fire("0 6 * * 1").strftime("%a %H:%M") == "Mon 06:00"
    assert next_fire("0 6 * * 0").strftime("%a") == "Sun"
    assert next_fire("0 6 * * 7").strftime("%a") == "Sun"
    assert next_fire("0 6 * * 5", after=MONDAY_2025).date() == datetime(2025, 1, 10).date()


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 6 * *", "expected 5 fields, got 4"),
        ("@weekly", "expected 5 fields, got 1"),
        ("0 25 * * *", "is not valid"),
        ("0 6 * * 8", "is not valid"),
        ("0 6 1 * 1", "restricts both day of month and day of week"),
    ],
)
def test_bad_cron_expressions_are_config_errors(cron: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        cron_trigger(ScheduleConfig(cron=cron), "etd-audit.toml")


def test_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"schedule\.timezone: 'Mars/Base' is not a known time zone"):
        cron_trigger(ScheduleConfig(timezone="Mars/Base"), "etd-audit.toml")


# ---------------------------------------------------------------------------------------------------
# heartbeat


def test_heartbeat_fresh_stale_missing_and_broken(tmp_path: Path) -> None:
    path = tmp_path / "beat.json"
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert not heartbeat_ok(path, 120, now=now)  # missing
    write_heartbeat(path, last_run=None, last_exit=None, next_run=now + timedelta(days=2), now=now)
    assert heartbeat_ok(path, 120, now=now + timedelta(seconds=119))
    assert not heartbeat_ok(path, 120, now=now + timedelta(seconds=121))
    assert not heartbeat_ok(path, 120, now=now - timedelta(hours=1))  # a beat from the future
    path.write_text("{not json")
    assert not heartbeat_ok(path, 120, now=now)
    path.write_text(json.dumps({"last_beat": "2025-03-01T12:00:00"}))  # no offset: not trusted
    assert not heartbeat_ok(path, 120, now=now)


def test_heartbeat_content(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "beat.json"
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    write_heartbeat(path, last_run=now - timedelta(minutes=5), last_exit=3, next_run=None, now=now)
    assert json.loads(path.read_text()) == {
        "last_beat": "2025-03-01T12:00:00+00:00",
        "last_run": "2025-03-01T11:55:00+00:00",
        "last_exit": 3,
        "next_run": None,
        "pid": os.getpid(),
    }
    assert [p.name for p in path.parent.iterdir()] == ["beat.json"]  # no temporary file left behind


def test_check_heartbeat_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "beat.json"
    write_heartbeat(path, last_run=None, last_exit=None, next_run=None)

    # The container's health check runs the module itself (see the Dockerfile's HEALTHCHECK).
    def health(beat: Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "audit.schedule", "--check-heartbeat", str(beat), "--max-age", "120"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    assert health(path).returncode == 0
    missing = health(tmp_path / "missing.json")
    assert missing.returncode == 1
    assert "missing.json is missing, unreadable or older than 120 s" in missing.stdout
