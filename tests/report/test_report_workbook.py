"""The workbook read back with openpyxl: every sheet against the RunResult it came from."""

from __future__ import annotations

import re
import zipfile
from datetime import datetime

import openpyxl
import pytest
from conftest import CATALOGUE, CONTOSO, FABRIKAM, NORTHWIND, STARTED, clean_result, sample_result

SHEETS = ["Summary", "Findings", "Users", "Tenant", "Changes", "Accepted", "Checks"]


def table(ws) -> list[dict]:
    """A table sheet as dicts keyed by its header row."""
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    return [dict(zip(header, row, strict=True)) for row in rows[1:] if any(v is not None for v in row)]


def column(ws, header: str) -> int:
    return [c.value for c in ws[1]].index(header) + 1


@pytest.fixture
def book(write):
    files = write(sample_result())
    return openpyxl.load_workbook(files.xlsx), files


def test_sheet_order(book):
    wb, _ = book
    assert wb.sheetnames == SHEETS


def test_every_table_sheet_has_bold_frozen_header_and_autofilter(book):
    wb, _ = book
    for name in SHEETS[1:]:
        ws = wb[name]
        assert ws.freeze_panes == "A2", name
        assert all(c.font.bold for c in ws[1] if c.value), name
        last = ws.cell(row=1, column=ws.max_column).column_letter
        assert ws.auto_filter.ref == f"A1:{last}{max(ws.max_row, 1)}", name
        assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth >= 1, name
        assert ws.print_title_rows == "$1:$1", name
        widths = [ws.column_dimensions[c.column_letter].width for c in ws[1]]
        assert all(8 <= w <= 60 for w in widths), (name, widths)
        assert ws["A1"].value != "index" and ws["A1"].value is not None  # no index column


def test_findings_sheet_matches_the_findings(book):
    wb, files = book
    ws = wb["Findings"]
    rows = table(ws)
    assert len(rows) == len(files.assessment.findings) == 4
    assert [r["Severity"] for r in rows] == ["critical", "high", "high", "medium"]  # worst first
    bob = next(r for r in rows if r["Check"] == "no-exchange-license")
    assert bob == {
        "Tenant": "contoso",
        "Tenant id": CONTOSO,
        "Check": "no-exchange-license",
        "Severity": "high",
        "User principal name": "bob@contoso.com",
        "Display name": "Bob NoLicence",
        "Object id": "u-bob",
        "Predicted error": "Resource is Not Found",
        "Cause": CATALOGUE[0].cause,
        "Fix": CATALOGUE[0].fix,
        "Evidence": "no licence with an Exchange plan",
        "First seen (UTC)": STARTED.replace(tzinfo=None),
        "Note": None,
    }
    tenant_level = next(r for r in rows if r["Check"] == "app-missing-permission")
    assert tenant_level["Tenant"] == "fabrikam" and tenant_level["User principal name"] is None
    # first seen is a real date cell, not text
    cell = ws.cell(row=2, column=column(ws, "First seen (UTC)"))
    assert cell.is_date and isinstance(cell.value, datetime)


def test_severity_cells_are_coloured(book):
    wb, _ = book
    ws = wb["Findings"]
    col = column(ws, "Severity")
    fills = {
        ws.cell(row=r, column=col).value: ws.cell(row=r, column=col).fill.fgColor.rgb for r in range(2, ws.max_row + 1)
    }
    assert fills == {"critical": "008B0000", "high": "00FF0000", "medium": "00FFBF00"}
    checks = wb["Checks"]
    low = next(r for r in range(2, checks.max_row + 1) if checks.cell(row=r, column=3).value == "low")
    assert checks.cell(row=low, column=3).fill.fgColor.rgb == "00BFBFBF"


def test_findings_cause_fix_and_evidence_wrap_in_sized_columns(book):
    """Text longer than its column wraps (shorter text needs no style: a style per cell costs time)."""
    from audit.report.workbook import CHARS_PER_WIDTH

    wb, _ = book
    ws = wb["Findings"]
    for header, width in (("Cause", 30), ("Fix", 40), ("Evidence", 22), ("User principal name", 24)):
        col = column(ws, header)
        cells = [ws.cell(row=r, column=col) for r in range(2, ws.max_row + 1)]
        long = [c for c in cells if c.value is not None and len(str(c.value)) > width * CHARS_PER_WIDTH]
        assert all(c.alignment.wrap_text and c.alignment.vertical == "top" for c in long), header
        assert ws.column_dimensions[ws.cell(row=1, column=col).column_letter].width == width, header


