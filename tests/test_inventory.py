"""The mailbox usage report as inventory (probe="auto"): what it settles, what is still probed, and that
the findings equal those of probing every mailbox."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from audit.collect import should_probe, user_from_graph
from audit.demo import demo_config
from audit.graph import GraphClient
from audit.runner import RunOptions, audit_tenant, audit_tenants
from audit.simulator import demo_tenants, generate_tenant
from tests.e2e.tenant_builder import E3, TenantBuilder

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


def test_concealed_report_probes_everything(sim_factory, make_config, tmp_path):
    spec = generate_tenant("fabrikam", 120, seed=5, scenario="healthy")
    spec["usage_report"]["concealed"] = True
    sim = sim_factory([spec])
    config = _only_tenant(sim, spec, make_config, tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    probes = result.snapshot.probes.value
    assert set(probes) == _targets(spec)
    assert {p.source for p in probes.values()} == {"probe"}
    assert result.status == "ok"  # a concealing tenant is a setting, not a fault


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
    assert any("Reports.Read.All" in r.getMessage() for r in caplog.records)


def test_national_cloud_has_no_usage_report_and_probes_everything(sim_factory, make_config, tmp_path):
    spec = generate_tenant("tailspin", 80, seed=8, scenario="healthy")
    sim = sim_factory([spec])
    config = _only_tenant(sim, spec, make_config, tmp_path, cloud="usgov")
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    assert {p.source for p in result.snapshot.probes.value.values()} == {"probe"}
    assert set(result.snapshot.probes.value) == _targets(spec)
    assert result.status == "ok"
    assert "reports.mailboxUsageDetail" not in sim.counters.snapshot()["by_route"]


def test_what_the_report_settles_and_what_is_probed(sim_factory, make_config, tmp_path):
    b = TenantBuilder("contoso").remediation_app()
    ids = {
        "listed": b.user("alice", license=E3),
        "shared": b.user("shared-sales", mailbox="shared", enabled=False),
        "room": b.user("room-1", mailbox="room", enabled=False),
        "newer": b.user("newbie", license=E3, created_days_ago=0),
        "unlicensed": b.user("ursula", mailbox=None),
        "licence_removed": b.user("lena", mailbox="user"),  # listed, but no licence any more
        "pending": b.user("nina", license=E3, mailbox=None, provisioning="PendingInput"),
    }
    sim = sim_factory([b.spec])
    config = _only_tenant(sim, b.spec, make_config, tmp_path)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="auto"), recipients=None)
    assert result.status == "ok", result.error
    probes = result.snapshot.probes.value
    source = {name: probes[uid].source for name, uid in ids.items()}
    assert source == {
        "listed": "usage_report",
        "shared": "usage_report",
        "unlicensed": "usage_report",
        "room": "probe",
        "newer": "probe",
        "licence_removed": "probe",
        "pending": "probe",
    }
    assert (probes[ids["shared"]].outcome, probes[ids["shared"]].purpose) == ("mailbox", "shared")
    assert (probes[ids["listed"]].outcome, probes[ids["listed"]].purpose) == ("mailbox", "user")
    assert probes[ids["unlicensed"]].outcome == "no_mailbox"
    assert (probes[ids["room"]].outcome, probes[ids["room"]].purpose) == ("mailbox", "room")
    assert result.mailboxes_probed == 4
    routes = sim.counters.snapshot()["by_route"]
    assert routes["mailboxSettings"] == 4 and routes["reports.mailboxUsageDetail"] == 1

    flagged = {(f.user_id, f.check_id) for f in result.findings if f.user_id}
    assert flagged == {(ids["unlicensed"], "no-exchange-license"), (ids["pending"], "mailbox-not-provisioned")}
    evidence = next(f.evidence for f in result.findings if f.user_id == ids["unlicensed"])
    assert "mailbox usage report: no_mailbox (not listed on " in evidence


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


class _Token:
    def token(self) -> str:
        return "secret-token"

    def invalidate(self) -> None:
        pass


@pytest.fixture
def report_host():
    _ReportHost.seen = []
    server = HTTPServer(("127.0.0.1", 0), _ReportHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_report_download_is_fetched_without_the_token(report_host):
    client = GraphClient(f"{report_host}/v1.0", _Token())
    text = client.get_report("/reports/getMailboxUsageDetail(period='D7')")
    assert text.startswith("Report Refresh Date,User Principal Name")
    assert _ReportHost.seen == [
        ("/v1.0/reports/getMailboxUsageDetail(period='D7')", "Bearer secret-token"),
        ("/download/abc", None),
    ]
