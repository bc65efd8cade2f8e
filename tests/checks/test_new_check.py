"""A check added to the catalogue shows up everywhere by itself: in the audit, readiness, triage, the
Summary and Checks sheets and the JSON report. Nothing but its own module and the catalogue names it."""

from __future__ import annotations

import json

import openpyxl
import pytest

from audit import checks
from audit.models import MAILBOX_INACTIVE, RunResult
from audit.readiness import tenant_readiness
from audit.report import write_reports
from audit.runner import RunOptions, audit_tenant
from audit.simulator import generate_tenant
from audit.triage import triage
from tests.checks import throwaway_check


@pytest.fixture
def registered():
    checks.register(throwaway_check)
    try:
        yield throwaway_check
    finally:
        checks.CHECKS.remove(throwaway_check)
        throwaway_check.PICKED.clear()
        throwaway_check.BROKEN.clear()


def test_a_registered_check_reaches_readiness_triage_and_the_report(registered, sim_factory, make_config, tmp_path):
    spec = generate_tenant("litware", 40, seed=3, scenario="healthy")
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    picked = next(u for u in spec["users"] if u["mailbox"] and u["accountEnabled"])
    registered.PICKED.add(picked["userPrincipalName"].lower())

    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    [finding] = [f for f in result.findings if f.check_id == "throwaway-check"]
    assert finding.user_principal_name == picked["userPrincipalName"]

    items = {i.item: i for i in tenant_readiness(result).items}
    assert items["mailboxes: throwaway-check"].status == "WARN"
    assert items["mailboxes: throwaway-check"].detail.startswith("1 would fail")

    log = tmp_path / "errors.csv"
    log.write_text(f"Mailbox,Remediation Error\n{picked['mail']},Resource is Not Found\n")
    [row] = triage(config, log, out_dir=tmp_path / "triage", formats=("json",)).rows
    assert row.diagnosis.check_id == "throwaway-check"
    assert row.diagnosis.cause == registered.CHECK.title

    run = RunResult(result.snapshot.collected_at, result.snapshot.collected_at, "t", True, [result])
    files = write_reports(run, tmp_path / "reports", formats=("xlsx", "json"))
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert [f["check_id"] for f in data["findings"]].count("throwaway-check") == 1
    book = openpyxl.load_workbook(files.xlsx, read_only=True)
    for sheet in ("Summary", "Checks"):
        cells = {str(c) for row in book[sheet].iter_rows(values_only=True) for c in row if c is not None}
        assert "throwaway-check" in cells, sheet
        assert registered.CHECK.title in cells, sheet


def test_a_registered_check_that_cannot_run_is_named_where_triage_finds_no_cause(
    registered, sim_factory, make_config, tmp_path
):
    spec = generate_tenant("litware", 40, seed=3, scenario="healthy")
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    healthy = next(u for u in spec["users"] if u["mailbox"] and u["accountEnabled"])
    registered.BROKEN.append("broken on purpose")
    log = tmp_path / "errors.csv"
    log.write_text(f'Mailbox,Remediation Error\n{healthy["mail"]},"{MAILBOX_INACTIVE}"\n')
    [row] = triage(config, log, out_dir=tmp_path / "triage", formats=("json",)).rows
    assert (
        "could not check: throwaway-check (the check failed: RuntimeError: broken on purpose)" in row.diagnosis.evidence
    )


def test_register_refuses_a_malformed_or_duplicate_check(registered):
    with pytest.raises(RuntimeError, match="duplicate check id throwaway-check"):
        checks.register(throwaway_check)
