"""Benchmark: writing the workbook against a bare write-only write of the same cell values. Run by hand.

    python tests/bench/bench_workbook.py                 # 100,000 users, one tenant
    python tests/bench/bench_workbook.py --users 20000 --tenants 5

No network and no simulator: the run result is built in memory (users with licences and probes, about
one finding in eight users, with the real check catalogue's texts), so the figures are the writer's
alone. Printed:
  - workbook: write_reports(..., formats=("xlsx",)): every sheet, the Summary and its charts included;
  - bare: the same cell values (each sheet's rows, already built and made inert) appended to an
    openpyxl write-only workbook without any style, width or row height, and saved;
  - their ratio (target <= 1.5), in CPU time of this process: on a shared machine the wall clock
    measures the neighbours as much as the writer (both are printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EXO_PLAN = "efb87545-963c-4e0d-99df-69c6916d9eb0"
STARTED = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def build_result(tenants: int, users: int):
    from audit.checks import catalogue
    from audit.models import (
        AssignedPlan,
        Dataset,
        Finding,
        License,
        LicenseState,
        MailboxProbe,
        RunResult,
        TenantResult,
        TenantSnapshot,
        TenantStatus,
        User,
    )

    info = {c.id: c for c in catalogue()}
    user_checks = ["no-exchange-license", "on-premises-mailbox", "exchange-license-suspended", "soft-deleted-user"]
    results = []
    for t in range(tenants):
        tenant_id = f"{t:08d}-0000-4000-8000-000000000000"
        name = f"tenant{t:02d}"
        people, probes, findings = [], {}, []
        for i in range(users):
            uid = f"{t:04d}{i:08d}-aaaa-4bbb-8ccc-dddddddddddd"
            guest = i % 17 == 0
            upn = f"first.last{i}_partner.example.com#EXT#@{name}.onmicrosoft.com" if guest else f"user{i}@{name}.com"
            licensed = i % 8 != 0
            u = User(
                id=uid,
                upn=upn,
                display_name=f"User Number {i}",
                mail=upn,
                proxy_addresses=(f"SMTP:{upn}",),
                user_type="Guest" if guest else "Member",
                enabled=True,
                created="2021-03-04T05:06:07Z",
                sync_enabled=i % 3 == 0,
                immutable_id=None,
                licenses=(License(E3, ()),) if licensed else (),
                plans=(AssignedPlan(EXO_PLAN, "exchange", "Enabled"),) if licensed else (),
                provisioned=(),
                license_states=(LicenseState(E3, "Active", None, None),) if licensed else (),
            )
            people.append(u)
            if i % 5 == 0:
                probes[uid] = MailboxProbe("mailbox", "user", source="usage_report" if i % 2 else "probe")
            if not licensed and not guest:
                c = info[user_checks[i % len(user_checks)]]
                findings.append(
                    Finding(tenant_id, c.id, c.severity, upn, uid, u.display_name, c.predicts, c.cause, c.fix, "ev")
                )
        snap = TenantSnapshot(
            tenant_name=name,
            tenant_id=tenant_id,
            collected_at=STARTED,
            users=Dataset(people),
            deleted_users=Dataset([]),
            organization=Dataset({"id": tenant_id, "verifiedDomains": [{"name": f"{name}.com"}]}),
            subscribed_skus=Dataset([{"skuId": E3, "skuPartNumber": "ENTERPRISEPACK"}]),
            remediation_sp=Dataset({"id": "sp", "appId": "app", "accountEnabled": True}),
            remediation_roles=Dataset([]),
            remediation_delegated=Dataset([]),
            graph_sp_id=Dataset("graph"),
            application=Dataset.missing("the app registration lives in another tenant"),
            probes=Dataset(probes),
            app_scope=Dataset(None),
            recipients=Dataset.missing("no recipients list was given"),
            directory_user_count=users,
        )
        results.append(
            TenantResult(
                name=name,
                tenant_id=tenant_id,
                status=TenantStatus.OK,
                users_scanned=users,
                users_in_directory=users,
                mailboxes_probed=len(probes),
                findings=findings,
                snapshot=snap,
            )
        )
    return RunResult(STARTED, STARTED + timedelta(minutes=3), "bench", True, results)


def bare_sheets(result, written: datetime) -> list[tuple[str, list[list]]]:
    """Each sheet's header and rows as the workbook holds them, built before the clock starts."""
    from audit.checks import catalogue
    from audit.report.cells import text_cell
    from audit.report.changes import compare
    from audit.report.tables import (
        Lookups,
        accepted_table,
        changes_table,
        checks_table,
        findings_table,
        tenant_names,
        tenant_table,
        users_table,
    )

    names = tenant_names(result)
    changes, stamped = compare(result, result.findings, None, None)
    tables = [
        findings_table(stamped, names, {}),
        users_table(result, stamped, [], Lookups.default()),
        tenant_table(result),
        changes_table(changes, names, set()),
        accepted_table([], names),
        checks_table(list(catalogue())),
    ]

    def plain(v):
        return v if isinstance(v, int | float | datetime) and not isinstance(v, bool) else text_cell(v)

    return [(t.name, [[c.header for c in t.columns], *([plain(v) for v in row] for row in t.rows)]) for t in tables]


def bare_write(sheets: list[tuple[str, list[list]]], path: Path) -> tuple[float, float]:
    from openpyxl import Workbook

    start, cpu = time.perf_counter(), time.process_time()
    wb = Workbook(write_only=True)
    for name, rows in sheets:
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000, help="users per tenant (default 100000)")
    p.add_argument("--tenants", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="best of N, interleaved (default 3)")
    args = p.parse_args(argv)

    from audit.checks import catalogue
    from audit.report import write_reports

    result = build_result(args.tenants, args.users)
    cells = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sheets = bare_sheets(result, result.finished)
        cells = sum(len(r) for _, rows in sheets for r in rows)
        bares, times = [], []
        for i in range(args.repeat):  # interleaved, so a busy machine slows both alike
            bares.append(bare_write(sheets, work / f"bare{i}.xlsx"))
            start, cpu = time.perf_counter(), time.process_time()
            files = write_reports(
                result, work / f"out{i}", formats=("xlsx",), catalogue=list(catalogue()), now=result.finished
            )
            times.append((time.perf_counter() - start, time.process_time() - cpu))
            size = os.path.getsize(files.xlsx)
        bare, full = min(b for b, _ in bares), min(t for t, _ in times)
        bare_cpu, full_cpu = min(c for _, c in bares), min(c for _, c in times)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"{args.tenants} tenant(s) x {args.users:,} users, {len(result.findings):,} findings, {cells:,} cells")
    print(f"workbook (write_reports, xlsx only): {full:7.2f} s wall, {full_cpu:7.2f} s CPU  ({size / 1e6:.1f} MB)")
    print(f"bare write-only write, same values:  {bare:7.2f} s wall, {bare_cpu:7.2f} s CPU")
    print(
        f"ratio (CPU time, best of {args.repeat}): {full_cpu / bare_cpu:.2f} (target <= 1.5); wall: {full / bare:.2f}"
    )
    print(f"{full_cpu / cells * 1e6:.1f} us CPU a cell, against {bare_cpu / cells * 1e6:.1f} us bare")
    runs = zip(bares, times, strict=True)
    print("runs, CPU s (bare / workbook): " + ", ".join(f"{b[1]:.1f}/{t[1]:.1f}" for b, t in runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
