"""Accepted exceptions: loading (with clear errors) and their effect on the report."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime

import openpyxl
import pytest
from conftest import CONTOSO, FABRIKAM, sample_result

from audit.config import ConfigError
from audit.report import AcceptedException, ExceptionsError, load_exceptions

GOOD = """
[[exception]]
check_id = "no-exchange-license"
user = "BOB@contoso.com"
reason = "Shared printer account, never receives mail"
owner = "it-ops@contoso.com"
expires = 2099-12-31

[[exception]]
check_id = "app-missing-permission"
tenant = "fabrikam"
reason = "Being re-consented this week"
owner = "secops"
expires = "2099-01-31"
"""


def test_load_exceptions(tmp_path):
    path = tmp_path / "exceptions.toml"
    path.write_text(GOOD)
    bob, fabrikam = load_exceptions(path)
    assert bob == AcceptedException(
        "no-exchange-license",
        "Shared printer account, never receives mail",
        "it-ops@contoso.com",
        date(2099, 12, 31),
        user="BOB@contoso.com",
        source="exceptions.toml exception #1",
    )
    assert fabrikam.tenant == "fabrikam" and fabrikam.user is None and fabrikam.expires == date(2099, 1, 31)


def test_empty_file_means_no_exceptions(tmp_path):
    path = tmp_path / "none.toml"
    path.write_text("# nothing accepted\n")
    assert load_exceptions(path) == []


ENTRY = 'check_id = "x"\nuser = "a@b.c"\nreason = "r"\nowner = "o"\nexpires = 2099-01-01\n'


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (ENTRY.replace('owner = "o"\n', ""), "exception #2: missing key 'owner'"),
        (ENTRY.replace("2099-01-01", '"next tuesday"'), "exception #2: key 'expires' is not a date"),
        (ENTRY.replace("2099-01-01", "2099-02-30"), "not valid TOML"),  # TOML itself rejects the date
        (ENTRY.replace("2099-01-01", '"2099-02-30"'), "exception #2: key 'expires' is not a date"),
        (ENTRY.replace('user = "a@b.c"\n', ""), "exception #2: missing key 'user' or 'tenant'"),
        (ENTRY + 'colour = "blue"\n', "exception #2: unknown key 'colour'"),
        (ENTRY.replace('reason = "r"', "reason = 5"), "exception #2: key 'reason' must be a non-empty string"),
    ],
)
def test_bad_entries_name_file_entry_and_key(tmp_path, second, expected):
    path = tmp_path / "exceptions.toml"
    path.write_text(f"[[exception]]\n{ENTRY}\n[[exception]]\n{second}")
    with pytest.raises(ExceptionsError) as err:
        load_exceptions(path)
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_exceptions(tmp_path / "nope.toml")


def exception(check_id, *, user=None, tenant=None, expires=date(2099, 1, 1)):
    return AcceptedException(
        check_id, "known and accepted", "it-ops", expires, user=user, tenant=tenant, source="test exception"
    )


def test_active_exceptions_move_findings_to_the_accepted_sheet(write):
    exceptions = [
        exception("no-exchange-license", user="BOB@contoso.com"),
        exception("app-missing-permission", tenant=FABRIKAM),
    ]
    files = write(sample_result(), exceptions=exceptions)
    assert {(f.check_id, f.user_id) for f in files.assessment.accepted_findings} == {
        ("no-exchange-license", "u-bob"),
        ("app-missing-permission", None),
    }
    assert {f.check_id for f in files.assessment.findings} == {"on-premises-mailbox", "soft-deleted-user"}

    wb = openpyxl.load_workbook(files.xlsx)
    findings = [r[2] for r in wb["Findings"].iter_rows(min_row=2, values_only=True)]
    assert sorted(findings) == ["on-premises-mailbox", "soft-deleted-user"]
    ws = wb["Accepted"]
    header = [c.value for c in ws[1]]
    rows = [dict(zip(header, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert len(rows) == 2
    bob = next(r for r in rows if r["Object id"] == "u-bob")
    assert (bob["Reason"], bob["Owner"]) == ("known and accepted", "it-ops")
    assert bob["Expires"] == datetime(2099, 1, 1)
    expires = ws.cell(row=2, column=header.index("Expires") + 1)
    assert expires.is_date
    users = wb["Users"]
    bob_user = next(r for r in users.iter_rows(min_row=2, values_only=True) if r[3] == "u-bob")
    assert bob_user[-1] == "no-exchange-license (accepted)"

    data = json.loads(files.json.read_text())
    assert {f["check_id"] for f in data["findings"]} == {"on-premises-mailbox", "soft-deleted-user"}
    accepted = {f["check_id"]: f for f in data["accepted"]}
    assert accepted["no-exchange-license"]["exception"]["owner"] == "it-ops"
    assert accepted["no-exchange-license"]["exception"]["expires"] == "2099-01-01"
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True) if r[0]}
    assert summary["Findings that count"] == 2 and summary["Accepted by exception"] == 2


def test_expired_exception_does_not_match_and_is_reported(write):
    result = sample_result()
    today = result.finished.date()
    expired = exception("on-premises-mailbox", user="u-carol", expires=date(2025, 1, 31))
    last_day = exception("soft-deleted-user", user="dave@contoso.com", tenant="contoso", expires=today)
    files = write(result, exceptions=[expired, last_day])
    assert list(files.assessment.expired_exceptions) == [expired]
    accepted = files.assessment.accepted_findings
    assert {f.check_id for f in accepted} == {"soft-deleted-user"}  # valid through its expiry day
    assert "on-premises-mailbox" in {f.check_id for f in files.assessment.findings}

    wb = openpyxl.load_workbook(files.xlsx)
    ws = wb["Findings"]
    header = [c.value for c in ws[1]]
    carol = next(
        dict(zip(header, r, strict=True))
        for r in ws.iter_rows(min_row=2, values_only=True)
        if r[header.index("Object id")] == "u-carol"
    )
    assert carol["Note"] == "exception expired 2025-01-31 (owner it-ops)"
    notes = [r[0] for r in wb["Summary"].iter_rows(values_only=True) if r[0] and "expired" in str(r[0])]
    assert len(notes) == 1 and "2025-01-31" in notes[0] and "count again" in notes[0]


def test_exception_matching_nothing_is_noted(write):
    files = write(
        sample_result(), exceptions=[exception("no-exchange-license", user="nobody@contoso.com", tenant=CONTOSO)]
    )
    assert not files.assessment.accepted
    wb = openpyxl.load_workbook(files.xlsx)
    assert any("matched no finding" in str(r[0]) for r in wb["Summary"].iter_rows(values_only=True))


def test_shipped_example_file_loads():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "exceptions.example.toml"
    entries = load_exceptions(example)
    assert [(e.check_id, e.user, e.tenant) for e in entries] == [
        ("no-exchange-license", "kiosk01@contoso.com", None),
        ("domain-not-verified", None, "contoso"),
    ]


def test_an_exception_for_a_tenant_id_matches_whatever_case_either_is_written_in():
    from audit.report.exceptions import apply_exceptions

    tenant_id = "e419272c-dee4-42c8-8890-810aa7d8d9cf"
    findings = [replace(f, tenant_id=tenant_id) for f in sample_result().findings if f.tenant_id == CONTOSO]
    by_id = exception("no-exchange-license", tenant=tenant_id.upper())
    shouted = [replace(f, tenant_id=tenant_id.upper()) for f in findings]
    for found in (findings, shouted):
        triage = apply_exceptions(found, [by_id], date(2026, 1, 1), tenant_names={})
        assert [(f.check_id, e) for f, e in triage.accepted] == [("no-exchange-license", by_id)]
        assert len(triage.counted) == len(found) - 1
