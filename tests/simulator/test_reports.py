"""The mailbox usage report: a 302 to a CSV download, Graph's columns, concealed names."""

from __future__ import annotations

import csv
import io

import pytest
import requests

from audit.simulator import Simulator, generate_tenant
from audit.simulator.reports import BETA_COLUMNS, COLUMNS

from ._support import Graph, add_client

REPORT = "/reports/getMailboxUsageDetail(period='D7')"


@pytest.fixture(scope="module")
def tenants() -> list[dict]:
    plain = generate_tenant("contoso", 80, seed=21, scenario="healthy")
    add_client(plain, ["User.Read.All"])
    concealed = generate_tenant("fabrikam", 40, seed=21, scenario="unconsented")
    concealed["usage_report"]["concealed"] = True
    beta = generate_tenant("adatum", 60, seed=21, scenario="healthy")
    beta["usage_report"]["recipient_type"] = True
    no_exchange = generate_tenant("tailspin", 30, seed=21, scenario="healthy")
    no_exchange["exchange_online"] = False
    return [plain, concealed, beta, no_exchange]


# The v1.0 CSV header as Graph documents it (api-reference/v1.0/api/reportroot-getmailboxusagedetail.md,
# ms.date 2024-04-04): no "Recipient Type", which only beta returns (msgraph-sdk-powershell#1581).
V1_HEADER = [
    "Report Refresh Date",
    "User Principal Name",
    "Display Name",
    "Is Deleted",
    "Deleted Date",
    "Created Date",
    "Last Activity Date",
    "Item Count",
    "Storage Used (Byte)",
    "Issue Warning Quota (Byte)",
    "Prohibit Send Quota (Byte)",
    "Prohibit Send/Receive Quota (Byte)",
    "Deleted Item Count",
    "Deleted Item Size (Byte)",
    "Deleted Item Quota (Byte)",
    "Has Archive",
    "Report Period",
]


@pytest.fixture(scope="module")
def sim(tenants):
    with Simulator(tenants) as running:
        yield running


def _rows(text: str) -> tuple[list[str], list[dict]]:
    assert text.startswith("\ufeff"), "the download starts with a byte-order mark"
    reader = csv.DictReader(io.StringIO(text[1:]))
    return list(reader.fieldnames or []), list(reader)


def test_report_redirects_to_a_preauthenticated_csv(sim, tenants):
    graph = Graph(sim, tenants[0])
    first = graph.get(REPORT, allow_redirects=False)
    assert first.status_code == 302
    location = first.headers["Location"]
    download = requests.get(location, verify=sim.ca_path, timeout=30)  # no Authorization header
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    header, rows = _rows(download.content.decode("utf-8"))
    assert header == list(COLUMNS) == V1_HEADER
    assert rows and all(r["Report Period"] == "7" for r in rows)
    beta_header, _ = _rows(Graph(sim, tenants[2]).get(REPORT).content.decode("utf-8"))
    assert beta_header == list(BETA_COLUMNS) == [*V1_HEADER[:-1], "Recipient Type", "Report Period"]


@pytest.mark.parametrize("index", [0, 2], ids=["v1.0", "beta"])
def test_report_lists_cloud_user_and_shared_mailboxes_as_of_the_refresh_date(sim, tenants, index):
    tenant = tenants[index]
    refresh = tenant["usage_report"]["refresh_date"]
    _, rows = _rows(Graph(sim, tenant).get(REPORT).content.decode("utf-8"))
    listed = {r["User Principal Name"]: r for r in rows}
    expected = {
        u["userPrincipalName"]: u
        for u in tenant["users"]
        if u["mailbox"]
        and u["mailbox"]["location"] == "cloud"
        and u["mailbox"]["purpose"] in ("user", "shared")
        and u["createdDateTime"][:10] <= refresh
    }
    assert set(listed) == set(expected)
    if index == 2:
        assert {r["Recipient Type"] for r in rows} == {"User", "Shared"}
    for upn, row in listed.items():
        if index == 2:
            assert row["Recipient Type"] == ("Shared" if expected[upn]["mailbox"]["purpose"] == "shared" else "User")
        else:
            assert "Recipient Type" not in row
        assert row["Report Refresh Date"] == refresh and row["Is Deleted"] == "False"
    newest = max(tenant["users"], key=lambda u: u["createdDateTime"])
    assert newest["createdDateTime"][:10] > refresh and newest["userPrincipalName"] not in listed
    onprem = [u for u in tenant["users"] if u["mailbox"] and u["mailbox"]["location"] == "onprem"]
    assert onprem and not {u["userPrincipalName"] for u in onprem} & set(listed)


def test_concealed_names_are_opaque_hashes(sim, tenants):
    _, rows = _rows(Graph(sim, tenants[1]).get(REPORT).content.decode("utf-8"))
    assert rows
    for row in rows:
        for column in ("User Principal Name", "Display Name"):
            value = row[column]
            assert len(value) == 32 and value == value.upper() and int(value, 16) >= 0
    assert len({r["User Principal Name"] for r in rows}) == len(rows)


def test_report_refusals(sim, tenants):
    graph = Graph(sim, tenants[0])
    json_format = graph.get(REPORT, {"$format": "application/json"})
    assert json_format.status_code == 400 and json_format.json()["error"]["message"] == "JSON format is not supported."
    assert graph.get("/reports/getMailboxUsageDetail(period='D8')").status_code == 400
    no_role = Graph(sim, tenants[0], tenants[0]["clients"][1]).get(REPORT)
    assert no_role.status_code == 403
    assert requests.get(f"{sim.url}/reports-download/forged", verify=sim.ca_path, timeout=10).status_code == 404


def test_tenant_without_exchange_online_lists_no_mailbox(sim, tenants):
    header, rows = _rows(Graph(sim, tenants[3]).get(REPORT).content.decode("utf-8"))
    assert header == V1_HEADER and rows == []
