"""What the runner tells its callers, against the simulator: audit_tenants' progress for the terminal,
finished() for the Users sheet streamed as tenants end, and whether the run was probed; run()'s report,
mail, progress steps and the last record of the run, which log collectors alert on."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.logs import JsonFormatter
from audit.models import RunResult, TenantResult, TenantStatus
from audit.report.assess import assess
from audit.report.writer import ReportFiles
from audit.runner import RunOptions, RunOutcome, audit_tenants, log_finished, run
from audit.simulator import generate_tenant
from tests.test_mail import free_port, running_smtp, smtp_email


@pytest.fixture
def two(sim_factory, make_config, tmp_path):
    specs = [generate_tenant("contoso", 8, seed=1, scenario="healthy"), generate_tenant("fabrikam", 6, seed=2)]
    sim = sim_factory(specs)
    return specs, lambda **audit: make_config(sim, specs, tmp_path, **audit)


def test_each_tenant_is_reported_done_once_and_counted_out_of_all(two):
    _, config = two
    said, finished = [], []
    result = audit_tenants(
        config(tenant_concurrency=1),  # one at a time: the order below is fixed
        RunOptions(probe="all"),
        progress=lambda *call: said.append(call),
        finished=lambda index, tenant: finished.append((index, tenant.name)),
    )
    assert [t.name for t in result.tenants] == ["contoso", "fabrikam"]
    assert [c for c in said if c[0] in ("tenants", "done")] == [
        ("tenants", 0, 2),
        ("done", 0, None, "contoso"),
        ("tenants", 1, 2),
        ("done", 0, None, "fabrikam"),
        ("tenants", 2, 2),
    ]
    assert finished == [(0, "contoso"), (1, "fabrikam")]  # the place of each tenant in the run's order
    # Each tenant's own phases reach the same callback, named by tenant.
    assert {(c[0], c[3]) for c in said if c[0] in ("users", "checks")} == {
        (phase, name) for phase in ("users", "checks") for name in ("contoso", "fabrikam")
    }


def test_a_single_tenant_run_counts_no_tenants(two):
    _, config = two
    said = []
    audit_tenants(config(), RunOptions(tenant="fabrikam", probe="none"), progress=lambda *call: said.append(call))
    assert [c for c in said if c[0] in ("tenants", "done")] == [("done", 0, None, "fabrikam")]


@pytest.mark.parametrize(
    ("given", "configured", "probed"),
    [(None, "auto", True), ("none", "auto", False), (None, "none", False), ("all", "none", True)],
)
def test_the_run_is_probed_unless_the_option_or_else_the_config_says_none(two, given, configured, probed):
    _, config = two
    result = audit_tenants(config(probe=configured), RunOptions(tenant="fabrikam", probe=given))
    assert result.probes is probed


@pytest.fixture
def three(sim_factory, make_config, tmp_path):
    specs = [
        generate_tenant(name, 6, seed=i, scenario="healthy") for i, name in enumerate(("contoso", "fabrikam", "adatum"))
    ]
    sim = sim_factory(specs)
    return lambda **audit: make_config(sim, specs, tmp_path, **audit)


def in_flight(said: list[tuple]) -> int:
    """The most tenants that had begun and were not yet done at once, from the progress calls in order."""
    busy, most = set(), 0
    for call in said:
        if len(call) == 4 and call[0] != "done":
            busy.add(call[3])
        elif call[0] == "done":
            busy.discard(call[3])
        most = max(most, len(busy))
    return most


@pytest.mark.parametrize("concurrency", [1, 2])
def test_no_more_tenants_are_audited_at_once_than_configured(three, concurrency):
    said, lock = [], threading.Lock()

    def progress(*call):
        with lock:
            said.append((*call, threading.current_thread().name))

    audit_tenants(three(tenant_concurrency=concurrency), RunOptions(probe="all"), progress=lambda *c: progress(*c))
    calls = [c[:-1] for c in said]
    assert in_flight(calls) <= concurrency
    # Each tenant runs in a thread of its own pool, named so in a thread dump.
    assert {c[-1].split("_")[0] for c in said if c[0] in ("checks", "done")} == {"tenant"}


def test_an_interrupted_run_starts_no_tenant_still_waiting(three):
    said = []

    def progress(*call):
        said.append(call)
        if call[0] == "done":  # Ctrl-C as the first tenant ends
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit_tenants(three(tenant_concurrency=1), RunOptions(probe="none"), progress=progress)
    time.sleep(2.0)  # long enough for a queued tenant that was not cancelled to have begun
    # The one worker may already have taken the next tenant when the interrupt reached the caller; the
    # tenant queued behind it is never begun.
    assert "adatum" not in {c[3] for c in said if len(c) == 4} and "contoso" in {c[3] for c in said if len(c) == 4}


def test_an_interrupt_does_not_wait_for_the_tenant_still_in_flight(three):
    release, outcome = threading.Event(), []

    def progress(*call):
        if len(call) == 4 and call[3] == "fabrikam" and call[0] != "done":
            release.wait(60)  # fabrikam hangs, as on a Graph that stopped answering
        if call[0] == "done" and call[3] == "contoso":
            raise KeyboardInterrupt  # Ctrl-C while fabrikam is still being read

    def audit() -> None:
        try:
            audit_tenants(three(tenant_concurrency=2), RunOptions(probe="none"), progress=progress)
        except KeyboardInterrupt:
            outcome.append("interrupted")

    caller = threading.Thread(target=audit)
    caller.start()
    caller.join(15)  # a bound, never an expected duration: the real code returns at once
    waited_for_fabrikam = caller.is_alive()
    release.set()
    caller.join(60)
    assert not waited_for_fabrikam and outcome == ["interrupted"]


# ---- run(): the report, the mail, the progress it tells and the last record it logs --------------


@pytest.fixture
def json_records():
    """Every record of the "audit" logger while the test runs, as the JSON log format renders it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("audit")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def severities(report: dict) -> str:
    counts = Counter(f["severity"] for f in report["findings"])
    return ", ".join(f"{counts[s]} {s}" for s in ("critical", "high", "medium", "low") if counts[s])


