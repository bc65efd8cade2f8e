"""The Summary's blocks read back with openpyxl: fix-first order, per-tenant verdicts and colours, one
story across blocks, the trend; and the print set-up of the Findings and Users sheets."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import openpyxl
from conftest import CONTOSO, FABRIKAM, NORTHWIND, clean_result, finding, sample_result, snapshot, user

from audit.models import NotEvaluated, TenantResult, TenantStatus
from audit.report.workbook import MIN_PRINT_SCALE, PAGE_UNITS, SEVERITY_COLOURS, VERDICT_COLOURS


def rows(ws) -> list[tuple]:
    return [row for row in ws.iter_rows(values_only=True) if any(v is not None for v in row)]


def block(ws, title: str) -> list[int]:
    """Row numbers of a Summary block: from the row after its title to the next blank row."""
    start = next(r for r in range(1, ws.max_row + 1) if ws.cell(row=r, column=1).value == title) + 1
    end = start
    while end <= ws.max_row and any(ws.cell(row=end, column=c).value is not None for c in range(1, 15)):
        end += 1
    return list(range(start, end))


def fill(cell) -> str:
    return cell.fill.fgColor.rgb[-6:]


def test_fix_first_lists_tenant_wide_critical_problems_first_with_the_mailboxes_they_break(write):
    result = sample_result()
    extra = [finding(CONTOSO, "no-exchange-license", "high", user(f"u-{i}", f"x{i}@contoso.com")) for i in range(5)]
    result.tenants[0].findings.extend(extra)
    ws = openpyxl.load_workbook(write(result).xlsx)["Summary"]
    header, *lines = block(ws, "Fix first")
    assert [ws.cell(row=header, column=c).value for c in range(1, 6)] == [
        "Tenant",
        "Problem",
        "Severity",
        "Mailboxes it breaks",
        "What to do",
    ]
    got = [tuple(ws.cell(row=r, column=c).value for c in range(1, 5)) for r in lines]
    # the critical tenant-wide problem first, although 6 users lack a licence: it breaks all of fabrikam
    assert got[0][0] == "fabrikam" and got[0][1].startswith("Remediation app lacks a permission: ")
    assert got[0][2:] == ("critical", 1)  # fabrikam's users read: 1
    assert got[1] == ("contoso", "User has no Exchange Online licence (no-exchange-license)", "high", 6)
    assert [g[2] for g in got] == ["critical", "high", "high", "medium"]
    assert [g[3] for g in got[1:]] == [6, 1, 1]  # then by severity, then by mailboxes
    for r, (_, _, severity, _) in zip(lines, got, strict=True):
        assert fill(ws.cell(row=r, column=3)) == SEVERITY_COLOURS[severity][0]
    assert ws.cell(row=lines[0], column=5).value == "Grant admin consent."  # the check's fix
    assert lines[0] < block(ws, "Tenants")[0]  # read before the tenants' counts


def test_each_tenant_shows_its_verdict_and_whether_it_was_read_completely_in_colour(write):
    result = sample_result()
    clean = clean_result().tenants[0]
    clean.name, clean.tenant_id = "litware", "44444444-4444-4444-4444-444444444444"
    result.tenants.append(clean)
    ws = openpyxl.load_workbook(write(result).xlsx)["Summary"]
    header, *lines = block(ws, "Tenants")
    assert ws.cell(row=header, column=3).value == "Verdict" and ws.cell(row=header, column=4).value == "Read"
    seen = {ws.cell(row=r, column=1).value: (ws.cell(row=r, column=3), ws.cell(row=r, column=4)) for r in lines}
    expect = {
        "contoso": ("NOT SAFE", "partly"),  # findings, and a user could not be assessed
        "fabrikam": ("NOT SAFE", "partly"),
        "northwind": ("INCOMPLETE", "not read"),
        "litware": ("SAFE", "completely"),
    }
    assert {name: (v.value, r.value) for name, (v, r) in seen.items()} == expect
    read_fills = {"completely": "C6EFCE", "partly": "FFEB9C", "not read": "FFC7CE"}
    for verdict_cell, read_cell in seen.values():
        assert fill(verdict_cell) == VERDICT_COLOURS[verdict_cell.value]
        assert fill(read_cell) == read_fills[read_cell.value]
    assert "ok" not in [c.value for pair in seen.values() for c in pair]


def test_no_block_contradicts_another_when_not_evaluated_checks_are_explained(write):
    """The demo's fabrikam: the app was never consented, so its app checks have nothing to look at. The
    old Summary said 'Nothing could not be assessed' beside '3 check(s) not evaluated'."""
    result = clean_result()
    t = result.tenants[0]
    t.findings.append(finding(CONTOSO, "app-missing-permission", "critical", None, "no service principal"))
    t.findings[-1] = replace(t.findings[-1], check_id="app-not-consented")
    t.not_evaluated += [
        NotEvaluated("app-disabled", "the remediation app has no service principal in this tenant"),
        NotEvaluated("app-single-tenant", "the remediation app has no service principal here"),
    ]
    ws = openpyxl.load_workbook(write(result).xlsx)["Summary"]
    text = [str(v) for row in rows(ws) for v in row if v is not None]
    assert "Nothing: every tenant was read and every check evaluated." in text
    assert not [v for v in text if "not evaluated" in v], "a block names a gap the gap list does not have"
    tenant = next(r for r in block(ws, "Tenants")[1:] if ws.cell(row=r, column=1).value == "contoso")
    assert ws.cell(row=tenant, column=4).value == "completely"
    assert ws.cell(row=tenant, column=14).value is None


def test_gaps_are_named_the_same_in_the_tenants_block_and_in_could_not_be_assessed(write):
    ws = openpyxl.load_workbook(write(sample_result()).xlsx)["Summary"]
    gaps = {
        (ws.cell(row=r, column=1).value, ws.cell(row=r, column=2).value) for r in block(ws, "Could not be assessed")
    }
    for r in block(ws, "Tenants")[1:]:
        name, problem = ws.cell(row=r, column=1).value, ws.cell(row=r, column=14).value
        for part in (problem or "").split("; "):
            if part and not part.startswith(("not audited: ", "the mailbox usage report")):
                assert (name, part) in gaps, (name, part)


def test_trend_of_open_findings_over_earlier_reports_in_the_folder(write, tmp_path):
    out = tmp_path / "reports"
    base = sample_result()
    files = []
    for week, drop in enumerate([(), ("u-bob",), ("u-bob", "u-carol")]):
        result = sample_result(started=base.started + timedelta(days=7 * week), drop=drop)
        files.append(write(result, out_dir=out, stem=f"etd-audit-week{week}"))
    data = json.loads(files[-1].json.read_text())
    assert [(p["report"], p["critical"], p["high"], p["medium"], p["low"]) for p in data["trend"]] == [
        ("etd-audit-week0.json", 1, 2, 1, 0),
        ("etd-audit-week1.json", 1, 1, 1, 0),
        ("etd-audit-week2.json", 1, 0, 1, 0),
    ]
    assert data["trend"][0]["started"] == "2025-03-03T06:00:00Z"
    ws = openpyxl.load_workbook(files[-1].xlsx)["Summary"]
    trend = next(c for c in ws._charts if c.tagname == "lineChart")
    assert [s.tx.strRef.f for s in trend.series] == [f"'Summary'!{c}{trend.series[0].tx.strRef.f[-2:]}" for c in "QRST"]
    header = int(trend.series[0].tx.strRef.f.split("Q")[1])
    values = [[ws.cell(row=header + i, column=c).value for c in range(16, 21)] for i in range(1, 4)]
    assert values == [
        ["2025-03-03 06:00", 1, 2, 1, 0],
        ["2025-03-10 06:00", 1, 1, 1, 0],
        ["2025-03-17 06:00", 1, 0, 1, 0],
    ]


def test_first_report_in_a_folder_has_a_one_point_trend_and_says_so(write):
    files = write(sample_result())
    assert [p["report"] for p in json.loads(files.json.read_text())["trend"]] == [files.json.name]
    ws = openpyxl.load_workbook(files.xlsx)["Summary"]
    assert not [c for c in ws._charts if c.tagname == "lineChart"]
    assert any(str(row[0]).startswith("Trend: this is the first report") for row in rows(ws))


def test_findings_sheet_prints_one_page_across_at_a_readable_scale_with_its_header_on_every_page(write):
    long = replace(
        finding(CONTOSO, "no-exchange-license", "critical", user("u-x", "x@contoso.com")),
        cause="The account holds no enabled Exchange Online plan. " * 6,
        fix="Assign a licence that includes Exchange Online and tick its Exchange app. " * 6,
    )
    ws = openpyxl.load_workbook(write(sample_result(contoso_extra=[long])).xlsx)["Findings"]
    assert ws["D2"].value == "x@contoso.com"  # the critical finding comes first
    header = [c.value for c in ws[1]]
    assert header[:8] == [
        "Severity",
        "Tenant",
        "Check",
        "User principal name",
        "Predicted error",
        "Cause",
        "Fix",
        "Evidence",
    ]
    assert ws.print_area == f"'Findings'!$A$1:$H${ws.max_row}"
    assert ws.print_title_rows == "$1:$1" and ws.page_setup.orientation == "landscape"
    assert ws.page_setup.fitToWidth == 1 and ws.page_setup.fitToHeight == 0
    printed = sum(ws.column_dimensions[c].width for c in "ABCDEFGH")
    assert printed <= PAGE_UNITS / MIN_PRINT_SCALE  # fits across at 80 % or more
    for c in "FG":  # cause and fix (longer than a line) wrap, top-aligned, in a row tall enough for them
        assert ws[f"{c}2"].alignment.wrap_text and ws[f"{c}2"].alignment.vertical == "top"
    assert ws["H2"].alignment.vertical == "top" and ws.row_dimensions[2].height >= 15 * 7


def test_users_sheet_fits_guest_upns_and_prints_across_as_many_pages_as_keep_it_readable(write):
    result = clean_result()
    guest = "adele.vance_partner.example.com#EXT#@contoso.onmicrosoft.com"
    people = [user("u-a", "a@contoso.com"), user("u-g", guest)]
    result.tenants[0].snapshot = snapshot("contoso", CONTOSO, people, {})
    ws = openpyxl.load_workbook(write(result).xlsx)["Users"]
    assert ws["B1"].value == "User principal name"
    assert ws.column_dimensions["B"].width >= len(guest)
    widths = sum(ws.column_dimensions[c.column_letter].width for c in ws[1])
    assert ws.page_setup.fitToWidth >= widths / (PAGE_UNITS / MIN_PRINT_SCALE)
    assert ws.print_title_rows == "$1:$1"


def test_checks_sheet_names_the_permission_or_input_each_check_needs(write):
    from audit.checks import catalogue

    ws = openpyxl.load_workbook(write(clean_result(), catalogue=list(catalogue())).xlsx)["Checks"]
    needs = {r[0]: r[6] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert ws["G1"].value == "Needs (permission or input)"
    assert needs["no-exchange-license"] == "User.Read.All"
    assert needs["soft-deleted-user"] == "User.Read.All"
    assert needs["domain-not-verified"] == "Organization.Read.All"
    assert needs["app-missing-permission"] == "Application.Read.All"
    assert needs["mailbox-outside-app-scope"] == (
        "User.Read.All; GroupMember.Read.All; an access policy export (remediation_app.access_policy_file); "
        "or RBAC for Applications exports (remediation_app.role_assignments_file, management_scopes_file)"
    )
    assert needs["recipient-not-in-directory"] == "User.Read.All; a recipients file (--recipients FILE)"
    assert not any("_" in (v or "") and "access_policy" not in (v or "") for v in needs.values())


def test_failed_tenant_alone_reads_incomplete_everywhere(write):
    result = clean_result()
    result.tenants.append(TenantResult("northwind", NORTHWIND, TenantStatus.FAILED, error="authentication: x"))
    ws = openpyxl.load_workbook(write(result).xlsx)["Summary"]
    assert ws["A2"].value == "INCOMPLETE"
    row = next(r for r in block(ws, "Tenants")[1:] if ws.cell(row=r, column=1).value == "northwind")
    assert (ws.cell(row=row, column=3).value, ws.cell(row=row, column=4).value) == ("INCOMPLETE", "not read")
    assert FABRIKAM not in [str(v) for row in rows(ws) for v in row]
