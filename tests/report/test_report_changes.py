"""Changes across runs: new, resolved, still open (first_seen carried), and what could not be re-checked."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import openpyxl
from conftest import CONTOSO, FABRIKAM, STARTED, finding, sample_result, user

from audit.report import read_json_report, summary_line
from audit.report.cells import iso

T1 = STARTED
T2 = STARTED + timedelta(days=7)
T3 = STARTED + timedelta(days=14)


def first_run():
    result = sample_result(started=T1)
    fabrikam = result.tenants[1]
    fabrikam.not_evaluated = []  # evaluated last week, not this week
    fabrikam.findings.append(
        finding(FABRIKAM, "recipient-not-in-directory", "low", user("u-ghost", "ghost@fabrikam.com", "Ghost"))
    )
    return result


def second_run():
    erin = user("u-erin", "erin@contoso.com", "Erin Unprobed")
    return sample_result(
        started=T2, drop=("u-bob", "u-carol"), contoso_extra=[finding(CONTOSO, "no-exchange-license", "high", erin)]
    )


def keyset(findings):
    return {(f.check_id, f.user_id) for f in findings}


def test_changes_between_two_runs(write):
    one = write(first_run())
    two = write(second_run())

    changes = two.assessment.changes
    assert changes.previous == one.json
    assert keyset(changes.new) == {("no-exchange-license", "u-erin")}
    assert keyset(changes.resolved) == {("no-exchange-license", "u-bob")}
    # carol's probe failed this run and fabrikam did not evaluate the recipient check: not resolved
    assert keyset(changes.unverified) == {("on-premises-mailbox", "u-carol"), ("recipient-not-in-directory", "u-ghost")}
    assert keyset(changes.still_open) == {("soft-deleted-user", "u-dave"), ("app-missing-permission", None)}

    first_seen = {(f.check_id, f.user_id): f.first_seen for f in two.assessment.findings}
    assert first_seen[("soft-deleted-user", "u-dave")] == iso(T1)
    assert first_seen[("app-missing-permission", None)] == iso(T1)
    assert first_seen[("no-exchange-license", "u-erin")] == iso(T2)

    data = json.loads(two.json.read_text())
    assert {(f["check_id"], f["user_id"]): f["first_seen"] for f in data["findings"]} == first_seen

    wb = openpyxl.load_workbook(two.xlsx)
    rows = list(wb["Changes"].iter_rows(min_row=2, values_only=True))
    by_label = {}
    for row in rows:
        by_label.setdefault(row[0], set()).add((row[3], row[7]))
    assert by_label == {
        "new": {("no-exchange-license", "u-erin")},
        "resolved": {("no-exchange-license", "u-bob")},
        "not re-checked": {("on-premises-mailbox", "u-carol"), ("recipient-not-in-directory", "u-ghost")},
        "still open": {("soft-deleted-user", "u-dave"), ("app-missing-permission", None)},
    }
    summary = [r for r in wb["Summary"].iter_rows(values_only=True) if r[0] == "Compared with"]
    assert summary[0][1] == one.json.name

    assert summary_line(second_run(), two.assessment) == (
        "contoso, fabrikam, northwind — 3 findings (1 critical, 1 high, +1 new, -1 resolved)"
        " — INCOMPLETE: northwind failed"
    )


def test_first_seen_survives_a_chain_of_runs(write):
    write(first_run())
    write(second_run())
    three = write(sample_result(started=T3, drop=("u-bob", "u-carol")))
    first_seen = {(f.check_id, f.user_id): f.first_seen for f in three.assessment.findings}
    assert first_seen[("soft-deleted-user", "u-dave")] == iso(T1)


def test_first_report_has_no_previous_and_every_finding_is_new(write):
    files = write(sample_result())
    assert files.assessment.changes.previous is None
    assert len(files.assessment.changes.new) == len(files.assessment.findings) and not files.assessment.changes.resolved
    assert all(f.first_seen == iso(STARTED) for f in files.assessment.findings)
    assert "new" not in summary_line(sample_result(), files.assessment)


def test_tenant_outside_this_run_is_not_resolved(write):
    write(first_run())
    only_contoso = sample_result(started=T2)
    only_contoso.tenants = only_contoso.tenants[:1]
    files = write(only_contoso)
    changes = files.assessment.changes
    assert not any(f.tenant_id == FABRIKAM for f in changes.resolved + changes.unverified)
    assert not files.assessment.changes.resolved


def test_unreadable_previous_report_is_skipped_with_a_note(write, tmp_path):
    one = write(first_run())
    broken = tmp_path / "reports" / "etd-audit-99990101T000000Z.json"
    broken.write_text("{not json")
    two = write(second_run())
    assert two.assessment.changes.previous == one.json
    assert any("skipped" in note and broken.name in note for note in two.assessment.changes.notes)


def test_read_json_report_round_trip(write):
    files = write(first_run())
    result, counted = read_json_report(files.json)
    assert result.started == T1 and result.version == "0.1.0" and result.probes is True
    assert [t.name for t in result.tenants] == ["contoso", "fabrikam", "northwind"]
    assert [str(t.status) for t in result.tenants] == ["ok", "partial", "failed"]
    assert result.tenants[0].not_assessed == {"mailbox probe failed after retries": 1}
    assert result.tenants[0].users_in_directory == 5
    assert keyset(counted) == keyset(files.assessment.findings)
    assert all(f.first_seen == iso(T1) for f in result.findings)


def test_users_not_assessed_are_not_resolved_without_a_snapshot(write):
    """A merged report has no snapshots: the users not assessed come from the shards' JSON."""
    from dataclasses import replace

    from audit.report.changes import compare

    one = write(first_run())
    previous, _ = read_json_report(one.json)
    bare = second_run()
    bare.tenants = [
        replace(t, snapshot=None, not_assessed_users=("u-carol",) if t.name == "contoso" else ()) for t in bare.tenants
    ]
    changes, _ = compare(bare, bare.findings, previous, one.json)
    assert ("on-premises-mailbox", "u-carol") in keyset(changes.unverified)
    assert ("on-premises-mailbox", "u-carol") not in keyset(changes.resolved)

    two = write(bare)
    again, _ = read_json_report(two.json)
    assert {t.name: t.not_assessed_users for t in again.tenants}["contoso"] == ("u-carol",)