def test_users_sheet_lists_every_account(book):
    wb, _ = book
    ws = wb["Users"]
    rows = {r["Object id"]: r for r in table(ws)}
    assert set(rows) == {"u-alice", "u-bob", "u-carol", "u-erin", "u-dave", "u-frank"}  # northwind: none
    alice, bob, carol, erin, dave = (rows[k] for k in ("u-alice", "u-bob", "u-carol", "u-erin", "u-dave"))
    assert alice["Licenses"] == "ENTERPRISEPACK" and alice["Exchange plan"] == "Enabled"
    assert (alice["Mailbox"], alice["Mailbox purpose"], alice["Mailbox source"]) == ("mailbox", "user", "usage report")
    assert alice["Findings"] is None and alice["Enabled"] == "yes" and alice["Hybrid sync"] == "no"
    assert bob["Licenses"] is None and bob["Exchange plan"] == "none"
    assert bob["Mailbox"] == "no mailbox (MailboxNotEnabledForRESTAPI)" and bob["Mailbox source"] == "probe"
    assert bob["Findings"] == "no-exchange-license"
    assert carol["Licenses"] == "ENTERPRISEPACK (group)" and carol["Hybrid sync"] == "yes"
    assert carol["Mailbox"] == "failed (TooManyRequests)"
    assert erin["Mailbox source"] == "not probed" and erin["Mailbox"] is None
    assert dave["Deleted (UTC)"] == datetime(2025, 2, 20, 10, 0)
    assert rows["u-frank"]["Tenant"] == "fabrikam"
    created = ws.cell(row=2, column=column(ws, "Created (UTC)"))
    assert created.is_date and created.value == datetime(2020, 5, 17, 9, 30)


def test_tenant_sheet(book):
    wb, _ = book
    rows = {r["Tenant"]: r for r in table(wb["Tenant"])}
    contoso, fabrikam, northwind = rows["contoso"], rows["fabrikam"], rows["northwind"]
    assert contoso["Remediation app consent"] == "present" and contoso["App enabled"] == "yes"
    assert (contoso["Mail.ReadWrite"], contoso["Organization.Read.All"]) == ("present", "present")
    assert contoso["Sign-in audience"] == "AzureADMultipleOrgs"
    assert contoso["Verified domains"] == "contoso.com, contoso.onmicrosoft.com"
    assert contoso["Next credential expiry (UTC)"] == datetime(2025, 4, 1)
    assert contoso["Last credential expiry (UTC)"] == datetime(2026, 1, 15, 12, 0)
    assert "secret 'prod' until 2025-04-01" in contoso["Credentials"]
    assert fabrikam["Mail.ReadWrite"] == "missing" and fabrikam["Organization.Read.All"] == "present"
    assert fabrikam["Credentials"].startswith("not readable:")
    assert northwind["Status"] == "failed" and northwind["Remediation app consent"].startswith("unknown")
    assert "AADSTS7000215" in northwind["Notes"]


def test_tenant_sheet_absent_service_principal(write):
    from conftest import snapshot, user

    result = clean_result()
    result.tenants[0].snapshot = snapshot("contoso", CONTOSO, [user("u-a", "a@contoso.com")], {}, sp=None)
    wb = openpyxl.load_workbook(write(result).xlsx)
    row = table(wb["Tenant"])[0]
    assert row["Remediation app consent"].startswith("absent")
    assert row["Mail.ReadWrite"] == "unknown"  # no service principal, so no assignments to read


def test_checks_sheet_is_the_catalogue(book):
    wb, _ = book
    rows = table(wb["Checks"])
    assert [r["Check"] for r in rows] == [c.id for c in CATALOGUE]
    assert rows[0]["Fix"] == CATALOGUE[0].fix and rows[0]["Predicts"] == CATALOGUE[0].predicts


def summary_values(ws) -> list[tuple]:
    return [row for row in ws.iter_rows(values_only=True) if any(v is not None for v in row)]


