"""One triage: read the log, route and collect the tenants, explain every row, choose the exit code, write."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from audit.config import Config
from audit.exitcodes import ExitCode
from audit.models import USER_INVALID
from audit.runner import RunOptions, select_tenants
from audit.triage.diagnose import RunFacts, diagnose, no_address, nowhere, pick
from audit.triage.errorlog import error_kind, mailbox_address, read_error_log
from audit.triage.output import write_triage
from audit.triage.result import Diagnosis, Outcome, TriagedRow, TriageResult
from audit.triage.tenants import TenantView, route

log = logging.getLogger("audit")


def triage(
    config: Config,
    errorlog: str | Path,
    *,
    tenant: str | None = None,
    out_dir: Path | None = None,
    formats: Sequence[str] | None = None,
    now: datetime | None = None,
) -> TriageResult:
    """Explain every row of a remediation error log and write the workbook (and JSON). See the docstring."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    error_log = read_error_log(errorlog)
    table = error_log.table
    tenants = [TenantView(t) for t in select_tenants(config, RunOptions(tenant=tenant))]

    entries: list[tuple[int, dict[str, str], str, str, str | None]] = []
    for number, values in enumerate(table.rows, start=1):
        error = values.get(error_log.error_column, "")
        usable = mailbox_address(values.get(error_log.address_column, ""))
        entries.append((number, values, usable, error, error_kind(error)))
    addresses = list(dict.fromkeys(a for _, _, a, _, _ in entries if a))
    routes = route(addresses, tenants, config, forced=tenant is not None)
    for address, candidates in routes.items():
        for t in candidates:
            t.addresses.append(address)
    needed = [t for t in tenants if t.addresses]
    home = (config.remediation_app.home_tenant_id or "").lower()
    if any(
        kind == USER_INVALID and a and any(t.config.tenant_id.lower() != home for t in routes[a])
        for _, _, a, _, kind in entries
    ):
        # The app registration (its sign-in audience) is read only in its home tenant.
        needed += [t for t in tenants if t.config.tenant_id.lower() == home and t not in needed]
    log.info(
        "triage of %d rows (%d addresses) in %s",
        len(entries),
        len(addresses),
        ", ".join(t.name for t in needed) or "no tenant",
    )
    try:
        workers = max(1, min(config.audit.tenant_concurrency, len(needed)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tenant") as pool:
            list(pool.map(lambda t: t.collect(config, now), needed))
    finally:
        for t in tenants:
            if t.client is not None:
                t.client.close()
    facts = RunFacts.of(needed, config)

    rows: list[TriagedRow] = []
    for number, values, address, error, kind in entries:
        if not address:
            missing = no_address(values.get(error_log.address_column, ""))
            rows.append(TriagedRow(number, values, "", error, kind, "", missing))
            continue
        candidates = routes[address]
        view, note = pick(candidates, address)
        if view is None:
            rows.append(TriagedRow(number, values, address, error, kind, "", nowhere(candidates, address)))
            continue
        d = diagnose(view, kind, error, address, facts)
        if note:
            d = Diagnosis(d.cause, d.check_id, d.evidence + note, d.fix, d.outcome)
        rows.append(TriagedRow(number, values, address, error, kind, view.name, d))

    lookups = [t.lookup() for t in needed]
    code = exit_code(rows, table.bad_rows, needed)
    result = TriageResult(Path(errorlog), list(table.header), rows, list(table.bad_rows), lookups, [], code)
    target = Path(out_dir or config.audit.out_dir)
    written = write_triage(result, target, formats or config.audit.formats, now)
    return TriageResult(result.log_path, result.header, rows, result.unreadable, lookups, written, code)


def exit_code(rows: Sequence[TriagedRow], unreadable: Sequence, tenants: Sequence[TenantView]) -> int:
    if tenants and all(t.auth_failed for t in tenants):
        return ExitCode.USAGE
    outcomes = {r.diagnosis.outcome for r in rows}
    if unreadable or Outcome.NOT_ASSESSED in outcomes or any(t.status != "ok" for t in tenants):
        return ExitCode.PARTIAL
    if Outcome.FIX in outcomes:
        return ExitCode.FINDINGS
    return ExitCode.OK