def _permission_findings(started, wording: str):
    result = sample_result(started=started)
    fabrikam = result.tenants[1]
    fabrikam.findings = [
        replace(finding(FABRIKAM, "app-missing-permission", "critical", None, wording.format(role)), subject=role)
        for role in ("Mail.ReadWrite", "Organization.Read.All")
    ]
    return result


def test_rewording_the_evidence_keeps_a_tenant_finding_open_with_its_first_seen(write):
    """Identity is the subject the check set and the report stored, not a phrase parsed out of the evidence."""
    write(_permission_findings(T1, "{} is not granted"))
    two = write(_permission_findings(T2, "the app lacks {} (reworded)"))
    tenant_level = [f for f in two.assessment.findings if f.check_id == "app-missing-permission"]
    assert {f.subject for f in tenant_level} == {"Mail.ReadWrite", "Organization.Read.All"}
    assert {f.first_seen for f in tenant_level} == {iso(T1)}
    assert not [f for f in two.assessment.changes.new if f.check_id == "app-missing-permission"]
    assert not [f for f in two.assessment.changes.resolved if f.check_id == "app-missing-permission"]


def test_a_report_written_before_subjects_were_stored_still_names_them(write, tmp_path):
    one = write(_permission_findings(T1, "no Microsoft Graph application permission {} (id); held: none"))
    data = json.loads(one.json.read_text())
    for f in data["findings"]:
        del f["subject"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    _, counted = read_json_report(old)
    assert {f.subject for f in counted if f.check_id == "app-missing-permission"} == {
        "mail.readwrite",
        "organization.read.all",
    }
