"""compare(): an earlier finding absent now is resolved only where this run really looked again.

A tenant that failed this run, a check not evaluated, a user whose probe failed or who was not assessed:
each leaves the earlier finding "not re-checked", never "resolved". A tenant audited cleanly resolves it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.models import (
    Dataset,
    Finding,
    MailboxProbe,
    NotEvaluated,
    RunResult,
    Severity,
    TenantResult,
    TenantStatus,
)
from audit.report.changes import compare
from tests.checks.builders import snapshot

BEFORE = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
NOW = BEFORE + timedelta(days=7)
TENANT = "abcdef12-3456-4789-8abc-def123456789"  # letters in it: tenant ids are matched case-insensitively


def old_finding(check_id: str = "no-exchange-license", user_id: str | None = "u1") -> Finding:
    return Finding(
        tenant_id=TENANT,
        check_id=check_id,
        severity=Severity.HIGH,
        user_principal_name=f"{user_id}@contoso.com" if user_id else None,
        user_id=user_id,
        display_name=None,
        predicted_error="Resource is Not Found",
        cause="cause",
        fix="fix",
        evidence="evidence",
        first_seen="2025-02-01T06:00:00Z",
    )


def run_of(tenant: TenantResult, started: datetime = NOW) -> RunResult:
    return RunResult(started=started, finished=started, version="test", probes=True, tenants=[tenant])


def previous_with(*findings: Finding) -> RunResult:
    return run_of(TenantResult("contoso", TENANT, TenantStatus.OK, findings=list(findings)), BEFORE)


def outcome(tenant: TenantResult, earlier: Finding) -> tuple[list, list]:
    changes, _ = compare(run_of(tenant), [], previous_with(earlier), None)
    return changes.resolved, changes.unverified


def test_an_old_finding_of_a_tenant_audited_cleanly_is_resolved():
    earlier = old_finding()
    resolved, unverified = outcome(TenantResult("contoso", TENANT, TenantStatus.OK), earlier)
    assert resolved == [earlier] and unverified == []


def test_a_failed_tenants_old_findings_are_not_resolved():
    earlier = old_finding()
    failed = TenantResult("contoso", TENANT, TenantStatus.FAILED, error="token request refused")
    resolved, unverified = outcome(failed, earlier)
    assert resolved == [] and unverified == [earlier]


def test_a_partial_tenant_still_resolves_what_it_did_check():
    earlier = old_finding()
    partial = TenantResult("contoso", TENANT, TenantStatus.PARTIAL, error="deleted users could not be read")
    resolved, unverified = outcome(partial, earlier)
    assert resolved == [earlier] and unverified == []


def test_a_check_not_evaluated_this_run_leaves_its_old_findings_unverified():
    earlier = old_finding("App-Disabled", user_id=None)
    skipped = TenantResult(
        "contoso", TENANT, TenantStatus.PARTIAL, not_evaluated=[NotEvaluated("app-disabled", "not readable")]
    )
    other = TenantResult(
        "contoso", TENANT, TenantStatus.PARTIAL, not_evaluated=[NotEvaluated("app-single-tenant", "not readable")]
    )
    assert outcome(skipped, earlier) == ([], [earlier])
    assert outcome(other, earlier) == ([earlier], [])


def test_a_user_not_assessed_this_run_is_not_resolved():
    earlier = old_finding(user_id="u1")
    tenant = TenantResult("contoso", TENANT, TenantStatus.OK, not_assessed_users=("u1",))
    assert outcome(tenant, earlier) == ([], [earlier])
    tenant_of_another = TenantResult("contoso", TENANT, TenantStatus.OK, not_assessed_users=("u2",))
    assert outcome(tenant_of_another, earlier) == ([earlier], [])


@pytest.mark.parametrize(
    "probe, resolved",
    [
        (MailboxProbe("failed", code="ServiceUnavailable"), False),
        (MailboxProbe("access_denied", code="ErrorAccessDenied"), False),
        (MailboxProbe("mailbox", purpose="user"), True),
        (MailboxProbe("no_mailbox", code="MailboxNotEnabledForRESTAPI"), True),
    ],
    ids=["failed", "access_denied", "mailbox", "no_mailbox"],
)
def test_an_old_user_finding_is_resolved_only_where_the_probe_worked(probe, resolved):
    earlier = old_finding(user_id="u1")
    tenant = TenantResult("contoso", TENANT, TenantStatus.OK, snapshot=snapshot(probes={"u1": probe}))
    assert outcome(tenant, earlier) == (([earlier], []) if resolved else ([], [earlier]))


def test_probes_switched_off_do_not_hold_back_a_resolution():
    earlier = old_finding(user_id="u1")
    tenant = TenantResult("contoso", TENANT, TenantStatus.OK, snapshot=snapshot(probes=Dataset.missing("off")))
    assert outcome(tenant, earlier) == ([earlier], [])


def test_a_finding_still_present_carries_its_first_seen_and_a_new_one_gets_this_runs_start():
    earlier = old_finding()
    same = old_finding()
    fresh = old_finding(user_id="u9")
    changes, stamped = compare(
        run_of(TenantResult("contoso", TENANT.upper(), TenantStatus.OK)), [same, fresh], previous_with(earlier), None
    )
    assert [f.first_seen for f in stamped] == ["2025-02-01T06:00:00Z", "2025-03-10T06:00:00Z"]
    assert changes.still_open == [stamped[0]] and changes.new == [stamped[1]] and changes.resolved == []


def test_without_an_earlier_report_every_finding_is_new_and_the_notes_are_kept():
    # The only earlier report could not be read: no comparison, yet the admin must still be told why.
    tenant = TenantResult("contoso", TENANT, TenantStatus.OK, findings=[old_finding()])
    note = "Earlier report skipped: etd-audit-x.json is not valid JSON"
    changes, stamped = compare(run_of(tenant), tenant.findings, None, None, notes=[note])
    assert changes.notes == (note,)
    assert changes.previous is None and changes.resolved == [] and changes.still_open == []
    assert [f.first_seen for f in changes.new] == [f.first_seen for f in stamped] == [NOW.isoformat()[:19] + "Z"]
