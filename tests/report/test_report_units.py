"""Pure pieces: cell values, the verdict, exception matching, credential summary, memory use."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import (
    CATALOGUE,
    CONTOSO,
    FABRIKAM,
    LOOKUPS,
    clean_result,
    finding,
    sample_result,
    snapshot,
    user,
)

from audit.models import TenantStatus
from audit.report import AcceptedException
from audit.report.cells import excel_time, iso, parse_time, text_cell
from audit.report.tables import credential_summary
from audit.report.verdict import INCOMPLETE, NOT_SAFE, SAFE, verdict
from audit.report.workbook import text_lines


def test_times_become_naive_utc_for_excel():
    assert excel_time("2021-02-02T04:22:45.4980259Z") == datetime(2021, 2, 2, 4, 22, 45, 498025)
    assert excel_time("2024-01-01T02:00:00+02:00") == datetime(2024, 1, 1, 0, 0)
    assert excel_time("not a date") is None and excel_time(None) is None
    assert parse_time("2024-05-01").tzinfo == UTC
    assert iso(datetime(2025, 3, 3, 6, 0, 0, 123, tzinfo=UTC)) == "2025-03-03T06:00:00Z"


def test_text_cell():
    assert text_cell(True) == "yes" and text_cell(False) == "no" and text_cell(None) is None
    assert text_cell("x" * 40000) == "x" * 32767  # Excel's limit for one cell


def test_wrapped_line_estimate():
    assert text_lines("short", 10) == 1
    assert text_lines("one two three four", 10) == 2  # "one two" / "three four"
    assert text_lines("one two three four", 9) == 3
    assert text_lines("a\nb\nc", 50) == 3
    assert text_lines("x" * 25, 10) == 3


def test_verdicts():
    assert verdict(clean_result(), []).word == SAFE
    result = sample_result()
    assert verdict(result, result.findings).word == NOT_SAFE
    clean = clean_result()
    clean.tenants[0].users_in_directory = 3  # the directory holds more users than were read
    judged = verdict(clean, [])
    assert judged.word == INCOMPLETE and judged.gaps[0].what == "2 users not read"
    clean = clean_result()
    clean.tenants[0].status = TenantStatus.PARTIAL
    assert verdict(clean, []).word == INCOMPLETE
    clean.tenants = []
    assert verdict(clean, []).word == INCOMPLETE
    no_probes = clean_result()
    no_probes.probes = False
    judged = verdict(no_probes, [])
    assert judged.word == INCOMPLETE and judged.gaps[0].what == "mailboxes not probed"


def test_exception_matches_by_upn_object_id_tenant_name_or_id_case_insensitively():
    bob = user("u-bob", "bob@contoso.com")
    f = finding(CONTOSO, "no-exchange-license", "high", bob)
    e = AcceptedException("No-Exchange-License", "r", "o", date(2099, 1, 1), user="U-BOB")
    assert e.matches(f, "contoso")
    by_name = AcceptedException("no-exchange-license", "r", "o", date(2099, 1, 1), tenant="CONTOSO")
    by_id = AcceptedException("no-exchange-license", "r", "o", date(2099, 1, 1), tenant=CONTOSO.upper())
    assert by_name.matches(f, "contoso") and by_id.matches(f, "contoso")
    assert not AcceptedException(
        "no-exchange-license", "r", "o", date(2099, 1, 1), user="bob", tenant=FABRIKAM
    ).matches(f, "contoso")
    assert not AcceptedException("soft-deleted-user", "r", "o", date(2099, 1, 1), user="u-bob").matches(f, "contoso")
    assert e.expired(date(2099, 1, 2)) and not e.expired(date(2099, 1, 1))


def test_credential_summary_next_and_last_expiry():
    now = datetime(2025, 6, 1, tzinfo=UTC)
    app = {
        "passwordCredentials": [
            {"displayName": "old", "endDateTime": "2025-01-01T00:00:00Z"},
            {"displayName": "new", "endDateTime": "2025-09-01T00:00:00Z"},
        ],
        "keyCredentials": [{"keyId": "k1", "endDateTime": "2026-01-01T00:00:00Z"}],
    }
    text, next_expiry, last_expiry = credential_summary(app, now)
    assert next_expiry == datetime(2025, 9, 1) and last_expiry == datetime(2026, 1, 1)
    assert text.startswith("secret 'old' until 2025-01-01; secret 'new'") and "certificate 'k1'" in text
    assert credential_summary({}, now) == ("no secrets or certificates", None, None)


def test_credential_summary_counts_what_the_expiry_check_counts():
    """A keyCredential with usage Sign signs tokens for others and cannot sign the app in (keyCredential
    resource type, Graph docs): the Tenant sheet leaves it out of the credentials and their expiry dates,
    as app-credential-expiring does, and says it is there."""
    from audit.checks.app_credential_expiring import sign_in_credentials

    now = datetime(2025, 6, 1, tzinfo=UTC)
    app = {
        "passwordCredentials": [{"displayName": "s1", "endDateTime": "2025-09-01T00:00:00Z"}],
        "keyCredentials": [
            {"keyId": "verify01", "usage": "Verify", "endDateTime": "2026-01-01T00:00:00Z"},
            {"keyId": "sign0001", "usage": "Sign", "endDateTime": "2027-01-01T00:00:00Z"},
        ],
    }
    text, next_expiry, last_expiry = credential_summary(app, now)
    assert [c.get("keyId") or c["displayName"] for _, c in sign_in_credentials(app)] == ["s1", "verify01"]
    assert "sign0001" not in text and text.endswith("; 1 signing-only certificate (cannot sign the app in)")
    assert next_expiry == datetime(2025, 9, 1) and last_expiry == datetime(2026, 1, 1)  # not the Sign one's 2027
    only_signing = {"keyCredentials": [{"keyId": "sign0001", "usage": "Sign", "endDateTime": "2027-01-01T00:00:00Z"}]}
    assert credential_summary(only_signing, now) == (
        "no secrets or certificates; 1 signing-only certificate (cannot sign the app in)",
        None,
        None,
    )


def test_default_catalogue_and_licensing_are_used_when_available(tmp_path):
    checks = pytest.importorskip("audit.checks")
    import openpyxl

    from audit.report import write_reports

    files = write_reports(sample_result(), tmp_path, formats=("xlsx",))
    ws = openpyxl.load_workbook(files.xlsx)["Checks"]
    ids = [r[0] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert ids == [c.id for c in checks.catalogue()]


def users_result(n: int):
    users = [user(f"u-{i}", f"user{i}@contoso.com", f"User {i}") for i in range(n)]
    result = clean_result()
    result.tenants[0].snapshot = snapshot("contoso", CONTOSO, users, {})
    result.tenants[0].users_scanned = result.tenants[0].users_in_directory = n
    return result


def test_users_sheet_memory_does_not_grow_with_rows(tmp_path):
    """Rows stream to disk: writing 4x the users must not need anywhere near 4x the memory."""
    from audit.report import write_reports

    peaks = []
    for n in (600, 2400):
        result = users_result(n)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            write_reports(
                result,
                tmp_path / str(n),
                formats=("xlsx",),
                catalogue=CATALOGUE,
                lookups=LOOKUPS,
                now=result.finished + timedelta(seconds=1),
            )
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.5, peaks


def test_app_registration_read_in_home_tenant_is_no_gap_elsewhere():
    from audit.models import READ_IN_HOME_AUDIT, NotEvaluated, RunResult, TenantResult, TenantStatus
    from audit.report.verdict import gaps

    home = "e419272c-dee4-42c8-8890-810aa7d8d9cf"
    reason = f"the app registration lives in its home tenant {home}, which {READ_IN_HOME_AUDIT}"
    other = TenantResult(
        "fabrikam",
        "52d847a0-445b-4a7e-894d-81ddc3d510e2",
        TenantStatus.OK,
        not_evaluated=[NotEvaluated("app-credential-expiring", reason, read_in=home)],
    )
    audited = TenantResult("contoso", home, TenantStatus.OK)
    failed = TenantResult("contoso", home, TenantStatus.FAILED, error="AADSTS7000215")
    started = datetime(2026, 11, 30, tzinfo=UTC)

    def run_of(*tenants):
        return RunResult(started=started, finished=started, version="t", probes=True, tenants=list(tenants))

    assert [g.what for g in gaps(run_of(other, audited))] == []
    assert "check app-credential-expiring not evaluated" in [g.what for g in gaps(run_of(other, failed))]
    # The field decides, not the wording: the same reason reworded is still covered by the home audit ...
    reworded = replace(other, not_evaluated=[NotEvaluated("app-credential-expiring", "read at home", read_in=home)])
    assert [g.what for g in gaps(run_of(reworded, audited))] == []
    # ... and the sentence alone, without the field, no longer is.
    unmarked = replace(other, not_evaluated=[NotEvaluated("app-credential-expiring", reason)])
    assert [g.what for g in gaps(run_of(unmarked, audited))] == ["check app-credential-expiring not evaluated"]


def test_app_checks_that_need_consent_are_no_gap_where_consent_is_the_finding():
    from audit.models import NotEvaluated, RunResult, TenantResult, TenantStatus
    from audit.report.verdict import gaps

    started = datetime(2026, 11, 30, tzinfo=UTC)
    skipped = [
        NotEvaluated("app-missing-permission", "the remediation app has no service principal"),
        NotEvaluated("mailbox-outside-app-scope", "no policy export"),
    ]
    unconsented = TenantResult(
        "fabrikam",
        "f-id",
        TenantStatus.OK,
        not_evaluated=skipped,
        findings=[finding("f-id", "app-not-consented", "critical", None)],
    )
    consented = TenantResult("fabrikam", "f-id", TenantStatus.OK, not_evaluated=skipped)

    def whats(t):
        return [g.what for g in gaps(RunResult(started, started, "t", True, [t]))]

    assert whats(unconsented) == ["check mailbox-outside-app-scope not evaluated"]
    assert "check app-missing-permission not evaluated" in whats(consented)


def test_exit_code_reads_the_failure_kind_not_the_error_text(write, tmp_path):
    from audit.exitcodes import ExitCode
    from audit.models import Failure, RunResult, TenantResult
    from audit.report import read_json_report
    from audit.runner import exit_code

    started = datetime(2026, 11, 30, tzinfo=UTC)

    def run_of(*tenants):
        return RunResult(started=started, finished=started, version="t", probes=True, tenants=list(tenants))

    refused = TenantResult("a", "t-a", TenantStatus.FAILED, error="AADSTS7000215", failure=Failure.AUTHENTICATION)
    unreadable = TenantResult("b", "t-b", TenantStatus.FAILED, error="authentication-like text", failure=Failure.GRAPH)
    assert exit_code(run_of(refused), [], "high") == ExitCode.USAGE
    assert exit_code(run_of(unreadable), [], "high") == ExitCode.PARTIAL
    assert exit_code(run_of(refused, unreadable), [], "high") == ExitCode.PARTIAL

    # Stored in the JSON report, so a merge of shard reports decides the same way; older reports said it
    # only in the error text, which is read then.
    files = write(run_of(refused, unreadable))
    result, _ = read_json_report(files.json)
    assert [t.failure for t in result.tenants] == [Failure.AUTHENTICATION, Failure.GRAPH]
    data = json.loads(files.json.read_text())
    for t in data["tenants"]:
        del t["failure"]
    data["tenants"][0]["error"] = "authentication: AADSTS7000215"
    data["tenants"][1]["error"] = "Graph answered 503 after retries"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    result, _ = read_json_report(old)
    assert [t.failure for t in result.tenants] == [Failure.AUTHENTICATION, Failure.GRAPH]


def test_read_in_is_stored_and_read_from_older_reports(write, tmp_path):
    from audit.models import READ_IN_HOME_AUDIT, NotEvaluated, RunResult, TenantResult
    from audit.report import read_json_report

    home = "e419272c-dee4-42c8-8890-810aa7d8d9cf"
    reason = f"the app registration lives in its home tenant {home}, which {READ_IN_HOME_AUDIT}"
    started = datetime(2026, 11, 30, tzinfo=UTC)
    other = TenantResult(
        "fabrikam", "t-f", TenantStatus.OK, not_evaluated=[NotEvaluated("app-credential-expiring", reason, home)]
    )
    files = write(RunResult(started=started, finished=started, version="t", probes=True, tenants=[other]))
    data = json.loads(files.json.read_text())
    assert data["tenants"][0]["not_evaluated"][0]["read_in"] == home
    del data["tenants"][0]["not_evaluated"][0]["read_in"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    result, _ = read_json_report(old)
    assert result.tenants[0].not_evaluated[0].read_in == home


@pytest.mark.parametrize(
    ("severities", "fail_on", "expected"),
    [
        (["high"], "high", 1),  # at the threshold: findings
        (["medium", "low"], "high", 0),  # below it: ok
        (["critical"], "high", 1),
        (["medium"], "medium", 1),
        (["low"], "medium", 0),
        ([], "low", 0),
    ],
)
def test_exit_code_1_needs_a_counted_finding_at_or_above_the_fail_threshold(severities, fail_on, expected):
    from audit.runner import exit_code

    clean = clean_result()
    counted = [
        finding(CONTOSO, "no-exchange-license", s, user(f"u{i}", f"u{i}@contoso.com")) for i, s in enumerate(severities)
    ]
    assert exit_code(clean, counted, fail_on) == expected
