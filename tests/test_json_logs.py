"""Logs through the real command: with --log-format json every stderr line is a JSON object, and in both
formats no secret reaches the terminal, not in a traceback and not in a printed line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.simulator import generate_tenant
from tests.simconfig import secrets_env, sim_toml

BOUND = 300.0  # upper bound for one subprocess; never an expected duration
SECRET = "very-secret-value-4711"


def etd_audit(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "audit", *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def json_lines(stderr: str) -> list[dict]:
    """Every line of stderr parsed as a JSON object; fails on the first line that is not one."""
    records = []
    for line in stderr.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_missing_config_is_a_json_record(tmp_path: Path) -> None:
    done = etd_audit("--log-format", "json", "run", "--config", str(tmp_path / "missing.toml"))
    assert done.returncode == 2
    (record,) = json_lines(done.stderr)
    assert record["level"] == "error" and record["exit_code"] == 2
    assert "the config file does not exist" in record["message"] and "missing.toml" in record["message"]


def test_unset_secret_variable_is_a_json_record(sim_factory, tmp_path: Path) -> None:
    sim = sim_factory([generate_tenant("contoso", 10, seed=2, scenario="healthy")])
    config = tmp_path / "etd-audit.toml"
    config.write_text(sim_toml(sim, str(tmp_path / "reports")))
    env = {name: "" for name in secrets_env(sim)}
    done = etd_audit("--log-format", "json", "run", "--config", str(config), env=env)
    # The only tenant cannot sign in: exit 2, and every line, the tenant's failure included, is JSON.
    assert done.returncode == 2, done.stderr
    records = json_lines(done.stderr)
    about = [r for r in records if "ETD_SIM_SECRET_CONTOSO" in r["message"] and "not set" in r["message"]]
    assert about and all(r["level"] in ("error", "warning") for r in about), records


def test_a_run_logs_json_with_tenant_phase_and_a_final_record(sim_factory, tmp_path: Path) -> None:
    tenants = [generate_tenant("contoso", 40, seed=2), generate_tenant("fabrikam", 20, seed=3, scenario="healthy")]
    sim = sim_factory(tenants)
    config = tmp_path / "etd-audit.toml"
    config.write_text(sim_toml(sim, str(tmp_path / "reports")))
    done = etd_audit("--log-format", "json", "run", "--config", str(config), "--no-email", env=secrets_env(sim))
    assert done.returncode in (0, 1), done.stderr
    records = json_lines(done.stderr)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    tagged = {(r["tenant"], r.get("phase")) for r in records if "tenant" in r}
    assert {t for t, _ in tagged} == {"contoso", "fabrikam"}  # each tenant's records say whose they are
    assert all(phase for _, phase in tagged)
    assert any(r.get("phase") == "report" and r["message"].startswith("writing the report") for r in records)
    final = records[-1]
    assert final["message"].startswith("run finished: ") and final["event"] == "run finished"
    assert final["exit_code"] == done.returncode
    assert final["verdict"] in ("SAFE", "NOT SAFE", "INCOMPLETE") and final["verdict"] in final["message"]
    assert set(final["findings"]) == {"critical", "high", "medium", "low"}
    assert final["tenants"] == {"ok": 2}
    reports = [Path(p) for p in final["reports"]]
    assert sorted(p.suffix for p in reports) == [".json", ".xlsx"] and all(p.is_file() for p in reports)
    report = json.loads(next(p for p in reports if p.suffix == ".json").read_text())
    assert sum(final["findings"].values()) == len(report["findings"])


# ---- redaction of tracebacks and printed lines, in a real process ----------------------------------

CRASH = f"""
import logging, sys, threading
from audit import logs
logs.setup(fmt=sys.argv[1])
logs.register_secret({SECRET!r})
print("printed: {SECRET}")
print("printed to stderr: {SECRET}", file=sys.stderr)
try:
    raise ValueError("handled: {SECRET}")
except ValueError:
    logging.getLogger("audit").error("caught it", exc_info=True)
def fail():
    raise KeyError("in a thread: {SECRET}")
worker = threading.Thread(target=fail, name="worker")
worker.start()
worker.join()
raise RuntimeError("uncaught: {SECRET}")
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_tracebacks_and_printed_lines_are_redacted(fmt: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASH, fmt], capture_output=True, text=True, timeout=BOUND, env=dict(os.environ)
    )
    assert done.returncode == 1
    assert SECRET not in done.stdout and SECRET not in done.stderr
    assert done.stdout == "printed: ***\n"
    for said in (
        "printed to stderr: ***",
        "handled: ***",
        "in a thread: ***",
        "uncaught: ***",
        "Traceback (most recent",
    ):
        assert said in done.stderr
    if fmt == "json":
        records = json_lines(done.stderr)
        assert [r["message"] for r in records] == [
            "printed to stderr: ***",
            "caught it",
            "unexpected error in worker: KeyError",
            "unexpected error: RuntimeError",
        ]
        assert "ValueError: handled: ***" in records[1]["error"]
        assert "KeyError: 'in a thread: ***'" in records[2]["error"]
        assert "RuntimeError: uncaught: ***" in records[3]["error"] and records[3]["level"] == "critical"
