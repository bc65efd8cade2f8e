"""Faults that outlast the retry budget: the tenant says failed or partial and why, the others finish.

Four tenants, each in its own simulator, audited in one run:
- contoso: no faults;
- fabrikam: every Graph call answered 429 (Retry-After 0, so the budget is spent at once);
- northwind: Outlook's concurrency limit set to 0, so every mailbox probe stays 429;
- adatum: every JSON answer is cut-off JSON or lacks `value` (the simulator's bad_json/no_value).
"""

from __future__ import annotations

from collections import Counter

from openpyxl import load_workbook

from audit.models import TenantStatus
from audit.report import read_json_report
from audit.runner import ExitCode, RunOptions, run
from audit.simulator import Limits, generate_tenant

NAMES = ("contoso", "fabrikam", "northwind", "adatum")


def sheet_rows(ws) -> list[tuple]:
    return [tuple(row) for row in ws.iter_rows(values_only=True)]


def section(rows: list[tuple], title: str) -> list[dict]:
    """The table under a Summary section title: its header row, then rows until a blank line."""
    start = next(i for i, r in enumerate(rows) if r and r[0] == title and not any(r[1:]))
    header = rows[start + 1]
    out = []
    for row in rows[start + 2 :]:
        if not any(v is not None for v in row):
            break
        out.append({h: v for h, v in zip(header, row, strict=False) if h})
    return out


def test_persistent_faults_mark_tenants_and_exit_3(sim_factory, make_config, tmp_path):
    specs = {name: generate_tenant(name, 40, seed=4) for name in NAMES}
    sims = {
        "contoso": sim_factory([specs["contoso"]]),
        "fabrikam": sim_factory([specs["fabrikam"]], faults="429=1,retry_after=0"),
        "northwind": sim_factory([specs["northwind"]], limits=Limits(outlook_concurrency=0, outlook_retry_after=0)),
        "adatum": sim_factory([specs["adatum"]], faults="bad_json=0.5,no_value=0.5,retry_after=0,seed=2"),
    }
    config = make_config(None, [(sims[n], specs[n]) for n in NAMES], tmp_path)

    outcome = run(config, RunOptions(probe="all", email=False))

    assert outcome.exit_code == ExitCode.PARTIAL
    by_name = {t.name: t for t in outcome.result.tenants}
    assert {n: t.status for n, t in by_name.items()} == {
        "contoso": TenantStatus.OK,
        "fabrikam": TenantStatus.FAILED,
        "northwind": TenantStatus.PARTIAL,
        "adatum": TenantStatus.FAILED,
    }
    assert "429 TooManyRequests" in by_name["fabrikam"].error
    assert "InvalidResponse" in by_name["adatum"].error  # a fault after retries, not a crash
    assert sims["adatum"].counters.snapshot()["bad_bodies"] >= 6
    northwind = by_name["northwind"]
    failed_probes = {uid for uid, p in northwind.snapshot.probes.value.items() if p.outcome == "failed"}
    assert len(failed_probes) == northwind.not_assessed["mailbox probe failed after retries"] > 30
    assert f"{len(failed_probes)} mailbox probes failed after retries" in northwind.error
    assert not [
        f
        for f in northwind.findings
        if f.user_id in failed_probes
        and f.check_id in ("no-exchange-license", "mailbox-not-provisioned", "on-premises-mailbox")
    ]  # no probe result invented
    assert by_name["contoso"].findings  # the healthy tenant was audited in full

    # The workbook, read back: the Summary says which tenant failed or is partial, and why.
    book = load_workbook(outcome.report.xlsx, read_only=True)
    summary = sheet_rows(book["Summary"])
    headline = " ".join(str(v) for v in summary[1] if v)
    assert "incomplete" in headline and "2 tenants failed" in headline, headline
    tenants = {row["Tenant"]: row for row in section(summary, "Tenants")}
    assert {n: tenants[n]["Read"] for n in NAMES} == {
        "contoso": "partly",  # read in full, but three checks lack their input or permission here
        "fabrikam": "not read",
        "northwind": "partly",
        "adatum": "not read",
    }
    assert tenants["fabrikam"]["Verdict"] == tenants["adatum"]["Verdict"] == "INCOMPLETE"
    assert "check recipient-not-in-directory not evaluated" in tenants["contoso"]["Could not be assessed"]
    assert "429 TooManyRequests" in tenants["fabrikam"]["Could not be assessed"]
    assert "InvalidResponse" in tenants["adatum"]["Could not be assessed"]
    assert tenants["northwind"]["Not assessed"] == len(failed_probes)
    gaps = section(summary, "Could not be assessed")
    assert {(g["Tenant"], g["What"]) for g in gaps} >= {
        ("fabrikam", "tenant not audited"),
        ("adatum", "tenant not audited"),
        ("northwind", "tenant only partly read"),
        ("northwind", f"{len(failed_probes)} users not assessed"),
    }

    # Which users were not probed: each one is on the Users sheet with its failed probe.
    users = sheet_rows(book["Users"])
    header = users[0]
    tenant_col, id_col, mailbox_col = header.index("Tenant"), header.index("Object id"), header.index("Mailbox")
    shown = {r[id_col]: r[mailbox_col] for r in users[1:] if r[tenant_col] == "northwind"}
    assert all(str(shown[uid]).startswith("failed") for uid in failed_probes)
    assert Counter(r[tenant_col] for r in users[1:])["fabrikam"] == 0  # a failed tenant lists no user

    # The JSON report carries the same statuses.
    result, _ = read_json_report(outcome.report.json)
    assert {t.name: t.status for t in result.tenants} == {n: t.status for n, t in by_name.items()}
