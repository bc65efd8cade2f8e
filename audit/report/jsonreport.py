"""The JSON twin of the workbook: a stable format other tools (and the next run) read.

Schema 1::

    {"schema": 1,
     "run": {"started", "finished", "version", "probes"},
     "tenants": [{"name", "tenant_id", "status", "error", "users_scanned", "mailboxes_probed",
                  "not_evaluated": [{"check_id", "reason"}], "users_in_directory", "not_assessed"}],
     "findings": [{tenant_id, check_id, severity, user_principal_name, user_id, display_name,
                   predicted_error, cause, fix, evidence, first_seen}],
     "accepted": [{...finding..., "exception": {"check_id", "user", "tenant", "reason", "owner",
                                                "expires", "source"}}],
     "trend": [{"report", "started", "critical", "high", "medium", "low"}]}

"trend" holds the findings that counted, by severity, in up to 11 earlier reports of the same folder and
in this one (last), oldest first; the Summary sheet charts the same numbers.

Keys may be added; none is ever removed or renamed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from audit.models import (
    FINDING_FIELDS,
    Finding,
    NotEvaluated,
    RunResult,
    Severity,
    TenantResult,
    TenantStatus,
    subject_of,
)
from audit.report.cells import iso, parse_time
from audit.report.exceptions import AcceptedException

if TYPE_CHECKING:
    from audit.report.trend import Point

SCHEMA = 1


class ReportError(Exception):
    """An earlier report cannot be read. str(e) names the file and what is wrong."""


def finding_json(finding: Finding) -> dict:
    data = asdict(finding)
    del data["subject"]
    data["severity"] = str(finding.severity)
    return data


def report_json(
    result: RunResult,
    counted: Sequence[Finding],
    accepted: Sequence[tuple[Finding, AcceptedException]],
    trend: Sequence[Point] = (),
) -> dict:
    return {
        "schema": SCHEMA,
        "run": {
            "started": iso(result.started),
            "finished": iso(result.finished),
            "version": result.version,
            "probes": bool(result.probes),
        },
        "tenants": [_tenant_json(t) for t in result.tenants],
        "findings": [finding_json(f) for f in counted],
        "accepted": [finding_json(f) | {"exception": _exception_json(e)} for f, e in accepted],
        "trend": [p.as_json() for p in trend],
    }


def _tenant_json(t: TenantResult) -> dict:
    return {
        "name": t.name,
        "tenant_id": t.tenant_id,
        "status": str(t.status),
        "error": t.error,
        "users_scanned": t.users_scanned,
        "mailboxes_probed": t.mailboxes_probed,
        "not_evaluated": [{"check_id": n.check_id, "reason": n.reason} for n in t.not_evaluated],
        "users_in_directory": t.users_in_directory,
        "not_assessed": dict(t.not_assessed),
        "not_assessed_users": list(t.not_assessed_users),
    }


def _exception_json(e: AcceptedException) -> dict:
    return {
        "check_id": e.check_id,
        "user": e.user,
        "tenant": e.tenant,
        "reason": e.reason,
        "owner": e.owner,
        "expires": e.expires.isoformat(),
        "source": e.source,
    }


def dump(data: dict) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def read_json_report(path: str | Path) -> tuple[RunResult, list[Finding]]:
    """Read a report written by `write_reports`.

    Returns the run as a RunResult whose tenants carry every finding of the report (those that
    counted and those accepted by an exception, each with its first_seen), and, second, only the
    findings that counted in that report. Raises ReportError for a file that is not such a report.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a readable JSON report: {err}") from None
    try:
        if data.get("schema") != SCHEMA:
            raise ReportError(
                f"{path}: unsupported report schema {data.get('schema')!r} (this version reads schema {SCHEMA})"
            )
        run = data["run"]
        counted = [_finding(d) for d in data["findings"]]
        accepted = [_finding(d) for d in data.get("accepted", [])]
        by_tenant: dict[str, list[Finding]] = {}
        for f in counted + accepted:
            by_tenant.setdefault(f.tenant_id, []).append(f)
        tenants = [_tenant(d, by_tenant.pop(d["tenant_id"], [])) for d in data["tenants"]]
        for tenant_id, findings in by_tenant.items():  # findings of a tenant the list lacks
            tenants.append(TenantResult(tenant_id, tenant_id, TenantStatus.OK, findings=findings))
        started, finished = parse_time(run["started"]), parse_time(run["finished"])
        if started is None or finished is None:
            raise ReportError(f"{path}: run.started / run.finished are not ISO-8601 times")
        result = RunResult(
            started=started, finished=finished, version=str(run["version"]), probes=bool(run["probes"]), tenants=tenants
        )
    except ReportError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ReportError(f"{path}: not a valid etd-audit report ({type(err).__name__}: {err})") from None
    return result, counted


def _finding(d: dict) -> Finding:
    values = {name: d.get(name) for name in FINDING_FIELDS}
    for name in ("tenant_id", "check_id", "severity", "predicted_error", "cause", "fix", "evidence"):
        if values[name] is None:
            raise KeyError(name)
    values["severity"] = Severity(values["severity"])
    if values["user_id"] is None:
        values["subject"] = subject_of(values["check_id"], values["evidence"])
    return Finding(**values)


def _tenant(d: dict, findings: list[Finding]) -> TenantResult:
    return TenantResult(
        name=d["name"],
        tenant_id=d["tenant_id"],
        status=TenantStatus(d["status"]),
        error=d.get("error"),
        users_scanned=int(d.get("users_scanned") or 0),
        users_in_directory=d.get("users_in_directory"),
        mailboxes_probed=int(d.get("mailboxes_probed") or 0),
        not_assessed={str(k): int(v) for k, v in (d.get("not_assessed") or {}).items()},
        not_evaluated=[NotEvaluated(n["check_id"], n["reason"]) for n in d.get("not_evaluated") or []],
        findings=findings,
        not_assessed_users=tuple(str(u) for u in d.get("not_assessed_users") or ()),
    )
