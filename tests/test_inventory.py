"""The mailbox usage report as inventory (probe="auto"): what it settles, what is still probed, and that
the findings equal those of probing every mailbox."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from audit.collect import parse_usage_report, settle, should_probe, user_from_graph
from audit.demo import demo_config
from audit.graph import GraphClient
from audit.licensing import SkuIndex
from audit.models import Dataset, MailboxProbe
from audit.runner import RunOptions, audit_tenant, audit_tenants
from audit.simulator import demo_tenants, generate_tenant
from tests.e2e.tenant_builder import E3, TenantBuilder
from tests.local_http import StaticToken, serving

# The only words in which a finding may differ between the two paths: where the mailbox answer came from.
PROBE_WORDING = re.compile(r"mailbox (usage report|probe): [^;]*")


def comparable(findings) -> dict[tuple, str]:
    return {(f.key, f.severity): PROBE_WORDING.sub("<mailbox answer>", f.evidence) for f in findings}


def test_fast_path_findings_equal_probe_all_on_the_demo_tenants(sim_factory, tmp_path):
    tenants = demo_tenants(users=400, seed=11)
    sim = sim_factory(tenants)
    config, recipients = demo_config(sim, tmp_path, tmp_path / "reports")
    fast = audit_tenants(config, RunOptions(probe="auto", recipients_file=recipients))
    full = audit_tenants(config, RunOptions(probe="all", recipients_file=recipients))

    assert [t.status for t in fast.tenants] == [t.status for t in full.tenants]
    assert comparable(fast.findings) == comparable(full.findings)
    assert {(f.check_id, f.user_id, f.severity) for f in fast.findings} == {
        (f.check_id, f.user_id, f.severity) for f in full.findings
    }
    by_name = {f.name: (f, a) for f, a in zip(fast.tenants, full.tenants, strict=True)}
    fast_contoso, full_contoso = by_name["contoso"]
    # contoso's report is readable: most mailboxes come from it, a few are still probed.
    assert 0 < fast_contoso.mailboxes_probed < full_contoso.mailboxes_probed / 4
    assert set(fast_contoso.snapshot.probes.value) == set(full_contoso.snapshot.probes.value)
    # fabrikam conceals user names in its reports: everything is probed, as with --probe all.
    fast_fabrikam, full_fabrikam = by_name["fabrikam"]
    assert fast_fabrikam.mailboxes_probed == full_fabrikam.mailboxes_probed > 0


def _only_tenant(sim, spec: dict, make_config, tmp_path: Path, **tenant_changes):
    config = make_config(sim, [spec], tmp_path)
    if tenant_changes:
        config = replace(config, tenants=(replace(config.tenants[0], **tenant_changes),))
    return config


def _targets(spec: dict) -> set[str]:
    return {u["id"] for u in spec["users"] if should_probe(user_from_graph(u))}


def _said(caplog, tenant: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"{tenant}: ") and "usage report" in r.getMessage()
    ]


def test_concealed_report_probes_everything(sim_factory, make_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="audit")
    spec = generate_tenant("fabrikam", 120, seed=5, scenario="healthy")
    spec["usage_report"]["concealed"] = True
    sim = sim_factory([spec])
    config = _only_tenant(sim, spec, make_config, tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    probes = result.snapshot.probes.value
    assert set(probes) == _targets(spec)
    assert {p.source for p in probes.values()} == {"probe"}
    assert result.status == "ok"  # a concealing tenant is a setting, not a fault
    assert _said(caplog, "fabrikam") == [
        "fabrikam: the mailbox usage report conceals user names, so every mailbox is probed; to show them: "
        "Microsoft 365 admin center > Settings > Org settings > Reports"
    ]


def test_report_refused_probes_everything_and_says_so(sim_factory, make_config, tmp_path, caplog):
    spec = generate_tenant("adatum", 120, seed=6, scenario="healthy")
    spec["clients"][0]["roles"] = [r for r in spec["clients"][0]["roles"] if r != "Reports.Read.All"]
    sim = sim_factory([spec])
    config = _only_tenant(sim, spec, make_config, tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    probes = result.snapshot.probes.value
    assert set(probes) == _targets(spec)
    assert {p.source for p in probes.values()} == {"probe"}
    # Slower, not less complete: the tenant is not partial, and the log names the permission that would help.
    assert result.status == "ok" and not result.snapshot.problems
    assert _said(caplog, "adatum") == [
        "adatum: the audit app may not read the mailbox usage report (Graph 403 Authorization_RequestDenied); "
        "grant it Reports.Read.All to make audits faster; every mailbox is probed instead"
    ]


def test_national_cloud_has_no_usage_report_and_probes_everything(sim_factory, make_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="audit")
    spec = generate_tenant("tailspin", 80, seed=8, scenario="healthy")
    sim = sim_factory([spec])
    config = _only_tenant(sim, spec, make_config, tmp_path, cloud="usgov")
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    assert {p.source for p in result.snapshot.probes.value.values()} == {"probe"}
    assert set(result.snapshot.probes.value) == _targets(spec)
    assert result.status == "ok"
    assert "reports.mailboxUsageDetail" not in sim.counters.snapshot()["by_route"]
    assert _said(caplog, "tailspin") == [
        "tailspin: the mailbox usage report is not offered in the usgov cloud; probing every mailbox"
    ]


@pytest.mark.parametrize("shape", ["v1.0", "beta"])
def test_what_the_report_settles_and_what_is_probed(sim_factory, make_config, tmp_path, shape):
    """v1.0's CSV has no Recipient Type column (Graph docs, api-reference/v1.0/api/
    reportroot-getmailboxusagedetail.md); beta's has it (microsoftgraph/msgraph-sdk-powershell#1581)."""
    b = TenantBuilder("contoso").remediation_app()
    if shape == "beta":
        b.spec["usage_report"] = {"recipient_type": True}
    ids = {
        "listed": b.user("alice", license=E3),
        "shared": b.user("shared-sales", mailbox="shared", enabled=False),
        "room": b.user("room-1", mailbox="room", enabled=False),
        "newer": b.user("newbie", license=E3, created_days_ago=0),
        "unlicensed": b.user("ursula", mailbox=None, mail=False),
        "unlicensed_mail": b.user("ulrich", mailbox=None),  # mail-enabled: may be a room, so it is asked
        "licence_removed": b.user("lena", mailbox="user"),  # listed, but no licence any more
        "pending": b.user("nina", license=E3, mailbox=None, provisioning="PendingInput"),
    }
    sim = sim_factory([b.spec])
    config = _only_tenant(sim, b.spec, make_config, tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    assert result.status == "ok", result.error
    probes = result.snapshot.probes.value
    source = {name: probes[uid].source for name, uid in ids.items()}
    typed = shape == "beta"
    assert source == {
        "listed": "usage_report",
        "shared": "usage_report" if typed else "probe",  # without the type, unlicensed and listed is asked
        "unlicensed": "usage_report",
        "unlicensed_mail": "probe",
        "room": "probe",
        "newer": "probe",
        "licence_removed": "probe",
        "pending": "probe",
    }
    assert (probes[ids["shared"]].outcome, probes[ids["shared"]].purpose) == ("mailbox", "shared")
    # Listed and licensed: the mailbox exists; its purpose is only known where the report names it.
    assert (probes[ids["listed"]].outcome, probes[ids["listed"]].purpose) == ("mailbox", "user" if typed else None)
    assert probes[ids["unlicensed"]].outcome == probes[ids["unlicensed_mail"]].outcome == "no_mailbox"
    assert (probes[ids["room"]].outcome, probes[ids["room"]].purpose) == ("mailbox", "room")
    probed = 5 if typed else 6
    assert result.mailboxes_probed == probed
    routes = sim.counters.snapshot()["by_route"]
    assert routes["mailboxSettings"] == probed and routes["reports.mailboxUsageDetail"] == 1

    flagged = {(f.user_id, f.check_id) for f in result.findings if f.user_id}
    assert flagged == {
        (ids["unlicensed"], "no-exchange-license"),
        (ids["unlicensed_mail"], "no-exchange-license"),
        (ids["pending"], "mailbox-not-provisioned"),
    }
    evidence = next(f.evidence for f in result.findings if f.user_id == ids["unlicensed"])
    assert "mailbox usage report: no_mailbox (not listed on " in evidence


V1_CSV = (  # the v1.0 header as documented (reportroot-getmailboxusagedetail.md), one row in that shape
    "\ufeffReport Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,"
    "Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),"
    "Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),"
    "Has Archive,Report Period\n"
    "2026-01-10,Alice@contoso.example,Alice,False,,2024-03-30,2026-01-10,138481,10414748704,105226698752,"
    "106300440576,107374182400,3830,80348020,107374182400,False,7\n"
    "2026-01-10,gone@contoso.example,Gone,True,2026-01-05,2024-03-30,,0,0,0,0,0,0,0,0,False,7\n"
)


def _licensed(upn: str, created: str = "2025-01-01T00:00:00Z"):
    return user_from_graph(
        {
            "id": upn,
            "userPrincipalName": upn,
            "mail": upn,
            "accountEnabled": True,
            "createdDateTime": created,
            "assignedLicenses": [{"skuId": E3[0], "disabledPlans": []}],
            "assignedPlans": [{"servicePlanId": E3[2], "service": "exchange", "capabilityStatus": "Enabled"}],
        }
    )


def test_a_v1_row_without_recipient_type_proves_the_mailbox():
    inventory = parse_usage_report(V1_CSV)
    assert inventory.refresh_date == "2026-01-10" and not inventory.concealed
    assert inventory.mailboxes == {"alice@contoso.example": ("", False), "gone@contoso.example": ("", True)}
    skus = SkuIndex.from_skus(Dataset(None))
    settled = settle(_licensed("alice@contoso.example"), inventory, skus)
    assert settled == MailboxProbe("mailbox", purpose=None, source="usage_report")
    assert settle(_licensed("gone@contoso.example"), inventory, skus) is None  # deleted: ask Exchange
    assert settle(_licensed("alice@contoso.example", created="2026-01-10T08:00:00Z"), inventory, skus) is None


class _ReportHost(BaseHTTPRequestHandler):
    """Graph's report endpoint and the download host behind its redirect, over plain HTTP."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/v1.0/reports/"):
            self.send_response(302)
            self.send_header("Location", "/download/abc")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = "\ufeffReport Refresh Date,User Principal Name\n2026-01-01,a@b.example\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


@pytest.fixture
def report_host():
    _ReportHost.seen = []
    with serving(HTTPServer(("127.0.0.1", 0), _ReportHost)) as host:
        yield f"http://{host}"


def test_report_download_is_fetched_without_the_token(report_host):
    client = GraphClient(f"{report_host}/v1.0", StaticToken("secret-token"))
    text = client.get_report("/reports/getMailboxUsageDetail(period='D7')")
    assert text.startswith("Report Refresh Date,User Principal Name")
    assert _ReportHost.seen == [
        ("/v1.0/reports/getMailboxUsageDetail(period='D7')", "Bearer secret-token"),
        ("/download/abc", None),
    ]


TEAMS_ROOMS_PRO = "4cde982a-ede4-4409-9ae6-b003453c8ea6"  # Microsoft_Teams_Rooms_Pro (licensing table)
TEAMS1 = "57ff2da0-773e-42df-b2af-ffb7a2317929"  # its Microsoft Teams plan; it carries no Exchange plan


@pytest.mark.parametrize("probe", ["auto", "all"])
def test_enabled_teams_room_account_is_probed_and_not_flagged(sim_factory, make_config, tmp_path, probe):
    """A Teams Rooms resource account is a room mailbox whose account is enabled so the device can sign in
    (Microsoft's Teams Rooms set-up: New-Mailbox -Room -EnableRoomMailboxAccount $true), licensed with
    Teams Rooms Pro, which has no Exchange Online plan (Microsoft's product names and service plan
    identifiers table). The usage report never lists room mailboxes, so only a probe can tell."""
    b = TenantBuilder("contoso").remediation_app()
    b.user("alice", license=E3)
    room = b.user("room-teams", mailbox="room", enabled=True)
    spec_user = b.spec["users"][-1]
    spec_user["assignedLicenses"] = [{"skuId": TEAMS_ROOMS_PRO, "disabledPlans": []}]
    spec_user["assignedPlans"] = [
        {"servicePlanId": TEAMS1, "service": "TeamspaceAPI", "capabilityStatus": "Enabled"},
    ]
    sim = sim_factory([b.spec])
    config = _only_tenant(sim, b.spec, make_config, tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe=probe), recipients=None)
    assert result.status == "ok", result.error
    answer = result.snapshot.probes.value[room]
    assert (answer.outcome, answer.purpose, answer.source) == ("mailbox", "room", "probe")
    assert not [f for f in result.findings if f.user_id == room]