def test_a_run_writes_mails_and_ends_on_one_record_that_says_it_all(two, tmp_path, json_records):
    _, config = two
    said = []
    with running_smtp() as (inbox, port):
        outcome = run(
            replace(config(), email=smtp_email(port, smtp_security="none")),
            RunOptions(out_dir=tmp_path / "out", stem="weekly", probe="all"),
            progress=lambda *call: said.append(call),
        )
    xlsx, js = tmp_path / "out" / "weekly.xlsx", tmp_path / "out" / "weekly.json"
    assert outcome.exit_code == 1 and len(inbox.messages) == 1
    # The run's own steps reach the callback after the tenants' (which name their tenant).
    assert [c for c in said if len(c) == 3 and c[0] != "tenants"] == [
        ("writing the report", 0, None),
        ("mailing the report", 0, None),
    ]
    assert {c[3] for c in said if len(c) == 4} == {"contoso", "fabrikam"}
    records = json_records()
    (writing,) = [r for r in records if r["message"].startswith("writing the report")]
    assert writing["message"] == f"writing the report (xlsx, json) to {tmp_path / 'out'}"
    assert writing["phase"] == "report"
    (mailed,) = [r for r in records if r["message"].startswith("report mailed to")]
    assert mailed["message"] == "report mailed to secops@contoso.com by smtp" and mailed["phase"] == "mail"
    final = records[-1]
    report = json.loads(js.read_text())
    assert final["message"] == f"run finished: NOT SAFE ({severities(report)}), exit code 1; {xlsx}, {js}"
    counts = Counter(f["severity"] for f in report["findings"])
    assert {k: v for k, v in final.items() if k not in ("time", "level", "logger", "message")} == {
        "event": "run finished",
        "verdict": "NOT SAFE",
        "findings": {s: counts[s] for s in ("critical", "high", "medium", "low")},
        "tenants": {"ok": 2},
        "exit_code": 1,
        "reports": [str(xlsx), str(js)],
        "mail_error": None,
    }


def test_a_run_told_not_to_mail_sends_nothing_though_mail_is_configured(two, tmp_path):
    _, config = two
    said = []
    with running_smtp() as (inbox, port):
        outcome = run(
            replace(config(), email=smtp_email(port, smtp_security="none")),
            RunOptions(out_dir=tmp_path / "out", stem="quiet", probe="none", formats=("json",), email=False),
            progress=lambda *call: said.append(call),
        )
    assert inbox.messages == [] and not any(c[0] == "mailing the report" for c in said)
    # Only the format asked for is written: no workbook, so no Users rows are streamed to one.
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == ["quiet.json"]
    assert set(outcome.report.paths) == {"json"}


def test_a_failed_send_is_the_last_records_mail_error_and_a_partial_run(two, tmp_path, json_records):
    _, config = two
    port = free_port()  # nothing listens there
    outcome = run(replace(config(), email=smtp_email(port)), RunOptions(out_dir=tmp_path, probe="none"))
    records = json_records()
    final = records[-1]
    (failed,) = [r for r in records if r["level"] == "error"]
    assert failed["message"] == f"the report was written but could not be mailed: {outcome.mail_error}"
    assert outcome.exit_code == 3 and final["exit_code"] == 3
    assert final["mail_error"] == outcome.mail_error and str(port) in final["mail_error"]
    assert all(Path(p).is_file() for p in final["reports"])  # the report was written before the send


def test_the_last_record_says_when_nothing_was_found_or_written(json_records):
    start = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    result = RunResult(
        started=start,
        finished=start,
        version="1",
        probes=True,
        tenants=[TenantResult("contoso", "11111111-1111-1111-1111-111111111111", TenantStatus.OK, users_scanned=3)],
    )
    report = ReportFiles(assessment=assess(result, (), stem="s", now=start), paths={})
    log_finished(RunOutcome(result, report, 0))
    final = json_records()[-1]
    assert final["message"] == "run finished: SAFE (no findings), exit code 0; no report written"
    assert final["reports"] == [] and final["tenants"] == {"ok": 1} and final["exit_code"] == 0


def test_a_run_keeps_as_many_earlier_reports_as_configured(two, tmp_path):
    _, config = two
    out = tmp_path / "out"
    stems = ["etd-audit-20261103T060000Z", "etd-audit-20261110T060000Z", "etd-audit-20261117T060000Z"]
    for stem in stems:
        run(config(keep=1), RunOptions(out_dir=out, stem=stem, probe="none", formats=("json",), email=False))
    assert sorted(p.stem for p in out.glob("etd-audit-*.json")) == stems[1:]  # this run's and one before it
