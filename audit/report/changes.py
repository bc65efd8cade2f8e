"""What changed since the previous report in the same folder: new, resolved, still open.

A finding is the same finding across runs when tenant, check and user match (Finding.key). An earlier
finding that is absent now only counts as resolved when this run could actually look again: its
tenant was audited, its check was evaluated there and, if that user's mailbox was probed, the probe
worked. Otherwise it is listed as not re-checked. Tenants outside this run (another
shard, --tenant) are left out altogether.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from audit.models import Finding, RunResult, TenantResult, TenantStatus
from audit.report.cells import iso
from audit.report.files import is_regular_file
from audit.report.jsonreport import ReportError, read_json_report

log = logging.getLogger("audit")

FAMILY = "etd-audit-"
OTHER_FAMILIES = ("etd-audit-triage-",)  # written to the same folder, but not audit reports


@dataclass(frozen=True)
class Changes:
    new: list[Finding]
    resolved: list[Finding]
    still_open: list[Finding]
    previous: Path | None
    unverified: list[Finding] = field(default_factory=list)  # earlier findings this run could not re-check
    notes: tuple[str, ...] = ()  # e.g. an earlier report that could not be read


def key(f: Finding) -> tuple[str, str, str]:
    return tuple(part.lower() for part in f.key)  # type: ignore[return-value]


def previous_reports(out_dir: Path, stem: str) -> list[Path]:
    """Earlier JSON reports of the family in out_dir, newest first (by modification time, then name)."""
    found = [
        p
        for p in out_dir.glob(f"{FAMILY}*.json")
        if p.stem != stem and not p.name.startswith(OTHER_FAMILIES) and is_regular_file(p)  # no link followed
    ]
    return sorted(found, key=lambda p: (p.lstat().st_mtime, p.name), reverse=True)


def load_previous(
    out_dir: Path, stem: str, tenant_ids: Collection[str] | None = None
) -> tuple[Path | None, RunResult | None, list[str]]:
    """The earlier run to compare with; notes name any newer report that could not be read (see read_previous)."""
    path, previous, notes, _ = read_previous(out_dir, stem, tenant_ids)
    return path, previous, notes


def read_previous(
    out_dir: Path, stem: str, tenant_ids: Collection[str] | None = None
) -> tuple[Path | None, RunResult | None, list[str], RunResult | None]:
    """load_previous, and the newest report used as it was written (all of its tenants, as they were).

    The earlier run to compare with; notes name any newer report that could not be read.

    Without tenant_ids: the newest readable earlier report. With them: each tenant is taken from the newest
    report that covered it (listed it, and did not fail to read it), so a run of only some tenants
    (--tenant, a demo in the same folder) does not hide the others' history. The returned path is then
    the newest report used; its findings have first_seen filled in from their own report where missing.
    """
    notes: list[str] = []
    wanted = None if tenant_ids is None else {t.lower() for t in tenant_ids}
    found: dict[str, tuple[Path, TenantResult]] = {}
    newest: tuple[Path, RunResult] | None = None
    for path in previous_reports(out_dir, stem):
        if wanted is not None and not wanted - found.keys():
            break
        try:
            previous, _ = read_json_report(path)
        except ReportError as err:
            log.warning("skipping an unreadable earlier report: %s", err)
            notes.append(f"Earlier report skipped: {err}")
            continue
        if wanted is None:
            return path, previous, notes, previous
        fallback = iso(previous.started)
        for tenant in previous.tenants:
            tid = tenant.tenant_id.lower()
            if tid in wanted and tid not in found and tenant.status != TenantStatus.FAILED:
                stamped = [f if f.first_seen else replace(f, first_seen=fallback) for f in tenant.findings]
                found[tid] = (path, replace(tenant, findings=stamped))
                newest = newest or (path, previous)
    if newest is None:
        return None, None, notes, None
    path, run = newest
    older = [f"{t.name} with {p.name}" for p, t in found.values() if p != path]
    if older:
        notes.append(f"Compared {', '.join(older)}: the newest earlier report that covered each tenant.")
    return path, replace(run, tenants=[t for _, t in found.values()]), notes, run


def compare(
    result: RunResult,
    current: Sequence[Finding],
    previous: RunResult | None,
    previous_path: Path | None,
    notes: Sequence[str] = (),
) -> tuple[Changes, list[Finding]]:
    """Changes against the previous run, and `current` with first_seen set (carried or this run's start)."""
    started = iso(result.started)
    if previous is None:
        stamped = [replace(f, first_seen=started) for f in current]
        return Changes(new=list(stamped), resolved=[], still_open=[], previous=None, notes=tuple(notes)), stamped

    in_run = {t.tenant_id.lower() for t in result.tenants}
    earlier = {key(f): f for f in previous.findings if f.tenant_id.lower() in in_run}
    fallback = iso(previous.started)
    stamped: list[Finding] = []
    new: list[Finding] = []
    still_open: list[Finding] = []
    for f in current:
        before = earlier.get(key(f))
        if before is None:
            f = replace(f, first_seen=started)
            new.append(f)
        else:
            f = replace(f, first_seen=before.first_seen or fallback)
            still_open.append(f)
        stamped.append(f)

    now_keys = {key(f) for f in current}
    rechecked = _rechecker(result)
    resolved: list[Finding] = []
    unverified: list[Finding] = []
    for k, f in earlier.items():
        if k in now_keys:
            continue
        (resolved if rechecked(f) else unverified).append(f)
    changes = Changes(
        new=new,
        resolved=resolved,
        still_open=still_open,
        previous=previous_path,
        unverified=unverified,
        notes=tuple(notes),
    )
    return changes, stamped


def _rechecker(result: RunResult):
    tenants = {t.tenant_id.lower(): t for t in result.tenants}

    def rechecked(f: Finding) -> bool:
        tenant = tenants.get(f.tenant_id.lower())
        if tenant is None or tenant.status == TenantStatus.FAILED:
            return False
        if any(n.check_id.lower() == f.check_id.lower() for n in tenant.not_evaluated):
            return False
        if f.user_id and f.user_id in tenant.not_assessed_users:
            return False  # this user could not be assessed this time (as read back from a shard's report)
        if f.user_id and tenant.snapshot is not None and tenant.snapshot.probes.value is not None:
            probe = tenant.snapshot.probes.value.get(f.user_id)
            if probe is not None and probe.outcome in ("failed", "access_denied"):
                return False  # this user could not be assessed this time
        return True

    return rechecked
