"""What changed since the previous report in the same folder: new, resolved, still open.

A finding is the same finding across runs when tenant, check and user match (Finding.key). An earlier
finding that is absent now only counts as resolved when this run could actually look again: its
tenant was audited, its check was evaluated there and, if that user's mailbox was probed, the probe
worked. Otherwise it is listed as not re-checked. Tenants outside this run (another
shard, --tenant) are left out altogether.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from audit.models import Finding, RunResult, TenantStatus
from audit.report.cells import iso
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
        if p.stem != stem and p.is_file() and not p.name.startswith(OTHER_FAMILIES)
    ]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def load_previous(out_dir: Path, stem: str) -> tuple[Path | None, RunResult | None, list[str]]:
    """The newest readable earlier report; notes name any newer one that could not be read."""
    notes: list[str] = []
    for path in previous_reports(out_dir, stem):
        try:
            previous, _ = read_json_report(path)
        except ReportError as err:
            log.warning("skipping an unreadable earlier report: %s", err)
            notes.append(f"Earlier report skipped: {err}")
            continue
        return path, previous, notes
    return None, None, notes


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