def test_summary_headline_tenants_gaps_and_checks(book):
    wb, files = book
    ws = wb["Summary"]
    assert ws["A2"].value == "NOT SAFE"
    assert "4 findings" in ws["B2"].value and "incomplete" in ws["B2"].value.lower()
    values = summary_values(ws)
    labels = {row[0]: row[1] for row in values}
    assert labels["Run started (UTC)"] == STARTED.replace(tzinfo=None)
    assert labels["Duration"] == "4 min 7 s" and labels["Tool version"] == "0.1.0"
    assert labels["Mailbox probes"] == "on"
    tenants = {row[0]: row for row in values if row[1] in (CONTOSO, FABRIKAM, NORTHWIND)}
    # Tenant, id, verdict, read, in directory, enumerated, probed, not assessed, critical, high, medium, low
    assert tenants["contoso"][2:12] == ("NOT SAFE", "partly", 5, 5, 3, 1, 0, 2, 1, 0)
    assert tenants["fabrikam"][2:9] == ("NOT SAFE", "partly", 2, 1, 0, 0, 1)
    assert tenants["northwind"][2:4] == ("INCOMPLETE", "not read") and "AADSTS7000215" in tenants["northwind"][13]
    gaps = [
        row
        for row in values
        if row[0] in ("contoso", "fabrikam", "northwind") and row[1] and row[1] not in (CONTOSO, FABRIKAM, NORTHWIND)
    ]
    whats = {(row[0], row[1]) for row in gaps}
    assert ("northwind", "tenant not audited") in whats
    assert ("fabrikam", "check recipient-not-in-directory not evaluated") in whats
    assert ("contoso", "1 user not assessed") in whats
    assert ("fabrikam", "1 user not read") in whats
    checks = {row[0]: row for row in values if row[0] in {c.id for c in CATALOGUE}}
    assert checks["no-exchange-license"][3] == 1
    assert checks["no-exchange-license"][13] == "Resource is Not Found"
    assert checks["recipient-not-in-directory"][3] == 0
    assert checks["recipient-not-in-directory"][5] == "fabrikam"  # not evaluated there


def test_summary_has_a_bar_chart_of_findings_by_check_worst_first(book):
    wb, files = book
    with zipfile.ZipFile(files.xlsx) as z:
        charts = sorted(n for n in z.namelist() if n.startswith("xl/charts/chart"))
        xml = next(z.read(n).decode() for n in charts if "Findings by check" in z.read(n).decode())
    assert "<barChart>" in xml and '<barDir val="bar"' in xml and '<grouping val="stacked"' in xml
    # categories are the chart-data labels in P, one series per severity in Q..T, coloured by severity
    categories = re.search(r"'Summary'!\$P\$(\d+):\$P\$(\d+)", xml)
    assert categories
    first, last = map(int, categories.groups())
    for col in "QRST":
        assert f"'Summary'!${col}${first}:${col}${last}" in xml
    fills = re.findall(r'<ser>.*?<a:srgbClr val="([0-9A-F]{6})"', xml.replace("\n", ""), re.S)
    assert fills == ["8B0000", "FF0000", "FFBF00", "BFBFBF"]
    ws = wb["Summary"]
    labels = [ws.cell(row=r, column=16).value for r in range(first, last + 1)]
    counts = [[ws.cell(row=r, column=c).value or 0 for c in range(17, 21)] for r in range(first, last + 1)]
    # worst severity first, then most findings; a check not evaluated somewhere says so
    assert labels == [
        "app-missing-permission",
        "no-exchange-license",
        "on-premises-mailbox",
        "soft-deleted-user",
        "recipient-not-in-directory (not evaluated in fabrikam)",
    ]
    assert counts[:4] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert ws.cell(row=first, column=17).value == 1 and ws.cell(row=first, column=18).value is None  # no 0 bars


def test_summary_safe_only_when_everything_was_assessed_and_clean(write, tmp_path):
    wb = openpyxl.load_workbook(write(clean_result()).xlsx)
    assert wb["Summary"]["A2"].value == "SAFE"
    values = summary_values(wb["Summary"])
    assert any("Nothing: every tenant was read" in str(row[0]) for row in values)


def test_summary_incomplete_when_clean_but_a_tenant_failed(write):
    from audit.models import TenantResult, TenantStatus

    result = clean_result()
    result.tenants.append(TenantResult("northwind", NORTHWIND, TenantStatus.FAILED, error="authentication: x"))
    wb = openpyxl.load_workbook(write(result).xlsx)
    assert wb["Summary"]["A2"].value == "INCOMPLETE"
    assert "1 tenant failed" in wb["Summary"]["B2"].value


def test_summary_incomplete_when_a_check_was_not_evaluated(write):
    from audit.models import NotEvaluated

    result = clean_result()
    result.tenants[0].not_evaluated.append(NotEvaluated("soft-deleted-user", "grant User.Read.All"))
    wb = openpyxl.load_workbook(write(result).xlsx)
    assert wb["Summary"]["A2"].value == "INCOMPLETE"


def test_large_users_sheet_streams(write):
    """5,000 users: written in one pass, all rows present, columns sized from a sample."""
    from conftest import snapshot, user

    users = [user(f"u-{i}", f"user{i}@contoso.com", f"User {i}") for i in range(5000)]
    result = clean_result()
    result.tenants[0].snapshot = snapshot("contoso", CONTOSO, users, {})
    result.tenants[0].users_scanned = result.tenants[0].users_in_directory = 5000
    wb = openpyxl.load_workbook(write(result, formats=("xlsx",)).xlsx, read_only=True)
    ws = wb["Users"]
    assert sum(1 for _ in ws.iter_rows(min_row=2, values_only=True)) == 5000
