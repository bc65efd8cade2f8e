"""Tenant data is untrusted: anything that looks like a formula lands as inert text, in every output."""

from __future__ import annotations

import csv
import json

import openpyxl
import pytest
from conftest import CONTOSO, sample_result
from openpyxl.xml import LXML

from audit.report.cells import inert

DANGEROUS = [
    '=HYPERLINK("http://x","click")',
    "@SUM(1)",
    "+1+1",
    "-2+3",
    "=1+1",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("name", DANGEROUS)
def test_inert_prefixes_a_quote(name):
    assert inert(name) == "'" + name
    assert inert("Carol") == "Carol" and inert("a=b") == "a=b"


def test_control_characters_are_replaced_not_fatal():
    assert inert("bell\x07name") == "bell\ufffdname"


@pytest.mark.parametrize("name", DANGEROUS)
def test_dangerous_display_name_is_text_in_findings_users_and_csv(write, name):
    files = write(sample_result(display_name=name), formats=("xlsx", "json", "csv"))
    wb = openpyxl.load_workbook(files.xlsx)
    # Through lxml (a dependency) openpyxl writes a lone CR as the reference &#13;, which reads back as CR;
    # its own XML writer leaves it raw, and XML reads a raw CR back as LF.
    in_xlsx = "'" + name if LXML else ("'" + name).replace("\r", "\n")

    ws = wb["Findings"]
    header = [c.value for c in ws[1]]
    col = header.index("Display name") + 1
    cells = [
        ws.cell(row=r, column=col)
        for r in range(2, ws.max_row + 1)
        if ws.cell(row=r, column=header.index("Object id") + 1).value == "u-carol"
    ]
    assert len(cells) == 1
    assert cells[0].data_type == "s" and cells[0].value == in_xlsx

    ws = wb["Users"]
    header = [c.value for c in ws[1]]
    carol = next(r for r in range(2, ws.max_row + 1) if ws.cell(row=r, column=4).value == "u-carol")
    cell = ws.cell(row=carol, column=header.index("Display name") + 1)
    assert cell.data_type == "s" and cell.value == in_xlsx

    # no cell anywhere in the workbook is a formula
    for sheet in wb:
        for row in sheet.iter_rows():
            assert all(c.data_type != "f" for c in row), sheet.title

    with open(files.csv, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    carol_row = next(r for r in rows if r["Object id"] == "u-carol")
    assert carol_row["Display name"] == "'" + name

    # JSON is data for programs: it keeps the exact value
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert any(f["display_name"] == name for f in data["findings"])


def test_dangerous_evidence_upn_and_tenant_name_are_neutralised(write):
    from conftest import finding, user

    evil = user("u-evil", "=cmd|'/c calc'!A1@contoso.com", "-evil")
    f = finding(CONTOSO, "no-exchange-license", "high", evil, evidence="@evidence")
    result = sample_result(contoso_extra=[f])
    result.tenants[0].name = "+contoso"
    files = write(result, formats=("xlsx", "csv"))
    wb = openpyxl.load_workbook(files.xlsx)
    ws = wb["Findings"]
    header = [c.value for c in ws[1]]
    row = next(
        r for r in range(2, ws.max_row + 1) if ws.cell(row=r, column=header.index("Object id") + 1).value == "u-evil"
    )
    values = {h: ws.cell(row=row, column=i + 1).value for i, h in enumerate(header)}
    assert values["User principal name"] == "'=cmd|'/c calc'!A1@contoso.com"
    assert values["Display name"] == "'-evil" and values["Evidence"] == "'@evidence"
    assert values["Tenant"] == "'+contoso"
    raw = files.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM, so Excel reads UTF-8
    assert b",=cmd" not in raw and b",-evil" not in raw and b",@evidence" not in raw
