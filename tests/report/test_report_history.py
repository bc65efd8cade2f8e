"""History across runs of only some tenants: each tenant is compared with the newest report that covered it.

Real commands against the simulator: a full run, then `run --tenant contoso`, then a full run again. Before,
the middle report (contoso only) was "previous" for the third run, so every fabrikam finding came out new
and its first_seen was reset to the third run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from audit.cli import main
from audit.simulator import generate_tenant
from tests.simconfig import secrets_env, sim_toml


def reports(out: Path) -> list[dict]:
    paths = sorted(out.glob("etd-audit-*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in paths]


def first_seen(report: dict, tenant_id: str) -> dict[tuple, str]:
    return {
        (f["check_id"], f["user_id"] or f["user_principal_name"] or f["evidence"]): f["first_seen"]
        for f in report["findings"]
        if f["tenant_id"] == tenant_id
    }


def test_a_single_tenant_run_does_not_reset_the_others_history(sim_factory, tmp_path, monkeypatch):
    contoso = generate_tenant("contoso", 40, seed=5, scenario="home")
    fabrikam = generate_tenant("fabrikam", 40, seed=6, scenario="disabled")
    sim = sim_factory([contoso, fabrikam])
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "reports"
    config = tmp_path / "etd-audit.toml"
    config.write_text(sim_toml(sim, str(out)))
    run = ["run", "--config", str(config), "--no-email", "--format", "json"]

    main(run)
    main([*run, "--tenant", "contoso"])
    main(run)

    first, middle, third = reports(out)
    assert {t["name"] for t in middle["tenants"]} == {"contoso"}
    before = first_seen(first, fabrikam["tenant_id"])
    assert before and set(before.values()) == {first["run"]["started"]}
    after = first_seen(third, fabrikam["tenant_id"])
    assert after == before  # same findings, first seen in the first run: none of them new
    # contoso's history runs through the middle report as before.
    assert first_seen(third, contoso["tenant_id"]) == first_seen(first, contoso["tenant_id"])


def test_a_failed_tenant_is_compared_with_the_report_before(tmp_path):
    """A report in which the tenant failed holds none of its findings: it did not cover that tenant."""
    from conftest import STARTED, sample_result

    from audit.models import RunResult, TenantResult, TenantStatus
    from audit.report.changes import load_previous
    from audit.report.jsonreport import dump, report_json

    earlier = sample_result()
    tenant = earlier.tenants[0]
    assert tenant.findings
    folder = tmp_path / "reports"
    folder.mkdir()
    first = folder / "etd-audit-20250101T000000Z.json"
    first.write_bytes(dump(report_json(earlier, earlier.findings, [])))
    os.utime(first, (1_700_000_000, 1_700_000_000))
    failed = RunResult(
        started=STARTED,
        finished=STARTED,
        version=earlier.version,
        probes=True,
        tenants=[TenantResult(tenant.name, tenant.tenant_id, TenantStatus.FAILED, error="AADSTS7000215")],
    )
    later = folder / "etd-audit-20250108T000000Z.json"
    later.write_bytes(dump(report_json(failed, [], [])))  # newer than the first one

    path, previous, notes = load_previous(folder, "etd-audit-20250115T000000Z", [tenant.tenant_id])
    assert path == first
    assert {f.key for f in previous.findings} == {f.key for f in tenant.findings}


def test_the_report_being_written_is_never_its_own_previous(tmp_path):
    """A report of this run's stem already in the folder (written a moment ago) is not the earlier run."""
    from conftest import sample_result

    from audit.report.changes import load_previous
    from audit.report.jsonreport import dump, report_json

    result = sample_result()
    folder = tmp_path / "reports"
    folder.mkdir()
    earlier = folder / "etd-audit-20250101T000000Z.json"
    earlier.write_bytes(dump(report_json(result, result.findings, [])))
    os.utime(earlier, (1_700_000_000, 1_700_000_000))
    own = folder / "etd-audit-20250108T000000Z.json"
    own.write_bytes(dump(report_json(result, [], [])))  # newer

    for tenants in (None, [t.tenant_id for t in result.tenants]):
        path, previous, notes = load_previous(folder, own.stem, tenants)
        assert (path, notes) == (earlier, [])
        assert {f.key for f in previous.findings} == {f.key for f in result.findings}


def test_tenants_taken_from_an_older_report_are_named_and_keep_when_that_report_saw_them(tmp_path):
    """The tenant ids of the run and of the reports may differ in case; findings an older report wrote without
    first_seen were first seen when that report's run started."""
    from dataclasses import replace

    from conftest import STARTED, sample_result

    from audit.models import TenantStatus
    from audit.report.cells import iso
    from audit.report.changes import load_previous
    from audit.report.jsonreport import dump, report_json

    def lettered(result, started):
        ids = {t.tenant_id: f"{t.tenant_id[:4]}abcd{t.tenant_id[8:]}" for t in result.tenants}
        tenants = [
            replace(
                t, tenant_id=ids[t.tenant_id], findings=[replace(f, tenant_id=ids[t.tenant_id]) for f in t.findings]
            )
            for t in result.tenants
        ]
        return replace(result, started=started, tenants=tenants)

    older = lettered(sample_result(), STARTED)
    contoso, fabrikam, northwind = older.tenants
    northwind = replace(northwind, status=TenantStatus.OK, error=None)  # audited then, so it covered northwind
    older = replace(older, tenants=[contoso, fabrikam, northwind])
    assert fabrikam.findings and all(f.first_seen is None for f in fabrikam.findings)
    newer = replace(lettered(sample_result(), STARTED.replace(day=20)), tenants=[contoso])
    folder = tmp_path / "reports"
    folder.mkdir()
    for name, result, mtime in (("etd-audit-1.json", older, 1_700_000_000), ("etd-audit-2.json", newer, 1_800_000_000)):
        (folder / name).write_bytes(dump(report_json(result, result.findings, [])))
        os.utime(folder / name, (mtime, mtime))

    wanted = [contoso.tenant_id.upper(), fabrikam.tenant_id, northwind.tenant_id]
    path, previous, notes = load_previous(folder, "etd-audit-3", wanted)
    assert path == folder / "etd-audit-2.json"
    assert [t.name for t in previous.tenants] == ["contoso", "fabrikam", "northwind"]
    assert notes == [
        "Compared fabrikam with etd-audit-1.json, northwind with etd-audit-1.json: the newest earlier report that "
        "covered each tenant."
    ]
    taken = next(t for t in previous.tenants if t.name == "fabrikam")
    assert {f.key for f in taken.findings} == {f.key for f in fabrikam.findings}
    assert {f.first_seen for f in taken.findings} == {iso(STARTED)}
